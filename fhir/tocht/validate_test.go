package tocht_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// patientWith is a valid Patient with id (none when "") and a name whose
// text is the raw JSON string body name (quotes included).
func patientWith(id, name string) string {
	idMember := ""
	if id != "" {
		idMember = `"id":"` + id + `",`
	}
	return `{"resourceType":"Patient",` + idMember + `"identifier":[{"system":"https://emr.example.org/patient-id","value":"EMR-9"}],"name":[{"text":` + name + `}]}`
}

// manyMembers is an extension member holding an object of n distinct
// members and then its first member again.
func manyMembers(n int) string {
	var b strings.Builder
	b.WriteString(`"extension":[{`)
	for i := range n {
		fmt.Fprintf(&b, `"m%d":1,`, i)
	}
	b.WriteString(`"m0":2}]`)
	return b.String()
}

// Every input that is not FHIR R4 JSON is refused with 400 and an
// OperationOutcome naming the element, before anything is written: ids
// that are not of the id type (in the URL, the body, a Bundle entry's
// request or a literal reference), control characters, invalid UTF-8 and
// lone surrogates, which encoding/json would accept or silently turn into
// U+FFFD, and a member twice in one object, of which encoding/json would
// keep the last value only. Each row failed before (201 or 200, the value echoed back).
func TestHostileInputIsRefusedNamingTheElement(t *testing.T) {
	r := newRig(t)
	before := len(r.cht.Docs())
	sr := string(testdata(t, "service-request.json"))
	subject := `{"identifier": {"system": "https://cht.example.org/medic", "value": "75905106a4bc2a9046ed28df070016ce"}}`
	require.Contains(t, sr, subject)
	reason := `"Missed ART refill appointment"`
	require.Contains(t, sr, reason)
	big := strings.Repeat("a", 1<<20) // invalid input is refused at any size
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		want   string // an expression of the outcome
	}{
		{"URL id _design", "PUT", "/fhir/Patient/_design", patientWith("", `"A"`), "Patient.id"},
		{"URL id of 70 characters", "PUT", "/fhir/Patient/" + strings.Repeat("a", 70), patientWith("", `"A"`), "Patient.id"},
		{"URL id with NUL", "PUT", "/fhir/Patient/a%00b", patientWith("", `"A"`), "Patient.id"},
		{"URL id with encoded slashes", "PUT", "/fhir/Patient/..%2F..%2F_users", patientWith("", `"A"`), "Patient.id"},
		{"URL id a dot-segment", "PUT", "/fhir/Patient/%2E%2E", patientWith("", `"A"`), "Patient.id"},
		{"body id ../../_users", "POST", "/fhir/Patient", patientWith("../../_users", `"A"`), "Patient.id"},
		{"body id _design", "POST", "/fhir/Patient", patientWith("_design", `"A"`), "Patient.id"},
		{"body id of 70 characters", "POST", "/fhir/Patient", patientWith(strings.Repeat("a", 70), `"A"`), "Patient.id"},
		{"body id with NUL", "POST", "/fhir/Patient", patientWith(`a\u0000b`, `"A"`), "Patient.id"},
		{"name with NUL", "POST", "/fhir/Patient", patientWith("p1", `"Ann\u0000Bee"`), "Patient.name[0].text"},
		{"name with a control character", "POST", "/fhir/Patient", patientWith("p1", `"Ann\u0007"`), "Patient.name[0].text"},
		{"name with backspace", "POST", "/fhir/Patient", patientWith("p1", `"Ann\b"`), "Patient.name[0].text"},
		{"name with invalid UTF-8", "POST", "/fhir/Patient", patientWith("p1", "\"Ann\xff\xfeBee\""), "Patient.name[0].text"},
		{"name with a lone surrogate", "POST", "/fhir/Patient", patientWith("p1", `"Ann\ud800"`), "Patient.name[0].text"},
		{"invalid UTF-8 after a megabyte", "POST", "/fhir/Patient", patientWith("p1", `"`+big+"\xc3\""), "Patient.name[0].text"},
		{"NUL in a ServiceRequest", "POST", "/fhir/ServiceRequest", strings.Replace(sr, reason, `"Missed\u0000"`, 1), "ServiceRequest.reasonCode[0].text"},
		{"invalid UTF-8 in a ServiceRequest", "POST", "/fhir/ServiceRequest", strings.Replace(sr, reason, "\"Missed \xe2\x28\"", 1), "ServiceRequest.reasonCode[0].text"},
		{"reference to Patient/_design", "POST", "/fhir/ServiceRequest", strings.Replace(sr, subject, `{"reference": "Patient/_design"}`, 1), "ServiceRequest.subject"},
		{"reference to a dot-segment", "POST", "/fhir/ServiceRequest", strings.Replace(sr, subject, `{"reference": "Patient/.."}`, 1), "ServiceRequest.subject"},
		{"Bundle entry id", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientWith("_design", `"A"`) + `,"request":{"method":"POST","url":"Patient"}}]}`,
			"Bundle.entry[0].resource.id"},
		{"Bundle entry name with NUL", "POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":` + patientWith("p1", `"A\u0000"`) + `,"request":{"method":"POST","url":"Patient"}}]}`,
			"Bundle.entry[0].resource.name[0].text"},
		{"member twice: Task.status", "POST", "/fhir/Task", string(testdata(t, "task-duplicate-status.json")), "Task.status"},
		{"member twice: Patient.identifier", "POST", "/fhir/Patient", strings.Replace(patientWith("p1", `"A"`), `"name"`,
			`"identifier":[{"system":"https://emr.example.org/patient-id","value":"EMR-10"}],"name"`, 1), "Patient.identifier"},
		{"member twice: resourceType", "POST", "/fhir/Patient", `{"resourceType":"Bundle",` + patientWith("p1", `"A"`)[1:], "Patient.resourceType"},
		{"member twice in a Bundle entry", "POST", "/fhir", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":` +
			strings.Replace(patientWith("p1", `"A"`), `"text":"A"`, `"text":"A","text":"B"`, 1) + `,"request":{"method":"POST","url":"Patient"}}]}`,
			"Bundle.entry[0].resource.name[0].text"},
		{"member twice among many", "POST", "/fhir/Patient", strings.Replace(patientWith("p1", `"A"`), `"name"`, manyMembers(20000)+`,"name"`, 1),
			"Patient.extension[0].m0: the member appears more than once"},
		{"Bundle entry PUT url", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientWith("", `"A"`) + `,"request":{"method":"PUT","url":"Patient/_design"}}]}`,
			"Bundle.entry[0].request.url"},
		// A create's url is the type of its resource (R4 bundle.html,
		// Bundle.entry.request.url; http.html#create).
		{"Bundle entry POST url of another type", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientWith("p1", `"A"`) + `,"request":{"method":"POST","url":"Observation"}}]}`,
			`Bundle.entry[0].request.url: POST "Observation": want Patient`},
		{"Bundle entry POST url of an instance", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientWith("p1", `"A"`) + `,"request":{"method":"POST","url":"Patient/p1"}}]}`,
			"Bundle.entry[0].request.url"},
		{"Bundle entry POST without url", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientWith("p1", `"A"`) + `,"request":{"method":"POST"}}]}`,
			"Bundle.entry[0].request.url"},
		// Version preconditions (R4 http.html#concurrency) the bridge,
		// which keeps no FHIR versions, cannot evaluate.
		{"Bundle entry ifMatch", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientWith("p1", `"A"`) + `,"request":{"method":"PUT","url":"Patient/p1","ifMatch":"W/\"3\""}}]}`,
			"Bundle.entry[0].request.ifMatch: a version precondition is not supported"},
		{"Bundle entry ifNoneMatch", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientWith("p1", `"A"`) + `,"request":{"method":"PUT","url":"Patient/p1","ifNoneMatch":"*"}}]}`,
			"Bundle.entry[0].request.ifNoneMatch"},
		{"Bundle entry ifModifiedSince", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patientWith("p1", `"A"`) + `,"request":{"method":"POST","url":"Patient","ifModifiedSince":"2024-01-01T00:00:00Z"}}]}`,
			"Bundle.entry[0].request.ifModifiedSince"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.send(t, tt.method, tt.path, "application/fhir+json", []byte(tt.body))
			require.Equal(t, http.StatusBadRequest, a.status, "%.300s", a.body)
			assert.Equal(t, tocht.FHIRContentType, a.header.Get("Content-Type"))
			oo := parseOutcome(t, a.body)
			assert.Contains(t, oo.text(), tt.want)
			assert.NotContains(t, string(a.body), "\ufffd", "nothing turned into U+FFFD")
		})
	}
	assert.Equal(t, before, len(r.cht.Docs()), "nothing written")
}

