package chttest

import (
	"encoding/json"
	mrand "math/rand/v2"
	"strconv"
)

// The generated population's documents are written as JSON text directly,
// stored and hydrated, so that a fake CHT serving a backfill of millions
// of documents costs a few microseconds per document rather than the
// maps, deep copies and reflection of the general hydrator. The general
// path stays the reference: lazySynthetic.doc decodes this same JSON, and
// TestGeneratedHydrateFastPath checks the hydrated JSON against it.

// lazyJSON holds what every document of a population shares, encoded once.
type lazyJSON struct {
	parent, submitter []byte   // minified lineages
	householdType     []byte   // `"type":...` (and contact_type) members
	forms             [][]byte // quoted form names
}

func newLazyJSON(g *lazySynthetic) (*lazyJSON, error) {
	j := &lazyJSON{}
	var err error
	if j.parent, err = json.Marshal(g.parent); err != nil {
		return nil, err
	}
	if j.submitter, err = json.Marshal(g.submitter); err != nil {
		return nil, err
	}
	t := g.cfg.HouseholdType
	q, _ := json.Marshal(t) // a string always encodes
	if legacyType(t) {
		j.householdType = append([]byte(`"type":`), q...)
	} else {
		j.householdType = append([]byte(`"type":"contact","contact_type":`), q...)
	}
	for _, f := range g.cfg.Forms {
		q, err := json.Marshal(f)
		if err != nil {
			return nil, err
		}
		j.forms = append(j.forms, q)
	}
	return j, nil
}

// lazyPersonFields are the random fields of a generated person.
type lazyPersonFields struct {
	given            string
	female           bool
	year, month, day int
	phone            int
}

func (g *lazySynthetic) person(p int, h int64) lazyPersonFields {
	rng := mrand.New(mrand.NewPCG(g.cfg.Seed^uint64(h), uint64(p)<<16|uint64(lazyPerson)))
	var f lazyPersonFields
	f.given = lazyGiven[rng.IntN(len(lazyGiven))]
	f.female = rng.IntN(2) == 0
	f.year, f.month, f.day = 1950+rng.IntN(74), 1+rng.IntN(12), 1+rng.IntN(28)
	f.phone = rng.IntN(100000000)
	return f
}

// appendLazyID appends lazyID(kind, p, r, h).
func appendLazyID(b []byte, kind, p, r int, h int64) []byte {
	b = append(b, lazyPrefix...)
	b = appendHex(b, uint64(kind), 4)
	b = append(b, '-', '4')
	b = appendHex(b, uint64(p), 3)
	b = append(b, '-', '8')
	b = appendHex(b, uint64(r), 3)
	b = append(b, '-')
	return appendHex(b, uint64(h), 12)
}

