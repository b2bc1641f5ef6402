package tocht

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cht-interop/openhim-mediator-go/fhir"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// maxInputIssues bounds the issues checkInput reports, and maxBundleIssues
// those of a Bundle's entries, so that the answer to a large hostile body
// stays small.
const (
	maxInputIssues  = 10
	maxBundleIssues = 50
)

// checkID refuses an id that is not of the FHIR R4 id type
// ([A-Za-z0-9\-\.]{1,64}, https://hl7.org/fhir/R4/datatypes.html#id), and
// one made of dots only, which a URL would read as a dot-segment.
func checkID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("id %s must be 1 to 64 characters, not %d", quote(id), len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("id %s has %s at byte %d: an id holds only A-Z, a-z, 0-9, '-' and '.'", quote(id), quote(id[i:i+1]), i)
		}
	}
	if strings.Trim(id, ".") == "" {
		return fmt.Errorf("id %s is a dot-segment", quote(id))
	}
	return nil
}

// quote quotes s for a message, cut to 80 bytes, with invalid UTF-8 and
// control characters escaped.
func quote(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80]) + "…"
	}
	return strconv.Quote(s)
}

// badID answers 400 for an id (of a URL, a body or a reference) that is not
// an id; expr names the element.
func badID(expr string, err error) error {
	return &Error{Status: http.StatusBadRequest, Err: invalid(expr, err.Error(), models.IssueTypeValue)}
}

// checkInput refuses what FHIR JSON may not hold and encoding/json would
// let through or change: invalid UTF-8 (which it turns into U+FFFD), lone
// UTF-16 surrogates, control characters other than tab, CR and LF in
// strings (FHIR's string is [ \r\n\t\S]+), a member name twice in
// one object (encoding/json would keep the last value), and resource ids (of the
// resource, and of every resource inside it) that are not of the id type.
// Each issue names the element as a FHIRPath expression. Malformed JSON is
// left to the parser, which names it.
func checkInput(data []byte) error {
	if !json.Valid(data) {
		return nil
	}
	s := inputScanner{data: data}
	s.value()
	if len(s.issues) == 0 {
		return nil
	}
	root := s.rootType
	if root == "" {
		root = "Resource"
	}
	for i := range s.issues {
		s.issues[i].Expression = root + s.issues[i].Expression
	}
	return &Error{Status: http.StatusBadRequest, Err: &fhir.InvalidResourceError{ResourceType: s.rootType, Issues: s.issues}}
}

// inputScanner walks JSON that json.Valid accepted, keeping the path of
// the current element (without the root resource type) in path.
type inputScanner struct {
	data     []byte
	pos      int
	path     []byte
	depth    int
	rootType string
	issues   []fhir.Issue
}

func (s *inputScanner) issue(reason string) {
	if len(s.issues) < maxInputIssues {
		s.issues = append(s.issues, fhir.Issue{Expression: clipPath(s.path), Reason: reason, Code: models.IssueTypeValue})
	}
}

// maxIssuePath bounds the bytes of an issue's path: a member name of
// megabytes would otherwise be copied into every issue under it.
const maxIssuePath = 256

// clipPath is path as an issue names it, cut after maxIssuePath bytes (at
// a character boundary) and marked with "…".
func clipPath(path []byte) string {
	if len(path) <= maxIssuePath {
		return string(path)
	}
	cut := maxIssuePath
	for cut > 0 && !utf8.RuneStart(path[cut]) {
		cut--
	}
	return string(path[:cut]) + "…"
}

func (s *inputScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value at pos. When it is a string, it returns its value
// and whether it holds only allowed characters.
func (s *inputScanner) value() (str string, isString, ok bool) {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return "", false, false
	}
	switch s.data[s.pos] {
	case '{':
		s.object()
	case '[':
		s.array()
	case '"':
		str, ok = s.str()
		return str, true, ok
	default: // number, true, false, null
		for s.pos < len(s.data) && !strings.ContainsRune(",]} \t\r\n", rune(s.data[s.pos])) {
			s.pos++
		}
	}
	return "", false, true
}

func (s *inputScanner) object() {
	s.pos++ // {
	s.depth++
	var isResource, idSet, idIsString, idOK bool
	var id string
	var names memberNames
	for {
		s.skipSpace()
		if s.data[s.pos] == '}' {
			s.pos++
			break
		}
		if s.data[s.pos] == ',' {
			s.pos++
			s.skipSpace()
		}
		key, keyOK := s.str()
		s.skipSpace()
		s.pos++ // :
		n := len(s.path)
		if keyOK {
			s.path = append(append(s.path, '.'), key...)
			if !names.add(key) {
				// encoding/json keeps the last value: the first would
				// be lost, or the one the sender meant.
				s.issue("the member appears more than once in its object: send it once")
			}
		}
		v, isString, ok := s.value()
		s.path = s.path[:n]
		switch key {
		case "resourceType":
			isResource = isString && ok
			if isResource && s.depth == 1 {
				s.rootType = v
			}
		case "id":
			idSet, idIsString, idOK, id = true, isString, ok, v
		}
	}
	// An id with invalid characters is reported already.
	if isResource && idSet && idOK {
		if reason := idIssue(idIsString, id); reason != "" {
			n := len(s.path)
			s.path = append(s.path, ".id"...)
			s.issue(reason)
			s.path = s.path[:n]
		}
	}
	s.depth--
}

