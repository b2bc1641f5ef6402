package push_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// The outbound block makes CHT push what the handler converts: chttest's
// pusher runs relevant_to and the mapping as CHT does (JavaScript over the
// documents of the demo app) and sends the mapped reports, whatever the
// case of their form code (the converter ignores it), and every contact,
// people and places, whatever its contact type is called; nothing else.
func TestOutboundPushesMappedReportsAndContacts(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{} // form, contact type or type → pushes
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Doc struct {
				Type        string `json:"type"`
				Form        string `json:"form"`
				ContactType string `json:"contact_type"`
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		u, pw, _ := r.BasicAuth()
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != push.OutboundPath || u != "cht-outbound" || pw != "pw" {
			got["wrong destination"]++
		}
		switch {
		case p.Doc.Form != "":
			got[p.Doc.Form]++
		case p.Doc.ContactType != "":
			got[p.Doc.ContactType]++
		default:
			got[p.Doc.Type]++
		}
	}))
	defer rcv.Close()
	cht := chttest.NewDemoServer()
	defer cht.Close()
	cht.SetCredential("openhim_cht_to_fhir", "pw")
	for _, doc := range []map[string]any{
		// A records-API report stores its form code upper-case; the
		// default mapping names it lower-case.
		{"_id": "upper-form", "type": "data_record", "form": "INTEROP_FOLLOW_UP", "reported_date": 1700000000000,
			"fields": map[string]any{"patient_uuid": chttest.DemoPatientID}},
		{"_id": "unmapped-form", "type": "data_record", "form": "not_in_the_mapping", "reported_date": 1700000000000},
		// A person type of a configurable hierarchy not called person.
		{"_id": "c-patient", "type": "contact", "contact_type": "c_patient", "name": "Ann",
			"parent": map[string]any{"_id": chttest.DemoHouseholdID}},
		{"_id": "legacy-clinic", "type": "clinic", "name": "Legacy clinic"},
		{"_id": "not-a-contact", "type": "user-settings", "name": "Ann"},
	} {
		_, err := cht.PutDoc(doc)
		require.NoError(t, err)
	}

	oc, err := push.Outbound(rcv.URL+push.OutboundPath, "cht-outbound", "openhim_cht_to_fhir", fhir.DefaultMapping())
	require.NoError(t, err)
	raw, err := oc.AppSettings()
	require.NoError(t, err)
	pushes, err := chttest.OutboundFromSettings(raw, cht.Credential)
	require.NoError(t, err)
	require.Len(t, pushes, 2)
	for _, cfg := range pushes {
		cfg.Server = cht
		p, err := chttest.NewOutboundPusher(cfg)
		require.NoError(t, err)
		_, err = p.Sync(context.Background())
		require.NoError(t, err)
	}
	for _, k := range []string{"HEIGHT_WEIGHT", "INTEROP_FOLLOW_UP", "person", "household", "chw_area", "health_center",
		"district_hospital", "c_patient", "clinic"} {
		assert.Positive(t, got[k], "%s is pushed: %v", k, got)
	}
	for k := range got {
		_, mapped := fhir.DefaultMapping().Form(k)
		if !mapped && !chttest.DemoTypes().IsPerson(k) && !chttest.DemoTypes().IsPlace(k) &&
			!slices.Contains([]string{"clinic", "health_center", "district_hospital"}, k) && k != "c_patient" {
			t.Errorf("pushed %q, which the handler does not convert (%v)", k, got)
		}
	}

	_, err = push.Outbound("openhim:5000", "u", "k", fhir.DefaultMapping())
	require.ErrorContains(t, err, "http(s) URL")
}
