// Package jsonscan reads JSON from a string without decoding it into
// values: the fhir outbound payload decoder, the FHIR answer and bundle
// checks, and fhir/backfill's reading of the bundles it writes.
package jsonscan

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonstr"
)

// Scanner is a small allocation-free JSON reader over a string. Strings
// without escapes are returned as substrings of the input. The first
// problem stops it: every later read does nothing and Err returns it.
type Scanner struct {
	s   string
	i   int
	err error
	// strict refuses what a FHIR string may not hold instead of passing
	// it on: invalid UTF-8 and lone surrogates (else U+FFFD, as
	// encoding/json does) and control characters but tab, CR and LF.
	strict bool
}

// New returns a Scanner over s, strict or lenient about strings.
func New(s string, strict bool) Scanner { return Scanner{s: s, strict: strict} }

// Err is the first problem met, nil if none.
func (d *Scanner) Err() error { return d.err }

// Pos is the offset in the input of the next byte to read.
func (d *Scanner) Pos() int { return d.i }

// Fail records a problem at the current offset, unless one is recorded.
func (d *Scanner) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("offset %d: "+format, append([]any{d.i}, args...)...)
	}
}

func (d *Scanner) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// Peek skips white space and returns the next byte, 0 at the end.
func (d *Scanner) Peek() byte {
	d.ws()
	if d.i >= len(d.s) {
		return 0
	}
	return d.s[d.i]
}

// Consume skips white space and c if c is next, reporting whether it was.
func (d *Scanner) Consume(c byte) bool {
	if d.Peek() == c {
		d.i++
		return true
	}
	return false
}

// Object calls fn for each key; fn must consume the value.
func (d *Scanner) Object(fn func(key string)) {
	if !d.Consume('{') {
		d.Fail("want object")
		return
	}
	if d.Consume('}') {
		return
	}
	for d.err == nil {
		if d.Peek() != '"' {
			d.Fail("want object key")
			return
		}
		k := d.Str()
		if !d.Consume(':') {
			d.Fail("want ':'")
			return
		}
		fn(k)
		if d.Consume(',') {
			continue
		}
		if d.Consume('}') {
			return
		}
		d.Fail("want ',' or '}'")
	}
}

// Array calls fn for each element; fn must consume it.
func (d *Scanner) Array(fn func()) {
	if !d.Consume('[') {
		d.Fail("want array")
		return
	}
	if d.Consume(']') {
		return
	}
	for d.err == nil {
		fn()
		if d.Consume(',') {
			continue
		}
		if d.Consume(']') {
			return
		}
		d.Fail("want ',' or ']'")
	}
}

// Null consumes null if it is next, reporting whether it was.
func (d *Scanner) Null() bool {
	if d.Peek() == 'n' && strings.HasPrefix(d.s[d.i:], "null") {
		d.i += 4
		return true
	}
	return false
}

// Str returns the next value, which must be a string.
func (d *Scanner) Str() string {
	if !d.Consume('"') {
		d.Fail("want string")
		return ""
	}
	start := d.i
	ascii := true
	for d.i < len(d.s) {
		// Plain ASCII bytes eight at a time, to the first other byte
		// (or the last few bytes of the input).
		d.i += jsonstr.SafePrefix(d.s[d.i:], false)
		if d.i >= len(d.s) {
			break
		}
		c := d.s[d.i]
		switch {
		case c == '"':
			v := d.s[start:d.i]
			if !ascii && !utf8.ValidString(v) {
				d.i = start
				return d.strSlow(start)
			}
			d.i++
			return v
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '\\':
			if !ascii {
				d.i = start // re-scan so invalid UTF-8 before the escape is replaced
			}
			return d.strSlow(start)
		case c < 0x20:
			d.Fail("control character in string")
			return ""
		}
		d.i++
	}
	d.Fail("unterminated string")
	return ""
}

func (d *Scanner) strSlow(start int) string {
	b := make([]byte, 0, d.i-start+16)
	b = append(b, d.s[start:d.i]...) // valid so far
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(b)
		case c < 0x20:
			d.Fail("control character in string")
			return ""
		case c >= utf8.RuneSelf:
			// Invalid UTF-8 becomes U+FFFD, byte by byte, like encoding/json.
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && size == 1 && d.strict {
				d.Fail("invalid UTF-8 in string")
				return ""
			}
			b = utf8.AppendRune(b, r)
			d.i += size
			continue
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		d.i++
		if d.i >= len(d.s) {
			break
		}
		e := d.s[d.i]
		d.i++
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b', 'f':
			if d.strict {
				d.Fail("control character \\%c in string", e)
				return ""
			}
			if e == 'b' {
				b = append(b, '\b')
			} else {
				b = append(b, '\f')
			}
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return ""
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if strings.HasPrefix(d.s[d.i:], `\u`) {
					save := d.i
					d.i += 2
					var ok2 bool
					if r2, ok2 = d.hex4(); !ok2 {
						return ""
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						b = utf8.AppendRune(b, dec)
						continue
					}
					d.i = save
				}
				if d.strict {
					d.Fail("lone surrogate \\u%04X in string", r)
					return ""
				}
				r = utf8.RuneError
			}
			if d.strict && r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
				d.Fail("control character U+%04X in string", r)
				return ""
			}
			b = utf8.AppendRune(b, r)
		default:
			d.Fail("invalid escape \\%c", e)
			return ""
		}
	}
	d.Fail("unterminated string")
	return ""
}

func (d *Scanner) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		d.Fail("short \\u escape")
		return 0, false
	}
	n, err := strconv.ParseUint(d.s[d.i:d.i+4], 16, 32)
	if err != nil {
		d.Fail("invalid \\u escape")
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// Number returns a number literal.
func (d *Scanner) Number() string {
	d.ws()
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.i++
			continue
		}
		break
	}
	lit := d.s[start:d.i]
	if !ValidNumber(lit) {
		d.Fail("invalid number %q", lit)
		return ""
	}
	return lit
}

// Boolean returns the next value, which must be true or false.
func (d *Scanner) Boolean() bool {
	d.ws()
	switch {
	case strings.HasPrefix(d.s[d.i:], "true"):
		d.i += 4
		return true
	case strings.HasPrefix(d.s[d.i:], "false"):
		d.i += 5
		return false
	}
	d.Fail("want boolean")
	return false
}

// tooDeep is the problem Skip records past its depth.
const tooDeep = "nesting too deep"

// Skip consumes any value, at most 64 levels deeper than depth.
func (d *Scanner) Skip(depth int) {
	if depth > 64 {
		d.Fail(tooDeep)
		return
	}
	switch d.Peek() {
	case '{':
		d.Object(func(string) { d.Skip(depth + 1) })
	case '[':
		d.Array(func() { d.Skip(depth + 1) })
	case '"':
		d.Str()
	case 't', 'f':
		d.Boolean()
	case 'n':
		if !d.Null() {
			d.Fail("invalid literal")
		}
	default:
		d.Number()
	}
}

// End checks that only white space follows.
func (d *Scanner) End() {
	d.ws()
	if d.err == nil && d.i != len(d.s) {
		d.Fail("trailing data")
	}
}

// ValidNumber reports whether s is a valid JSON number literal (the same
// check encoding/json applies to json.Number).
func ValidNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	default:
		return false
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}
