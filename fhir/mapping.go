package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ValueKind names the FHIR type an Observation value is converted to: the
// mapping file's "type" of a field, one of quantity, codeable, boolean,
// integer, decimal, string, dateTime, date and time.
type ValueKind string

// Value kinds accepted in a [FieldMapping].
const (
	kindQuantity ValueKind = "quantity" // valueQuantity with a UCUM unit
	kindCodeable ValueKind = "codeable" // valueCodeableConcept from a value → coding table
	kindBoolean  ValueKind = "boolean"  // valueBoolean from yes/no/true/false
	kindInteger  ValueKind = "integer"  // valueInteger; 32-bit, parsed exactly (a fractional part must be zeros)
	kindDecimal  ValueKind = "decimal"  // valueQuantity without unit (Observation has no valueDecimal)
	kindString   ValueKind = "string"   // valueString
	kindDateTime ValueKind = "dateTime" // valueDateTime (ms epoch numbers are accepted)
	// kindDate is a valueDateTime holding a date (YYYY, YYYY-MM or
	// YYYY-MM-DD). A millisecond timestamp becomes the UTC calendar day of
	// that instant (not the CHT user's local day).
	kindDate ValueKind = "date"
	kindTime ValueKind = "time" // valueTime (HH:MM[:SS[.fff]])
)

// ucumSystem is the code system of quantity units.
const ucumSystem = "http://unitsofmeasure.org"

var validKinds = map[ValueKind]bool{kindQuantity: true, kindCodeable: true, kindBoolean: true, kindInteger: true,
	kindDecimal: true, kindString: true, kindDateTime: true, kindDate: true, kindTime: true}

// Code is a FHIR Coding in a mapping file.
type Code struct {
	System  string `json:"system" yaml:"system"`
	Code    string `json:"code" yaml:"code"`
	Display string `json:"display,omitempty" yaml:"display,omitempty"`
}

// Mapping is the declarative CHT form field ⇄ FHIR Observation mapping. It is
// usually loaded from a YAML or JSON file with [LoadMapping] or [ParseMapping]
// (see docs/mappings.md), but it is a plain struct and may be built in Go; call
// [Mapping.Validate] before use ([New] does).
type Mapping struct {
	// Version of the file format; 0 or 1.
	Version int `json:"version,omitempty" yaml:"version,omitempty"`
	// Contacts declares how contacts are converted: the FHIR resources each
	// contact type becomes and the contact fields that are lenient.
	Contacts ContactsMapping `json:"contacts,omitzero" yaml:"contacts,omitempty"`
	// Forms lists one entry per CHT form.
	Forms []FormMapping `json:"forms" yaml:"forms"`
}

// ContactsMapping declares how CHT contacts are converted.
type ContactsMapping struct {
	// Types lists contact types whose FHIR resources differ from the
	// defaults derived from the CHT app settings (a person type becomes a
	// Patient, a place type a Location).
	Types []ContactTypeMapping `json:"types,omitempty" yaml:"types,omitempty"`
	// Lenient lists contact fields whose unusable values (a date_of_birth
	// that is not a date, an unknown sex, ...) are dropped with a warning
	// instead of failing the conversion: sex, date_of_birth, date_of_death,
	// name, phone, phone_alternate, external_id, geolocation.
	Lenient []string `json:"lenient,omitempty" yaml:"lenient,omitempty"`
}

// ContactTypeMapping declares the FHIR resources of one CHT contact type.
type ContactTypeMapping struct {
	// Type is the contact type id of the app settings (contact_types[].id,
	// or a legacy type such as "health_center").
	Type string `json:"type" yaml:"type"`
	// Resources are the FHIR resource types a contact of this type becomes:
	// Patient and/or Practitioner for a person type, Location and/or
	// Organization for a place type. Empty keeps the default.
	Resources []string `json:"resources,omitempty" yaml:"resources,omitempty"`
	// Roles overrides Resources for persons whose role member has one of
	// the listed values (person types only); for example, chw mapped to
	// Practitioner alone makes a person whose role is chw a Practitioner
	// and not a Patient.
	Roles map[string][]string `json:"roles,omitempty" yaml:"roles,omitempty"`
	// PrimaryContact, set to "Practitioner" on a place type, makes the
	// place's primary contact the health worker responsible for the people
	// below it: it becomes a Practitioner, referenced as their
	// Patient.generalPractitioner (place types only).
	PrimaryContact string `json:"primaryContact,omitempty" yaml:"primaryContact,omitempty"`
}

