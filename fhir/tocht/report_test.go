package tocht_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// observationsReport is the _id of the report of testdata/observations.json
// (Encounter ENC-7).
func observationsReport(r *rig) string {
	return r.bridge.ReportID("Encounter", "https://emr.example.org/encounter|ENC-7")
}

// transactionResponse decodes a transaction-response Bundle.
func transactionResponse(t *testing.T, body []byte) batchResponse {
	t.Helper()
	var resp batchResponse
	require.NoError(t, json.Unmarshal(body, &resp), "%s", body)
	require.Equal(t, "transaction-response", resp.Type, "%s", body)
	return resp
}

// TestDottedFieldPathObservationIsWritten: the default mapping's
// assessment form stores the body temperature at group_fever.temperature;
// CHT stores such a field nested (cht-core api/src/services/report/smsparser.js
// merge). Every send of the same valid Bundle is written, nested: a
// conversion that depended on map order refused some sends with a 422.
func TestDottedFieldPathObservationIsWritten(t *testing.T) {
	tests := []struct {
		name string
		obs  []string // Observation code and value members
		want map[string]any
	}{
		{"one field of a group", []string{
			`"code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},"valueQuantity":{"value":38.5,"unit":"°C","system":"http://unitsofmeasure.org","code":"Cel"}`},
			map[string]any{"temperature": 38.5}},
		{"two fields of a group", []string{
			`"code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},"valueQuantity":{"value":38.5,"unit":"°C","system":"http://unitsofmeasure.org","code":"Cel"}`,
			`"code":{"coding":[{"system":"http://snomed.info/sct","code":"386661006"}]},"valueBoolean":true`},
			map[string]any{"temperature": 38.5, "fever": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			entries := `{"fullUrl":"urn:uuid:5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c","resource":{"resourceType":"Encounter",
  "identifier":[{"system":"https://emr.example.org/encounter","value":"ENC-A1"}],"status":"finished",
  "class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},
  "type":[{"coding":[{"system":"https://cht.example.org/form","code":"assessment"}]}],
  "subject":{"identifier":{"system":"https://cht.example.org/medic","value":"` + chttest.DemoPatientID + `"}},
  "period":{"start":"2026-11-20T10:00:00Z"}}}`
			for _, o := range tt.obs {
				entries += `,{"resource":{"resourceType":"Observation","status":"final",
  "encounter":{"reference":"urn:uuid:5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c"},` + o + `}}`
			}
			body := []byte(`{"resourceType":"Bundle","type":"collection","entry":[` + entries + `]}`)
			for i := range 20 {
				a := r.post(t, "/fhir/Bundle", body)
				require.Equal(t, http.StatusOK, a.status, "send %d: %s", i, a.body)
			}
			fields := r.doc(t, r.bridge.ReportID("Encounter", "https://emr.example.org/encounter|ENC-A1"))["fields"].(map[string]any)
			assert.Equal(t, chttest.DemoPatientID, fields["patient_uuid"])
			assert.Equal(t, tt.want, fields["group_fever"], "the fields of group_fever, nested: %v", fields)
			assert.NotContains(t, fields, "group_fever.temperature", "the flat key is not stored")
		})
	}
}

// TestCHTTaggedObservationsAreSkippedEachOnItsOwn: the loop guard
// (Config.AcceptCHTOrigin off) judges each Observation by its own CHT
// source tag. An EMR that adds its own Observation to an Encounter whose
// other Observation came from CHT gets its own written, not a 200 for
// nothing written; the tagged one is acknowledged, not written back.
func TestCHTTaggedObservationsAreSkippedEachOnItsOwn(t *testing.T) {
	const tag = `"meta":{"tag":[{"system":"https://cht.example.org/source","code":"cht"}]},`
	tests := []struct {
		name     string
		tagged   []int // entries (1: height, 2: weight) that carry the tag
		fields   map[string]any
		statuses []string // of the entries: Encounter, height, weight
	}{
		{"none tagged", nil, map[string]any{"patient_uuid": chttest.DemoPatientID, "height": float64(168), "weight": 61.5},
			[]string{"201 Created", "201 Created", "201 Created"}},
		{"height from CHT, weight from the EMR", []int{1}, map[string]any{"patient_uuid": chttest.DemoPatientID, "weight": 61.5},
			[]string{"201 Created", "200 OK", "201 Created"}},
		{"both from CHT", []int{1, 2}, nil, []string{"200 OK", "200 OK", "200 OK"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			var b map[string]any
			require.NoError(t, json.Unmarshal(testdata(t, "observations.json"), &b))
			entries := b["entry"].([]any)
			for _, i := range tt.tagged {
				res := entries[i].(map[string]any)["resource"].(map[string]any)
				require.NoError(t, json.Unmarshal([]byte(`{`+tag[:len(tag)-1]+`}`), &res))
			}
			body, err := json.Marshal(b)
			require.NoError(t, err)

			a := r.post(t, "/fhir/Bundle", body)
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			resp := transactionResponse(t, a.body)
			require.Len(t, resp.Entry, 3)
			for i, want := range tt.statuses {
				assert.Equal(t, want, resp.Entry[i].Response.Status, "entry %d: %s", i, a.body)
			}
			for _, i := range tt.tagged {
				assert.Contains(t, resp.Entry[i].Response.Outcome.text(), "originated in CHT", "entry %d", i)
			}
			raw, ok := r.cht.Doc(observationsReport(r))
			if tt.fields == nil {
				assert.False(t, ok, "written back: %s", raw)
				return
			}
			require.True(t, ok, "the EMR's Observations were not written")
			assert.Equal(t, tt.fields, r.doc(t, observationsReport(r))["fields"])
		})
	}
}

