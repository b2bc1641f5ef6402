// Package semver parses and compares versions as OpenHIM core does, with
// node-semver's strict rules (semver.valid, semver.gt). It is the one
// version parser of package mediator and its test kit.
package semver

import (
	"regexp"
	"strconv"
	"strings"
)

// pattern is node-semver's strict FULL pattern (semver.valid without the
// loose option): an optional leading "v", x.y.z without leading zeros, an
// optional prerelease and optional build metadata.
var pattern = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*))*))?` +
	`(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$`)

// Version is a parsed version as node-semver sees it.
type Version struct {
	major, minor, patch uint64
	pre                 []string
}

// Parse mirrors node-semver's semver.valid: the input is trimmed, may be at most 256
// characters, and must match the strict pattern.
func Parse(s string) (Version, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 256 {
		return Version{}, false
	}
	m := pattern.FindStringSubmatch(s)
	if m == nil {
		return Version{}, false
	}
	var v Version
	var err error
	if v.major, err = strconv.ParseUint(m[1], 10, 53); err != nil {
		return Version{}, false
	}
	if v.minor, err = strconv.ParseUint(m[2], 10, 53); err != nil {
		return Version{}, false
	}
	if v.patch, err = strconv.ParseUint(m[3], 10, 53); err != nil {
		return Version{}, false
	}
	if m[4] != "" {
		v.pre = strings.Split(m[4], ".")
	}
	return v, true
}

// Compare returns -1, 0 or +1 as a is lower than, equal to or greater
// than b with node-semver's precedence: the main version first, then a
// version without prerelease beats one with, then prerelease identifiers
// pairwise (numeric below alphanumeric). Build metadata is ignored.
func Compare(a, b Version) int {
	for _, p := range [][2]uint64{{a.major, b.major}, {a.minor, b.minor}, {a.patch, b.patch}} {
		if p[0] != p[1] {
			if p[0] > p[1] {
				return 1
			}
			return -1
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
	for i := 0; ; i++ {
		switch {
		case i >= len(a.pre) && i >= len(b.pre):
			return 0
		case i >= len(a.pre):
			return -1
		case i >= len(b.pre):
			return 1
		}
		x, y := a.pre[i], b.pre[i]
		if x == y {
			continue
		}
		xn, xerr := strconv.ParseUint(x, 10, 64)
		yn, yerr := strconv.ParseUint(y, 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if xn > yn {
				return 1
			}
			return -1
		case xerr == nil:
			return -1
		case yerr == nil:
			return 1
		case x > y:
			return 1
		default:
			return -1
		}
	}
}

// AtLeast reports whether s is a version (see Parse) no lower than min,
// which must be one.
func AtLeast(s, min string) bool {
	v, ok := Parse(s)
	m, okMin := Parse(min)
	if !okMin {
		panic("semver: AtLeast: " + min + " is no version")
	}
	return ok && Compare(v, m) >= 0
}
