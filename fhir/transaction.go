package fhir

import (
	"fmt"
	"slices"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

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
	if p.c.pracType[pl.TypeID()] {
		if pc := p.c.placeCHW(pl); pc != nil {
			p.add("Practitioner", pc)
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
			res = c.practitioner(p.x, it.doc)
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
// references. The report's patient is always included as a Patient, even
// when its role is one of Config.PractitionerRoles (then it is also a
// Practitioner). Posting the same bundle twice creates no duplicates (see
// [WriteStrategy]). An unmapped form gives an error wrapping
// ErrUnmappedForm; use [Converter.Encounter] alone for such reports if
// wanted.
func (c *Converter) ReportBundle(r *cht.Report) (*Transaction, error) {
	p, err := c.reportPlan(r)
	if err != nil {
		return nil, err
	}
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

// reportPlan checks a report and plans the contact resources of its
// transaction.
func (c *Converter) reportPlan(r *cht.Report) (*plan, error) {
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
		// The report subject is referenced as a Patient even when the person
		// also has a practitioner role (a CHW or nurse as patient), so the
		// bundle must create that Patient too.
		if pt := r.Patient; pt.ID != "" && pt.Hydrated() && pt.IsContact() && c.isPerson(pt) {
			p.add("Patient", pt)
		}
	} else if r.Place != nil {
		p.contact(r.Place, false)
	}
	p.x.add("Encounter", r.ID)
	return p, nil
}

// appendReportBundle appends the JSON of [Converter.ReportBundle]'s
// transaction to dst. It writes the Observations directly, without
// building samply values, and is byte-for-byte equal to
// ReportBundle followed by Transaction.MarshalJSON (errors included), which
// report_test.go checks. On error dst is returned unchanged.
func (c *Converter) appendReportBundle(dst []byte, r *cht.Report) ([]byte, error) {
	p, err := c.reportPlan(r)
	if err != nil {
		return dst, err
	}
	fi, _ := c.form(r.Form)
	n := len(dst)
	var effective string
	if !r.ReportedDate.IsZero() {
		effective = formatDateTime(r.ReportedDate.Time())
	}
	// Fragments shared by every Observation.
	fr := encoder{b: make([]byte, 0, 1024)}
	first := true
	fr.meta(&first, c.meta(p.x))
	metaEnd := len(fr.b)
	if subj, ok := c.subject(p.x, r); ok {
		fr.ref(&first, `"subject":`, &subj.reference)
	}
	encRef := c.ref(p.x, "Encounter", r.ID)
	fr.ref(&first, `"encounter":`, &encRef)
	if effective != "" {
		fr.str(&first, `"effectiveDateTime":`, &effective)
	}
	if r.Contact != nil && r.Contact.ID != "" {
		perf := []models.Reference{c.ref(p.x, "Practitioner", r.Contact.ID)}
		fr.refs(&first, `"performer":`, perf)
	}
	metaFrag, refFrag := fr.b[:metaEnd], fr.b[metaEnd:]

	t := &Transaction{Entries: make([]Entry, 0, len(p.items)+1)}
	p.build(t)
	enc := c.encounter(p.x, r)
	t.Entries = append(t.Entries, c.entry(p.x, "Encounter", r.ID, "", enc, c.sys.DocumentID, r.ID))

	e := encoder{b: dst}
	f := e.begin()
	e.strv(f, `"type":`, "transaction")
	e.key(f, `"entry":`)
	e.b = append(e.b, '[')
	for i := range t.Entries {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.entry(&t.Entries[i])
	}
	var a obsArena
	for i := range fi.fields {
		fx := &fi.fields[i]
		v, ok := r.Fields.Field(fx.fm.Path)
		if !ok || isEmptyValue(v) {
			continue
		}
		a = obsArena{}
		if err := c.setValue(&a, fx.fm, v); err != nil {
			return dst[:n], &ConversionError{DocID: r.ID, Field: "fields." + fx.fm.Path, Value: v, Reason: err.Error()}
		}
		u := c.uuid("Observation", r.ID, fx.fm.Path)
		e.b = append(e.b, `,{"fullUrl":"urn:uuid:`...)
		e.b = appendUUID(e.b, u)
		e.b = append(e.b, `","resource":{`...)
		if c.cfg.Strategy == WritePut {
			e.b = append(e.b, `"id":"`...)
			e.b = appendUUID(e.b, u)
			e.b = append(e.b, `",`...)
		}
		e.b = append(e.b, metaFrag...)
		e.b = append(e.b, `,"identifier":[{"system":`...)
		e.b = appendString(e.b, c.sys.Observation)
		e.b = append(e.b, `,"value":"`...)
		e.b = appendStringBody(e.b, r.ID)
		e.b = append(e.b, '/')
		e.b = appendStringBody(e.b, fx.fm.Path)
		e.b = append(e.b, `"}],"status":"final",`...)
		e.b = append(e.b, fx.frag...)
		e.b = append(e.b, refFrag...)
		notFirst := false
		o := &a.obs
		e.quantity(&notFirst, `"valueQuantity":`, o.ValueQuantity)
		e.cc(&notFirst, `"valueCodeableConcept":`, o.ValueCodeableConcept)
		e.str(&notFirst, `"valueString":`, o.ValueString)
		e.boolean(&notFirst, `"valueBoolean":`, o.ValueBoolean)
		e.integer(&notFirst, `"valueInteger":`, o.ValueInteger)
		e.str(&notFirst, `"valueTime":`, o.ValueTime)
		e.str(&notFirst, `"valueDateTime":`, o.ValueDateTime)
		e.b = append(e.b, `,"resourceType":"Observation"},"request":{"method":`...)
		switch c.cfg.Strategy {
		case WritePut:
			e.b = append(e.b, `"PUT","url":"Observation/`...)
			e.b = appendUUID(e.b, u)
			e.b = append(e.b, '"')
		case WriteConditionalUpdate:
			e.b = append(e.b, `"PUT","url":`...)
			e.b = appendString(e.b, "Observation?"+identifierQuery(c.sys.Observation, r.ID+"/"+fx.fm.Path))
		default:
			e.b = append(e.b, `"POST","url":"Observation","ifNoneExist":`...)
			e.b = appendString(e.b, identifierQuery(c.sys.Observation, r.ID+"/"+fx.fm.Path))
		}
		e.b = append(e.b, `}}`...)
	}
	e.b = append(e.b, ']')
	e.resourceType(f, "Bundle")
	if e.err != nil {
		return dst[:n], fmt.Errorf("fhir: encode: %w", e.err)
	}
	return e.b, nil
}
