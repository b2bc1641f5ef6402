package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonscan"
)

// formIndex is the precomputed form of a FormMapping.
type formIndex struct {
	fm      *FormMapping
	encType models.CodeableConcept
	fields  []fieldIndex
	// typeFrag opens the form's Encounter.type up to its first coding
	// (`,"type":[{"coding":[{…}`); formCoding is set when a second coding
	// {Systems.Form, <form>} follows it.
	typeFrag   []byte
	formCoding bool
}

type fieldIndex struct {
	fm       *FieldMapping
	category []Code
	text     string
	// frag is the JSON of the field's "category" (if any) and "code"
	// members, as the encoder writes them, for the direct writer.
	frag []byte
	// pathFrag is what the direct writer writes after "<report id>/" in
	// the identifier value: the escaped path, the status and frag.
	pathFrag []byte
	// pathQuery is the path query-escaped; qtyTail the members after the
	// value of a quantity field's valueQuantity, and its closing brace.
	pathQuery, qtyTail []byte
}

// fieldFragment encodes the category and code members of a field's
// Observations.
func fieldFragment(f *fieldIndex) []byte {
	o := &models.Observation{}
	for _, k := range f.category {
		o.Category = append(o.Category, models.CodeableConcept{Coding: []models.Coding{coding(k)}})
	}
	o.Code = models.CodeableConcept{Coding: []models.Coding{coding(f.fm.Code)}}
	if f.text != "" {
		o.Code.Text = ptr(f.text)
	}
	var e encoder
	first := true
	e.ccs(&first, `"category":`, o.Category)
	e.key(&first, `"code":`)
	e.codeableConcept(&o.Code)
	return e.b
}

func indexMapping(m *Mapping, c *Converter) map[string]*formIndex {
	out := make(map[string]*formIndex, len(m.Forms))
	for i := range m.Forms {
		fm := &m.Forms[i]
		fi := &formIndex{fm: fm}
		t := Code{System: c.sys.Form, Code: fm.Form}
		switch {
		case fm.EncounterType != nil:
			t = *fm.EncounterType
		case c.cfg.EncounterType != nil:
			t = *c.cfg.EncounterType
		}
		fi.encType = models.CodeableConcept{Coding: []models.Coding{coding(t)}}
		e := encoder{b: []byte(`,"type":[{"coding":[`)}
		e.coding(&fi.encType.Coding[0])
		fi.typeFrag, fi.formCoding = e.b, t.System != c.sys.Form
		for j := range fm.Fields {
			f := &fm.Fields[j]
			cat := f.Category
			if cat == nil {
				cat = fm.Category
			}
			fi.fields = append(fi.fields, fieldIndex{fm: f, category: cat, text: f.Text})
			fx := &fi.fields[len(fi.fields)-1]
			fx.frag = fieldFragment(fx)
			fx.pathFrag = append(append(appendStringBody(nil, f.Path), `"}],"status":"final",`...), fx.frag...)
			fx.pathQuery = appendTokenEscape(nil, f.Path)
			fx.qtyTail = []byte{'}'}
			if f.Type == kindQuantity {
				disp := f.UnitDisplay
				if disp == "" {
					disp = f.Unit
				}
				b := appendString([]byte(`,"unit":`), disp)
				b = appendString(append(b, `,"system":`...), ucumSystem)
				b = appendString(append(b, `,"code":`...), f.Unit)
				fx.qtyTail = append(b, '}')
			}
		}
		out[strings.ToLower(fm.Form)] = fi
	}
	return out
}

func (c *Converter) form(form string) (*formIndex, error) {
	if fi, ok := c.forms[strings.ToLower(form)]; ok {
		return fi, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnmappedForm, form)
}

// reportSubject describes the report's subject.
type reportSubject struct {
	id        string // CHT _id, or shortcode when byCode
	byCode    bool   // id is a patient_id/place_id shortcode
	place     bool   // the subject is a place
	hydrated  *cht.Contact
	reference models.Reference
}

