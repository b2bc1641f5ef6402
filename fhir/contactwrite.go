package fhir

import (
	"math"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// This file writes the contact resources (Patient, Practitioner, Location,
// Organization), a report's Encounter and the Location a report was filled
// in straight to JSON, from the CHT documents and the conversion's refs,
// without building samply values: the transactions of the internal paths
// (Converter.contactTransaction, Converter.reportTransactionIn) hold them
// as entries whose Resource is a *directRes. The bytes are those the
// encoder writes for the samply values Converter.patient, .practitioner,
// .location, .organization, .encounter and .reportLocation build, which
// contactwrite_test.go checks over generated documents.

// directKind is the resource a directRes writes.
type directKind uint8

const (
	dPatient directKind = iota
	dPractitioner
	dLocation
	dOrganization
	dEncounter
	dReportLocation
)

// directRes is the resource of a transaction entry that is written when
// the transaction is encoded. The entry holds only its FullURL: its
// request is written then too. d.x must not change after the entry is
// made (every member of the transaction is planned before its entries
// are built).
type directRes struct {
	kind directKind
	c    *Converter
	x    *refs
	doc  *cht.Contact // the cleaned contact (contact kinds)
	r    *cht.Report  // dEncounter, dReportLocation
}

// rt returns the resource type d writes.
func (d *directRes) rt() string {
	switch d.kind {
	case dPatient:
		return "Patient"
	case dPractitioner:
		return "Practitioner"
	case dEncounter:
		return "Encounter"
	case dOrganization:
		return "Organization"
	}
	return "Location"
}

// samply builds the samply value d stands for.
func (d *directRes) samply() any {
	c, x := d.c, d.x
	switch d.kind {
	case dPatient:
		return c.patient(x, d.doc)
	case dPractitioner:
		return c.practitioner(x, d.doc)
	case dLocation:
		return c.location(x, d.doc)
	case dOrganization:
		return c.organization(x, d.doc)
	case dEncounter:
		return c.encounter(x, d.r)
	}
	return c.reportLocation(x, d.r)
}

// samplyEntry returns the entry of the samply path for d's entry.
func (d *directRes) samplyEntry() Entry {
	c, x := d.c, d.x
	switch d.kind {
	case dEncounter:
		return c.entry(x, "Encounter", d.r.ID, "", d.samply(), c.sys.DocumentID, d.r.ID)
	case dReportLocation:
		key := d.r.ID + geoSuffix
		return c.entry(x, "Location", key, "", d.samply(), c.sys.Observation, key)
	}
	return c.entry(x, d.rt(), d.doc.ID, "", d.samply(), c.sys.DocumentID, d.doc.ID)
}

// finite reports whether the numbers of a geolocation are JSON numbers
// (NaN and the infinities are not; the encoder fails on them).
func finite(g *cht.Geolocation) bool {
	for _, f := range [...]*float64{g.Latitude, g.Longitude, g.Altitude} {
		if f != nil && (math.IsNaN(*f) || math.IsInf(*f, 0)) {
			return false
		}
	}
	return true
}

// written reports whether d can be written directly; otherwise (a
// position that is not a JSON number) its samply value is encoded, which
// fails the same way as on the samply path.
func (d *directRes) written() bool {
	var g *cht.Geolocation
	switch d.kind {
	case dLocation:
		g = d.doc.Geolocation
	case dReportLocation:
		g = d.r.Geolocation
	}
	return !g.Valid() || finite(g)
}

// directEntry writes the entry of d, whose fullUrl is fullURL.
func (e *encoder) directEntry(fullURL string, d *directRes) {
	if !d.written() {
		en := d.samplyEntry()
		e.entry(&en)
		return
	}
	c := d.c
	cf := c.direct
	put := c.cfg.Strategy == WritePut
	id := fullURL[len("urn:uuid:"):]
	// fullURL is a member's urn:uuid (refs.addURL), which needs no
	// escaping.
	b := append(e.b, `{"fullUrl":"`...)
	b = append(b, fullURL...)
	b = append(b, `","resource":{`...)
	if put {
		b = append(b, `"id":"`...)
		b = append(b, id...)
		b = append(b, `",`...)
	}
	rt := d.rt()
	query, docID, key := cf.docQuery, "", ""
	switch d.kind {
	case dEncounter:
		b = d.appendEncounter(b)
		docID = d.r.ID
	case dReportLocation:
		b = d.appendReportLocation(b)
		query, docID, key = cf.obsQuery, d.r.ID, geoSuffix[1:]
	default:
		b = d.appendContact(b)
		docID = d.doc.ID
	}
	b = append(b, `,"resourceType":"`...)
	b = append(b, rt...)
	b = append(b, `"},"request":{"method":`...)
	if put {
		b = append(b, `"PUT","url":"`...)
		b = append(b, rt...)
		b = append(b, '/')
		b = append(b, id...)
		b = append(b, `"}`...)
	} else {
		b = c.appendRequest(b, rt, nil, query, docID, key, 0)
	}
	e.b = append(b, '}')
}

// appendRef appends the reference c.ref(x, rt, chtID) makes; withIdent
// adds the CHT _id beside a literal reference (Location.partOf).
func (d *directRes) appendRef(b []byte, rt, chtID string, withIdent bool) []byte {
	c := d.c
	urn, in := d.x.lookup(rt, chtID)
	switch {
	case in: // a urn:uuid, which needs no escaping
		b = append(b, `{"reference":"`...)
		b = append(b, urn...)
		b = append(b, '"')
	case c.cfg.Strategy == WritePut:
		b = append(b, `{"reference":"`...)
		b = append(b, rt...)
		b = append(b, '/')
		id := uuidText(c.uuid(rt, chtID))
		b = append(b, id[:]...)
		b = append(b, '"')
	default:
		b = append(b, `{"type":"`...)
		b = append(b, rt...)
		b = append(b, `",`...)
		b = append(b, c.direct.docRefIdent...)
		b = appendString(b, chtID)
		return append(b, "}}"...)
	}
	b = append(b, `,"type":"`...)
	b = append(b, rt...)
	b = append(b, '"')
	if withIdent {
		b = append(b, ',')
		b = append(b, c.direct.docRefIdent...)
		b = appendString(b, chtID)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendReference appends a reference the way the encoder writes it.
func appendReference(b []byte, r *models.Reference) []byte {
	e := encoder{b: b}
	e.reference(r)
	return e.b
}

// appendContact writes the members of a contact resource after its id.
func (d *directRes) appendContact(b []byte) []byte {
	c, p := d.c, d.doc
	cf := c.direct
	b = append(b, cf.meta...)
	b = append(b, cf.docIdent...)
	b = appendString(b, p.ID)
	b = append(b, '}')
	if s := strings.TrimSpace(p.PatientID); s != "" {
		b = append(b, cf.patientIDIdent...)
		b = appendString(b, s)
		b = append(b, '}')
	}
	if s := strings.TrimSpace(p.PlaceID); s != "" {
		b = append(b, cf.placeIDIdent...)
		b = appendString(b, s)
		b = append(b, '}')
	}
	if s := strings.TrimSpace(p.ExternalID); s != "" {
		b = append(b, cf.externalIDIdent...)
		b = appendString(b, s)
		b = append(b, '}')
	}
	b = append(b, ']')
	switch d.kind {
	case dPatient:
		b = c.appendHumanName(b, p.Name)
		b = appendTelecom(b, p)
		b = appendGenderBirth(b, p)
		if dod := strings.TrimSpace(p.DateOfDeath); dod != "" {
			if s, ok := deceasedDateTime(dod); ok {
				b = append(b, `,"deceasedDateTime":`...)
				b = appendString(b, s)
			} else if p.DateOfDeath == deceasedNoDate {
				b = append(b, `,"deceasedBoolean":true`...)
			}
		}
		if chw := c.chwOf(p.Parent); chw != nil && chw.ID != p.ID {
			b = append(b, `,"generalPractitioner":[`...)
			b = d.appendRef(b, "Practitioner", chw.ID, false)
			b = append(b, ']')
		}
		if org := c.nearestOrg(p.Parent); org != "" {
			b = append(b, `,"managingOrganization":`...)
			b = d.appendRef(b, "Organization", org, false)
		}
	case dPractitioner:
		b = append(b, `,"active":true`...)
		b = c.appendHumanName(b, p.Name)
		b = appendTelecom(b, p)
		b = appendGenderBirth(b, p)
	case dLocation:
		b = append(b, `,"status":"active"`...)
		b = appendName(b, p.Name)
		b = append(b, `,"mode":"instance"`...)
		b = c.appendPlaceType(b, p)
		b = appendTelecom(b, p)
		b = appendPosition(b, p.Geolocation)
		if c.isOrgType(p.TypeID()) {
			b = append(b, `,"managingOrganization":`...)
			b = d.appendRef(b, "Organization", p.ID, false)
		} else if org := c.nearestOrg(p.Parent); org != "" {
			b = append(b, `,"managingOrganization":`...)
			b = d.appendRef(b, "Organization", org, false)
		}
		if pid := p.ParentID(); pid != "" && c.parentIsLocation(p.Parent) {
			b = append(b, `,"partOf":`...)
			b = d.appendRef(b, "Location", pid, true)
		}
	case dOrganization:
		b = append(b, `,"active":true`...)
		b = c.appendPlaceType(b, p)
		b = appendName(b, p.Name)
		b = appendTelecom(b, p)
		if up := c.nearestOrg(p.Parent); up != "" {
			b = append(b, `,"partOf":`...)
			b = d.appendRef(b, "Organization", up, false)
		}
	}
	return b
}

// appendName writes the name of a place (x.nonEmpty).
func appendName(b []byte, name string) []byte {
	if s := strings.TrimSpace(name); s != "" {
		b = append(b, `,"name":`...)
		b = appendString(b, s)
	}
	return b
}

// appendHumanName writes the name of a person (Converter.humanName).
func (c *Converter) appendHumanName(b []byte, name string) []byte {
	if strings.TrimSpace(name) == "" {
		return b
	}
	b = append(b, `,"name":[{"text":`...)
	b = appendString(b, name)
	if c.cfg.NameSplit == NameFamilyLast || c.cfg.NameSplit == NameFamilyFirst {
		if words, ok := splitName(name); ok {
			family, given := words[len(words)-1], words[:len(words)-1]
			if c.cfg.NameSplit == NameFamilyFirst {
				family, given = words[0], words[1:]
			}
			b = append(b, `,"family":`...)
			b = appendString(b, family)
			b = append(b, `,"given":[`...)
			for i, g := range given {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, g)
			}
			b = append(b, ']')
		}
	}
	return append(b, "}]"...)
}

// appendTelecom writes the phones of a contact (telecom).
func appendTelecom(b []byte, p *cht.Contact) []byte {
	ph1, ph2 := strings.TrimSpace(p.Phone), strings.TrimSpace(p.PhoneAlternate)
	if ph1 == "" && ph2 == "" {
		return b
	}
	both := ph1 != "" && ph2 != ""
	b = append(b, `,"telecom":[`...)
	if ph1 != "" {
		b = append(b, `{"system":"phone","value":`...)
		b = appendString(b, ph1)
		if both {
			b = append(b, `,"rank":1},`...)
		} else {
			b = append(b, '}')
		}
	}
	if ph2 != "" {
		b = append(b, `{"system":"phone","value":`...)
		b = appendString(b, ph2)
		if both {
			b = append(b, `,"rank":2`...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendGenderBirth writes the gender and birthDate of a person.
func appendGenderBirth(b []byte, p *cht.Contact) []byte {
	if strings.TrimSpace(p.Sex) != "" {
		if g, ok := gender(p.Sex); ok {
			b = append(b, `,"gender":"`...)
			b = append(b, g.Code()...)
			b = append(b, '"')
		}
	}
	if strings.TrimSpace(p.DateOfBirth) != "" {
		if s, ok := fhirDate(p.DateOfBirth); ok {
			b = append(b, `,"birthDate":`...)
			b = appendString(b, s)
		}
	}
	return b
}

// appendPlaceType writes the type of a place's Location or Organization
// (Converter.placeType).
func (c *Converter) appendPlaceType(b []byte, p *cht.Contact) []byte {
	t := p.TypeID()
	if t == "" {
		return b
	}
	b = append(b, c.direct.placeType...)
	b = appendString(b, t)
	b = append(b, `}],"text":`...)
	b = appendString(b, t)
	return append(b, "}]"...)
}

// appendPosition writes the position of a geolocation (position); its
// numbers are finite (directRes.written).
func appendPosition(b []byte, g *cht.Geolocation) []byte {
	if !g.Valid() {
		return b
	}
	b = append(b, `,"position":{"longitude":`...)
	b = strconv.AppendFloat(b, *g.Longitude, 'f', -1, 64)
	b = append(b, `,"latitude":`...)
	b = strconv.AppendFloat(b, *g.Latitude, 'f', -1, 64)
	if g.Altitude != nil {
		b = append(b, `,"altitude":`...)
		b = strconv.AppendFloat(b, *g.Altitude, 'f', -1, 64)
	}
	return append(b, '}')
}

// appendReportLocation writes the members of the Location where a report
// was filled in (Converter.reportLocation) after its id.
func (d *directRes) appendReportLocation(b []byte) []byte {
	r, cf := d.r, d.c.direct
	b = append(b, cf.meta...)
	b = append(b, cf.geoIdent...)
	b = appendStringBody(b, r.ID)
	b = append(b, `/geolocation"}],"status":"active","description":"Where CHT report `...)
	b = appendStringBody(b, r.ID)
	b = append(b, ` was filled in","mode":"instance"`...)
	return appendPosition(b, r.Geolocation)
}

// appendEncounter writes the members of a report's Encounter
// (Converter.encounter) after its id.
func (d *directRes) appendEncounter(b []byte) []byte {
	c, x, r := d.c, d.x, d.r
	cf := c.direct
	b = append(b, cf.encIdent...)
	b = appendString(b, r.ID)
	b = append(b, cf.encClass...)
	if fi := c.forms[strings.ToLower(r.Form)]; fi != nil {
		b = cf.appendFormType(b, fi, r.Form)
	} else if cf.encType != nil {
		b = append(b, cf.encType...)
	} else {
		b = append(b, `,"type":[{"coding":[`...)
		b = append(b, cf.formCoding[1:]...)
		b = appendString(b, r.Form)
		b = append(b, "}]}]"...)
	}
	if s := x.subj; s != nil && !s.place {
		b = append(b, `,"subject":`...)
		b = appendReference(b, &s.reference)
	}
	submitter := r.Contact != nil && r.Contact.ID != ""
	chw := submitter && x.submitter == "Practitioner"
	from := strings.TrimSpace(r.From)
	if chw || from != "" {
		b = append(b, `,"participant":[`...)
		if chw {
			b = append(b, `{"individual":`...)
			b = d.appendRef(b, "Practitioner", r.Contact.ID, false)
			b = append(b, '}')
			if from != "" {
				b = append(b, ',')
			}
		}
		if from != "" {
			b = append(b, `{"individual":{"identifier":{"system":`...)
			b = appendString(b, c.sys.Phone)
			b = append(b, `,"value":`...)
			b = appendString(b, from)
			b = append(b, `},"display":`...)
			b = appendString(b, from)
			b = append(b, "}}"...)
		}
		b = append(b, ']')
	}
	if r.ReportedDate != 0 {
		b = append(b, `,"period":{"start":"`...)
		b = r.ReportedDate.Time().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, `"}`...)
	}
	placeSubj := x.subj != nil && x.subj.place
	if placeSubj || x.geo {
		b = append(b, `,"location":[`...)
		if placeSubj {
			b = append(b, `{"location":`...)
			b = appendReference(b, &x.subj.reference)
			b = append(b, '}')
			if x.geo {
				b = append(b, ',')
			}
		}
		if x.geo {
			b = append(b, `{"location":{"reference":`...)
			b = appendString(b, x.geoURN(r.ID))
			b = append(b, `,"type":"Location"}}`...)
		}
		b = append(b, ']')
	}
	if submitter {
		if org := c.nearestOrg(r.Contact.Parent); org != "" {
			b = append(b, `,"serviceProvider":`...)
			b = d.appendRef(b, "Organization", org, false)
		}
	}
	return b
}

// geoURN returns the fullUrl of the Location where report docID was
// filled in (a member of x when x.geo).
func (x *refs) geoURN(docID string) string {
	for _, m := range x.in {
		if m.rt == "Location" && len(m.chtID) == len(docID)+len(geoSuffix) &&
			strings.HasPrefix(m.chtID, docID) && strings.HasSuffix(m.chtID, geoSuffix) {
			return m.urn
		}
	}
	return ""
}