// FormMapping maps the fields of one CHT form.
type FormMapping struct {
	// Form is the CHT form code, matched case-insensitively (records API forms
	// are stored upper-case, XForms lower-case).
	Form string `json:"form" yaml:"form"`
	// EncounterType is the Encounter.type coding for reports of this form.
	// When empty, the converter uses Config.EncounterType or a local code
	// naming the form.
	EncounterType *Code `json:"encounterType,omitempty" yaml:"encounterType,omitempty"`
	// Category is the default Observation.category of the form's fields.
	Category []Code `json:"category,omitempty" yaml:"category,omitempty"`
	// Subjectless marks a form whose reports are about no person or place
	// (stock counts, CHW self-assessments): its Encounter and Observations
	// have no subject. A report of any other form whose subject cannot be
	// resolved is a conversion error.
	Subjectless bool `json:"subjectless,omitempty" yaml:"subjectless,omitempty"`
	// Fields lists the mapped fields. Unlisted fields are not converted.
	Fields []FieldMapping `json:"fields" yaml:"fields"`
	// FollowUp declares the form as the follow-up of a FHIR request (referral loop); see
	// [Converter.CloseReferral].
	FollowUp *FollowUp `json:"followUp,omitempty" yaml:"followUp,omitempty"`
}

// FieldMapping maps one report field (a dotted path below report.fields) to
// one Observation.
type FieldMapping struct {
	// Path is the dotted path below the report's fields, e.g.
	// "vitals.temperature". It is also the key of the field in a records
	// API submission built by the reverse mapping.
	Path string `json:"path" yaml:"path"`
	// Code is the Observation.code coding. It must be unique within a form.
	Code Code `json:"code" yaml:"code"`
	// Text is an optional Observation.code.text (a label for humans).
	Text string `json:"text,omitempty" yaml:"text,omitempty"`
	// Type is the value kind.
	Type ValueKind `json:"type" yaml:"type"`
	// Unit is the UCUM code of a quantity ("kg", "cm", "Cel", "/min").
	Unit string `json:"unit,omitempty" yaml:"unit,omitempty"`
	// UnitDisplay is the human-readable unit (Quantity.unit); default Unit.
	UnitDisplay string `json:"unitDisplay,omitempty" yaml:"unitDisplay,omitempty"`
	// Values is the CHT value → coding table of a codeable field.
	Values map[string]Code `json:"values,omitempty" yaml:"values,omitempty"`
	// ValueSystem, when set on a codeable field, codes values missing from
	// Values as {system: ValueSystem, code: <CHT value>} instead of failing.
	// A missing value containing whitespace (a select_multiple answer such
	// as "fever cough") still fails: one CodeableConcept holds one concept.
	ValueSystem string `json:"valueSystem,omitempty" yaml:"valueSystem,omitempty"`
	// TrueValue and FalseValue are the CHT values a boolean field is written
	// back as by the reverse mapping (e.g. "yes"/"no"). When empty, JSON
	// booleans are written. Forward conversion always accepts true/false,
	// "true"/"false", "yes"/"no" and these values.
	TrueValue  string `json:"trueValue,omitempty" yaml:"trueValue,omitempty"`
	FalseValue string `json:"falseValue,omitempty" yaml:"falseValue,omitempty"`
	// Category overrides the form's category for this field.
	Category []Code `json:"category,omitempty" yaml:"category,omitempty"`
	// Min and Max bound the value of a quantity, decimal or integer field
	// (inclusive); a value outside is a conversion error (or, when the
	// field is lenient, dropped with a warning).
	Min *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max *float64 `json:"max,omitempty" yaml:"max,omitempty"`
	// Lenient makes a value that cannot be converted drop the field's
	// Observation with a warning (Transaction.Warnings) instead of failing
	// the whole report.
	Lenient bool `json:"lenient,omitempty" yaml:"lenient,omitempty"`
}

// Resource types a contact type may be mapped to.
var (
	personResources = []string{"Patient", "Practitioner"}
	placeResources  = []string{"Location", "Organization"}
)

