package cht

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds how deeply objects and arrays may nest in a document.
// Real CHT hierarchies are a handful of levels deep; the bound keeps
// hostile input from exhausting the stack.
const maxDepth = 64

// DecodeError reports a document, or one member of it, that could not be
// decoded. Path names the offending JSON member in dotted form, e.g.
// "parent.parent._id", "fields.vitals.temp" or "errors.1.code"; it is
// empty for the document itself.
//
// Decoding is strict: malformed JSON, invalid UTF-8 and nesting beyond 64
// levels fail the whole document. A member of the wrong JSON type (an _id
// or name that is a number, a parent that is an array, ...), a string with
// a NUL character or a lone UTF-16 surrogate, or a number beyond float64's
// range is reported too, but the rest of the document is still decoded
// and the offending value is kept verbatim (in Extra, or in Fields for form
// data; not the _id of a minified lineage link, which [Lineage] has no
// room for), so a caller may choose to go on without it. When several members
// are wrong the error joins one *DecodeError per member (errors.Join);
// errors.As finds the first. Such errors have Member set; an error that
// fails the whole document has not, and is never joined with others.
type DecodeError struct {
	Path string // dotted JSON path; "" for the document root
	Err  error  // what was wrong
	// Member is true when only this member's value is wrong: the rest of
	// the document is decoded and the value kept verbatim.
	Member bool
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Path == "" {
		return "cht: decode document: " + e.Err.Error()
	}
	return "cht: decode " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(path, format string, args ...any) error {
	return &DecodeError{Path: path, Err: fmt.Errorf(format, args...)}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// errTooDeep is returned for documents nested beyond maxDepth.
var errTooDeep = errors.New("nested too deeply")

// errRetry stops a fast decode at its first error (see decoder.fast); it
// never reaches a caller.
var errRetry = errors.New("decode again, tracking paths")

// decodeHook, when set (by tests), is called once per document decoded,
// so a test can check that a document is decoded once on its way through.
var decodeHook func()

func countDecode() {
	if decodeHook != nil {
		decodeHook()
	}
}

// jsonKind names the kind of a JSON value from its first byte.
func jsonKind(raw []byte) string {
	for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t' || raw[0] == '\r' || raw[0] == '\n') {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return "nothing"
	}
	return kindOf(raw[0])
}

func kindOf(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "number"
	}
	return "invalid JSON"
}

func isNull(raw []byte) bool { return jsonKind(raw) == "null" }

// pathSeg is one step of the decoder's current JSON path: an object key,
// or an array index when key is "" and idx >= 0.
type pathSeg struct {
	key string
	idx int
}

// decoder reads JSON from one string in a single pass. Strings without
// escapes and object keys are substrings of s, so decoding allocates little
// beyond the maps and structs it builds. A syntax error (hard) stops
// decoding; value errors (soft) are collected and decoding goes on.
//
// Decoders come from a pool (newDecoder); one whose results no longer
// need it is given back with release.
type decoder struct {
	s string
	// src, when not nil, is the caller's own copy of s, which Extra
	// values then alias.
	src []byte
	// borrowed is set when s is a view of the caller's bytes rather than
	// a string of its own: what a decode keeps of s is then copied to
	// arena (see own).
	borrowed bool
	i        int
	depth    int
	hard     error
	// fast, when set, decodes without tracking the JSON path: the first
	// error of either kind stops the decode with errRetry, and the caller
	// decodes the document again with fast unset (see retry), which
	// reports every error with its path. Errors are rare; paths are not
	// worth keeping for every member of every document.
	fast bool
	// set by str: the last string held a NUL or a lone surrogate.
	strBad badString
	// nesting counts the documents being decoded inside a member of
	// another; their value errors belong to nestKind.
	nesting  int
	nestKind memberKind
	// docKey, when set, is the member of a top-level outbound payload that
	// holds the document (see docResult.inner).
	docKey string

	path  []pathSeg
	spans []extSpan // verbatim members of the documents being decoded
	// spansHigh is the most spans held at once: release clears them.
	spansHigh int
	soft      []softErr

	// arena backs the strings and Extra values a decode keeps (see own
	// and copyRaw): arena[:arenaLen] is in use; arenaNext sizes the next
	// chunk.
	arena     []byte
	arenaLen  int
	arenaNext int
	// owned counts the bytes copied to the arena; use tells which kind
	// of decode this is (see arenaEstimate).
	owned int
	use   arenaUse
	// kvs and elems collect the members of the objects and the elements
	// of the arrays that any is decoding.
	kvs   []kv
	elems []any
	// scratch holds the Contacts that lineage links are decoded into
	// before it is known whether they are hydrated (see lineage), reused
	// across documents.
	scratch  []*Contact
	nscratch int
	// spare, when not nil, is a Lineage allocated with the contact
	// reference being decoded (see newLineage).
	spare *Lineage
	// nodes and links hand out the Contacts with a link and the further
	// links of the decode (see newNode and newLineage).
	nodes chunk[docNode]
	links chunk[Lineage]
	// recent are the last long values of typed members that were owned
	// (see ownMember); nrecent counts them.
	recent  [4]string
	nrecent uint8
	// outer is what parsePush decodes a push body into: only its ids
	// are kept, or a copy of it (see parsePush). It stays with the
	// decoder in the pool, cleared.
	outer *outerDoc
}

