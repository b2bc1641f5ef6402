package cht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// ContactType is one entry of a CHT app's contact hierarchy
// (app_settings.contact_types): a person type or a place type and the
// types it may be placed under.
type ContactType struct {
	// ID is the type id: the contact_type of documents with type
	// "contact", or one of the legacy type names.
	ID string
	// Person is true for person types; every other type is a place type.
	Person bool
	// Parents are the ids of the types a contact of this type may be
	// placed under; empty for top-level places.
	Parents []string
}

// ContactTypes is a CHT app's contact hierarchy: it tells whether a type
// id is a person type, a place type, or unknown. It is an immutable value,
// safe for concurrent use and cheap to copy. The zero value knows no types;
// build one with [ParseContactTypes], [LegacyContactTypes] or
// [Client.ContactTypes].
type ContactTypes struct {
	types []ContactType // in configuration order; never modified
	index map[string]int
}

// ErrUnknownContactType is wrapped by errors about a contact whose type
// ([Contact.TypeID]) is not in the hierarchy ([ContactTypes.Lookup] finds
// no such type).
var ErrUnknownContactType = errors.New("contact type not in the app's contact_types")

// personTypeID is the type id CHT always treats as a person, configured or
// not (contact-types-utils HARDCODED_PERSON_TYPE).
const personTypeID = "person"

// newContactTypes builds a hierarchy from types. Ids must be non-empty and
// unique. A parent need not be one of the types: CHT does not check that
// either (shared-libs/contact-types-utils isParentOf only looks the id up
// in parents, and its own tests declare a type whose parents are not
// declared), so such a parent only means that no contact can be placed
// there. The type id "person" is a person type even when declared without
// Person, as in CHT.
func newContactTypes(types ...ContactType) (ContactTypes, error) {
	if len(types) == 0 {
		return ContactTypes{}, errors.New("cht: contact types: none given")
	}
	ct := ContactTypes{types: make([]ContactType, len(types)), index: make(map[string]int, len(types))}
	for i, t := range types {
		if t.ID == "" {
			return ContactTypes{}, fmt.Errorf("cht: contact types: entry %d has no id", i)
		}
		if _, dup := ct.index[t.ID]; dup {
			return ContactTypes{}, fmt.Errorf("cht: contact types: id %q declared twice", t.ID)
		}
		t.Parents = slices.Clone(t.Parents)
		t.Person = t.Person || t.ID == personTypeID
		ct.types[i] = t
		ct.index[t.ID] = i
	}
	return ct, nil
}

// LegacyContactTypes returns the hierarchy CHT uses when the app settings
// have no contact_types (apps made before CHT 3.7): district_hospital >
// health_center > clinic, and person under any of the three.
func LegacyContactTypes() ContactTypes {
	ct, err := newContactTypes(
		ContactType{ID: "district_hospital"},
		ContactType{ID: "health_center", Parents: []string{"district_hospital"}},
		ContactType{ID: "clinic", Parents: []string{"health_center"}},
		ContactType{ID: personTypeID, Person: true, Parents: []string{"district_hospital", "health_center", "clinic"}},
	)
	if err != nil {
		panic(err) // the literal above is valid
	}
	return ct
}

// ParseContactTypes reads the contact hierarchy from app settings JSON
// (the body of GET /api/v1/settings, [Client.AppSettings], or an
// app_settings.json file). A missing, null or empty contact_types gives
// [LegacyContactTypes], as in CHT. Each entry needs a string id; person must be a boolean and parents
// an array of strings when present. Other members (name_key, icon, ...)
// are ignored. Errors are *DecodeError values naming the member, e.g.
// "contact_types.2.parents".
func ParseContactTypes(appSettings []byte) (ContactTypes, error) {
	var settings struct {
		ContactTypes json.RawMessage `json:"contact_types"`
	}
	if k := jsonKind(appSettings); k != "object" {
		return ContactTypes{}, decodeErr("", "app settings: want object, got %s", k)
	}
	if err := json.Unmarshal(appSettings, &settings); err != nil {
		return ContactTypes{}, &DecodeError{Err: fmt.Errorf("app settings: %w", err)}
	}
	raw := settings.ContactTypes
	if len(raw) == 0 || isNull(raw) {
		return LegacyContactTypes(), nil
	}
	if k := jsonKind(raw); k != "array" {
		return ContactTypes{}, decodeErr("contact_types", "want array, got %s", k)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return ContactTypes{}, &DecodeError{Path: "contact_types", Err: err}
	}
	if len(entries) == 0 {
		return LegacyContactTypes(), nil
	}
	types := make([]ContactType, len(entries))
	for i, e := range entries {
		path := "contact_types." + strconv.Itoa(i)
		if err := types[i].decode(e, path); err != nil {
			return ContactTypes{}, err
		}
	}
	ct, err := newContactTypes(types...)
	if err != nil {
		return ContactTypes{}, &DecodeError{Path: "contact_types", Err: err}
	}
	return ct, nil
}

