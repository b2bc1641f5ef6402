package tocht_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// Equal identifier values of different systems are different persons, and a
// subject identifier resolves to the person of its own system.
func TestPatientKeyIncludesIdentifierSystem(t *testing.T) {
	r := newRig(t)
	a := r.post(t, "/fhir/Patient", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:nid","value":"1001"}],"name":[{"text":"Alice Alpha"}]}`))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	a = r.post(t, "/fhir/Patient", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"1001"}],"name":[{"text":"Bob Beta"}]}`))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)

	alice, bob := r.bridge.PersonID("urn:nid|1001"), r.bridge.PersonID("urn:mrn|1001")
	require.NotEqual(t, alice, bob)
	assert.Equal(t, "Alice Alpha", r.doc(t, alice)["name"])
	assert.Equal(t, "Bob Beta", r.doc(t, bob)["name"])
	assert.Equal(t, "1001", r.doc(t, bob)["external_id"], "external_id keeps the bare value")

	a = r.post(t, "/fhir/ServiceRequest", []byte(`{"resourceType":"ServiceRequest","id":"sr-bob","status":"active",
		"intent":"order","subject":{"identifier":{"system":"urn:mrn","value":"1001"}}}`))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	reports := r.reports(t, "INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1)
	assert.Equal(t, bob, reports[0]["fields"].(map[string]any)["patient_uuid"])
}

// A transaction whose subject check fails writes nothing, not even the
// entries before it.
func TestTransactionWithAMissingSubjectWritesNothing(t *testing.T) {
	r := newRig(t)
	before := len(r.cht.Docs())
	body := `{"resourceType":"Bundle","type":"transaction","entry":[
 {"resource":{"resourceType":"Patient","identifier":[{"system":"urn:nid","value":"new-777"}],"name":[{"text":"New Person"}]}},
 {"resource":{"resourceType":"ServiceRequest","id":"sr-1","status":"active","intent":"order","subject":{"identifier":{"system":"urn:nid","value":"nobody-999"}}}}]}`
	a := r.post(t, "/fhir", []byte(body))
	require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
	oo := parseOutcome(t, a.body)
	assert.Contains(t, oo.text(), "Bundle.entry[1]")
	assert.Contains(t, oo.text(), "no CHT person")
	assert.Zero(t, r.countDocs(t, "external_id", "new-777"), "the Patient of the failed transaction was written")
	assert.Equal(t, before, len(r.cht.Docs()), "documents written")
}

// An Observation that refers to an Encounter outside the Bundle is not
// folded into the Bundle's only Encounter.
func TestObservationOfAnotherEncounterIsNotFoldedIn(t *testing.T) {
	r := newRig(t)
	var bundle map[string]any
	require.NoError(t, json.Unmarshal(testdata(t, "observations.json"), &bundle))
	bundle["entry"] = append(bundle["entry"].([]any), map[string]any{"resource": map[string]any{
		"resourceType": "Observation", "id": "obs-other-visit", "status": "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8302-2"}}},
		"subject":           map[string]any{"identifier": map[string]any{"system": "https://cht.example.org/medic", "value": chttest.DemoPatientID}},
		"encounter":         map[string]any{"reference": "Encounter/other-visit"},
		"effectiveDateTime": "2026-11-21T09:00:00Z",
		"valueQuantity":     map[string]any{"value": 170, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"},
	}})
	body, err := json.Marshal(bundle)
	require.NoError(t, err)
	a := r.post(t, "/fhir/Bundle", body)
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)

	enc := r.doc(t, r.bridge.ReportID("Encounter", "https://emr.example.org/encounter|ENC-7"))
	assert.Equal(t, map[string]any{"patient_uuid": chttest.DemoPatientID, "height": float64(168), "weight": 61.5}, enc["fields"])
	var heights []any
	for _, rep := range r.reports(t, "HEIGHT_WEIGHT") {
		heights = append(heights, rep["fields"].(map[string]any)["height"])
	}
	assert.Contains(t, heights, float64(170), "the other visit's Observation is a report of its own")
}

