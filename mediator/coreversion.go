package mediator

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// DefaultCoreVersion is the OpenHIM core major version that validation
// targets when [OpenHIMConfig.CoreVersion] is 0.
const DefaultCoreVersion = 8

// coreRules are the version-dependent parts of core's schema.
type coreRules struct {
	version          int
	routeTypes       map[string]bool
	routeTypeList    string
	hostPortRequired bool // route host and port are required up to core 7
	secondaryGating  bool // waitPrimaryResponse / statusCodesCheck exist since core 8
	methodsRequired  bool // core 7.1+ matches no request to an http channel without methods
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

// semver is a parsed semantic version (node-semver's strict form; a
// leading "v" is accepted as core's semver.valid accepts it).
type semver struct {
	major, minor, patch uint64
	pre                 []string
}

func parseSemver(s string) (semver, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(s, '+'); i >= 0 { // build metadata: validated, then ignored
		build := s[i+1:]
		s = s[:i]
		if !validIdents(build, false) {
			return semver{}, false
		}
	}
	var pre string
	if i := strings.IndexByte(s, '-'); i >= 0 {
		pre = s[i+1:]
		s = s[:i]
		if !validIdents(pre, true) {
			return semver{}, false
		}
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return semver{}, false
	}
	var nums [3]uint64
	for i, p := range parts {
		if !semverNumeric(p) || (len(p) > 1 && p[0] == '0') {
			return semver{}, false
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || n > math.MaxInt32 {
			return semver{}, false
		}
		nums[i] = n
	}
	v := semver{major: nums[0], minor: nums[1], patch: nums[2]}
	if pre != "" {
		v.pre = strings.Split(pre, ".")
	}
	return v, true
}

func validIdents(s string, noLeadingZero bool) bool {
	if s == "" {
		return false
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		for _, c := range id {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
		if noLeadingZero && semverNumeric(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

func semverNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// compare returns -1, 0 or +1 with semver precedence.
func (a semver) compare(b semver) int {
	for _, d := range [][2]uint64{{a.major, b.major}, {a.minor, b.minor}, {a.patch, b.patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		if x == y {
			continue
		}
		xn, yn := semverNumeric(x), semverNumeric(y)
		switch {
		case xn && yn:
			xi, _ := strconv.ParseUint(x, 10, 64)
			yi, _ := strconv.ParseUint(y, 10, 64)
			if xi < yi {
				return -1
			}
			return 1
		case xn:
			return -1
		case yn:
			return 1
		case x < y:
			return -1
		default:
			return 1
		}
	}
	switch {
	case len(a.pre) < len(b.pre):
		return -1
	case len(a.pre) > len(b.pre):
		return 1
	}
	return 0
}

// CompareVersions compares two SemVer versions as core does (node-semver
// precedence): -1 if a < b, 0 if equal, +1 if a > b. ok is false if either
// is not a valid version.
func CompareVersions(a, b string) (cmp int, ok bool) {
	va, ok1 := parseSemver(a)
	vb, ok2 := parseSemver(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return va.compare(vb), true
}

func cfgSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