func isShortcode(s string) bool {
	if len(s) == 0 || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// uuidBeside returns the first non-empty string of kind+"_uuid" ("patient"
// or "place") at the top level of r or in its fields, and its path.
func uuidBeside(r *cht.Report, kind string) (string, string) {
	key := kind + "_uuid"
	var top string
	if raw, ok := r.Extra[key]; ok && json.Unmarshal(raw, &top) == nil && top != "" {
		return top, key
	}
	if v, ok := r.Fields.String(key); ok && v != "" {
		return v, "fields." + key
	}
	return "", ""
}

// inputsPlace reports whether the contact an XForm was opened on
// (fields.inputs.contact, which the form fills from the contact it is
// opened on and CHT's hydration does not read) names a place type in its
// type or contact_type.
func (c *Converter) inputsPlace(f cht.Fields) bool {
	t, _ := f.String("inputs.contact.type")
	if t == "contact" {
		t, _ = f.String("inputs.contact.contact_type")
	}
	return t != "" && c.types.IsPlace(t)
}

// subject resolves the subject of a report: the hydrated patient or place,
// else the first subject path of [cht.Report.Subject]. A report without
// one, or whose hydrated subject is not converted to a Patient (persons)
// or Location (places), is a *ConversionError.
func (c *Converter) subject(x *refs, r *cht.Report) (reportSubject, error) {
	var s reportSubject
	field := "patient"
	switch {
	case r.Patient != nil && r.Patient.ID != "":
		s.id, s.hydrated = r.Patient.ID, r.Patient
	case r.Place != nil && r.Place.ID != "" && r.Place.Hydrated():
		s.id, s.hydrated, field = r.Place.ID, r.Place, "place"
	default:
		id, path, ok := r.Subject()
		if !ok {
			return s, &ConversionError{DocID: r.ID, Field: "patient_id", Reason: "the report has no subject (none of patient_id, " +
				"patient_uuid, place_id, place_uuid, at the top level or in fields, nor fields.inputs.contact._id is set); " +
				"map its form as subjectless if its reports are about no one"}
		}
		if strings.HasSuffix(path, "_id") && path != "fields.inputs.contact._id" && !isShortcode(id) {
			// Not digits: no shortcode of CHT's transitions, yet maybe
			// a code a form or an import set, which CHT resolves as a
			// shortcode first (shared-libs/lineage hydration.js,
			// contactUuidByShortcode). A *_uuid member beside it names
			// the document for sure.
			if u, upath := uuidBeside(r, strings.TrimSuffix(strings.TrimPrefix(path, "fields."), "_id")); u != "" {
				id, path = u, upath
			}
		}
		if err := checkText(r.ID, path, id); err != nil {
			return s, err
		}
		s.id = id
		s.place = strings.HasSuffix(path, "place_id") || strings.HasSuffix(path, "place_uuid") ||
			path == "fields.inputs.contact._id" && c.inputsPlace(r.Fields)
		s.byCode = isShortcode(id) && (strings.HasSuffix(path, "patient_id") || strings.HasSuffix(path, "place_id"))
	}
	if err := checkText(r.ID, field, s.id); err != nil {
		err.Field += "._id" // named only on error: this runs for every report
		return s, err
	}
	rt := "Patient"
	if h := s.hydrated; h != nil && h.Hydrated() {
		person, err := c.checkContact(h)
		if err != nil {
			return s, prefixField(field, err)
		}
		s.place = !person
		if s.place {
			rt = "Location"
		}
		if rts := c.resources(h, person); !person && !slices.Contains(rts, rt) {
			return s, &ConversionError{DocID: r.ID, Field: field + "." + typeField(h), Value: h.TypeID(),
				Reason: fmt.Sprintf("a report subject becomes a %s, but this contact type is mapped to %s only (add %s to its resources, or map form %q as subjectless)",
					rt, strings.Join(rts, ", "), rt, r.Form)}
		}
	} else if s.place {
		rt = "Location"
	}
	switch {
	case s.byCode && s.place:
		s.reference = c.shortcodeRef(rt, c.sys.PlaceID, s.id)
	case s.byCode:
		s.reference = c.shortcodeRef(rt, c.sys.PatientID, s.id)
	default:
		s.reference = c.ref(x, rt, s.id)
		if s.reference.Identifier == nil {
			// The CHT _id beside the literal reference, so that the
			// reverse conversion names the subject whatever the
			// strategy (a WritePut id is a hash of it).
			x.subjIdent = models.Identifier{System: x.s(c.sys.DocumentID), Value: x.s(s.id)}
			s.reference.Identifier = &x.subjIdent
		}
	}
	return s, nil
}

// typeField is the member holding a contact's type id.
func typeField(ct *cht.Contact) string {
	if ct.Type == "contact" {
		return "contact_type"
	}
	return "type"
}

func checkReport(r *cht.Report) error {
	if r == nil {
		return &ConversionError{Field: "_id", Reason: "no document"}
	}
	if r.ID == "" {
		return &ConversionError{Field: "_id", Reason: "report has no _id"}
	}
	if r.Form == "" {
		return &ConversionError{DocID: r.ID, Field: "form", Reason: "report has no form"}
	}
	for _, f := range []struct{ key, v string }{{"_id", r.ID}, {"form", r.Form}, {"from", r.From}} {
		if err := checkText(r.ID, f.key, f.v); err != nil {
			return err
		}
	}
	return checkReportedDate(r.ID, r.ReportedDate)
}

// The millisecond timestamps a FHIR dateTime can hold (years 1 to 9999 in
// UTC).
const (
	minFHIRMillis = -62135596800000 // 0001-01-01T00:00:00.000Z
	maxFHIRMillis = 253402300799999 // 9999-12-31T23:59:59.999Z
)

func fhirMillis(ms int64) bool { return ms >= minFHIRMillis && ms <= maxFHIRMillis }

// checkReportedDate rejects a reported_date before 1970 (CHT writes the
// time of submission; a negative value is not one) or after the years a
// FHIR dateTime can hold; cht decodes any millisecond count.
func checkReportedDate(docID string, m cht.Millis) error {
	switch {
	case m < 0:
		return &ConversionError{DocID: docID, Field: "reported_date", Value: int64(m),
			Reason: "timestamp is before 1970, not a submission time"}
	case !fhirMillis(int64(m)):
		return &ConversionError{DocID: docID, Field: "reported_date", Value: int64(m),
			Reason: "timestamp is outside the years 1 to 9999 a FHIR dateTime can hold"}
	}
	return nil
}

// encounter converts a planned report (see reportPlan) to a FHIR
// Encounter: status finished, class from Config.EncounterClass, type from
// the form mapping, subject (a Patient) or location (a Location subject,
// and the place the report was filled in when it has a geolocation),
// participant (the submitting CHW, and the SMS sender's phone),
// serviceProvider (nearest organization in the CHW's hydrated lineage),
// period.start = reported_date (no end is invented) and identifier =
// report _id.
func (c *Converter) encounter(x *refs, r *cht.Report) *models.Encounter {
	enc := &models.Encounter{
		Id:         c.id(x, "Encounter", r.ID),
		Meta:       c.meta(x),
		Identifier: []models.Identifier{x.identifier(c.sys.DocumentID, r.ID, "CHT document ID", nil)},
		Status:     models.EncounterStatusFinished,
		Class:      c.class,
	}
	enc.Class.System, enc.Class.Code = x.s(*c.class.System), x.s(*c.class.Code)
	if c.class.Display != nil {
		enc.Class.Display = x.s(*c.class.Display)
	}
	fi := c.forms[strings.ToLower(r.Form)]
	enc.Type = c.encounterType(x, fi, r.Form)
	if s := x.subj; s != nil {
		if s.place {
			enc.Location = append(enc.Location, models.EncounterLocation{Location: s.reference})
		} else {
			enc.Subject = &s.reference
		}
	}
	if x.geo {
		enc.Location = append(enc.Location, models.EncounterLocation{Location: c.ref(x, "Location", r.ID+geoSuffix)})
	}
	if r.Contact != nil && r.Contact.ID != "" {
		if x.submitter == "Practitioner" {
			enc.Participant = append(enc.Participant, models.EncounterParticipant{Individual: x.refp(c.ref(x, "Practitioner", r.Contact.ID))})
		}
		if org := c.nearestOrg(r.Contact.Parent); org != "" {
			enc.ServiceProvider = x.refp(c.ref(x, "Organization", org))
		}
	}
	if from := strings.TrimSpace(r.From); from != "" {
		enc.Participant = append(enc.Participant, models.EncounterParticipant{Individual: &models.Reference{
			Identifier: &models.Identifier{System: x.s(c.sys.Phone), Value: x.s(from)}, Display: x.s(from)}})
	}
	if r.ReportedDate != 0 {
		enc.Period = &models.Period{Start: x.s(formatDateTime(r.ReportedDate.Time()))}
	}
	return enc
}

// encounterType returns the mapped Encounter.type of a form. When the
// mapping names an encounterType, a second coding {Systems.Form, form}
// identifies the CHT form exactly (several forms may share one type).
func (c *Converter) encounterType(x *refs, fi *formIndex, form string) []models.CodeableConcept {
	if fi == nil {
		t := Code{System: c.sys.Form, Code: form}
		if c.cfg.EncounterType != nil {
			t = *c.cfg.EncounterType
		}
		return []models.CodeableConcept{{Coding: []models.Coding{coding(t)}}}
	}
	cd := fi.encType.Coding[0]
	codings := x.codingSlice(2)[:1]
	codings[0] = models.Coding{System: x.s(*cd.System), Code: x.s(*cd.Code)}
	if cd.Display != nil {
		codings[0].Display = x.s(*cd.Display)
	}
	if *cd.System != c.sys.Form {
		codings = append(codings, models.Coding{System: x.s(c.sys.Form), Code: x.s(form)})
	}
	return []models.CodeableConcept{{Coding: codings}}
}

// formatDateTime formats t as a FHIR dateTime in UTC with milliseconds.
func formatDateTime(t time.Time) string {
	var b [32]byte
	return string(appendDateTime(b[:0], t))
}

// appendDateTime appends t formatted as formatDateTime formats it.
func appendDateTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
}