func (t *ContactType) decode(raw []byte, path string) error {
	if k := jsonKind(raw); k != "object" {
		return decodeErr(path, "want object, got %s", k)
	}
	var e struct {
		ID      json.RawMessage `json:"id"`
		Person  json.RawMessage `json:"person"`
		Parents json.RawMessage `json:"parents"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return &DecodeError{Path: path, Err: err}
	}
	if jsonKind(e.ID) != "string" {
		return decodeErr(joinPath(path, "id"), "want string, got %s", jsonKind(e.ID))
	}
	if err := json.Unmarshal(e.ID, &t.ID); err != nil || t.ID == "" {
		return decodeErr(joinPath(path, "id"), "want a non-empty id")
	}
	switch k := jsonKind(e.Person); k {
	case "nothing", "null":
	case "boolean":
		t.Person = string(e.Person) == "true"
	default:
		return decodeErr(joinPath(path, "person"), "want boolean, got %s", k)
	}
	switch k := jsonKind(e.Parents); k {
	case "nothing", "null":
	case "array":
		var ps []json.RawMessage
		if err := json.Unmarshal(e.Parents, &ps); err != nil {
			return &DecodeError{Path: joinPath(path, "parents"), Err: err}
		}
		for j, p := range ps {
			var s string
			if jsonKind(p) != "string" || json.Unmarshal(p, &s) != nil || s == "" {
				return decodeErr(joinPath(path, "parents."+strconv.Itoa(j)), "want a type id string, got %s", jsonKind(p))
			}
			t.Parents = append(t.Parents, s)
		}
	default:
		return decodeErr(joinPath(path, "parents"), "want array, got %s", k)
	}
	return nil
}

// Lookup returns the type with id. As in CHT, "person" is a person type
// of every hierarchy, declared or not (it then has no Parents).
func (ct ContactTypes) Lookup(id string) (ContactType, bool) {
	i, ok := ct.index[id]
	if !ok {
		if id == personTypeID && len(ct.types) > 0 {
			return ContactType{ID: personTypeID, Person: true}, true
		}
		return ContactType{}, false
	}
	t := ct.types[i]
	t.Parents = slices.Clone(t.Parents)
	return t, true
}

// IsPerson reports whether id is a person type of the hierarchy.
func (ct ContactTypes) IsPerson(id string) bool {
	i, ok := ct.index[id]
	if !ok {
		return id == personTypeID && len(ct.types) > 0 // as Lookup
	}
	return ct.types[i].Person
}

// IsPlace reports whether id is a place type of the hierarchy.
func (ct ContactTypes) IsPlace(id string) bool {
	i, ok := ct.index[id]
	return ok && !ct.types[i].Person
}

// Types returns the types in configuration order (a copy).
func (ct ContactTypes) Types() []ContactType {
	out := make([]ContactType, len(ct.types))
	for i, t := range ct.types {
		t.Parents = slices.Clone(t.Parents)
		out[i] = t
	}
	return out
}

// ContactTypes reads the app's contact hierarchy with GET /api/v1/settings
// (see [ParseContactTypes]). Any authenticated user may read it. Reload it
// when the app's configuration may have changed.
func (c *Client) ContactTypes(ctx context.Context) (ContactTypes, error) {
	body, err := c.settings(ctx)
	if err != nil {
		return ContactTypes{}, fmt.Errorf("cht: contact types: %w", err)
	}
	ct, err := ParseContactTypes(body)
	if err != nil {
		return ContactTypes{}, fmt.Errorf("cht: contact types from %s/api/v1/settings: %w", c.baseText, err)
	}
	return ct, nil
}
