package tocht_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
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

// batchResponse decodes a batch-response Bundle.
type batchResponse struct {
	Type  string
	Entry []struct {
		Response struct {
			Status  string
			Outcome outcome
		}
	}
}

func parseBatch(t *testing.T, body []byte) batchResponse {
	t.Helper()
	var resp batchResponse
	require.NoError(t, json.Unmarshal(body, &resp), "%s", body)
	require.Equal(t, "batch-response", resp.Type, "%s", body)
	return resp
}

// In a batch, a report whose subject is a Patient of the same Bundle is not
// written when that Patient was not: it fails with the Patient's kind of
// error (422 when CHT refused the Patient, the CHT failure when CHT failed,
// so that the sender retries both), naming the Patient's entry.
func TestBatchReportAboutAFailedPatientIsNotWritten(t *testing.T) {
	const fullURL = "urn:uuid:11111111-1111-4111-8111-111111111111"
	batch := func(patient string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"batch","entry":[
 {"fullUrl":"` + fullURL + `","resource":` + patient + `},
 {"resource":{"resourceType":"ServiceRequest","id":"sr-batch-1","status":"active","intent":"order","subject":{"reference":"` + fullURL + `"}}}]}`)
	}
	newPatient := `{"resourceType":"Patient","identifier":[{"system":"urn:nid","value":"batch-1"}],"name":[{"text":"Batch Person"}]}`
	tests := []struct {
		name    string
		patient string
		fault   *chttest.Fault // on the CHT writes, removed before the retry
		status  int            // of the batch
		entry   string         // status of both entries
		want    string         // in the ServiceRequest's outcome
	}{
		{"Patient onto a household", `{"resourceType":"Patient","identifier":[` + medicID(chttest.DemoHouseholdID) + `],"name":[{"text":"X"}]}`,
			nil, http.StatusOK, "422 Unprocessable Entity", "Bundle.entry[1].resource.subject: the subject, Bundle.entry[0], was not written"},
		{"CHT fails the Patient's write", newPatient,
			&chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: http.StatusServiceUnavailable, Count: 1},
			http.StatusBadGateway, "502 Bad Gateway", "the subject, Bundle.entry[0], was not written"},
		// Refused before any write, the Patient leaves its fullUrl
		// unresolved: the ServiceRequest has no subject.
		{"Patient without identity", `{"resourceType":"Patient","name":[{"text":"No Id"}]}`,
			nil, http.StatusOK, "422 Unprocessable Entity", "Bundle.entry[1].resource.subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			remove := func() {}
			if tt.fault != nil {
				remove = r.cht.InjectFault(*tt.fault)
			}
			before := r.cht.Docs()
			a := r.post(t, "/fhir", batch(tt.patient))
			remove()
			require.Equal(t, tt.status, a.status, "%s", a.body)
			resp := parseBatch(t, a.body)
			require.Len(t, resp.Entry, 2)
			for i, e := range resp.Entry {
				assert.Equal(t, tt.entry, e.Response.Status, "entry %d", i)
			}
			assert.Contains(t, resp.Entry[1].Response.Outcome.text(), tt.want)
			assert.Equal(t, before, r.cht.Docs(), "CHT changed")

			if tt.fault != nil {
				// The retried batch writes the person and its report.
				a = r.post(t, "/fhir", batch(tt.patient))
				require.Equal(t, http.StatusOK, a.status, "%s", a.body)
				reports := r.reports(t, "INTEROP_FOLLOW_UP")
				require.Len(t, reports, 1)
				assert.Equal(t, r.bridge.PersonID("urn:nid|batch-1"), reports[0]["fields"].(map[string]any)["patient_uuid"])
			}
		})
	}
}

// A transaction that sends one new Patient twice writes it once and then
// updates it: the check read it as missing before the first write, and
// the second write, finding it created, reads it again and updates it.
func TestTransactionWithOnePatientTwice(t *testing.T) {
	r := newRig(t)
	p := string(testdata(t, "patient.json"))
	renamed := strings.Replace(p, `"1990-04-12"`, `"1990-04-13"`, 1)
	require.NotEqual(t, p, renamed)
	before := len(r.cht.Docs())
	a := r.post(t, "/fhir", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":`+p+`},{"resource":`+renamed+`}]}`))
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	var resp struct {
		Entry []struct{ Response struct{ Status string } }
	}
	require.NoError(t, json.Unmarshal(a.body, &resp))
	require.Len(t, resp.Entry, 2)
	assert.Equal(t, "201 Created", resp.Entry[0].Response.Status)
	assert.Equal(t, "200 OK", resp.Entry[1].Response.Status)
	assert.Len(t, r.cht.Docs(), before+1, "exactly one document")
	assert.Equal(t, "1990-04-13", r.doc(t, r.bridge.PersonID("https://emr.example.org/patient-id|EMR-0001"))["date_of_birth"])

	// An existing person renamed by the first entry and named back by the
	// second: the second compares with the stored person, not with the
	// copy the transaction's check read before the first write.
	name := r.doc(t, chttest.DemoPatientID)["name"].(string)
	rename := func(to string) string {
		return `{"resource":{"resourceType":"Patient","identifier":[` + medicID(chttest.DemoPatientID) + `],"name":[{"text":"` + to + `"}]}}`
	}
	a = r.post(t, "/fhir", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+rename("Renamed")+`,`+rename(name)+`]}`))
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	assert.Equal(t, name, r.doc(t, chttest.DemoPatientID)["name"], "the second entry's name")
}

