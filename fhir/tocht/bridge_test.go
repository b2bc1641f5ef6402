package tocht_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

const instanceURL = "https://cht.example.org"

// now is the fixed clock of the bridge under test.
var now = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

// rig is an EMR → mediator → CHT pipeline of fakes.
type rig struct {
	cht    *chttest.Server
	fhir   *fhirtest.Server
	conv   *fhir.Converter
	bridge *tocht.Bridge
	med    *httptest.Server
	m      *mediator.Mediator
}

func newRig(t testing.TB, configure ...func(*tocht.Config)) *rig {
	t.Helper()
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	return newRigOn(t, chtSrv, chttest.DemoTypes(), configure...)
}

// newRigOn is newRig on the CHT server chtSrv, whose app has the contact
// hierarchy types (given to the converter only; configure may give it to
// the bridge).
func newRigOn(t testing.TB, chtSrv *chttest.Server, types cht.ContactTypes, configure ...func(*tocht.Config)) *rig {
	t.Helper()
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)

	conv, err := fhir.New(fhir.Config{ContactTypes: types, InstanceURL: instanceURL, Mapping: fhir.DefaultMapping(),
		Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID, TaskForm: "INTEROP_FOLLOW_UP",
			ObservationForm: "HEIGHT_WEIGHT"}})
	require.NoError(t, err)
	c, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername,
		Password: chttest.AdminPassword, MaxRetries: -1,
		// Recording the CHT calls makes them orchestrations.
		HTTPClient: &http.Client{Transport: mediator.Transport(chtSrv.Client().Transport)}})
	require.NoError(t, err)
	cfg := tocht.Config{Converter: conv, CHT: c, Now: func() time.Time { return now }}
	for _, f := range configure {
		f(&cfg)
	}
	bridge, err := tocht.New(cfg)
	require.NoError(t, err)
	m, err := mediator.New(mediator.Config{Auth: mediator.InboundAuth{Open: true}, Definition: tocht.Definition("127.0.0.1", 8602), Handler: bridge.Handler()})
	require.NoError(t, err)
	med := httptest.NewServer(m)
	t.Cleanup(med.Close)
	return &rig{cht: chtSrv, fhir: fhirSrv, conv: conv, bridge: bridge, med: med, m: m}
}

// answer is what core would return to the EMR: the envelope's response.
type answer struct {
	status int
	header http.Header
	body   []byte
	env    *mediator.Envelope
}

func (r *rig) send(t *testing.T, method, path, ctype string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, r.med.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return r.do(t, req)
}

// do sends req to the mediator and returns what core would return.
func (r *rig) do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, mediator.ContentType, strings.Split(resp.Header.Get("Content-Type"), ";")[0], "%s", raw)
	env, err := mediator.ParseEnvelope(raw)
	require.NoError(t, err)
	assert.Equal(t, resp.StatusCode, env.Response.Status)
	h := http.Header{}
	for k, v := range env.Response.Headers {
		h.Set(k, v)
	}
	return answer{status: env.Response.Status, header: h, body: []byte(env.Response.Body), env: env}
}

func (r *rig) post(t *testing.T, path string, body []byte) answer {
	t.Helper()
	return r.send(t, http.MethodPost, path, "application/fhir+json", body)
}

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return b
}

// doc returns a stored CHT document decoded.
func (r *rig) doc(t *testing.T, id string) map[string]any {
	t.Helper()
	raw, ok := r.cht.Doc(id)
	require.True(t, ok, "CHT has no document %s", id)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

// countDocs counts the live CHT documents whose member key equals value.
func (r *rig) countDocs(t *testing.T, key, value string) int {
	t.Helper()
	n := 0
	for _, raw := range r.cht.Docs() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		if m[key] == value {
			n++
		}
	}
	return n
}

// reports returns the stored reports of form, decoded.
func (r *rig) reports(t *testing.T, form string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, raw := range r.cht.Reports(form) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		out = append(out, m)
	}
	return out
}

// outcome decodes an OperationOutcome answer.
type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics"`
		Expression  []string `json:"expression"`
	} `json:"issue"`
}

func parseOutcome(t *testing.T, body []byte) outcome {
	t.Helper()
	var oo outcome
	require.NoError(t, json.Unmarshal(body, &oo), "%s", body)
	require.Equal(t, "OperationOutcome", oo.ResourceType, "%s", body)
	require.NotEmpty(t, oo.Issue)
	return oo
}

func (o outcome) text() string {
	var parts []string
	for _, is := range o.Issue {
		parts = append(parts, is.Code, is.Diagnostics, strings.Join(is.Expression, ","))
	}
	return strings.Join(parts, " | ")
}

