package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestURLHidesPasswordWhateverTheShape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:s3cret@core:8080/api", "https://user:xxxxx@core:8080/api"},
		{"user:s3cret@core:8080", "user:xxxxx@core:8080"},
		{"//user:s3cret@core", "//user:xxxxx@core"},
		{"http//user:s3cret@core", "http//user:xxxxx@core"},
		{"http:/user:s3cret@core", "http:xxxxx@core"},
		{"http://user:s3c/r?e#t@core/p", "http://user:xxxxx@core/p"},
		{"http://user:s3c@ret@core", "http://user:xxxxx@core"},
		{"ftp://user:s3cret@core", "ftp://user:xxxxx@core"},
		{"http://user:s3cret@", "http://user:xxxxx@"},
		{"http://user:s3cret@core:bad port", "http://user:xxxxx@core:bad port"},
		// No password: nothing to hide.
		{"https://core:8080/api", "https://core:8080/api"},
		{"https://user@core", "https://user@core"},
		{"", ""},
	}
	for _, tt := range tests {
		got := URL(tt.in)
		if got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3c") {
			t.Errorf("URL(%q) = %q still shows the password", tt.in, got)
		}
	}
}

// For a well-formed URL, URL agrees with url.URL.Redacted.
func TestURLAgreesWithRedactedOnWellFormedURLs(t *testing.T) {
	for _, s := range []string{
		"https://user:pw@core:8080/api",
		"http://core/x",
		"https://user@core",
		"https://core:8080/a/b?c=d",
	} {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := URL(s), u.Redacted(); got != want {
			t.Errorf("URL(%q) = %q, url.Redacted = %q", s, got, want)
		}
	}
}
