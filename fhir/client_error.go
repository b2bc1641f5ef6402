package fhir

import (
	"fmt"
	"strings"
	"unicode/utf8"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
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
	// was wrong with a 2xx transaction answer.
	Reason string

	op string // "POST http://fhir/base", for the message
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
		b.WriteString(e.Reason)
	}
	return b.String()
}

// Status is the status that decides what to do: EntryStatus for a failed
// transaction entry, else StatusCode.
func (e *ServerError) Status() int {
	if e.EntryStatus != 0 {
		return e.EntryStatus
	}
	return e.StatusCode
}

// newServerError builds the error for a non-2xx answer with body.
func newServerError(method, target string, status int, body []byte) *ServerError {
	e := &ServerError{StatusCode: status, Entry: -1, op: method + " " + target}
	e.Outcome = parseOutcome(body)
	e.Reason = outcomeReason(e.Outcome)
	if e.Reason == "" {
		e.Reason = excerpt(body)
	}
	return e
}

// outcomeReason describes each issue as "details.text: diagnostics
// (expression)", leaving out the parts that are absent: servers differ in
// where they put the message (HAPI in diagnostics, Medplum in details.text
// with the location in diagnostics).
func outcomeReason(oo *models.OperationOutcome) string {
	if oo == nil {
		return ""
	}
	var parts []string
	for _, is := range oo.Issue {
		var words []string
		if is.Details != nil && is.Details.Text != nil && *is.Details.Text != "" {
			words = append(words, *is.Details.Text)
		}
		if is.Diagnostics != nil && *is.Diagnostics != "" {
			words = append(words, *is.Diagnostics)
		}
		msg := strings.Join(words, ": ")
		if len(is.Expression) > 0 {
			msg += " (" + strings.Join(is.Expression, ", ") + ")"
		}
		if msg = strings.TrimSpace(msg); msg != "" {
			parts = append(parts, msg)
		}
	}
	return strings.Join(parts, "; ")
}

// excerpt is the start of a non-FHIR answer, on one line and valid UTF-8.
func excerpt(body []byte) string {
	const max = 200
	s := strings.ToValidUTF8(string(body[:min(len(body), max+4)]), "")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