func TestPatientCreateUpdateAndResend(t *testing.T) {
	r := newRig(t)
	id := r.bridge.PersonID("https://emr.example.org/patient-id|EMR-0001")
	steps := []struct {
		name        string
		method      string
		path        string
		file        string
		status      int
		wantName    string
		wantPhone   string
		wantNewRev  bool
		wantCreated bool
	}{
		{"create", http.MethodPost, "/fhir/Patient", "patient.json", http.StatusCreated, "Mary Achieng", "+254700000001", true, true},
		{"same Patient again", http.MethodPost, "/fhir/Patient", "patient.json", http.StatusOK, "Mary Achieng", "+254700000001", false, false},
		{"update by PUT with id", http.MethodPut, "/fhir/Patient/emr-patient-1", "patient-updated.json", http.StatusOK, "Mary Atieno Achieng", "+254700000002", true, false},
		{"update re-sent", http.MethodPut, "/fhir/Patient/emr-patient-1", "patient-updated.json", http.StatusOK, "Mary Atieno Achieng", "+254700000002", false, false},
	}
	rev := ""
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			a := r.send(t, st.method, st.path, "application/fhir+json", testdata(t, st.file))
			require.Equal(t, st.status, a.status, "%s", a.body)
			assert.Equal(t, mediator.StatusSuccessful, a.env.Status)

			// The answer is the Patient with the CHT person's identifier.
			var p struct {
				ResourceType string
				Identifier   []struct{ System, Value string }
			}
			require.NoError(t, json.Unmarshal(a.body, &p))
			assert.Equal(t, "Patient", p.ResourceType)
			assert.Contains(t, p.Identifier, struct{ System, Value string }{instanceURL + "/medic", id})

			doc := r.doc(t, id)
			assert.Equal(t, st.wantName, doc["name"])
			assert.Equal(t, st.wantPhone, doc["phone"])
			assert.Equal(t, "EMR-0001", doc["external_id"])
			assert.Equal(t, "female", doc["sex"])
			assert.Equal(t, "1990-04-12", doc["date_of_birth"])
			assert.Equal(t, float64(now.UnixMilli()), doc["reported_date"], "reported_date of the creation is kept")
			assert.Equal(t, map[string]any{"_id": chttest.DemoHouseholdID, "parent": map[string]any{
				"_id": chttest.DemoCHWAreaID, "parent": map[string]any{"_id": chttest.DemoHealthCentreID,
					"parent": map[string]any{"_id": chttest.DemoDistrictID}}}}, doc["parent"], "minified lineage as CHT stores it")
			assert.Equal(t, st.wantNewRev, doc["_rev"] != rev, "a write only when something changed")
			rev = doc["_rev"].(string)
			assert.Equal(t, 1, r.countDocs(t, "external_id", "EMR-0001"), "one person, however often it is sent")
		})
	}

	// The person is where CHT's hydrate finds it: under the household.
	hydrated, ok := r.cht.HydratedDoc(id)
	require.True(t, ok)
	assert.Equal(t, "Otieno Household", hydrated["parent"].(map[string]any)["name"])
}

