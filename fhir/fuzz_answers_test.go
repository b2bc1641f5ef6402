package fhir

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// FuzzCheckTransactionAnswer feeds a FHIR server's answer to a
// transaction to the streaming check and to checkAnswer (which tries
// okAnswer first): neither panics, both agree, the verdict does not depend
// on how the answer arrives (one byte per read), and an accepted answer
// starts with a JSON object naming a transaction-response Bundle.
func FuzzCheckTransactionAnswer(f *testing.F) {
	for _, tt := range answerCases {
		f.Add([]byte(tt.body), tt.want)
	}
	for _, s := range []string{``, `[]`, `{`, `{"entry":{}}`, `{"entry":[1]}`, `{"entry":[{"response":1}]}`,
		`{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"500","outcome":` +
			`{"resourceType":"OperationOutcome","issue":[{"severity":"error","diagnostics":"x"}]}}}]}`,
		`{"resourceType":"Bundle","type":"transaction-response","entry":[` + strings.Repeat(`[`, 10001) + `]}`} {
		f.Add([]byte(s), 1)
	}
	f.Fuzz(func(t *testing.T, b []byte, want int) {
		slow := checkTransactionAnswer(bytes.NewReader(b), want)
		if fast := checkAnswer(bytes.NewReader(b), want); (fast == nil) != (slow == nil) {
			t.Fatalf("checkAnswer says %v, checkTransactionAnswer %v", fast, slow)
		}
		if one := checkTransactionAnswer(iotest.OneByteReader(bytes.NewReader(b)), want); (one == nil) != (slow == nil) ||
			(one != nil && one.Error() != slow.Error()) {
			t.Fatalf("one byte per read gives %v, whole %v", one, slow)
		}
		if slow != nil {
			_ = slow.Error()
			return
		}
		// A map, not a struct: encoding/json matches struct fields
		// case-insensitively, so a member "Type" (another member, JSON
		// names being case-sensitive) would be read as "type".
		var head map[string]json.RawMessage
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&head); err != nil {
			t.Fatalf("accepted an answer that does not start with a JSON object: %v", err)
		}
		if !bytes.Contains(b, []byte("transaction-response")) && !bytes.Contains(b, []byte(`\u`)) {
			t.Fatalf("accepted an answer that names no transaction-response")
		}
	})
}

// FuzzNewServerError feeds a FHIR server's error answer (status, Location
// and body) to newServerError: it never panics, the error names the
// request and the status, a body that is not an OperationOutcome is given
// as a short snippet, and a UTF-8 body gives a UTF-8 message.
func FuzzNewServerError(f *testing.F) {
	for _, tt := range []struct {
		status   int
		location string
		body     string
	}{
		{400, "", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"HAPI-0450: bad"}]}`},
		{422, "", `{"resourceType":"OperationOutcome","issue":[{"severity":"warning","details":{"text":"w"}},{"severity":"fatal","diagnostics":"f"}]}`},
		{500, "", `<html><body>Internal error</body></html>`},
		{302, "https://u:s3cret@other/fhir", ``},
		{404, "", `{"resourceType":"OperationOutcome","issue":[]}`},
		{409, "", `{"resourceType":"OperationOutcome","issue":[{"severity":1}]}`},
		{503, "", "\xff\xfe" + strings.Repeat("é", 500)},
	} {
		f.Add(tt.status, tt.location, []byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, status int, location string, body []byte) {
		resp := &http.Response{StatusCode: status, Header: http.Header{"Location": {location}}}
		e := newServerError(http.MethodPost, "Patient", resp, body)
		msg := e.Error()
		if !strings.HasPrefix(msg, "fhir: POST Patient: HTTP ") {
			t.Fatalf("message %q does not name the request", msg)
		}
		if utf8.Valid(body) && utf8.ValidString(location) && !utf8.ValidString(msg) {
			t.Fatalf("UTF-8 answer gives a message that is not UTF-8: %q", msg)
		}
		if e.Outcome == nil && e.Reason == bodySnippet(body) && utf8.RuneCountInString(e.Reason) > 203 {
			t.Fatalf("snippet of %d characters", utf8.RuneCountInString(e.Reason))
		}
	})
}