// memberNames are the member names of one object: a list while it is
// short (most FHIR objects have a few members), a set beyond, so that an
// object of many members costs no more than linear time.
type memberNames struct {
	list []string
	set  map[string]struct{}
}

// add adds name, reporting false when it was there already.
func (m *memberNames) add(name string) bool {
	if m.set != nil {
		if _, ok := m.set[name]; ok {
			return false
		}
		m.set[name] = struct{}{}
		return true
	}
	if slices.Contains(m.list, name) {
		return false
	}
	m.list = append(m.list, name)
	if len(m.list) > 16 {
		m.set = make(map[string]struct{}, 2*len(m.list))
		for _, n := range m.list {
			m.set[n] = struct{}{}
		}
		m.list = nil
	}
	return true
}

// idIssue returns why a resource's id value is not an id, or "".
func idIssue(isString bool, id string) string {
	if !isString {
		return "a resource's id must be a string"
	}
	if err := checkID(id); err != nil {
		return err.Error()
	}
	return ""
}

func (s *inputScanner) array() {
	s.pos++ // [
	for i := 0; ; i++ {
		s.skipSpace()
		if s.data[s.pos] == ']' {
			s.pos++
			return
		}
		if s.data[s.pos] == ',' {
			s.pos++
		}
		n := len(s.path)
		s.path = append(append(append(s.path, '['), strconv.Itoa(i)...), ']')
		s.value()
		s.path = s.path[:n]
	}
}

// str scans a string at pos (json.Valid has checked its syntax) and
// returns its value, and false after reporting an issue when it holds
// invalid UTF-8, a lone surrogate or a control character.
func (s *inputScanner) str() (string, bool) {
	s.pos++ // "
	start := s.pos
	plain := true // no escapes: the value is the raw bytes
	var b []byte
	for {
		c := s.data[s.pos]
		switch {
		case c == '"':
			raw := s.data[start:s.pos]
			s.pos++
			if plain {
				return string(raw), true
			}
			return string(b), true
		case c == '\\':
			if plain {
				b = append(b[:0], s.data[start:s.pos]...)
				plain = false
			}
			r, n := s.escape()
			if r < 0 {
				s.skipString()
				return "", false
			}
			b = utf8.AppendRune(b, r)
			s.pos += n
		case c < utf8.RuneSelf:
			if !plain {
				b = append(b, c)
			}
			s.pos++
		default:
			r, n := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && n == 1 {
				s.issue(fmt.Sprintf("invalid UTF-8 (byte 0x%02x at offset %d): send UTF-8 text", c, s.pos))
				s.skipString()
				return "", false
			}
			if !plain {
				b = append(b, s.data[s.pos:s.pos+n]...)
			}
			s.pos += n
		}
	}
}

// escape decodes the escape sequence at pos, returning the rune and its
// length, or -1 after reporting an issue for a control character or a
// lone surrogate.
func (s *inputScanner) escape() (rune, int) {
	switch e := s.data[s.pos+1]; e {
	case '"', '\\', '/':
		return rune(e), 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'b', 'f':
		s.issue(fmt.Sprintf("control character \\%c at offset %d: FHIR strings may hold no control characters but tab, CR and LF", e, s.pos))
		return -1, 0
	}
	r := hex4(s.data[s.pos+2 : s.pos+6])
	switch {
	case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
		s.issue(fmt.Sprintf("control character U+%04X at offset %d: FHIR strings may hold no control characters but tab, CR and LF", r, s.pos))
		return -1, 0
	case utf16.IsSurrogate(r):
		if s.pos+12 <= len(s.data) && s.data[s.pos+6] == '\\' && s.data[s.pos+7] == 'u' {
			if d := utf16.DecodeRune(r, hex4(s.data[s.pos+8:s.pos+12])); d != utf8.RuneError {
				return d, 12
			}
		}
		s.issue(fmt.Sprintf("lone UTF-16 surrogate \\u%04X at offset %d: not a character", r, s.pos))
		return -1, 0
	}
	return r, 6
}

// skipString moves pos past the end of the current string.
func (s *inputScanner) skipString() {
	for s.data[s.pos] != '"' {
		if s.data[s.pos] == '\\' {
			s.pos++
		}
		s.pos++
	}
	s.pos++
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