// lenientContactFields are the contact fields Contacts.Lenient may name.
var lenientContactFields = []string{"sex", "date_of_birth", "date_of_death", "name", "phone", "phone_alternate",
	"external_id", "geolocation"}

// MappingError reports an invalid mapping: Form and Field locate the entry
// (either may be empty), Reason says what is wrong.
type MappingError struct {
	Form, Field, Reason string
}

// Error returns "fhir: mapping form <form> field <path>: <reason>".
func (e *MappingError) Error() string {
	var b strings.Builder
	b.WriteString("fhir: mapping")
	if e.Form != "" {
		fmt.Fprintf(&b, " form %q", e.Form)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " field %q", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// LoadMapping reads a mapping from a YAML (.yaml, .yml) or JSON file and
// validates it; "" gives [DefaultMapping].
func LoadMapping(path string) (*Mapping, error) {
	if path == "" {
		return DefaultMapping(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fhir: load mapping: %w", err)
	}
	m, err := ParseMapping(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return m, nil
}

// ParseMapping parses a mapping in JSON (when the first non-blank byte is
// '{') or YAML and validates it. Unknown keys are rejected so that typos do
// not silently drop data.
func ParseMapping(data []byte) (*Mapping, error) {
	var m Mapping
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return nil, decodeError(data, "JSON", err)
		}
		if dec.More() {
			return nil, errors.New("fhir: parse mapping JSON: trailing data after the mapping object")
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, &MappingError{Reason: "empty document"}
			}
			return nil, decodeError(data, "YAML", err)
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the mapping: known version, non-empty unique form codes,
// and for every field a valid path, a code with system and code, a known
// type, a unit for quantities, a value table or value system for codeables,
// and codes unique within the form (so the reverse mapping is unambiguous).
// It returns a *[MappingError].
func (m *Mapping) Validate() error {
	if m.Version != 0 && m.Version != 1 {
		return &MappingError{Reason: fmt.Sprintf("unsupported version %d (want 1)", m.Version)}
	}
	if err := m.Contacts.validate(); err != nil {
		return err
	}
	forms := map[string]bool{}
	for _, f := range m.Forms {
		if strings.TrimSpace(f.Form) == "" {
			return &MappingError{Reason: "form code is empty"}
		}
		key := strings.ToLower(f.Form)
		if forms[key] {
			return &MappingError{Form: f.Form, Reason: "form listed twice"}
		}
		forms[key] = true
		if f.EncounterType != nil {
			if err := checkCode(*f.EncounterType); err != "" {
				return &MappingError{Form: f.Form, Reason: "encounterType " + err}
			}
		}
		for _, c := range f.Category {
			if err := checkCode(c); err != "" {
				return &MappingError{Form: f.Form, Reason: "category " + err}
			}
		}
		if f.FollowUp != nil {
			if err := f.FollowUp.validate(); err != "" {
				return &MappingError{Form: f.Form, Reason: err}
			}
		}
		paths := map[string]bool{}
		codes := map[Code]bool{}
		for _, fm := range f.Fields {
			if err := fm.validate(); err != "" {
				return &MappingError{Form: f.Form, Field: fm.Path, Reason: err}
			}
			if paths[fm.Path] {
				return &MappingError{Form: f.Form, Field: fm.Path, Reason: "path listed twice"}
			}
			paths[fm.Path] = true
			k := Code{System: fm.Code.System, Code: fm.Code.Code}
			if codes[k] {
				return &MappingError{Form: f.Form, Field: fm.Path,
					Reason: fmt.Sprintf("code %s|%s used by two fields", k.System, k.Code)}
			}
			codes[k] = true
		}
	}
	return nil
}

func (cm *ContactsMapping) validate() error {
	for _, f := range cm.Lenient {
		if !slices.Contains(lenientContactFields, f) {
			return &MappingError{Field: "contacts.lenient", Reason: fmt.Sprintf("%q is not a contact field that can be lenient (want one of %s)",
				f, strings.Join(lenientContactFields, ", "))}
		}
	}
	types := map[string]bool{}
	for _, t := range cm.Types {
		where := "contacts.types " + t.Type
		if strings.TrimSpace(t.Type) == "" {
			return &MappingError{Field: "contacts.types", Reason: "type is empty"}
		}
		if types[t.Type] {
			return &MappingError{Field: where, Reason: "type listed twice"}
		}
		types[t.Type] = true
		if err := checkResources(t.Resources); err != "" {
			return &MappingError{Field: where, Reason: "resources " + err}
		}
		for role, rs := range t.Roles {
			if strings.TrimSpace(role) == "" {
				return &MappingError{Field: where, Reason: "empty role"}
			}
			if len(rs) == 0 {
				return &MappingError{Field: where, Reason: fmt.Sprintf("role %q maps to no resources", role)}
			}
			if err := checkResources(rs); err != "" {
				return &MappingError{Field: where, Reason: fmt.Sprintf("role %q resources %s", role, err)}
			}
			if !allIn(rs, personResources) {
				return &MappingError{Field: where, Reason: fmt.Sprintf("role %q: roles map persons to Patient or Practitioner", role)}
			}
		}
		if t.PrimaryContact != "" && t.PrimaryContact != "Practitioner" {
			return &MappingError{Field: where, Reason: fmt.Sprintf("primaryContact %q (want Practitioner)", t.PrimaryContact)}
		}
		person, place := allIn(t.Resources, personResources), allIn(t.Resources, placeResources)
		switch {
		case len(t.Resources) > 0 && !person && !place:
			return &MappingError{Field: where, Reason: "resources mix person (Patient, Practitioner) and place (Location, Organization) types"}
		case len(t.Roles) > 0 && len(t.Resources) > 0 && !person:
			return &MappingError{Field: where, Reason: "roles are only allowed on person types"}
		case t.PrimaryContact != "" && len(t.Resources) > 0 && !place:
			return &MappingError{Field: where, Reason: "primaryContact is only allowed on place types"}
		case t.PrimaryContact != "" && len(t.Roles) > 0:
			return &MappingError{Field: where, Reason: "roles and primaryContact exclude each other (person and place)"}
		}
	}
	return nil
}

func checkResources(rs []string) string {
	seen := map[string]bool{}
	for _, r := range rs {
		if !slices.Contains(personResources, r) && !slices.Contains(placeResources, r) {
			return fmt.Sprintf("%q is not one of Patient, Practitioner, Location, Organization", r)
		}
		if seen[r] {
			return fmt.Sprintf("%q listed twice", r)
		}
		seen[r] = true
	}
	return ""
}

func allIn(v, set []string) bool {
	for _, s := range v {
		if !slices.Contains(set, s) {
			return false
		}
	}
	return true
}

// checkCode says what makes c unusable as a Coding ("" when nothing): a
// system that is not a FHIR uri or a code that is not a FHIR code (see
// isURI and isCode).
func checkCode(c Code) string {
	switch {
	case strings.TrimSpace(c.System) == "":
		return "has no system"
	case !isURI(c.System):
		return fmt.Sprintf("system %q contains white space (not a FHIR uri)", c.System)
	case strings.TrimSpace(c.Code) == "":
		return "has no code"
	case strings.TrimSpace(c.Code) != c.Code:
		return "code has leading or trailing white space"
	case !isCode(c.Code):
		return fmt.Sprintf("%q has white space other than single spaces between characters (not a FHIR code)", c.Code)
	}
	return ""
}

func (fm *FieldMapping) validate() string {
	if fm.Path == "" {
		return "path is empty"
	}
	for _, seg := range strings.Split(fm.Path, ".") {
		if seg == "" {
			return "path has an empty segment"
		}
	}
	if err := checkCode(fm.Code); err != "" {
		return "code " + err
	}
	if !validKinds[fm.Type] {
		if fm.Type == "" {
			return "type is missing"
		}
		return fmt.Sprintf("unknown type %q", fm.Type)
	}
	for _, c := range fm.Category {
		if err := checkCode(c); err != "" {
			return "category " + err
		}
	}
	switch fm.Type {
	case kindQuantity:
		if strings.TrimSpace(fm.Unit) == "" {
			return "quantity needs a UCUM unit"
		}
		if !isCode(fm.Unit) {
			// The unit is written as valueQuantity.code.
			return fmt.Sprintf("unit %q is %s", fm.Unit, notACode)
		}
	case kindCodeable:
		if len(fm.Values) == 0 && fm.ValueSystem == "" {
			return "codeable needs values or valueSystem"
		}
		if !isURI(fm.ValueSystem) {
			return fmt.Sprintf("valueSystem %q contains white space (not a FHIR uri)", fm.ValueSystem)
		}
		seen := map[Code]string{}
		for v, c := range fm.Values {
			if err := checkCode(c); err != "" {
				return fmt.Sprintf("value %q %s", v, err)
			}
			k := Code{System: c.System, Code: c.Code}
			if other, ok := seen[k]; ok {
				a, b := min(v, other), max(v, other)
				return fmt.Sprintf("values %q and %q map to the same code", a, b)
			}
			seen[k] = v
		}
	case kindBoolean:
		if (fm.TrueValue == "") != (fm.FalseValue == "") {
			return "trueValue and falseValue must be set together"
		}
		if fm.TrueValue != "" && fm.TrueValue == fm.FalseValue {
			return "trueValue equals falseValue"
		}
	}
	if fm.Type != kindQuantity && (fm.Unit != "" || fm.UnitDisplay != "") {
		return "unit is only allowed on quantity fields"
	}
	if fm.Type != kindCodeable && (len(fm.Values) > 0 || fm.ValueSystem != "") {
		return "values and valueSystem are only allowed on codeable fields"
	}
	if fm.Type != kindBoolean && (fm.TrueValue != "" || fm.FalseValue != "") {
		return "trueValue and falseValue are only allowed on boolean fields"
	}
	if fm.Min != nil || fm.Max != nil {
		switch fm.Type {
		case kindQuantity, kindDecimal, kindInteger:
		default:
			return "min and max are only allowed on quantity, decimal and integer fields"
		}
		for _, b := range []*float64{fm.Min, fm.Max} {
			if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
				return "min and max must be finite numbers"
			}
		}
		if fm.Min != nil && fm.Max != nil && *fm.Min > *fm.Max {
			return "min is greater than max"
		}
	}
	return ""
}

// Form returns the mapping of form (matched case-insensitively) and whether
// there is one.
func (m *Mapping) Form(form string) (*FormMapping, bool) {
	if m == nil {
		return nil, false
	}
	for i := range m.Forms {
		if strings.EqualFold(m.Forms[i].Form, form) {
			return &m.Forms[i], true
		}
	}
	return nil, false
}

// decodeError words a decoding error in the terms of the file: the line,
// the path of keys and what is wrong, never a Go type. The file is walked
// beside the Mapping type (YAML reads JSON too); when the walk finds
// nothing, the decoder's own message is kept.
func decodeError(data []byte, format string, err error) error {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) == nil {
		if msg := locate(&doc, reflect.TypeFor[Mapping](), ""); msg != "" {
			return &MappingError{Reason: msg}
		}
	}
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "yaml: "), "json: ")
	return &MappingError{Reason: fmt.Sprintf("not valid %s: %s", format, goTypes.ReplaceAllString(msg, ""))}
}

