// Package redact hides the credentials a URL may carry, for the fhir
// client's and fhir/tocht's configurations and errors: one rule for both.
package redact

import (
	"net/url"
	"strings"
)

// URL returns s without the credentials it embeds: "https://u:p@host/x"
// becomes "https://host/x". Without "//", "u:p@host/x" parses as the
// scheme "u" with the opaque "p@host/x"; it becomes "host/x". A URL that
// does not parse but holds an "@" is hidden whole ("REDACTED").
func URL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		if strings.Contains(s, "@") {
			return "REDACTED"
		}
	case u.User != nil:
		u.User = nil
		return u.String()
	case u.Opaque != "":
		// The opaque part starts right after the scheme and its colon.
		if at := strings.LastIndexByte(u.Opaque, '@'); at >= 0 {
			return s[len(u.Scheme)+1+at+1:]
		}
	}
	return s
}
