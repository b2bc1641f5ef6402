package fhir

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// IsFromCHT reports whether meta carries the CHT source tag this converter
// writes, so flows can skip resources that originated in CHT (loop
// prevention).
func (c *Converter) IsFromCHT(meta *models.Meta) bool {
	if meta == nil {
		return false
	}
	for _, t := range meta.Tag {
		if t.System != nil && t.Code != nil && *t.System == c.sys.Source && *t.Code == "cht" {
			return true
		}
	}
	return false
}

func identifierValue(ids []models.Identifier, system string) string {
	for _, id := range ids {
		if id.System != nil && id.Value != nil && *id.System == system && *id.Value != "" {
			return *id.Value
		}
	}
	return ""
}

// PersonFromPatient converts a FHIR Patient to a CHT person document ready
// for POST /api/v1/people (or /api/v1/person): name (HumanName.text, else
// given and family joined in the configured order), sex (male, female,
// other, unknown),
// date_of_birth (full dates only), phone and phone_alternate (telecoms of
// system phone or sms, or without a system when the value is a phone
// number, as OpenMRS sends them), date_of_death, external_id and
// patient_id (the identifiers with Systems.ExternalID and
// Systems.PatientID; never the server's logical id), _id when the
// Patient carries a Systems.DocumentID identifier (an existing CHT person),
// type from Inbound.PersonType and parent from Inbound.ParentPlace.
func (c *Converter) PersonFromPatient(p *models.Patient) (*cht.Contact, error) {
	if p == nil {
		return nil, required("Patient", "Patient")
	}
	name := c.nameOf(p.Name)
	if name == "" {
		return nil, required("Patient", "Patient.name")
	}
	person := &cht.Contact{Name: name, Type: "person"}
	if t := c.cfg.Inbound.PersonType; t != "person" {
		person.Type, person.ContactType = "contact", t
	}
	person.ID = identifierValue(p.Identifier, c.sys.DocumentID)
	if p.Gender != nil {
		switch *p.Gender {
		case models.AdministrativeGenderMale:
			person.Sex = "male"
		case models.AdministrativeGenderFemale:
			person.Sex = "female"
		case models.AdministrativeGenderOther:
			person.Sex = "other"
		case models.AdministrativeGenderUnknown:
			person.Sex = "unknown"
		}
	}
	if p.BirthDate != nil {
		if d, ok := fhirDate(*p.BirthDate); ok && len(d) == 10 {
			person.DateOfBirth = d
		} else if !ok {
			return nil, invalid("Patient", "Patient.birthDate", fmt.Sprintf("%q is not a valid date", *p.BirthDate))
		}
	}
	for _, t := range p.Telecom {
		if t.Value != nil && (t.System != nil && (*t.System == models.ContactPointSystemPhone || *t.System == models.ContactPointSystemSms) ||
			t.System == nil && looksLikePhone(*t.Value)) {
			if person.Phone == "" {
				person.Phone = strings.TrimSpace(*t.Value)
			} else if person.PhoneAlternate == "" {
				person.PhoneAlternate = strings.TrimSpace(*t.Value)
			}
		}
	}
	if p.DeceasedDateTime != nil {
		if _, err := reportTime("Patient", "Patient.deceasedDateTime", *p.DeceasedDateTime); err != nil {
			return nil, err
		}
		person.DateOfDeath = *p.DeceasedDateTime
	}
	// Identifiers only: a server-assigned logical id is never a CHT value.
	person.ExternalID = identifierValue(p.Identifier, c.sys.ExternalID)
	person.PatientID = identifierValue(p.Identifier, c.sys.PatientID)
	if pp := c.cfg.Inbound.ParentPlace; pp != "" {
		person.Parent = cht.NewLineage(pp)
	}
	return person, nil
}

// looksLikePhone reports whether v, a telecom value without a system, is
// a phone number: digits (6 to 15, E.164's most), optionally a leading +,
// and spaces, dashes, dots or parentheses between them. OpenMRS's FHIR
// module sends a person attribute as a telecom without a system unless a
// contact point map names one (openmrs-module-fhir2
// TelecomTranslatorImpl), which R4 allows no reader to guess in general
// (cpt-2); a phone number is what a CHT person's phone holds.
func looksLikePhone(v string) bool {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "+")
	digits := 0
	for _, r := range v {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return false
		}
	}
	return digits >= 6 && digits <= 15
}