// A parent place for new people that does not exist is the mediator's
// configuration error (500); in a transaction it is found before the first
// write, so that nothing of the transaction is written, not the update of
// an existing person before the new one.
func TestTransactionWithAMissingParentPlaceWritesNothing(t *testing.T) {
	r := newRig(t)
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: instanceURL, Mapping: fhir.DefaultMapping(),
		Inbound: fhir.InboundConfig{ParentPlace: "no-such-place", TaskForm: "INTEROP_FOLLOW_UP"}})
	require.NoError(t, err)
	r = rebuild(t, r, func(c *tocht.Config) { c.Converter = conv })
	existing := `{"resourceType":"Patient","identifier":[` + medicID(chttest.DemoPatientID) + `],"name":[{"text":"Renamed Before The Failure"}]}`
	body := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + existing + `},{"resource":` + string(testdata(t, "patient.json")) + `}]}`
	name := r.doc(t, chttest.DemoPatientID)["name"]
	before := len(r.cht.Docs())
	a := r.post(t, "/fhir", []byte(body))
	require.Equal(t, http.StatusInternalServerError, a.status, "%s", a.body)
	assert.Contains(t, parseOutcome(t, a.body).text(), "no-such-place")
	assert.Equal(t, name, r.doc(t, chttest.DemoPatientID)["name"], "the existing person was updated")
	assert.Len(t, r.cht.Docs(), before, "a document was created")
}

// The new people of one transaction read their parent place once, and each
// gets its own copy of the lineage under it.
func TestTransactionReadsTheParentPlaceOnce(t *testing.T) {
	r := newRig(t)
	var entries []string
	for i := range 3 {
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:nid","value":"n-%d"}],"name":[{"text":"New %d"}]}}`, i, i))
	}
	a := r.post(t, "/fhir", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`))
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	reads := 0
	for _, q := range r.cht.Requests() {
		if q.Method == http.MethodGet && q.Path == "/medic/"+chttest.DemoHouseholdID {
			reads++
		}
	}
	assert.Equal(t, 1, reads, "reads of the parent place")
	household := r.doc(t, chttest.DemoHouseholdID)
	for i := range 3 {
		p := r.doc(t, r.bridge.PersonID(fmt.Sprintf("urn:nid|n-%d", i)))
		assert.Equal(t, fmt.Sprintf("New %d", i), p["name"])
		parent, _ := p["parent"].(map[string]any)
		assert.Equal(t, chttest.DemoHouseholdID, parent["_id"])
		assert.Equal(t, household["parent"], parent["parent"], "the household's own lineage, minified")
	}
}

// A Bundle of more entries than Config.MaxBundleEntries (of any type) is
// refused whole with 413 before anything is written, naming Bundle.entry
// and saying the cap and how to split it; one at the cap is written.
func TestBundleEntryCap(t *testing.T) {
	tests := []struct {
		name    string
		cap     int // Config.MaxBundleEntries
		typ     string
		entries int
		status  int
	}{
		{"transaction over the cap", 3, "transaction", 4, http.StatusRequestEntityTooLarge},
		{"batch over the cap", 3, "batch", 4, http.StatusRequestEntityTooLarge},
		{"collection over the cap", 3, "collection", 4, http.StatusRequestEntityTooLarge},
		{"far over the cap", 3, "batch", 1000, http.StatusRequestEntityTooLarge},
		{"transaction at the cap", 3, "transaction", 3, http.StatusOK},
		{"batch at the cap", 3, "batch", 3, http.StatusOK},
		{"over the default cap", 0, "transaction", tocht.DefaultMaxBundleEntries + 1, http.StatusRequestEntityTooLarge},
		{"at the default cap", 0, "transaction", tocht.DefaultMaxBundleEntries, http.StatusOK},
	}
	patient := string(testdata(t, "patient.json"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, func(c *tocht.Config) { c.MaxBundleEntries = tt.cap })
			entries := make([]string, tt.entries)
			for i := range entries {
				p := strings.Replace(patient, `"EMR-0001"`, fmt.Sprintf(`"EMR-CAP-%04d"`, i), 1)
				entries[i] = `{"resource":` + p + `}`
			}
			before := r.cht.Docs()
			a := r.post(t, "/fhir", []byte(`{"resourceType":"Bundle","type":"`+tt.typ+`","entry":[`+strings.Join(entries, ",")+`]}`))
			require.Equal(t, tt.status, a.status, "%.300s", a.body)
			if tt.status == http.StatusOK {
				assert.Len(t, r.cht.Docs(), len(before)+tt.entries, "every entry written")
				return
			}
			assert.Equal(t, before, r.cht.Docs(), "a refused Bundle changed CHT")
			assert.Empty(t, a.header.Get("Retry-After"), "sent again, the Bundle would be refused again")
			oo := parseOutcome(t, a.body)
			require.Len(t, oo.Issue, 1)
			is := oo.Issue[0]
			assert.Equal(t, []string{"Bundle.entry"}, is.Expression)
			assert.Equal(t, "too-costly", is.Code)
			limit := tt.cap
			if limit == 0 {
				limit = tocht.DefaultMaxBundleEntries
			}
			assert.Contains(t, is.Diagnostics, fmt.Sprintf("has %d entries, more than the %d", tt.entries, limit))
			assert.Contains(t, is.Diagnostics, fmt.Sprintf("split it into Bundles of at most %d entries", limit))
		})
	}
}
