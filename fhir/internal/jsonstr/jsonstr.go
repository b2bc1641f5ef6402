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
	start, wide := 0, 0
	for i := 0; i < len(s); {
		// Skip eight safe ASCII bytes at a time; after a failed attempt,
		// go byte by byte past the eight bytes tried.
		if i >= wide {
			if n := SafeRun(s[i:], html); n > 0 {
				i += n
				continue
			}
			wide = i + 8
		}
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

// SafeRun returns the length of the longest prefix of s made of whole
// groups of eight ASCII bytes that Append copies as they are (see safe8):
// a lower bound of the bytes that need no escaping, found eight at a time.
// With html false these are also the bytes a JSON string may hold as they
// are.
func SafeRun(s string, html bool) int {
	n := 0
	for n+8 <= len(s) && safe8(s[n:n+8], html) {
		n += 8
	}
	return n
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// safe8 reports whether the eight bytes of s are all ASCII that needs no
// escaping (no control character, quote or backslash, and with html none
// of <, > and &). It may answer false for safe bytes, never true for
// others: "v has a zero byte" is (v-lsb)&^v&msb, exact in whether it is
// zero.
func safe8(s string, html bool) bool {
	_ = s[7]
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	bad := x & msb                   // non-ASCII
	bad |= (x - 0x20*lsb) & ^x & msb // below 0x20
	q := x ^ '"'*lsb
	bad |= (q - lsb) & ^q & msb
	bs := x ^ '\\'*lsb
	bad |= (bs - lsb) & ^bs & msb
	if html {
		lt := x ^ '<'*lsb
		gt := x ^ '>'*lsb
		amp := x ^ '&'*lsb
		bad |= (lt-lsb)&^lt&msb | (gt-lsb)&^gt&msb | (amp-lsb)&^amp&msb
	}
	return bad == 0
}
