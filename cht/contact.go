package cht

import (
	"encoding/json"
	"slices"
)

// Contact is a CHT contact document: a person or a place.
//
// CHT before 3.7 used the fixed types "district_hospital", "health_center",
// "clinic" and "person"; configurable hierarchies store type "contact"
// plus contact_type. Use [Contact.TypeID] to get the effective type and
// [Contact.IsPerson] to tell people from places.
//
// Members without a field here are kept in Extra and written back by
// MarshalJSON, so decoding and re-encoding a document loses no data. Two
// normalisations apply: a number or boolean in a string member (e.g. a
// numeric phone) is re-encoded as a string, and a parent or contact given
// as a bare id string is re-encoded as {"_id": id}. Values CHT uses as
// placeholders ("parent": "", "geolocation": "", "external_id": "") are
// kept as they were.
type Contact struct {
	ID          string `json:"_id"`
	Rev         string `json:"_rev,omitempty"`
	Type        string `json:"type"`                   // e.g. "person", "clinic" or "contact"
	ContactType string `json:"contact_type,omitempty"` // configured type id when Type is "contact"

	Name           string `json:"name,omitempty"`
	ShortName      string `json:"short_name,omitempty"`
	PatientID      string `json:"patient_id,omitempty"` // person shortcode, set by transitions
	PlaceID        string `json:"place_id,omitempty"`   // place shortcode, set by transitions
	ExternalID     string `json:"external_id,omitempty"`
	Phone          string `json:"phone,omitempty"`
	PhoneAlternate string `json:"phone_alternate,omitempty"`
	Sex            string `json:"sex,omitempty"`           // "male" or "female" in the reference app
	DateOfBirth    string `json:"date_of_birth,omitempty"` // YYYY-MM-DD as stored
	DateOfDeath    string `json:"date_of_death,omitempty"`
	Role           string `json:"role,omitempty"`
	Notes          string `json:"notes,omitempty"`

	// Parent is the lineage; nil for a top-level place.
	Parent *Lineage `json:"parent,omitempty"`
	// Contact is a place's primary contact: {_id, parent} as stored, or the
	// shallowly hydrated person after hydration.
	Contact *Contact `json:"contact,omitempty"`

	ReportedDate Millis       `json:"reported_date,omitempty"`
	Geolocation  *Geolocation `json:"geolocation,omitempty"`

	// Extra holds every other member verbatim (meta, linked_docs, muted,
	// form_version, user-defined fields, ...).
	Extra map[string]json.RawMessage `json:"-"`
}

// legacyTypes are the fixed contact types of CHT before 3.7.
var legacyTypes = []string{"district_hospital", "health_center", "clinic", "person"}

// TypeID returns the effective contact type: ContactType when Type is
// "contact", otherwise Type (CHT's contact-types-utils getTypeId).
func (c *Contact) TypeID() string {
	if c == nil {
		return ""
	}
	if c.Type == "contact" {
		return c.ContactType
	}
	return c.Type
}

// IsContact reports whether the document is a contact at all: type
// "contact" or one of the fixed legacy types.
func (c *Contact) IsContact() bool {
	if c == nil {
		return false
	}
	return c.Type == "contact" || slices.Contains(legacyTypes, c.Type)
}

// IsPerson reports whether the contact is a person. The type id "person"
// is always a person type; personTypes adds the ids of configured contact
// types that have person: true in app_settings.contact_types.
func (c *Contact) IsPerson(personTypes ...string) bool {
	if !c.IsContact() {
		return false
	}
	t := c.TypeID()
	return t == personTypeID || slices.Contains(personTypes, t)
}

// IsPlace reports whether the contact is a place, i.e. a contact that is
// not a person (see [Contact.IsPerson] for personTypes).
func (c *Contact) IsPlace(personTypes ...string) bool {
	return c.IsContact() && !c.IsPerson(personTypes...)
}

// ParentID returns the id of the immediate parent, or "".
func (c *Contact) ParentID() string {
	if c == nil || c.Parent == nil {
		return ""
	}
	return c.Parent.ID
}

// Hydrated reports whether the document carries more than a minified
// reference ({_id, parent}).
func (c *Contact) Hydrated() bool {
	if c == nil {
		return false
	}
	return c.Type != "" || c.Name != "" || c.Rev != "" || len(c.Extra) > 0
}

