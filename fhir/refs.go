package fhir

import (
	"unsafe"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// member is a resource included in the transaction being built.
type member struct {
	rt, chtID string
	urn       string // "urn:uuid:<id>"
	url       string // "<rt>/<id>" with WritePut
}

// refs resolves references from converted resources to other CHT documents:
// to the entry's urn:uuid when the target is in the same transaction,
// otherwise to Type/<deterministic id> (WritePut) or to a logical reference
// by CHT identifier (conditional strategies, where ids are server-assigned).
type refs struct {
	c    *Converter
	in   []member
	strs []string // storage for the strings the resources point to
	// memberText holds the bytes of the members' urn and url strings; bytes
	// before its length belong to strings and are never written again.
	memberText []byte
	meta       *models.Meta // shared by the resources of one conversion
	// warnings are the values of lenient fields dropped by the conversion.
	warnings []*ConversionError
	// subj is the subject of the report being converted (nil when its
	// form is subjectless); submitter the resource type its submitter is
	// referenced as ("Practitioner", "Patient", or "" for none).
	subj      *reportSubject
	subjIdent models.Identifier // the identifier of a subject's literal reference
	submitter string
	geo       bool // the report has a geolocation: its Location is in the bundle

	// Slabs for the elements the resources of one conversion point to.
	ccs     slab[models.CodeableConcept]
	codings slab[models.Coding]
	idents  slab[models.Identifier]
	rs      slab[models.Reference]
	uses    slab[models.IdentifierUse]
}

// warn records a dropped lenient value. A nil refs (a conversion that
// returns no Transaction) discards it.
func (x *refs) warn(e *ConversionError) {
	if x != nil {
		x.warnings = append(x.warnings, e)
	}
}

// heap returns a pointer to a heap copy of v. It is not inlined so that the
// callers' parameters do not escape (and get allocated) on their slab paths.
//
//go:noinline
func heap[T any](v T) *T { return &v }

// slab hands out pointers to and short slices of elements of shared
// backing arrays, so that building a resource takes a few allocations
// instead of one per element. Slices are capacity-limited, so appending to
// one never overwrites another.
type slab[T any] struct{ s []T }

func (sl *slab[T]) grow(n int) {
	if cap(sl.s)-len(sl.s) < n {
		sl.s = make([]T, 0, max(16, n))
	}
}

// ptr returns a pointer to a copy of v.
func (sl *slab[T]) ptr(v T) *T {
	sl.grow(1)
	sl.s = append(sl.s, v)
	return &sl.s[len(sl.s)-1]
}

// take returns a zeroed slice of length n and capacity n.
func (sl *slab[T]) take(n int) []T {
	sl.grow(n)
	i := len(sl.s)
	var zero T
	for range n {
		sl.s = append(sl.s, zero)
	}
	return sl.s[i : i+n : i+n]
}

// refp returns a pointer to a copy of r.
func (x *refs) refp(r models.Reference) *models.Reference {
	if x == nil {
		return heap(r)
	}
	return x.rs.ptr(r)
}

func (x *refs) cc(v models.CodeableConcept) *models.CodeableConcept {
	if x == nil {
		return heap(v)
	}
	return x.ccs.ptr(v)
}

func (x *refs) use(v models.IdentifierUse) *models.IdentifierUse {
	if x == nil {
		return heap(v)
	}
	return x.uses.ptr(v)
}

func (x *refs) ccSlice(n int) []models.CodeableConcept {
	if x == nil {
		return make([]models.CodeableConcept, n)
	}
	return x.ccs.take(n)
}

func (x *refs) codingSlice(n int) []models.Coding {
	if x == nil {
		return make([]models.Coding, n)
	}
	return x.codings.take(n)
}

func (x *refs) identSlice(n int) []models.Identifier {
	if x == nil {
		return make([]models.Identifier, 0, n)
	}
	return x.idents.take(n)[:0]
}

// s returns a pointer to a copy of v, taken from a slab shared by the
// resources of one conversion (one allocation per 64 strings instead of one
// each). A nil refs allocates v alone.
func (x *refs) s(v string) *string {
	if x == nil {
		return heap(v)
	}
	if len(x.strs) == cap(x.strs) {
		x.strs = make([]string, 0, 64)
	}
	x.strs = append(x.strs, v)
	return &x.strs[len(x.strs)-1]
}

func (x *refs) add(rt, chtID string) string {
	urn, _ := x.addURL(rt, chtID)
	return urn
}

// addURL is add, which also returns the request URL "<rt>/<id>" of the
// member with WritePut ("" otherwise).
func (x *refs) addURL(rt, chtID string) (urn, url string) {
	for _, m := range x.in {
		if m.rt == rt && m.chtID == chtID {
			return m.urn, m.url
		}
	}
	id := uuidText(x.c.uuid(rt, chtID))
	// "urn:uuid:<id>" and "<rt>/<id>" are written into memory shared by
	// the members of the conversion (see refs.text).
	put := x.c.cfg.Strategy == WritePut
	n := 45
	if put {
		n += len(rt) + 1 + 36
	}
	b := x.room(n)
	b = append(b, "urn:uuid:"...)
	b = append(b, id[:]...)
	if put {
		b = append(b, rt...)
		b = append(b, '/')
		b = append(b, id[:]...)
	}
	s := x.text(b)
	urn, url = s[:45], s[45:]
	x.in = append(x.in, member{rt: rt, chtID: chtID, urn: urn, url: url})
	return urn, url
}

// room returns an empty slice with room for n bytes at the end of the
// memory the conversion's member strings are written into; append to it
// at most n bytes and pass the result to text.
func (x *refs) room(n int) []byte {
	if cap(x.memberText)-len(x.memberText) < n {
		// Room for as many members as x.in has room for (about 96
		// bytes each).
		x.memberText = make([]byte, 0, max(n, max(cap(x.in)-len(x.in), 2)*96))
	}
	return x.memberText[len(x.memberText):len(x.memberText)]
}

// text returns b, written into the memory room returned, as a string and
// keeps it: the bytes are never written again.
func (x *refs) text(b []byte) string {
	x.memberText = x.memberText[:len(x.memberText)+len(b)]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (x *refs) lookup(rt, chtID string) (string, bool) {
	if x == nil {
		return "", false
	}
	for _, m := range x.in {
		if m.rt == rt && m.chtID == chtID {
			return m.urn, true
		}
	}
	return "", false
}

// ref returns a reference to the resource of type rt made from CHT document
// chtID.
func (c *Converter) ref(x *refs, rt, chtID string) models.Reference {
	r := models.Reference{Type: x.s(rt)}
	if urn, ok := x.lookup(rt, chtID); ok {
		r.Reference = x.s(urn)
		return r
	}
	if c.cfg.Strategy == WritePut {
		r.Reference = x.s(rt + "/" + c.ID(rt, chtID))
		return r
	}
	r.Identifier = &models.Identifier{System: x.s(c.sys.DocumentID), Value: x.s(chtID)}
	return r
}

// shortcodeRef is a logical reference by CHT shortcode (patient_id /
// place_id), used when only a shortcode is known.
func (c *Converter) shortcodeRef(rt, system, code string) models.Reference {
	return models.Reference{Type: ptr(rt), Identifier: &models.Identifier{System: ptr(system), Value: ptr(code)}}
}
