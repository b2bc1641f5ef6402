package cht_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// TestPushDecodesEachDocumentOnce drives the CHT → FHIR push handler (as
// examples/cht-to-fhir serves it) with CHT's kinds of push and counts the
// documents package cht decodes: each JSON body the handler receives is
// decoded once, whether the document arrives whole, hydrated, or as an id
// the handler resolves with CHT's hydrate API; nothing is decoded again
// for the type sniff, the conversion or after hydration.
func TestPushDecodesEachDocumentOnce(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	settings, err := json.Marshal(map[string]any{"contact_types": chttest.DemoContactTypes})
	if err != nil {
		t.Fatal(err)
	}
	types, err := cht.ParseContactTypes(settings)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := fhir.New(fhir.Config{InstanceURL: chtSrv.URL, Mapping: fhir.DefaultMapping(), ContactTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	h, err := push.New(push.Config{Converter: conv, FHIR: fc, CHT: cc})
	if err != nil {
		t.Fatal(err)
	}
	hydrated := func(id string) any {
		d, ok := chtSrv.HydratedDoc(id)
		if !ok {
			t.Fatalf("no doc %s", id)
		}
		return d
	}
	stored := func(id string) any {
		var d map[string]any
		raw, ok := chtSrv.Doc(id)
		if !ok || json.Unmarshal(raw, &d) != nil {
			t.Fatalf("no doc %s", id)
		}
		return d
	}
	tests := []struct {
		name   string
		body   any
		bodies int64 // JSON documents the handler receives: pushed, then from CHT
	}{
		{"hydrated person", map[string]any{"doc": hydrated(chttest.DemoPatientID)}, 1},
		{"hydrated report", map[string]any{"doc": hydrated(chttest.DemoHeightWeightReportID)}, 1},
		{"id only, hydrated by the handler", map[string]any{"id": chttest.DemoAssessmentReportID, "rev": "1-x"}, 1},
		{"person as the body", hydrated(chttest.DemoMotherID), 1},
		// The pushed copy lacks the patient: it is decoded, found wanting,
		// and CHT's hydrated copy (another body) is decoded in its place.
		{"stored report, hydrated by the handler", map[string]any{"doc": stored(chttest.DemoDangerSignReportID)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			n := cht.CountDecodes(t)
			req := httptest.NewRequest(http.MethodPost, push.OutboundPath, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := n.Load(); got != tt.bodies {
				t.Errorf("%d documents decoded, want %d (each body once)", got, tt.bodies)
			}
		})
	}
	if fhirSrv.Count("Encounter") != 3 || fhirSrv.Count("Patient") == 0 {
		t.Errorf("FHIR store: %v", fhirSrv.Counts())
	}
}