// A write with a version precondition header (R4 http.html#concurrency)
// is refused, naming the header: the bridge keeps no FHIR versions of the
// CHT documents it writes, so ignoring it would overwrite what the sender
// meant to protect.
func TestVersionPreconditionHeadersAreRefused(t *testing.T) {
	r := newRig(t)
	before := len(r.cht.Docs())
	for _, h := range []string{"If-Match", "If-None-Match", "If-Modified-Since"} {
		t.Run(h, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPut, r.med.URL+"/fhir/Patient/p1", strings.NewReader(patientWith("", `"A"`)))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set(h, `W/"1"`)
			a := r.do(t, req)
			require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
			assert.Contains(t, parseOutcome(t, a.body).text(), h+": a version precondition is not supported")
		})
	}
	assert.Equal(t, before, len(r.cht.Docs()), "nothing written")
}

// What FHIR allows stays accepted: ids of the id type, tab, CR and LF and
// any Unicode character, escaped or not.
func TestValidInputIsAccepted(t *testing.T) {
	r := newRig(t)
	for _, tt := range []struct{ name, method, path, body string }{
		{"id of 64 characters", "PUT", "/fhir/Patient/" + strings.Repeat("A", 64), patientWith("", `"A"`)},
		{"id with dots and dashes", "POST", "/fhir/Patient", patientWith("a.b-C9", `"A"`)},
		{"tab, CR and LF", "POST", "/fhir/Patient", patientWith("p2", `"Ann\tB\r\nC"`)},
		{"escaped and raw non-ASCII", "POST", "/fhir/Patient", patientWith("p3", `"Zoë \u00e9\ud83d\ude00 😀"`)},
		{"one member name in several objects", "POST", "/fhir/Patient", strings.Replace(patientWith("p4", `"A"`), `"name"`,
			`"birthDate":"1990-01-01","telecom":[{"system":"phone","value":"+1"},{"system":"phone","value":"+2"}],"name"`, 1)},
		{"Bundle entry POST url absolute", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` +
			patientWith("p5", `"A"`) + `,"request":{"method":"POST","url":"https://emr.example.org/fhir/Patient"}}]}`},
		{"Bundle entry POST url with a slash", "POST", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` +
			patientWith("p6", `"A"`) + `,"request":{"method":"POST","url":"/Patient"}}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := r.send(t, tt.method, tt.path, "application/fhir+json", []byte(tt.body))
			assert.Contains(t, []int{http.StatusOK, http.StatusCreated}, a.status, "%s", a.body)
		})
	}
}

// ErrorBody makes the mediator's own refusals OperationOutcomes: a body
// whose Content-Length is over mediator.Config.MaxBodyBytes is refused
// before the bridge reads it (before, a plain {"error": ...}).
func TestMediatorRefusalIsAnOperationOutcome(t *testing.T) {
	r := newRig(t)
	m, err := mediator.New(mediator.Config{Auth: mediator.InboundAuth{Open: true}, Definition: tocht.Definition("127.0.0.1", 8602), Handler: r.bridge.Handler(),
		MaxBodyBytes: 1024, ErrorBody: tocht.ErrorBody})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/fhir/Patient", bytes.NewReader(make([]byte, 4096)))
	req.Header.Set("Content-Type", "application/fhir+json")
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, req)
	env, err := mediator.ParseEnvelope(rec.Body.Bytes())
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestEntityTooLarge, env.Response.Status)
	assert.Equal(t, tocht.FHIRContentType, env.Response.Headers["Content-Type"])
	assert.Contains(t, parseOutcome(t, []byte(env.Response.Body)).text(), "1024")
}

// A body of a few megabytes whose every element is a problem, under long
// member names, gets an answer of a few kilobytes: one issue per element,
// each with a copy of its path, made answers of hundreds of megabytes
// (and gigabytes of memory) from 90 KB.
func TestHostileBodiesGetSmallAnswers(t *testing.T) {
	long := strings.Repeat("k", 64<<10)
	var nulls strings.Builder
	for i := range 2000 {
		if i > 0 {
			nulls.WriteByte(',')
		}
		fmt.Fprintf(&nulls, `"a%d":null`, i)
	}
	var entries strings.Builder
	for i := range 200_000 {
		if i > 0 {
			entries.WriteByte(',')
		}
		entries.WriteString(`{}`)
	}
	tests := []struct {
		name, path, body string
	}{
		{"nulls under a long name", "/fhir/Patient", `{"resourceType":"Patient","` + long + `":{` + nulls.String() + `}}`},
		{"a long name with control characters below it", "/fhir/Patient",
			`{"resourceType":"Patient","` + strings.Repeat("k", 1<<20) + `":{` + strings.Repeat(`"x\u0001":"\u0001",`, 1000) + `"y":"z"}}`},
		{"a Bundle of empty entries", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[` + entries.String() + `]}`},
	}
	r := newRig(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.post(t, tt.path, []byte(tt.body))
			assert.Equal(t, http.StatusBadRequest, a.status)
			assert.Less(t, len(a.body), 64<<10, "answer of %d bytes to a body of %d", len(a.body), len(tt.body))
			assert.NotEmpty(t, parseOutcome(t, a.body).Issue)
		})
	}
}
