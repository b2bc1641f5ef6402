package cht

import (
	"encoding/json"
	"slices"
	"strconv"
)

// Contact is a CHT contact document: a person or a place.
//
// CHT before 3.7 used the fixed types "district_hospital", "health_center",
// "clinic" and "person"; configurable hierarchies store type "contact"
// plus contact_type. Use [Contact.TypeID] to get the effective type and
// [Contact.IsPerson] to tell people from places.
//
// Members without a field here are kept in Extra and written back by
// MarshalJSON, so decoding and re-encoding a document loses no data. So
// are values CHT uses as placeholders ("parent": "", "geolocation": "",
// "external_id": ""), nulls, and members of the wrong JSON type (which
// decoding reports as a [DecodeError]). Two normalisations apply: a parent
// or contact given as a bare id string is re-encoded as {"_id": id}, and a
// null geolocation coordinate is dropped. A date_of_death stored as a
// number, the milliseconds CHT's death_reporting transition writes when
// no date field is configured, is decoded as its digits into DateOfDeath
// and written back as a number.
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
	DateOfDeath    string `json:"date_of_death,omitempty"` // as DateOfBirth, or milliseconds as digits (see below)
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

	// deathMillis records that date_of_death was stored as a number of
	// milliseconds, as CHT's death_reporting transition writes it:
	// DateOfDeath holds its digits, and MarshalJSON writes a number again.
	deathMillis bool
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
	if _, err := strconv.ParseInt(c.DateOfDeath, 10, 64); err == nil && c.deathMillis {
		m["date_of_death"] = json.RawMessage(c.DateOfDeath)
	} else {
		m.str("date_of_death", c.DateOfDeath)
	}
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

// UnmarshalJSON decodes a contact document in one pass. Errors are
// *DecodeError values naming the JSON path (see [DecodeError] for which
// errors still fill c).
func (c *Contact) UnmarshalJSON(b []byte) error {
	return decodeContact(b, c)
}