// A Patient updates only a CHT person, never a place, and never writes a
// document whose _id CouchDB reserves; a report's subject must be a person.
func TestPatientTargetMustBeAPerson(t *testing.T) {
	medic := func(id string) string {
		return `{"system":"https://cht.example.org/medic","value":"` + id + `"}`
	}
	tests := []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"Patient onto a configurable place", "/fhir/Patient",
			`{"resourceType":"Patient","identifier":[` + medic(chttest.DemoHouseholdID) + `],"name":[{"text":"Not A Place"}]}`,
			http.StatusUnprocessableEntity, "not a person"},
		{"Patient onto a legacy place", "/fhir/Patient",
			`{"resourceType":"Patient","identifier":[` + medic(chttest.DemoHealthCentreID) + `],"name":[{"text":"Not A Place"}]}`,
			http.StatusUnprocessableEntity, "not a person"},
		{"Patient under a reserved _id", "/fhir/Patient",
			`{"resourceType":"Patient","identifier":[` + medic("_design/medic") + `],"name":[{"text":"Reserved"}]}`,
			http.StatusBadRequest, "Patient.identifier"},
		{"ServiceRequest about a place", "/fhir/ServiceRequest",
			`{"resourceType":"ServiceRequest","id":"sr-place","status":"active","intent":"order","subject":{"identifier":` + medic(chttest.DemoHouseholdID) + `}}`,
			http.StatusUnprocessableEntity, "not a person"},
		{"ServiceRequest about a reserved _id", "/fhir/ServiceRequest",
			`{"resourceType":"ServiceRequest","id":"sr-reserved","status":"active","intent":"order","subject":{"identifier":` + medic("_design/medic") + `}}`,
			http.StatusBadRequest, "ServiceRequest.subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			before := r.cht.Docs()
			a := r.post(t, tt.path, []byte(tt.body))
			require.Equal(t, tt.status, a.status, "%s", a.body)
			assert.Contains(t, parseOutcome(t, a.body).text(), tt.want)
			assert.Equal(t, before, r.cht.Docs(), "CHT changed")
		})
	}
}

