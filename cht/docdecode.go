package cht

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// memberKind tells which view of a document a member or a value error
// belongs to: a document of unknown type is decoded once as both a contact
// and a report, and the caller picks the view.
type memberKind uint8

const (
	kindAll     memberKind = iota // both views
	kindContact                   // contact view only
	kindReport                    // report view only
)

// extSpan is a member kept verbatim: its key, its value's extent and the
// views it is verbatim in.
type extSpan struct {
	key        string
	start, end int
	kind       memberKind
}

// docResult is a document decoded once into a contact view, a report view
// or both.
type docResult struct {
	c *Contact
	r *Report
	// link is the Lineage allocated with c when c is a hydrated lineage
	// link (see contactOnly).
	link *Lineage
	// spanFrom and spanTo delimit the verbatim members in d.spans.
	spanFrom, spanTo int
	// minified is true when the object had no members but _id and parent.
	minified bool
	hasID    bool // an _id member was present (any value)
	hasType  bool // a type member was present (any value)

	// softFrom and softTo delimit the value errors of this document in
	// the decoder's list.
	softFrom, softTo int

	// inner is the document under the outbound payload key, if any.
	inner      *decodedDoc
	innerStart int
	innerEnd   int
}

// keep records a verbatim member.
func (d *decoder) keep(k string, start int, kind memberKind) {
	d.spans = append(d.spans, extSpan{k, start, d.i, kind})
	d.spansHigh = max(d.spansHigh, len(d.spans))
}

