package push_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// rig is a CHT → push handler → FHIR pipeline of fakes.
type rig struct {
	cht    *chttest.Server
	fhir   *fhirtest.Server
	srv    *httptest.Server
	pusher *chttest.OutboundPusher
	calls  *namedCalls
	// pending serves the pushes when rigOptions.refresh is set.
	pending *push.Pending
}

// namedCalls records the name Config.Orchestrate gave each outgoing call,
// as mediator.Transport would.
type namedCalls struct {
	mu    sync.Mutex
	names []string
	next  http.RoundTripper
}

type nameKey struct{}

func (n *namedCalls) RoundTrip(r *http.Request) (*http.Response, error) {
	name, _ := r.Context().Value(nameKey{}).(string)
	n.mu.Lock()
	n.names = append(n.names, name)
	n.mu.Unlock()
	return n.next.RoundTrip(r)
}

func (n *namedCalls) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.names
	n.names = nil
	return out
}

func converter(t *testing.T) *fhir.Converter {
	t.Helper()
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: "https://cht.example.org", Mapping: fhir.DefaultMapping()})
	require.NoError(t, err)
	return conv
}

func newRig(t *testing.T, withCHTClient bool) *rig {
	t.Helper()
	return newRigWith(t, withCHTClient, converter(t))
}

// newRigWith is newRig with the converter conv.
func newRigWith(t *testing.T, withCHTClient bool, conv *fhir.Converter) *rig {
	t.Helper()
	return newRigOpts(t, rigOptions{withCHT: withCHTClient, conv: conv})
}

// rigOptions shape the pipeline newRigOpts builds.
type rigOptions struct {
	withCHT bool            // give the handler a CHT client
	conv    *fhir.Converter // nil: converter(t)
	timeout time.Duration   // push.Config.Timeout; 0: its default
	// fhirWrap and chtWrap, when set, wrap the transport of the FHIR
	// and of the CHT client (outside the one that records names).
	fhirWrap, chtWrap func(http.RoundTripper) http.RoundTripper
	// refresh, when set, serves a push.Pending (as examples/cht-to-fhir
	// does) that reads the contact types through the CHT client (implies
	// withCHT) and reads them again after refresh; conv is not used.
	refresh time.Duration
}

func newRigOpts(t *testing.T, o rigOptions) *rig {
	t.Helper()
	if o.conv == nil {
		o.conv = converter(t)
	}
	wrap := func(w func(http.RoundTripper) http.RoundTripper, rt http.RoundTripper) http.RoundTripper {
		if w == nil {
			return rt
		}
		return w(rt)
	}
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	calls := &namedCalls{next: http.DefaultTransport}

	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1, HTTPClient: &http.Client{Transport: wrap(o.fhirWrap, calls)}})
	require.NoError(t, err)
	cfg := push.Config{Converter: o.conv, FHIR: fc, Timeout: o.timeout,
		Orchestrate: func(ctx context.Context, name string) context.Context { return context.WithValue(ctx, nameKey{}, name) }}
	if o.withCHT || o.refresh > 0 {
		c, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername,
			Password: chttest.AdminPassword, MaxRetries: -1, HTTPClient: &http.Client{Transport: wrap(o.chtWrap, calls)}})
		require.NoError(t, err)
		cfg.CHT = c
	}
	var h http.Handler
	var pending *push.Pending
	if o.refresh > 0 {
		var err error
		pending, err = push.NewPending(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: fhir.DefaultMapping()}, cfg)
		require.NoError(t, err)
		push.SetPendingIntervals(pending, time.Millisecond, o.refresh)
		h = pending
	} else {
		var err error
		h, err = push.New(cfg)
		require.NoError(t, err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{
		Name:    "cht_to_fhir",
		URL:     srv.URL + push.OutboundPath,
		Mapping: map[string]any{"doc": "doc"},
		Server:  chtSrv,
	})
	require.NoError(t, err)
	return &rig{cht: chtSrv, fhir: fhirSrv, srv: srv, pusher: pusher, calls: calls, pending: pending}
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
	assert.Equal(t, []string{"FHIR transaction"}, r.calls.take())

	// CHT pushes again (after a lost answer): the same payload a second time.
	before := r.fhir.Counts()
	resp := postJSON(t, r.srv.URL+push.OutboundPath, att.Payload)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, before, r.fhir.Counts(), "a repeated push creates no duplicates")
}

