package openhim

import (
	"slices"

	"github.com/cht-interop/openhim-mediator-go/mediator/internal/semver"
)

// DefaultCoreVersion is the OpenHIM core major version that validation
// targets when [Config.CoreVersion] is 0.
const DefaultCoreVersion = 8

// coreRules are the version-dependent parts of core's schema.
type coreRules struct {
	version          int
	routeTypes       map[string]bool
	routeTypeList    string
	hostPortRequired bool // route host and port are required up to core 7
	secondaryGating  bool // waitPrimaryResponse / statusCodesCheck exist since core 8
	methodsRequired  bool // core 7.0.1+ matches no request to an http channel without methods
}

// rulesFor returns the validation rules of a core major version.
// Core 8 changed the route schema: type http|kafka instead of
// http|tcp|mllp, and host/port became optional.
func rulesFor(major int) coreRules {
	if major <= 0 {
		major = DefaultCoreVersion
	}
	if major <= 7 {
		return coreRules{version: major, routeTypes: map[string]bool{"http": true, "tcp": true, "mllp": true},
			routeTypeList: "http, tcp or mllp", hostPortRequired: true, methodsRequired: major == 7}
	}
	return coreRules{version: major, routeTypes: map[string]bool{"http": true, "kafka": true},
		routeTypeList: "http or kafka", secondaryGating: true, methodsRequired: true}
}

// parseSemver parses a version as core's semver.valid does.
func parseSemver(s string) (semver.Version, bool) { return semver.Parse(s) }

// compareVersions compares two SemVer versions as core does (node-semver
// precedence): -1 if a < b, 0 if equal, +1 if a > b. ok is false if either
// is not a valid version.
func compareVersions(a, b string) (cmp int, ok bool) {
	va, ok1 := semver.Parse(a)
	vb, ok2 := semver.Parse(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return semver.Compare(va, vb), true
}

func cfgSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
