// Package jsonstr writes JSON strings exactly as encoding/json does, for
// the fhir encoder (HTML escaping on, as json.Marshal) and the fhirtest
// server's codec (HTML escaping off, as an Encoder with
// SetEscapeHTML(false)): one escaper with the two rules.
package jsonstr

import (
	"math/bits"
	"unicode/utf8"
)

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
		// Skip safe ASCII bytes eight at a time, to the first byte that
		// needs care, then the few safe bytes of a short tail one by one.
		i += SafePrefix(s[i:], html)
		for i < len(s) && s[i] < utf8.RuneSelf && t[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
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

// SafePrefix returns the length of a prefix of s made of ASCII bytes that
// Append copies as they are, found eight bytes at a time: when it is
// shorter than s by eight bytes or more, s[SafePrefix(s, html)] is the
// first byte that needs care (an escape, or the start of a multi-byte
// rune); a shorter tail is left to the caller. With html false these are
// also the bytes a JSON string may hold as they are.
func SafePrefix(s string, html bool) int {
	// Bytes equal to <, > or & are flagged only with html: otherwise
	// they are compared with a quote, which the quote test flags anyway.
	lt, gt, amp := uint64('"'*lsb), uint64('"'*lsb), uint64('"'*lsb)
	if html {
		lt, gt, amp = '<'*lsb, '>'*lsb, '&'*lsb
	}
	n := 0
	for ; n+8 <= len(s); n += 8 {
		t := s[n : n+8]
		x := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		// "v has a zero byte" is (v-lsb)&^v&msb: a borrow may flag
		// bytes above a flagged one, never below, so the lowest flag
		// marks exactly the first byte that needs care.
		q, bs := x^'"'*lsb, x^'\\'*lsb
		l, g, a := x^lt, x^gt, x^amp
		bad := (x | (x-0x20*lsb)&^x | (q-lsb)&^q | (bs-lsb)&^bs |
			(l-lsb)&^l | (g-lsb)&^g | (a-lsb)&^a) & msb
		if bad != 0 {
			return n + bits.TrailingZeros64(bad)/8
		}
	}
	return n
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)
