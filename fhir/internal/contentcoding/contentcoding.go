// Package contentcoding holds the check of a request's Content-Encoding
// that the routes of fhir/push and fhir/tocht make before they read a body
// they parse. (cht/outbound, which may not import it, makes the same check.)
package contentcoding

import (
	"fmt"
	"net/http"
	"strings"
)

// maxQuoted bounds the header value repeated in the error.
const maxQuoted = 100

// Check returns nil when h declares a body sent as it is: no
// Content-Encoding, or only the coding identity, in any case and with
// spaces around it (RFC 9110 §8.4: codings are case-insensitive, a list
// separated by commas). Any other coding (gzip, deflate, br, ...) is an
// error naming the header and its value: the library does not decode
// request bodies, and the encoded bytes read as JSON would only give a
// misleading "malformed" answer. The caller answers it 415 Unsupported
// Media Type (RFC 9110 §15.5.16) before reading the body.
func Check(h http.Header) error {
	vv := h.Values("Content-Encoding")
	for _, v := range vv {
		for c := range strings.SplitSeq(v, ",") {
			c = strings.Trim(c, " \t")
			if c != "" && !strings.EqualFold(c, "identity") {
				return fmt.Errorf("request header Content-Encoding %q is not supported: send the body unencoded (no Content-Encoding, or identity)",
					quoted(strings.Join(vv, ", ")))
			}
		}
	}
	return nil
}

// quoted returns v cut to maxQuoted bytes.
func quoted(v string) string {
	if len(v) <= maxQuoted {
		return v
	}
	return v[:maxQuoted] + "..."
}