// A subject given by its CHT patient_id shortcode (an identifier with the
// converter's PatientID system) is the one CHT contact carrying it, found
// as CHT itself resolves a report's patient_id (shared-libs/lineage/src/
// hydration.js contactUuidByShortcode, medic-client/contacts_by_reference),
// and the report names that person by _id. No contact, several, or a
// place is refused before anything is written; CHT failing is retried,
// alone or in a transaction.
func TestSubjectByPatientIDShortcode(t *testing.T) {
	const system = instanceURL + "/patient_id"
	request := func(rt, code string) []byte {
		if rt == "Observation" {
			return []byte(`{"resourceType":"Observation","id":"obs-` + code + `","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
				"subject":{"identifier":{"system":"` + system + `","value":"` + code + `"}},"effectiveDateTime":"2026-11-20",
				"valueQuantity":{"value":61.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`)
		}
		subject := "subject"
		if rt == "Task" {
			subject = "for"
		}
		return []byte(`{"resourceType":"` + rt + `","id":"req-` + code + `","status":"` + map[string]string{"Task": "requested", "ServiceRequest": "active"}[rt] +
			`","intent":"order","` + subject + `":{"identifier":{"system":"` + system + `","value":"` + code + `"}}}`)
	}
	tests := []struct {
		name   string
		rt     string
		code   string
		fault  bool
		status int
		want   string // the report's patient_uuid, or text of the outcome
	}{
		{"a person's shortcode", "ServiceRequest", "13985", false, http.StatusCreated, chttest.DemoPatientID},
		{"a Task's for", "Task", "13985", false, http.StatusCreated, chttest.DemoPatientID},
		{"an Observation's subject", "Observation", "13985", false, http.StatusCreated, chttest.DemoPatientID},
		{"no contact has it", "ServiceRequest", "99999", false, http.StatusUnprocessableEntity, `no CHT contact has the patient_id "99999"`},
		{"two contacts have it", "ServiceRequest", "55555", false, http.StatusUnprocessableEntity, `2 CHT contacts have the patient_id "55555" (dup-a, dup-b)`},
		{"a place's shortcode", "ServiceRequest", "11003", false, http.StatusUnprocessableEntity, "not a person"},
		{"CHT failing", "ServiceRequest", "13985", true, http.StatusBadGateway, "find the contact with patient_id"},
		// In a transaction the lookup runs before anything is written; CHT
		// failing is still CHT's failure, which the sender retries, not a
		// 422 it would not.
		{"in a transaction: no contact has it", "Bundle", "99999", false, http.StatusUnprocessableEntity, `no CHT contact has the patient_id "99999"`},
		{"in a transaction: CHT failing", "Bundle", "13985", true, http.StatusBadGateway, "find the contact with patient_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			require.NoError(t, r.cht.PutDocs(
				map[string]any{"_id": "dup-b", "type": "person", "name": "B", "patient_id": "55555"},
				map[string]any{"_id": "dup-a", "type": "person", "name": "A", "patient_id": "55555"},
			))
			if tt.fault {
				r.cht.InjectFault(chttest.Fault{Path: "/medic/_design/*", Status: http.StatusServiceUnavailable})
			}
			form := "INTEROP_FOLLOW_UP"
			if tt.rt == "Observation" {
				form = "HEIGHT_WEIGHT"
			}
			path, body := "/fhir/"+tt.rt, request(tt.rt, tt.code)
			if tt.rt == "Bundle" {
				path, body = "/fhir", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":`+
					string(request("ServiceRequest", tt.code))+`,"request":{"method":"POST","url":"ServiceRequest"}}]}`)
			}
			seen := map[any]bool{}
			for _, rep := range r.reports(t, form) {
				seen[rep["_id"]] = true
			}
			a := r.post(t, path, body)
			require.Equal(t, tt.status, a.status, "%s", a.body)
			var reports []map[string]any // the reports written
			for _, rep := range r.reports(t, form) {
				if !seen[rep["_id"]] {
					reports = append(reports, rep)
				}
			}
			if tt.status != http.StatusCreated {
				assert.Contains(t, parseOutcome(t, a.body).text(), tt.want)
				assert.Empty(t, reports, "a refused request wrote a report")
				return
			}
			require.Len(t, reports, 1)
			fields := reports[0]["fields"].(map[string]any)
			assert.Equal(t, tt.want, fields["patient_uuid"])
			assert.NotContains(t, fields, "patient_id", "the report names the person by _id only")
		})
	}
}

// A Patient that names a CHT person by _id (an identifier with the CHT
// document system) updates that person and never creates one: a missing
// _id, which could be a deleted person's or one of CHT's own documents
// (branding, partners), is refused before anything is written, alone or in
// a transaction.
func TestPatientNamingAMissingCHTDocumentIsRefused(t *testing.T) {
	patient := func(id string) string {
		return `{"resourceType":"Patient","identifier":[{"system":"` + instanceURL + `/medic","value":"` + id + `"}],` +
			`"name":[{"text":"Named"}],"gender":"female"}`
	}
	for _, tt := range []struct {
		name, path, body string
		status           int
	}{
		{"a missing person", "/fhir/Patient", patient("no-such-person-xyz"), http.StatusUnprocessableEntity},
		{"one of CHT's documents", "/fhir/Patient", patient("branding"), http.StatusUnprocessableEntity},
		{"in a transaction", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"resource":` + patient("no-such-person-xyz") + `,"request":{"method":"POST","url":"Patient"}}]}`, http.StatusUnprocessableEntity},
		{"an existing person", "/fhir/Patient", patient(chttest.DemoPatientID), http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			a := r.post(t, tt.path, []byte(tt.body))
			require.Equal(t, tt.status, a.status, "%s", a.body)
			if tt.status != http.StatusOK {
				assert.Contains(t, parseOutcome(t, a.body).text(), "no CHT document has the _id")
				_, ok := r.cht.Doc("no-such-person-xyz")
				assert.False(t, ok, "no person created")
				_, ok = r.cht.Doc("branding")
				assert.False(t, ok)
				return
			}
			assert.Equal(t, "Named", r.doc(t, chttest.DemoPatientID)["name"])
		})
	}
}
