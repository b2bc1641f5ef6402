package fhir

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonstr"
)

// scanner is a small allocation-free JSON reader over a string, used by the
// outbound payload decoder. Strings without escapes are returned as
// substrings of the input.
type scanner struct {
	s   string
	i   int
	err error
	// strict refuses what a FHIR string may not hold instead of passing
	// it on: invalid UTF-8 and lone surrogates (else U+FFFD, as
	// encoding/json does) and control characters but tab, CR and LF.
	strict bool
}

func (d *scanner) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("offset %d: "+format, append([]any{d.i}, args...)...)
	}
}

func (d *scanner) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *scanner) peek() byte {
	d.ws()
	if d.i >= len(d.s) {
		return 0
	}
	return d.s[d.i]
}

func (d *scanner) consume(c byte) bool {
	if d.peek() == c {
		d.i++
		return true
	}
	return false
}

// object calls fn for each key; fn must consume the value.
func (d *scanner) object(fn func(key string)) {
	if !d.consume('{') {
		d.fail("want object")
		return
	}
	if d.consume('}') {
		return
	}
	for d.err == nil {
		if d.peek() != '"' {
			d.fail("want object key")
			return
		}
		k := d.str()
		if !d.consume(':') {
			d.fail("want ':'")
			return
		}
		fn(k)
		if d.consume(',') {
			continue
		}
		if d.consume('}') {
			return
		}
		d.fail("want ',' or '}'")
	}
}

// array calls fn for each element; fn must consume it.
func (d *scanner) array(fn func()) {
	if !d.consume('[') {
		d.fail("want array")
		return
	}
	if d.consume(']') {
		return
	}
	for d.err == nil {
		fn()
		if d.consume(',') {
			continue
		}
		if d.consume(']') {
			return
		}
		d.fail("want ',' or ']'")
	}
}

func (d *scanner) null() bool {
	if d.peek() == 'n' && strings.HasPrefix(d.s[d.i:], "null") {
		d.i += 4
		return true
	}
	return false
}

func (d *scanner) str() string {
	if !d.consume('"') {
		d.fail("want string")
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
			d.fail("control character in string")
			return ""
		}
		d.i++
	}
	d.fail("unterminated string")
	return ""
}

func (d *scanner) strSlow(start int) string {
	b := make([]byte, 0, d.i-start+16)
	b = append(b, d.s[start:d.i]...) // valid so far
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(b)
		case c < 0x20:
			d.fail("control character in string")
			return ""
		case c >= utf8.RuneSelf:
			// Invalid UTF-8 becomes U+FFFD, byte by byte, like encoding/json.
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && size == 1 && d.strict {
				d.fail("invalid UTF-8 in string")
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
				d.fail("control character \\%c in string", e)
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
					d.fail("lone surrogate \\u%04X in string", r)
					return ""
				}
				r = utf8.RuneError
			}
			if d.strict && r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
				d.fail("control character U+%04X in string", r)
				return ""
			}
			b = utf8.AppendRune(b, r)
		default:
			d.fail("invalid escape \\%c", e)
			return ""
		}
	}
	d.fail("unterminated string")
	return ""
}

func (d *scanner) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		d.fail("short \\u escape")
		return 0, false
	}
	n, err := strconv.ParseUint(d.s[d.i:d.i+4], 16, 32)
	if err != nil {
		d.fail("invalid \\u escape")
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// number returns a number literal.
func (d *scanner) number() string {
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
	if !isValidNumber(lit) {
		d.fail("invalid number %q", lit)
		return ""
	}
	return lit
}

func (d *scanner) boolean() bool {
	d.ws()
	switch {
	case strings.HasPrefix(d.s[d.i:], "true"):
		d.i += 4
		return true
	case strings.HasPrefix(d.s[d.i:], "false"):
		d.i += 5
		return false
	}
	d.fail("want boolean")
	return false
}

var errDepth = errors.New("nesting too deep")

// skip consumes any value.
func (d *scanner) skip(depth int) {
	if depth > 64 {
		d.fail("%v", errDepth)
		return
	}
	switch d.peek() {
	case '{':
		d.object(func(string) { d.skip(depth + 1) })
	case '[':
		d.array(func() { d.skip(depth + 1) })
	case '"':
		d.str()
	case 't', 'f':
		d.boolean()
	case 'n':
		if !d.null() {
			d.fail("invalid literal")
		}
	default:
		d.number()
	}
}

// end checks that only white space follows.
func (d *scanner) end() {
	d.ws()
	if d.err == nil && d.i != len(d.s) {
		d.fail("trailing data")
	}
}
