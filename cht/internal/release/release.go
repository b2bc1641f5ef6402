// Package release parses CHT release versions ("4.10.0", "v4.10.0-beta.1")
// and compares them by major and minor release. It is the one version
// parser of package cht and its test kit.
package release

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a CHT release: major.minor.patch. A pre-release or build
// suffix is dropped when parsing.
type Version struct {
	Major, Minor, Patch int
}

// Parse reads "major.minor[.patch]" with an optional leading "v" and an
// optional pre-release ("-beta.1") or build ("+abc") suffix, the shapes
// CHT's /api/deploy-info reports.
func Parse(s string) (Version, error) {
	var v Version
	core := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(core, "-+ "); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, fmt.Errorf("invalid version %q: want major.minor.patch", s)
	}
	dst := [3]*int{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("invalid version %q: want major.minor.patch", s)
		}
		*dst[i] = n
	}
	return v, nil
}

// AtLeast reports whether v is release major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// String returns "major.minor.patch".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }
