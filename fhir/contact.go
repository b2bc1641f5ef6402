package fhir

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// checkContact checks that ct is a contact of a known type and returns
// whether it is a person.
func (c *Converter) checkContact(ct *cht.Contact) (person bool, err error) {
	if ct == nil {
		return false, &ConversionError{Field: "_id", Reason: "no document"}
	}
	if ct.ID == "" {
		return false, &ConversionError{Field: "_id", Reason: "document has no _id"}
	}
	if err := checkText(ct.ID, "_id", ct.ID); err != nil {
		return false, err
	}
	if !ct.IsContact() {
		return false, &ConversionError{DocID: ct.ID, Field: "type", Value: ct.Type, Reason: "not a contact document"}
	}
	return c.contactPerson(ct)
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
	if len(path) == 0 {
		if urn, ok := x.lookup(rt, chtID); ok { // the id of its fullUrl
			return x.s(urn[len("urn:uuid:"):])
		}
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

// humanName returns the HumanName of a CHT name: text is the name exactly
// as stored; given and family are set only by a NameFamilyLast or
// NameFamilyFirst split of a name that splitName accepts.
func (c *Converter) humanName(x *refs, name string) []models.HumanName {
	if strings.TrimSpace(name) == "" {
		return nil
	}
	hn := models.HumanName{Text: x.s(name)}
	if words, ok := splitName(name); ok {
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

// splitName returns the words of a name that can be split into given and
// family names: two or more words, each starting with an upper-case letter
// ("Grace Achieng", "Zoë Ngũgĩ"). Names with particles or descriptions
// ("Zoë Ngũgĩ wa Kamau", "Baby of Amina") are not split.
func splitName(name string) ([]string, bool) {
	words := strings.Fields(name)
	if len(words) < 2 {
		return nil, false
	}
	for _, w := range words {
		r, _ := utf8.DecodeRuneInString(w)
		if !unicode.IsUpper(r) {
			return nil, false
		}
	}
	return words, true
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

// gender maps a CHT sex value to a FHIR AdministrativeGender. ok is false
// for a value it does not know (the caller reports it); an empty value is
// not passed in.
func gender(sex string) (g models.AdministrativeGender, ok bool) {
	switch strings.ToLower(strings.TrimSpace(sex)) {
	case "male", "m", "man", "boy":
		return models.AdministrativeGenderMale, true
	case "female", "f", "woman", "girl":
		return models.AdministrativeGenderFemale, true
	case "other", "o", "intersex":
		return models.AdministrativeGenderOther, true
	case "unknown":
		return models.AdministrativeGenderUnknown, true
	}
	return models.AdministrativeGenderUnknown, false
}

// cleanContact checks the values of a contact that go to FHIR and returns
// the contact to convert: ct itself when all its values are usable, else a
// copy without the unusable values of lenient fields (each dropped with a
// warning in x), or a *ConversionError naming
// the first unusable value of a strict field. Identity members (_id,
// patient_id, place_id, type, contact_type) are always strict.
func (c *Converter) cleanContact(x *refs, ct *cht.Contact) (*cht.Contact, error) {
	strict := [...]struct{ key, v string }{
		{"_id", ct.ID}, {"type", ct.Type}, {"contact_type", ct.ContactType},
		{"patient_id", ct.PatientID}, {"place_id", ct.PlaceID},
	}
	for _, f := range strict {
		if err := checkText(ct.ID, f.key, f.v); err != nil {
			return nil, err
		}
		if f.v == "" {
			if p := undecoded(ct, f.key); p != "" {
				return nil, &ConversionError{DocID: ct.ID, Field: f.key, Reason: p}
			}
		}
	}
	if err := checkLineage(ct.ID, ct.Parent); err != nil {
		return nil, err
	}
	d := ct // copied before its first change
	drop := func(field string, value any, reason string, clear func(d *cht.Contact)) error {
		e := &ConversionError{DocID: ct.ID, Field: field, Value: value, Reason: reason}
		if !c.lenient[field] {
			return e
		}
		if d == ct {
			cp := *ct
			d = &cp
		}
		clear(d)
		x.warn(e)
		return nil
	}
	texts := [...]struct {
		key string
		f   func(d *cht.Contact) *string
	}{
		{"name", func(d *cht.Contact) *string { return &d.Name }},
		{"external_id", func(d *cht.Contact) *string { return &d.ExternalID }},
		{"phone", func(d *cht.Contact) *string { return &d.Phone }},
		{"phone_alternate", func(d *cht.Contact) *string { return &d.PhoneAlternate }},
		{"sex", func(d *cht.Contact) *string { return &d.Sex }},
		{"date_of_birth", func(d *cht.Contact) *string { return &d.DateOfBirth }},
		{"date_of_death", func(d *cht.Contact) *string { return &d.DateOfDeath }},
	}
	for _, t := range texts {
		if v := *t.f(d); textProblem(v) != "" {
			if err := drop(t.key, v, textProblem(v), func(d *cht.Contact) { *t.f(d) = "" }); err != nil {
				return nil, err
			}
		} else if v == "" && len(ct.Extra) > 0 {
			p := undecoded(ct, t.key)
			if p == "" {
				continue
			}
			if err := drop(t.key, nil, p, func(*cht.Contact) {}); err != nil {
				return nil, err
			}
		}
	}
	if strings.TrimSpace(d.Sex) != "" {
		if _, ok := gender(d.Sex); !ok {
			err := drop("sex", d.Sex, "not a known sex (want male, female, other or unknown)", func(d *cht.Contact) { d.Sex = "" })
			if err != nil {
				return nil, err
			}
		}
	}
	if strings.TrimSpace(d.DateOfBirth) != "" {
		if _, ok := fhirDate(d.DateOfBirth); !ok {
			err := drop("date_of_birth", d.DateOfBirth, "not a date (want YYYY-MM-DD, YYYY-MM or YYYY)", func(d *cht.Contact) { d.DateOfBirth = "" })
			if err != nil {
				return nil, err
			}
		}
	}
	if strings.TrimSpace(d.DateOfDeath) != "" {
		if _, ok := deceasedDateTime(d.DateOfDeath); !ok {
			// Lenient: the person is still deceased, only the date is dropped.
			err := drop("date_of_death", d.DateOfDeath, "not a date or date-time", func(d *cht.Contact) { d.DateOfDeath = deceasedNoDate })
			if err != nil {
				return nil, err
			}
		}
	}
	if g := d.Geolocation; g != nil && (g.Latitude != nil || g.Longitude != nil) {
		if p := geoProblem(g); p != "" {
			if err := drop("geolocation", g, p, func(d *cht.Contact) { d.Geolocation = nil }); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// undecoded says why the string member key of ct, kept verbatim in
// ct.Extra because package cht could not decode it (a *cht.DecodeError
// with Member set), is no usable value: "" when it was decoded or is
// absent, null or "" (which cht keeps verbatim too). Its typed field is
// empty: the conversion treats it as any unusable value.
func undecoded(ct *cht.Contact, key string) string {
	raw, ok := ct.Extra[key]
	if !ok || len(raw) == 0 || string(raw) == `""` {
		return ""
	}
	switch raw[0] {
	case 'n':
		return ""
	case '"':
		return "a string with a NUL character or a lone UTF-16 surrogate"
	case '{':
		return "an object, not a string"
	case '[':
		return "an array, not a string"
	case 't', 'f':
		return "a boolean, not a string"
	}
	return "a number, not a string"
}

// checkLineage returns a *ConversionError naming the member
// ("parent._id", "parent.parent._id", ...) of the first ancestor _id in l
// that is not a valid FHIR string (see textProblem): an ancestor that is
// not hydrated is not checked as a document, yet its _id is written
// (Location.partOf, managingOrganization, serviceProvider).
func checkLineage(docID string, l *cht.Lineage) error {
	for depth := 1; l != nil; l, depth = l.Parent, depth+1 {
		if textProblem(l.ID) != "" {
			return checkText(docID, strings.Repeat("parent.", depth)+"_id", l.ID)
		}
	}
	return nil
}

// deceasedNoDate marks, in a cleaned contact, a date_of_death that was
// dropped: the person is deceased at an unknown date.
const deceasedNoDate = "\x00deceased"

// geoProblem says why a geolocation cannot be a FHIR position: its
// latitude, longitude and altitude (the members written) must be finite
// numbers, which JSON can carry, a NaN or ±Inf set in Go cannot.
func geoProblem(g *cht.Geolocation) string {
	switch {
	case g.Latitude == nil || g.Longitude == nil:
		return "latitude and longitude must both be given"
	case math.IsNaN(*g.Latitude) || math.IsNaN(*g.Longitude):
		return "latitude and longitude must be numbers (not NaN)"
	case *g.Latitude < -90 || *g.Latitude > 90:
		return "latitude is outside -90 to 90"
	case *g.Longitude < -180 || *g.Longitude > 180:
		return "longitude is outside -180 to 180"
	case g.Altitude != nil && (math.IsNaN(*g.Altitude) || math.IsInf(*g.Altitude, 0)):
		return "altitude is not a finite number"
	}
	return ""
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
		if plainDate(s) {
			return s, true
		}
	default:
		if isDateTime(s) {
			return s[:10], true
		}
	}
	return "", false
}

// plainDate reports whether s is a date YYYY-MM-DD of the years 1000 to
// 9999 that exists: what time.Parse with layout 2006-01-02 accepts from
// the year 1000 on (TestPlainDate), without its cost.
func plainDate(s string) bool {
	return len(s) == 10 && s[0] != '0' && calendarDate(s)
}

// calendarDate reports whether s is a date YYYY-MM-DD of the years 1 to
// 9999 that exists.
func calendarDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	n := 0
	for i := range 10 {
		if i == 4 || i == 7 {
			continue
		}
		d := s[i] - '0'
		if d > 9 {
			return false
		}
		n = n*10 + int(d)
	}
	year, month, day := n/10000, n/100%100, n%100
	if year < 1 || month < 1 || month > 12 || day < 1 {
		return false
	}
	days := 31
	switch month {
	case 4, 6, 9, 11:
		days = 30
	case 2:
		days = 28
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			days = 29
		}
	}
	return day <= days
}

// fhirDateTime returns s as a FHIR dateTime: a FHIR date, or a date-time
// with seconds and zone (see isDateTime).
// deceasedDateTime is the FHIR dateTime of a CHT date_of_death: a date or
// dateTime as stored, or the milliseconds CHT's death_reporting
// transition stores (see cht.Contact.DateOfDeath), in UTC. Digits are
// milliseconds from 13 of them on, as CHT reads a timestamp (cht-core
// api/src/services/records.js parseSentTimestamp); fewer are no date.
func deceasedDateTime(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && len(s) >= 13 {
		if !fhirMillis(ms) {
			return "", false
		}
		return formatDateTime(cht.Millis(ms).Time()), true
	}
	return fhirDateTime(s)
}

func fhirDateTime(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) <= 10 {
		return fhirDate(s)
	}
	if !isDateTime(s) {
		return "", false
	}
	return s, true
}

// isDateTime reports whether s is YYYY-MM-DDThh:mm:ss[.f+](Z|±hh:mm) as
// FHIR R4's dateTime pattern has it
// (http://hl7.org/fhir/R4/datatypes.html#dateTime), on a date that exists
// in the years 1 to 9999: a fraction after a full stop only (RFC 3339 and
// time.Parse also take a comma), hours 00 to 23, minutes and seconds 00 to
// 59 (the pattern's leap second 60 is refused, as time.Parse refuses it),
// and a zone Z or an offset from -14:00 to +14:00.
func isDateTime(s string) bool {
	if len(s) < 20 || s[10] != 'T' || !calendarDate(s[:10]) {
		return false
	}
	t, z := s[11:len(s)-1], s[len(s)-1:]
	if z != "Z" {
		t, z = s[11:len(s)-6], s[len(s)-6:]
	}
	// isTime, with the seconds.
	switch {
	case len(t) < 8 || !isTime(t):
		return false
	case z == "Z" || z[1:] == "14:00" && (z[0] == '+' || z[0] == '-'):
		return true
	}
	return (z[0] == '+' || z[0] == '-') && z[3] == ':' && twoDigits(z[1:3], 13) && twoDigits(z[4:6], 59)
}

// twoDigits reports whether s is two decimal digits of a number from 0 to
// hi.
func twoDigits(s string, hi int) bool {
	return len(s) == 2 && '0' <= s[0] && s[0] <= '9' && '0' <= s[1] && s[1] <= '9' &&
		int(s[0]-'0')*10+int(s[1]-'0') <= hi
}

func (c *Converter) patient(x *refs, p *cht.Contact) *models.Patient {
	pt := &models.Patient{
		Id:         c.id(x, "Patient", p.ID),
		Meta:       c.meta(x),
		Identifier: c.contactIdentifiers(x, p),
		Name:       c.humanName(x, p.Name),
		Telecom:    telecom(x, p),
	}
	if g, ok := gender(p.Sex); ok {
		pt.Gender = &g
	}
	if d, ok := fhirDate(p.DateOfBirth); ok {
		pt.BirthDate = &d
	}
	if dod := strings.TrimSpace(p.DateOfDeath); dod != "" {
		if d, ok := deceasedDateTime(dod); ok {
			pt.DeceasedDateTime = &d
		} else if p.DateOfDeath == deceasedNoDate {
			pt.DeceasedBoolean = ptr(true)
		}
	}
	if org := c.nearestOrg(p.Parent); org != "" {
		pt.ManagingOrganization = x.refp(c.ref(x, "Organization", org))
	}
	if chw := c.chwOf(p.Parent); chw != nil && chw.ID != p.ID {
		pt.GeneralPractitioner = []models.Reference{c.ref(x, "Practitioner", chw.ID)}
	}
	return pt
}

// nearestOrg returns the _id of the first hydrated ancestor whose type is an
// organization type.
func (c *Converter) nearestOrg(l *cht.Lineage) string {
	for ; l != nil; l = l.Parent {
		if l.Doc != nil && c.isOrgType(l.Doc.TypeID()) {
			return l.ID
		}
	}
	return ""
}

// chwOf returns the primary contact of the first hydrated ancestor whose
// type is a practitioner place type, if that contact is a hydrated person:
// only then is its Practitioner put in a bundle (plan.place), so a
// generalPractitioner reference always resolves. The callers leave out a
// CHW who is the Patient herself (a report about her makes her one).
func (c *Converter) chwOf(l *cht.Lineage) *cht.Contact {
	for ; l != nil; l = l.Parent {
		if l.Doc != nil && c.isPracPlace(l.Doc.TypeID()) {
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
	pc := pl.Contact
	if pc.Type == "" { // type a copy: the caller's document stays as it is
		typed := *pc
		typed.Type = "person"
		pc = &typed
	}
	if !c.isPerson(pc) {
		return nil
	}
	return pc
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
	if g, ok := gender(p.Sex); ok {
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
	if c.isOrgType(p.TypeID()) {
		loc.ManagingOrganization = x.refp(c.ref(x, "Organization", p.ID))
	} else if org := c.nearestOrg(p.Parent); org != "" {
		loc.ManagingOrganization = x.refp(c.ref(x, "Organization", org))
	}
	if pid := p.ParentID(); pid != "" && c.parentIsLocation(p.Parent) {
		po := c.ref(x, "Location", pid)
		if po.Identifier == nil {
			// The parent's CHT _id beside the literal reference, for the
			// reverse conversion (PlaceFromLocation).
			po.Identifier = &models.Identifier{System: x.s(c.sys.DocumentID), Value: x.s(pid)}
		}
		loc.PartOf = x.refp(po)
	}
	loc.Position = position(p.Geolocation)
	return loc
}

// parentIsLocation reports whether a place's parent becomes a Location: it
// does unless its hydrated document is of a type mapped without Location.
func (c *Converter) parentIsLocation(l *cht.Lineage) bool {
	if l.Doc == nil || !l.Doc.Hydrated() || !l.Doc.IsContact() {
		return true
	}
	return slices.Contains(c.resources(l.Doc, false), "Location")
}

// position converts a CHT geolocation (checked by cleanContact or
// reportPlan) to a Location.position.
func position(g *cht.Geolocation) *models.LocationPosition {
	if !g.Valid() {
		return nil
	}
	pos := &models.LocationPosition{Longitude: floatNumber(*g.Longitude), Latitude: floatNumber(*g.Latitude)}
	if g.Altitude != nil {
		a := floatNumber(*g.Altitude)
		pos.Altitude = &a
	}
	return pos
}

func floatNumber(f float64) json.Number { return json.Number(strconv.FormatFloat(f, 'f', -1, 64)) }

// geoSuffix makes the CHT-side key of the Location where a report was
// filled in: "<report _id>/geolocation".
const geoSuffix = "/geolocation"

// reportLocation converts a report's geolocation to the Location where
// the report was filled in (referenced from Encounter.location).
func (c *Converter) reportLocation(x *refs, r *cht.Report) *models.Location {
	return &models.Location{
		Id:          c.id(x, "Location", r.ID+geoSuffix),
		Meta:        c.meta(x),
		Identifier:  []models.Identifier{x.identifier(c.sys.Observation, r.ID+geoSuffix, "", nil)},
		Status:      ptr(models.LocationStatusActive),
		Description: x.s("Where CHT report " + r.ID + " was filled in"),
		Mode:        ptr(models.LocationModeInstance),
		Position:    position(r.Geolocation),
	}
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
