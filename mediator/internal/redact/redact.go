// Package redact hides the password of a URL for logs and errors, whatever
// the URL's shape. It is the one URL redaction of package mediator's
// settings and OpenHIM client.
package redact

import "strings"

// Mask replaces a redacted password, as url.URL.Redacted writes it.
const Mask = "xxxxx"

// URL returns s with the password of any userinfo replaced by [Mask]:
// everything between the first ':' of the userinfo and its last '@'.
//
// It does not rely on url.Parse: "user:pw@host" parses as scheme "user"
// with an opaque part, and "http://user:p/w@host" as host "user:p", so
// URL.Redacted would print either password. Instead the userinfo is
// taken to run from after "scheme://" (or from the start, when there is
// no "://") to the last '@', so a password containing '/', '?', '#' or
// '@' is hidden too. A string with no '@' is returned as it is. The user
// name is kept, as url.URL.Redacted keeps it.
func URL(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return s
	}
	userinfo := rest[:at]
	colon := strings.IndexByte(userinfo, ':')
	if colon < 0 {
		return s
	}
	return prefix + userinfo[:colon+1] + Mask + rest[at:]
}