// outerDoc is a push body's own members, as both views.
type outerDoc struct {
	c Contact
	r Report
}

// kv is a decoded object member.
type kv struct {
	key   string
	value any
}

// badString tells what was wrong with a string that is still valid JSON.
type badString uint8

const (
	strOK        badString = iota
	strNUL                 // held \u0000
	strSurrogate           // held a lone UTF-16 surrogate
)

func (b badString) String() string {
	switch b {
	case strNUL:
		return "NUL character in string"
	case strSurrogate:
		return "lone UTF-16 surrogate in string"
	}
	return ""
}

// softErr is a value error; kind tells which view of a document it belongs
// to (see docResult).
type softErr struct {
	err  *DecodeError
	kind memberKind
}

// decoders keeps decoders, with the buffers they have grown, for reuse.
var decoders = sync.Pool{New: func() any { return new(decoder) }}

// newDecoder returns a decoder for one document. src, when not nil, is
// the same bytes as s owned by the caller for as long as the result lives:
// Extra values then alias it instead of a copy.
func newDecoder(s string, src []byte) *decoder {
	d := decoders.Get().(*decoder)
	d.s, d.src = s, src
	return d
}

// release gives d back to the pool. Nothing decoded refers to the
// decoder, but a docResult does: release only a decoder whose views are
// finished.
func (d *decoder) release() {
	noteArena(d.use, d.owned, len(d.s))
	if d.use != useOther {
		noteCount(&nodeCounts, d.use, d.nodes.used)
		noteCount(&linkCounts, d.use, d.links.used)
	}
	if cap(d.spans) > 256 || cap(d.soft) > 32 || cap(d.path) > 256 || len(d.scratch) > 64 ||
		cap(d.kvs) > 1024 || cap(d.elems) > 1024 {
		return // an unusual document: let it go
	}
	clear(d.path[:cap(d.path)])
	clear(d.spans[:d.spansHigh])
	clear(d.soft[:cap(d.soft)])
	if d.use == usePush && d.outer != nil {
		*d.outer = outerDoc{}
	}
	*d = decoder{path: d.path[:0], spans: d.spans[:0], soft: d.soft[:0], scratch: d.scratch, outer: d.outer,
		kvs: d.kvs[:0], elems: d.elems[:0]}
	decoders.Put(d)
}

func (d *decoder) pathString(extra ...string) string {
	var b strings.Builder
	for _, p := range d.path {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if p.key == "" && p.idx >= 0 {
			b.WriteString(strconv.Itoa(p.idx))
		} else {
			b.WriteString(p.key)
		}
	}
	for _, e := range extra {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(e)
	}
	return b.String()
}

func (d *decoder) push(key string) {
	if !d.fast {
		d.path = append(d.path, pathSeg{key: key, idx: -1})
	}
}

func (d *decoder) pushIdx(i int) {
	if !d.fast {
		d.path = append(d.path, pathSeg{idx: i})
	}
}

func (d *decoder) pop() {
	if !d.fast {
		d.path = d.path[:len(d.path)-1]
	}
}

