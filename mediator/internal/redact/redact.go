// Package redact hides the password of a URL, and the secrets of its query
// string, for logs and errors, whatever the URL's shape. It is the one URL
// redaction of package mediator's settings and OpenHIM client.
package redact

import (
	"net/url"
	"strings"
)

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
// '@' is hidden too. The user name is kept, as url.URL.Redacted keeps it.
//
// The value of each query parameter whose name suggests a secret (token,
// access_token, api_key, key, password, secret, sig, auth ...: see
// [SecretParam]) is replaced by [Mask] too: ?access_token=abc&x=1 becomes
// ?access_token=xxxxx&x=1.
func URL(s string) string {
	s, host := userinfo(s)
	return query(s, host)
}

// userinfo hides the password of the userinfo. host is where what follows
// the userinfo starts.
func userinfo(s string) (_ string, host int) {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return s, len(prefix)
	}
	user := rest[:at]
	colon := strings.IndexByte(user, ':')
	if colon < 0 {
		return s, len(prefix)
	}
	masked := prefix + user[:colon+1] + Mask
	return masked + rest[at:], len(masked)
}

// Query returns the query string q (without '?') with the value of each
// secret parameter (see [SecretParam]) replaced by [Mask].
func Query(q string) string {
	if q == "" {
		return q
	}
	return query("?"+q, 0)[1:]
}

// query hides the values of the secret parameters of the query string,
// from the first '?' at or after host to '#'.
func query(s string, host int) string {
	q := strings.IndexByte(s[host:], '?')
	if q < 0 {
		return s
	}
	q += host + 1
	end := len(s)
	if h := strings.IndexByte(s[q:], '#'); h >= 0 {
		end = q + h
	}
	params := strings.Split(s[q:end], "&")
	for i, p := range params {
		name, _, hasValue := strings.Cut(p, "=")
		if hasValue && SecretParam(name) {
			params[i] = name + "=" + Mask
		}
	}
	return s[:q] + strings.Join(params, "&") + s[end:]
}

// SecretParam reports whether a query parameter named name (as written,
// percent-encoded or not) may carry a secret: its name, lower-cased,
// contains token, key, secret, pass, pwd, sig, auth, credential, session
// or jwt.
func SecretParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	name = strings.ToLower(name)
	for _, w := range []string{"token", "key", "secret", "pass", "pwd", "sig", "auth", "credential", "session", "jwt"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
