package cht

import (
	"sync/atomic"
	"testing"
)

// CountDecodes counts the documents package cht decodes until the test
// ends (for tests in package cht_test that drive a whole pipeline).
func CountDecodes(t testing.TB) *atomic.Int64 {
	n := new(atomic.Int64)
	decodeHook = func() { n.Add(1) }
	t.Cleanup(func() { decodeHook = nil })
	return n
}
