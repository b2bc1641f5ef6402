package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// e2eServer is a minimal FHIR REST client for the e2e tests.
type e2eServer struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newE2EServer(t *testing.T) *e2eServer {
	t.Helper()
	base := strings.TrimRight(os.Getenv("FHIR_BASE_URL"), "/")
	if base == "" {
		t.Skip("FHIR_BASE_URL not set; start the stack with `bash .ci/stack.sh start`")
	}
	return &e2eServer{t: t, base: base, client: &http.Client{Timeout: 30 * time.Second}}
}

func (s *e2eServer) do(method, path string, body []byte) (int, []byte) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v (is the FHIR server at %s running?)", method, path, err, s.base)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// post posts a transaction and requires every entry to succeed.
func (s *e2eServer) post(tx *fhir.Transaction) {
	s.t.Helper()
	body, err := tx.MarshalJSON()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.fhirClient().Transaction(context.Background(), body); err != nil {
		s.t.Fatal(err)
	}
}

// fhirClient is the library's FHIR client for the server, without retries.
func (s *e2eServer) fhirClient() *fhir.Client {
	s.t.Helper()
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: s.base, HTTPClient: s.client, MaxRetries: -1})
	if err != nil {
		s.t.Fatal(err)
	}
	return fc
}

// search returns the resources of a search.
func (s *e2eServer) search(rt string, q url.Values) []json.RawMessage {
	s.t.Helper()
	q.Set("_count", "1000")
	code, resp := s.do(http.MethodGet, "/"+rt+"?"+q.Encode(), nil)
	if code != http.StatusOK {
		s.t.Fatalf("search %s?%s: HTTP %d: %s", rt, q.Encode(), code, resp)
	}
	var b struct {
		Entry []struct{ Resource json.RawMessage }
	}
	if err := json.Unmarshal(resp, &b); err != nil {
		s.t.Fatal(err)
	}
	out := make([]json.RawMessage, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = e.Resource
	}
	return out
}

// businessKeys returns, per entry, its type and identifier system|value.
func businessKeys(t *testing.T, tx *fhir.Transaction) [][3]string {
	t.Helper()
	var keys [][3]string
	for _, e := range tx.Entries {
		b, err := fhir.Marshal(e.Resource)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			ResourceType string
			Identifier   []struct{ System, Value string }
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, [3]string{r.ResourceType, r.Identifier[0].System, r.Identifier[0].Value})
	}
	return keys
}

func e2eConverter(t *testing.T, strategy fhir.WriteStrategy) *fhir.Converter {
	t.Helper()
	m, err := fhir.LoadMapping("testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A CHT instance URL unique to the test keeps identifier systems (and
	// ids) apart from other tests sharing the server.
	inst := fmt.Sprintf("https://%s-%d.cht.example.org", strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), time.Now().UnixNano())
	c, err := fhir.New(fhir.Config{InstanceURL: inst, Mapping: m, Strategy: strategy})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestE2ETransactionsIdempotent posts the transaction of each cht-api.md §8
// example twice, with each write strategy, and requires exactly one
// resource per business identifier afterwards.
func TestE2ETransactionsIdempotent(t *testing.T) {
	testTransactionsIdempotent(t, newE2EServer(t))
}

// TestTransactionFailureInMemory: a transaction the server rejects is
// reported by Client.Transaction as a *ServerError with the server's status.
func TestTransactionFailureInMemory(t *testing.T) {
	mem := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(mem.Close)
	srv := &e2eServer{t: t, base: mem.URL, client: mem.Client()}
	c := e2eConverter(t, fhir.WritePut)
	var r cht.Report
	readJSON(t, "testdata/report_records_api.json", &r)
	tx, err := c.ReportBundle(&r)
	if err != nil {
		t.Fatal(err)
	}
	body, err := tx.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	mem.FailNextWrites(1, http.StatusServiceUnavailable)
	err = srv.fhirClient().Transaction(context.Background(), body)
	var se *fhir.ServerError
	if !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want a ServerError with HTTP 503", err)
	}
	if n := mem.Count("Observation"); n != 0 {
		t.Errorf("%d Observations stored by a failed transaction", n)
	}
	if err := srv.fhirClient().Transaction(context.Background(), body); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := mem.Count("Observation"); n != 2 {
		t.Errorf("%d Observations after the retry, want 2", n)
	}
}

