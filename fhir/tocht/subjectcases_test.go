package tocht_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// withFHIR is a rig whose bridge looks Patients up on the fake FHIR
// server, which holds patients.
func withFHIR(t *testing.T, patients ...string) *rig {
	r := newRig(t)
	for _, p := range patients {
		require.NoError(t, r.fhir.Load([]byte(p)))
	}
	return rebuild(t, r, func(c *tocht.Config) { c.FHIRURL, c.HTTPClient = r.fhir.URL, r.fhir.Client() })
}

// An identifier without a system keys the person of an identifier without
// one (identifierKey): the FHIR lookup searches Patient?identifier=|value
// (R4 search.html#token: "|value" is no system), not the value in any
// system, which named another person's Patient (urn:mrn|1001).
func TestSubjectIdentifierWithoutSystemIsLookedUpWithoutOne(t *testing.T) {
	other := `{"resourceType":"Patient","id":"other","identifier":[{"system":"urn:mrn","value":"1001"}],"name":[{"text":"Someone Else"}]}`
	r := withFHIR(t, other)
	require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Patient", []byte(other)).status)
	sr := `{"resourceType":"ServiceRequest","id":"sr-a","status":"active","intent":"order","subject":{"identifier":{"value":"1001"}}}`
	a := r.post(t, "/fhir/ServiceRequest", []byte(sr))
	assert.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
	assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))

	bare := `{"resourceType":"Patient","id":"bare","identifier":[{"value":"1001"}],"name":[{"text":"Bare Id"}]}`
	r = withFHIR(t, other, bare)
	require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Patient", []byte(bare)).status)
	a = r.post(t, "/fhir/ServiceRequest", []byte(sr))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	assert.Equal(t, r.bridge.PersonID("1001"), r.reports(t, "INTEROP_FOLLOW_UP")[0]["fields"].(map[string]any)["patient_uuid"])
}

// A reference whose identifier names, on the FHIR server, another Patient
// than its literal reference names two patients (R4 references.html#logical
// has both name one), whether or not CHT has the identifier's yet: refused
// every time, not accepted until that person reaches CHT.
func TestSubjectPartsNamingTwoPatientsAreRefused(t *testing.T) {
	abc := `{"resourceType":"Patient","id":"abc","identifier":[{"system":"urn:emr","value":"A-1"}],"name":[{"text":"Alice"}]}`
	q := `{"resourceType":"Patient","id":"q","identifier":[{"system":"urn:emr","value":"Q-1"},{"system":"urn:nupi","value":"NUPI-Q"}],"name":[{"text":"Quinn"}]}`
	r := withFHIR(t, abc, q)
	require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Patient", []byte(abc)).status)
	task := `{"resourceType":"Task","id":"t-b","status":"requested","intent":"order",
	 "for":{"reference":"Patient/abc","identifier":{"system":"urn:nupi","value":"NUPI-Q"}},"authoredOn":"2024-05-02T10:00:00+03:00"}`
	for _, step := range []string{"before Quinn reaches CHT", "after"} {
		if step == "after" {
			require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Patient", []byte(q)).status)
		}
		a := r.post(t, "/fhir/Task", []byte(task))
		require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s: %s", step, a.body)
		assert.Contains(t, parseOutcome(t, a.body).text(), "must name the same patient", step)
		assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"), step)
	}
}

// A subject named by any identifier of a Patient the Bundle writes is that
// Patient, not only by the identifier that keys its person: a conditional
// update names the Patient by its national id while the person is keyed by
// its first identifier.
func TestSubjectByAnyIdentifierOfABundlePatient(t *testing.T) {
	for _, typ := range []string{"batch", "transaction"} {
		t.Run(typ, func(t *testing.T) {
			r := newRig(t)
			body := `{"resourceType":"Bundle","type":"` + typ + `","entry":[
 {"resource":{"resourceType":"Patient","identifier":[{"system":"urn:emr","value":"EMR-1"},{"system":"urn:nupi","value":"NUPI-1"}],"name":[{"text":"New Person"}]},
  "request":{"method":"PUT","url":"Patient?identifier=urn:nupi|NUPI-1"}},
 {"resource":{"resourceType":"ServiceRequest","id":"sr-d","status":"active","intent":"order","subject":{"identifier":{"system":"urn:nupi","value":"NUPI-1"}}},
  "request":{"method":"POST","url":"ServiceRequest"}}]}`
			a := r.post(t, "/fhir", []byte(body))
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			assert.Equal(t, []string{"201 Created", "201 Created"}, entryStatuses(bundleResponse(t, a.body)))
			reports := r.reports(t, "INTEROP_FOLLOW_UP")
			require.Len(t, reports, 1)
			assert.Equal(t, r.bridge.PersonID("urn:emr|EMR-1"), reports[0]["fields"].(map[string]any)["patient_uuid"])
		})
	}
}

// A report stored by an earlier version in the records API shape has its
// keys lower-cased; rewritten as the XForm's, a key the form spells in
// another case replaces the stored one instead of standing beside it with
// the value before the correction.
func TestXFormRewriteReplacesLowerCasedKeys(t *testing.T) {
	y, err := os.ReadFile("../default_mapping.yaml")
	require.NoError(t, err)
	m, err := fhir.ParseMapping([]byte(strings.Replace(string(y), "path: group_fever.malaria_rdt", "path: group_fever.malaria_RDT", 1)))
	require.NoError(t, err)
	r := newRig(t, func(c *tocht.Config) {
		conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: instanceURL, Mapping: m,
			Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID, TaskForm: "INTEROP_FOLLOW_UP", ObservationForm: "HEIGHT_WEIGHT"}})
		require.NoError(t, err)
		c.Converter = conv
	})
	id := r.bridge.ReportID("Encounter", "https://emr.example.org/encounter|ENC-RDT-1")
	_, err = r.cht.PutDoc(map[string]any{"_id": id, "type": "data_record", "form": "ASSESSMENT",
		"fields": map[string]any{"patient_uuid": chttest.DemoChildID,
			"group_fever": map[string]any{"malaria_rdt": "negative", "temperature": 36.5, "fever_days": 2}},
		"reported_date": 1714633200000, "errors": []any{}, "tasks": []any{},
		"sms_message": map[string]any{"form": "ASSESSMENT", "reported_date": 1714633200000}})
	require.NoError(t, err)
	a := r.post(t, "/fhir", testdata(t, "bundle-assessment-xform.json")) // the corrected RDT: Positive
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	fever := r.doc(t, id)["fields"].(map[string]any)["group_fever"].(map[string]any)
	assert.NotContains(t, fever, "malaria_rdt", "the value before the correction")
	assert.Contains(t, fever, "malaria_RDT")
	assert.EqualValues(t, 2, fever["fever_days"], "a field the re-send does not carry stays")
}
