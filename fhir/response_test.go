package fhir

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckTransactionResponse(t *testing.T) {
	ok := `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}},{"response":{"status":"200"}}]}`
	tests := []struct {
		name   string
		status int
		body   string
		n      int
		want   string // "" = no error
		entry  int
	}{
		{"ok", 200, ok, 2, "", 0},
		{"ok any count", 200, ok, -1, "", 0},
		{"http error with outcome", 400, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Missing required property"}]}`, 2, "HTTP 400: Missing required property", -1},
		{"http error without body", 503, ``, 2, "HTTP 503", -1},
		// Medplum puts the reason in details.text (@medplum/core outcomes: badRequest).
		{"reason in details.text", 400, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"Invalid resource type"},"expression":["resourceType"]}]}`, 2, "HTTP 400: Invalid resource type", -1},
		{"diagnostics and details.text, errors first", 422, `{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"informational","diagnostics":"slow"},{"severity":"error","code":"invalid","diagnostics":"Patient.birthDate: bad","details":{"text":"Invalid date"}}]}`, 2, "HTTP 422: Patient.birthDate: bad; Invalid date; slow", -1},
		{"html error page", 502, "<html>\n<body>Bad   Gateway</body></html>", 2, "HTTP 502: <html> <body>Bad Gateway</body></html>", -1},
		{"not json", 200, `<html>`, 2, "not JSON", -1},
		{"wrong bundle type", 200, `{"resourceType":"Bundle","type":"batch-response"}`, 2, "want a transaction-response", -1},
		{"entry count", 200, ok, 3, "has 2 entries, want 3", -1},
		{"failed entry with details.text", 200, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"400 Bad Request","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"Missing required property"}}]}}}]}`, 1, "entry 0: 400 Bad Request: Missing required property", 0},
		{"failed entry", 200, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201"}},{"response":{"status":"412 Precondition Failed","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"conflict","diagnostics":"version conflict"}]}}}]}`, 2, "entry 1: 412 Precondition Failed: version conflict", 1},
		{"entry without response", 200, `{"resourceType":"Bundle","type":"transaction-response","entry":[{}]}`, 1, "entry has no response", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTransactionResponse(tt.status, []byte(tt.body), tt.n)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var te *TransactionError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want *TransactionError", err)
			}
			if !strings.Contains(err.Error(), tt.want) || te.Entry != tt.entry || te.StatusCode != tt.status {
				t.Errorf("err = %q (entry %d), want %q (entry %d)", err, te.Entry, tt.want, tt.entry)
			}
		})
	}
}