// extra builds an Extra map from the spans [from:to] of kind (or of both
// views).
func (d *decoder) extra(from, to int, kind memberKind) map[string]json.RawMessage {
	n := 0
	for _, sp := range d.spans[from:to] {
		if sp.kind == kindAll || sp.kind == kind {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	m := make(map[string]json.RawMessage, n)
	if d.src != nil { // the caller's bytes, which it gives us
		for _, sp := range d.spans[from:to] {
			if sp.kind == kindAll || sp.kind == kind {
				m[d.own(sp.key)] = json.RawMessage(d.src[sp.start:sp.end:sp.end])
			}
		}
		return m
	}
	// Copies, from the arena: Extra is usually a small part of a document.
	size := 0
	for _, sp := range d.spans[from:to] {
		if sp.kind == kindAll || sp.kind == kind {
			size += len(sp.key) + sp.end - sp.start
		}
	}
	d.reserve(size)
	for _, sp := range d.spans[from:to] {
		if sp.kind == kindAll || sp.kind == kind {
			m[d.own(sp.key)] = d.copyRaw(sp.start, sp.end)
		}
	}
	return m
}

// contactView finishes the contact view of res.
func (res *docResult) contactView(d *decoder) *Contact {
	res.c.Extra = d.extra(res.spanFrom, res.spanTo, kindContact)
	return res.c
}

// reportView finishes the report view of res.
func (res *docResult) reportView(d *decoder) *Report {
	res.r.Extra = d.extra(res.spanFrom, res.spanTo, kindReport)
	return res.r
}

// contactOnly decodes a nested contact, finishes it and frees its spans.
// For a lineage link (link), c is a scratch Contact that holds _id and
// parent until another member shows that the link is hydrated: the
// document then goes on in a Contact of its own, res.c.
func (d *decoder) contactOnly(c *Contact, link bool) docResult {
	res := d.object(c, nil, link)
	res.contactView(d)
	d.spans = d.spans[:res.spanFrom]
	return res
}

// nested runs fn for a document nested in a member of kind k: its value
// errors belong to the views k belongs to.
func (d *decoder) nested(k memberKind, fn func()) {
	saved, savedKey := d.nestKind, d.docKey
	if d.nesting == 0 {
		d.nestKind = k
	}
	d.nesting++
	d.docKey = ""
	fn()
	d.nesting--
	d.nestKind, d.docKey = saved, savedKey
}

// doc decodes an object into c, r or both (either may be nil).
func (d *decoder) doc(c *Contact, r *Report) docResult { return d.object(c, r, false) }

// object is doc, for a lineage link when link is set (see contactOnly).
func (d *decoder) object(c *Contact, r *Report, link bool) docResult {
	res := docResult{c: c, r: r, minified: true, softFrom: len(d.soft), spanFrom: len(d.spans)}
	if !d.enter() {
		return res
	}
	for more := d.openObject(); more; more = d.next('}') {
		k := d.key()
		if d.hard != nil {
			break
		}
		d.ws()
		start := d.i
		if res.minified && k != "_id" && k != "parent" {
			res.minified = false
			if link { // hydrated: move to a Contact of its own
				tmp := res.c
				h := d.newNode()
				res.c, res.link = &h.c, &h.l
				res.c.ID, res.c.Parent = tmp.ID, tmp.Parent
				tmp.ID, tmp.Parent = "", nil
			}
		}
		if d.docKey != "" && k == d.docKey && d.peek() == '{' {
			inner := new(decodedDoc)
			saved := d.docKey
			d.docKey = ""
			inner.res = d.doc(&inner.c, &inner.r)
			d.docKey = saved
			res.inner, res.innerStart, res.innerEnd = inner, start, d.i
			d.keep(k, start, kindAll)
			continue
		}
		d.push(k)
		kept := d.member(&res, k)
		d.pop()
		if !kept {
			d.keep(k, start, kindAll)
		}
	}
	d.leave()
	res.softTo, res.spanTo = len(d.soft), len(d.spans)
	return res
}

// member decodes the member k of a document into res's views. It returns
// false when the value is to be kept verbatim in both views.
func (d *decoder) member(res *docResult, k string) bool {
	c, r := res.c, res.r
	start := d.i
	switch k {
	case "_id", "_rev", "type", "patient_id", "place_id":
		if k == "_id" {
			res.hasID = true
		} else if k == "type" {
			res.hasType = true
		}
		s, ok := d.strMember(kindAll)
		if !ok {
			return false
		}
		for _, dst := range [2]*string{c.commonString(k), r.commonString(k)} {
			if dst != nil {
				*dst = s
			}
		}
		return true
	case "contact_type", "name", "short_name", "external_id", "phone", "phone_alternate",
		"sex", "date_of_birth", "date_of_death", "role", "notes":
		if c == nil {
			d.skip()
			return false
		}
		if k == "date_of_death" {
			if ch := d.peek(); ch == '-' || (ch >= '0' && ch <= '9') {
				return d.deathMillis(c, r, start)
			}
		}
		s, ok := d.strMember(kindContact)
		if !ok {
			return false
		}
		*c.contactString(k) = s
		if r != nil {
			d.keep(k, start, kindReport)
		}
		return true
	case "form", "content_type", "from":
		if r == nil {
			d.skip()
			return false
		}
		s, ok := d.strMember(kindReport)
		if !ok {
			return false
		}
		*r.reportString(k) = s
		if c != nil {
			d.keep(k, start, kindContact)
		}
		return true
	case "parent":
		if c == nil {
			d.skip()
			return false
		}
		l, ok := d.lineage(kindContact)
		if !ok {
			return false
		}
		c.Parent = l
		if r != nil {
			d.keep(k, start, kindReport)
		}
		return true
	case "contact":
		ref, ok := d.contactRef(kindAll)
		if !ok {
			return false
		}
		if c != nil {
			c.Contact = ref
		}
		if r != nil {
			r.Contact = ref
		}
		return true
	case "reported_date":
		m, ok := d.millis(kindAll)
		if !ok {
			return false
		}
		if c != nil {
			c.ReportedDate = m
		}
		if r != nil {
			r.ReportedDate = m
		}
		return true
	case "geolocation":
		g, ok := d.geolocation(kindAll)
		if !ok {
			return false
		}
		if c != nil {
			c.Geolocation = g
		}
		if r != nil {
			r.Geolocation = g
		}
		return true
	case "patient", "place", "fields", "errors":
		if r == nil {
			d.skip()
			return false
		}
		ok := false
		switch k {
		case "patient":
			r.Patient, ok = d.contactRef(kindReport)
		case "place":
			r.Place, ok = d.contactRef(kindReport)
		case "fields":
			r.Fields, ok = d.fields(kindReport)
		case "errors":
			r.Errors, ok = d.reportErrors(kindReport)
		}
		if ok && c != nil {
			d.keep(k, start, kindContact)
		}
		return ok
	}
	d.skip()
	return false
}

// deathMillis reads a date_of_death given as a number: the milliseconds
// CHT's death_reporting transition stores when no date field is configured
// (cht-core shared-libs/transitions/src/transitions/death_reporting.js
// getDateOfDeath: the field, else the report's reported_date). It is kept
// as its digits in c.DateOfDeath and written back as a number; a number
// that is not a whole number of milliseconds is a value error, kept
// verbatim.
func (d *decoder) deathMillis(c *Contact, r *Report, start int) bool {
	n := d.number()
	if d.hard != nil {
		return false
	}
	if _, err := strconv.ParseInt(n, 10, 64); err != nil {
		d.bad(kindContact, "want string or whole milliseconds, got number")
		return false
	}
	c.DateOfDeath, c.deathMillis = d.ownMember(n), true
	if r != nil {
		d.keep("date_of_death", start, kindReport)
	}
	return true
}

// strMember reads a string member. ok is false for "", null (kept
// verbatim) and for values that are not strings (a value error).
func (d *decoder) strMember(kind memberKind) (string, bool) {
	switch c := d.peek(); c {
	case '"':
		s := d.strBody()
		if d.strBad != strOK {
			d.bad(kind, "%s", d.strBad)
			return "", false
		}
		return d.ownMember(s), s != ""
	case 'n':
		d.literal()
		return "", false
	default:
		d.bad(kind, "want string, got %s", kindOf(c))
		d.skip()
		return "", false
	}
}

// contactRef reads a reference to a contact: an object (minified or
// hydrated) or a bare id string. "" and null are kept verbatim.
func (d *decoder) contactRef(kind memberKind) (*Contact, bool) {
	switch c := d.peek(); c {
	case '{':
		// A reference is nearly always {_id, parent}: the first
		// minified link of its lineage shares its allocation.
		rc := d.newNode()
		ref, saved := &rc.c, d.spare
		d.spare = &rc.l
		d.nested(kind, func() { d.contactOnly(ref, false) })
		d.spare = saved
		return ref, d.hard == nil
	case '"', 'n':
		s, ok := d.strMember(kind)
		if !ok {
			return nil, false
		}
		ref := &d.newNode().c
		ref.ID = s
		return ref, true
	default:
		d.bad(kind, "want object or id string, got %s", kindOf(c))
		d.skip()
		return nil, false
	}
}

// lineage reads a parent member: a minified or hydrated link, or a bare id
// string. "" and null (no parent) are kept verbatim.
func (d *decoder) lineage(kind memberKind) (*Lineage, bool) {
	switch c := d.peek(); c {
	case '{':
		var l *Lineage
		d.nested(kind, func() {
			tmp := d.tmpContact()
			res := d.contactOnly(tmp, true)
			if res.c != tmp {
				l = res.link
				l.Doc = res.c
			} else {
				l = d.newLineage()
				if p, ok := tmp.Extra["parent"]; ok && tmp.Parent == nil {
					l.raw = p // "" or null at the top
				}
				l.emptyID = res.hasID && res.c.ID == ""
			}
			l.ID, l.Parent = res.c.ID, res.c.Parent
			d.doneTmp(tmp)
		})
		return l, d.hard == nil
	case '"', 'n':
		s, ok := d.strMember(kind)
		if !ok {
			return nil, false
		}
		l := d.newLineage()
		l.ID = s
		return l, true
	default:
		d.bad(kind, "want object or id string, got %s", kindOf(c))
		d.skip()
		return nil, false
	}
}

// millis reads a timestamp: a number of milliseconds, a digit string or an
// ISO 8601 string. "" and null are kept verbatim.
func (d *decoder) millis(kind memberKind) (Millis, bool) {
	switch c := d.peek(); c {
	case '"':
		s := d.strBody()
		if s == "" || d.hard != nil {
			return 0, false
		}
		if m, ok := ParseMillis(s); ok && d.strBad == strOK {
			return m, m != 0
		}
		d.bad(kind, "want milliseconds or an ISO 8601 date, got %q", s)
		return 0, false
	case 'n':
		d.literal()
		return 0, false
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		n := d.number()
		if d.hard != nil {
			return 0, false
		}
		m, ok := parseMillisNumber(n)
		if !ok {
			d.bad(kind, "timestamp %s is out of range", n)
			return 0, false
		}
		return m, m != 0
	default:
		d.bad(kind, "want a timestamp, got %s", kindOf(c))
		d.skip()
		return 0, false
	}
}

func parseMillisNumber(n string) (Millis, bool) {
	if v, err := strconv.ParseInt(n, 10, 64); err == nil {
		return Millis(v), true
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil || math.IsInf(f, 0) || f > 9.2e18 || f < -9.2e18 {
		return 0, false
	}
	return Millis(int64(f)), true
}

// fields reads a report's form data. null is kept verbatim.
func (d *decoder) fields(kind memberKind) (Fields, bool) {
	switch c := d.peek(); c {
	case '{':
		m, _ := d.any(kind).(map[string]any)
		return Fields(m), d.hard == nil
	case 'n':
		d.literal()
		return nil, false
	default:
		d.bad(kind, "want object, got %s", kindOf(c))
		d.skip()
		return nil, false
	}
}

// reportErrors reads a report's errors array.
func (d *decoder) reportErrors(kind memberKind) ([]ReportError, bool) {
	if c := d.peek(); c != '[' {
		if c != 'n' {
			d.bad(kind, "want array, got %s", kindOf(c))
		}
		d.skip()
		return nil, false
	}
	if !d.enter() {
		return nil, false
	}
	defer d.leave()
	out := []ReportError{}
	ok := true
	for more := d.openArray(); more; more = d.next(']') {
		d.pushIdx(len(out))
		var e ReportError
		if d.peek() != '{' {
			d.bad(kind, "want object, got %s", d.kind())
			d.skip()
			ok = false
		} else {
			ok = d.reportError(&e, kind) && ok
		}
		out = append(out, e)
		d.pop()
	}
	return out, ok && d.hard == nil
}

// reportError reads one entry of a report's errors array.
func (d *decoder) reportError(e *ReportError, kind memberKind) bool {
	if !d.enter() {
		return false
	}
	defer d.leave()
	from := len(d.spans)
	ok := true
	for more := d.openObject(); more; more = d.next('}') {
		k := d.key()
		d.ws()
		start := d.i
		d.push(k)
		switch k {
		case "code", "message":
			if d.peek() != '"' {
				d.bad(kind, "want string, got %s", d.kind())
				d.skip()
				ok = false
				break
			}
			s := d.strBody()
			if d.strBad != strOK {
				d.bad(kind, "%s", d.strBad)
				ok = false
				break
			}
			if s == "" && k == "message" {
				d.keep(k, start, kindAll)
				break
			}
			if k == "code" {
				e.Code = d.own(s)
			} else {
				e.Message = d.own(s)
			}
		default:
			d.skip()
			d.keep(k, start, kindAll)
		}
		d.pop()
	}
	e.Extra = d.extra(from, len(d.spans), kindAll)
	d.spans = d.spans[:from]
	return ok
}

// geolocation reads a geolocation object. Anything else ("" is common) is
// kept verbatim; a value of the wrong type is a value error.
func (d *decoder) geolocation(kind memberKind) (*Geolocation, bool) {
	switch c := d.peek(); c {
	case '{':
	case '"', 'n':
		d.skip()
		return nil, false
	default:
		d.bad(kind, "want object, got %s", kindOf(c))
		d.skip()
		return nil, false
	}
	if !d.enter() {
		return nil, false
	}
	defer d.leave()
	// The coordinates share the Geolocation's allocation.
	ga := new(struct {
		g Geolocation
		f [7]float64
	})
	g, nf := &ga.g, 0
	from := len(d.spans)
	ok := true
	for more := d.openObject(); more; more = d.next('}') {
		k := d.key()
		d.ws()
		start := d.i
		d.push(k)
		if dst := g.number(k); dst != nil {
			switch c := d.peek(); {
			case c == 'n':
				d.literal() // null is the same as absent here
			case c == '-' || (c >= '0' && c <= '9'):
				n := d.number()
				f, err := strconv.ParseFloat(n, 64)
				if d.hard == nil && (err != nil || math.IsInf(f, 0)) {
					d.bad(kind, "number %s is out of range", n)
					ok = false
					break
				}
				if nf < len(ga.f) {
					ga.f[nf] = f
					*dst = &ga.f[nf]
					nf++
				} else { // repeated members
					p := new(float64)
					*p = f
					*dst = p
				}
			default:
				d.bad(kind, "want number, got %s", kindOf(c))
				d.skip()
				ok = false
			}
		} else {
			switch k {
			case "code":
				n := ""
				if c := d.peek(); c == '-' || (c >= '0' && c <= '9') {
					n = d.number()
				} else {
					d.skip()
				}
				v, err := strconv.Atoi(n)
				if d.hard == nil && err != nil {
					d.bad(kind, "want an integer code")
					ok = false
					break
				}
				g.Code = v
				if v == 0 {
					d.keep(k, start, kindAll)
				}
			case "message":
				s, sok := d.strMember(kind)
				if !sok {
					d.keep(k, start, kindAll)
					break
				}
				g.Message = s
			default:
				d.skip()
				d.keep(k, start, kindAll)
			}
		}
		d.pop()
	}
	g.Extra = d.extra(from, len(d.spans), kindAll)
	d.spans = d.spans[:from]
	return g, ok && d.hard == nil
}

// commonString returns the field of a member both views hold.
func (c *Contact) commonString(k string) *string {
	if c == nil {
		return nil
	}
	switch k {
	case "_id":
		return &c.ID
	case "_rev":
		return &c.Rev
	case "type":
		return &c.Type
	case "patient_id":
		return &c.PatientID
	case "place_id":
		return &c.PlaceID
	}
	return nil
}

func (r *Report) commonString(k string) *string {
	if r == nil {
		return nil
	}
	switch k {
	case "_id":
		return &r.ID
	case "_rev":
		return &r.Rev
	case "type":
		return &r.Type
	case "patient_id":
		return &r.PatientID
	case "place_id":
		return &r.PlaceID
	}
	return nil
}

func (c *Contact) contactString(k string) *string {
	switch k {
	case "contact_type":
		return &c.ContactType
	case "name":
		return &c.Name
	case "short_name":
		return &c.ShortName
	case "external_id":
		return &c.ExternalID
	case "phone":
		return &c.Phone
	case "phone_alternate":
		return &c.PhoneAlternate
	case "sex":
		return &c.Sex
	case "date_of_birth":
		return &c.DateOfBirth
	case "date_of_death":
		return &c.DateOfDeath
	case "role":
		return &c.Role
	}
	return &c.Notes
}

func (r *Report) reportString(k string) *string {
	switch k {
	case "form":
		return &r.Form
	case "content_type":
		return &r.ContentType
	}
	return &r.From
}

// decodeContact decodes data as a contact document into c. data may be
// reused once it returns.
func decodeContact(data []byte, c *Contact) error { return decodeContactAs(data, c, true) }

// decodeContactAs is decodeContact, first without tracking paths when
// fast is set (tests compare both ways).
func decodeContactAs(data []byte, c *Contact, fast bool) error {
	countDecode()
	d := newBytesDecoder(data, nil)
	d.fast = fast
	d.use = useContact
	var res docResult
	for {
		*c = Contact{}
		res = d.doc(c, nil)
		d.end()
		if !d.retry() {
			break
		}
	}
	res.contactView(d)
	err := d.result(kindContact, 0, len(d.soft))
	d.release()
	return err
}

// decodeReport decodes data as a report document into r. data may be
// reused once it returns.
func decodeReport(data []byte, r *Report) error { return decodeReportAs(data, r, true) }

// decodeReportAs is decodeReport, first without tracking paths when fast
// is set.
func decodeReportAs(data []byte, r *Report, fast bool) error {
	countDecode()
	d := newBytesDecoder(data, nil)
	d.fast = fast
	d.use = useReport
	var res docResult
	for {
		*r = Report{}
		res = d.doc(nil, r)
		d.end()
		if !d.retry() {
			break
		}
	}
	res.reportView(d)
	err := d.result(kindReport, 0, len(d.soft))
	d.release()
	return err
}

// decodedDoc is a document decoded once, with its contact and report views
// finished on demand. Its decoder d holds what the views need (see
// detach), so that the decoder that read the document goes back to the
// pool.
type decodedDoc struct {
	d            docMem
	res          docResult
	c            Contact
	r            Report
	cDone, rDone bool // the view is finished
}

// decodeDoc decodes data as a document of either kind. A syntax error is
// returned as is.
func decodeDoc(data string) (*decodedDoc, error) { return decodeDocAs(data, true) }

// decodeDocAs is decodeDoc, first without tracking paths when fast is set.
func decodeDocAs(data string, fast bool) (*decodedDoc, error) {
	countDecode()
	d := newDecoder(data, nil)
	defer d.release()
	d.fast = fast
	d.use = useDoc
	dd := new(decodedDoc)
	var res docResult
	for {
		res = d.doc(&dd.c, &dd.r)
		d.end()
		if !d.retry() {
			break
		}
		dd.c, dd.r = Contact{}, Report{}
	}
	if d.hard != nil {
		return nil, d.hard
	}
	dd.res = res
	dd.detach(d)
	return dd, nil
}

// detach copies from d what the views of dd need: the input, the verbatim
// members and the value errors of the document.
func (dd *decodedDoc) detach(d *decoder) {
	res := &dd.res
	// The views own their keys in what is left of d's arena chunk; d
	// starts a chunk of its own should it own more.
	dd.d = docMem{s: d.s, src: d.src, borrowed: d.borrowed,
		spans: slices.Clone(d.spans[res.spanFrom:res.spanTo]),
		soft:  slices.Clone(d.soft[res.softFrom:res.softTo]),
		arena: d.arena, arenaLen: d.arenaLen, arenaNext: d.arenaNext}
	d.arena = d.arena[:d.arenaLen:d.arenaLen]
	res.spanFrom, res.spanTo = 0, len(dd.d.spans)
	res.softFrom, res.softTo = 0, len(dd.d.soft)
	res.inner = nil
}

// docMem is what the views of a decoded document need of the decoder
// that read it.
type docMem struct {
	s         string
	src       []byte
	borrowed  bool
	spans     []extSpan
	soft      []softErr
	arena     []byte
	arenaLen  int
	arenaNext int // as in decoder
}

// decoder returns a decoder at the end of m's input, to finish a view.
func (m *docMem) decoder() decoder {
	return decoder{s: m.s, src: m.src, borrowed: m.borrowed, i: len(m.s), spans: m.spans, soft: m.soft,
		arena: m.arena, arenaLen: m.arenaLen, arenaNext: m.arenaNext}
}

// keepArena keeps the arena d, from m.decoder, may have grown.
func (m *docMem) keepArena(d *decoder) {
	m.arena, m.arenaLen, m.arenaNext = d.arena, d.arenaLen, d.arenaNext
}

// docType returns the document's type member ("" if it is not a string).
func (dd *decodedDoc) docType() string { return dd.c.Type }

// contact returns the contact view.
func (dd *decodedDoc) contact() (*Contact, error) {
	if !dd.cDone {
		d := dd.d.decoder()
		dd.res.contactView(&d)
		dd.d.keepArena(&d)
		dd.cDone = true
	}
	return &dd.c, softErrors(dd.d.soft, kindContact)
}

// report returns the report view.
func (dd *decodedDoc) report() (*Report, error) {
	if !dd.rDone {
		d := dd.d.decoder()
		dd.res.reportView(&d)
		dd.d.keepArena(&d)
		dd.rDone = true
	}
	return &dd.r, softErrors(dd.d.soft, kindReport)
}