// retry reports whether a fast decode stopped at an error. If so, it
// readies d to decode the same input again from its start, tracking
// paths; the caller then decodes into zeroed values.
func (d *decoder) retry() bool {
	if d.hard != errRetry {
		return false
	}
	d.fast = false
	d.i, d.depth, d.hard, d.strBad, d.nesting, d.nestKind = 0, 0, nil, strOK, 0, kindAll
	clear(d.spans)
	clear(d.soft)
	d.path, d.spans, d.soft = d.path[:0], d.spans[:0], d.soft[:0]
	return true
}

// fail records a syntax error at the current path; the first one wins.
func (d *decoder) fail(format string, args ...any) {
	if d.fast {
		d.stop()
		return
	}
	if d.hard == nil {
		d.hard = &DecodeError{Path: d.pathString(), Err: fmt.Errorf(format+" (at byte %d)", append(args, d.i+1)...)}
	}
}

// failErr records err as the syntax error at the current path.
func (d *decoder) failErr(err error) {
	if d.fast {
		d.stop()
		return
	}
	if d.hard == nil {
		d.hard = &DecodeError{Path: d.pathString(), Err: err}
	}
}

// bad records a value error at the current path (plus key when not "").
func (d *decoder) bad(kind memberKind, format string, args ...any) {
	if d.fast {
		d.stop()
		return
	}
	if len(d.soft) >= 20 {
		return // enough to tell what is wrong
	}
	if d.nesting > 0 {
		kind = d.nestKind
	}
	d.soft = append(d.soft, softErr{err: &DecodeError{Path: d.pathString(), Err: fmt.Errorf(format, args...), Member: true}, kind: kind})
}

// stop ends a fast decode at its first error.
func (d *decoder) stop() {
	if d.hard == nil {
		d.hard = errRetry
	}
}

func (d *decoder) ws() {
	s, i := d.s, d.i
	for i < len(s) && s[i] <= ' ' && isSpace(s[i]) {
		i++
	}
	d.i = i
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// peek returns the next non-space byte, 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	return d.at()
}

// at returns the byte at d.i, 0 at the end.
func (d *decoder) at() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// kind names the kind of the next value.
func (d *decoder) kind() string {
	c := d.peek()
	if c == 0 {
		return "nothing"
	}
	return kindOf(c)
}

// enter and leave bound nesting.
func (d *decoder) enter() bool {
	d.depth++
	if d.depth > maxDepth {
		return d.tooDeep()
	}
	return true
}

//go:noinline
func (d *decoder) tooDeep() bool {
	d.failErr(errTooDeep)
	return false
}

func (d *decoder) leave() { d.depth-- }

// openObject consumes '{' and reports whether the object has members.
func (d *decoder) openObject() bool {
	if d.peek() != '{' {
		d.fail("want object")
		return false
	}
	d.i++
	if d.peek() == '}' {
		d.i++
		return false
	}
	return d.hard == nil
}

// key reads a member name and the ':' after it.
func (d *decoder) key() string {
	if d.peek() != '"' {
		d.fail("want object key")
		return ""
	}
	k := d.strBody()
	if d.i < len(d.s) && d.s[d.i] == ':' {
		d.i++
		return k
	}
	if d.peek() != ':' {
		d.fail("want ':' after object key")
		return ""
	}
	d.i++
	return k
}

// next consumes ',' (true: another member follows) or the closing byte.
func (d *decoder) next(close byte) bool {
	if d.hard != nil {
		return false
	}
	if i := d.i; i < len(d.s) {
		switch d.s[i] {
		case ',':
			d.i = i + 1
			return true
		case close:
			d.i = i + 1
			return false
		}
	}
	switch d.peek() {
	case ',':
		d.i++
		return true
	case close:
		d.i++
		return false
	}
	d.fail("want ',' or '%c'", close)
	return false
}

// openArray consumes '[' and reports whether the array has elements.
func (d *decoder) openArray() bool {
	if d.peek() != '[' {
		d.fail("want array")
		return false
	}
	d.i++
	if d.peek() == ']' {
		d.i++
		return false
	}
	return d.hard == nil
}

// plain marks the bytes a string holds as they are: ASCII other than
// control characters, '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string. It sets d.strBad when the string holds a NUL or a
// lone surrogate (kept as U+0000 and U+FFFD).
func (d *decoder) str() string {
	if d.peek() != '"' {
		d.strBad = strOK
		d.fail("want string")
		return ""
	}
	return d.strBody()
}

// strBody is str at the opening quote.
func (d *decoder) strBody() string {
	d.strBad = strOK
	s := d.s
	start := d.i + 1
	i := start
	for {
		i = plainRun(s, i)
		if i >= len(s) {
			break
		}
		switch c := s[i]; {
		case c == '"':
			d.i = i + 1
			return s[start:i]
		case c == '\\':
			d.i = i
			return d.strSlow(start)
		case c < 0x20:
			d.i = i
			d.fail("control character in string")
			return ""
		default: // c >= utf8.RuneSelf
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				d.i = i
				d.fail("invalid UTF-8 in string")
				return ""
			}
			i += n
		}
	}
	d.i = i
	d.fail("unterminated string")
	return ""
}

// SWAR constants: one in each byte, the high bit of each byte.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// plainRun returns the index of the first byte at or after i that is not
// plain (see plain), or len(s). It looks at eight bytes at a time.
func plainRun(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		b := s[i : i+8]
		x := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if m := special8(x); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}

// special8 flags (in the high bit of each byte) the bytes of x that are
// not plain: '"', '\\', control characters and non-ASCII. The lowest
// flagged byte is exact; a borrow can only flag bytes above a byte that is
// flagged itself.
func special8(x uint64) uint64 {
	q := x ^ (swarLo * '"')
	e := x ^ (swarLo * '\\')
	return ((q-swarLo)&^q | (e-swarLo)&^e | (x-swarLo*0x20)&^x | x) & swarHi
}

