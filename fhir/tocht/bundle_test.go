package tocht_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// medicID is a CHT _id identifier of the rig's instance.
func medicID(id string) string {
	return `{"system":"https://cht.example.org/medic","value":"` + id + `"}`
}

// A transaction is refused whole or written whole: an entry that only a
// CHT read can refuse (a Patient whose CHT _id names a place) is found
// before the first write, so the entries before it are not written either
// and the 422, which the sender does not retry, leaves CHT unchanged.
func TestTransactionRefusedAtWriteTimeWritesNothing(t *testing.T) {
	placePatient := func(id string) string {
		return `{"resourceType":"Patient","identifier":[` + medicID(id) + `],"name":[{"text":"Not A Person"}]}`
	}
	tests := []struct {
		name    string
		entries []string
		bad     string // the entry named by the answer
	}{
		{"new Patient, then a Patient onto a household", []string{"patient.json", placePatient(chttest.DemoHouseholdID)}, "Bundle.entry[1]"},
		{"new Patient, then a Patient onto a legacy place", []string{"patient.json", placePatient(chttest.DemoHealthCentreID)}, "Bundle.entry[1]"},
		{"ServiceRequest, then a Patient onto a household", []string{"service-request.json", placePatient(chttest.DemoHouseholdID)}, "Bundle.entry[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			var entries string
			for i, e := range tt.entries {
				if e[0] != '{' {
					e = string(testdata(t, e))
				}
				if i > 0 {
					entries += ","
				}
				entries += `{"resource":` + e + `}`
			}
			before := r.cht.Docs()
			a := r.post(t, "/fhir", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+entries+`]}`))
			require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
			text := parseOutcome(t, a.body).text()
			assert.Contains(t, text, tt.bad+".resource.identifier")
			assert.Contains(t, text, "not a person")
			assert.Equal(t, before, r.cht.Docs(), "a refused transaction changed CHT")
		})
	}
}
