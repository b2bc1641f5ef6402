package fhir

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

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
	// clean holds the checked copy of each contact document converted
	// (see cleanContact), so a document is checked and warned about once.
	clean []cleaned
	// built, when set, holds the contact resources (type and CHT id) that
	// earlier documents of the same batch already put in it: build leaves
	// them out (mergeTransactions would keep only the first anyway) and
	// lists the ones it adds in fresh, for commit.
	built map[[2]string]struct{}
	fresh [][2]string
	// direct, when not nil, makes build and reportEntries put directRes
	// resources in the transaction (the internal paths); it holds them.
	direct []directRes
	st     *planState // the state p is part of
}

// planState holds a plan, its refs and room for the members of a
// typical document, allocated together, and, on the direct paths, the
// transaction made of them. newPlan takes one from statePool; the direct
// paths give it back through Transaction.release once the transaction is
// written (the push handler), others leave it to the garbage collector.
type planState struct {
	p     plan
	x     refs
	items [8]planItem
	in    [8]member
	clean [8]cleaned

	subj reportSubject // the report's subject, which x.subj points to
	t    Transaction   // the transaction of a direct path
	ob   directObs     // the Observations of a direct report transaction
	obs  [1]*directObs // t.direct
	frag []byte        // the memory of ob's fragments
	// The references ob's fragments are written from.
	encRef models.Reference
	perf   [1]models.Reference
	// direct is the memory of p.direct, which is set on the direct paths
	// only (see useDirect).
	direct []directRes
}

var statePool = sync.Pool{New: func() any { return new(planState) }}

// newPlan returns an empty plan of c.
func newPlan(c *Converter) *plan {
	st := statePool.Get().(*planState)
	st.x.c = c
	if st.x.in == nil {
		st.x.in, st.p.items, st.p.clean = st.in[:0], st.items[:0], st.clean[:0]
	}
	st.p.c, st.p.x, st.p.st = c, &st.x, st
	return &st.p
}

// release gives the plan's state back to statePool. Nothing it holds may
// be used afterwards: the transaction (&st.t) and its entries, the
// members' strings, the slabs. The warnings are in memory of their own: a
// Warnings slice read before stays valid. The slices keep their memory for
// the next conversion, unless they grew unusually large.
func (st *planState) release() {
	p, x := &st.p, &st.x
	clear(st.items[:])
	clear(st.in[:])
	clear(st.clean[:])
	*p = plan{items: reuse(p.items, 64), clean: reuse(p.clean, 64)}
	if p.items == nil {
		p.items, p.clean = st.items[:0], st.clean[:0]
	}
	st.direct = reuse(st.direct, 64)
	*x = refs{in: reuse(x.in, 64), strs: reuse(x.strs, 64), memberText: x.memberText[:0]}
	if x.in == nil {
		x.in = st.in[:0]
	}
	if cap(x.memberText) > 8<<10 {
		x.memberText = nil
	}
	st.subj = reportSubject{}
	st.t = Transaction{Entries: reuse(st.t.Entries, 64)}
	st.ob = directObs{kept: reuse(st.ob.kept, 256)}
	st.obs[0] = nil
	st.encRef, st.perf[0] = models.Reference{}, models.Reference{}
	st.frag = st.frag[:0]
	if cap(st.frag) > 8<<10 {
		st.frag = nil
	}
	statePool.Put(st)
}

// useDirect makes p put directRes resources in its transaction (see
// plan.direct), with room for n of them.
func (p *plan) useDirect(n int) {
	d := p.st.direct
	if d == nil || cap(d) < n {
		d = make([]directRes, 0, n)
		p.st.direct = d
	}
	p.direct = d[:0]
}

// directTx returns the transaction of a direct path, part of p's state
// (see Transaction.release), with room for n entries.
func (p *plan) directTx(n int) *Transaction {
	t := &p.st.t
	if cap(t.Entries) < n {
		t.Entries = make([]Entry, 0, n)
	}
	t.st = p.st
	return t
}

