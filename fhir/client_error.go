package fhir

import (
	"fmt"
	"net/http"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/redact"
)

// ServerError is an answer of a FHIR server that is not a success: a non-2xx
// status, or a 2xx transaction answer that does not show every entry
// applied. [Client] returns it for every such answer.
type ServerError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Entry is the index of the failed entry of a transaction, -1 when the
	// failure concerns the whole request.
	Entry int
	// EntryStatus is the failed entry's status code (e.g. 412), 0 when
	// Entry is -1 or the entry had no readable status.
	EntryStatus int
	// Outcome is the server's OperationOutcome for the request or the
	// failed entry, nil when it sent none.
	Outcome *models.OperationOutcome
	// Reason says what went wrong in the server's words: the outcome's
	// diagnostics or details.text, else the start of the answer, or what
	// was wrong with a 2xx transaction answer. It is at most 4 KiB, so
	// that an answer of megabytes does not make an error of megabytes: a
	// longer text ends with a marker saying how many issues (or bytes)
	// were left out, and Outcome keeps every issue.
	Reason string

	op string // "POST http://fhir/base", for the message
	// answered is the number of entries of a transaction answer whose
	// entries all succeeded but were not as many as the request's, else 0
	// (see Client.Transaction).
	answered int
}

// Error returns the request, the status and the reason.
func (e *ServerError) Error() string {
	var b strings.Builder
	b.WriteString("fhir: ")
	if e.op != "" {
		b.WriteString(e.op)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if e.Entry >= 0 {
		fmt.Fprintf(&b, ", entry %d", e.Entry)
		if e.EntryStatus != 0 {
			fmt.Fprintf(&b, " answered %d", e.EntryStatus)
		}
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(capText(e.Reason, maxReason))
	}
	return b.String()
}

// newServerError builds the error for resp, a non-2xx answer with body.
// A redirect of a write, which the client does not follow (see
// keepMethod), is named as the reason.
func newServerError(method, target string, resp *http.Response, body []byte) *ServerError {
	e := &ServerError{StatusCode: resp.StatusCode, Entry: -1, op: method + " " + target}
	e.Outcome = parseOutcome(body)
	e.Reason = outcomeText(e.Outcome)
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 && method != http.MethodGet {
		e.Reason = fmt.Sprintf("redirected to %q, which the HTTP client would follow with a GET, not the %s: set the base URL to the server's own",
			redact.URL(loc), method)
	}
	if e.Reason == "" {
		e.Reason = bodySnippet(body)
	}
	e.Reason = capText(e.Reason, maxReason) // the redirect's Location may be long
	return e
}