func TestPatientThatCameFromCHTUpdatesThatPerson(t *testing.T) {
	r := newRig(t, func(c *tocht.Config) { c.AcceptCHTOrigin = true })
	body := fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"%s/medic","value":"%s"}],
		"name":[{"text":"John Test"}],"telecom":[{"system":"phone","value":"+254799999999"}]}`, instanceURL, chttest.DemoPatientID)
	a := r.post(t, "/fhir/Patient", []byte(body))
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	doc := r.doc(t, chttest.DemoPatientID)
	assert.Equal(t, "+254799999999", doc["phone"])
	assert.Equal(t, chttest.DemoHouseholdID, doc["parent"].(map[string]any)["_id"], "parent kept")
}

func TestServiceRequestRaisesOneTaskReport(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "service-request.json")
	for i, want := range []int{http.StatusCreated, http.StatusOK, http.StatusOK} {
		a := r.post(t, "/fhir/ServiceRequest", body)
		require.Equal(t, want, a.status, "send %d: %s", i, a.body)
	}
	reports := r.reports(t, "INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1, "posted three times, one report")
	rep := reports[0]
	assert.Equal(t, r.bridge.ReportID("ServiceRequest", "https://emr.example.org/service-request|SR-0001"), rep["_id"])
	assert.Equal(t, map[string]any{
		"patient_uuid":         chttest.DemoPatientID,
		"service_request_id":   "ltfu-0001",
		"fhir_service_request": "ltfu-0001",
		"reason":               "Missed ART refill appointment",
		"due_date":             "2026-11-29",
	}, rep["fields"])
	assert.Equal(t, float64(time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC).UnixMilli()), rep["reported_date"], "authoredOn")
	assert.Equal(t, []any{}, rep["errors"])

	// CHT's hydrate links the report to its patient, which is what makes
	// the CHW's task appear.
	hydrated, ok := r.cht.HydratedDoc(rep["_id"].(string))
	require.True(t, ok)
	require.NotNil(t, hydrated["patient"], "report resolved to its patient")
	assert.Equal(t, "John Test", hydrated["patient"].(map[string]any)["name"])
}

func TestConcurrentDuplicatesMakeOneReport(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "service-request.json")
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, r.med.URL+"/fhir/ServiceRequest", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				statuses[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		assert.Contains(t, []int{http.StatusOK, http.StatusCreated}, s)
		if s == http.StatusCreated {
			created++
		}
	}
	assert.Equal(t, 1, created)
	assert.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 1)
}

func TestTaskForAPatientOfTheEMR(t *testing.T) {
	tests := []struct {
		name    string
		fhirURL bool
		status  int
		want    string
	}{
		// The Task refers to Patient/emr-patient-1; the person is keyed by
		// the Patient's identifier, so the bridge reads the Patient.
		{"Patient read from the FHIR server", true, http.StatusCreated, ""},
		{"no FHIR server to read it from", false, http.StatusUnprocessableEntity, "Task.for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if tt.fhirURL {
				require.NoError(t, r.fhir.Load(testdata(t, "patient-updated.json")))
				r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
			}
			a := r.post(t, "/fhir/Patient", testdata(t, "patient-updated.json"))
			require.Equal(t, http.StatusCreated, a.status, "%s", a.body)

			a = r.post(t, "/fhir/Task", testdata(t, "task.json"))
			require.Equal(t, tt.status, a.status, "%s", a.body)
			reports := r.reports(t, "INTEROP_FOLLOW_UP")
			if tt.want != "" {
				assert.Contains(t, parseOutcome(t, a.body).text(), tt.want)
				assert.Empty(t, reports)
				return
			}
			require.Len(t, reports, 1)
			fields := reports[0]["fields"].(map[string]any)
			assert.Equal(t, r.bridge.PersonID("https://emr.example.org/patient-id|EMR-0001"), fields["patient_uuid"])
			assert.Equal(t, "referral-0001", fields["service_request_id"])
			assert.Equal(t, "referral-0001", fields["fhir_task"])
			assert.Equal(t, "Patient referral", fields["reason"])
			assert.Equal(t, "2026-11-28", fields["due_date"])
			var names []string
			for _, o := range a.env.Orchestrations {
				names = append(names, o.Name)
			}
			assert.Equal(t, []string{"FHIR read subject", "CHT read subject", "CHT read report", "CHT create report"}, names)
		})
	}
}

// rebuild replaces the rig's bridge and mediator, keeping its fakes.
func rebuild(t *testing.T, r *rig, configure func(*tocht.Config)) *rig {
	t.Helper()
	c, err := cht.New(cht.Config{URL: r.cht.URL, Username: chttest.AdminUsername,
		Password: chttest.AdminPassword, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: mediator.Transport(r.cht.Client().Transport)}})
	require.NoError(t, err)
	cfg := tocht.Config{Converter: r.conv, CHT: c, Now: func() time.Time { return now }}
	configure(&cfg)
	bridge, err := tocht.New(cfg)
	require.NoError(t, err)
	m, err := mediator.New(mediator.Config{Auth: mediator.InboundAuth{Open: true}, Definition: tocht.Definition("127.0.0.1", 8602), Handler: bridge.Handler()})
	require.NoError(t, err)
	med := httptest.NewServer(m)
	t.Cleanup(med.Close)
	return &rig{cht: r.cht, fhir: r.fhir, conv: r.conv, bridge: bridge, med: med, m: m}
}

func TestTransactionWithANewPatientAndItsServiceRequest(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "bundle-new-patient.json")
	// The check before the first write reads the person and builds the
	// report; the writes use the report, and the person when the check
	// found none. A person it found is read again before it is compared
	// (see TestTransactionWithOnePatientTwice).
	calls := [][]string{
		{"CHT read person", "CHT read parent place", "CHT create person", "CHT read report", "CHT create report"},
		{"CHT read person", "CHT read person", "CHT read report"},
	}
	for i, want := range []string{"201 Created", "200 OK"} {
		a := r.post(t, "/fhir", body)
		var names []string
		for _, o := range a.env.Orchestrations {
			names = append(names, o.Name)
		}
		assert.Equal(t, calls[i], names, "send %d", i)
		require.Equal(t, http.StatusOK, a.status, "send %d: %s", i, a.body)
		var resp struct {
			ResourceType, Type string
			Entry              []struct{ Response struct{ Status string } }
		}
		require.NoError(t, json.Unmarshal(a.body, &resp))
		assert.Equal(t, "transaction-response", resp.Type)
		require.Len(t, resp.Entry, 2)
		assert.Equal(t, want, resp.Entry[0].Response.Status)
		assert.Equal(t, want, resp.Entry[1].Response.Status)
	}
	personID := r.bridge.PersonID("https://emr.example.org/patient-id|EMR-0042")
	assert.Equal(t, "Peter Odhiambo", r.doc(t, personID)["name"])
	reports := r.reports(t, "INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1)
	assert.Equal(t, personID, reports[0]["fields"].(map[string]any)["patient_uuid"], "refers to the Patient of the same Bundle")
}

func TestObservationsBecomeOneReportOfTheMappedForm(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "observations.json")
	for i, want := range []int{http.StatusOK, http.StatusOK} {
		a := r.post(t, "/fhir/Bundle", body)
		require.Equal(t, want, a.status, "send %d: %s", i, a.body)
	}
	reports := r.reports(t, "HEIGHT_WEIGHT")
	require.Len(t, reports, 2, "the demo's report and ours, once")
	var ours map[string]any
	for _, rep := range reports {
		if rep["_id"] == r.bridge.ReportID("Encounter", "https://emr.example.org/encounter|ENC-7") {
			ours = rep
		}
	}
	require.NotNil(t, ours)
	assert.Equal(t, map[string]any{"patient_uuid": chttest.DemoPatientID, "height": float64(168), "weight": 61.5}, ours["fields"])
	assert.Equal(t, float64(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()), ours["reported_date"])
}

// TestRoundTripWithCHTToFHIR converts the demo's HEIGHT_WEIGHT report the
// way cht-to-fhir does, sends the Encounter, Observations and Patient back,
// and expects the same form fields.
func TestRoundTripWithCHTToFHIR(t *testing.T) {
	r := newRig(t, func(c *tocht.Config) { c.AcceptCHTOrigin = true })
	hydrated, ok := r.cht.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	raw, err := json.Marshal(hydrated)
	require.NoError(t, err)
	var report cht.Report
	require.NoError(t, json.Unmarshal(raw, &report))
	tx, err := r.conv.ReportBundle(&report)
	require.NoError(t, err)
	out, err := tx.MarshalJSON()
	require.NoError(t, err)

	// Keep what an EMR would send back: Patient, Encounter, Observations.
	var bundle map[string]any
	require.NoError(t, json.Unmarshal(out, &bundle))
	var keep []any
	for _, e := range bundle["entry"].([]any) {
		switch e.(map[string]any)["resource"].(map[string]any)["resourceType"] {
		case "Patient", "Encounter", "Observation":
			keep = append(keep, e)
		}
	}
	bundle["entry"] = keep
	body, err := json.Marshal(bundle)
	require.NoError(t, err)

	a := r.post(t, "/fhir", body)
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	var ours map[string]any
	for _, rep := range r.reports(t, "HEIGHT_WEIGHT") {
		if rep["_id"] != chttest.DemoHeightWeightReportID {
			ours = rep
		}
	}
	require.NotNil(t, ours, "a second HEIGHT_WEIGHT report")
	assert.Equal(t, report.Fields["height"], json.Number(fmt.Sprint(ours["fields"].(map[string]any)["height"])))
	assert.Equal(t, report.Fields["weight"], json.Number(fmt.Sprint(ours["fields"].(map[string]any)["weight"])))
	assert.Equal(t, chttest.DemoPatientID, ours["fields"].(map[string]any)["patient_uuid"])
	assert.Equal(t, float64(report.ReportedDate), ours["reported_date"])

	// Without AcceptCHTOrigin the same Bundle is acknowledged, not written
	// back: the loop guard.
	guarded := rebuild(t, r, func(*tocht.Config) {})
	before := len(r.cht.Docs())
	a = guarded.post(t, "/fhir", body)
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	assert.Contains(t, string(a.body), "originated in CHT")
	assert.Len(t, r.cht.Docs(), before)
}

func TestBatchAnswersPerEntry(t *testing.T) {
	r := newRig(t)
	good := testdata(t, "service-request.json")
	inactive := strings.Replace(string(good), `"active"`, `"completed"`, 1)
	inactive = strings.Replace(inactive, "SR-0001", "SR-0002", 1)
	body := fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[{"resource":%s},{"resource":%s}]}`, good, inactive)
	a := r.post(t, "/fhir", []byte(body))
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	var resp struct {
		Type  string
		Entry []struct {
			Response struct {
				Status  string
				Outcome outcome
			}
		}
	}
	require.NoError(t, json.Unmarshal(a.body, &resp))
	assert.Equal(t, "batch-response", resp.Type)
	require.Len(t, resp.Entry, 2)
	assert.Equal(t, "201 Created", resp.Entry[0].Response.Status)
	assert.Equal(t, "422 Unprocessable Entity", resp.Entry[1].Response.Status)
	assert.Contains(t, resp.Entry[1].Response.Outcome.text(), "Bundle.entry[1].resource.status")
	assert.Equal(t, mediator.StatusCompletedWithErrors, a.env.Status)
	assert.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 1)
}