// TestTransactionsIdempotentInMemory runs the same scenario against the
// in-memory fhirtest server, so it runs without the real one too.
func TestTransactionsIdempotentInMemory(t *testing.T) {
	mem := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(mem.Close)
	testTransactionsIdempotent(t, &e2eServer{t: t, base: mem.URL, client: mem.Client()})
}

func testTransactionsIdempotent(t *testing.T, srv *e2eServer) {
	examples := []struct {
		name  string
		build func(c *fhir.Converter) (*fhir.Transaction, error)
	}{
		{"8.2 patient", func(c *fhir.Converter) (*fhir.Transaction, error) {
			var p cht.Contact
			readJSON(t, "testdata/person_openmrs_example.json", &p)
			return c.ContactBundle(&p)
		}},
		{"8.3 records API report", func(c *fhir.Converter) (*fhir.Transaction, error) {
			var r cht.Report
			readJSON(t, "testdata/report_records_api.json", &r)
			return c.ReportBundle(&r)
		}},
		{"8.3 outbound payload", func(c *fhir.Converter) (*fhir.Transaction, error) {
			b, err := os.ReadFile("../cht/testdata/outbound_encounter.json")
			if err != nil {
				return nil, err
			}
			p, err := fhir.DecodeEncounterPayload(b)
			if err != nil {
				return nil, err
			}
			return c.ConvertPayload(p)
		}},
		{"8.4 LTFU report", func(c *fhir.Converter) (*fhir.Transaction, error) {
			var r cht.Report
			readJSON(t, "testdata/report_ltfu.json", &r)
			return c.ReportBundle(&r)
		}},
		{"hydrated assessment", func(c *fhir.Converter) (*fhir.Transaction, error) {
			var r cht.Report
			readJSON(t, "testdata/report_assessment_hydrated.json", &r)
			return c.ReportBundle(&r)
		}},
	}
	for _, strat := range []fhir.WriteStrategy{fhir.WritePut, fhir.WriteConditionalUpdate, fhir.WriteConditionalCreate} {
		for _, ex := range examples {
			t.Run(strat.String()+"/"+ex.name, func(t *testing.T) {
				srv := *srv
				srv.t = t
				c := e2eConverter(t, strat)
				tx, err := ex.build(c)
				if err != nil {
					t.Fatal(err)
				}
				srv.post(tx)
				srv.post(tx)
				seen := map[[3]string]bool{}
				for _, k := range businessKeys(t, tx) {
					if seen[k] {
						continue
					}
					seen[k] = true
					got := srv.search(k[0], url.Values{"identifier": {k[1] + "|" + k[2]}})
					if len(got) != 1 {
						t.Errorf("%s %s|%s: %d resources after posting twice, want 1", k[0], k[1], k[2], len(got))
					}
				}
			})
		}
	}
}

