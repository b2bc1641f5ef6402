package chttest_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// TestInteroperabilityOutbound loads the outbound block of
// medic/cht-interoperability's cht-config/app_settings.json (the
// reference mediator's own CHT configuration, testdata names its commit),
// runs the fake's changes through the pusher into a outbound.Handler,
// and checks each body byte for byte against the payload CHT builds:
// shared-libs/outbound/src/outbound.js mapDocumentToPayload evaluates each
// "expr" with vm.runInNewContext(expr, {doc}), sets the results with
// objectPath.set in mapping order, and request serialises the object with
// JSON.stringify (insertion order; {"expr": true} is the program "true";
// a duplicate key in an object literal keeps its first position and last
// value).
func TestInteroperabilityOutbound(t *testing.T) {
	settings, err := os.ReadFile("testdata/cht-interoperability-outbound.json")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]string{} // path + doc id → body
	h, err := outbound.NewHandler(outbound.HandlerConfig{Handle: func(_ context.Context, p *outbound.Payload) error {
		mu.Lock()
		defer mu.Unlock()
		got[p.Header.Get("X-Test-Path")+" "+string(p.Body)] = ""
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var auth []string
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pw, _ := r.BasicAuth()
		mu.Lock()
		auth = append(auth, u+":"+pw)
		mu.Unlock()
		r.Header.Set("X-Test-Path", r.URL.Path)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(dest.Close)

	srv := chttest.NewServer(chttest.Config{})
	t.Cleanup(srv.Close)
	srv.SetCredential("openhim1", "interop-password")
	docs := []any{
		map[string]any{"_id": "patient-1", "type": "person", "role": "patient", "name": "Jane Doe", "short_name": "Jane",
			"sex": "female", "date_of_birth": "1990-01-02", "reported_date": 1700000000000},
		map[string]any{"_id": "chw-1", "type": "person", "role": "chw", "name": "Carol CHW", "short_name": "Carol",
			"sex": "female", "date_of_birth": "1985-05-06", "phone": "+254700000001", "reported_date": 1700000000000},
		map[string]any{"_id": "nurse-1", "type": "person", "role": "nurse", "name": "No Short", "sex": "male",
			"date_of_birth": "1980-01-01", "reported_date": 1700000000000},
		map[string]any{"_id": "report-1", "type": "data_record", "form": "interop_follow_up", "reported_date": 1700000000001,
			"fields": map[string]any{"inputs": map[string]any{"contact": map[string]any{"_id": "patient-1"}}}},
		map[string]any{"_id": "report-2", "type": "data_record", "form": "other", "reported_date": 1700000000002},
	}
	if err := srv.PutDocs(docs...); err != nil {
		t.Fatal(err)
	}
	cfgs, err := chttest.OutboundFromSettings(bytes.ReplaceAll(settings, []byte("http://openhim-core:5001"), []byte(dest.URL)), srv.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 3 {
		t.Fatalf("%d pushes, want 3", len(cfgs))
	}
	for _, c := range cfgs {
		c.Server = srv
		p, err := chttest.NewOutboundPusher(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Sync(context.Background()); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
	want := []string{
		`/mediator/encounter {"resourceType":"Encounter","identifier":[{"system":"cht","use":"official","value":"patient-1"}],` +
			`"status":"finished","class":"outpatient","type":[{"text":"Community health worker visit"}],` +
			`"subject":{"reference":"Patient/?identifier=patient-1"},"participant":[{"type":[{"text":"Community health worker"}]}]}`,
		`/mediator/patient {"resourceType":"Patient","identifier":[{"system":"cht","use":"official","value":"patient-1"}],` +
			`"name":[{"use":"official","family":"Jane Doe","given":["Jane"]}],"gender":"female","birthDate":"1990-01-02"}`,
		`/fhir/Practitioner {"resourceType":"Practitioner","gender":"female","name":[{"system":"cht","family":"Carol CHW","given":["Carol"]}],` +
			`"identifier":{"use":"usual","value":"cht/chw-1"},"birthDate":"1985-05-06",` +
			`"telecom":[{"system":"phone","use":"mobile","value":"+254700000001"}],"active":true}`,
		// No short_name: [undefined] is [null]; no phone: "value" is dropped.
		`/fhir/Practitioner {"resourceType":"Practitioner","gender":"male","name":[{"system":"cht","family":"No Short","given":[null]}],` +
			`"identifier":{"use":"usual","value":"cht/nurse-1"},"birthDate":"1980-01-01",` +
			`"telecom":[{"system":"phone","use":"mobile"}],"active":true}`,
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Errorf("received %d pushes, want %d: %v", len(got), len(want), got)
	}
	for _, a := range auth {
		if a != "interop-client:interop-password" {
			t.Errorf("basic auth %q", a)
		}
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("missing push %s\nreceived: %v", w, got)
		}
	}
}