// obsArena holds one Observation and the elements only it points to, so
// that the Observations of a report take one allocation instead of dozens.
// Strings are copied into the arena so no pointer aliases converter state.
type obsArena struct {
	obs        models.Observation
	identifier [1]models.Identifier
	coding     [1]models.Coding
	category   [1]models.CodeableConcept
	catCoding  [1]models.Coding
	qty        models.Quantity
	num        json.Number
	vcc        models.CodeableConcept
	vcoding    [1]models.Coding
	b          bool
	i          int
	s          string

	id, idValue                              string
	codeSys, codeCode, codeDisplay, codeText string
	catSys, catCode, catDisplay              string
	unit, unitSys, unitCode                  string
	vSys, vCode, vDisplay                    string
}

// obsShared holds the elements that are identical for all Observations of
// one conversion (meta, subject, encounter, performer, effective time). The
// Observations of one call share them; they never alias converter state.
type obsShared struct {
	meta                           models.Meta
	tag                            [1]models.Coding
	subject, encounter             models.Reference
	performer                      [1]models.Reference
	subjIdent, encIdent, perfIdent models.Identifier
	tagSys, tagCode, tagDisplay    string
	subjRef, subjType, encRef      string
	encType, perfRef, perfType     string
	subjISys, subjIVal             string
	encISys, encIVal               string
	perfISys, perfIVal             string
	effective, idSys, codesSys     string
}

