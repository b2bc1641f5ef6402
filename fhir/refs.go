package fhir

import (
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// member is a resource included in the transaction being built.
type member struct {
	rt, chtID string
	urn       string // "urn:uuid:<id>"
}

// refs resolves references from converted resources to other CHT documents:
// to the entry's urn:uuid when the target is in the same transaction,
// otherwise to Type/<deterministic id> (WritePut) or to a logical reference
// by CHT identifier (conditional strategies, where ids are server-assigned).
type refs struct {
	c    *Converter
	in   []member
	strs []string     // storage for the strings the resources point to
	meta *models.Meta // shared by the resources of one conversion
}

// s returns a pointer to a copy of v, taken from a slab shared by the
// resources of one conversion (one allocation per 64 strings instead of one
// each). A nil refs allocates v alone.
func (x *refs) s(v string) *string {
	if x == nil {
		return &v
	}
	if len(x.strs) == cap(x.strs) {
		x.strs = make([]string, 0, 64)
	}
	x.strs = append(x.strs, v)
	return &x.strs[len(x.strs)-1]
}

func (x *refs) add(rt, chtID string) string {
	for _, m := range x.in {
		if m.rt == rt && m.chtID == chtID {
			return m.urn
		}
	}
	u := x.c.uuid(rt, chtID)
	urn := string(appendUUID(append(make([]byte, 0, 45), "urn:uuid:"...), u))
	x.in = append(x.in, member{rt: rt, chtID: chtID, urn: urn})
	return urn
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
