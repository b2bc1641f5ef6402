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
	if e.Outcome != nil {
		for _, is := range e.Outcome.Issue {
			if is.Diagnostics != nil {
				b.WriteString(": ")
				b.WriteString(*is.Diagnostics)
				break
			}
		}
	}
	return b.String()
}

// CheckTransactionResponse checks the answer to a posted transaction: the
// HTTP status must be 2xx and the body a transaction-response Bundle with
// n entries (n < 0 skips the count) whose statuses are all 2xx. Anything
// else is a *[TransactionError], so a caller never acknowledges data the
// server did not store.
func CheckTransactionResponse(statusCode int, body []byte, n int) error {
	if statusCode < 200 || statusCode > 299 {
		return &TransactionError{StatusCode: statusCode, Entry: -1, Outcome: parseOutcome(body)}
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
