package main

// e2e test against the REAL FHIR server of .ci/stack.sh (FHIR_BASE_URL): a
// configurable-hierarchy app served by chttest (contact_types with a CHW
// type, places, people, reports: fhir/testdata/realapp) pushes every
// document to this program, configured with URLs (and CHT's credentials)
// only: it reads the contact types from CHT and uses the default mapping.
// The FHIR server then holds the right resource kinds, every reference of
// what was written resolves there, and the resources read back convert to
// the documents' mapped values.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

func TestE2ERealAppToFHIR(t *testing.T) {
	fhirURL := strings.TrimRight(os.Getenv("FHIR_BASE_URL"), "/")
	if fhirURL == "" {
		t.Skip("FHIR_BASE_URL not set; start the stack with: eval \"$(bash .ci/stack.sh start)\"")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	appSettings, err := os.ReadFile("../../fhir/testdata/realapp/app_settings.json")
	require.NoError(t, err)
	var app struct {
		ContactTypes []chttest.ContactType `json:"contact_types"`
	}
	require.NoError(t, json.Unmarshal(appSettings, &app))
	chtSrv := chttest.NewServer(chttest.Config{ContactTypes: app.ContactTypes})
	t.Cleanup(chtSrv.Close)
	raw, err := os.ReadFile("../../fhir/testdata/realapp/docs.json")
	require.NoError(t, err)
	var docs []map[string]any
	require.NoError(t, json.Unmarshal(raw, &docs))
	for _, d := range docs {
		_, err := chtSrv.PutDoc(d)
		require.NoError(t, err)
	}

	// URLs (and CHT's credentials), nothing else; standalone (no core).
	// The CHT URL names the instance in FHIR identifiers: chttest's port
	// keeps this run's identifiers apart from other tests' on the shared
	// FHIR server.
	instance := chtSrv.URL
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	t.Setenv("MEDIATOR_LISTEN", addr)
	t.Setenv("MEDIATOR_OPENHIM_URL", "")
	t.Setenv("MEDIATOR_CHT_URL", chtSrv.URL)
	t.Setenv("MEDIATOR_CHT_USERNAME", chttest.AdminUsername)
	t.Setenv("MEDIATOR_CHT_PASSWORD", chttest.AdminPassword)
	t.Setenv("MEDIATOR_FHIR_URL", fhirURL)
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"--config", "config.yaml"}, io.Discard, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { stop(); <-done })
	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "realapp", URL: "http://" + addr + push.OutboundPath,
		Mapping: map[string]any{"doc": "doc"}, Server: chtSrv, Username: "openhim-route", Password: "route-secret"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "ready: contact types read from CHT")
	for _, d := range docs {
		id := d["_id"].(string)
		doc, ok := chtSrv.HydratedDoc(id)
		require.True(t, ok, id)
		att, err := pusher.Push(ctx, doc)
		require.NoError(t, err, "%s: %d %s", id, att.StatusCode, att.Response)
	}

	// The same converter the handler uses, to name what it wrote.
	types, err := cht.ParseContactTypes(appSettings)
	require.NoError(t, err)
	conv, err := fhir.New(fhir.Config{InstanceURL: instance, Mapping: fhir.DefaultMapping(), ContactTypes: types})
	require.NoError(t, err)
	sys := conv.Systems()
	get := func(path string, out any) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fhirURL+"/"+strings.TrimPrefix(path, "/"), nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		if out != nil && resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
		}
		return resp.StatusCode
	}
	search := func(rt, query string) []json.RawMessage {
		t.Helper()
		var b struct {
			Entry []struct{ Resource json.RawMessage }
		}
		require.Equal(t, http.StatusOK, get(rt+"?"+query+"&_count=100", &b), "%s?%s", rt, query)
		out := make([]json.RawMessage, len(b.Entry))
		for i, e := range b.Entry {
			out[i] = e.Resource
		}
		return out
	}
	byDocID := func(rt, id string) []json.RawMessage {
		return search(rt, "identifier="+url.QueryEscape(sys.DocumentID+"|"+id))
	}

	// The right resource kinds, once each.
	for id, kinds := range map[string][]string{
		"rapp-dh-1": {"Location", "Organization"}, "rapp-hc-1": {"Location", "Organization"}, "rapp-hh-1": {"Location"},
		"rapp-chw-1": {"Practitioner"}, "rapp-p-1": {"Patient"}, "rapp-p-2": {"Patient"}, "rapp-p-3": {"Patient"},
	} {
		for _, rt := range []string{"Patient", "Practitioner", "Location", "Organization"} {
			want := 0
			for _, k := range kinds {
				if k == rt {
					want = 1
				}
			}
			assert.Len(t, byDocID(rt, id), want, "%s as %s", id, rt)
		}
	}

	// Every reference of what was written resolves on the server.
	var written []json.RawMessage
	for _, rt := range []string{"Patient", "Practitioner", "Location", "Organization", "Encounter", "Observation"} {
		written = append(written, search(rt, "_tag="+url.QueryEscape(sys.Source+"|cht")+"&identifier:missing=false&_lastUpdated=ge"+
			time.Now().Add(-10*time.Minute).UTC().Format("2006-01-02T15:04:05Z"))...)
	}
	refs := 0
	for _, res := range written {
		if !strings.Contains(string(res), instance) {
			continue // another run's resource
		}
		var tree any
		require.NoError(t, json.Unmarshal(res, &tree))
		walkRefs(tree, func(r map[string]any) {
			refs++
			if lit, ok := r["reference"].(string); ok {
				assert.Equal(t, http.StatusOK, get(lit, nil), "reference %s resolves", lit)
				return
			}
			id := r["identifier"].(map[string]any)
			found := search(r["type"].(string), "identifier="+url.QueryEscape(id["system"].(string)+"|"+id["value"].(string)))
			assert.Len(t, found, 1, "logical reference %v resolves to one resource", r)
		})
	}
	assert.Greater(t, refs, 10, "references checked")

	// Converted back from what the server holds.
	for _, id := range []string{"rapp-r-assessment", "rapp-r-danger", "rapp-r-hw"} {
		encs := byDocID("Encounter", id)
		require.Len(t, encs, 1, id)
		enc, err := models.UnmarshalEncounter(encs[0])
		require.NoError(t, err)
		var obs []models.Observation
		for _, raw := range search("Observation", "encounter=Encounter/"+*enc.Id) {
			o, err := models.UnmarshalObservation(raw)
			require.NoError(t, err)
			obs = append(obs, o)
		}
		var locs []*models.Location
		for _, l := range enc.Location {
			if l.Location.Reference == nil {
				continue
			}
			var loc models.Location
			require.Equal(t, http.StatusOK, get(*l.Location.Reference, &loc))
			locs = append(locs, &loc)
		}
		rec, err := conv.SubmissionFromObservations("", &enc, obs, nil, locs...)
		require.NoError(t, err, id)
		var r cht.Report
		rawDoc, _ := chtSrv.Doc(id)
		require.NoError(t, json.Unmarshal(rawDoc, &r))
		fm, _ := fhir.DefaultMapping().Form(r.Form)
		n := 0
		for _, f := range fm.Fields {
			if v, ok := r.Fields.Field(f.Path); ok {
				n++
				assert.Equal(t, keptE2E(f, v), keptE2E(f, rec.Fields[f.Path]), "%s %s", id, f.Path)
			}
		}
		assert.Len(t, obs, n, "%s: one Observation per mapped field", id)
		assert.Equal(t, r.From, rec.From, id)
		assert.Equal(t, int64(r.ReportedDate), rec.ReportedDate.UnixMilli(), id)
		// The push was hydrated: CHT resolved a shortcode to the person,
		// whose _id the subject then carries.
		hyd, _ := chtSrv.HydratedDoc(id)
		subj := hyd["patient"].(map[string]any)["_id"]
		assert.Equal(t, subj, rec.Fields["patient_uuid"], "%s subject", id)
		if r.Geolocation != nil {
			require.NotNil(t, rec.Geolocation, id)
			assert.Equal(t, *r.Geolocation.Latitude, *rec.Geolocation.Latitude, id)
			assert.Equal(t, *r.Geolocation.Longitude, *rec.Geolocation.Longitude, id)
		}
	}
	pats := byDocID("Patient", "rapp-p-1")
	require.Len(t, pats, 1)
	p, err := models.UnmarshalPatient(pats[0])
	require.NoError(t, err)
	person, err := conv.PersonFromPatient(&p)
	require.NoError(t, err)
	assert.Equal(t, []string{"rapp-p-1", "Grace Achieng", "female", "1995-07-21", "+254700000001", "+254733000001", "13985", "UPI-0042"},
		[]string{person.ID, person.Name, person.Sex, person.DateOfBirth, person.Phone, person.PhoneAlternate, person.PatientID, person.ExternalID})
	locsHH := byDocID("Location", "rapp-hh-1")
	require.Len(t, locsHH, 1)
	l, err := models.UnmarshalLocation(locsHH[0])
	require.NoError(t, err)
	place, err := conv.PlaceFromLocation(&l)
	require.NoError(t, err)
	assert.Equal(t, "c_household", place.TypeID())
	assert.Equal(t, "rapp-hc-1", place.ParentID())
	require.NotNil(t, place.Geolocation)
	assert.Equal(t, -0.17, *place.Geolocation.Latitude)
}

// walkRefs calls f on every Reference (an object with a reference or an
// identifier and a type) in tree.
func walkRefs(tree any, f func(map[string]any)) {
	switch v := tree.(type) {
	case map[string]any:
		_, hasRef := v["reference"]
		_, hasType := v["type"].(string)
		_, hasIdent := v["identifier"].(map[string]any)
		if hasRef || (hasType && hasIdent) {
			f(v)
			return
		}
		for _, c := range v {
			walkRefs(c, f)
		}
	case []any:
		for _, c := range v {
			walkRefs(c, f)
		}
	}
}

// keptE2E is a value as FHIR keeps it (docs/mappings.md, "Lost by design").
func keptE2E(f fhir.FieldMapping, v any) string {
	s := fmt.Sprint(v)
	switch f.Type {
	case "quantity", "decimal", "integer":
		var x float64
		if _, err := fmt.Sscan(s, &x); err == nil {
			return fmt.Sprint(x)
		}
	case "boolean":
		if f.TrueValue == "" {
			switch s {
			case "yes":
				return "true"
			case "no":
				return "false"
			}
		}
	}
	return s
}
