package fhir

import (
	"crypto/sha1"
	"encoding"
	"hash"
	"strconv"
	"sync"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// This file holds what the direct writers (the payload writer of
// payload.go, the report Observations of transaction.go) share: JSON
// fragments that are the same for every document a Converter converts,
// computed once by New with the encoder itself (so they are exactly what
// the encoder writes), per-call scratch space taken from a pool, and
// allocation-free forms of the few helpers they need (ids, query escaping).

// directFrags are the constant JSON fragments of one Converter.
type directFrags struct {
	// meta is `"meta":{…}`, the source tag every resource carries.
	meta []byte
	// obsIdent follows an Observation's id: `<meta>,"identifier":[{"system":"<observation system>","value":"`.
	obsIdent []byte
	// obsCode follows the identifier value: `"}],"status":"final","code":{"coding":[{"system":"<codes>","code":"`.
	obsCode []byte
	// valueCode opens a payload valueCode: `"valueCodeableConcept":{"coding":[{"system":"<codes>","code":`.
	valueCode []byte
	// encIdent follows an Encounter's id: `<meta>,"identifier":[{"type":{"text":"CHT document ID"},"system":"<medic>","value":`.
	encIdent []byte
	// encClass follows the Encounter's identifier value: `}],"status":"finished","class":{…}`.
	encClass []byte
	// encType is the Encounter.type of Config.EncounterType
	// (`,"type":[…]`), or nil.
	encType []byte
	// docQuery and obsQuery are `identifier=<system>|` of the document and
	// Observation systems, query-escaped.
	docQuery, obsQuery []byte
	// patientIdent is a Patient reference by CHT document ID up to the
	// value: `{"type":"Patient","identifier":{"system":"<medic>","value":`.
	patientIdent []byte
	// formCoding opens the coding {Systems.Form, <form>} of an
	// Encounter.type: `,{"system":"<form>","code":`.
	formCoding []byte
	// docIdent is a contact's first identifier up to its value:
	// `,"identifier":[{"type":{"text":"CHT document ID"},"system":"<medic>","value":`;
	// patientIDIdent, placeIDIdent and externalIDIdent open the
	// following ones (`,{"use":…,"value":`).
	docIdent, patientIDIdent, placeIDIdent, externalIDIdent []byte
	// placeType opens the type of a place's Location or Organization:
	// `,"type":[{"coding":[{"system":"<contact type>","code":`.
	placeType []byte
	// docRefIdent is a reference's identifier by CHT document ID up to
	// the value: `"identifier":{"system":"<medic>","value":`.
	docRefIdent []byte
	// geoIdent opens the identifier value of the Location where a report
	// was filled in: `,"identifier":[{"system":"<observation>","value":"`.
	geoIdent []byte
}

func (c *Converter) initDirect() {
	f := &directFrags{}
	var e encoder
	first := true
	e.meta(&first, &models.Meta{Tag: []models.Coding{{System: ptr(c.sys.Source), Code: ptr("cht"), Display: ptr("Community Health Toolkit")}}})
	f.meta = e.b
	sys := func(s string) []byte { return appendString(nil, s) }
	f.obsIdent = append(append(append(append([]byte{}, f.meta...), `,"identifier":[{"system":`...), sys(c.sys.Observation)...), `,"value":"`...)
	f.obsCode = append(append([]byte(`"}],"status":"final","code":{"coding":[{"system":`), sys(c.sys.Codes)...), `,"code":"`...)
	f.valueCode = append(append([]byte(`"valueCodeableConcept":{"coding":[{"system":`), sys(c.sys.Codes)...), `,"code":`...)
	f.encIdent = append(append(append(append([]byte{}, f.meta...), `,"identifier":[{"type":{"text":"CHT document ID"},"system":`...), sys(c.sys.DocumentID)...), `,"value":`...)
	e = encoder{b: []byte(`}],"status":"finished","class":`)}
	e.coding(&c.class)
	f.encClass = e.b
	if t := c.cfg.EncounterType; t != nil {
		e = encoder{b: []byte(`,"type":[{"coding":[`)}
		cd := coding(*t)
		e.coding(&cd)
		f.encType = append(e.b, "]}]"...)
	}
	f.docQuery = append(appendTokenEscape([]byte("identifier="), c.sys.DocumentID), '|')
	f.obsQuery = append(appendTokenEscape([]byte("identifier="), c.sys.Observation), '|')
	f.patientIdent = append(append([]byte(`{"type":"Patient","identifier":{"system":`), sys(c.sys.DocumentID)...), `,"value":`...)
	f.formCoding = append(append([]byte(`,{"system":`), sys(c.sys.Form)...), `,"code":`...)
	f.docIdent = f.encIdent[len(f.meta):]
	ident := func(use, text, system string) []byte {
		return append(append([]byte(`,{"use":"`+use+`","type":{"text":"`+text+`"},"system":`), sys(system)...), `,"value":`...)
	}
	f.patientIDIdent = ident("official", "CHT patient ID", c.sys.PatientID)
	f.placeIDIdent = ident("official", "CHT place ID", c.sys.PlaceID)
	f.externalIDIdent = ident("secondary", "External ID", c.sys.ExternalID)
	f.placeType = append(append([]byte(`,"type":[{"coding":[{"system":`), sys(c.sys.ContactType)...), `,"code":`...)
	f.docRefIdent = append(append([]byte(`"identifier":{"system":`), sys(c.sys.DocumentID)...), `,"value":`...)
	f.geoIdent = append(append([]byte(`,"identifier":[{"system":`), sys(c.sys.Observation)...), `,"value":"`...)
	c.direct = f
}

// appendTokenEscape appends s to dst as a part of a token search value in
// a query string: the characters a FHIR search value gives a meaning to
// (\ , | $) escaped by a backslash, as FHIR R4's "Escaping Search
// Parameters" (http://hl7.org/fhir/R4/search.html#escaping) has it (a CHT
// id "p,1" is the token value p\,1, not a search for p or 1), then
// query-escaped as url.QueryEscape does.
func appendTokenEscape(dst []byte, s string) []byte {
	const upperhex = "0123456789ABCDEF"
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if queryUnreserved[c] {
			continue
		}
		dst = append(dst, s[start:i]...)
		if c == '\\' || c == ',' || c == '|' || c == '$' {
			dst = append(dst, "%5C"...)
		}
		if c == ' ' {
			dst = append(dst, '+')
		} else {
			dst = append(dst, '%', upperhex[c>>4], upperhex[c&15])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// queryUnreserved are the bytes url.QueryEscape leaves as they are.
var queryUnreserved = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~'
	}
	return t
}()

// hexPairs[b] is the two lower-case hex digits of b.
var hexPairs = func() (t [256][2]byte) {
	const digits = "0123456789abcdef"
	for i := range t {
		t[i] = [2]byte{digits[i>>4], digits[i&15]}
	}
	return t
}()

// uuidText returns the canonical 36-character form of u.
func uuidText(u [16]byte) (t [36]byte) {
	j := 0
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			t[j] = '-'
			j++
		}
		p := hexPairs[b]
		t[j], t[j+1] = p[0], p[1]
		j += 2
	}
	return t
}

