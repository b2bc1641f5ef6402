package chttofhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/examples/cht-to-fhir/chttofhir"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// rig is a CHT → mediator → FHIR pipeline of fakes.
type rig struct {
	cht    *chttest.Server
	fhir   *fhirtest.Server
	med    *httptest.Server
	pusher *chttest.OutboundPusher
}

func newRig(t *testing.T, withCHTClient bool) *rig {
	t.Helper()
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)

	mapping, err := chttofhir.DefaultMapping()
	require.NoError(t, err)
	conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: mapping})
	require.NoError(t, err)

	cfg := chttofhir.Config{Converter: conv, FHIRURL: fhirSrv.URL, HTTPClient: fhirSrv.Client()}
	if withCHTClient {
		c, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername,
			Password: cht.Password(chttest.AdminPassword), MaxRetries: -1,
			// Recording the CHT calls makes them orchestrations too.
			HTTPClient: &http.Client{Transport: mediator.Transport(chtSrv.Client().Transport)}})
		require.NoError(t, err)
		cfg.CHT = c
	}
	bridge, err := chttofhir.New(cfg)
	require.NoError(t, err)
	h, err := bridge.Handler()
	require.NoError(t, err)
	m, err := mediator.New(mediator.Config{Definition: chttofhir.Definition("127.0.0.1", 8601), Handler: h})
	require.NoError(t, err)
	med := httptest.NewServer(m)
	t.Cleanup(med.Close)

	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{
		Name:    "cht_to_fhir",
		URL:     med.URL + chttofhir.OutboundPath,
		Mapping: map[string]any{"doc": "doc"},
		Server:  chtSrv,
	})
	require.NoError(t, err)
	return &rig{cht: chtSrv, fhir: fhirSrv, med: med, pusher: pusher}
}

// hydrated is the document as CHT's outbound evaluates it.
func (r *rig) hydrated(t *testing.T, id string) map[string]any {
	t.Helper()
	doc, ok := r.cht.HydratedDoc(id)
	require.True(t, ok, "demo doc %s", id)
	return doc
}

func TestPushReportWritesEncounterAndObservationsOnce(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()

	att, err := r.pusher.Push(ctx, r.hydrated(t, chttest.DemoHeightWeightReportID))
	require.NoError(t, err)
	require.Equal(t, chttest.OutcomeSent, att.Outcome, "status %d: %s", att.StatusCode, att.Response)
	assert.Equal(t, http.StatusOK, att.StatusCode)

	assert.Equal(t, 1, r.fhir.Count("Encounter"))
	assert.Equal(t, 2, r.fhir.Count("Observation"), "height and weight")
	assert.Equal(t, 1, r.fhir.Count("Patient"), "the hydrated patient")
	patients := r.fhir.Resources("Patient")
	assert.Contains(t, string(patients[0]), chttest.DemoPatientID)

	// CHT pushes again (e.g. after an edit that did not change the payload,
	// or a lost answer): the same payload posted a second time.
	before := r.fhir.Counts()
	resp := postJSON(t, r.med.URL+chttofhir.OutboundPath, att.Payload)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, before, r.fhir.Counts(), "a repeated push creates no duplicates")
}

func TestAnswerIsAnOpenHIMEnvelopeWithOrchestrations(t *testing.T) {
	r := newRig(t, false)
	payload, err := json.Marshal(map[string]any{"doc": r.hydrated(t, chttest.DemoHeightWeightReportID)})
	require.NoError(t, err)
	resp := postJSON(t, r.med.URL+chttofhir.OutboundPath, payload)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, mediator.ContentType, strings.Split(resp.Header.Get("Content-Type"), ";")[0])

	env, err := mediator.ParseEnvelope(readAll(t, resp))
	require.NoError(t, err)
	assert.Equal(t, chttofhir.URN, env.MediatorURN)
	assert.Equal(t, mediator.StatusSuccessful, env.Status)
	require.Len(t, env.Orchestrations, 1)
	o := env.Orchestrations[0]
	assert.Equal(t, "FHIR transaction", o.Name)
	assert.Equal(t, http.MethodPost, o.Request.Method)
	assert.Equal(t, http.StatusOK, o.Response.Status)
	assert.Contains(t, o.Request.Body, `"transaction"`)
}

func TestFHIRFailureAnswersNon2xxAndTheRetryCreatesNoDuplicates(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	doc := r.hydrated(t, chttest.DemoHeightWeightReportID)

	r.fhir.FailNextWrites(1, http.StatusServiceUnavailable)
	att, err := r.pusher.Push(ctx, doc)
	require.Error(t, err, "the push must fail while the FHIR server fails")
	assert.Equal(t, chttest.OutcomeFailed, att.Outcome)
	assert.GreaterOrEqual(t, att.StatusCode, 500)
	assert.Equal(t, 0, r.fhir.Count("Encounter"), "nothing written")
	assert.Equal(t, []string{chttest.DemoHeightWeightReportID}, r.pusher.Queue(), "CHT queues the push for a retry")

	// A lost answer: the server stores the bundle but the mediator never hears back.
	require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{LostResponseRate: 1, Hang: 1}))
	_ = r.pusher.RunQueue(ctx)
	require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{}))
	assert.Equal(t, 1, r.fhir.Count("Encounter"), "stored despite the lost answer")

	require.NoError(t, r.pusher.RunQueue(ctx))
	assert.Empty(t, r.pusher.Queue(), "the retry succeeded")
	assert.Equal(t, 1, r.fhir.Count("Encounter"))
	assert.Equal(t, 2, r.fhir.Count("Observation"))
}