// appendHex appends v in lower-case hex, zero-padded to width digits.
func appendHex(b []byte, v uint64, width int) []byte {
	var buf [16]byte
	s := strconv.AppendUint(buf[:0], v, 16)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendDec appends v in decimal, zero-padded to width digits.
func appendDec(b []byte, v int64, width int) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendQuotedID appends the quoted id of a generated document.
func appendQuotedID(b []byte, kind, p, r int, h int64) []byte {
	b = append(b, '"')
	b = appendLazyID(b, kind, p, r, h)
	return append(b, '"')
}

func (g *lazySynthetic) rev(kind, p, r int, h int64) uint64 {
	return uint64(h)<<20 | uint64(p)<<8 | uint64(r)<<2 | uint64(kind)
}

// appendRev appends the quoted _rev of a generated document.
func (g *lazySynthetic) appendRev(b []byte, kind, p, r int, h int64) []byte {
	b = append(b, `"1-`...)
	b = appendHex(b, g.rev(kind, p, r, h), 32)
	return append(b, '"')
}

// lazyMembers are the JSON values that replace a document's own stored
// members in its hydrated form; nil keeps the stored value.
type lazyMembers struct {
	parent  []byte // household and person
	contact []byte // household (its primary contact) and report (the submitter)
	patient []byte // report
}

// appendDoc appends the JSON of a generated document, with the members of
// m in place of the stored ones.
func (g *lazySynthetic) appendDoc(b []byte, kind, p, r int, h int64, m lazyMembers) []byte {
	fam := lazyFamily[h%int64(len(lazyFamily))]
	b = append(b, `{"_id":`...)
	b = appendQuotedID(b, kind, p, r, h)
	b = append(b, `,"_rev":`...)
	b = g.appendRev(b, kind, p, r, h)
	switch kind {
	case lazyHousehold:
		b = append(b, `,"name":"`...)
		b = append(b, fam...)
		b = append(b, " Household "...)
		b = strconv.AppendInt(b, h+1, 10)
		b = append(b, `","parent":`...)
		b = append(b, or(m.parent, g.json.parent)...)
		b = append(b, `,"reported_date":`...)
		b = strconv.AppendInt(b, lazyBase+h*1000, 10)
		if g.cfg.PeoplePerHousehold > 0 {
			b = append(b, `,"contact":`...)
			if m.contact != nil {
				b = append(b, m.contact...)
			} else {
				b = g.appendStub(b, lazyPerson, 0, h)
			}
		}
		b = append(b, ',')
		b = append(b, g.json.householdType...)
	case lazyPerson:
		f := g.person(p, h)
		b = append(b, `,"type":"person","name":"`...)
		b = append(b, f.given...)
		b = append(b, ' ')
		b = append(b, fam...)
		if f.female {
			b = append(b, `","sex":"female"`...)
		} else {
			b = append(b, `","sex":"male"`...)
		}
		b = append(b, `,"date_of_birth":"`...)
		b = appendDec(b, int64(f.year), 4)
		b = append(b, '-')
		b = appendDec(b, int64(f.month), 2)
		b = append(b, '-')
		b = appendDec(b, int64(f.day), 2)
		b = append(b, `","phone":"+2547`...)
		b = appendDec(b, int64(f.phone), 8)
		b = append(b, `","patient_id":"`...)
		b = strconv.AppendInt(b, 100000+h*int64(g.cfg.PeoplePerHousehold)+int64(p), 10)
		b = append(b, `","role":"patient","parent":`...)
		if m.parent != nil {
			b = append(b, m.parent...)
		} else {
			b = g.appendStub(b, lazyHousehold, 0, h)
		}
		b = append(b, `,"reported_date":`...)
		b = strconv.AppendInt(b, lazyBase+h*1000+int64(p)+1, 10)
	case lazyReport:
		rng := mrand.New(mrand.NewPCG(g.cfg.Seed^uint64(h), uint64(p)<<16|uint64(r)<<2|uint64(lazyReport)))
		person := g.person(p, h)
		n := (h*int64(g.cfg.PeoplePerHousehold)+int64(p))*int64(g.cfg.ReportsPerPerson) + int64(r)
		b = append(b, `,"type":"data_record","form":`...)
		b = append(b, g.json.forms[n%int64(len(g.json.forms))]...)
		b = append(b, `,"content_type":"xml","reported_date":`...)
		b = strconv.AppendInt(b, lazyBase+86400000+n*60000, 10)
		b = append(b, `,"from":"+254712345679","contact":`...)
		b = append(b, or(m.contact, g.json.submitter)...)
		b = append(b, `,"fields":{"patient_uuid":`...)
		b = appendQuotedID(b, lazyPerson, p, 0, h)
		b = append(b, `,"patient_name":"`...)
		b = append(b, person.given...)
		b = append(b, ' ')
		b = append(b, fam...)
		b = append(b, `","inputs":{"source":"contact","contact":{"_id":`...)
		b = appendQuotedID(b, lazyPerson, p, 0, h)
		if rng.IntN(2) == 0 {
			b = append(b, `}},"group_fever":{"fever":"yes","temperature":"`...)
		} else {
			b = append(b, `}},"group_fever":{"fever":"no","temperature":"`...)
		}
		b = strconv.AppendFloat(b, 36+rng.Float64()*4, 'f', 1, 64)
		b = append(b, `"},"visit":`...)
		b = strconv.AppendInt(b, int64(r)+1, 10)
		b = append(b, `,"meta":{"instanceID":"uuid:`...)
		b = appendHex(b, uint64(n), 8)
		b = append(b, "-0000-4000-8000-"...)
		b = appendHex(b, uint64(h), 12)
		b = append(b, `"}}`...)
		if m.patient != nil {
			b = append(b, `,"patient":`...)
			b = append(b, m.patient...)
		}
	}
	return append(b, '}')
}

// appendStub appends the minified lineage {_id, parent} of a generated
// household or of a person's household.
func (g *lazySynthetic) appendStub(b []byte, kind, p int, h int64) []byte {
	b = append(b, `{"_id":`...)
	b = appendQuotedID(b, kind, p, 0, h)
	b = append(b, `,"parent":`...)
	if kind == lazyPerson {
		b = g.appendStub(b, lazyHousehold, 0, h)
	} else {
		b = append(b, g.json.parent...)
	}
	return append(b, '}')
}

func or(a, b []byte) []byte {
	if a != nil {
		return a
	}
	return b
}

// lazyHydrated is what the hydrated documents of one hydrate request
// share: the hydrated lineage of the population's parent and the hydrated
// submitter, built by the general hydrator and encoded once per request.
type lazyHydrated struct {
	parent, submitter []byte
	// The last household's documents: hydrated, its person 0 as stored,
	// and the hydrated person p.
	h                          int64
	p                          int
	household, person0, person []byte
	person0Buf                 []byte
}

// generatedHydrated appends the hydrated JSON of the generated document id
// when neither it nor a generated document it embeds was written since
// (ok false: use the general hydrator).
func (h *hydrator) generatedHydrated(b []byte, id string) ([]byte, bool) {
	st := h.s.store
	st.mu.RLock()
	g := st.lazy
	if g == nil || g.json == nil {
		st.mu.RUnlock()
		return b, false
	}
	kind, p, r, hh, ok := g.parse(id)
	var buf [36]byte
	if ok && string(appendLazyID(buf[:0], kind, p, r, hh)) != id {
		ok = false // not the canonical spelling: the general path keeps it as asked
	}
	if ok {
		// The document and every generated document it embeds are as generated.
		for _, emb := range [...][36]byte{idBytes(lazyHousehold, 0, 0, hh), idBytes(lazyPerson, 0, 0, hh), idBytes(lazyPerson, p, 0, hh), idBytes(kind, p, r, hh)} {
			if st.docs[string(emb[:])] != nil {
				ok = false
				break
			}
		}
		if pid := idBytes(lazyPerson, p, 0, hh); kind == lazyReport && len(st.refs[string(pid[:])]) > 0 {
			ok = false // the patient uuid is some contact's shortcode
		}
	}
	st.mu.RUnlock()
	if !ok {
		return b, false
	}
	if h.gen == nil {
		h.gen = &lazyHydrated{parent: g.json.parent, submitter: g.json.submitter, h: -1, p: -1}
		if v, err := json.Marshal(h.hydrateParent(g.parent, 0)); err == nil {
			h.gen.parent = v
		}
		if stub, _ := g.submitter.(map[string]any); stub != nil {
			if c, ok := h.deepContact(idOf(stub), stub); ok {
				if v, err := json.Marshal(c); err == nil {
					h.gen.submitter = v
				}
			}
		}
	}
	c := h.gen
	if c.h != hh || c.household == nil {
		// The documents of a household come one after the other in the
		// feed: its person 0 and hydrated form serve them all.
		c.h, c.p, c.person0 = hh, -1, nil
		if g.cfg.PeoplePerHousehold > 0 {
			c.person0 = g.appendDoc(c.person0Buf[:0], lazyPerson, 0, 0, hh, lazyMembers{})
			c.person0Buf = c.person0
		}
		c.household = g.appendDoc(c.household[:0], lazyHousehold, 0, 0, hh, lazyMembers{parent: c.parent, contact: c.person0})
	}
	switch kind {
	case lazyHousehold:
		return append(b, c.household...), true
	case lazyPerson:
		return g.appendDoc(b, kind, p, r, hh, lazyMembers{parent: c.household}), true
	default:
		if c.p != p {
			c.p = p
			c.person = g.appendDoc(c.person[:0], lazyPerson, p, 0, hh, lazyMembers{parent: c.household})
		}
		return g.appendDoc(b, kind, p, r, hh, lazyMembers{contact: c.submitter, patient: c.person}), true
	}
}

func idBytes(kind, p, r int, h int64) [36]byte {
	var a [36]byte
	appendLazyID(a[:0], kind, p, r, h)
	return a
}