// TestE2ERoundTrip converts a report to FHIR, writes it, reads the
// Encounter, Observations and Patient back and converts them to a CHT
// records submission: the mapped fields must come back unchanged.
func TestE2ERoundTrip(t *testing.T) {
	srv := newE2EServer(t)
	c := e2eConverter(t, fhir.WritePut)
	var r cht.Report
	readJSON(t, "testdata/report_assessment_hydrated.json", &r)
	tx, err := c.ReportBundle(&r)
	if err != nil {
		t.Fatal(err)
	}
	srv.post(tx)

	code, body := srv.do(http.MethodGet, "/Encounter/"+c.ID("Encounter", r.ID), nil)
	if code != http.StatusOK {
		t.Fatalf("read Encounter: HTTP %d %s", code, body)
	}
	enc, err := models.UnmarshalEncounter(body)
	if err != nil {
		t.Fatal(err)
	}
	code, body = srv.do(http.MethodGet, "/Patient/"+c.ID("Patient", r.Patient.ID), nil)
	if code != http.StatusOK {
		t.Fatalf("read Patient: HTTP %d %s", code, body)
	}
	pat, err := models.UnmarshalPatient(body)
	if err != nil {
		t.Fatal(err)
	}
	raws := srv.search("Observation", url.Values{"encounter": {"Encounter/" + c.ID("Encounter", r.ID)}})
	if len(raws) != 20 {
		t.Fatalf("%d Observations, want 20", len(raws))
	}
	obs := make([]models.Observation, len(raws))
	for i, raw := range raws {
		if obs[i], err = models.UnmarshalObservation(raw); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.SubmissionFromObservations("", &enc, obs, &pat)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(sub.Form, r.Form) {
		t.Errorf("form = %q, want %q", sub.Form, r.Form)
	}
	if !sub.ReportedDate.Equal(r.ReportedDate.Time()) {
		t.Errorf("reported date = %v, want %v", sub.ReportedDate, r.ReportedDate.Time())
	}
	m, _ := fhir.LoadMapping("testdata/mapping.yaml")
	fm, _ := m.Form(r.Form)
	for _, f := range fm.Fields {
		want, ok := r.Fields.Field(f.Path)
		if !ok {
			continue
		}
		if got := sub.Fields[f.Path]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("field %s: got %v (%T), want %v (%T)", f.Path, got, got, want, want)
		}
	}
	if got := sub.Fields["patient_uuid"]; got != r.Patient.ID {
		t.Errorf("patient_uuid = %v, want %s", got, r.Patient.ID)
	}
	// The person comes back too.
	p, err := c.PersonFromPatient(&pat)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != r.Patient.ID || p.Name != r.Patient.Name || p.Sex != r.Patient.Sex || p.DateOfBirth != r.Patient.DateOfBirth || p.Phone != r.Patient.Phone {
		t.Errorf("person = %+v, want the fields of %+v", p, r.Patient)
	}
}

// TestE2EServiceRequestToCHT writes a CHT patient, creates a referral
// ServiceRequest for it on the server (as another system would), reads it
// back through ParseResource and converts it to the records submission that
// raises a CHW task.
func TestE2EServiceRequestToCHT(t *testing.T) {
	srv := newE2EServer(t)
	c := e2eConverter(t, fhir.WritePut)
	var p cht.Contact
	readJSON(t, "testdata/person_openmrs_example.json", &p)
	tx, err := c.ContactBundle(&p)
	if err != nil {
		t.Fatal(err)
	}
	srv.post(tx)
	patientID := c.ID("Patient", p.ID)
	sr := fmt.Sprintf(`{"resourceType":"ServiceRequest","status":"active","intent":"order",
		"code":{"text":"Lost to follow-up"},"subject":{"reference":"Patient/%s"},"authoredOn":"2024-11-01T10:00:00Z"}`, patientID)
	code, body := srv.do(http.MethodPost, "/ServiceRequest", []byte(sr))
	if code != http.StatusCreated {
		t.Fatalf("create ServiceRequest: HTTP %d %s", code, body)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(body, &created); err != nil || created.ID == "" {
		t.Fatalf("created: %s %v", body, err)
	}
	code, body = srv.do(http.MethodGet, "/ServiceRequest/"+created.ID, nil)
	if code != http.StatusOK {
		t.Fatalf("read ServiceRequest: HTTP %d", code)
	}
	res, err := fhir.ParseResource(body)
	if err != nil {
		t.Fatal(err)
	}
	req := res.(*models.ServiceRequest)
	code, body = srv.do(http.MethodGet, "/"+*req.Subject.Reference, nil)
	if code != http.StatusOK {
		t.Fatalf("read subject: HTTP %d", code)
	}
	pres, err := fhir.ParseResource(body)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubmissionFromServiceRequest(req, pres.(*models.Patient))
	if err != nil {
		t.Fatal(err)
	}
	if sub.Form != "interop_follow_up" || sub.Fields["patient_uuid"] != p.ID {
		t.Errorf("submission %+v, want form interop_follow_up for patient %s", sub, p.ID)
	}
	if !sub.ReportedDate.Equal(time.Date(2024, 11, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("reported date %v", sub.ReportedDate)
	}
}
