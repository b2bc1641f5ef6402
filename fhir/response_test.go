package fhir

import (
	"testing"
)

// TestServerReasons: the reason a server gives is found where each server
// puts it (HAPI in diagnostics, Medplum in details.text; @medplum/core
// outcomes badRequest), errors before warnings, each text once; a body
// that is not an OperationOutcome (an HTML error page) is shown as one
// line.
func TestServerReasons(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"diagnostics", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Missing required property"}]}`, "Missing required property"},
		{"details.text", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"Invalid resource type"},"expression":["resourceType"]}]}`, "Invalid resource type"},
		{"errors first, once each", `{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"informational","diagnostics":"slow"},{"severity":"error","code":"invalid","diagnostics":"Patient.birthDate: bad","details":{"text":"Invalid date"}},{"severity":"error","code":"invalid","diagnostics":"Invalid date"}]}`, "Patient.birthDate: bad; Invalid date; slow"},
		{"no issues", `{"resourceType":"OperationOutcome","issue":[]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oo := parseOutcome([]byte(tt.body))
			if got := outcomeText(oo); got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
		})
	}
	if got := bodySnippet([]byte("<html>\n<body>Bad   Gateway</body></html>")); got != "<html> <body>Bad Gateway</body></html>" {
		t.Errorf("snippet = %q", got)
	}
}