func (c *Converter) newShared(effective string) *obsShared {
	sh := &obsShared{tagSys: c.sys.Source, tagCode: "cht", tagDisplay: "Community Health Toolkit",
		effective: effective, idSys: c.sys.Observation, codesSys: c.sys.Codes}
	sh.tag[0] = models.Coding{System: &sh.tagSys, Code: &sh.tagCode, Display: &sh.tagDisplay}
	sh.meta.Tag = sh.tag[:]
	return sh
}

func setStr(dst *string, v string) *string {
	*dst = v
	return dst
}

func optStr(dst *string, v string) *string {
	if v == "" {
		return nil
	}
	*dst = v
	return dst
}

func (c *Converter) observations(x *refs, r *cht.Report) ([]models.Observation, error) {
	fi, err := c.form(r.Form)
	if err != nil {
		return nil, err
	}
	arenas := make([]obsArena, 0, len(fi.fields))
	var effective string
	if r.ReportedDate != 0 {
		effective = formatDateTime(r.ReportedDate.Time())
	}
	sh := c.newShared(effective)
	hasSubj := x.subj != nil
	if hasSubj {
		sh.subject = copyRef(x.subj.reference, &sh.subjRef, &sh.subjType, &sh.subjIdent, &sh.subjISys, &sh.subjIVal)
	}
	sh.encounter = copyRef(c.ref(x, "Encounter", r.ID), &sh.encRef, &sh.encType, &sh.encIdent, &sh.encISys, &sh.encIVal)
	hasPerf := r.Contact != nil && r.Contact.ID != "" && x.submitter != ""
	if hasPerf {
		sh.performer[0] = copyRef(c.ref(x, x.submitter, r.Contact.ID), &sh.perfRef, &sh.perfType, &sh.perfIdent, &sh.perfISys, &sh.perfIVal)
	}
	for i := range fi.fields {
		f := &fi.fields[i]
		v, ok := r.Fields.Field(f.fm.Path)
		if !ok || isEmptyValue(v) {
			continue
		}
		arenas = append(arenas, obsArena{})
		a := &arenas[len(arenas)-1]
		o := &a.obs
		if err := c.setValue(a, f.fm, v); err != nil {
			ce := &ConversionError{DocID: r.ID, Field: "fields." + f.fm.Path, Value: v, Reason: err.Error()}
			if !f.fm.Lenient {
				return nil, ce
			}
			x.warn(ce)
			arenas = arenas[:len(arenas)-1]
			continue
		}
		if c.cfg.Strategy == WritePut {
			a.id = uuidString(c.uuid("Observation", r.ID, f.fm.Path))
			o.Id = &a.id
		}
		o.Meta = &sh.meta
		a.identifier[0] = models.Identifier{System: &sh.idSys, Value: setStr(&a.idValue, r.ID+"/"+f.fm.Path)}
		o.Identifier = a.identifier[:]
		o.Status = models.ObservationStatusFinal
		if len(f.category) == 1 {
			k := f.category[0]
			a.catCoding[0] = models.Coding{System: setStr(&a.catSys, k.System), Code: setStr(&a.catCode, k.Code),
				Display: optStr(&a.catDisplay, k.Display)}
			a.category[0].Coding = a.catCoding[:]
			o.Category = a.category[:]
		} else if len(f.category) > 1 {
			o.Category = make([]models.CodeableConcept, len(f.category))
			for j, k := range f.category {
				o.Category[j].Coding = []models.Coding{coding(k)}
			}
		}
		a.coding[0] = models.Coding{System: setStr(&a.codeSys, f.fm.Code.System), Code: setStr(&a.codeCode, f.fm.Code.Code),
			Display: optStr(&a.codeDisplay, f.fm.Code.Display)}
		o.Code = models.CodeableConcept{Coding: a.coding[:], Text: optStr(&a.codeText, f.text)}
		if hasSubj {
			o.Subject = &sh.subject
		}
		o.Encounter = &sh.encounter
		if effective != "" {
			o.EffectiveDateTime = &sh.effective
		}
		if hasPerf {
			o.Performer = sh.performer[:]
		}
	}
	out := make([]models.Observation, len(arenas))
	for i := range arenas {
		out[i] = arenas[i].obs
	}
	return out, nil
}

