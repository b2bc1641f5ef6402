package chttest

import (
	"fmt"
	"strconv"
	"strings"
)

// version is a parsed CHT version "major.minor.patch".
type version [3]int

func parseVersion(s string) (version, error) {
	var v version
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 3 || parts[0] == "" {
		return v, fmt.Errorf("chttest: invalid version %q", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("chttest: invalid version %q", s)
		}
		v[i] = n
	}
	return v, nil
}

// atLeast reports whether v >= major.minor.
func (v version) atLeast(major, minor int) bool {
	if v[0] != major {
		return v[0] > major
	}
	return v[1] >= minor
}

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }
