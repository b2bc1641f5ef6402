package tocht_test

// Subjects named by another identifier of the Patient than the one its CHT
// person is keyed by, or by both an identifier and a literal reference, as
// KenyaEMR's referral exchange and R4 references send them.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// The KenyaEMR Patient of testdata/patient-kenyaemr.json: its OpenMRS ID
// comes first, so its CHT person is keyed by it; its NUPI comes second.
const (
	kenyaPatientID = "a8b5c7c2-5b4e-4a3c-9d2f-1e2f3a4b5c6d"
	kenyaKey       = "MGKK4P" // the OpenMRS ID, without system
	nupiSystem     = "https://example.org/kenya/nupi"
	nupi           = "MOH1234567890"
)

// subjectCase is one request about the KenyaEMR Patient.
type subjectCase struct {
	name    string
	fhir    bool     // Config.FHIRURL is the fake FHIR server, which holds the Patient
	sent    []string // Patients sent to the bridge first (JSON)
	onFHIR  []string // more Patients on the FHIR server
	faults  *fhirtest.Faults
	timeout time.Duration
	path    string
	body    []byte
	status  int
	want    string // the report's patient_uuid, or text of the outcome
}

// runSubjectCases sends each case's body to a rig set up as it says, and
// checks the answer and that a refused request wrote nothing.
func runSubjectCases(t *testing.T, form string, tests []subjectCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if tt.fhir {
				require.NoError(t, r.fhir.Load(testdata(t, "patient-kenyaemr.json")))
				for _, p := range tt.onFHIR {
					require.NoError(t, r.fhir.Load([]byte(p)))
				}
				r = rebuild(t, r, func(c *tocht.Config) {
					c.FHIRURL, c.HTTPClient, c.Timeout = r.fhir.URL, r.fhir.Client(), tt.timeout
				})
			}
			for _, p := range tt.sent {
				a := r.post(t, "/fhir/Patient", []byte(p))
				require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
			}
			if tt.faults != nil {
				require.NoError(t, r.fhir.SetFaults(*tt.faults))
			}
			before := len(r.cht.Docs())
			a := r.post(t, tt.path, tt.body)
			require.Equal(t, tt.status, a.status, "%s", a.body)
			reports := r.reports(t, form)
			if tt.status >= 300 {
				assert.Contains(t, parseOutcome(t, a.body).text(), tt.want)
				assert.Empty(t, reports, "a refused request wrote a report")
				assert.Len(t, r.cht.Docs(), before, "a refused request wrote to CHT")
				return
			}
			require.Len(t, reports, 1)
			assert.Equal(t, tt.want, reports[0]["fields"].(map[string]any)["patient_uuid"])
		})
	}
}

// inTransaction is a transaction Bundle creating a new person and then
// writing the resource rt (a ServiceRequest or Task): refused whole or
// written whole.
func inTransaction(rt string, res []byte) []byte {
	return []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
 {"resource":{"resourceType":"Patient","identifier":[{"system":"urn:nid","value":"new-778"}],"name":[{"text":"New Person"}]},
  "request":{"method":"POST","url":"Patient"}},
 {"resource":` + string(res) + `,"request":{"method":"POST","url":"` + rt + `"}}]}`)
}

// withNUPI is the KenyaEMR ServiceRequest about the patient of NUPI value.
func withNUPI(t *testing.T, value string) []byte {
	t.Helper()
	return []byte(strings.Replace(string(testdata(t, "service-request-kenyaemr-nupi.json")), nupi, value, 1))
}

// TestSubjectNamedByAnotherIdentifierIsLookedUp: KenyaEMR's community
// referral names the patient by NUPI only: kenyaemrIL's
// ReferralsDataExchangeFragmentController reads the ServiceRequest's
// subject.identifier value as the NUPI (pullCommunityReferralsFromFhir)
// and sends the ServiceRequest back through OpenHIM when the referral is
// served (updateShrReferral), while OpenMRS FHIR2 serves the Patient with
// its OpenMRS ID first (PatientTranslatorImpl, the identifier system
// configured per identifier type). The bridge keys the person by that
// first identifier, so the NUPI names no CHT person: with Config.FHIRURL
// the bridge finds the one Patient carrying the NUPI on the FHIR server
// (Patient?identifier=<system>|<value>, R4 search.html#token) and keys it
// as it keys Patients. None or several Patients, or a person CHT does not
// have, are 422 naming the subject; the FHIR server failing is 502 or 504,
// which the EMR retries, never a 422; a transaction is refused whole.
// Without FHIRURL the 422 says that setting it looks the identifier up.
func TestSubjectNamedByAnotherIdentifierIsLookedUp(t *testing.T) {
	patient := string(testdata(t, "patient-kenyaemr.json"))
	sr := testdata(t, "service-request-kenyaemr-nupi.json")
	person := newRig(t).bridge.PersonID(kenyaKey)
	twin := strings.NewReplacer(kenyaPatientID, "b8b5c7c2-5b4e-4a3c-9d2f-1e2f3a4b5c6d", kenyaKey, "MGKK5Q").Replace(patient)
	failing := &fhirtest.Faults{FailRate: 1, IncludeReads: true}
	slow := &fhirtest.Faults{Latency: 2 * time.Second}
	runSubjectCases(t, "INTEROP_FOLLOW_UP", []subjectCase{
		{name: "looked up on the FHIR server", fhir: true, sent: []string{patient},
			path: "/fhir/ServiceRequest", body: sr, status: http.StatusCreated, want: person},
		{name: "no FHIR server to look it up on", sent: []string{patient},
			path: "/fhir/ServiceRequest", body: sr, status: http.StatusUnprocessableEntity, want: "no CHT person"},
		{name: "the 422 says to set FHIRURL", sent: []string{patient},
			path: "/fhir/ServiceRequest", body: sr, status: http.StatusUnprocessableEntity, want: "set Config.FHIRURL"},
		{name: "no Patient carries it", fhir: true, sent: []string{patient},
			path: "/fhir/ServiceRequest", body: withNUPI(t, "MOH0000000000"), status: http.StatusUnprocessableEntity,
			want: `the FHIR server has no Patient with the identifier "` + nupiSystem + `|MOH0000000000"`},
		{name: "two Patients carry it", fhir: true, sent: []string{patient}, onFHIR: []string{twin},
			path: "/fhir/ServiceRequest", body: sr, status: http.StatusUnprocessableEntity, want: "is ambiguous"},
		{name: "CHT does not have the person found", fhir: true,
			path: "/fhir/ServiceRequest", body: sr, status: http.StatusUnprocessableEntity,
			want: "no CHT person " + person + " for this subject"},
		{name: "the FHIR server failing", fhir: true, sent: []string{patient}, faults: failing,
			path: "/fhir/ServiceRequest", body: sr, status: http.StatusBadGateway, want: "Patient?identifier="},
		{name: "the FHIR server too slow", fhir: true, sent: []string{patient}, timeout: 300 * time.Millisecond, faults: slow,
			path: "/fhir/ServiceRequest", body: sr, status: http.StatusGatewayTimeout, want: "fhir server"},
		{name: "in a transaction", fhir: true, sent: []string{patient},
			path: "/fhir", body: inTransaction("ServiceRequest", sr), status: http.StatusOK, want: person},
		{name: "in a transaction: CHT does not have the person found", fhir: true,
			path: "/fhir", body: inTransaction("ServiceRequest", sr), status: http.StatusUnprocessableEntity,
			want: "Bundle.entry[1].resource.subject"},
		{name: "in a transaction: two Patients carry it", fhir: true, sent: []string{patient}, onFHIR: []string{twin},
			path: "/fhir", body: inTransaction("ServiceRequest", sr), status: http.StatusUnprocessableEntity, want: "is ambiguous"},
		{name: "in a transaction: the FHIR server failing", fhir: true, sent: []string{patient}, faults: failing,
			path: "/fhir", body: inTransaction("ServiceRequest", sr), status: http.StatusBadGateway, want: "Patient?identifier="},
	})
}

// TestConditionalSubjectReference: a transaction may name a resource by a
// search instead of its id, a conditional reference (R4
// http.html#trules: "Patient?identifier=..." resolved by the server). A
// Patient named by one identifier so is the subject the identifier names,
// as in {"identifier": ...}; any other search is refused naming the
// subject, as is a reference whose identifier differs from the one beside it.
func TestConditionalSubjectReference(t *testing.T) {
	patient := string(testdata(t, "patient-kenyaemr.json"))
	person := newRig(t).bridge.PersonID(kenyaKey)
	subject := `"subject": {"identifier": {"system": "` + nupiSystem + `", "value": "` + nupi + `"}}`
	with := func(sub string) []byte {
		sr := string(testdata(t, "service-request-kenyaemr-nupi.json"))
		require.Contains(t, sr, subject)
		return []byte(strings.Replace(sr, subject, `"subject": `+sub, 1))
	}
	byNUPI := `{"reference": "Patient?identifier=` + nupiSystem + `|` + nupi + `"}`
	runSubjectCases(t, "INTEROP_FOLLOW_UP", []subjectCase{
		{name: "by an identifier", fhir: true, sent: []string{patient},
			path: "/fhir/ServiceRequest", body: with(byNUPI), status: http.StatusCreated, want: person},
		{name: "absolute, with the identifier beside it", fhir: true, sent: []string{patient},
			path: "/fhir/ServiceRequest", body: with(`{"reference": "https://emr.example.org/fhir/Patient?identifier=` + nupiSystem + `|` + nupi +
				`", "identifier": {"system": "` + nupiSystem + `", "value": "` + nupi + `"}}`),
			status: http.StatusCreated, want: person},
		{name: "in a transaction", fhir: true, sent: []string{patient},
			path: "/fhir", body: inTransaction("ServiceRequest", with(byNUPI)), status: http.StatusOK, want: person},
		{name: "the Patient of the transaction", path: "/fhir",
			body:   inTransaction("ServiceRequest", with(`{"reference": "Patient?identifier=urn:nid|new-778"}`)),
			status: http.StatusOK, want: newRig(t).bridge.PersonID("urn:nid|new-778")},
		{name: "by another search parameter", fhir: true, sent: []string{patient},
			path: "/fhir/ServiceRequest", body: with(`{"reference": "Patient?name=Ann"}`), status: http.StatusUnprocessableEntity,
			want: `ServiceRequest.subject: reference "Patient?name=Ann": a conditional reference by search parameter "name" is not supported`},
		{name: "of any system", fhir: true, sent: []string{patient},
			path: "/fhir/ServiceRequest", body: with(`{"reference": "Patient?identifier=` + nupi + `"}`), status: http.StatusUnprocessableEntity,
			want: "name the identifier's system"},
		{name: "another identifier beside it", fhir: true, sent: []string{patient},
			path: "/fhir/ServiceRequest", body: with(`{"reference": "Patient?identifier=` + nupiSystem + `|MOH0000000000", "identifier": {"system": "` +
				nupiSystem + `", "value": "` + nupi + `"}}`), status: http.StatusUnprocessableEntity,
			want: "names another identifier than the one beside it"},
	})
}

// TestSubjectLookupAsksForTheIdentifier: the lookup is one search by the
// identifier, its system and value as the token (R4 search.html#token),
// recorded as an orchestration of its own; a person CHT has under the
// identifier's own key needs no lookup.
func TestSubjectLookupAsksForTheIdentifier(t *testing.T) {
	r := newRig(t)
	require.NoError(t, r.fhir.Load(testdata(t, "patient-kenyaemr.json")))
	r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
	require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Patient", testdata(t, "patient-kenyaemr.json")).status)

	a := r.post(t, "/fhir/ServiceRequest", testdata(t, "service-request-kenyaemr-nupi.json"))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	var names []string
	for _, o := range a.env.Orchestrations {
		names = append(names, o.Name)
	}
	// The report is read once, while planning, as a Task may have raised
	// it (joinStoredTask).
	assert.Equal(t, []string{"CHT find subject", "FHIR search subject by identifier", "CHT read report",
		"CHT read subject", "CHT create report"}, names)
	var searches []url.Values
	for _, q := range r.fhir.Requests() {
		if q.Method == http.MethodGet && strings.HasSuffix(q.Path, "/Patient") {
			v, err := url.ParseQuery(q.Query)
			require.NoError(t, err)
			searches = append(searches, v)
		}
	}
	require.Len(t, searches, 1)
	assert.Equal(t, []string{nupiSystem + "|" + nupi}, searches[0]["identifier"])

	// A subject by the Patient's key identifier is the person CHT has.
	sr := strings.NewReplacer(`"system": "`+nupiSystem+`", "value": "`+nupi+`"`, `"value": "`+kenyaKey+`"`,
		"0c5e8f8e-1a2b-4c3d-9e8f-123456789abc", "by-openmrs-id").Replace(string(testdata(t, "service-request-kenyaemr-nupi.json")))
	require.Contains(t, sr, kenyaKey)
	a = r.post(t, "/fhir/ServiceRequest", []byte(sr))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	assert.Len(t, r.fhir.Requests(), len(searches), "looked up on the FHIR server although CHT has the person")
}

// TestSubjectWithAReferenceAndAnIdentifier: a Reference may carry both a
// literal reference and an identifier (R4 references.html#logical, the
// Reference data type: reference, type, identifier, display), which name
// the same resource; OpenMRS FHIR2 sends the reference with type and
// display (BaseReferenceHandlingTranslator
// createPatientReference), an EMR may add the patient's
// national identifier. When the identifier names no CHT person (its
// value is not the Patient's key, and the FHIR server does not find it),
// the literal reference does: read from Config.FHIRURL, or, without it,
// its id as the person's key. When both name a person and they differ,
// the bridge does not pick one: 422 naming the element, also in a
// transaction, which is refused whole. The FHIR server failing is 502.
func TestSubjectWithAReferenceAndAnIdentifier(t *testing.T) {
	patient := string(testdata(t, "patient-kenyaemr.json"))
	task := string(testdata(t, "task-reference-and-identifier.json"))
	rig := newRig(t)
	person := rig.bridge.PersonID(kenyaKey)
	// The same patient sent earlier with its NUPI first (before OpenMRS
	// ID was its preferred identifier): another CHT person, keyed by the
	// NUPI.
	nupiFirst := `{"resourceType":"Patient","identifier":[{"system":"` + nupiSystem + `","value":"` + nupi + `"}],"name":[{"text":"Mary Achieng"}]}`
	stale := strings.Replace(task, nupi, "MOH0000000000", 1)
	// A Patient sent without identifiers is keyed by its id.
	byID := `{"resourceType":"Patient","id":"p-77","name":[{"text":"Jane Akinyi"}]}`
	byIDTask := strings.Replace(stale, "Patient/"+kenyaPatientID, "Patient/p-77", 1)
	failing := &fhirtest.Faults{FailRate: 1, IncludeReads: true}
	runSubjectCases(t, "INTEROP_FOLLOW_UP", []subjectCase{
		{name: "both name the person", fhir: true, sent: []string{patient},
			path: "/fhir/Task", body: []byte(task), status: http.StatusCreated, want: person},
		{name: "the identifier names no one: the reference read from the FHIR server", fhir: true, sent: []string{patient},
			path: "/fhir/Task", body: []byte(stale), status: http.StatusCreated, want: person},
		{name: "the identifier names no one: the reference's id as the key", sent: []string{byID},
			path: "/fhir/Task", body: []byte(byIDTask), status: http.StatusCreated, want: rig.bridge.PersonID("p-77")},
		{name: "they name different persons", fhir: true, sent: []string{nupiFirst, patient},
			path: "/fhir/Task", body: []byte(task), status: http.StatusUnprocessableEntity,
			want: "Task.for: its identifier \"" + nupiSystem + "|" + nupi + "\" names CHT person " +
				rig.bridge.PersonID(nupiSystem+"|"+nupi) + ", but its reference \"Patient/" + kenyaPatientID + "\" names CHT person " + person},
		{name: "neither names a person", fhir: true,
			path: "/fhir/Task", body: []byte(task), status: http.StatusUnprocessableEntity,
			want: "neither its identifier nor its reference names a CHT person"},
		{name: "neither names a person, without a FHIR server", sent: []string{patient},
			path: "/fhir/Task", body: []byte(task), status: http.StatusUnprocessableEntity, want: "set Config.FHIRURL"},
		{name: "the FHIR server failing on the reference", fhir: true, sent: []string{nupiFirst, patient}, faults: failing,
			path: "/fhir/Task", body: []byte(task), status: http.StatusBadGateway, want: "GET Patient/" + kenyaPatientID},
		{name: "in a transaction: the reference names the person", fhir: true, sent: []string{patient},
			path: "/fhir", body: inTransaction("Task", []byte(stale)), status: http.StatusOK, want: person},
		{name: "in a transaction: they name different persons", fhir: true, sent: []string{nupiFirst, patient},
			path: "/fhir", body: inTransaction("Task", []byte(task)), status: http.StatusUnprocessableEntity,
			want: "Bundle.entry[1].resource.for"},
	})
}

// TestSubjectByIdentifierOfAPatientOfTheSameBundle: a transaction may
// create the Patient and name it in its ServiceRequest by identifier
// rather than by fullUrl (a logical reference, R4 references.html#logical;
// a transaction's entries are processed as one, R4 http.html#transaction):
// the report is about the person the Bundle writes, not refused because
// CHT did not have it before the Bundle. The identifier may be the
// Patient's key, or another of its identifiers the FHIR server finds it
// by.
func TestSubjectByIdentifierOfAPatientOfTheSameBundle(t *testing.T) {
	patient := string(testdata(t, "patient-kenyaemr.json"))
	keyed := `{"resourceType":"Patient","identifier":[{"system":"urn:nid","value":"new-779"}],"name":[{"text":"New Person"}]}`
	bundle := func(p, sr string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
 {"resource":` + p + `,"request":{"method":"POST","url":"Patient"}},
 {"resource":` + sr + `,"request":{"method":"POST","url":"ServiceRequest"}}]}`)
	}
	byKey := `{"resourceType":"ServiceRequest","id":"sr-779","status":"active","intent":"order",
		"subject":{"identifier":{"system":"urn:nid","value":"new-779"}}}`
	rig := newRig(t)
	runSubjectCases(t, "INTEROP_FOLLOW_UP", []subjectCase{
		{name: "by the Patient's key", path: "/fhir", body: bundle(keyed, byKey), status: http.StatusOK,
			want: rig.bridge.PersonID("urn:nid|new-779")},
		{name: "by another identifier, looked up", fhir: true,
			path: "/fhir", body: bundle(patient, string(testdata(t, "service-request-kenyaemr-nupi.json"))), status: http.StatusOK,
			want: rig.bridge.PersonID(kenyaKey)},
	})
}

// TestSubjectLookedUpOncePerRequest: an EMR's Bundle names one patient in
// many entries (OpenMRS FHIR2's ObservationTranslatorImpl writes
// Observation.subject on every obs; a batch of a day's vitals names the
// patient in each). Each distinct reference is resolved once per request:
// one FHIR read of the Patient, one FHIR search of an identifier, one CHT
// read of the person, however many entries name them. The next request
// resolves them again (the Patient may have changed in between).
func TestSubjectLookedUpOncePerRequest(t *testing.T) {
	const obs = 12
	bundle := func(subject string) []byte {
		var b strings.Builder
		b.WriteString(`{"resourceType":"Bundle","type":"batch","entry":[`)
		for i := range obs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"resource":{"resourceType":"Observation","status":"final",
			 "identifier":[{"system":"https://emr.example.org/obs","value":"OBS-` + strconv.Itoa(i) + `"}],
			 "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":` + subject + `,
			 "effectiveDateTime":"2026-11-20T10:` + fmt.Sprintf("%02d", i) + `:00Z",
			 "valueQuantity":{"value":61.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}},
			 "request":{"method":"POST","url":"Observation"}}`)
		}
		b.WriteString(`]}`)
		return []byte(b.String())
	}
	for _, tt := range []struct{ name, subject string }{
		{"literal reference", `{"reference":"Patient/` + kenyaPatientID + `"}`},
		{"identifier of another system", `{"identifier":{"system":"` + nupiSystem + `","value":"` + nupi + `"}}`},
		{"both", `{"reference":"Patient/` + kenyaPatientID + `","identifier":{"system":"` + nupiSystem + `","value":"` + nupi + `"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			require.NoError(t, r.fhir.Load(testdata(t, "patient-kenyaemr.json")))
			r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
			require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Patient", testdata(t, "patient-kenyaemr.json")).status)
			person := r.bridge.PersonID(kenyaKey)
			for round := 1; round <= 2; round++ {
				fhirBefore, chtBefore := len(r.fhir.Requests()), len(r.cht.Requests())
				a := r.post(t, "/fhir", bundle(tt.subject))
				require.Equal(t, http.StatusOK, a.status, "%s", a.body)
				require.Equal(t, obs, strings.Count(string(a.body), `"201 Created"`)+strings.Count(string(a.body), `"200 OK"`), "%s", a.body)
				ours := 0
				for _, rep := range r.reports(t, "HEIGHT_WEIGHT") {
					if rep["fields"].(map[string]any)["patient_uuid"] == person {
						ours++
					}
				}
				require.Equal(t, obs, ours, "round %d", round)
				fhirReads := map[string]int{}
				for _, q := range r.fhir.Requests()[fhirBefore:] {
					fhirReads[q.Method+" "+q.Path+"?"+q.Query]++
				}
				assert.NotEmpty(t, fhirReads, "round %d: no FHIR lookup", round)
				for k, n := range fhirReads {
					assert.Equal(t, 1, n, "round %d: %s made %d times", round, k, n)
				}
				// The person, the key CHT has no person under, each
				// report: every CHT document read once.
				chtReads := map[string]int{}
				for _, q := range r.cht.Requests()[chtBefore:] {
					if q.Method == http.MethodGet {
						chtReads[q.Path]++
					}
				}
				assert.Contains(t, chtReads, "/medic/"+person, "round %d", round)
				for p, n := range chtReads {
					assert.Equal(t, 1, n, "round %d: CHT GET %s made %d times", round, p, n)
				}
			}
		})
	}
}
