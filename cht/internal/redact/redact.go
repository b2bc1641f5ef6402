// Package redact hides the password a URL may carry, for package cht's
// configuration and the errors of cht/outbound: one rule for both.
package redact

import (
	"net/url"
	"strings"
)

// URL hides the password of a URL with credentials: "https://u:p@host"
// becomes "https://u:REDACTED@host". Without "//", "medic:pass@host"
// parses as the scheme "medic" with the opaque "pass@host": what precedes
// its last "@" is hidden. A URL that does not parse but holds an "@" is
// hidden whole ("REDACTED").
func URL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		if strings.Contains(s, "@") {
			return "REDACTED"
		}
	case u.User != nil:
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
			return u.String()
		}
	case u.Opaque != "":
		// The opaque part starts right after the scheme and its colon.
		if at := strings.LastIndexByte(u.Opaque, '@'); at >= 0 {
			return s[:len(u.Scheme)+1] + "REDACTED" + s[len(u.Scheme)+1+at:]
		}
	}
	return s
}