// goTypes matches the Go types in a decoder's message.
var goTypes = regexp.MustCompile(` (of |into |in )?(type |Go struct field )?\[?\]?\*?fhir\.[\w.]+`)

// locate returns the first place where n does not fit t, as
// "line N: path: problem", or "".
func locate(n *yaml.Node, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return locate(n.Content[0], t, path)
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return locate(n.Alias, t, path)
	}
	where := path
	if where == "" {
		where = "top level"
	}
	wrong := func(want string) string {
		got := "a list"
		switch n.Kind {
		case yaml.MappingNode:
			got = "keys and values"
		case yaml.ScalarNode:
			got = strconv.Quote(n.Value)
		}
		return fmt.Sprintf("line %d: %s: want %s, got %s", n.Line, where, want, got)
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return wrong("keys and values")
		}
		known := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			known[name] = t.Field(i).Type
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			ft, ok := known[key]
			if !ok {
				return fmt.Sprintf("line %d: %s: unknown key %q (known keys: %s)", n.Content[i].Line, where, key, strings.Join(names, ", "))
			}
			if msg := locate(n.Content[i+1], ft, join(path, key)); msg != "" {
				return msg
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return wrong("keys and values")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if msg := locate(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); msg != "" {
				return msg
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return wrong("a list")
		}
		for i, item := range n.Content {
			if msg := locate(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return msg
			}
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return wrong("a text value")
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return wrong("true or false")
		}
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			return wrong("a whole number")
		}
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			return wrong("a number")
		}
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
