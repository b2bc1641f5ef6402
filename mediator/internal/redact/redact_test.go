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

// Secrets in the query string are hidden too: API keys and tokens are
// often given as ?access_token=, ?key=, ?password= rather than userinfo.
func TestURLHidesQuerySecrets(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://fhir.example.org/fhir?access_token=s3c1", "https://fhir.example.org/fhir?access_token=xxxxx"},
		{"https://emr/hook?a=1&token=s3c2&b=2", "https://emr/hook?a=1&token=xxxxx&b=2"},
		{"https://emr/hook?key=s3c3#frag", "https://emr/hook?key=xxxxx#frag"},
		{"https://emr/hook?API_KEY=s3c4&Password=s3c5", "https://emr/hook?API_KEY=xxxxx&Password=xxxxx"},
		{"https://emr/hook?client%5Fsecret=s3c6", "https://emr/hook?client%5Fsecret=xxxxx"},
		{"https://emr/hook?sig=s3c7&auth=s3c8", "https://emr/hook?sig=xxxxx&auth=xxxxx"},
		{"https://u:s3c9@emr/hook?token=s3c10", "https://u:xxxxx@emr/hook?token=xxxxx"},
		{"https://emr/hook?email=a@b.org&token=s3c11", "https://emr/hook?email=a@b.org&token=xxxxx"},
		{"emr:8080/hook?password=s3c12", "emr:8080/hook?password=xxxxx"},
		// Not secret: kept, so that the URL stays recognisable.
		{"https://emr/hook?_format=json&page=2", "https://emr/hook?_format=json&page=2"},
		{"https://emr/hook?token", "https://emr/hook?token"},
	}
	for _, tt := range tests {
		got := URL(tt.in)
		if got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3c") {
			t.Errorf("URL(%q) = %q still shows a secret", tt.in, got)
		}
	}
}

// Query hides the same secrets in a bare query string, as an orchestration
// records it.
func TestQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"_count=1", "_count=1"},
		{"access_token=s3c1&_count=1", "access_token=xxxxx&_count=1"},
		{"a=1&API_KEY=s3c2", "a=1&API_KEY=xxxxx"},
	}
	for _, tt := range tests {
		if got := Query(tt.in); got != tt.want {
			t.Errorf("Query(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