func (c *Converter) nameOf(names []models.HumanName) string {
	pick := -1
	for i, n := range names {
		if n.Use != nil && (*n.Use == models.NameUseOld || *n.Use == models.NameUseMaiden) {
			continue
		}
		if pick < 0 || (n.Use != nil && *n.Use == models.NameUseOfficial) {
			pick = i
		}
	}
	if pick < 0 {
		return ""
	}
	n := names[pick]
	if n.Text != nil && strings.TrimSpace(*n.Text) != "" {
		return strings.Join(strings.Fields(*n.Text), " ")
	}
	parts := append([]string(nil), n.Given...)
	if n.Family != nil {
		if c.cfg.NameSplit == NameFamilyFirst {
			parts = append([]string{*n.Family}, parts...)
		} else {
			parts = append(parts, *n.Family)
		}
	}
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// subjectField returns the submission key and value naming the CHT
// subject of a report made from FHIR resources: the _id of the person
// (key Inbound.PatientField) or place (key place_id) from patient's or the
// reference's Systems.DocumentID identifier, else a shortcode from a
// Systems.PatientID (key patient_id) or Systems.PlaceID (key place_id)
// identifier. These are subject keys CHT reads (cht-core
// shared-libs/registration-utils getSubjectIds: patient_id, patient_uuid,
// place_id, place_uuid). Both "" when none is found.
func (c *Converter) subjectField(ref *models.Reference, patient *models.Patient) (key, value string) {
	if patient != nil {
		if v := identifierValue(patient.Identifier, c.sys.DocumentID); v != "" {
			return c.cfg.Inbound.PatientField, v
		}
		if v := identifierValue(patient.Identifier, c.sys.PatientID); v != "" {
			return "patient_id", v
		}
	}
	if ref == nil || ref.Identifier == nil {
		return "", ""
	}
	ids := []models.Identifier{*ref.Identifier}
	switch {
	case identifierValue(ids, c.sys.DocumentID) != "":
		if isLocationRef(ref) {
			return "place_id", *ref.Identifier.Value
		}
		return c.cfg.Inbound.PatientField, *ref.Identifier.Value
	case identifierValue(ids, c.sys.PatientID) != "":
		return "patient_id", *ref.Identifier.Value
	case identifierValue(ids, c.sys.PlaceID) != "":
		return "place_id", *ref.Identifier.Value
	}
	return "", ""
}

// isLocationRef reports whether r points at a Location (its type, or a
// literal reference Location/<id>).
func isLocationRef(r *models.Reference) bool {
	if r.Type != nil {
		return *r.Type == "Location"
	}
	return referenceID(r, "Location") != ""
}

// subjectError is the error for a subject without a CHT identifier.
func (c *Converter) subjectError(rt, expr string) error {
	return invalid(rt, expr, "no CHT identifier on the subject (an identifier with system "+c.sys.DocumentID+", "+
		c.sys.PatientID+" or "+c.sys.PlaceID+")")
}

// SubmissionFromObservations converts Observations (and optionally their
// Encounter, subject Patient and the Location the report was filled in)
// to a CHT report through the mapping reversed: each Observation's code
// selects the field (its path becomes the record's key) and the value is
// converted back (quantities and decimals to numbers, codings through the
// value table, booleans to trueValue/falseValue or JSON booleans, ...). A
// quantity must be in the field's unit (system http://unitsofmeasure.org
// and code equal to the mapped unit, or, without system and code, a unit
// text equal to the mapped unit or unitDisplay) and may not have a
// comparator.
//
// The form is form if not empty, else the mapped form whose Encounter type
// matches enc.type, else Inbound.ObservationForm, else, without an
// Encounter, the one mapped form that maps every Observation's code. The subject is named by
// identifier: the Patient's or the subject reference's CHT _id (key
// Inbound.PatientField, or place_id for a Location), else its patient_id
// or place_id shortcode. The converter's own output carries these
// identifiers for every write strategy, so it converts back without a
// Patient. All Observations must have the same subject as each other and
// as the Encounter (same identifier, or same literal reference when there
// is no identifier); an Observation with another subject is an error
// naming its subject. ReportedDate is the Encounter's period.start or the
// first Observation's effective time (effectiveDateTime, effectiveInstant,
// or effectivePeriod.start, else its end): a FHIR date (YYYY, YYYY-MM,
// YYYY-MM-DD: the start of that period in UTC) or dateTime with a zone;
// any other value is an error naming the element. An Encounter or
// Observation with status entered-in-error or cancelled is an error naming
// its status: a retracted value is not converted. A value outside the mapped field's min
// or max is an error naming Observation.value[x], as in the CHT → FHIR
// direction. From is the phone of an Encounter.participant
// with a Systems.Phone identifier (the SMS sender); Geolocation is the
// position of the Location in locations that carries the
// Systems.Observation identifier "<report _id>/geolocation" (Locations
// made from CHT places are skipped, any other Location is an error). An
// Observation whose code is not mapped for the
// form is an error naming Observation.code.
func (c *Converter) SubmissionFromObservations(form string, enc *models.Encounter, obs []models.Observation, patient *models.Patient, locations ...*models.Location) (*cht.Record, error) {
	if err := retracted(enc, obs); err != nil {
		return nil, err
	}
	fi, err := c.inboundForm(form, enc, obs)
	if err != nil {
		return nil, err
	}
	sub := &cht.Record{Form: fi.fm.Form, Fields: make(map[string]any, len(obs)+1)}
	var subj *models.Reference
	subjExpr := ""
	if enc != nil {
		subj = enc.Subject
		if subj != nil {
			subjExpr = "Encounter.subject"
		}
		if enc.Period != nil && enc.Period.Start != nil {
			t, err := reportTime("Encounter", "Encounter.period.start", *enc.Period.Start)
			if err != nil {
				return nil, err
			}
			sub.ReportedDate = t
		}
		for _, p := range enc.Participant {
			if p.Individual != nil && p.Individual.Identifier != nil && sub.From == "" {
				sub.From = identifierValue([]models.Identifier{*p.Individual.Identifier}, c.sys.Phone)
			}
		}
	}
	for i := range obs {
		o := &obs[i]
		expr := "Observation"
		if len(obs) > 1 {
			expr = "Bundle.entry.resource.where(resourceType='Observation')[" + strconv.Itoa(i) + "]"
		}
		switch {
		case o.Subject == nil:
		case subj == nil:
			subj, subjExpr = o.Subject, expr+".subject"
		case subjectKey(o.Subject) != subjectKey(subj):
			// One submission is about one patient.
			return nil, invalid("Observation", expr+".subject", "subject differs from "+subjExpr)
		}
		t, err := effectiveTime(o, expr)
		if err != nil {
			return nil, err
		}
		if sub.ReportedDate.IsZero() {
			sub.ReportedDate = t
		}
		f := fi.byCode(o.Code)
		if f == nil {
			return nil, invalid("Observation", expr+".code", fmt.Sprintf("code is not mapped for form %q", fi.fm.Form))
		}
		v, err := c.reverseValue(f, o)
		if err != nil {
			return nil, invalid("Observation", expr+".value[x]", fmt.Sprintf("field %q: %v", f.Path, err))
		}
		if _, dup := sub.Fields[f.Path]; dup {
			return nil, invalid("Observation", expr+".code", fmt.Sprintf("field %q given twice", f.Path))
		}
		sub.Fields[f.Path] = v
	}
	if subj == nil && enc != nil {
		// A report about a place: the place is the Encounter's location.
		for i := range enc.Location {
			if k, _ := c.subjectField(&enc.Location[i].Location, nil); k != "" {
				subj, subjExpr = &enc.Location[i].Location, "Encounter.location"
				break
			}
		}
	}
	g, err := c.reportGeolocation(enc, locations)
	if err != nil {
		return nil, err
	}
	sub.Geolocation = g
	if fi.fm.Subjectless {
		return sub, nil
	}
	key, id := c.subjectField(subj, patient)
	if key == "" {
		expr := "Observation.subject"
		if subjExpr != "" {
			expr = subjExpr
		}
		rt, _, _ := strings.Cut(expr, ".")
		if strings.HasPrefix(rt, "Bundle") {
			rt = "Observation"
		}
		return nil, c.subjectError(rt, expr)
	}
	sub.Fields[key] = id
	return sub, nil
}

// retracted refuses Observations that are no valid data: an Encounter, or
// an Observation, whose status is entered-in-error or cancelled. Both
// statuses are modifiers in R4: entered-in-error means "this electronic
// record should never have existed" and the resource "should not be
// treated as valid"; a cancelled Observation "is unavailable because the
// measurement was not started or not completed", a cancelled Encounter
// did not take place (http://hl7.org/fhir/R4/observation.html#status,
// http://hl7.org/fhir/R4/valueset-observation-status.html,
// http://hl7.org/fhir/R4/valueset-encounter-status.html). Writing their
// values would make a retraction live CHT data, so the issue names the
// status and says that a retracted value is not written.
func retracted(enc *models.Encounter, obs []models.Observation) error {
	const why = "the value is retracted, not valid data: a retracted value is not written to CHT " +
		"(change or delete the report in CHT if an earlier version was written)"
	if enc != nil && (enc.Status == models.EncounterStatusEnteredInError || enc.Status == models.EncounterStatusCancelled) {
		return &InvalidResourceError{ResourceType: "Encounter", Issues: []Issue{{Expression: "Encounter.status",
			Reason: fmt.Sprintf("status %q: the Encounter's Observations are not written: %s", enc.Status.Code(), why),
			Code:   models.IssueTypeBusinessRule}}}
	}
	for i := range obs {
		if st := obs[i].Status; st == models.ObservationStatusEnteredInError || st == models.ObservationStatusCancelled {
			expr := "Observation.status"
			if len(obs) > 1 {
				expr = "Bundle.entry.resource.where(resourceType='Observation')[" + strconv.Itoa(i) + "].status"
			}
			return &InvalidResourceError{ResourceType: "Observation", Issues: []Issue{{Expression: expr,
				Reason: fmt.Sprintf("status %q: %s", st.Code(), why), Code: models.IssueTypeBusinessRule}}}
		}
	}
	return nil
}

// effectiveTime returns the time of the Observation o (at expr) as a
// report's time: its effective[x] (R4 Observation.effective[x], "the
// clinically relevant time/time-period for observation"): effectiveDateTime,
// effectiveInstant, or effectivePeriod's start (else its end, when the
// period has only an end). The zero time when o has none of them. A value
// that is not a FHIR dateTime (an instant: a dateTime with seconds and
// zone) is an error naming the element; a period's end is checked too.
func effectiveTime(o *models.Observation, expr string) (time.Time, error) {
	switch {
	case o.EffectiveDateTime != nil:
		return reportTime("Observation", expr+".effectiveDateTime", *o.EffectiveDateTime)
	case o.EffectiveInstant != nil:
		if v := strings.TrimSpace(*o.EffectiveInstant); !isDateTime(v) {
			return time.Time{}, &InvalidResourceError{ResourceType: "Observation", Issues: []Issue{{Expression: expr + ".effectiveInstant",
				Code: models.IssueTypeValue, Reason: fmt.Sprintf("%q is not a FHIR instant (YYYY-MM-DDThh:mm:ss with a zone)", *o.EffectiveInstant)}}}
		}
		return reportTime("Observation", expr+".effectiveInstant", *o.EffectiveInstant)
	case o.EffectivePeriod != nil:
		p := o.EffectivePeriod
		if err := checkDates("Observation", "", nil, expr+".effectivePeriod", p); err != nil {
			return time.Time{}, err
		}
		switch {
		case p.Start != nil:
			return reportTime("Observation", expr+".effectivePeriod.start", *p.Start)
		case p.End != nil:
			return reportTime("Observation", expr+".effectivePeriod.end", *p.End)
		}
	}
	return time.Time{}, nil
}

// reportGeolocation returns the position of the Location (one of locs)
// where the report was filled in, as a CHT geolocation.
func (c *Converter) reportGeolocation(enc *models.Encounter, locs []*models.Location) (*cht.Geolocation, error) {
	want := "<report _id>" + geoSuffix
	if enc != nil {
		if id := identifierValue(enc.Identifier, c.sys.DocumentID); id != "" {
			want = id + geoSuffix
		}
	}
	var out *cht.Geolocation
	for i, l := range locs {
		if l == nil {
			continue
		}
		expr := "Location"
		if len(locs) > 1 {
			expr = "Bundle.entry.resource.where(resourceType='Location')[" + strconv.Itoa(i) + "]"
		}
		if identifierValue(l.Identifier, c.sys.DocumentID) != "" {
			continue // a CHT place (the subject or its lineage), not where the report was filled in
		}
		v := identifierValue(l.Identifier, c.sys.Observation)
		if !strings.HasSuffix(v, geoSuffix) || (!strings.HasPrefix(want, "<") && v != want) {
			return nil, invalid("Location", expr+".identifier",
				"not the Location the report was filled in (want identifier "+c.sys.Observation+"|"+want+")")
		}
		if out != nil {
			return nil, invalid("Location", expr, "a second Location where the report was filled in")
		}
		p := l.Position
		if p == nil {
			return nil, required("Location", expr+".position")
		}
		g, err := geolocationOf(p, expr)
		if err != nil {
			return nil, err
		}
		out = g
	}
	return out, nil
}

// reportTime parses s, the FHIR R4 date or dateTime (fhirDateTime) at
// expr of a resource of type rt, as a report's time: a date YYYY, YYYY-MM
// or YYYY-MM-DD is the start of that year, month or day in UTC, a dateTime
// keeps its zone. Anything else is an error naming expr: a date that
// cannot be read is refused, not replaced by the time of writing.
func reportTime(rt, expr, s string) (time.Time, error) {
	v, ok := fhirDateTime(s)
	if ok {
		layout := time.RFC3339Nano
		switch len(v) {
		case 4:
			layout = "2006"
		case 7:
			layout = "2006-01"
		case 10:
			layout = time.DateOnly
		}
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, &InvalidResourceError{ResourceType: rt, Issues: []Issue{{Expression: expr, Code: models.IssueTypeValue,
		Reason: fmt.Sprintf("%q is not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a zone)", s)}}}
}

// checkDates checks that the dateTime at expr (when set) and the start
// and end of the period at periodExpr (when set) are FHIR R4 dates or
// dateTimes, naming the element of the first that is not.
func checkDates(rt, expr string, dt *string, periodExpr string, p *models.Period) error {
	check := func(expr string, v *string) error {
		if v == nil {
			return nil
		}
		_, err := reportTime(rt, expr, *v)
		return err
	}
	if err := check(expr, dt); err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	if err := check(periodExpr+".start", p.Start); err != nil {
		return err
	}
	return check(periodExpr+".end", p.End)
}

// subjectKey identifies the target of a subject reference: its logical
// identifier if it has one, else its literal reference.
func subjectKey(r *models.Reference) string {
	if id := r.Identifier; id != nil {
		var sys, val string
		if id.System != nil {
			sys = *id.System
		}
		if id.Value != nil {
			val = *id.Value
		}
		return "identifier:" + sys + "|" + val
	}
	if r.Reference != nil {
		return "reference:" + *r.Reference
	}
	return ""
}

func (c *Converter) inboundForm(form string, enc *models.Encounter, obs []models.Observation) (*formIndex, error) {
	if form != "" {
		return c.form(form)
	}
	if enc != nil {
		// The CHT form coding identifies the form exactly.
		for _, t := range enc.Type {
			for _, cd := range t.Coding {
				if cd.System != nil && cd.Code != nil && *cd.System == c.sys.Form {
					if fi, ok := c.forms[strings.ToLower(*cd.Code)]; ok {
						return fi, nil
					}
				}
			}
		}
		// Else a mapped encounterType shared by no other form.
		var match *formIndex
		for _, t := range enc.Type {
			for _, cd := range t.Coding {
				if cd.System == nil || cd.Code == nil {
					continue
				}
				for _, fi := range c.forms {
					et := fi.encType.Coding[0]
					if fi.fm.EncounterType != nil && *et.System == *cd.System && *et.Code == *cd.Code {
						if match != nil && match != fi {
							return nil, invalid("Encounter", "Encounter.type", fmt.Sprintf("type %s|%s is mapped by several forms; name the form", *cd.System, *cd.Code))
						}
						match = fi
					}
				}
			}
		}
		if match != nil {
			return match, nil
		}
	}
	if f := c.cfg.Inbound.ObservationForm; f != "" {
		return c.form(f)
	}
	if enc == nil && len(obs) > 0 {
		// Observations alone: the one mapped form whose fields have all
		// their codes.
		var match *formIndex
		for _, fi := range c.forms {
			all := true
			for i := range obs {
				if fi.byCode(obs[i].Code) == nil {
					all = false
					break
				}
			}
			if all {
				if match != nil {
					return nil, invalid("Observation", "Observation.code", "the codes are mapped by several forms; name the form")
				}
				match = fi
			}
		}
		if match != nil {
			return match, nil
		}
	}
	if enc == nil {
		return nil, invalid("Observation", "Observation.code", "no Encounter names the form, no form was given and no Inbound.ObservationForm is configured")
	}
	return nil, invalid("Encounter", "Encounter.type", "does not identify a mapped form and no Inbound.ObservationForm is configured")
}

func (fi *formIndex) byCode(cc models.CodeableConcept) *FieldMapping {
	for _, cd := range cc.Coding {
		if cd.System == nil || cd.Code == nil {
			continue
		}
		for i := range fi.fields {
			f := fi.fields[i].fm
			if f.Code.System == *cd.System && f.Code.Code == *cd.Code {
				return f
			}
		}
	}
	return nil
}

// checkUnit checks that q is in the field's unit: UCUM system and code
// equal to the mapped unit, or, without code and system, a unit text equal
// to the mapped unit or its display. A quantity without unit is rejected:
// 150 could be kg or lb.
func checkUnit(f *FieldMapping, q *models.Quantity) error {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	code, sys, unit := str(q.Code), str(q.System), str(q.Unit)
	switch {
	case code != "" || sys != "":
		if sys != ucumSystem {
			return fmt.Errorf("valueQuantity.system %q, want %q", sys, ucumSystem)
		}
		if code != f.Unit {
			return fmt.Errorf("unit %q, want %q", code, f.Unit)
		}
	case unit == "":
		return fmt.Errorf("valueQuantity has no unit, want %q", f.Unit)
	case unit != f.Unit && (f.UnitDisplay == "" || unit != f.UnitDisplay):
		return fmt.Errorf("unit %q, want %q", unit, f.Unit)
	}
	return nil
}

func (c *Converter) reverseValue(f *FieldMapping, o *models.Observation) (any, error) {
	switch f.Type {
	case kindQuantity, kindDecimal:
		q := o.ValueQuantity
		if q == nil || q.Value == nil {
			return nil, fmt.Errorf("want valueQuantity with a value")
		}
		if q.Comparator != nil {
			return nil, fmt.Errorf("valueQuantity.comparator %q is not supported (the CHT field holds an exact number)", q.Comparator.Code())
		}
		if f.Type == kindQuantity {
			if err := checkUnit(f, q); err != nil {
				return nil, err
			}
		}
		// The mapping's bounds, as the CHT → FHIR conversion checks them
		// (fieldValue).
		if err := inRange(f, *q.Value); err != nil {
			return nil, err
		}
		return *q.Value, nil
	case kindInteger:
		if o.ValueInteger == nil {
			return nil, fmt.Errorf("want valueInteger")
		}
		if err := inRange(f, json.Number(strconv.Itoa(*o.ValueInteger))); err != nil {
			return nil, err
		}
		return *o.ValueInteger, nil
	case kindBoolean:
		if o.ValueBoolean == nil {
			return nil, fmt.Errorf("want valueBoolean")
		}
		if f.TrueValue != "" {
			if *o.ValueBoolean {
				return f.TrueValue, nil
			}
			return f.FalseValue, nil
		}
		return *o.ValueBoolean, nil
	case kindString:
		if o.ValueString == nil {
			return nil, fmt.Errorf("want valueString")
		}
		return *o.ValueString, nil
	case kindCodeable:
		if o.ValueCodeableConcept == nil {
			return nil, fmt.Errorf("want valueCodeableConcept")
		}
		for _, cd := range o.ValueCodeableConcept.Coding {
			if cd.System == nil || cd.Code == nil {
				continue
			}
			for v, k := range f.Values {
				if k.System == *cd.System && k.Code == *cd.Code {
					return v, nil
				}
			}
			if f.ValueSystem != "" && *cd.System == f.ValueSystem {
				return *cd.Code, nil
			}
		}
		return nil, fmt.Errorf("no coding in the value table")
	case kindDateTime, kindDate:
		if o.ValueDateTime == nil {
			return nil, fmt.Errorf("want valueDateTime")
		}
		if _, ok := fhirDateTime(*o.ValueDateTime); !ok {
			return nil, fmt.Errorf("valueDateTime is not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a zone)")
		}
		return *o.ValueDateTime, nil
	case kindTime:
		if o.ValueTime == nil {
			return nil, fmt.Errorf("want valueTime")
		}
		if v := *o.ValueTime; len(v) < 8 || !isTime(v) {
			return nil, fmt.Errorf("valueTime is not a FHIR time (hh:mm:ss)")
		}
		return *o.ValueTime, nil
	}
	return nil, fmt.Errorf("unknown type %q", f.Type)
}

// SubmissionFromServiceRequest converts a ServiceRequest (e.g. a referral or
// a lost-to-follow-up request) to a records API submission of form
// Inbound.TaskForm carrying the CHT patient _id (key Inbound.PatientField)
// and the request's id (key "fhir_service_request"), which makes CHT raise a
// task for the CHW. Only active requests are converted, and not one with
// doNotPerform true (an error naming ServiceRequest.doNotPerform). patient
// may be nil when the subject reference carries the CHT identifier.
func (c *Converter) SubmissionFromServiceRequest(sr *models.ServiceRequest, patient *models.Patient) (*cht.Record, error) {
	if sr == nil {
		return nil, required("ServiceRequest", "ServiceRequest")
	}
	if sr.Status != models.RequestStatusActive {
		return nil, &InvalidResourceError{ResourceType: "ServiceRequest", Issues: []Issue{{Expression: "ServiceRequest.status",
			Reason: fmt.Sprintf("status %q raises no task (want active)", sr.Status.Code()), Code: models.IssueTypeValue}}}
	}
	// doNotPerform is a modifier (R4 ServiceRequest.doNotPerform: "the
	// ServiceRequest is asking for the specified action to not occur"):
	// the request is a prohibition, not work for a CHW.
	if sr.DoNotPerform != nil && *sr.DoNotPerform {
		return nil, &InvalidResourceError{ResourceType: "ServiceRequest", Issues: []Issue{{Expression: "ServiceRequest.doNotPerform",
			Reason: "true: the request is that the action NOT be performed; no CHW task is raised for a request not to do something",
			Code:   models.IssueTypeBusinessRule}}}
	}
	key, id := c.subjectField(&sr.Subject, patient)
	if key == "" {
		return nil, c.subjectError("ServiceRequest", "ServiceRequest.subject")
	}
	sub := &cht.Record{Form: c.cfg.Inbound.TaskForm, Fields: map[string]any{key: id}}
	var srID string
	if sr.Id != nil {
		srID = *sr.Id
	}
	requestFields(sub, nil, srID)
	// The occurrence is the task's due date (fhir/tocht copies it): it
	// must be a date CHT can schedule by.
	if err := checkDates("ServiceRequest", "ServiceRequest.occurrenceDateTime", sr.OccurrenceDateTime,
		"ServiceRequest.occurrencePeriod", sr.OccurrencePeriod); err != nil {
		return nil, err
	}
	// authoredOn is read as SubmissionFromObservations reads a date: a
	// value that is not a FHIR date or dateTime is an error naming it.
	if sr.AuthoredOn != nil {
		t, err := reportTime("ServiceRequest", "ServiceRequest.authoredOn", *sr.AuthoredOn)
		if err != nil {
			return nil, err
		}
		sub.ReportedDate = t
	}
	return sub, nil
}

// SubmissionFromTask is SubmissionFromServiceRequest for a Task (subject in
// Task.for). The submission carries the Task id (key "fhir_task") and the
// ServiceRequest of Task.focus or Task.basedOn (key "fhir_service_request"),
// for the follow-up form that closes the loop ([FollowUp]). Tasks with status
// requested, received, accepted, ready or in-progress (started: the CHW
// task stands until the follow-up closes it) are converted.
func (c *Converter) SubmissionFromTask(t *models.Task, patient *models.Patient) (*cht.Record, error) {
	if t == nil {
		return nil, required("Task", "Task")
	}
	switch t.Status {
	case models.TaskStatusRequested, models.TaskStatusReceived, models.TaskStatusAccepted, models.TaskStatusReady,
		models.TaskStatusInProgress:
	default:
		return nil, &InvalidResourceError{ResourceType: "Task", Issues: []Issue{{Expression: "Task.status",
			Reason: fmt.Sprintf("status %q raises no task (want requested, received, accepted, ready or in-progress)", t.Status.Code()), Code: models.IssueTypeValue}}}
	}
	key, id := c.subjectField(t.For, patient)
	if key == "" {
		return nil, c.subjectError("Task", "Task.for")
	}
	sub := &cht.Record{Form: c.cfg.Inbound.TaskForm, Fields: map[string]any{key: id}}
	srID := referenceID(t.Focus, "ServiceRequest")
	for i := 0; srID == "" && i < len(t.BasedOn); i++ {
		srID = referenceID(&t.BasedOn[i], "ServiceRequest")
	}
	requestFields(sub, t.Id, srID)
	if t.Restriction != nil {
		if err := checkDates("Task", "", nil, "Task.restriction.period", t.Restriction.Period); err != nil {
			return nil, err
		}
	}
	if t.AuthoredOn != nil {
		at, err := reportTime("Task", "Task.authoredOn", *t.AuthoredOn)
		if err != nil {
			return nil, err
		}
		sub.ReportedDate = at
	}
	return sub, nil
}

// PlaceFromLocation converts a FHIR Location made by this converter from a
// CHT place back to the place document: _id, place_id and external_id
// from the identifiers with Systems.DocumentID, Systems.PlaceID and
// Systems.ExternalID, the type from the Location.type coding with
// Systems.ContactType ("contact" with contact_type unless it is a legacy
// place type), name, phone and phone_alternate from telecom, geolocation
// from position (latitude, longitude, altitude) and the parent from
// partOf's Systems.DocumentID identifier. A Location without a CHT
// document identifier or contact type is an error naming the element.
func (c *Converter) PlaceFromLocation(l *models.Location) (*cht.Contact, error) {
	if l == nil {
		return nil, required("Location", "Location")
	}
	p := &cht.Contact{ID: identifierValue(l.Identifier, c.sys.DocumentID)}
	if p.ID == "" {
		return nil, required("Location", "Location.identifier")
	}
	p.PlaceID = identifierValue(l.Identifier, c.sys.PlaceID)
	p.ExternalID = identifierValue(l.Identifier, c.sys.ExternalID)
	for _, t := range l.Type {
		for _, cd := range t.Coding {
			if cd.System != nil && cd.Code != nil && *cd.System == c.sys.ContactType && p.Type == "" {
				p.Type = *cd.Code
			}
		}
	}
	if p.Type == "" {
		return nil, required("Location", "Location.type")
	}
	if !slices.Contains([]string{"district_hospital", "health_center", "clinic"}, p.Type) {
		p.Type, p.ContactType = "contact", p.Type
	}
	if l.Name != nil {
		p.Name = *l.Name
	}
	for _, t := range l.Telecom {
		if t.Value != nil && t.System != nil && *t.System == models.ContactPointSystemPhone {
			if p.Phone == "" {
				p.Phone = *t.Value
			} else if p.PhoneAlternate == "" {
				p.PhoneAlternate = *t.Value
			}
		}
	}
	if pos := l.Position; pos != nil {
		g, err := geolocationOf(pos, "Location")
		if err != nil {
			return nil, err
		}
		p.Geolocation = g
	}
	if l.PartOf != nil && l.PartOf.Identifier != nil {
		if pid := identifierValue([]models.Identifier{*l.PartOf.Identifier}, c.sys.DocumentID); pid != "" {
			p.Parent = cht.NewLineage(pid)
		}
	}
	return p, nil
}

// geolocationOf converts a Location.position (of the Location at expr)
// to a CHT geolocation.
func geolocationOf(pos *models.LocationPosition, expr string) (*cht.Geolocation, error) {
	g := &cht.Geolocation{}
	for _, n := range []struct {
		name string
		v    *json.Number
		dst  **float64
	}{{"latitude", &pos.Latitude, &g.Latitude}, {"longitude", &pos.Longitude, &g.Longitude}, {"altitude", pos.Altitude, &g.Altitude}} {
		if n.v == nil {
			continue
		}
		f, err := strconv.ParseFloat(string(*n.v), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, invalid("Location", expr+".position."+n.name, fmt.Sprintf("%q is not a finite number", string(*n.v)))
		}
		*n.dst = &f
	}
	return g, nil
}
