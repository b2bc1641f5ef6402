package cht

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
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

func (c *Change) Rev() string { return c.rev() }

// IDs returns the ancestor ids from this link upwards, nearest first
// (nil for a nil Lineage).
func (l *Lineage) IDs() []string {
	var ids []string
	for p := l; p != nil; p = p.Parent {
		ids = append(ids, p.ID)
	}
	return ids
}

func (c *Contact) IsPlace(personTypes ...string) bool {
	return c.IsContact() && !c.IsPerson(personTypes...)
}

// Of returns the type of contact c ([Contact.TypeID]), for
// TestContactTypesOf. A contact whose type is not in the hierarchy, or a
// document that is not a contact, is a *DecodeError naming contact_type (or
// type) that wraps [ErrUnknownContactType].
func (ct ContactTypes) Of(c *Contact) (ContactType, error) {
	field := "type"
	if c != nil && c.Type == "contact" {
		field = "contact_type"
	}
	id := c.TypeID()
	if t, ok := ct.Lookup(id); ok {
		return t, nil
	}
	return ContactType{}, &DecodeError{Path: field, Err: fmt.Errorf("%w: %q", ErrUnknownContactType, id)}
}

// NewContactTypes gives the tests the hierarchy constructor behind ParseContactTypes.
func NewContactTypes(types ...ContactType) (ContactTypes, error) { return newContactTypes(types...) }

// SetClock gives c the clock its version detection is timed with, for
// tests of detecting the version again.
func SetClock(c *Client, now func() time.Time) { c.now = now }
