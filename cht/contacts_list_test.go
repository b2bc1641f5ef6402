package cht_test

import (
	"context"
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

	// Before 5.2 there is no GET /api/v1/contact: a person type is listed
	// with GET /api/v1/person (api/src/controllers/person.js, 4.11+) and
	// any other type with GET /api/v1/place (api/src/controllers/place.js,
	// 4.12+).
	oldSrv, old := newDemo(t, chttest.Config{Version: "4.21.0"})
	for _, tt := range []struct {
		typ, path string
		n         int
	}{{"person", "/api/v1/person", 6}, {"household", "/api/v1/place", 1}} {
		oldSrv.ResetRequests()
		n := 0
		for _, err := range old.Contacts.All(ctx, cht.ListOptions{Type: tt.typ}) {
			if err != nil {
				t.Fatalf("4.21 listing %s: %v", tt.typ, err)
			}
			n++
		}
		if n != tt.n || len(requestsTo(oldSrv, "GET", tt.path)) == 0 {
			t.Errorf("4.21 listing %s: %d contacts, requests %v; want %d via %s", tt.typ, n, oldSrv.Requests(), tt.n, tt.path)
		}
	}
}
