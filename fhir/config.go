package fhir

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
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

// NameSplit selects how a CHT name (one free-text string) is split into
// HumanName.given and family. HumanName.text always holds the full name.
type NameSplit int

const (
	// NameFamilyLast (the default) takes the last word as family name and
	// the others as given names ("Grace Achieng" → given Grace, family
	// Achieng). Single-word names are kept in text only.
	NameFamilyLast NameSplit = iota
	// NameFamilyFirst takes the first word as family name.
	NameFamilyFirst
	// NameTextOnly sets only HumanName.text.
	NameTextOnly
)

// Systems are the URIs used for identifiers and local code systems. Empty
// fields are derived from Config.InstanceURL (base) as documented per field.
type Systems struct {
	DocumentID  string // CHT document _id; default base + "/medic"
	PatientID   string // person shortcode patient_id; default base + "/patient_id"
	PlaceID     string // place shortcode place_id; default base + "/place_id"
	ExternalID  string // external_id; default base + "/external_id"
	Observation string // Observation identifiers "<report _id>/<field path>"; default base + "/observation"
	ContactType string // Location/Organization type codes (contact_type); default base + "/contact_type"
	Form        string // Encounter.type code of forms without encounterType; default base + "/form"
	Codes       string // codes of outbound payload observations; default base + "/codes"
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
	// PersonTypes are contact types (besides "person") that are people.
	PersonTypes []string
	// OrganizationTypes are place contact types that are also converted to
	// an Organization (every place becomes a Location); default
	// ["district_hospital", "health_center"].
	OrganizationTypes []string
	// PractitionerRoles are person roles converted to a Practitioner rather
	// than a Patient by ContactBundle; default ["chw", "chw_supervisor",
	// "nurse"].
	PractitionerRoles []string
	// PractitionerPlaceTypes are place types whose primary contact is the
	// CHW responsible for the people below; it becomes
	// Patient.generalPractitioner. Default ["health_center"].
	PractitionerPlaceTypes []string
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
	// type does not name a mapped form (see ObservationsToSubmission).
	ObservationForm string
}

// Converter converts between CHT documents and FHIR R4 resources. It is
// immutable and safe for concurrent use.
type Converter struct {
	cfg      Config
	sys      Systems
	ns       [16]byte
	class    models.Coding
	orgTypes map[string]bool
	pracType map[string]bool
	forms    map[string]*formIndex
	tag      []models.Coding
}

// New validates cfg and returns a Converter. It does no I/O.
func New(cfg Config) (*Converter, error) {
	base := strings.TrimRight(strings.TrimSpace(cfg.InstanceURL), "/")
	if base == "" {
		return nil, errors.New("fhir: config: InstanceURL is required")
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("fhir: config: InstanceURL %q is not an absolute URL", cfg.InstanceURL)
	}
	if u.User != nil {
		return nil, errors.New("fhir: config: InstanceURL must not contain credentials")
	}
	if cfg.Strategy < WritePut || cfg.Strategy > WriteConditionalCreate {
		return nil, fmt.Errorf("fhir: config: unknown Strategy %d", int(cfg.Strategy))
	}
	if cfg.NameSplit < NameFamilyLast || cfg.NameSplit > NameTextOnly {
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
		{&c.sys.ContactType, "contact_type"}, {&c.sys.Form, "form"}, {&c.sys.Codes, "codes"},
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
	c.orgTypes = set(cfg.OrganizationTypes, "district_hospital", "health_center")
	c.pracType = set(cfg.PractitionerPlaceTypes, "health_center")
	c.tag = []models.Coding{{System: &c.sys.Source, Code: ptr("cht"), Display: ptr("Community Health Toolkit")}}
	if cfg.Mapping != nil {
		if err := cfg.Mapping.Validate(); err != nil {
			return nil, err
		}
		c.forms = indexMapping(cfg.Mapping, c)
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

func set(v []string, def ...string) map[string]bool {
	if v == nil {
		v = def
	}
	m := make(map[string]bool, len(v))
	for _, s := range v {
		m[s] = true
	}
	return m
}

// Systems returns the effective identifier and code systems.
func (c *Converter) Systems() Systems { return c.sys }

// Strategy returns the configured write strategy.
func (c *Converter) Strategy() WriteStrategy { return c.cfg.Strategy }

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

// uuidKey is uuid(rt, chtID, key) for key, or key+"#"+(dup+1) when dup > 0,
// without building the string.
func (c *Converter) uuidKey(rt, chtID, key string, dup int) [16]byte {
	if dup == 0 {
		return uuidV5(c.ns, rt, chtID, key)
	}
	var buf [64]byte
	k := append(append(append(buf[:0], key...), '#'), strconv.Itoa(dup+1)...)
	return uuidV5(c.ns, rt, chtID, string(k))
}

func (c *Converter) isPerson(ct *cht.Contact) bool { return ct.IsPerson(c.cfg.PersonTypes...) }

func coding(k Code) models.Coding {
	cd := models.Coding{System: ptr(k.System), Code: ptr(k.Code)}
	if k.Display != "" {
		cd.Display = ptr(k.Display)
	}
	return cd
}