func TestFHIRFailureAnswers502AndTheRetryCreatesNoDuplicates(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	doc := r.hydrated(t, chttest.DemoHeightWeightReportID)

	r.fhir.FailNextWrites(1, http.StatusServiceUnavailable)
	att, err := r.pusher.Push(ctx, doc)
	require.Error(t, err, "the push must fail while the FHIR server fails")
	assert.Equal(t, chttest.OutcomeFailed, att.Outcome)
	assert.Equal(t, http.StatusBadGateway, att.StatusCode, "an upstream failure is a 502")
	assert.Equal(t, 0, r.fhir.Count("Encounter"), "nothing written")
	assert.Equal(t, []string{chttest.DemoHeightWeightReportID}, r.pusher.Queue(), "CHT queues the push for a retry")

	// A lost answer: the server stores the bundle but the handler never hears back.
	require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{LostResponseRate: 1, Hang: 1}))
	_ = r.pusher.RunQueue(ctx)
	require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{}))
	assert.Equal(t, 1, r.fhir.Count("Encounter"), "stored despite the lost answer")

	require.NoError(t, r.pusher.RunQueue(ctx))
	assert.Empty(t, r.pusher.Queue(), "the retry succeeded")
	assert.Equal(t, 1, r.fhir.Count("Encounter"))
	assert.Equal(t, 2, r.fhir.Count("Observation"))
}

// Push returns the FHIR server's failure as a *fhir.ServerError (not a CHT
// type); only the HTTP answer maps it to a status.
func TestPushReturnsTheServerError(t *testing.T) {
	r := newRig(t, false)
	h := newHandler(t, r.fhir.URL, false)
	r.fhir.FailNextWrites(1, http.StatusUnprocessableEntity)
	err := h.Push(context.Background(), payload(t, r.hydrated(t, chttest.DemoHeightWeightReportID)))
	var se *fhir.ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusUnprocessableEntity, se.StatusCode)
	var oe *outbound.Error
	assert.False(t, errors.As(err, &oe), "no CHT type in a FHIR failure")
}

func TestPushOfAReferenceIsResolvedThroughCHT(t *testing.T) {
	r := newRig(t, true)
	// The push only names the report; the handler hydrates it through CHT.
	resp := postJSON(t, r.srv.URL+push.OutboundPath, []byte(`{"id":"`+chttest.DemoHeightWeightReportID+`"}`))
	body := readAll(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, 1, r.fhir.Count("Encounter"))
	assert.Equal(t, 2, r.fhir.Count("Observation"))
	assert.Equal(t, []string{"CHT hydrate", "FHIR transaction"}, r.calls.take())
}

