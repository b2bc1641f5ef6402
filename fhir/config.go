package fhir

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/redact"
)

// WriteStrategy selects how transaction entries are written so that posting
// the same CHT document twice never creates duplicates.
type WriteStrategy int

const (
	// WritePut (the default) gives every resource a deterministic id derived
	// from the CHT instance, the resource type and the CHT _id (plus the
	// field path for Observations) and writes it with PUT Type/id: an upsert.
	WritePut WriteStrategy = iota
	// WriteConditionalUpdate lets the server assign ids and writes with a
	// conditional update, PUT Type?identifier=system|value: an upsert keyed
	// on the CHT identifier.
	WriteConditionalUpdate
	// WriteConditionalCreate writes with POST and ifNoneExist
	// identifier=system|value: resources that already exist are left
	// unchanged (later CHT edits are not propagated).
	WriteConditionalCreate
)

// String returns the strategy name: "put", "conditional-update" or
// "conditional-create".
func (s WriteStrategy) String() string {
	switch s {
	case WritePut:
		return "put"
	case WriteConditionalUpdate:
		return "conditional-update"
	case WriteConditionalCreate:
		return "conditional-create"
	}
	return fmt.Sprintf("WriteStrategy(%d)", int(s))
}

// NameSplit selects whether and how a CHT name (one free-text string) is
// split into HumanName.given and family. HumanName.text always holds the
// CHT name exactly as stored, and the reverse conversion reads it from
// there, so no split loses anything.
type NameSplit int

const (
	// NameTextOnly (the default) sets only HumanName.text: CHT names follow
	// no given/family convention ("Baby of Amina", "Zoë Ngũgĩ wa Kamau").
	NameTextOnly NameSplit = iota
	// NameFamilyLast takes the last word as family name and the others as
	// given names ("Grace Achieng" → given Grace, family Achieng). Only
	// names of two or more words that all start with an upper-case letter
	// are split; others ("Baby of Amina", "Zoë Ngũgĩ wa Kamau", "Amina")
	// are kept in text only.
	NameFamilyLast
	// NameFamilyFirst takes the first word as family name, under the same
	// conditions.
	NameFamilyFirst
)

// Systems are the URIs used for identifiers and local code systems. Empty
// fields are derived from Config.InstanceURL (base) as documented per field.
type Systems struct {
	DocumentID string // CHT document _id; default base + "/medic"
	PatientID  string // person shortcode patient_id; default base + "/patient_id"
	PlaceID    string // place shortcode place_id; default base + "/place_id"
	ExternalID string // external_id; default base + "/external_id"
	// Observation identifies the resources made from parts of a report,
	// "<report _id>/<field path>" (Observations) and "<report _id>/geolocation"
	// (the Location a report was filled in); default base + "/observation".
	Observation string
	ContactType string // Location/Organization type codes (contact_type); default base + "/contact_type"
	Form        string // Encounter.type code of forms without encounterType; default base + "/form"
	Codes       string // codes of outbound payload observations; default base + "/codes"
	Phone       string // the SMS sender (from) of a report in Encounter.participant; default base + "/phone"
	// Source is the meta.tag system marking resources as coming from CHT
	// (code "cht"), so flows can avoid loops; default base + "/source".
	Source string
}

// Config configures a [Converter]. The zero value of every field except
// InstanceURL is a documented default.
type Config struct {
	// InstanceURL is the CHT instance's base URL, e.g.
	// "https://cht.example.org". It is the root of the default identifier
	// systems and the name space of deterministic ids. Required.
	InstanceURL string
	// Systems overrides identifier and code systems.
	Systems Systems
	// Mapping maps form fields to Observations. Nil maps no form: report
	// conversion then returns ErrUnmappedForm.
	Mapping *Mapping
	// Strategy is the transaction write strategy; default WritePut.
	Strategy WriteStrategy
	// ContactTypes is the CHT app's contact hierarchy, which tells people
	// from places: load it from the instance with cht.Client.ContactTypes
	// or from an app settings file with cht.ParseContactTypes. The zero
	// value means cht.LegacyContactTypes() (apps without contact_types). A
	// contact whose type is not in it is a *ConversionError naming
	// contact_type (or type). Which FHIR resources each type becomes is
	// declared in the mapping (Mapping.Contacts).
	ContactTypes cht.ContactTypes
	// EncounterClass is Encounter.class; default v3-ActCode HH "home health".
	EncounterClass *Code
	// EncounterType is the Encounter.type of forms whose mapping has no
	// encounterType; default {Systems.Form, <form code>}.
	EncounterType *Code
	// NameSplit selects how names are split into given and family.
	NameSplit NameSplit
	// Inbound configures FHIR → CHT conversion.
	Inbound InboundConfig
}

