package redact

import "testing"

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://cht.example.org", "https://cht.example.org"},
		{"https://medic:s3cret@cht.example.org/x?y=1", "https://medic:REDACTED@cht.example.org/x?y=1"},
		{"https://medic@cht.example.org", "https://medic@cht.example.org"}, // no password
		// No "//": url.Parse reads "medic" as the scheme, "s3cret@..." as opaque.
		{"medic:s3cret@cht.example.org", "medic:REDACTED@cht.example.org"},
		{"medic:p@ss@cht.example.org", "medic:REDACTED@cht.example.org"},
		{"https://u:s3cret%zz@host", "REDACTED"}, // does not parse
		{"http://[bad/", "http://[bad/"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
