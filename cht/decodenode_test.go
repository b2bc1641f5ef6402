package cht

import (
	"reflect"
	"testing"
)

// TestNodeChunks: a document that needs more Contacts and links than the
// first chunk holds takes further chunks and decodes to the same values,
// and no two references share a node.
func TestNodeChunks(t *testing.T) {
	savedN, savedL := nodeCounts[useContact].Load(), linkCounts[useContact].Load()
	t.Cleanup(func() { nodeCounts[useContact].Store(savedN); linkCounts[useContact].Store(savedL) })
	data := readFixture(t, "person_hydrated.json")
	var want Contact
	if err := decodeContactAs(data, &want, false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int32{1, 16, 16 * maxNodeChunk} {
		nodeCounts[useContact].Store(n)
		linkCounts[useContact].Store(n)
		if got := countEstimate(&nodeCounts, useContact, len(data)); got < 1 || got > maxNodeChunk {
			t.Errorf("estimate %d for count %d", got, n)
		}
		var c Contact
		if err := c.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&c, &want) {
			t.Errorf("count %d: decoded %+v, want %+v", n, c, want)
		}
		seen := map[*Contact]bool{}
		var walk func(c *Contact)
		walk = func(c *Contact) {
			if c == nil {
				return
			}
			if seen[c] {
				t.Errorf("count %d: %s decoded into a node twice", n, c.ID)
				return
			}
			seen[c] = true
			walk(c.Contact)
			if c.Parent != nil {
				walk(c.Parent.Doc) // which walks the links above
			}
		}
		walk(&c)
		if len(seen) != 7 {
			t.Errorf("count %d: %d contacts, want 7", n, len(seen))
		}
	}
}