// InboundConfig configures FHIR → CHT conversion.
type InboundConfig struct {
	// PersonType is the contact type of created people; default "person".
	PersonType string
	// ParentPlace is the _id of the place new people are created under.
	ParentPlace string
	// TaskForm is the records API form of submissions made from
	// ServiceRequest/Task resources; default "interop_follow_up".
	TaskForm string
	// PatientField is the submission key holding the CHT patient _id;
	// default "patient_uuid".
	PatientField string
	// ObservationForm is the form used for Observations whose Encounter
	// type does not name a mapped form (see Converter.SubmissionFromObservations).
	ObservationForm string
}

// Converter converts between CHT documents and FHIR R4 resources. It is
// immutable and safe for concurrent use.
type Converter struct {
	cfg     Config
	sys     Systems
	ns      [16]byte
	class   models.Coding
	forms   map[string]*formIndex
	tag     []models.Coding
	lenient map[string]bool // lenient contact fields
	types   cht.ContactTypes
	kinds   map[string]*ContactTypeMapping // Mapping.Contacts.Types by type id
	direct  *directFrags                   // constant fragments of the direct writers
}

// New validates cfg and returns a Converter. It does no I/O.
func New(cfg Config) (*Converter, error) {
	base := strings.TrimRight(strings.TrimSpace(cfg.InstanceURL), "/")
	if base == "" {
		return nil, errors.New("fhir: config: InstanceURL is required")
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("fhir: config: InstanceURL %q is not an absolute URL", redact.URL(cfg.InstanceURL))
	}
	if u.User != nil {
		return nil, errors.New("fhir: config: InstanceURL must not contain credentials")
	}
	if cfg.Strategy < WritePut || cfg.Strategy > WriteConditionalCreate {
		return nil, fmt.Errorf("fhir: config: unknown Strategy %d", int(cfg.Strategy))
	}
	if cfg.NameSplit < NameTextOnly || cfg.NameSplit > NameFamilyFirst {
		return nil, fmt.Errorf("fhir: config: unknown NameSplit %d", int(cfg.NameSplit))
	}
	c := &Converter{cfg: cfg, sys: cfg.Systems}
	c.cfg.InstanceURL = base
	for _, s := range []struct {
		dst  *string
		name string
	}{
		{&c.sys.DocumentID, "medic"}, {&c.sys.PatientID, "patient_id"}, {&c.sys.PlaceID, "place_id"},
		{&c.sys.ExternalID, "external_id"}, {&c.sys.Observation, "observation"},
		{&c.sys.ContactType, "contact_type"}, {&c.sys.Form, "form"}, {&c.sys.Codes, "codes"}, {&c.sys.Phone, "phone"},
		{&c.sys.Source, "source"},
	} {
		if *s.dst == "" {
			*s.dst = base + "/" + s.name
		}
	}
	c.ns = uuidV5(nsURL, base)
	cls := Code{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "HH", Display: "home health"}
	if cfg.EncounterClass != nil {
		if msg := checkCode(*cfg.EncounterClass); msg != "" {
			return nil, fmt.Errorf("fhir: config: EncounterClass %s", msg)
		}
		cls = *cfg.EncounterClass
	}
	c.class = coding(cls)
	if cfg.EncounterType != nil {
		if msg := checkCode(*cfg.EncounterType); msg != "" {
			return nil, fmt.Errorf("fhir: config: EncounterType %s", msg)
		}
	}
	c.types = cfg.ContactTypes
	if len(c.types.Types()) == 0 {
		c.types = cht.LegacyContactTypes()
	}
	c.initDirect()
	c.tag = []models.Coding{{System: &c.sys.Source, Code: ptr("cht"), Display: ptr("Community Health Toolkit")}}
	if cfg.Mapping != nil {
		if err := cfg.Mapping.Validate(); err != nil {
			return nil, err
		}
		c.forms = indexMapping(cfg.Mapping, c)
		c.lenient = set(cfg.Mapping.Contacts.Lenient)
		c.kinds = map[string]*ContactTypeMapping{}
		for i := range cfg.Mapping.Contacts.Types {
			t := &cfg.Mapping.Contacts.Types[i]
			c.kinds[t.Type] = t
			if err := checkKinds(t, c.types); err != nil {
				return nil, err
			}
		}
	}
	in := &c.cfg.Inbound
	if in.PersonType == "" {
		in.PersonType = "person"
	}
	if in.TaskForm == "" {
		in.TaskForm = "interop_follow_up"
	}
	if in.PatientField == "" {
		in.PatientField = "patient_uuid"
	}
	return c, nil
}

func set(v []string) map[string]bool {
	m := make(map[string]bool, len(v))
	for _, s := range v {
		m[s] = true
	}
	return m
}

// Systems returns the effective identifier and code systems.
func (c *Converter) Systems() Systems { return c.sys }

// ID returns the deterministic logical id of the resource of type
// resourceType made from the CHT document chtID (and, for Observations, the
// field path): a name-based (version 5) UUID in the name space of the CHT
// instance. The same inputs always give the same id.
func (c *Converter) ID(resourceType, chtID string, path ...string) string {
	return uuidString(c.uuid(resourceType, chtID, path...))
}

