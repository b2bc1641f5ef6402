package cht

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
)

// CreateResult is the outcome of creating a person or place.
type CreateResult struct {
	ID  string
	Rev string
	// Doc is the created document as CHT returned it (CHT 5.2+ endpoints);
	// nil with the legacy endpoints, which answer only {ok, id, rev}.
	Doc *Contact
	// ContactID is the id of the place's primary contact, new or
	// existing, as the legacy endpoint answers it from CHT 4.7; "" before
	// 4.7, whose answer does not name it, and with the 5.2 endpoints
	// (see Doc.Contact).
	ContactID string
}

// Create creates a person or a place. A contact of type "person" (the
// default when Type is empty) or of a person type of the app's
// contact_types ([Client.ContactTypes]) is created as a person whose parent
// place is p.Parent.ID; any other type as a place under p.Parent.ID (omit
// for a top-level place) with primary contact p.Contact.ID if set. It uses
// POST /api/v1/person or /api/v1/place on CHT 5.2+ and the legacy
// POST /api/v1/people or /api/v1/places otherwise. A configured type may
// be given as Type "contact" plus ContactType or directly as Type, and is
// sent in the form each endpoint expects. Other fields, including Extra,
// are sent as they are. Set p.ID to choose the document id, which makes
// retrying a create safe: a replay fails with an error matching
// [ErrConflict] rather than creating a second contact. The 5.2 endpoints
// refuse a chosen id, so a contact with p.ID is created through the
// legacy endpoints on every version (CreateResult.Doc is then nil).
// Create is not retried on server errors.
func (s *ContactsService) Create(ctx context.Context, p *Contact) (*CreateResult, error) {
	if p == nil || p.Name == "" {
		return nil, fmt.Errorf("cht: create contact: name is required")
	}
	doc := *p
	if doc.Type == "" {
		doc.Type = personTypeID
	}
	person, err := s.isPersonType(ctx, doc.TypeID())
	if err != nil {
		return nil, fmt.Errorf("cht: create contact: %w", err)
	}
	kind, parentKey := "place", "parent"
	if person {
		kind, parentKey = "person", "place"
	}
	if doc.TypeID() == "" {
		return nil, fmt.Errorf("cht: create %s: type is required", kind)
	}
	v2, err := s.client.supports(ctx, featureCreateV2)
	if err != nil {
		return nil, fmt.Errorf("cht: create %s: %w", kind, err)
	}
	if doc.ID != "" {
		// POST /api/v1/person and /api/v1/place answer 400 to a body
		// with _id (cht-core shared-libs/cht-datasource
		// parameter-validators.ts assertContactInput:
		// assertDoesNotHaveField(data, '_id')). The legacy endpoints,
		// still routed on 5.2, write the body with db.medic.post
		// (shared-libs/contacts people.js createPerson, places.js
		// createPlace), which keeps the _id: a replay is a 409.
		v2 = false
	}
	body, err := createBody(&doc, v2, parentKey)
	if err != nil {
		return nil, fmt.Errorf("cht: create %s: %w", kind, err)
	}
	path := "/api/v1/" + map[bool]string{true: "people", false: "places"}[person]
	if v2 {
		path = "/api/v1/" + kind
	}
	res, err := s.client.create(ctx, path, body, v2)
	if err != nil {
		return nil, fmt.Errorf("cht: create %s: %w", kind, err)
	}
	return res, nil
}

// isPersonType reports whether contact type id is a person type: "person"
// and the legacy place types answer without a request, any other type is
// looked up in the app's contact_types (api/src/services/settings.js
// serves them; shared-libs/contact-types-utils isPersonType reads the
// person flag).
func (s *ContactsService) isPersonType(ctx context.Context, id string) (bool, error) {
	switch {
	case id == personTypeID:
		return true, nil
	case slices.Contains(legacyPlaceTypes, id):
		return false, nil
	}
	types, err := s.client.ContactTypes(ctx)
	if err != nil {
		return false, err
	}
	return types.IsPerson(id), nil
}