// directScratch is the working memory of one direct conversion, reused
// through scratchPool: the decoded payload, its values, the repeated-code
// table and a SHA-1 state.
type directScratch struct {
	p    EncounterPayload
	vp   valuePool
	dups dupTable
	ids  idHasher
	frag []byte
	out  []byte // output written before it is copied to its own allocation
}

var scratchPool = sync.Pool{New: func() any { return new(directScratch) }}

func getScratch() *directScratch { return scratchPool.Get().(*directScratch) }

// putScratch returns sc to the pool, dropping what it points to in the
// caller's data.
func putScratch(sc *directScratch) {
	obs := sc.p.Observations[:cap(sc.p.Observations)]
	clear(obs)
	if len(obs) > 1024 {
		obs = nil
	}
	sc.p = EncounterPayload{Observations: obs[:0]}
	if len(sc.dups.slots) > 4096 {
		sc.dups.slots = nil
	}
	sc.vp.reset()
	sc.frag = sc.frag[:0]
	if cap(sc.frag) > 64<<10 {
		sc.frag = nil
	}
	if cap(sc.out) > 1<<20 {
		sc.out = nil
	}
	scratchPool.Put(sc)
}

// dupTable numbers repeated codes: next(code) returns how many times code
// was seen before. A small open-addressing table, reused.
type dupTable struct {
	slots []dupSlot
	mask  uint32
}