func TestBadInputIsAnsweredWithAnOperationOutcome(t *testing.T) {
	r := newRig(t, func(c *tocht.Config) { c.MaxBodyBytes = 2048 })
	sr := string(testdata(t, "service-request.json"))
	unknownSubject := strings.Replace(sr, `{"identifier": {"system": "https://cht.example.org/medic", "value": "75905106a4bc2a9046ed28df070016ce"}}`,
		`{"reference": "Patient/nobody"}`, 1)
	require.NotEqual(t, sr, unknownSubject)
	tests := []struct {
		name   string
		method string
		path   string
		ctype  string
		body   string
		status int
		want   string // in the outcome's codes, diagnostics or expressions
	}{
		{"wrong content type", "POST", "/fhir/Patient", "text/plain", `{}`, 415, "text/plain"},
		{"no content type", "POST", "/fhir/Patient", "", `{}`, 415, "application/fhir+json"},
		{"malformed JSON", "POST", "/fhir/Patient", "application/json", `{"resourceType":`, 400, "structure"},
		{"too large", "POST", "/fhir/Patient", "application/fhir+json", `{"resourceType":"Patient","text":"` + strings.Repeat("x", 4096) + `"}`, 413, "2048"},
		{"missing required element", "POST", "/fhir/ServiceRequest", "application/fhir+json",
			`{"resourceType":"ServiceRequest","status":"active","subject":{"reference":"Patient/1"}}`, 400, "ServiceRequest.intent"},
		{"invalid code", "POST", "/fhir/Patient", "application/fhir+json", `{"resourceType":"Patient","gender":"f"}`, 400, "Patient.gender"},
		{"resource type of another route", "POST", "/fhir/Patient", "application/fhir+json", sr, 400, "ServiceRequest sent to /fhir/Patient"},
		{"unsupported resource type", "POST", "/fhir/Bundle", "application/fhir+json", `{"resourceType":"Practitioner"}`, 400, "not-supported"},
		{"PUT id differs", "PUT", "/fhir/ServiceRequest/other", "application/fhir+json", sr, 400, "ServiceRequest.id"},
		{"Patient without name", "POST", "/fhir/Patient", "application/fhir+json", `{"resourceType":"Patient","id":"p1"}`, 422, "Patient.name"},
		{"Patient without identifier or id", "POST", "/fhir/Patient", "application/fhir+json", `{"resourceType":"Patient","name":[{"text":"A B"}]}`, 422, "Patient.identifier"},
		{"ServiceRequest not active", "POST", "/fhir/ServiceRequest", "application/fhir+json", strings.Replace(sr, `"active"`, `"revoked"`, 1), 422, "ServiceRequest.status"},
		{"subject unknown to CHT", "POST", "/fhir/ServiceRequest", "application/fhir+json", unknownSubject, 422, "ServiceRequest.subject"},
		{"unmapped Observation code", "POST", "/fhir/Observation", "application/fhir+json",
			`{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"0000-0"}]},
			"subject":{"identifier":{"system":"https://cht.example.org/medic","value":"` + chttest.DemoPatientID + `"}},"valueQuantity":{"value":1}}`, 422, "Observation.code"},
		{"Bundle entry invalid", "POST", "/fhir", "application/fhir+json",
			`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","id":"x","name":[{"text":"A"}]}},
			{"resource":{"resourceType":"Task","intent":"order"}}]}`, 400, "Bundle.entry[1].resource.status"},
		{"Bundle Observation code not mapped", "POST", "/fhir", "application/fhir+json",
			strings.Replace(string(testdata(t, "observations.json")), "29463-7", "0000-0", 1), 422, "Bundle.entry[2].resource.code"},
		{"Patient naming a CHT place", "POST", "/fhir/Patient", "application/fhir+json",
			`{"resourceType":"Patient","identifier":[{"system":"https://cht.example.org/medic","value":"` + chttest.DemoHealthCentreID + `"}],"name":[{"text":"X"}]}`,
			422, "not a person"},
		{"GET the base", "GET", "/fhir", "", ``, 405, "not-supported"},
		{"Bundle of a wrong type", "POST", "/fhir", "application/fhir+json", `{"resourceType":"Bundle","type":"searchset"}`, 400, "Bundle.type"},
		{"GET is not supported", "GET", "/fhir/Patient", "", ``, 405, "not-supported"},
		{"unknown path", "POST", "/fhir/Practitioner", "application/fhir+json", `{}`, 404, "not-supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.send(t, tt.method, tt.path, tt.ctype, []byte(tt.body))
			assert.Equal(t, tt.status, a.status, "%s", a.body)
			assert.Equal(t, tocht.FHIRContentType, a.header.Get("Content-Type"))
			assert.Contains(t, parseOutcome(t, a.body).text(), tt.want)
		})
	}
	assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"), "nothing written")
	assert.Equal(t, 0, r.countDocs(t, "name", "A B"))
}