func (d *decoder) strSlow(start int) string {
	b := make([]byte, 0, d.i-start+16)
	b = append(b, d.s[start:d.i]...)
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
			r, n := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && n == 1 {
				d.fail("invalid UTF-8 in string")
				return ""
			}
			b = append(b, d.s[d.i:d.i+n]...)
			d.i += n
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
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
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
				dec := utf8.RuneError
				if strings.HasPrefix(d.s[d.i:], `\u`) {
					save := d.i
					d.i += 2
					r2, ok := d.hex4()
					if !ok {
						return ""
					}
					if dec = utf16.DecodeRune(r, r2); dec == utf8.RuneError {
						d.i = save
					}
				}
				if dec == utf8.RuneError {
					d.strBad = strSurrogate
				}
				r = dec
			} else if r == 0 {
				d.strBad = strNUL
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

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		d.fail("short \\u escape")
		return 0, false
	}
	var r rune
	for _, c := range []byte(d.s[d.i : d.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			d.fail("invalid \\u escape")
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// number reads a number literal by JSON's grammar.
func (d *decoder) number() string {
	d.ws()
	s, start := d.s, d.i
	i := start
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		d.fail("invalid number")
		return ""
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			d.fail("invalid number")
			return ""
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			d.fail("invalid number")
			return ""
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	d.i = i
	return s[start:i]
}

// literal consumes true, false or null.
func (d *decoder) literal() {
	for _, lit := range [...]string{"true", "false", "null"} {
		if strings.HasPrefix(d.s[d.i:], lit) {
			d.i += len(lit)
			return
		}
	}
	d.fail("invalid literal")
}

// skip consumes any value, checking its syntax.
func (d *decoder) skip() {
	switch d.peek() {
	case '{':
		if !d.enter() {
			return
		}
		for more := d.openObject(); more; more = d.next('}') {
			d.key()
			d.skip()
		}
		d.leave()
	case '[':
		if !d.enter() {
			return
		}
		for more := d.openArray(); more; more = d.next(']') {
			d.skip()
		}
		d.leave()
	case '"':
		d.strBody()
	case 't', 'f', 'n':
		d.literal()
	case 0:
		d.fail("want a value")
	default:
		d.number()
	}
}

// span skips a value and returns its extent in s.
func (d *decoder) span() (start, end int) {
	d.ws()
	start = d.i
	d.skip()
	return start, d.i
}

// end checks that only white space follows the top-level value.
func (d *decoder) end() {
	if d.ws(); d.hard == nil && d.i < len(d.s) {
		d.fail("data after the document")
	}
}

// any decodes a value as encoding/json does into any, except that numbers
// are json.Number. Value errors are reported under kind.
func (d *decoder) any(kind memberKind) any {
	switch d.peek() {
	case '{':
		if !d.enter() {
			return nil
		}
		// The members are collected first, so that the map is made at
		// its size.
		base := len(d.kvs)
		for more := d.openObject(); more; more = d.next('}') {
			k := d.key()
			d.push(k)
			v := d.any(kind)
			d.kvs = append(d.kvs, kv{d.own(k), v})
			d.pop()
		}
		m := make(map[string]any, len(d.kvs)-base)
		for _, e := range d.kvs[base:] {
			m[e.key] = e.value
		}
		clear(d.kvs[base:])
		d.kvs = d.kvs[:base]
		d.leave()
		return m
	case '[':
		if !d.enter() {
			return nil
		}
		base := len(d.elems)
		for more := d.openArray(); more; more = d.next(']') {
			d.pushIdx(len(d.elems) - base)
			v := d.any(kind)
			d.elems = append(d.elems, v)
			d.pop()
		}
		a := make([]any, len(d.elems)-base)
		copy(a, d.elems[base:])
		clear(d.elems[base:])
		d.elems = d.elems[:base]
		d.leave()
		return a
	case '"':
		s := d.strBody()
		if d.strBad != strOK {
			d.bad(kind, "%s", d.strBad)
		} else if v := commonAnswer(s); v != nil {
			return v
		}
		return d.own(s)
	case 't':
		d.literal()
		return true
	case 'f':
		d.literal()
		return false
	case 'n':
		d.literal()
		return nil
	case 0:
		d.fail("want a value")
		return nil
	}
	n := d.number()
	if d.hard == nil && !finite(n) {
		d.bad(kind, "number %s is out of range", n)
	}
	return json.Number(d.own(n))
}

// Form answers that most reports hold, as values of Fields that need no
// memory of their own.
var (
	answerYes    any = "yes"
	answerNo     any = "no"
	answerTrue   any = "true"
	answerFalse  any = "false"
	answerMale   any = "male"
	answerFemale any = "female"
)

// commonAnswer returns s as one of the answers above, or nil.
func commonAnswer(s string) any {
	switch s {
	case "yes":
		return answerYes
	case "no":
		return answerNo
	case "true":
		return answerTrue
	case "false":
		return answerFalse
	case "male":
		return answerMale
	case "female":
		return answerFemale
	}
	return nil
}

// finite reports whether a valid number literal fits a float64.
func finite(n string) bool {
	if !strings.ContainsAny(n, "eE") && len(n) < 300 {
		return true
	}
	f, err := strconv.ParseFloat(n, 64)
	return err == nil && !math.IsInf(f, 0)
}

// tmpContact returns a zero Contact to decode a lineage link into, until
// doneTmp gives it back (last taken, first given back).
func (d *decoder) tmpContact() *Contact {
	if d.nscratch == len(d.scratch) {
		d.scratch = append(d.scratch, new(Contact))
	}
	d.nscratch++
	return d.scratch[d.nscratch-1]
}

// doneTmp clears and gives back the Contact tmpContact returned last. A
// scratch Contact holds no more than _id, parent and Extra (see
// contactOnly).
func (d *decoder) doneTmp(c *Contact) {
	c.ID, c.Parent, c.Extra = "", nil, nil
	d.nscratch--
}

// result ends a decode: the syntax error, or the value errors of kind
// among soft[from:to].
func (d *decoder) result(kind memberKind, from, to int) error {
	if d.hard != nil {
		return d.hard
	}
	return softErrors(d.soft[from:to], kind)
}

// softErrors returns the value errors of kind among soft.
func softErrors(soft []softErr, kind memberKind) error {
	var errs []error
	for _, e := range soft {
		if e.kind == kindAll || e.kind == kind {
			errs = append(errs, e.err)
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// members collects marshalled members of a document; typed members override
// extra members of the same name.
type members map[string]any

func (m members) str(key, v string) {
	if v != "" {
		m[key] = v
	}
}

func marshalMembers(extra map[string]json.RawMessage, typed members) ([]byte, error) {
	out := make(map[string]any, len(extra)+len(typed))
	for k, v := range extra {
		out[k] = v
	}
	for k, v := range typed {
		out[k] = v
	}
	return json.Marshal(out)
}