func (c *Converter) uuid(resourceType, chtID string, path ...string) [16]byte {
	switch len(path) {
	case 0:
		return uuidV5(c.ns, resourceType, chtID)
	case 1:
		return uuidV5(c.ns, resourceType, chtID, path[0])
	}
	return uuidV5(c.ns, append([]string{resourceType, chtID}, path...)...)
}

// checkKinds checks a contact type mapping against the app's hierarchy: a
// person type maps to person resources, a place type to place resources.
// Types the app does not have are allowed (one mapping may serve several
// apps).
func checkKinds(t *ContactTypeMapping, types cht.ContactTypes) error {
	ct, ok := types.Lookup(t.Type)
	if !ok {
		return nil
	}
	want, kind := placeResources, "place"
	if ct.Person {
		want, kind = personResources, "person"
	}
	switch {
	case !allIn(t.Resources, want):
		return &MappingError{Field: "contacts.types " + t.Type, Reason: fmt.Sprintf("resources %s, but %s is a %s type of the app (want %s)",
			strings.Join(t.Resources, ", "), t.Type, kind, strings.Join(want, " and/or "))}
	case len(t.Roles) > 0 && !ct.Person:
		return &MappingError{Field: "contacts.types " + t.Type, Reason: "roles, but " + t.Type + " is a place type of the app"}
	case t.PrimaryContact != "" && ct.Person:
		return &MappingError{Field: "contacts.types " + t.Type, Reason: "primaryContact, but " + t.Type + " is a person type of the app"}
	}
	return nil
}

// contactPerson reports whether the type of a contact in the app's
// hierarchy is a person type, or returns a *ConversionError naming
// contact_type (type for legacy documents) when the type is not in it.
func (c *Converter) contactPerson(ct *cht.Contact) (bool, error) {
	id := ct.TypeID()
	if c.types.IsPerson(id) {
		return true, nil
	}
	if !c.types.IsPlace(id) {
		field, v := "type", ct.Type
		if ct.Type == "contact" {
			field, v = "contact_type", ct.ContactType
		}
		return false, &ConversionError{DocID: ct.ID, Field: field, Value: v,
			Reason: "not a contact type of the app (contact_types in the app settings)", Err: cht.ErrUnknownContactType}
	}
	return false, nil
}

// isPerson reports whether a contact is of a person type; unknown types are
// not (the conversion of such a contact fails in contactType).
func (c *Converter) isPerson(ct *cht.Contact) bool { return c.types.IsPerson(ct.TypeID()) }

// resources returns the FHIR resource types a contact becomes: the
// mapping's Roles entry for its role, else the mapping's Resources for its
// type, else Patient for person types and Location for place types.
func (c *Converter) resources(ct *cht.Contact, person bool) []string {
	if k := c.kinds[ct.TypeID()]; k != nil {
		if rs, ok := k.Roles[ct.Role]; ok && person && ct.Role != "" {
			return rs
		}
		if len(k.Resources) > 0 {
			return k.Resources
		}
	}
	if person {
		if c.leadsPracPlace(ct) {
			return practitionerOnly
		}
		return patientOnly
	}
	return locationOnly
}

// The resources of contact types without a mapping; not to be changed.
var patientOnly, locationOnly, practitionerOnly = []string{"Patient"}, []string{"Location"}, []string{"Practitioner"}

// leadsPracPlace reports whether person ct is the primary contact of its
// hydrated parent place, of a type whose primary contact is the
// practitioner of the people below: the CHW that plan.place makes a
// Practitioner, who is then one however her document is reached (as a
// report's submitter, her own push). CHT's demo data has such CHWs without
// a role (config/default/csv: person.health_center.csv has no role column,
// place.health_center.csv makes them the areas' contacts), and so has a
// person the users API creates.
func (c *Converter) leadsPracPlace(ct *cht.Contact) bool {
	l := ct.Parent
	return l != nil && l.Doc != nil && l.Doc.Contact != nil && l.Doc.Contact.ID == ct.ID && c.isPracPlace(l.Doc.TypeID())
}

// isOrgType reports whether places of type id become an Organization.
func (c *Converter) isOrgType(id string) bool {
	k := c.kinds[id]
	return k != nil && slices.Contains(k.Resources, "Organization") && c.types.IsPlace(id)
}

// isPracPlace reports whether the primary contact of places of type id is
// the practitioner of the people below.
func (c *Converter) isPracPlace(id string) bool {
	k := c.kinds[id]
	return k != nil && k.PrimaryContact == "Practitioner" && c.types.IsPlace(id)
}

func coding(k Code) models.Coding {
	cd := models.Coding{System: ptr(k.System), Code: ptr(k.Code)}
	if k.Display != "" {
		cd.Display = ptr(k.Display)
	}
	return cd
}