// A body with a Content-Encoding other than identity is answered 415 with
// an OperationOutcome naming the header and its value, before the body is
// read (not a 400 about malformed JSON); identity is a plain body.
func TestEncodedBodiesAreRefusedWithAnOperationOutcome(t *testing.T) {
	r := newRig(t)
	patient := testdata(t, "patient.json")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write(patient)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	tests := []struct {
		name, path, coding string
		body               []byte
		want               string // in the outcome; "" for a write
	}{
		{"gzip Patient", "/fhir/Patient", "gzip", gz.Bytes(), `Content-Encoding "gzip"`},
		{"deflate Bundle", "/fhir", "deflate", []byte("x\x9c\x03\x00\x00\x00\x00\x01"), `Content-Encoding "deflate"`},
		{"br with identity", "/fhir/Patient", "identity, br", []byte{0x1b}, `Content-Encoding "identity, br"`},
		{"identity", "/fhir/Patient", "IDENTITY ", patient, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, r.med.URL+tt.path, bytes.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("Content-Encoding", tt.coding)
			a := r.do(t, req)
			if tt.want == "" {
				assert.Contains(t, []int{http.StatusOK, http.StatusCreated}, a.status, "%s", a.body)
				return
			}
			assert.Equal(t, http.StatusUnsupportedMediaType, a.status, "%s", a.body)
			assert.Equal(t, tocht.FHIRContentType, a.header.Get("Content-Type"))
			oo := parseOutcome(t, a.body)
			assert.Contains(t, oo.text(), tt.want)
			assert.Contains(t, oo.text(), "not-supported")
		})
	}
}

func TestCHTDownIsRetriedWithoutDuplicates(t *testing.T) {
	tests := []struct {
		name string
		path string
		file string
		form string
	}{
		{"Patient", "/fhir/Patient", "patient.json", ""},
		{"ServiceRequest", "/fhir/ServiceRequest", "service-request.json", "INTEROP_FOLLOW_UP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			before := len(r.cht.Docs())
			remove := r.cht.InjectFault(chttest.Fault{Path: "/medic/*", Status: http.StatusServiceUnavailable})
			a := r.post(t, tt.path, testdata(t, tt.file))
			assert.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
			assert.Equal(t, mediator.StatusFailed, a.env.Status)
			assert.NotEmpty(t, a.header.Get("Retry-After"))
			oo := parseOutcome(t, a.body)
			assert.Equal(t, "transient", oo.Issue[0].Code)
			assert.Len(t, r.cht.Docs(), before, "nothing written")

			// CHT fails the write only (the read succeeded): still non-2xx.
			remove()
			remove = r.cht.InjectFault(chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: http.StatusInternalServerError})
			a = r.post(t, tt.path, testdata(t, tt.file))
			assert.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
			remove()

			// The EMR retries, twice.
			for i, want := range []int{http.StatusCreated, http.StatusOK} {
				a = r.post(t, tt.path, testdata(t, tt.file))
				require.Equal(t, want, a.status, "retry %d: %s", i, a.body)
			}
			assert.Len(t, r.cht.Docs(), before+1, "exactly one document")
			if tt.form != "" {
				assert.Len(t, r.reports(t, tt.form), 1)
			}
		})
	}
}

// TestCHTRefusingTheDocumentIsNotTransient: CHT (CouchDB, or a proxy
// before them) answering 400, 413 or 422 to a write refuses that document
// on every retry: a document over CouchDB's max_document_size (413), or
// one CHT's API finds invalid (api/src/controllers/person.js create and
// update document their 400 answers). The EMR gets
// 422 naming CHT's status, without Retry-After, rather than a 502 it would
// retry forever; a 5xx stays a 502 (TestCHTDownIsRetriedWithoutDuplicates),
// and so does a refused read, which is the mediator's doing.
func TestCHTRefusingTheDocumentIsNotTransient(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity} {
		for _, tt := range []struct{ path, file string }{{"/fhir/Patient", "patient.json"}, {"/fhir/ServiceRequest", "service-request.json"}} {
			t.Run(fmt.Sprintf("%d %s", status, tt.path), func(t *testing.T) {
				r := newRig(t)
				before := len(r.cht.Docs())
				r.cht.InjectFault(chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: status})
				a := r.post(t, tt.path, testdata(t, tt.file))
				assert.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
				assert.Empty(t, a.header.Get("Retry-After"))
				assert.Contains(t, parseOutcome(t, a.body).text(), fmt.Sprintf("HTTP %d", status))
				assert.Len(t, r.cht.Docs(), before, "nothing written")
			})
		}
	}
	t.Run("a refused read stays a 502", func(t *testing.T) {
		r := newRig(t)
		r.cht.InjectFault(chttest.Fault{Method: http.MethodGet, Path: "/medic/*", Status: http.StatusBadRequest})
		a := r.post(t, "/fhir/Patient", testdata(t, "patient.json"))
		assert.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
	})
}

