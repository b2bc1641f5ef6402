package tocht_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// demoLineage is the minified lineage of a person of the demo household.
var demoLineage = map[string]any{"_id": chttest.DemoHouseholdID, "parent": map[string]any{"_id": chttest.DemoCHWAreaID,
	"parent": map[string]any{"_id": chttest.DemoHealthCentreID, "parent": map[string]any{"_id": chttest.DemoDistrictID}}}}

// setMembers stores the CHT document id again with the members given
// (nil deletes one), as a CHT user or another app could have written it.
func setMembers(t *testing.T, r *rig, id string, members map[string]any) {
	t.Helper()
	doc := r.doc(t, id)
	for k, v := range members {
		if v == nil {
			delete(doc, k)
			continue
		}
		doc[k] = v
	}
	_, err := r.cht.PutDoc(doc)
	require.NoError(t, err)
}

// A CHT contact may hold a standard member of another JSON type than
// cht.Contact decodes: CHT stores a person as it was sent, its people API
// checking the name only (cht-core shared-libs/contacts/src/people.js
// validatePerson), so a phone sent as a number stays a number. The bridge
// reads such a contact where it needs only its existence, type and
// lineage: as a report's subject, as the person a Patient updates (which
// is written back with the number as stored, also one below its parent),
// and as the parent place of a new person. A member it needs that cannot
// be read refuses the request naming that member (422, or 500 for the
// configured parent place), never a 502 the sender would retry forever;
// so does a shortcode whose contact CHT's contacts_by_reference view
// returns with such a member, which cht.ContactsService.ByShortcode cannot
// decode.
func TestContactWithAMemberOfAnotherType(t *testing.T) {
	const phone = 254712345678 // as a number
	person := func(id string, members map[string]any) map[string]any {
		doc := map[string]any{"_id": id, "type": "person", "name": "Numeric Phone", "patient_id": "77777",
			"phone": phone, "parent": demoLineage, "reported_date": 1795334400000}
		for k, v := range members {
			doc[k] = v
		}
		return doc
	}
	request := func(subject string) string {
		return `{"resourceType":"ServiceRequest","id":"sr-member","status":"active","intent":"order",` +
			`"subject":{"identifier":` + subject + `},"authoredOn":"2026-11-20T09:30:00Z"}`
	}
	byID := func(id string) string { return `{"system":"` + instanceURL + `/medic","value":"` + id + `"}` }
	patient := func(id, telecom string) string {
		return `{"resourceType":"Patient","identifier":[` + byID(id) + `],"name":[{"text":"Renamed"}]` + telecom + `}`
	}
	tests := []struct {
		name   string
		seed   func(t *testing.T, r *rig)
		path   string
		body   string
		status int
		check  func(t *testing.T, r *rig, stored map[string]any) // stored: p-member after the request
		want   []string                                          // in the outcome of a refusal
	}{
		{name: "the subject of a report", path: "/fhir/ServiceRequest", body: request(byID("p-member")), status: http.StatusCreated,
			check: func(t *testing.T, r *rig, _ map[string]any) {
				reports := r.reports(t, "INTEROP_FOLLOW_UP")
				require.Len(t, reports, 1)
				assert.Equal(t, "p-member", reports[0]["fields"].(map[string]any)["patient_uuid"])
			}},
		{name: "the person a Patient updates keeps its phone", path: "/fhir/Patient", body: patient("p-member", ""), status: http.StatusOK,
			check: func(t *testing.T, _ *rig, stored map[string]any) {
				assert.Equal(t, "Renamed", stored["name"])
				assert.Equal(t, float64(phone), stored["phone"], "the phone is kept as stored")
			}},
		{name: "the person a Patient updates takes the phone it gives", path: "/fhir/Patient",
			body:   patient("p-member", `,"telecom":[{"system":"phone","value":"+254700000009"}]`),
			status: http.StatusOK,
			check: func(t *testing.T, _ *rig, stored map[string]any) {
				assert.Equal(t, "Renamed", stored["name"])
				assert.Equal(t, "+254700000009", stored["phone"])
			}},
		{name: "a member below the parent is kept as stored",
			seed: func(t *testing.T, r *rig) {
				setMembers(t, r, "p-member", map[string]any{"parent": map[string]any{"_id": chttest.DemoHouseholdID,
					"parent": map[string]any{"_id": 7}}})
			},
			path: "/fhir/Patient", body: patient("p-member", ""), status: http.StatusOK,
			check: func(t *testing.T, _ *rig, stored map[string]any) {
				assert.Equal(t, "Renamed", stored["name"])
				assert.Equal(t, map[string]any{"_id": chttest.DemoHouseholdID, "parent": map[string]any{"_id": float64(7)}},
					stored["parent"], "the lineage is written back as stored")
			}},
		{name: "the parent place of a new person",
			seed: func(t *testing.T, r *rig) {
				setMembers(t, r, chttest.DemoHouseholdID, map[string]any{"phone": phone})
			},
			path: "/fhir/Patient", body: string(testdata(t, "patient.json")), status: http.StatusCreated,
			check: func(t *testing.T, r *rig, _ map[string]any) {
				created := r.doc(t, r.bridge.PersonID("https://emr.example.org/patient-id|EMR-0001"))
				assert.Equal(t, demoLineage, created["parent"])
			}},
		{name: "a subject whose type cannot be read",
			seed: func(t *testing.T, r *rig) { setMembers(t, r, "p-member", map[string]any{"type": 7}) },
			path: "/fhir/ServiceRequest", body: request(byID("p-member")), status: http.StatusUnprocessableEntity,
			want: []string{"ServiceRequest.subject", `"type" member`, "p-member"}},
		{name: "a person whose type cannot be read",
			seed: func(t *testing.T, r *rig) { setMembers(t, r, "p-member", map[string]any{"type": 7}) },
			path: "/fhir/Patient", body: patient("p-member", ""), status: http.StatusUnprocessableEntity,
			want: []string{"Patient.identifier", `"type" member`, "p-member"}},
		{name: "a parent place whose lineage cannot be read",
			seed: func(t *testing.T, r *rig) {
				setMembers(t, r, chttest.DemoHouseholdID, map[string]any{"parent": map[string]any{"_id": 7}})
			},
			path: "/fhir/Patient", body: string(testdata(t, "patient.json")), status: http.StatusInternalServerError,
			want: []string{"mediator configuration", `"parent._id" member`, chttest.DemoHouseholdID}},
		{name: "found by its shortcode", path: "/fhir/ServiceRequest",
			body: request(`{"system":"` + instanceURL + `/patient_id","value":"77777"}`), status: http.StatusCreated,
			check: func(t *testing.T, r *rig, _ map[string]any) {
				reports := r.reports(t, "INTEROP_FOLLOW_UP")
				require.Len(t, reports, 1)
				assert.Equal(t, "p-member", reports[0]["fields"].(map[string]any)["patient_uuid"])
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			_, err := r.cht.PutDoc(person("p-member", nil))
			require.NoError(t, err)
			if tt.seed != nil {
				tt.seed(t, r)
			}
			before, _ := r.cht.Doc("p-member")
			a := r.post(t, tt.path, []byte(tt.body))
			require.Equal(t, tt.status, a.status, "%s", a.body)
			if tt.check == nil {
				text := parseOutcome(t, a.body).text()
				for _, w := range tt.want {
					assert.Contains(t, text, w)
				}
				assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"), "a refused request wrote a report")
				after, _ := r.cht.Doc("p-member")
				assert.JSONEq(t, string(before), string(after), "a refused request changed the person")
				return
			}
			tt.check(t, r, r.doc(t, "p-member"))
		})
	}
}

