package cht_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// TestContactsAllByType pins the routes a listing by type uses: GET
// /api/v1/person?type= for a person type (api/src/controllers/person.js
// getAll, 4.11+) and GET /api/v1/place?type= for any other
// (api/src/controllers/place.js getAll, 4.12+). Tag 5.2.0 of cht-core has
// no GET /api/v1/contact (api/src/routing.js; contact.v1.getAll came with
// commit 7c8bf5e855, after the tag, while master still reports 5.2.0): it
// falls through to the CouchDB proxy and answers 404 "Database does not
// exist.".
func TestContactsAllByType(t *testing.T) {
	ctx := context.Background()
	for _, v := range []string{"4.21.0", "5.2.0", "5.3.0"} {
		srv, c := newDemo(t, chttest.Config{Version: v})
		for _, tt := range []struct {
			typ, path string
			n         int
		}{{"person", "/api/v1/person", 6}, {"household", "/api/v1/place", 1}} {
			t.Run(v+"/"+tt.typ, func(t *testing.T) {
				srv.ResetRequests()
				n := 0
				for _, err := range c.Contacts.All(ctx, cht.ListOptions{Type: tt.typ, Limit: 2}) {
					if err != nil {
						t.Fatalf("listing %s: %v", tt.typ, err)
					}
					n++
				}
				if n != tt.n || len(requestsTo(srv, "GET", tt.path)) == 0 || len(requestsTo(srv, "GET", "/api/v1/contact")) != 0 {
					t.Errorf("%d contacts, requests %v; want %d via %s", n, srv.Requests(), tt.n, tt.path)
				}
			})
		}
	}
}

// TestContactsAllByIDs pins listing by ids, which needs GET
// /api/v1/contact?ids= (api/src/controllers/contact.js getAll, added after
// cht-core 5.2.0): in order, missing and non-contact ids left out, across
// pages; a server without the route (tag 5.2.0: the CouchDB proxy's 404
// "Database does not exist.") or older than 5.2 gives ErrUnsupported.
func TestContactsAllByIDs(t *testing.T) {
	ctx := context.Background()
	for _, v := range []string{"4.21.0", "5.2.0"} {
		t.Run(v, func(t *testing.T) {
			_, c := newDemo(t, chttest.Config{Version: v})
			n := 0
			for _, err := range c.Contacts.All(ctx, cht.ListOptions{IDs: []string{chttest.DemoCHWID}}) {
				n++
				if !errors.Is(err, cht.ErrUnsupported) {
					t.Errorf("err = %v, want ErrUnsupported", err)
				}
			}
			if n != 1 {
				t.Errorf("%d values, want the one error", n)
			}
		})
	}
	_, c := newDemo(t, chttest.Config{Version: "5.3.0"})
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
}