// A 401 or 403 of CHT or of the FHIR server refuses the mediator's own
// credentials: every retry would fail the same way, so the answer is 500
// naming the settings to fix, without Retry-After, and nothing is written.
func TestRefusedCredentialsAreAConfigurationError(t *testing.T) {
	subject := `{"resourceType":"ServiceRequest","id":"ltfu-cred","status":"active","intent":"order",
		"subject":{"reference":"Patient/p-cred"}}`
	tests := []struct {
		name    string
		setup   func(t *testing.T, r *rig) *rig
		path    string
		body    []byte
		setting string
	}{
		{"CHT answers 401", func(t *testing.T, r *rig) *rig {
			r.cht.InjectFault(chttest.Fault{Path: "/medic/*", Status: http.StatusUnauthorized})
			return r
		}, "/fhir/Patient", testdata(t, "patient.json"), "cht.username"},
		{"CHT answers 403 to the write", func(t *testing.T, r *rig) *rig {
			r.cht.InjectFault(chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: http.StatusForbidden})
			return r
		}, "/fhir/ServiceRequest", testdata(t, "service-request.json"), "cht.username"},
		{"FHIR server answers 401 to the subject's read", func(t *testing.T, r *rig) *rig {
			require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{FailRate: 1, FailStatus: http.StatusUnauthorized, IncludeReads: true}))
			return rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
		}, "/fhir/ServiceRequest", []byte(subject), "fhir.username"},
		{"FHIR server answers 403 to the Task's Subscription", func(t *testing.T, _ *rig) *rig {
			r := notifyRig(t, nil)
			require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{FailRate: 1, FailStatus: http.StatusForbidden}))
			return r
		}, "/fhir/Task", testdata(t, "task.json"), "fhir.username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.setup(t, newRig(t))
			before := len(r.cht.Docs())
			a := r.post(t, tt.path, tt.body)
			assert.Equal(t, http.StatusInternalServerError, a.status, "%s", a.body)
			assert.Equal(t, mediator.StatusFailed, a.env.Status)
			assert.Empty(t, a.header.Get("Retry-After"))
			oo := parseOutcome(t, a.body)
			assert.NotEqual(t, "transient", oo.Issue[0].Code)
			assert.Contains(t, oo.text(), tt.setting)
			assert.Len(t, r.cht.Docs(), before, "nothing written")
		})
	}
}

func TestOrchestrationsNameEveryCHTCall(t *testing.T) {
	r := newRig(t)
	a := r.post(t, "/fhir/Patient", testdata(t, "patient.json"))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	assert.Equal(t, tocht.URN, a.env.MediatorURN)
	var names []string
	for _, o := range a.env.Orchestrations {
		names = append(names, o.Name)
	}
	assert.Equal(t, []string{"CHT read person", "CHT read parent place", "CHT create person"}, names)
	assert.Equal(t, http.StatusNotFound, a.env.Orchestrations[0].Response.Status)
	assert.Equal(t, http.MethodPut, a.env.Orchestrations[2].Request.Method)
	assert.Equal(t, r.bridge.PersonID("https://emr.example.org/patient-id|EMR-0001"), a.env.Properties["cht_doc"])
}