// CHT's API parses the body of a document written through it and hands
// CouchDB JSON.stringify of it (cht-core api/src/routing.js
// writeParsedBody), so a report sent with 61.50 and 168.0 is stored with
// 61.5 and 168. Sending the same Observations again, with the numbers
// spelled as before, is no change: the report is not written again. The
// stored report is put in CHT's spelling here, whatever the fake stores.
func TestResentNumbersAreComparedByValue(t *testing.T) {
	tests := []struct {
		name           string
		height, weight string // as sent
	}{
		{"trailing zeros", "168.0", "61.50"},
		{"exponents", "1.68e2", "6.15E1"},
		{"as CHT spells them", "168", "61.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			body := testdata(t, "observations.json")
			body = bytes.Replace(body, []byte(`"value": 168,`), []byte(`"value": `+tt.height+`,`), 1)
			body = bytes.Replace(body, []byte(`"value": 61.5,`), []byte(`"value": `+tt.weight+`,`), 1)
			require.Contains(t, string(body), tt.weight, "the test needs the weight replaced")
			a := r.post(t, "/fhir/Bundle", body)
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)

			id := observationsReport(r)
			stored := r.doc(t, id) // numbers as float64: re-encoded as JSON.stringify writes these
			_, err := r.cht.PutDoc(stored)
			require.NoError(t, err)
			raw, _ := r.cht.Doc(id)
			require.Contains(t, string(raw), `"weight":61.5`, "the stored report is in CHT's spelling")

			a = r.post(t, "/fhir/Bundle", body)
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			again := r.doc(t, id)
			assert.Equal(t, stored["_rev"], again["_rev"], "the same Observations rewrote the report")
			assert.Equal(t, map[string]any{"patient_uuid": chttest.DemoPatientID, "height": float64(168), "weight": 61.5},
				again["fields"])
		})
	}
}

