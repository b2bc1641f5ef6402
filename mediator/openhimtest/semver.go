package openhimtest

import "github.com/cht-interop/openhim-mediator-go/mediator/internal/semver"

// parseSemver mirrors core's semver.valid.
func parseSemver(s string) (semver.Version, bool) { return semver.Parse(s) }

// semverGreater mirrors core's semver.gt.
func semverGreater(a, b semver.Version) bool { return semver.Compare(a, b) > 0 }
