// Package jsonstr writes JSON strings exactly as encoding/json does, for
// the fhir encoder (HTML escaping on, as json.Marshal) and the fhirtest
// server's codec (HTML escaping off, as an Encoder with
// SetEscapeHTML(false)): one escaper with the two rules.
package jsonstr

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// safe[html][c] is true for the ASCII bytes encoding/json writes
// unescaped, with HTML escaping on (html) or off.
var safe = func() (t [2][utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		plain := c != '"' && c != '\\'
		t[0][c] = plain
		t[1][c] = plain && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// Append appends s as a quoted JSON string. Control characters, quotes and
// backslashes are escaped, U+2028 and U+2029 always, and <, > and & when
// html is true; invalid UTF-8 is replaced by U+FFFD.
func Append(dst []byte, s string, html bool) []byte {
	dst = append(dst, '"')
	dst = AppendBody(dst, s, html)
	return append(dst, '"')
}

// AppendBody is Append without the quotes.
func AppendBody(dst []byte, s string, html bool) []byte {
	t := &safe[0]
	if html {
		t = &safe[1]
	}
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if t[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