// A report's reported_date is the date of the resource it is made of
// (Encounter.period.start, a ServiceRequest's or Task's authoredOn), and
// the CHW task is scheduled by it: a resource sent again with only its
// date corrected moves the report to that date. The report of a
// ServiceRequest whose Task raised it keeps the Task's fields and time
// (see the package documentation), so a ServiceRequest sent after its Task
// does not move it; nor does a resource sent again with the same date
// write the report again.
func TestCorrectedDateAloneMovesTheReport(t *testing.T) {
	const (
		encStart = `"2026-11-20T10:00:00Z"`
		authored = `"2026-11-20T09:30:00Z"`
	)
	request := func(ident, date string) []byte {
		return []byte(`{"resourceType":"ServiceRequest","id":"sr-date",` + ident + `"status":"active","intent":"order",` +
			`"subject":{"identifier":{"system":"` + instanceURL + `/medic","value":"` + chttest.DemoPatientID + `"}},` +
			`"reasonCode":[{"text":"Missed visit"}],"authoredOn":` + date + `}`)
	}
	task := []byte(`{"resourceType":"Task","id":"task-date","status":"requested","intent":"order",` +
		`"basedOn":[{"reference":"ServiceRequest/sr-date"}],` +
		`"for":{"identifier":{"system":"` + instanceURL + `/medic","value":"` + chttest.DemoPatientID + `"}},` +
		`"authoredOn":"2026-11-21T08:00:00Z"}`)
	observations := func(start string) []byte {
		return bytes.Replace(testdata(t, "observations.json"), []byte(encStart), []byte(start), 1)
	}
	ms := func(s string) float64 {
		at, err := time.Parse(time.RFC3339, strings.Trim(s, `"`))
		require.NoError(t, err)
		return float64(at.UnixMilli())
	}
	type send struct {
		path string
		body []byte
	}
	tests := []struct {
		name    string
		first   []send
		again   send
		form    string
		want    string // the report's reported_date
		rewrite bool   // the second send writes the report
	}{
		{"an Encounter a day earlier", []send{{"/fhir/Bundle", observations(encStart)}},
			send{"/fhir/Bundle", observations(`"2026-11-19T10:00:00Z"`)}, "HEIGHT_WEIGHT", `"2026-11-19T10:00:00Z"`, true},
		{"the same Encounter", []send{{"/fhir/Bundle", observations(encStart)}},
			send{"/fhir/Bundle", observations(encStart)}, "HEIGHT_WEIGHT", encStart, false},
		{"a ServiceRequest with a corrected authoredOn",
			[]send{{"/fhir/ServiceRequest", request(`"identifier":[{"system":"https://emr.example.org/sr","value":"SR-D"}],`, authored)}},
			send{"/fhir/ServiceRequest", request(`"identifier":[{"system":"https://emr.example.org/sr","value":"SR-D"}],`, `"2026-11-19T09:30:00Z"`)},
			"INTEROP_FOLLOW_UP", `"2026-11-19T09:30:00Z"`, true},
		{"the same ServiceRequest", []send{{"/fhir/ServiceRequest", request("", authored)}},
			send{"/fhir/ServiceRequest", request("", authored)}, "INTEROP_FOLLOW_UP", authored, false},
		{"a ServiceRequest after its Task raised the report",
			[]send{{"/fhir/ServiceRequest", request("", authored)}, {"/fhir/Task", task}},
			send{"/fhir/ServiceRequest", request("", `"2026-11-19T09:30:00Z"`)}, "INTEROP_FOLLOW_UP", `"2026-11-21T08:00:00Z"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			demo := map[any]bool{} // the demo's reports
			for _, rep := range r.reports(t, tt.form) {
				demo[rep["_id"]] = true
			}
			written := func() []map[string]any {
				var out []map[string]any
				for _, rep := range r.reports(t, tt.form) {
					if !demo[rep["_id"]] {
						out = append(out, rep)
					}
				}
				return out
			}
			for _, s := range tt.first {
				a := r.post(t, s.path, s.body)
				require.Less(t, a.status, 300, "%s", a.body)
			}
			reports := written()
			require.Len(t, reports, 1)
			before := reports[0]

			a := r.post(t, tt.again.path, tt.again.body)
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			reports = written()
			require.Len(t, reports, 1, "one report")
			assert.Equal(t, ms(tt.want), reports[0]["reported_date"])
			assert.Equal(t, tt.rewrite, before["_rev"] != reports[0]["_rev"], "report written again")
			assert.Equal(t, before["fields"], reports[0]["fields"], "the fields are unchanged")
		})
	}
}