func TestNewValidates(t *testing.T) {
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: instanceURL})
	require.NoError(t, err)
	c, err := cht.New(cht.Config{URL: "http://127.0.0.1:1"})
	require.NoError(t, err)
	tests := []struct {
		name string
		cfg  tocht.Config
		want string
	}{
		{"no converter", tocht.Config{CHT: c}, "Converter"},
		{"no CHT", tocht.Config{Converter: conv}, "CHT"},
		{"negative body limit", tocht.Config{Converter: conv, CHT: c, MaxBodyBytes: -1}, "MaxBodyBytes"},
		{"negative Bundle entry cap", tocht.Config{Converter: conv, CHT: c, MaxBundleEntries: -1}, "MaxBundleEntries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tocht.New(tt.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestTimeoutAnswersGatewayTimeout(t *testing.T) {
	r := newRig(t, func(c *tocht.Config) { c.Timeout = 200 * time.Millisecond })
	r.cht.InjectFault(chttest.Fault{Path: "/medic/*", Latency: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.med.URL+"/fhir/Patient", bytes.NewReader(testdata(t, "patient.json")))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
}

// demoPatientFromCHT is the Patient cht-to-fhir makes of the fake CHT's
// demo person, and its JSON.
func demoPatientFromCHT(t *testing.T, r *rig) (*models.Patient, []byte) {
	t.Helper()
	hydrated, ok := r.cht.HydratedDoc(chttest.DemoPatientID)
	require.True(t, ok)
	raw, err := json.Marshal(hydrated)
	require.NoError(t, err)
	var person cht.Contact
	require.NoError(t, json.Unmarshal(raw, &person))
	tx, err := r.conv.ContactBundle(&person)
	require.NoError(t, err)
	patient, ok := tx.Entries[0].Resource.(*models.Patient)
	require.True(t, ok, "first entry is the person's Patient")
	pj, err := fhir.Marshal(patient)
	require.NoError(t, err)
	return patient, pj
}

// TestSubjectWrittenByCHTToFHIR refers to the Patient cht-to-fhir wrote to
// the FHIR server by its logical id: the bridge reads it and finds the CHT
// person by its CHT identifier.
func TestSubjectWrittenByCHTToFHIR(t *testing.T) {
	r := newRig(t)
	patient, pj := demoPatientFromCHT(t, r)
	require.NoError(t, r.fhir.Load(pj))
	r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })

	sr := fmt.Sprintf(`{"resourceType":"ServiceRequest","id":"ltfu-9","status":"active","intent":"order",
		"subject":{"reference":"%s/Patient/%s"}}`, r.fhir.URL, *patient.Id)
	a := r.post(t, "/fhir/ServiceRequest", []byte(sr))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	reports := r.reports(t, "INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1)
	assert.Equal(t, chttest.DemoPatientID, reports[0]["fields"].(map[string]any)["patient_uuid"])

	// A reference below FHIRURL that climbs out of it, or adds a query, is
	// read as FHIRURL/Patient/<its id>: the mediator's FHIR credentials
	// never go to another path of the server.
	hostile := strings.NewReplacer("ltfu-9", "ltfu-11", r.fhir.URL+"/Patient/",
		r.fhir.URL+"/../internal/admin?op=export&x=/Patient/").Replace(sr)
	a = r.post(t, "/fhir/ServiceRequest", []byte(hostile))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	for _, q := range r.fhir.Requests() {
		if strings.Contains(q.Path, "internal") || strings.Contains(q.Path, "..") || strings.Contains(q.Query, "op=") {
			t.Errorf("the FHIR server was asked for %s %s?%s", q.Method, q.Path, q.Query)
		}
	}

	// The FHIR server does not know the Patient: 422 naming the subject.
	sr = strings.Replace(sr, *patient.Id, "unknown", 1)
	sr = strings.Replace(sr, "ltfu-9", "ltfu-10", 1)
	a = r.post(t, "/fhir/ServiceRequest", []byte(sr))
	require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
	assert.Contains(t, parseOutcome(t, a.body).text(), "ServiceRequest.subject")

	// The FHIR server is down: 502, so that the EMR retries.
	require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{Down: true}))
	a = r.post(t, "/fhir/ServiceRequest", []byte(sr))
	assert.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
	assert.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 2, "ltfu-9 and ltfu-11")
}

func TestSingleObservationWithoutIdentity(t *testing.T) {
	r := newRig(t)
	obs := fmt.Sprintf(`{"resourceType":"Observation","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
		"subject":{"identifier":{"system":"%s/medic","value":"%s"}},
		"effectiveDateTime":"2026-11-21T07:00:00Z",
		"valueQuantity":{"value":70,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, instanceURL, chttest.DemoMotherID)
	for i, want := range []int{http.StatusCreated, http.StatusOK} {
		a := r.post(t, "/fhir/Observation", []byte(obs))
		require.Equal(t, want, a.status, "send %d: %s", i, a.body)
	}
	var ours []map[string]any
	for _, rep := range r.reports(t, "HEIGHT_WEIGHT") {
		if rep["_id"] != chttest.DemoHeightWeightReportID {
			ours = append(ours, rep)
		}
	}
	require.Len(t, ours, 1, "the same content at the same time is the same report")
	assert.Equal(t, map[string]any{"patient_uuid": chttest.DemoMotherID, "weight": float64(70)}, ours[0]["fields"])

	// Without an effective time there is nothing to recognise a re-send by.
	noTime := strings.Replace(obs, `"effectiveDateTime":"2026-11-21T07:00:00Z",`, "", 1)
	a := r.post(t, "/fhir/Observation", []byte(noTime))
	require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
	assert.Contains(t, parseOutcome(t, a.body).text(), "Observation.identifier")
}

// TestTransactionFailingHalfwayIsRetriedSafely lets CHT store the Patient
// and fail the report: the answer is non-2xx, and the retried transaction
// completes without a second person.
func TestTransactionFailingHalfwayIsRetriedSafely(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "bundle-new-patient.json")
	remove := r.cht.InjectFault(chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: http.StatusServiceUnavailable, Skip: 1})
	a := r.post(t, "/fhir", body)
	remove()
	require.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
	oo := parseOutcome(t, a.body)
	assert.Equal(t, "transient", oo.Issue[0].Code)
	// The answer must not claim that nothing was stored: the person was.
	assert.Contains(t, oo.Issue[0].Diagnostics, "may be partly done")
	assert.Contains(t, oo.Issue[0].Diagnostics, "retry the request, which is safe")
	assert.NotContains(t, oo.Issue[0].Diagnostics, "nothing was lost")
	assert.Equal(t, 1, r.countDocs(t, "external_id", "EMR-0042"), "the person was written")
	assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"), "the report was not")

	a = r.post(t, "/fhir", body)
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	assert.Equal(t, 1, r.countDocs(t, "external_id", "EMR-0042"))
	assert.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 1)
}

func TestBatchWithCHTDownIsNon2xx(t *testing.T) {
	r := newRig(t)
	body := fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[{"resource":%s}]}`, testdata(t, "service-request.json"))
	remove := r.cht.InjectFault(chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: http.StatusServiceUnavailable})
	a := r.post(t, "/fhir", []byte(body))
	remove()
	require.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
	assert.Equal(t, mediator.StatusFailed, a.env.Status)
	assert.Contains(t, string(a.body), `"status":"502 Bad Gateway"`)
	assert.Contains(t, string(a.body), `"batch-response"`)
	assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))

	a = r.post(t, "/fhir", []byte(body))
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	assert.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 1)
}

