package cht_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// TestListsAndSummaries52 pins the CHT 5.2 routes (api/src/routing.js;
// api/src/controllers/contact.js and report.js getAll and getSummaries,
// shared-libs/summaries summariseContact and summariseReport) through the
// client, and that a 4.x server has none of them.
func TestListsAndSummaries52(t *testing.T) {
	_, c := newDemo(t, chttest.Config{Version: "5.2.0"})
	ctx := context.Background()
	p, err := c.Contacts.List(ctx, cht.ListOptions{IDs: []string{chttest.DemoCHWID, "missing", chttest.DemoHeightWeightReportID, chttest.DemoHealthCentreID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Data) != 2 || p.Data[0].ID != chttest.DemoCHWID || p.Data[1].ID != chttest.DemoHealthCentreID || p.Cursor != "" {
		t.Errorf("contacts by ids: %d docs, cursor %q", len(p.Data), p.Cursor)
	}
	p, err = c.Contacts.List(ctx, cht.ListOptions{IDs: []string{chttest.DemoCHWID, chttest.DemoPatientID, chttest.DemoChildID}, Limit: 2})
	if err != nil || len(p.Data) != 2 || p.Cursor != "2" {
		t.Fatalf("a full page carries a cursor: %+v %v", p, err)
	}
	n := 0
	for _, err := range c.Contacts.All(ctx, cht.ListOptions{Type: "person", Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 6 {
		t.Errorf("All persons: %d, want 6", n)
	}
	r, err := c.Reports.List(ctx, cht.ListOptions{IDs: []string{chttest.DemoHeightWeightReportID, chttest.DemoCHWID}})
	if err != nil || len(r.Data) != 1 || r.Data[0].ID != chttest.DemoHeightWeightReportID {
		t.Fatalf("reports by ids: %+v %v", r, err)
	}

	cs, err := c.Contacts.Summaries(ctx, chttest.DemoCHWID, chttest.DemoHeightWeightReportID)
	if err != nil || len(cs) != 1 {
		t.Fatalf("contact summaries: %+v %v", cs, err)
	}
	if s := cs[0]; s.Name != "Example CHW" || s.Type != "person" || len(s.Lineage) != 3 || s.Lineage[0] != chttest.DemoCHWAreaID || s.Rev == "" {
		t.Errorf("contact summary %+v", s)
	}
	rs, err := c.Reports.Summaries(ctx, chttest.DemoHeightWeightReportID)
	if err != nil || len(rs) != 1 {
		t.Fatalf("report summaries: %+v %v", rs, err)
	}
	if s := rs[0]; s.Form != "HEIGHT_WEIGHT" || !s.Valid || s.Subject["type"] != "reference" || s.ReportedDate != 1730355950419 {
		t.Errorf("report summary %+v", s)
	}

	_, old := newDemo(t, chttest.Config{Version: "4.21.0"})
	if _, err := old.Contacts.Summaries(ctx, chttest.DemoCHWID); !errors.Is(err, cht.ErrNotFound) {
		t.Errorf("4.21 summaries: %v, want ErrNotFound", err)
	}
}
