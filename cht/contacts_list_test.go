package cht_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// TestContactsAll52 pins the CHT 5.2 contact listing (api/src/routing.js;
// api/src/controllers/contact.js getAll) through the client: by ids in
// order, missing and non-contact ids left out; by type across pages; and
// that a 4.x server has no such route.
func TestContactsAll52(t *testing.T) {
	_, c := newDemo(t, chttest.Config{Version: "5.2.0"})
	ctx := context.Background()
	collect := func(opts cht.ListOptions) ([]string, error) {
		var ids []string
		for ct, err := range c.Contacts.All(ctx, opts) {
			if err != nil {
				return ids, err
			}
			ids = append(ids, ct.ID)
		}
		return ids, nil
	}
	ids, err := collect(cht.ListOptions{IDs: []string{chttest.DemoCHWID, "missing", chttest.DemoHeightWeightReportID, chttest.DemoHealthCentreID}})
	if err != nil || len(ids) != 2 || ids[0] != chttest.DemoCHWID || ids[1] != chttest.DemoHealthCentreID {
		t.Errorf("contacts by ids: %v, %v", ids, err)
	}
	ids, err = collect(cht.ListOptions{IDs: []string{chttest.DemoCHWID, chttest.DemoPatientID, chttest.DemoChildID}, Limit: 2})
	if err != nil || len(ids) != 3 {
		t.Errorf("ids over two pages: %v, %v", ids, err)
	}
	ids, err = collect(cht.ListOptions{Type: "person", Limit: 2})
	if err != nil || len(ids) != 6 {
		t.Errorf("All persons: %d, %v; want 6", len(ids), err)
	}

	_, old := newDemo(t, chttest.Config{Version: "4.21.0"})
	for _, err := range old.Contacts.All(ctx, cht.ListOptions{Type: "person"}) {
		if !errors.Is(err, cht.ErrNotFound) {
			t.Errorf("4.21 listing: %v, want ErrNotFound", err)
		}
		break
	}
}
