package backfill

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// docType returns the document's top-level "type" string, as
// cht.HydratedDoc.Type does, in one pass over the bytes without decoding:
// hydrated reports are several KB of nested lineage, and Type decodes all of
// it. Documents the scanner is not sure about (escaped keys, keys such as
// "Type" that encoding/json would also match, escaped or non-string values,
// malformed JSON) are handed to Type.
func docType(d *cht.HydratedDoc) string {
	if t, ok := sniffType(d.Doc); ok {
		return t
	}
	return d.Type()
}

// sniffType scans the members of a top-level JSON object for "type".
func sniffType(b []byte) (typ string, ok bool) {
	seenType := false
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return "", true
	}
	for {
		// Key.
		if i >= len(b) || b[i] != '"' {
			return "", false
		}
		end := bytes.IndexByte(b[i+1:], '"')
		if end < 0 {
			return "", false
		}
		key := b[i+1 : i+1+end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return "", false
		}
		i = skipSpace(b, i+2+end)
		if i >= len(b) || b[i] != ':' {
			return "", false
		}
		i = skipSpace(b, i+1)
		isType := string(key) == "type"
		if !isType && strings.EqualFold(string(key), "type") {
			return "", false
		}
		start := i
		var good bool
		if i, good = skipValue(b, i); !good {
			return "", false
		}
		if isType {
			if seenType {
				return "", false // a repeated "type": let the document decoder settle it
			}
			seenType = true
			v := b[start:i]
			switch {
			case len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 && utf8.Valid(v):
				typ = string(v[1 : len(v)-1])
			case len(v) > 0 && v[0] == '"':
				return "", false // escaped or invalid UTF-8: let encoding/json decode it
			default:
				typ = "" // not a string: Type returns ""
			}
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return "", false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			if skipSpace(b, i+1) != len(b) {
				return "", false
			}
			return typ, true
		default:
			return "", false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index after the JSON value at i. It checks the
// nesting of brackets and strings, not the grammar of literals; anything it
// accepts that is not JSON is rejected later by the document decoder.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		var stack []byte
		for i < len(b) {
			switch c := b[i]; c {
			case '"':
				var ok bool
				if i, ok = skipString(b, i); !ok {
					return i, false
				}
				continue
			case '{', '[':
				stack = append(stack, c)
			case '}', ']':
				if len(stack) == 0 || (c == '}') != (stack[len(stack)-1] == '{') {
					return i, false
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return i, false
	default:
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			if b[i] == '"' || b[i] == '{' || b[i] == '[' || b[i] == ':' {
				return i, false
			}
			i++
		}
		return i, i > start
	}
}

// skipString returns the index after the string starting at i.
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(b), false
}