// A Patient that came from CHT (cht-to-fhir's source tag) is acknowledged,
// not written back; a ServiceRequest of the same Bundle that refers to it by
// its fullUrl or Patient/<id> is about the CHT person it carries the
// identifier of, which exists.
func TestBundleRequestAboutAPatientThatCameFromCHT(t *testing.T) {
	r := newRig(t)
	patient, pj := demoPatientFromCHT(t, r)
	tests := []struct{ name, ref string }{
		{"by fullUrl", "urn:uuid:5f0c7f3e-5d1a-4c2b-8e6f-1a2b3c4d5e6f"},
		{"by Patient/<id>", "Patient/" + *patient.Id},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := fmt.Sprintf(`{"resourceType":"ServiceRequest","id":"ltfu-cht-%d","status":"active","intent":"order","subject":{"reference":%q}}`, i, tt.ref)
			body := `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:5f0c7f3e-5d1a-4c2b-8e6f-1a2b3c4d5e6f","resource":` +
				string(pj) + `},{"resource":` + sr + `}]}`
			a := r.post(t, "/fhir", []byte(body))
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			var resp struct {
				Entry []struct{ Response struct{ Status string } }
			}
			require.NoError(t, json.Unmarshal(a.body, &resp))
			require.Len(t, resp.Entry, 2)
			assert.Equal(t, "200 OK", resp.Entry[0].Response.Status, "acknowledged, not written back")
			assert.Equal(t, "201 Created", resp.Entry[1].Response.Status)
			reports := r.reports(t, "INTEROP_FOLLOW_UP")
			require.Len(t, reports, i+1)
			for _, rep := range reports {
				assert.Equal(t, chttest.DemoPatientID, rep["fields"].(map[string]any)["patient_uuid"])
			}
		})
	}
	// The person it names must exist.
	gone := strings.ReplaceAll(string(pj), chttest.DemoPatientID, "no-such-person")
	body := `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:5f0c7f3e-5d1a-4c2b-8e6f-1a2b3c4d5e6f","resource":` + gone +
		`},{"resource":{"resourceType":"ServiceRequest","id":"ltfu-gone","status":"active","intent":"order","subject":{"reference":"urn:uuid:5f0c7f3e-5d1a-4c2b-8e6f-1a2b3c4d5e6f"}}}]}`
	a := r.post(t, "/fhir", []byte(body))
	require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
	assert.Contains(t, parseOutcome(t, a.body).text(), "Bundle.entry[1].resource.subject")
	assert.Contains(t, parseOutcome(t, a.body).text(), "no CHT person no-such-person")
}

// A body limit above the largest resource fhir.ParseResource reads (8 MiB)
// is that size: a larger body is answered 413, as every body over the
// limit, not 400 after being read.
func TestBodyLimitAboveTheLargestResource(t *testing.T) {
	r := newRig(t, func(c *tocht.Config) { c.MaxBodyBytes = 20 << 20 })
	body := `{"resourceType":"Patient","name":[{"text":"` + strings.Repeat("x", 9<<20) + `"}]}`
	a := r.post(t, "/fhir/Patient", []byte(body))
	assert.Equal(t, http.StatusRequestEntityTooLarge, a.status, "%.300s", a.body)
	assert.Equal(t, "OperationOutcome", parseOutcome(t, a.body).ResourceType)
}

// FHIR bodies are UTF-8 (R4 http.html#mime-type: "FHIR uses UTF-8 for all
// request and response bodies"). A body declared in another charset is
// refused with 415 naming it, before it is read: read as UTF-8, the
// ISO-8859-1 bytes of patient-latin1-bytes.json ("RenÃ©") would be
// written as another name ("René"). A UTF-8 charset, in any case and by
// its alias utf8, is a plain body. So is a body declared of another FHIR
// version than R4.
func TestBodiesInAnotherCharsetOrFHIRVersionAreRefused(t *testing.T) {
	body := testdata(t, "patient-latin1-bytes.json")
	tests := []struct {
		name, ctype string
		want        string // in the outcome; "" for a write
	}{
		{"ISO-8859-1", "application/fhir+json; charset=ISO-8859-1", `charset "ISO-8859-1"`},
		{"windows-1252 plain JSON", "application/json;charset=windows-1252", `charset "windows-1252"`},
		{"UTF-16", "application/fhir+json; charset=utf-16", `charset "utf-16"`},
		{"quoted latin1", `application/fhir+json; charset="latin1"`, `charset "latin1"`},
		{"UTF-8", "application/fhir+json; charset=UTF-8", ""},
		{"utf8, an alias", "application/json; charset=utf8", ""},
		{"utf-8 with fhirVersion", "application/fhir+json; fhirVersion=4.0; charset=utf-8", ""},
		{"no charset", "application/fhir+json", ""},
		// The version parameter (R4 http.html#version-parameter): 3.0 is
		// STU3, whose resources would be read as R4.
		{"STU3", "application/fhir+json; fhirVersion=3.0", `fhirVersion "3.0"`},
		{"R5", "application/fhir+json; charset=utf-8; fhirVersion=5.0", `fhirVersion "5.0"`},
		{"R4 with its patch", "application/fhir+json; fhirVersion=4.0.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			a := r.send(t, http.MethodPost, "/fhir/Patient", tt.ctype, body)
			if tt.want == "" {
				assert.Equal(t, http.StatusCreated, a.status, "%s", a.body)
				return
			}
			assert.Equal(t, http.StatusUnsupportedMediaType, a.status, "%s", a.body)
			oo := parseOutcome(t, a.body)
			assert.Contains(t, oo.text(), tt.want)
			assert.Contains(t, oo.text(), "not-supported")
			assert.Equal(t, 0, r.countDocs(t, "name", "René"), "nothing written")
		})
	}
}