// copyRef copies a reference into caller-provided storage.
func copyRef(r models.Reference, ref, typ *string, ident *models.Identifier, isys, ival *string) models.Reference {
	out := models.Reference{}
	if r.Reference != nil {
		out.Reference = setStr(ref, *r.Reference)
	}
	if r.Type != nil {
		out.Type = setStr(typ, *r.Type)
	}
	if r.Identifier != nil {
		*ident = models.Identifier{}
		if r.Identifier.System != nil {
			ident.System = setStr(isys, *r.Identifier.System)
		}
		if r.Identifier.Value != nil {
			ident.Value = setStr(ival, *r.Identifier.Value)
		}
		out.Identifier = ident
	}
	return out
}

func isEmptyValue(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(v) == ""
	}
	return false
}

// number returns v as a JSON number literal.
// exactInt32 parses a JSON number exactly (no rounding through float64):
// "12", "12.000", "1.2e1" and "120e-1" are 12; a non-zero fractional part or
// a value outside the int32 range is not an integer.
func exactInt32(s string) (int32, bool) {
	if i, err := strconv.ParseInt(s, 10, 32); err == nil {
		return int32(i), true
	}
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	mant, exp := s, 0
	if k := strings.IndexAny(s, "eE"); k >= 0 {
		mant = s[:k]
		e, err := strconv.Atoi(strings.TrimPrefix(s[k+1:], "+"))
		if err != nil || e > 1e6 || e < -1e6 {
			// Huge exponents: only a zero mantissa could be an integer
			// in range; treat it like any other out-of-range value.
			if strings.Trim(mant, "0.") == "" {
				return 0, true
			}
			return 0, false
		}
		exp = e
	}
	digits := mant
	if k := strings.IndexByte(mant, '.'); k >= 0 {
		digits = mant[:k] + mant[k+1:]
		exp -= len(mant) - k - 1
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, true
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	if exp < 0 || len(digits)+exp > 10 {
		return 0, false
	}
	if neg {
		digits = "-" + digits
	}
	i, err := strconv.ParseInt(digits+strings.Repeat("0", exp), 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(i), true
}

func number(v any) (json.Number, error) {
	switch v := v.(type) {
	case json.Number:
		s := strings.TrimSpace(string(v))
		if !jsonscan.ValidNumber(s) {
			return "", errors.New("not a number")
		}
		if f, err := strconv.ParseFloat(s, 64); err != nil && math.IsInf(f, 0) {
			return "", fmt.Errorf("%s is not a finite number", s)
		}
		return json.Number(s), nil
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return "", fmt.Errorf("%v is not a finite number", v)
		}
		return json.Number(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case int:
		return json.Number(strconv.Itoa(v)), nil
	case int64:
		return json.Number(strconv.FormatInt(v, 10)), nil
	case string:
		s := strings.TrimSpace(v)
		if jsonscan.ValidNumber(s) {
			return number(json.Number(s))
		}
		// XForms store numbers as strings; accept "+5", ".5", "5." too.
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", errors.New("not a number")
		}
		return json.Number(strconv.FormatFloat(f, 'f', -1, 64)), nil
	}
	return "", fmt.Errorf("want a number, got %s", kindOf(v))
}

func kindOf(v any) string {
	switch v.(type) {
	case map[string]any, cht.Fields:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// parseBool accepts booleans, "true"/"false", "yes"/"no" (any case) and the
// field's configured true/false values.
func parseBool(fm *FieldMapping, v any) (bool, error) {
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		s := strings.TrimSpace(v)
		switch {
		case fm.TrueValue != "" && s == fm.TrueValue:
			return true, nil
		case fm.FalseValue != "" && s == fm.FalseValue:
			return false, nil
		}
		switch strings.ToLower(s) {
		case "true", "yes":
			return true, nil
		case "false", "no":
			return false, nil
		}
		return false, errors.New("not a boolean (want yes/no/true/false)")
	}
	return false, fmt.Errorf("want a boolean, got %s", kindOf(v))
}

func stringOf(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return string(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("want a string, got %s", kindOf(v))
}

// xformTime is the FHIR time of a CHT time value: hh:mm (given :00
// seconds, which FHIR's time requires) or hh:mm:ss[.fff] (see isTime), or
// such a time followed by Z or a UTC offset ±hh:mm, as an XForm stores
// every time answer: enketo-core src/js/types.js time.convert appends the
// device's offset (hh:mm:ss.sss±hh:mm). FHIR's time has no zone: the time
// as entered is kept and the offset dropped.
func xformTime(s string) (string, bool) {
	if n := len(s); n > 6 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':' &&
		twoDigits(s[n-5:n-3], 23) && twoDigits(s[n-2:], 59) {
		s = s[:n-6]
	} else if strings.HasSuffix(s, "Z") {
		s = s[:n-1]
	}
	if !isTime(s) {
		return "", false
	}
	if len(s) == 5 {
		s += ":00"
	}
	return s, true
}

// isTime reports whether s is hh:mm (written with :00 seconds) or a FHIR
// time as FHIR R4's pattern has it
// (http://hl7.org/fhir/R4/datatypes.html#time): hh:mm:ss[.f+], hours 00
// to 23, minutes and seconds 00 to 59 (the pattern's leap second 60 is
// refused, as time.Parse refused it), two-digit hours and a fraction
// after a full stop only (time.Parse also takes "9:30:00" and a comma).
func isTime(s string) bool {
	if len(s) < 5 || s[2] != ':' || !twoDigits(s[:2], 23) || !twoDigits(s[3:5], 59) {
		return false
	}
	if len(s) == 5 {
		return true
	}
	if len(s) < 8 || s[5] != ':' || !twoDigits(s[6:8], 59) {
		return false
	}
	f := s[8:]
	if f == "" {
		return true
	}
	if len(f) < 2 || f[0] != '.' {
		return false
	}
	for i := 1; i < len(f); i++ {
		if f[i] < '0' || f[i] > '9' {
			return false
		}
	}
	return true
}

// inRange checks a number against the field's min and max.
func inRange(fm *FieldMapping, n json.Number) error {
	if fm.Min == nil && fm.Max == nil {
		return nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return fmt.Errorf("%s is not a number", n)
	}
	if fm.Min != nil && f < *fm.Min {
		return fmt.Errorf("below the minimum %v", *fm.Min)
	}
	if fm.Max != nil && f > *fm.Max {
		return fmt.Errorf("above the maximum %v", *fm.Max)
	}
	return nil
}

// obsValue is the checked value of a mapped field (fieldValue): kind is a
// pv* constant; a quantity (of a quantity or decimal field) is num, a
// string, time or dateTime (or date) s, a code code.
type obsValue struct {
	kind int
	s    string
	num  json.Number
	i    int
	b    bool
	code Code
}

func (c *Converter) setValue(a *obsArena, fm *FieldMapping, v any) error {
	fv, err := fieldValue(fm, v)
	if err != nil {
		return err
	}
	o := &a.obs
	switch fv.kind {
	case pvQuantity:
		a.num = fv.num
		a.qty.Value = &a.num
		if fm.Type == kindQuantity {
			disp := fm.UnitDisplay
			if disp == "" {
				disp = fm.Unit
			}
			a.qty.Unit = setStr(&a.unit, disp)
			a.qty.System = setStr(&a.unitSys, ucumSystem)
			a.qty.Code = setStr(&a.unitCode, fm.Unit)
		}
		o.ValueQuantity = &a.qty
	case pvInteger:
		a.i = fv.i
		o.ValueInteger = &a.i
	case pvBoolean:
		a.b = fv.b
		o.ValueBoolean = &a.b
	case pvString:
		a.s = fv.s
		o.ValueString = &a.s
	case pvCode:
		k := fv.code
		a.vcoding[0] = models.Coding{System: setStr(&a.vSys, k.System), Code: setStr(&a.vCode, k.Code),
			Display: optStr(&a.vDisplay, k.Display)}
		a.vcc.Coding = a.vcoding[:]
		o.ValueCodeableConcept = &a.vcc
	case pvDateTime:
		a.s = fv.s
		o.ValueDateTime = &a.s
	case pvTime:
		a.s = fv.s
		o.ValueTime = &a.s
	}
	return nil
}

// fieldValue converts and checks the value v of the mapped field fm.
func fieldValue(fm *FieldMapping, v any) (obsValue, error) {
	var fv obsValue
	if s, ok := v.(string); ok {
		if p := textProblem(s); p != "" {
			return fv, errors.New(p)
		}
	}
	switch fm.Type {
	case kindQuantity, kindDecimal:
		n, err := number(v)
		if err != nil {
			return fv, err
		}
		if err := inRange(fm, n); err != nil {
			return fv, err
		}
		fv.kind, fv.num = pvQuantity, n
	case kindInteger:
		n, err := number(v)
		if err != nil {
			return fv, err
		}
		i, ok := exactInt32(string(n))
		if !ok {
			return fv, errors.New("not a 32-bit integer")
		}
		if err := inRange(fm, n); err != nil {
			return fv, err
		}
		fv.kind, fv.i = pvInteger, int(i)
	case kindBoolean:
		b, err := parseBool(fm, v)
		if err != nil {
			return fv, err
		}
		fv.kind, fv.b = pvBoolean, b
	case kindString:
		s, err := stringOf(v)
		if err != nil {
			return fv, err
		}
		fv.kind, fv.s = pvString, s
	case kindCodeable:
		s, err := stringOf(v)
		if err != nil {
			return fv, err
		}
		s = strings.TrimSpace(s)
		k, ok := fm.Values[s]
		if !ok {
			if fm.ValueSystem == "" {
				return fv, errors.New("not in the coding table")
			}
			if strings.ContainsAny(s, " \t\r\n") {
				// A select_multiple answer ("fever cough"): several
				// concepts, which one CodeableConcept cannot hold (its
				// codings are translations of one concept).
				return fv, errors.New("several answers (select_multiple); map the field as a string or one boolean per option")
			}
			k = Code{System: fm.ValueSystem, Code: s}
		}
		fv.kind, fv.code = pvCode, k
	case kindDateTime, kindDate:
		var s string
		switch t := v.(type) {
		case json.Number, float64, int64, int:
			n, err := number(t)
			if err != nil {
				return fv, err
			}
			ms, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				return fv, fmt.Errorf("%s is not a timestamp in milliseconds", n)
			}
			if !fhirMillis(ms) {
				return fv, fmt.Errorf("timestamp %d is outside the years 1 to 9999 a FHIR %s can hold", ms, fm.Type)
			}
			s = formatDateTime(cht.Millis(ms).Time())
			if fm.Type == kindDate {
				s = s[:10]
			}
		case string:
			var ok bool
			if fm.Type == kindDate {
				s, ok = fhirDate(t)
			} else {
				s, ok = fhirDateTime(t)
			}
			if !ok {
				return fv, fmt.Errorf("not a valid FHIR %s", fm.Type)
			}
		default:
			return fv, fmt.Errorf("want a date string or timestamp, got %s", kindOf(v))
		}
		fv.kind, fv.s = pvDateTime, s
	case kindTime:
		s, err := stringOf(v)
		if err != nil {
			return fv, err
		}
		t, ok := xformTime(strings.TrimSpace(s))
		if !ok {
			return fv, errors.New("not a valid time (HH:MM[:SS[.fff]], optionally with a UTC offset)")
		}
		fv.kind, fv.s = pvTime, t
	default:
		return fv, fmt.Errorf("unknown type %q", fm.Type)
	}
	return fv, nil
}