func TestPushOfAReferenceIsResolvedThroughCHT(t *testing.T) {
	r := newRig(t, true)
	// The push only names the report; the bridge hydrates it through CHT.
	payload := []byte(`{"id":"` + chttest.DemoHeightWeightReportID + `"}`)
	resp := postJSON(t, r.med.URL+chttofhir.OutboundPath, payload)
	body := readAll(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, 1, r.fhir.Count("Encounter"))
	assert.Equal(t, 2, r.fhir.Count("Observation"))

	env, err := mediator.ParseEnvelope(body)
	require.NoError(t, err)
	names := make([]string, 0, len(env.Orchestrations))
	for _, o := range env.Orchestrations {
		names = append(names, o.Name)
	}
	assert.Equal(t, []string{"CHT hydrate", "FHIR transaction"}, names)
}

func TestPushOfAPersonWritesAPatient(t *testing.T) {
	r := newRig(t, false)
	att, err := r.pusher.Push(context.Background(), r.hydrated(t, chttest.DemoPatientID))
	require.NoError(t, err, "%s", att.Response)
	assert.Equal(t, 1, r.fhir.Count("Patient"))
	found, err := r.fhir.Search("Patient", "identifier="+chttest.DemoPatientID)
	require.NoError(t, err)
	assert.Len(t, found, 1, "the Patient carries the CHT _id as identifier")
}

func TestBadPushes(t *testing.T) {
	r := newRig(t, false)
	unmapped := r.hydrated(t, chttest.DemoHeightWeightReportID)
	unmapped["form"] = "NOT_MAPPED"
	unmappedBody, err := json.Marshal(map[string]any{"doc": unmapped})
	require.NoError(t, err)

	tests := []struct {
		name   string
		path   string
		ctype  string
		body   string
		status int
		want   string
	}{
		{"malformed JSON", chttofhir.OutboundPath, "application/json", `{"doc":`, http.StatusBadRequest, "JSON"},
		{"wrong content type", chttofhir.OutboundPath, "text/plain", `{}`, http.StatusUnsupportedMediaType, ""},
		{"reference without CHT access", chttofhir.OutboundPath, "application/json", `{"id":"abc"}`, http.StatusBadRequest, "no document"},
		{"unmapped form", chttofhir.OutboundPath, "application/json", string(unmappedBody), http.StatusUnprocessableEntity, "NOT_MAPPED"},
		{"encounter payload without observations field types", chttofhir.EncounterPath, "application/json", `{"id": 5}`, http.StatusBadRequest, "id"},
		{"encounter payload wrong content type", chttofhir.EncounterPath, "text/csv", `a,b`, http.StatusUnsupportedMediaType, "text/csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, r.med.URL+tt.path, strings.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", tt.ctype)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body := readAll(t, resp)
			assert.Equal(t, tt.status, resp.StatusCode, "%s", body)
			assert.Contains(t, string(body), tt.want)
		})
	}
	assert.Equal(t, 0, r.fhir.Count("Encounter"), "nothing written for bad pushes")
}

func TestEncounterPayload(t *testing.T) {
	r := newRig(t, false)
	payload, err := os.ReadFile("testdata/encounter-payload.json")
	require.NoError(t, err)
	for range 2 {
		resp := postJSON(t, r.med.URL+chttofhir.EncounterPath, payload)
		body := readAll(t, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	}
	assert.Equal(t, 1, r.fhir.Count("Encounter"), "posted twice, stored once")
	assert.Equal(t, 3, r.fhir.Count("Observation"))
}

func postJSON(t *testing.T, url string, body []byte) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	return resp
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// TestPartialTransactionIsAFailure: a 200 whose entries are not all 2xx
// (a proxy, or a server that does not apply transactions atomically) must
// not be acknowledged to CHT.
func TestPartialTransactionIsAFailure(t *testing.T) {
	answers := []struct {
		name string
		body string
	}{
		{"an entry failed", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}},{"response":{"status":"400 Bad Request"}}]}`},
		{"entries missing", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}}]}`},
		{"not a transaction-response", `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}`},
	}
	for _, a := range answers {
		t.Run(a.name, func(t *testing.T) {
			fhirSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/fhir+json")
				_, _ = io.WriteString(w, a.body)
			}))
			defer fhirSrv.Close()
			mapping, err := chttofhir.DefaultMapping()
			require.NoError(t, err)
			conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: mapping})
			require.NoError(t, err)
			bridge, err := chttofhir.New(chttofhir.Config{Converter: conv, FHIRURL: fhirSrv.URL})
			require.NoError(t, err)
			chtSrv := chttest.NewDemoServer()
			defer chtSrv.Close()
			doc, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
			require.True(t, ok)
			body, err := json.Marshal(map[string]any{"doc": doc})
			require.NoError(t, err)
			p := &cht.OutboundPayload{Body: body}
			require.NoError(t, json.Unmarshal(body, &struct {
				Doc *json.RawMessage `json:"doc"`
			}{&p.Doc}))
			p.ID = chttest.DemoHeightWeightReportID

			err = bridge.HandlePush(context.Background(), p)
			require.Error(t, err, "acknowledged a transaction the server did not apply in full")
			var te *fhir.TransactionError
			assert.ErrorAs(t, err, &te)
		})
	}
}