var legacyPlaceTypes = []string{"district_hospital", "health_center", "clinic"}

// createBody turns a contact into the body of a create call. Lineage and
// the primary contact are sent as ids. v2 bodies carry the contact type
// id in type; legacy bodies keep type "contact" + contact_type, and name
// the parent parentKey ("place" for people, "parent" for places).
func createBody(c *Contact, v2 bool, parentKey string) (map[string]json.RawMessage, error) {
	cp := *c
	parent, contact := cp.Parent, cp.Contact
	cp.Parent, cp.Contact, cp.Rev = nil, nil, ""
	switch {
	case v2:
		cp.Type, cp.ContactType = cp.TypeID(), ""
		parentKey = "parent"
	case cp.Type != "contact" && !slices.Contains(legacyTypes, cp.Type):
		// The legacy endpoints know configured types only as
		// type "contact" + contact_type.
		cp.Type, cp.ContactType = "contact", cp.Type
	}
	b, err := cp.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	delete(m, "_rev")
	delete(m, "parent")
	delete(m, "contact")
	if parent != nil && parent.ID != "" {
		m[parentKey], _ = json.Marshal(parent.ID)
	}
	if contact != nil && contact.ID != "" {
		m["contact"], _ = json.Marshal(contact.ID)
	}
	return m, nil
}

func (c *Client) create(ctx context.Context, path string, body any, v2 bool) (*CreateResult, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, request{method: http.MethodPost, path: path, body: body}, &raw); err != nil {
		return nil, err
	}
	if v2 {
		doc := new(Contact)
		if err := json.Unmarshal(raw, doc); err != nil {
			return nil, fmt.Errorf("decode created doc: %w", err)
		}
		return &CreateResult{ID: doc.ID, Rev: doc.Rev, Doc: doc}, nil
	}
	var legacy struct {
		ID      string `json:"id"`
		Rev     string `json:"rev"`
		Contact struct {
			ID string `json:"id"`
		} `json:"contact"`
	}
	if err := json.Unmarshal(raw, &legacy); err != nil {
		return nil, fmt.Errorf("decode create response: %w", err)
	}
	if legacy.ID == "" {
		return nil, fmt.Errorf("create response has no id: %s", capText(string(raw[:min(len(raw), maxErrorBody)]), len(raw), maxErrorBody))
	}
	return &CreateResult{ID: legacy.ID, Rev: legacy.Rev, ContactID: legacy.Contact.ID}, nil
}

// require returns an error matching ErrUnsupported when the server lacks f.
func (c *Client) require(ctx context.Context, f feature) error {
	v, err := c.detectVersion(ctx, false)
	if err != nil {
		return err
	}
	if !has(v, f) {
		return fmt.Errorf("%w (server %s)", ErrUnsupported, v)
	}
	return nil
}

// getContact reads a contact through a cht-datasource endpoint when the
// server has it, else through hydrate (with lineage) or the raw document.
func getContact(ctx context.Context, c *Client, f feature, prefix, id string, opts *GetOptions) (*Contact, error) {
	if id == "" {
		return nil, fmt.Errorf("empty id")
	}
	ok, err := c.supports(ctx, f)
	if err != nil {
		return nil, err
	}
	doc := new(Contact)
	switch {
	case ok:
		req := request{method: http.MethodGet, path: prefix + escapeID(id), retry: true}
		if opts.lineage() {
			req.query = map[string][]string{"with_lineage": {"true"}}
		}
		if _, err := c.do(ctx, req, doc); err != nil {
			return nil, err
		}
	case opts.lineage():
		h, err := c.hydrateOne(ctx, id)
		if err != nil {
			return nil, err
		}
		if doc, err = h.Contact(); err != nil {
			return nil, err
		}
	default:
		if err := c.Docs.Get(ctx, id, doc); err != nil {
			return nil, err
		}
	}
	if !doc.IsContact() {
		return nil, fmt.Errorf("%w: document is not a contact (type %q)", ErrNotFound, doc.Type)
	}
	return doc, nil
}