// A report is hydrated through CHT only when it arrived as stored. CHT
// hydrates the submitter, the patient and the place in one pass
// (shared-libs/lineage/src/hydration.js hydrateDocs, mergeLineagesIntoDoc),
// so a hydrated report about a place, or about a shortcode no contact has,
// has no patient and yet is complete: hydrating it again would only make
// the push fail while CHT's API is unreachable.
func TestOnlyStoredReportsAreHydratedThroughCHT(t *testing.T) {
	report := func(id string, fields map[string]any) map[string]any {
		return map[string]any{"_id": id, "type": "data_record", "form": "HEIGHT_WEIGHT", "reported_date": 1730355950419,
			"fields": fields, "contact": map[string]any{"_id": chttest.DemoCHWID}}
	}
	tests := []struct {
		name    string
		doc     map[string]any
		stored  bool // push the document as stored, not as CHT hydrates it
		hydrate bool // whether the handler calls CHT
	}{
		{"hydrated, about a person", report("r-person", map[string]any{"patient_uuid": chttest.DemoPatientID, "weight": 65}), false, false},
		{"hydrated, about a place", report("r-place", map[string]any{"place_id": chttest.DemoHouseholdID, "weight": 65}), false, false},
		{"hydrated, about a shortcode no contact has", report("r-nobody", map[string]any{"patient_id": "00000", "weight": 65}), false, false},
		{"stored, about a person", report("r-person", map[string]any{"patient_uuid": chttest.DemoPatientID, "weight": 65}), true, true},
		{"stored, about a place", report("r-place", map[string]any{"place_id": chttest.DemoHouseholdID, "weight": 65}), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, true)
			_, err := r.cht.PutDoc(tt.doc)
			require.NoError(t, err)
			doc := tt.doc
			if !tt.stored {
				doc = r.hydrated(t, tt.doc["_id"].(string))
				require.NotNil(t, doc["contact"].(map[string]any)["name"], "CHT hydrated the submitter")
			}
			r.calls.take()
			body, err := json.Marshal(map[string]any{"doc": doc})
			require.NoError(t, err)
			resp := postJSON(t, r.srv.URL+push.OutboundPath, body)
			answer := readAll(t, resp)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", answer)
			want := []string{"FHIR transaction"}
			if tt.hydrate {
				want = []string{"CHT hydrate", "FHIR transaction"}
			}
			assert.Equal(t, want, r.calls.take())
			assert.Equal(t, 1, r.fhir.Count("Encounter"))
		})
	}
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
	badDate := r.hydrated(t, chttest.DemoPatientID)
	badDate["date_of_birth"] = "31/12/1990"
	badDateBody, err := json.Marshal(map[string]any{"doc": badDate})
	require.NoError(t, err)

	tests := []struct {
		name   string
		path   string
		ctype  string
		body   string
		status int
		want   string
		hide   string // personal data the answer must not repeat
	}{
		{"malformed JSON", push.OutboundPath, "application/json", `{"doc":`, http.StatusBadRequest, "JSON", ""},
		{"wrong content type", push.OutboundPath, "text/plain", `{}`, http.StatusUnsupportedMediaType, "", ""},
		{"reference without CHT access", push.OutboundPath, "application/json", `{"id":"abc"}`, http.StatusBadRequest, "no document", ""},
		{"unmapped form", push.OutboundPath, "application/json", string(unmappedBody), http.StatusUnprocessableEntity, "NOT_MAPPED", ""},
		{"a date of birth that is no date", push.OutboundPath, "application/json", string(badDateBody), http.StatusUnprocessableEntity,
			`field \"date_of_birth\": not a date`, "31/12/1990"},
		{"encounter payload with a wrong id type", push.EncounterPath, "application/json", `{"id": 5}`, http.StatusBadRequest, "id", ""},
		{"encounter payload wrong content type", push.EncounterPath, "text/csv", `a,b`, http.StatusUnsupportedMediaType, "text/csv", ""},
		{"GET", push.OutboundPath, "", ``, http.StatusMethodNotAllowed, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodPost
			if tt.name == "GET" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, r.srv.URL+tt.path, strings.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", tt.ctype)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body := readAll(t, resp)
			assert.Equal(t, tt.status, resp.StatusCode, "%s", body)
			assert.Contains(t, string(body), tt.want)
			if tt.hide != "" {
				assert.NotContains(t, string(body), tt.hide)
			}
		})
	}
	assert.Equal(t, 0, r.fhir.Count("Encounter"), "nothing written for bad pushes")
}

// A push or an encounter payload with a Content-Encoding other than
// identity is answered 415 with a JSON error naming the header and its
// value, before the body is read (not a 400 about malformed JSON), and
// nothing is written; identity is a plain body.
func TestEncodedBodiesAreRefused(t *testing.T) {
	r := newRig(t, false)
	encounter, err := os.ReadFile("testdata/encounter-payload.json")
	require.NoError(t, err)
	pushBody, err := json.Marshal(map[string]any{"doc": r.hydrated(t, chttest.DemoPatientID)})
	require.NoError(t, err)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, err := zw.Write(b)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		return buf.Bytes()
	}
	tests := []struct {
		name, path, coding string
		body               []byte
		want               string // in the 415 error; "" for a plain body, answered 200
	}{
		{"gzip push", push.OutboundPath, "gzip", gz(pushBody), `Content-Encoding \"gzip\"`},
		{"gzip encounter payload", push.EncounterPath, "gzip", gz(encounter), `Content-Encoding \"gzip\"`},
		{"br encounter payload", push.EncounterPath, "br", []byte{0x1b}, `Content-Encoding \"br\"`},
		{"deflate after identity", push.EncounterPath, "identity,deflate", []byte{0x78, 0x9c}, `\"identity,deflate\"`},
		// after the encoded ones, so that nothing was written before
		{"identity push", push.OutboundPath, " Identity", pushBody, ""},
		{"identity encounter payload", push.EncounterPath, "identity", encounter, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, r.srv.URL+tt.path, bytes.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Encoding", tt.coding)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body := readAll(t, resp)
			if tt.want == "" {
				assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
				return
			}
			assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode, "%s", body)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			assert.Contains(t, string(body), tt.want)
			assert.Empty(t, r.fhir.Counts(), "nothing written for encoded bodies")
		})
	}
}

func TestSkipUnmappedFormsAnswers200(t *testing.T) {
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	defer fhirSrv.Close()
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: converter(t), FHIR: fc, SkipUnmappedForms: true})
	require.NoError(t, err)
	err = h.Push(context.Background(), payload(t, map[string]any{"_id": "r1", "type": "data_record", "form": "NOT_MAPPED", "reported_date": 1700000000000}))
	require.NoError(t, err)
	assert.Empty(t, fhirSrv.Counts())
}

