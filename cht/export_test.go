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

// Rev, IDs and IsPlace give the tests of package cht_test what users reach
// otherwise (Change.Changes, Lineage links, ContactTypes.IsPlace).

func (c *Change) Rev() string    { return c.rev() }
func (l *Lineage) IDs() []string { return l.ids() }
func (c *Contact) IsPlace(personTypes ...string) bool {
	return c.IsContact() && !c.IsPerson(personTypes...)
}

// Of gives TestContactTypesOf the unexported lookup by document.
func (ct ContactTypes) Of(c *Contact) (ContactType, error) { return ct.of(c) }

// NewContactTypes gives the tests the hierarchy constructor behind ParseContactTypes.
func NewContactTypes(types ...ContactType) (ContactTypes, error) { return newContactTypes(types...) }
