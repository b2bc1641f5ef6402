package fhir

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// TransactionError reports a transaction the server did not apply in full.
// StatusCode is the HTTP status, Entry the index of the failed entry (-1
// when the whole request failed), EntryStatus that entry's status line, and
// Outcome the server's OperationOutcome, if it sent one.
type TransactionError struct {
	StatusCode  int
	Entry       int
	EntryStatus string
	Outcome     *models.OperationOutcome
	Reason      string
}

// Error returns a message with the status and the first outcome diagnostics.
func (e *TransactionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fhir: transaction failed: HTTP %d", e.StatusCode)
	if e.Entry >= 0 {
		fmt.Fprintf(&b, ", entry %d: %s", e.Entry, e.EntryStatus)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if r := outcomeText(e.Outcome); r != "" {
		b.WriteString(": ")
		b.WriteString(r)
	}
	return b.String()
}

// outcomeText returns the server's reasons in an OperationOutcome: the
// diagnostics and details.text of each issue (servers put the reason in
// either: HAPI in diagnostics, Medplum in details.text), issues of severity
// fatal and error first, joined with "; ". Identical texts are given once.
// It returns "" for nil or an outcome without text.
func outcomeText(oo *models.OperationOutcome) string {
	if oo == nil {
		return ""
	}
	var parts []string
	seen := map[string]bool{}
	add := func(s *string) {
		if s == nil {
			return
		}
		t := strings.TrimSpace(*s)
		if t != "" && !seen[t] {
			seen[t] = true
			parts = append(parts, t)
		}
	}
	for _, pass := range []bool{true, false} {
		for _, is := range oo.Issue {
			serious := is.Severity == models.IssueSeverityFatal || is.Severity == models.IssueSeverityError
			if serious != pass {
				continue
			}
			add(is.Diagnostics)
			if is.Details != nil {
				add(is.Details.Text)
			}
		}
	}
	return strings.Join(parts, "; ")
}

// CheckTransactionResponse checks the answer to a posted transaction: the
// HTTP status must be 2xx and the body a transaction-response Bundle with
// n entries (n < 0 skips the count) whose statuses are all 2xx. Anything
// else is a *[TransactionError], so a caller never acknowledges data the
// server did not store.
func CheckTransactionResponse(statusCode int, body []byte, n int) error {
	if statusCode < 200 || statusCode > 299 {
		te := &TransactionError{StatusCode: statusCode, Entry: -1, Outcome: parseOutcome(body)}
		if te.Outcome == nil {
			te.Reason = bodySnippet(body)
		}
		return te
	}
	var resp struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Response *struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return &TransactionError{StatusCode: statusCode, Entry: -1, Reason: "response is not JSON: " + err.Error()}
	}
	if resp.ResourceType != "Bundle" || resp.Type != "transaction-response" {
		return &TransactionError{StatusCode: statusCode, Entry: -1,
			Reason: fmt.Sprintf("response is a %s %s, want a transaction-response Bundle", resp.ResourceType, resp.Type)}
	}
	if n >= 0 && len(resp.Entry) != n {
		return &TransactionError{StatusCode: statusCode, Entry: -1,
			Reason: fmt.Sprintf("response has %d entries, want %d", len(resp.Entry), n)}
	}
	for i, e := range resp.Entry {
		if e.Response == nil {
			return &TransactionError{StatusCode: statusCode, Entry: i, Reason: "entry has no response"}
		}
		code, _, _ := strings.Cut(strings.TrimSpace(e.Response.Status), " ")
		if c, err := strconv.Atoi(code); err != nil || c < 200 || c > 299 {
			return &TransactionError{StatusCode: statusCode, Entry: i, EntryStatus: e.Response.Status, Outcome: parseOutcome(e.Response.Outcome)}
		}
	}
	return nil
}

// bodySnippet returns the start of a response body that is not an
// OperationOutcome (an HTML error page, plain text), as valid UTF-8 on one
// line, so an error still says what the server answered.
func bodySnippet(b []byte) string {
	const limit = 200
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b[:min(len(b), 4*limit)]), "\uFFFD")), " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "..."
	}
	return s
}

// parseOutcome decodes an OperationOutcome from a response body; it
// returns nil when the body is not one or has no issues. The FHIR client
// and CheckTransactionResponse share it with outcomeText, so every error
// from a FHIR server carries the server's reason the same way.
func parseOutcome(b []byte) *models.OperationOutcome {
	if len(b) == 0 {
		return nil
	}
	oo, err := models.UnmarshalOperationOutcome(b)
	if err != nil || len(oo.Issue) == 0 {
		return nil
	}
	return &oo
}