func TestEncounterPayload(t *testing.T) {
	r := newRig(t, false)
	data, err := os.ReadFile("testdata/encounter-payload.json")
	require.NoError(t, err)
	for range 2 {
		resp := postJSON(t, r.srv.URL+push.EncounterPath, data)
		body := readAll(t, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		assert.JSONEq(t, `{"status":"written"}`, string(body))
	}
	assert.Equal(t, 1, r.fhir.Count("Encounter"), "posted twice, stored once")
	assert.Equal(t, 3, r.fhir.Count("Observation"))
}

// An encounter payload the FHIR server refuses is a 502 (the upstream
// failed), not a 500.
func TestEncounterPayloadFHIRFailureIs502(t *testing.T) {
	r := newRig(t, false)
	data, err := os.ReadFile("testdata/encounter-payload.json")
	require.NoError(t, err)
	r.fhir.FailNextWrites(1, http.StatusInternalServerError)
	resp := postJSON(t, r.srv.URL+push.EncounterPath, data)
	body := readAll(t, resp)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "%s", body)
}

// The transaction of a 10,000-observation encounter is stored and answered
// 200: the FHIR server's large answer is checked in full, not cut short and
// mistaken for a failure that makes the sender retry forever.
func TestLargeEncounterIsASuccess(t *testing.T) {
	// 5,000 observations answered in full come to about 10.5 MB, past the 8 MiB
	// a cut-off reader would stop at, and still convert within the handler's
	// deadline under -race on a busy machine.
	const n = 5000
	var b strings.Builder
	b.WriteString(`{"id":"442b0937-a32f-443e-8d28-7d9a7552fda3","patient_uuid":"75905106a4bc2a9046ed28df070016ce","reported_date":1730355950419,"observations":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"code":"weight","valueQuantity":{"value":62.4,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`)
	}
	b.WriteString(`]}`)
	// A server that returns each resource in full (ignoring
	// Prefer: return=minimal): an answer of about 20 MB.
	pad := strings.Repeat("x", 2000)
	fhirSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Entry []json.RawMessage }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			w.WriteHeader(400)
			return
		}
		io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[`)
		for i := range in.Entry {
			if i > 0 {
				io.WriteString(w, ",")
			}
			io.WriteString(w, `{"resource":{"resourceType":"Observation","note":[{"text":"`+pad+`"}]},"response":{"status":"201 Created"}}`)
		}
		io.WriteString(w, `]}`)
	}))
	defer fhirSrv.Close()
	h := newHandler(t, fhirSrv.URL, false)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp := postJSON(t, srv.URL+push.EncounterPath, []byte(b.String()))
	body := readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%.300s", body)
}

// A 200 whose entries are not all 2xx (a proxy, or a server that does not
// apply transactions atomically) is not acknowledged to CHT.
func TestPartialTransactionIsAFailure(t *testing.T) {
	answers := []struct {
		name string
		body string
	}{
		{"an entry failed", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}},{"response":{"status":"400 Bad Request"}}]}`},
		{"entries missing", `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}}]}`},
		{"not a transaction-response", `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}`},
	}
	chtSrv := chttest.NewDemoServer()
	defer chtSrv.Close()
	doc, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	for _, a := range answers {
		t.Run(a.name, func(t *testing.T) {
			fhirSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/fhir+json")
				_, _ = io.WriteString(w, a.body)
			}))
			defer fhirSrv.Close()
			err := newHandler(t, fhirSrv.URL, false).Push(context.Background(), payload(t, doc))
			require.Error(t, err, "acknowledged a transaction the server did not apply in full")
			var se *fhir.ServerError
			assert.ErrorAs(t, err, &se)
		})
	}
}

func newHandler(t *testing.T, fhirURL string, skip bool) *push.Handler {
	t.Helper()
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirURL, MaxRetries: -1})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: converter(t), FHIR: fc, SkipUnmappedForms: skip})
	require.NoError(t, err)
	return h
}

