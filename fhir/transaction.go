package fhir

import (
	"slices"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// planItem is a resource to include in a transaction.
type planItem struct {
	rt  string
	doc *cht.Contact
}

type plan struct {
	c     *Converter
	x     *refs
	items []planItem
}

func (p *plan) add(rt string, doc *cht.Contact) bool {
	if doc == nil || doc.ID == "" {
		return false
	}
	if _, ok := p.x.lookup(rt, doc.ID); ok {
		// Keep the most complete copy: shallow contacts in a lineage carry
		// only a few fields, the full document has a _rev.
		for i := range p.items {
			if it := &p.items[i]; it.rt == rt && it.doc.ID == doc.ID && it.doc.Rev == "" && doc.Rev != "" {
				it.doc = doc
			}
		}
		return false
	}
	p.x.add(rt, doc.ID)
	p.items = append(p.items, planItem{rt: rt, doc: doc})
	return true
}

// contact plans a contact and its hydrated lineage.
func (p *plan) contact(ct *cht.Contact, practitioner bool) {
	if ct == nil || !ct.Hydrated() || !ct.IsContact() {
		return
	}
	if p.c.isPerson(ct) {
		rt := "Patient"
		if practitioner || p.c.isPractitionerRole(ct) {
			rt = "Practitioner"
		}
		p.add(rt, ct)
	} else {
		p.place(ct)
	}
	for l := ct.Parent; l != nil; l = l.Parent {
		if l.Doc != nil && l.Doc.IsContact() && !p.c.isPerson(l.Doc) {
			p.place(l.Doc)
		}
	}
}

func (p *plan) place(pl *cht.Contact) {
	p.add("Location", pl)
	if p.c.orgTypes[pl.TypeID()] {
		p.add("Organization", pl)
	}
	if p.c.pracType[pl.TypeID()] && pl.Contact != nil && pl.Contact.Hydrated() && pl.Contact.ID != "" {
		pc := *pl.Contact
		if pc.Type == "" {
			pc.Type = "person" // shallow contact docs may omit type
		}
		if p.c.isPerson(&pc) {
			p.add("Practitioner", &pc)
		}
	}
}

func (c *Converter) isPractitionerRole(ct *cht.Contact) bool {
	return ct.Role != "" && slices.Contains(c.practitionerRoles(), ct.Role)
}

func (c *Converter) practitionerRoles() []string {
	if c.cfg.PractitionerRoles != nil {
		return c.cfg.PractitionerRoles
	}
	return []string{"chw", "chw_supervisor", "nurse"}
}

// build appends the planned contact resources to t.
func (p *plan) build(t *Transaction) {
	c := p.c
	for _, it := range p.items {
		var res any
		switch it.rt {
		case "Patient":
			res = c.patient(p.x, it.doc)
		case "Practitioner":
			res = c.practitioner(it.doc)
		case "Location":
			res = c.location(p.x, it.doc)
		case "Organization":
			res = c.organization(p.x, it.doc)
		}
		t.Entries = append(t.Entries, c.entry(p.x, it.rt, it.doc.ID, "", res, c.sys.DocumentID, it.doc.ID))
	}
}

// ContactBundle converts a CHT contact to a transaction: a person becomes a
// Patient (or a Practitioner when its role is one of
// Config.PractitionerRoles), a place a Location (plus an Organization for
// organization types); every hydrated ancestor place and CHW in its lineage is
// included too, so that references resolve inside the bundle.
func (c *Converter) ContactBundle(ct *cht.Contact) (*Transaction, error) {
	if ct == nil || ct.ID == "" {
		return nil, &ConversionError{Field: "_id", Reason: "document has no _id"}
	}
	if err := c.checkContact(ct, c.isPerson(ct)); err != nil {
		return nil, err
	}
	p := &plan{c: c, x: &refs{c: c}}
	d := *ct
	if d.Type == "" {
		return nil, &ConversionError{DocID: ct.ID, Field: "type", Reason: "contact has no type"}
	}
	p.contact(&d, false)
	t := &Transaction{}
	p.build(t)
	return t, nil
}

// ReportBundle converts a (preferably hydrated) report to one transaction:
// its Encounter, one Observation per mapped non-empty field, and the
// hydrated patient, submitting CHW and their hydrated lineage (Patient,
// Practitioner, Location, Organization), all linked with urn:uuid
// references. Posting the same bundle twice creates no duplicates (see
// [WriteStrategy]). An unmapped form gives an error wrapping
// ErrUnmappedForm; use [Converter.Encounter] alone for such reports if
// wanted.
func (c *Converter) ReportBundle(r *cht.Report) (*Transaction, error) {
	if err := checkReport(r); err != nil {
		return nil, err
	}
	if _, err := c.form(r.Form); err != nil {
		return nil, err
	}
	p := &plan{c: c, x: &refs{c: c, in: make([]member, 0, 8)}}
	if r.Contact != nil {
		p.contact(r.Contact, true)
	}
	if r.Patient != nil {
		p.contact(r.Patient, false)
	} else if r.Place != nil {
		p.contact(r.Place, false)
	}
	p.x.add("Encounter", r.ID)
	obs, err := c.observations(p.x, r)
	if err != nil {
		return nil, err
	}
	t := &Transaction{Entries: make([]Entry, 0, len(p.items)+1+len(obs))}
	p.build(t)
	enc := c.encounter(p.x, r)
	t.Entries = append(t.Entries, c.entry(p.x, "Encounter", r.ID, "", enc, c.sys.DocumentID, r.ID))
	for i := range obs {
		path := (*obs[i].Identifier[0].Value)[len(r.ID)+1:]
		t.Entries = append(t.Entries, c.entry(p.x, "Observation", r.ID, path, &obs[i], c.sys.Observation, *obs[i].Identifier[0].Value))
	}
	return t, nil
}