// reuse returns s emptied and cleared (so it keeps nothing alive), or nil
// when its capacity is above max.
func reuse[T any](s []T, max int) []T {
	if cap(s) > max {
		return nil
	}
	clear(s)
	return s[:0]
}

// commit records the contact resources this plan built in built, once
// the document's transaction is complete.
func (p *plan) commit() {
	for _, k := range p.fresh {
		p.built[k] = struct{}{}
	}
}

func (p *plan) add(rt string, doc *cht.Contact) {
	if _, ok := p.x.lookup(rt, doc.ID); ok {
		// Keep the most complete copy: shallow contacts in a lineage carry
		// only a few fields, the full document has a _rev.
		for i := range p.items {
			if it := &p.items[i]; it.rt == rt && it.doc.ID == doc.ID && it.doc.Rev == "" && doc.Rev != "" {
				it.doc = doc
			}
		}
		return
	}
	p.x.add(rt, doc.ID)
	p.items = append(p.items, planItem{rt: rt, doc: doc})
}

// check checks a contact document once and returns its cleaned copy and
// whether it is a person.
func (p *plan) check(ct *cht.Contact) (*cht.Contact, bool, error) {
	person, err := p.c.checkContact(ct)
	if err != nil {
		return nil, false, err
	}
	for _, k := range p.clean {
		if k.doc == ct {
			return k.clean, person, nil
		}
	}
	d, err := p.c.cleanContact(p.x, ct)
	if err != nil {
		return nil, false, err
	}
	p.clean = append(p.clean, cleaned{ct, d})
	return d, person, nil
}

// cleaned is a contact document and the copy of it to convert.
type cleaned struct{ doc, clean *cht.Contact }

// contact plans a hydrated contact as the resources its type is mapped
// to, and its hydrated lineage. It returns those resource types.
func (p *plan) contact(ct *cht.Contact) ([]string, error) {
	if ct == nil || !ct.Hydrated() || ct.Type == "" {
		// A minified or shallow copy (no type) is only referenced.
		return nil, nil
	}
	d, person, err := p.check(ct)
	if err != nil {
		return nil, err
	}
	rts := p.c.resources(d, person)
	if person {
		for _, rt := range rts {
			p.add(rt, d)
		}
	} else if err := p.place(d); err != nil {
		return nil, err
	}
	for l := ct.Parent; l != nil; l = l.Parent {
		if l.Doc == nil || !l.Doc.Hydrated() || l.Doc.ID == "" || l.Doc.Type == "" {
			continue
		}
		anc, person, err := p.check(l.Doc)
		if err != nil {
			return nil, prefixField("parent", err)
		}
		if !person {
			if err := p.place(anc); err != nil {
				return nil, err
			}
		}
	}
	return rts, nil
}

// prefixField makes the field of a *ConversionError relative to the member
// holding the document (e.g. "parent.contact_type").
func prefixField(prefix string, err error) error {
	var ce *ConversionError
	if errors.As(err, &ce) {
		c := *ce
		c.Field = prefix + "." + c.Field
		return &c
	}
	return err
}

// place plans a place as its mapped resources and, for a place whose
// primary contact is the practitioner of the people below, that contact
// as a Practitioner.
func (p *plan) place(pl *cht.Contact) error {
	for _, rt := range p.c.resources(pl, false) {
		p.add(rt, pl)
	}
	if p.c.isPracPlace(pl.TypeID()) {
		if pc := p.c.placeCHW(pl); pc != nil {
			d, _, err := p.check(pc)
			if err != nil {
				return prefixField("contact", err)
			}
			p.add("Practitioner", d)
		}
	}
	return nil
}