type dupSlot struct {
	code string
	n    int32
	used bool
}

func (t *dupTable) reset(n int) {
	size := 16
	for size < 2*n {
		size *= 2
	}
	if cap(t.slots) < size {
		t.slots = make([]dupSlot, size)
	} else {
		t.slots = t.slots[:size]
		clear(t.slots)
	}
	t.mask = uint32(size - 1)
}

func (t *dupTable) next(code string) int {
	h := uint32(2166136261)
	for i := 0; i < len(code); i++ {
		h = (h ^ uint32(code[i])) * 16777619
	}
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if !s.used {
			*s = dupSlot{code: code, used: true, n: 1}
			return 0
		}
		if s.code == code {
			s.n++
			return int(s.n - 1)
		}
	}
}

// idHasher computes the version-5 UUIDs of the Observations of one
// document, uuidV5(ns, "Observation", docID, key), hashing the part of the
// name they share once when it fills at least one SHA-1 block.
type idHasher struct {
	h      hash.Hash
	state  []byte // the SHA-1 state after the shared prefix, or nil
	prefix []byte // the shared prefix when it is hashed with each name
	sum    []byte
	name   []byte
}

func (ih *idHasher) start(ns [16]byte, rt, docID string) {
	ih.prefix = append(append(append(append(ih.prefix[:0], ns[:]...), rt...), 0), docID...)
	ih.prefix = append(ih.prefix, 0)
	ih.state = ih.state[:0]
	if len(ih.prefix) < 64 {
		return
	}
	if ih.h == nil {
		ih.h = sha1.New()
	}
	ih.h.Reset()
	ih.h.Write(ih.prefix)
	st, err := ih.h.(encoding.BinaryAppender).AppendBinary(ih.state[:0])
	if err != nil {
		return
	}
	ih.state = st
}

// uuid returns the UUID of key, or of key#(dup+1) when dup > 0.
func (ih *idHasher) uuid(key string, dup int) [16]byte {
	if len(ih.state) == 0 {
		ih.name = append(ih.name[:0], ih.prefix...)
		ih.name = append(ih.name, key...)
		if dup > 0 {
			ih.name = strconv.AppendInt(append(ih.name, '#'), int64(dup+1), 10)
		}
		sum := sha1.Sum(ih.name)
		return v5(sum[:])
	}
	if err := ih.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(ih.state); err != nil {
		panic(err) // a state AppendBinary made
	}
	ih.name = append(ih.name[:0], key...)
	if dup > 0 {
		ih.name = strconv.AppendInt(append(ih.name, '#'), int64(dup+1), 10)
	}
	ih.h.Write(ih.name)
	ih.sum = ih.h.Sum(ih.sum[:0])
	return v5(ih.sum)
}

func (vp *valuePool) reset() {
	clear(vp.strs)
	vp.strs = vp.strs[:0]
	vp.bools = vp.bools[:0]
	vp.ints = vp.ints[:0]
	clear(vp.qtys)
	vp.qtys = vp.qtys[:0]
}

// appendFormType writes the Encounter.type of a mapped form: the form's
// own coding fragment and, when the mapping asks for it, the coding
// {Systems.Form, form}.
func (f *directFrags) appendFormType(b []byte, fi *formIndex, form string) []byte {
	b = append(b, fi.typeFrag...)
	if fi.formCoding {
		b = append(b, f.formCoding...)
		b = appendString(b, form)
		b = append(b, '}')
	}
	return append(b, "]}]"...)
}
