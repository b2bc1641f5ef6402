package redact

import "testing"

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://fhir.example.org/fhir", "https://fhir.example.org/fhir"},
		{"https://user:pass@fhir.example.org/fhir?x=1", "https://fhir.example.org/fhir?x=1"},
		{"https://user@fhir.example.org/fhir", "https://fhir.example.org/fhir"},
		// No "//": url.Parse reads "user" as the scheme, "pass@..." as opaque.
		{"user:pass@fhir.example.org/fhir", "fhir.example.org/fhir"},
		{"User:p@ss@fhir.example.org:8080/fhir?x=1#f", "fhir.example.org:8080/fhir?x=1#f"},
		{"fhir.example.org/fhir", "fhir.example.org/fhir"},
		{"http://[bad:pass@host/", "REDACTED"},
		{"https://u:p@bad host/%zz", "REDACTED"},
		{"http://[bad/", "http://[bad/"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