// build appends the planned contact resources to t: samply values, or,
// when p.direct is set, resources written when t is encoded (see
// directRes).
func (p *plan) build(t *Transaction) {
	c := p.c
	for _, it := range p.items {
		if p.built != nil {
			k := [2]string{it.rt, it.doc.ID}
			if _, ok := p.built[k]; ok {
				continue
			}
			p.fresh = append(p.fresh, k)
		}
		if p.direct != nil {
			kind := dPatient
			switch it.rt {
			case "Practitioner":
				kind = dPractitioner
			case "Location":
				kind = dLocation
			case "Organization":
				kind = dOrganization
			}
			t.Entries = append(t.Entries, Entry{FullURL: p.x.add(it.rt, it.doc.ID), Resource: p.newDirect(directRes{kind: kind, doc: it.doc})})
			continue
		}
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

// newDirect returns a pointer to d, completed with the plan's converter
// and refs, kept in p.direct.
func (p *plan) newDirect(d directRes) *directRes {
	d.c, d.x = p.c, p.x
	if len(p.direct) == cap(p.direct) {
		p.direct = make([]directRes, 0, max(4, len(p.items)+2))
		p.st.direct = p.direct
	}
	p.direct = append(p.direct, d)
	return &p.direct[len(p.direct)-1]
}

// ContactBundle converts a CHT contact to a transaction: the contact
// becomes the resources its type is mapped to (Mapping.Contacts; by
// default a person type a Patient, a place type a Location), and every
// hydrated ancestor place in its lineage is included too, so that
// references resolve inside the bundle. A contact whose type is not in
// Config.ContactTypes, or with a value that cannot be converted, is a
// *ConversionError naming the field; values of lenient fields are dropped
// and listed in Transaction.Warnings instead.
func (c *Converter) ContactBundle(ct *cht.Contact) (*Transaction, error) {
	return c.contactTx(ct, nil, false)
}

// contactTransaction is ContactBundle without the contact resources in
// built (see plan.built), which it then adds to built, and with its
// resources written when the transaction is encoded (see directRes): its
// entries hold only their FullURL and a resource of an unexported type.
func (c *Converter) contactTransaction(ct *cht.Contact, built map[[2]string]struct{}) (*Transaction, error) {
	return c.contactTx(ct, built, true)
}

// contactTx is contactTransaction, with samply resources unless direct.
func (c *Converter) contactTx(ct *cht.Contact, built map[[2]string]struct{}, direct bool) (*Transaction, error) {
	if ct == nil || ct.ID == "" {
		return nil, &ConversionError{Field: "_id", Reason: "document has no _id"}
	}
	if ct.Type == "" {
		return nil, &ConversionError{DocID: ct.ID, Field: "type", Reason: "contact has no type"}
	}
	p := newPlan(c)
	p.built = built
	if _, err := p.contact(ct); err != nil {
		return nil, err
	}
	var t *Transaction
	if direct {
		p.useDirect(len(p.items))
		t = p.directTx(len(p.items))
	} else {
		t = &Transaction{}
	}
	p.build(t)
	if built != nil {
		p.commit()
	}
	t.Warnings = p.x.warnings
	return t, nil
}

// ReportBundle converts a (preferably hydrated) report to one transaction:
// its Encounter, one Observation per mapped non-empty field, and the
// hydrated subject, submitter and their hydrated lineage as the resources
// their types are mapped to, all linked with urn:uuid references. A person
// subject is a Patient, whatever else her type is mapped to; a place
// subject must be mapped to Location; a report must have a subject unless
// its form is mapped subjectless. Posting the same bundle twice creates no duplicates
// (see [WriteStrategy]). An unmapped form gives an error wrapping
// ErrUnmappedForm; a value that cannot be converted a *ConversionError
// naming the field, except in lenient fields, whose values are dropped and
// listed in Transaction.Warnings.
func (c *Converter) ReportBundle(r *cht.Report) (*Transaction, error) {
	p, err := c.reportPlan(r)
	if err != nil {
		return nil, err
	}
	obs, err := c.observations(p.x, r)
	if err != nil {
		return nil, err
	}
	t := &Transaction{Entries: make([]Entry, 0, len(p.items)+2+len(obs))}
	c.reportEntries(p, r, t)
	for i := range obs {
		path := (*obs[i].Identifier[0].Value)[len(r.ID)+1:]
		t.Entries = append(t.Entries, c.entry(p.x, "Observation", r.ID, path, &obs[i], c.sys.Observation, *obs[i].Identifier[0].Value))
	}
	t.Warnings = p.x.warnings
	return t, nil
}

// reportPlan checks a report and plans the contact resources of its
// transaction.
func (c *Converter) reportPlan(r *cht.Report) (*plan, error) {
	if err := checkReport(r); err != nil {
		return nil, err
	}
	fi, err := c.form(r.Form)
	if err != nil {
		return nil, err
	}
	p := newPlan(c)
	if r.Contact != nil {
		// The submitter's _id is written (participant, performer) even
		// when its document is not hydrated, and so checked.
		if err := checkText(r.ID, "contact._id", r.Contact.ID); err != nil {
			return nil, err
		}
		if err := checkLineage(r.ID, r.Contact.Parent); err != nil {
			return nil, prefixField("contact", err)
		}
		rts, err := p.contact(r.Contact)
		if err != nil {
			return nil, prefixField("contact", err)
		}
		p.x.submitter = "Practitioner"
		if rts != nil && !slices.Contains(rts, "Practitioner") {
			p.x.submitter = ""
			if slices.Contains(rts, "Patient") {
				p.x.submitter = "Patient"
			}
		}
	}
	if !fi.fm.Subjectless {
		subj, key := r.Patient, "patient"
		if (subj == nil || subj.ID == "") && r.Place != nil && r.Place.Hydrated() {
			subj, key = r.Place, "place"
		}
		if subj != nil && subj.ID != "" && subj.Hydrated() {
			rts, err := p.contact(subj)
			if err != nil {
				return nil, prefixField(key, err)
			}
			if rts != nil && !slices.Contains(rts, "Patient") {
				// A report is about its subject as a patient, whatever
				// else the mapping makes the person: a CHW can be
				// pregnant. (p.contact checked subj.)
				if d, person, _ := p.check(subj); person {
					p.add("Patient", d)
				}
			}
		}
		s, err := c.subject(p.x, r)
		if err != nil {
			return nil, err
		}
		p.st.subj = s
		p.x.subj = &p.st.subj
	}
	if g := r.Geolocation; g != nil && (g.Latitude != nil || g.Longitude != nil) {
		if msg := geoProblem(g); msg != "" {
			ce := &ConversionError{DocID: r.ID, Field: "geolocation", Value: g, Reason: msg}
			if !c.lenient["geolocation"] {
				return nil, ce
			}
			p.x.warn(ce)
		} else {
			p.x.geo = true
			p.x.add("Location", r.ID+geoSuffix)
		}
	}
	p.x.add("Encounter", r.ID)
	return p, nil
}

// reportEntries appends the entries of a planned report other than its
// Observations: contacts, the Location it was filled in, its Encounter.
func (c *Converter) reportEntries(p *plan, r *cht.Report, t *Transaction) {
	p.build(t)
	if p.direct != nil {
		if p.x.geo {
			t.Entries = append(t.Entries, Entry{FullURL: p.x.geoURN(r.ID), Resource: p.newDirect(directRes{kind: dReportLocation, r: r})})
		}
		t.Entries = append(t.Entries, Entry{FullURL: p.x.add("Encounter", r.ID), Resource: p.newDirect(directRes{kind: dEncounter, r: r})})
		return
	}
	if p.x.geo {
		key := r.ID + geoSuffix
		t.Entries = append(t.Entries, c.entry(p.x, "Location", key, "", c.reportLocation(p.x, r), c.sys.Observation, key))
	}
	enc := c.encounter(p.x, r)
	t.Entries = append(t.Entries, c.entry(p.x, "Encounter", r.ID, "", enc, c.sys.DocumentID, r.ID))
}

// reportTransaction is [Converter.ReportBundle] without samply
// Observations: Entries holds the contacts, the Location and the
// Encounter, and the Observations are written straight to JSON when the
// transaction is encoded (Len counts them). Values are converted and
// checked here, so a value that cannot be converted is an error of this
// call, as in ReportBundle, and the warnings are the same.
func (c *Converter) reportTransaction(r *cht.Report) (*Transaction, error) {
	return c.reportTransactionIn(r, nil)
}

// reportTransactionIn is reportTransaction without the contact resources
// in built (see plan.built), which it then adds to built.
func (c *Converter) reportTransactionIn(r *cht.Report, built map[[2]string]struct{}) (*Transaction, error) {
	p, err := c.reportPlan(r)
	if err != nil {
		return nil, err
	}
	p.built = built
	fi, _ := c.form(r.Form)
	ob := &p.st.ob
	ob.c, ob.r = c, r
	if cap(ob.kept) < len(fi.fields) {
		ob.kept = make([]keptField, 0, len(fi.fields))
	}
	for i := range fi.fields {
		fx := &fi.fields[i]
		v, ok := r.Fields.Field(fx.fm.Path)
		if !ok || isEmptyValue(v) {
			continue
		}
		fv, err := fieldValue(fx.fm, v)
		if err != nil {
			ce := &ConversionError{DocID: r.ID, Field: "fields." + fx.fm.Path, Value: v, Reason: err.Error()}
			if !fx.fm.Lenient {
				return nil, ce
			}
			p.x.warn(ce)
			continue
		}
		ob.kept = append(ob.kept, keptField{fx, fv})
	}
	// Fragments shared by every Observation: what follows its code
	// (subject, encounter, effective time, performer), then the escaped
	// report id and '/' of its identifier value.
	fr := encoder{b: p.st.frag[:0]}
	if fr.b == nil {
		fr.b = make([]byte, 0, 512)
	}
	first := false
	if p.x.subj != nil {
		fr.ref(&first, `"subject":`, &p.x.subj.reference)
	}
	p.st.encRef = c.ref(p.x, "Encounter", r.ID)
	fr.ref(&first, `"encounter":`, &p.st.encRef)
	if r.ReportedDate != 0 {
		// A dateTime needs no escaping.
		fr.key(&first, `"effectiveDateTime":`)
		fr.b = append(appendDateTime(append(fr.b, '"'), r.ReportedDate.Time()), '"')
	}
	if r.Contact != nil && r.Contact.ID != "" && p.x.submitter != "" {
		p.st.perf[0] = c.ref(p.x, p.x.submitter, r.Contact.ID)
		fr.refs(&first, `"performer":`, p.st.perf[:])
	}
	if fr.err != nil {
		return nil, fmt.Errorf("fhir: encode: %w", fr.err)
	}
	refEnd := len(fr.b)
	fr.b = append(appendStringBody(fr.b, r.ID), '/')
	p.st.frag = fr.b
	ob.refFrag, ob.idPrefix = fr.b[:refEnd], fr.b[refEnd:]

	p.useDirect(len(p.items) + 2)
	t := p.directTx(len(p.items) + 2)
	c.reportEntries(p, r, t)
	if built != nil {
		p.commit()
	}
	ob.at = len(t.Entries)
	p.st.obs[0] = ob
	t.direct = p.st.obs[:]
	t.Warnings = p.x.warnings
	return t, nil
}

// directObs are the Observations of one report, written straight to JSON
// before Entries[at] when their transaction is encoded.
type directObs struct {
	at   int
	c    *Converter
	r    *cht.Report
	kept []keptField // the fields with a value, checked
	// refFrag holds the members that follow the code, with a leading
	// comma, idPrefix the escaped report id and '/'.
	refFrag, idPrefix []byte
}

// moved returns ob written before entry at of another transaction.
func (ob *directObs) moved(at int) *directObs {
	c := *ob
	c.at = at
	return &c
}

type keptField struct {
	fx *fieldIndex
	v  obsValue
}

// observations writes the Observations as entries of a Bundle, each
// preceded by a comma when *comma is set (and sets it).
func (e *encoder) observations(ob *directObs, comma *bool) {
	c, r := ob.c, ob.r
	cf := c.direct
	put := c.cfg.Strategy == WritePut
	sc := getScratch()
	defer putScratch(sc)
	sc.ids.start(c.ns, "Observation", r.ID)
	// What every Observation of the report has between its id and its
	// path (head), and after its value up to its id or path (tail).
	f := append(append(sc.frag[:0], cf.obsIdent...), ob.idPrefix...)
	headEnd := len(f)
	f = append(f, `,"resourceType":"Observation"},"request":{"method":`...)
	switch c.cfg.Strategy {
	case WritePut:
		f = append(f, `"PUT","url":"Observation/`...)
	case WriteConditionalUpdate:
		f = append(f, `"PUT","url":"Observation?`...)
	default:
		f = append(f, `"POST","url":"Observation","ifNoneExist":"`...)
	}
	if !put {
		// appendTokenEscape output needs no JSON escaping.
		f = append(f, cf.obsQuery...)
		f = appendTokenEscape(f, r.ID)
		f = append(f, "%2F"...)
	}
	sc.frag = f
	head, tail := f[:headEnd], f[headEnd:]
	b := e.b
	for i := range ob.kept {
		k := &ob.kept[i]
		fx := k.fx
		id := uuidText(sc.ids.uuid(fx.fm.Path, 0))
		if *comma {
			b = append(b, ',')
		}
		*comma = true
		b = appendObservationEntry(append(b, `{"fullUrl":"urn:uuid:`...), id[:], put)
		b = append(b, head...)
		b = append(b, fx.pathFrag...)
		b = append(b, ob.refFrag...)
		b = appendObsValue(b, &k.v, fx)
		b = append(b, tail...)
		if put {
			b = append(b, id[:]...)
		} else {
			b = append(b, fx.pathQuery...)
		}
		b = append(b, `"}}`...)
	}
	e.b = b
}

// appendObsValue appends the value member of a report Observation, with
// its leading comma, as the encoder writes it.
func appendObsValue(b []byte, v *obsValue, fx *fieldIndex) []byte {
	switch v.kind {
	case pvQuantity:
		b = append(b, `,"valueQuantity":{"value":`...)
		if v.num == "" {
			b = append(b, '0')
		} else {
			b = append(b, v.num...)
		}
		b = append(b, fx.qtyTail...)
	case pvInteger:
		b = append(b, `,"valueInteger":`...)
		b = strconv.AppendInt(b, int64(v.i), 10)
	case pvBoolean:
		b = append(b, `,"valueBoolean":`...)
		b = strconv.AppendBool(b, v.b)
	case pvString:
		b = append(b, `,"valueString":`...)
		b = appendString(b, v.s)
	case pvCode:
		b = append(b, `,"valueCodeableConcept":{"coding":[{"system":`...)
		b = appendString(b, v.code.System)
		b = append(b, `,"code":`...)
		b = appendString(b, v.code.Code)
		if v.code.Display != "" {
			b = append(b, `,"display":`...)
			b = appendString(b, v.code.Display)
		}
		b = append(b, "}]}"...)
	case pvDateTime:
		b = append(b, `,"valueDateTime":`...)
		b = appendString(b, v.s)
	case pvTime:
		b = append(b, `,"valueTime":`...)
		b = appendString(b, v.s)
	}
	return b
}

// appendObservationEntry writes an Observation entry's fullUrl (b ends
// with its opening) and opens its resource, with its id when the entry
// is a PUT.
func appendObservationEntry(b, id []byte, put bool) []byte {
	b = append(b, id...)
	if put {
		b = append(b, `","resource":{"id":"`...)
		b = append(b, id...)
		return append(b, `",`...)
	}
	return append(b, `","resource":{`...)
}