// MarshalJSON encodes the contact with its Extra members.
func (c *Contact) MarshalJSON() ([]byte, error) {
	m := members{}
	m.str("_id", c.ID)
	m.str("_rev", c.Rev)
	m.str("type", c.Type)
	m.str("contact_type", c.ContactType)
	m.str("name", c.Name)
	m.str("short_name", c.ShortName)
	m.str("patient_id", c.PatientID)
	m.str("place_id", c.PlaceID)
	m.str("external_id", c.ExternalID)
	m.str("phone", c.Phone)
	m.str("phone_alternate", c.PhoneAlternate)
	m.str("sex", c.Sex)
	m.str("date_of_birth", c.DateOfBirth)
	m.str("date_of_death", c.DateOfDeath)
	m.str("role", c.Role)
	m.str("notes", c.Notes)
	if c.Parent != nil {
		m["parent"] = c.Parent
	}
	if c.Contact != nil {
		m["contact"] = c.Contact
	}
	if c.ReportedDate != 0 {
		m["reported_date"] = c.ReportedDate
	}
	if c.Geolocation != nil {
		m["geolocation"] = c.Geolocation
	}
	return marshalMembers(c.Extra, m)
}

// UnmarshalJSON decodes a contact document. Errors are *DecodeError values
// naming the JSON path.
func (c *Contact) UnmarshalJSON(b []byte) error {
	return c.decode(b, "", 0)
}

func (c *Contact) decode(raw []byte, path string, depth int) error {
	if depth > maxDepth {
		return &DecodeError{Path: path, Err: errTooDeep}
	}
	m, err := decodeObject(raw, path)
	if err != nil {
		return err
	}
	return c.decodeMembers(m, path, depth)
}

// contactStrings maps JSON member names to string fields.
func (c *Contact) stringFields() []struct {
	key string
	dst *string
} {
	return []struct {
		key string
		dst *string
	}{
		{"_id", &c.ID}, {"_rev", &c.Rev}, {"type", &c.Type}, {"contact_type", &c.ContactType},
		{"name", &c.Name}, {"short_name", &c.ShortName}, {"patient_id", &c.PatientID},
		{"place_id", &c.PlaceID}, {"external_id", &c.ExternalID}, {"phone", &c.Phone},
		{"phone_alternate", &c.PhoneAlternate}, {"sex", &c.Sex}, {"date_of_birth", &c.DateOfBirth},
		{"date_of_death", &c.DateOfDeath}, {"role", &c.Role}, {"notes", &c.Notes},
	}
}

func (c *Contact) decodeMembers(m map[string]json.RawMessage, path string, depth int) error {
	*c = Contact{}
	for _, f := range c.stringFields() {
		v, ok := m[f.key]
		if !ok {
			continue
		}
		s, err := decodeString(v, joinPath(path, f.key))
		if err != nil {
			return err
		}
		*f.dst = s
		if s != "" || isNull(v) {
			// An empty string is re-encoded by omission; keep "" verbatim
			// only where it is meaningful (handled by Extra below).
			delete(m, f.key)
		}
	}
	if v, ok := m["parent"]; ok {
		p, keep, err := decodeLineage(v, joinPath(path, "parent"), depth+1)
		if err != nil {
			return err
		}
		c.Parent = p
		if !keep {
			delete(m, "parent")
		}
	}
	if v, ok := m["contact"]; ok {
		ref, keep, err := decodeContactRef(v, joinPath(path, "contact"), depth+1)
		if err != nil {
			return err
		}
		c.Contact = ref
		if !keep {
			delete(m, "contact")
		}
	}
	if v, ok := m["reported_date"]; ok {
		d, err := decodeMillis(v, joinPath(path, "reported_date"))
		if err != nil {
			return err
		}
		c.ReportedDate = d
		if d != 0 {
			delete(m, "reported_date")
		}
	}
	if v, ok := m["geolocation"]; ok {
		if g := decodeGeolocation(v); g != nil {
			c.Geolocation = g
			delete(m, "geolocation")
		}
	}
	c.Extra = takeExtra(m)
	return nil
}

// decodeContactRef decodes a reference to a contact: an object (minified or
// hydrated), a bare id string, or ""/null for none (keepRaw true).
func decodeContactRef(raw []byte, path string, depth int) (c *Contact, keepRaw bool, err error) {
	if depth > maxDepth {
		return nil, false, &DecodeError{Path: path, Err: errTooDeep}
	}
	switch k := jsonKind(raw); k {
	case "null":
		return nil, true, nil
	case "string":
		s, err := decodeString(raw, path)
		if err != nil {
			return nil, false, err
		}
		if s == "" {
			return nil, true, nil
		}
		return &Contact{ID: s}, false, nil
	case "object":
		c = new(Contact)
		if err := c.decode(raw, path, depth); err != nil {
			return nil, false, err
		}
		return c, false, nil
	default:
		return nil, false, decodeErr(path, "want object or id string, got %s", k)
	}
}
