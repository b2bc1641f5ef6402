package fhir

import (
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// Patient converts a CHT person to a FHIR Patient: deterministic id (with
// WritePut), identifiers for _id, patient_id and external_id, name (full
// text plus the configured given/family split), gender (male, female, other
// or unknown; never an error), birthDate when date_of_birth is a valid FHIR
// date, telecom phones, deceased[x] from date_of_death, managingOrganization
// and generalPractitioner from a hydrated lineage, and the CHT source tag.
func (c *Converter) Patient(p *cht.Contact) (*models.Patient, error) {
	if err := c.checkContact(p, true); err != nil {
		return nil, err
	}
	return c.patient(nil, p), nil
}

// Practitioner converts a CHT person (typically a CHW: a report's contact or
// a place's primary contact) to a FHIR Practitioner.
func (c *Converter) Practitioner(p *cht.Contact) (*models.Practitioner, error) {
	if err := c.checkContact(p, true); err != nil {
		return nil, err
	}
	return c.practitioner(nil, p), nil
}

// Location converts a CHT place to a FHIR Location; type is the
// contact_type (omitted when the place has none), partOf the parent place's
// Location, managingOrganization the nearest place (itself included) whose
// type is an organization type.
func (c *Converter) Location(p *cht.Contact) (*models.Location, error) {
	if err := c.checkContact(p, false); err != nil {
		return nil, err
	}
	return c.location(nil, p), nil
}

// Organization converts a CHT place to a FHIR Organization; partOf is the
// nearest hydrated ancestor whose type is an organization type.
func (c *Converter) Organization(p *cht.Contact) (*models.Organization, error) {
	if err := c.checkContact(p, false); err != nil {
		return nil, err
	}
	return c.organization(nil, p), nil
}

func (c *Converter) checkContact(ct *cht.Contact, person bool) error {
	if ct == nil {
		return &ConversionError{Field: "_id", Reason: "no document"}
	}
	if ct.ID == "" {
		return &ConversionError{Field: "_id", Reason: "document has no _id"}
	}
	if !ct.IsContact() {
		return &ConversionError{DocID: ct.ID, Field: "type", Value: ct.Type, Reason: "not a contact document"}
	}
	if c.isPerson(ct) != person {
		want := "place"
		if person {
			want = "person"
		}
		return &ConversionError{DocID: ct.ID, Field: "type", Value: ct.TypeID(), Reason: "contact type is not a " + want + " type"}
	}
	return nil
}

// meta returns the meta with the CHT source tag; the resources of one
// conversion (x != nil) share it.
func (c *Converter) meta(x *refs) *models.Meta {
	if x != nil && x.meta != nil {
		return x.meta
	}
	m := &models.Meta{Tag: []models.Coding{{System: x.s(c.sys.Source), Code: x.s("cht"), Display: x.s("Community Health Toolkit")}}}
	if x != nil {
		x.meta = m
	}
	return m
}

// id returns the logical id to set on a resource (nil for conditional
// strategies, where the server assigns ids).
func (c *Converter) id(x *refs, rt, chtID string, path ...string) *string {
	if c.cfg.Strategy != WritePut {
		return nil
	}
	return x.s(c.ID(rt, chtID, path...))
}

func (x *refs) identifier(system, value, label string, use *models.IdentifierUse) models.Identifier {
	id := models.Identifier{Use: use, System: x.s(system), Value: x.s(value)}
	if label != "" {
		id.Type = x.cc(models.CodeableConcept{Text: x.s(label)})
	}
	return id
}

func (c *Converter) contactIdentifiers(x *refs, ct *cht.Contact) []models.Identifier {
	ids := x.identSlice(4)
	ids = append(ids, x.identifier(c.sys.DocumentID, ct.ID, "CHT document ID", nil))
	if s := strings.TrimSpace(ct.PatientID); s != "" {
		ids = append(ids, x.identifier(c.sys.PatientID, s, "CHT patient ID", x.use(models.IdentifierUseOfficial)))
	}
	if s := strings.TrimSpace(ct.PlaceID); s != "" {
		ids = append(ids, x.identifier(c.sys.PlaceID, s, "CHT place ID", x.use(models.IdentifierUseOfficial)))
	}
	if s := strings.TrimSpace(ct.ExternalID); s != "" {
		ids = append(ids, x.identifier(c.sys.ExternalID, s, "External ID", x.use(models.IdentifierUseSecondary)))
	}
	return ids
}

func (c *Converter) humanName(x *refs, name string) []models.HumanName {
	text := strings.Join(strings.Fields(name), " ")
	if text == "" {
		return nil
	}
	hn := models.HumanName{Text: x.s(text)}
	words := strings.Fields(text)
	if len(words) >= 2 {
		switch c.cfg.NameSplit {
		case NameFamilyLast:
			hn.Family = x.s(words[len(words)-1])
			hn.Given = words[:len(words)-1]
		case NameFamilyFirst:
			hn.Family = x.s(words[0])
			hn.Given = words[1:]
		}
	}
	return []models.HumanName{hn}
}

func telecom(x *refs, ct *cht.Contact) []models.ContactPoint {
	var out []models.ContactPoint
	for _, ph := range []string{ct.Phone, ct.PhoneAlternate} {
		if ph = strings.TrimSpace(ph); ph != "" {
			out = append(out, models.ContactPoint{System: ptr(models.ContactPointSystemPhone), Value: x.s(ph)})
		}
	}
	if len(out) == 2 {
		out[0].Rank, out[1].Rank = ptr(1), ptr(2)
	}
	return out
}

// Gender maps a CHT sex value to a FHIR AdministrativeGender. It never fails:
// unrecognised values give unknown. ok is false for an empty value (no
// gender should be set).
func Gender(sex string) (g models.AdministrativeGender, ok bool) {
	switch strings.ToLower(strings.TrimSpace(sex)) {
	case "":
		return models.AdministrativeGenderUnknown, false
	case "male", "m", "man", "boy":
		return models.AdministrativeGenderMale, true
	case "female", "f", "woman", "girl":
		return models.AdministrativeGenderFemale, true
	case "other", "o", "intersex":
		return models.AdministrativeGenderOther, true
	}
	return models.AdministrativeGenderUnknown, true
}

// fhirDate returns s as a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD, a real
// calendar date) and whether it is one. An RFC 3339 date-time yields its
// date part.
func fhirDate(s string) (string, bool) {
	s = strings.TrimSpace(s)
	switch len(s) {
	case 4:
		if t, err := time.Parse("2006", s); err == nil && t.Year() > 0 {
			return s, true
		}
	case 7:
		if _, err := time.Parse("2006-01", s); err == nil && s[0] != '0' {
			return s, true
		}
	case 10:
		if _, err := time.Parse("2006-01-02", s); err == nil && s[0] != '0' {
			return s, true
		}
	default:
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil && len(s) > 10 {
			if _, err := time.Parse("2006-01-02", s[:10]); err == nil && t.Year() > 0 {
				return s[:10], true
			}
		}
	}
	return "", false
}

// fhirDateTime returns s as a FHIR dateTime: a FHIR date, or an RFC 3339
// date-time with seconds and zone.
func fhirDateTime(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) <= 10 {
		return fhirDate(s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1 || t.Year() > 9999 {
		return "", false
	}
	return s, true
}

func (c *Converter) patient(x *refs, p *cht.Contact) *models.Patient {
	pt := &models.Patient{
		Id:         c.id(x, "Patient", p.ID),
		Meta:       c.meta(x),
		Identifier: c.contactIdentifiers(x, p),
		Name:       c.humanName(x, p.Name),
		Telecom:    telecom(x, p),
	}
	if g, ok := Gender(p.Sex); ok {
		pt.Gender = &g
	}
	if d, ok := fhirDate(p.DateOfBirth); ok {
		pt.BirthDate = &d
	}
	if dod := strings.TrimSpace(p.DateOfDeath); dod != "" {
		if d, ok := fhirDateTime(dod); ok {
			pt.DeceasedDateTime = &d
		} else {
			pt.DeceasedBoolean = ptr(true)
		}
	}
	if org := c.nearestOrg(p.Parent); org != "" {
		pt.ManagingOrganization = x.refp(c.ref(x, "Organization", org))
	}
	if chw := c.chwOf(p.Parent); chw != nil {
		pt.GeneralPractitioner = []models.Reference{c.ref(x, "Practitioner", chw.ID)}
	}
	return pt
}

// nearestOrg returns the _id of the first hydrated ancestor whose type is an
// organization type.
func (c *Converter) nearestOrg(l *cht.Lineage) string {
	for ; l != nil; l = l.Parent {
		if l.Doc != nil && c.orgTypes[l.Doc.TypeID()] {
			return l.ID
		}
	}
	return ""
}

// chwOf returns the primary contact of the first hydrated ancestor whose
// type is a practitioner place type, if that contact is a hydrated person:
// only then is its Practitioner put in a bundle (plan.place), so a
// generalPractitioner reference always resolves.
func (c *Converter) chwOf(l *cht.Lineage) *cht.Contact {
	for ; l != nil; l = l.Parent {
		if l.Doc != nil && c.pracType[l.Doc.TypeID()] {
			return c.placeCHW(l.Doc)
		}
	}
	return nil
}

// placeCHW returns the primary contact of a practitioner place when it is
// hydrated and a person (shallow contact docs may omit type), else nil.
func (c *Converter) placeCHW(pl *cht.Contact) *cht.Contact {
	if pl.Contact == nil || pl.Contact.ID == "" || !pl.Contact.Hydrated() {
		return nil
	}
	pc := *pl.Contact
	if pc.Type == "" {
		pc.Type = "person"
	}
	if !c.isPerson(&pc) {
		return nil
	}
	return &pc
}

func (c *Converter) practitioner(x *refs, p *cht.Contact) *models.Practitioner {
	pr := &models.Practitioner{
		Id:         c.id(x, "Practitioner", p.ID),
		Meta:       c.meta(x),
		Identifier: c.contactIdentifiers(x, p),
		Active:     ptr(true),
		Name:       c.humanName(x, p.Name),
		Telecom:    telecom(x, p),
	}
	if g, ok := Gender(p.Sex); ok {
		pr.Gender = &g
	}
	if d, ok := fhirDate(p.DateOfBirth); ok {
		pr.BirthDate = &d
	}
	return pr
}

// placeType returns the type of a Location or Organization: the place's
// contact type, or none when the place has no type (a configurable-hierarchy
// place without contact_type), since an empty code would break ele-1.
func (c *Converter) placeType(x *refs, p *cht.Contact) []models.CodeableConcept {
	t := p.TypeID()
	if t == "" {
		return nil
	}
	cc := x.ccSlice(1)
	cc[0].Coding = x.codingSlice(1)
	cc[0].Coding[0] = models.Coding{System: x.s(c.sys.ContactType), Code: x.s(t)}
	cc[0].Text = x.s(t)
	return cc
}

func (x *refs) nonEmpty(s string) *string {
	if s = strings.TrimSpace(s); s == "" {
		return nil
	}
	return x.s(s)
}

func (c *Converter) location(x *refs, p *cht.Contact) *models.Location {
	loc := &models.Location{
		Id:         c.id(x, "Location", p.ID),
		Meta:       c.meta(x),
		Identifier: c.contactIdentifiers(x, p),
		Status:     ptr(models.LocationStatusActive),
		Name:       x.nonEmpty(p.Name),
		Mode:       ptr(models.LocationModeInstance),
		Type:       c.placeType(x, p),
		Telecom:    telecom(x, p),
	}
	if c.orgTypes[p.TypeID()] {
		loc.ManagingOrganization = x.refp(c.ref(x, "Organization", p.ID))
	} else if org := c.nearestOrg(p.Parent); org != "" {
		loc.ManagingOrganization = x.refp(c.ref(x, "Organization", org))
	}
	if pid := p.ParentID(); pid != "" {
		loc.PartOf = x.refp(c.ref(x, "Location", pid))
	}
	return loc
}

func (c *Converter) organization(x *refs, p *cht.Contact) *models.Organization {
	org := &models.Organization{
		Id:         c.id(x, "Organization", p.ID),
		Meta:       c.meta(x),
		Identifier: c.contactIdentifiers(x, p),
		Active:     ptr(true),
		Type:       c.placeType(x, p),
		Name:       x.nonEmpty(p.Name),
		Telecom:    telecom(x, p),
	}
	if up := c.nearestOrg(p.Parent); up != "" {
		org.PartOf = x.refp(c.ref(x, "Organization", up))
	}
	return org
}
