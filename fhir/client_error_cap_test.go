package fhir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// outcomeOf is an OperationOutcome with one error issue per diagnostics.
func outcomeOf(diagnostics ...string) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"OperationOutcome","issue":[`)
	for i, d := range diagnostics {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"severity":"error","code":"processing","diagnostics":%q}`, d)
	}
	b.WriteString(`]}`)
	return b.String()
}

// manyIssues is n diagnostics of about 100 bytes each.
func manyIssues(n int) []string {
	d := make([]string, n)
	for i := range d {
		d[i] = fmt.Sprintf("HAPI-0450: Observation.code.coding[%d]: unknown code in system http://loinc.org, not valid here", i)
	}
	return d
}

// A FHIR answer of megabytes gives a ServerError whose Reason, and so the
// text in its message, is at most maxReason bytes: the first issues whole,
// then how many issues (or, for a first issue too long by itself, how
// many bytes) were left out. Outcome keeps every issue, and errors.As
// still finds the error.
func TestServerErrorReasonIsCapped(t *testing.T) {
	many := manyIssues(20000) // about 2 MB
	huge := strings.Repeat("é", 1<<20)
	tests := []struct {
		name    string
		status  int
		body    string
		entries int
		issues  int    // issues in Outcome
		start   string // Reason's start
		marker  string // how Reason ends
		shown   int    // -1: Reason shows the first issues of many whole
	}{
		{"many issues", 400, outcomeOf(many...), 1, len(many), many[0] + "; " + many[1] + "; ", `… \((\d+) more issues\)$`, -1},
		{"one huge issue and others", 422, outcomeOf(huge, "second", "third", "fourth"), 1, 4, "éééé", `… \(\d+ more bytes, 3 more issues\)$`, 0},
		{"one huge issue", 422, outcomeOf(huge), 1, 1, "éééé", `… \(\d+ more bytes\)$`, 0},
		{"failed entry with many issues", 200, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}},` +
			`{"response":{"status":"422 Unprocessable Entity","outcome":` + outcomeOf(many...) + `}}]}`, 2, len(many), many[0] + "; ", `… \((\d+) more issues\)$`, -1},
		{"huge entry status", 200, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"` + huge + `"}}]}`, 1, 0,
			`entry status "ééé`, `… \(\d+ more bytes\)$`, 0},
		{"huge resourceType", 200, `{"resourceType":"` + huge + `","type":"batch-response"}`, 1, 0, "answer is a éé", `… \(\d+ more bytes\)$`, 0},
		{"few issues", 400, outcomeOf("first", "second"), 1, 2, "first; second", `^first; second$`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			err := testClient(t, srv, ClientConfig{}).Transaction(context.Background(), bundleOf(tt.entries))
			err = fmt.Errorf("push report r1: %w", err)
			var se *ServerError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.status, se.StatusCode)
			if tt.issues > 0 {
				require.NotNil(t, se.Outcome)
				assert.Len(t, se.Outcome.Issue, tt.issues, "Outcome keeps every issue")
			}
			assert.LessOrEqual(t, len(se.Reason), maxReason)
			assert.True(t, utf8.ValidString(se.Reason), "Reason is UTF-8")
			assert.True(t, strings.HasPrefix(se.Reason, tt.start), "Reason starts %.80q, want %.80q", se.Reason, tt.start)
			m := regexp.MustCompile(tt.marker).FindStringSubmatch(se.Reason)
			require.NotNil(t, m, "Reason ends %q, want %s", se.Reason[max(0, len(se.Reason)-60):], tt.marker)
			msg := se.Error()
			assert.True(t, strings.HasSuffix(msg, ": "+se.Reason), "the message ends with the Reason")
			assert.LessOrEqual(t, len(msg), len("fhir: POST "+srv.URL+"/fhir: HTTP 422, entry 1 answered 422: ")+maxReason)
			if tt.shown < 0 { // whole issues, then how many were left out
				left, _ := strconv.Atoi(m[1])
				shown := strings.Split(strings.TrimSuffix(se.Reason, m[0]), "; ")
				for i, s := range shown {
					assert.Equal(t, many[i], s, "issue %d is shown whole", i)
				}
				assert.Equal(t, len(many), len(shown)+left, "shown and left out issues")
				assert.Greater(t, len(se.Reason), maxReason-len(many[0])-40, "the cap is used")
			}
		})
	}
}

// A ServerError made with a longer Reason still gives a message within
// the cap.
func TestServerErrorMessageCapsReason(t *testing.T) {
	e := &ServerError{StatusCode: 500, Entry: -1, Reason: strings.Repeat("x", 1<<20)}
	msg := e.Error()
	assert.LessOrEqual(t, len(msg), len("fhir: HTTP 500: ")+maxReason)
	assert.Regexp(t, `^fhir: HTTP 500: xxx+… \(\d+ more bytes\)$`, msg)
	assert.True(t, errors.As(fmt.Errorf("w: %w", e), new(*ServerError)))
}
