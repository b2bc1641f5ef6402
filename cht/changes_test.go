package cht_test

import (
	"context"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// TestChangesReplays pins that the feed readers tolerate CouchDB 2+
// replaying changes after a resumed sequence (a clustered node restart):
// each revision is yielded once per iteration, and the opaque string
// sequences are passed back as they came.
func TestChangesReplays(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{})
	ctx := context.Background()
	for _, read := range []struct {
		name string
		ids  func() ([]string, error)
	}{
		{"All", func() ([]string, error) {
			var ids []string
			pages := 0
			for ch, err := range c.Docs.All(ctx, cht.ChangesOptions{Limit: 4}) {
				if err != nil {
					return nil, err
				}
				if pages++; pages == 4 {
					srv.ReplayChanges(3) // the next page starts 3 sequences back
				}
				ids = append(ids, ch.ID)
			}
			return ids, nil
		}},
		{"AllHydrated", func() ([]string, error) {
			var ids []string
			pages := 0
			for ch, err := range c.Docs.AllHydrated(ctx, cht.ChangesOptions{Limit: 4}) {
				if err != nil {
					return nil, err
				}
				if pages++; pages == 4 {
					srv.ReplayChanges(3)
				}
				ids = append(ids, ch.ID)
			}
			return ids, nil
		}},
	} {
		ids, err := read.ids()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("%s yielded %s twice", read.name, id)
			}
			seen[id] = true
		}
		if len(seen) != 13 {
			t.Errorf("%s yielded %d docs, want the fixture's 13", read.name, len(seen))
		}
	}
	// The fake really replays: a resumed page starts before its since.
	page, err := c.Docs.Changes(ctx, cht.ChangesOptions{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	srv.ReplayChanges(2)
	next, err := c.Docs.Changes(ctx, cht.ChangesOptions{Since: page.LastSeq, Limit: 5})
	if err != nil || len(next.Results) == 0 || next.Results[0].ID != page.Results[3].ID {
		t.Fatalf("replayed page %+v (%v), want it to start at %s", next, err, page.Results[3].ID)
	}
}