// payload is the outbound payload {"doc": doc} as CHT sends it.
func payload(t *testing.T, doc map[string]any) *outbound.Payload {
	t.Helper()
	body, err := json.Marshal(map[string]any{"doc": doc})
	require.NoError(t, err)
	p := &outbound.Payload{Body: body}
	require.NoError(t, json.Unmarshal(body, &struct {
		Doc *json.RawMessage `json:"doc"`
	}{&p.Doc}))
	p.ID, _ = doc["_id"].(string)
	return p
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

// TestFollowUpWithoutItsRequestIsWrittenWithAWarning: a follow-up report
// that names no Task and no ServiceRequest (of a CHT task raised without
// them, before fhir-to-cht refused a ServiceRequest without an id), or whose
// Task, or the ServiceRequest its Task is based on, the FHIR server no
// longer has (410 Gone for a deleted resource on HAPI, BaseHapiFhirResourceDao
// read; 404 for one it never had, or on a server that keeps no record of
// deletions: R4 http.html#read) is answered 200 with a warning naming the
// field and the gone resource, and its Encounter is written without a
// reference to what is gone. Any failure would stay in CHT's outbound queue
// for good: Sentinel sends a failed push again every 5 minutes, without end
// (cht-core shared-libs/outbound/src/outbound.js send, sentinel/src/schedule/outbound.js),
// and the visit would never reach FHIR.
func TestFollowUpWithoutItsRequestIsWrittenWithAWarning(t *testing.T) {
	m := fhir.DefaultMapping()
	for i := range m.Forms {
		if m.Forms[i].Form == "interop_follow_up" {
			m.Forms[i].FollowUp = &fhir.FollowUp{Task: "inputs.fhir_task", Outcome: "follow_up.outcome", Done: []string{"met"},
				CompleteRequest: true}
		}
	}
	require.NoError(t, m.Validate())
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: "https://cht.example.org", Mapping: m})
	require.NoError(t, err)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{Gone: true})
	t.Cleanup(fhirSrv.Close)
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: conv, FHIR: fc})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx := t.Context()
	require.NoError(t, fc.Update(ctx, "ServiceRequest", "sr-gone", map[string]any{"resourceType": "ServiceRequest", "id": "sr-gone",
		"status": "active", "intent": "order", "subject": map[string]any{"reference": "Patient/p"}}, nil))
	require.NoError(t, fc.Update(ctx, "Task", "t-kept", map[string]any{"resourceType": "Task", "id": "t-kept", "status": "requested",
		"intent": "order", "basedOn": []any{map[string]any{"reference": "ServiceRequest/sr-gone"}}}, nil))
	require.NoError(t, fc.Update(ctx, "Task", "t-gone", map[string]any{"resourceType": "Task", "id": "t-gone", "status": "requested",
		"intent": "order"}, nil))
	require.NoError(t, fc.Delete(ctx, "ServiceRequest", "sr-gone"))
	require.NoError(t, fc.Delete(ctx, "Task", "t-gone"))

	for _, tt := range []struct {
		name, doc, task string
		gone            string // in the warning's reason
		taskStatus      string // of the Task t-kept after the push; "" when not read
	}{
		{"a Task the server never had (404)", "r-never", "no-such-task", "Task/no-such-task", ""},
		{"a deleted Task (410)", "r-deleted", "t-gone", "Task/t-gone", ""},
		{"the Task's ServiceRequest deleted (410)", "r-sr-gone", "t-kept", "ServiceRequest/sr-gone", "completed"},
		{"a report naming no request", "r-none", "", "names no Task and no ServiceRequest", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"doc":{"_id":"` + tt.doc + `","type":"data_record","form":"interop_follow_up","reported_date":1700000000000,
			  "fields":{"patient_uuid":"` + chttest.DemoPatientID + `","inputs":{"fhir_task":"` + tt.task + `"},"follow_up":{"outcome":"met"}}}}`
			for range 2 { // a replay answers the same
				resp, err := http.Post(srv.URL+push.OutboundPath, "application/json", strings.NewReader(body))
				require.NoError(t, err)
				b := readAll(t, resp)
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
				var answer struct {
					OK       bool `json:"ok"`
					Warnings []struct{ Doc, Field, Reason string }
				}
				require.NoError(t, json.Unmarshal(b, &answer), "%s", b)
				require.Len(t, answer.Warnings, 1, "%s", b)
				w := answer.Warnings[0]
				assert.Equal(t, tt.doc, w.Doc)
				assert.Equal(t, "fields.inputs.fhir_task", w.Field)
				assert.Contains(t, w.Reason, tt.gone)
			}
			var encs []json.RawMessage
			for _, e := range fhirSrv.Resources("Encounter") {
				if strings.Contains(string(e), `"value":"`+tt.doc+`"`) {
					encs = append(encs, e)
				}
			}
			require.Len(t, encs, 1, "the follow-up's Encounter is written once")
			assert.NotContains(t, string(encs[0]), "basedOn", "no reference to what is gone")
			if tt.taskStatus != "" {
				task, ok := fhirSrv.Resource("Task", "t-kept")
				require.True(t, ok)
				assert.Contains(t, string(task), `"status":"`+tt.taskStatus+`"`)
			}
		})
	}
}