// TestEncounterResendMergesObservationFields: each Observation is a FHIR
// resource of its own, so a later Bundle with the same Encounter and some
// of its Observations updates those fields of the report and keeps the
// others (the report is keyed on the Encounter). A ServiceRequest is one
// resource: its report is replaced whole.
func TestEncounterResendMergesObservationFields(t *testing.T) {
	tests := []struct {
		name   string
		second func(entries []any) []any // the entries re-sent
		edit   func(body []byte) []byte
		want   map[string]any
		status int
	}{
		{"a corrected weight only", func(e []any) []any { return []any{e[0], e[2]} },
			func(b []byte) []byte { return bytes.Replace(b, []byte(`"value":61.5`), []byte(`"value":62`), 1) },
			map[string]any{"patient_uuid": chttest.DemoPatientID, "height": float64(168), "weight": float64(62)}, http.StatusOK},
		{"the height only, unchanged", func(e []any) []any { return []any{e[0], e[1]} }, nil,
			map[string]any{"patient_uuid": chttest.DemoPatientID, "height": float64(168), "weight": 61.5}, http.StatusOK},
		{"everything, corrected", func(e []any) []any { return e },
			func(b []byte) []byte { return bytes.Replace(b, []byte(`"value":168`), []byte(`"value":169`), 1) },
			map[string]any{"patient_uuid": chttest.DemoPatientID, "height": float64(169), "weight": 61.5}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			first := testdata(t, "observations.json")
			a := r.post(t, "/fhir/Bundle", first)
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			rev := r.doc(t, observationsReport(r))["_rev"]

			var b map[string]any
			require.NoError(t, json.Unmarshal(first, &b))
			b["entry"] = tt.second(b["entry"].([]any))
			second, err := json.Marshal(b)
			require.NoError(t, err)
			if tt.edit != nil {
				second = tt.edit(second)
			}
			a = r.post(t, "/fhir/Bundle", second)
			require.Equal(t, tt.status, a.status, "%s", a.body)
			doc := r.doc(t, observationsReport(r))
			assert.Equal(t, tt.want, doc["fields"])
			if tt.edit == nil {
				assert.Equal(t, rev, doc["_rev"], "nothing changed, nothing written")
			}
		})
	}

	t.Run("a ServiceRequest is replaced whole", func(t *testing.T) {
		r := newRig(t)
		sr := testdata(t, "service-request.json")
		var m map[string]any
		require.NoError(t, json.Unmarshal(sr, &m))
		require.Contains(t, m, "reasonCode", "the test needs a reason to remove")
		a := r.post(t, "/fhir/ServiceRequest", sr)
		require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
		delete(m, "reasonCode")
		again, err := json.Marshal(m)
		require.NoError(t, err)
		a = r.post(t, "/fhir/ServiceRequest", again)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		reports := r.reports(t, "INTEROP_FOLLOW_UP")
		require.Len(t, reports, 1)
		assert.NotContains(t, reports[0]["fields"], "reason", "the removed reason stayed")
	})
}

// TestEncounterDateBecomesReportedDate: Encounter.period.start is a FHIR
// dateTime (http://hl7.org/fhir/R4/datatypes.html#dateTime), which may be
// a date alone. The report's reported_date is the start of that date, not
// the bridge's clock; a value that is no FHIR dateTime is refused naming
// the element, not replaced by the clock.
func TestEncounterDateBecomesReportedDate(t *testing.T) {
	tests := []struct {
		start string
		want  time.Time // zero: refused
	}{
		{"2026-11-20T10:00:00Z", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)},
		{"2026-11-20T12:00:00+02:00", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"2026-11", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"2026", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"garbage", time.Time{}},
		{"2026-11-20T10:00:00", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.start, func(t *testing.T) {
			r := newRig(t)
			body := bytes.Replace(testdata(t, "observations.json"), []byte(`"2026-11-20T10:00:00Z"`), []byte(strconv.Quote(tt.start)), 1)
			a := r.post(t, "/fhir/Bundle", body)
			if tt.want.IsZero() {
				require.True(t, a.status >= 400 && a.status < 500, "answered %d: %s", a.status, a.body)
				text := parseOutcome(t, a.body).text()
				assert.Contains(t, text, "Bundle.entry[0].resource.period.start")
				assert.Contains(t, text, fmt.Sprintf("%q is not a FHIR dateTime", tt.start))
				_, written := r.cht.Doc(observationsReport(r))
				assert.False(t, written)
				return
			}
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			got := r.doc(t, observationsReport(r))["reported_date"]
			assert.Equal(t, float64(tt.want.UnixMilli()), got, "reported_date %v, want %v (the bridge's clock is %v)",
				got, tt.want, now)
		})
	}
}
