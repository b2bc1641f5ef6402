package tocht_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

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
