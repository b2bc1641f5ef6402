package cht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// ContactsService accesses contacts of any type.
type ContactsService service

// Get fetches a person or place by uuid with GET /api/v1/contact/<uuid>
// (CHT 4.18+), falling back to hydrate (WithLineage) or the raw document on
// older servers.
func (s *ContactsService) Get(ctx context.Context, id string, opts *GetOptions) (*Contact, error) {
	c, err := getContact(ctx, s.client, featureContactGet, "/api/v1/contact/", id, opts)
	if err != nil {
		return nil, fmt.Errorf("cht: get contact %q: %w", id, err)
	}
	return c, nil
}

// ByPhone returns the hydrated contacts whose phone matches, via
// GET /api/v1/contacts-by-phone (CHT 3.10+). CHT normalises the number
// with libphonenumber and the app's default country code, then matches it
// against each contact's phone exactly as stored: a contact saved with a
// national-format number ("0712 345678") is never found, so store phones
// in E.164. No match returns (nil, nil); an invalid number is an
// *APIError with StatusCode 400.
func (s *ContactsService) ByPhone(ctx context.Context, phone string) ([]*Contact, error) {
	if phone == "" {
		return nil, fmt.Errorf("cht: contacts by phone: empty phone")
	}
	var res struct {
		OK   bool       `json:"ok"`
		Docs []*Contact `json:"docs"`
	}
	// url.Values encodes "+" as %2B; a raw "+" would arrive as a space.
	_, err := s.client.do(ctx, request{
		method: http.MethodGet, path: "/api/v1/contacts-by-phone",
		query: url.Values{"phone": {phone}}, retry: true,
	}, &res)
	// No match is CHT's 404 {"error":"not_found","reason":"no matches
	// found"} (api/src/controllers/contacts-by-phone.js). Another 404, such
	// as CouchDB's "Database does not exist." of a CHT without the route
	// (before 3.10) or a wrong URL, is an error: read as no match, it would
	// make a "find, else create" flow create the contact again each time.
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound && apiErr.Err == "not_found" &&
		apiErr.Reason == "no matches found" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cht: contacts by phone: %w", err)
	}
	return res.Docs, nil
}

// ByShortcode returns the contacts whose patient_id or place_id is code,
// found as CHT finds the subject of a report that names it: the
// medic-client/contacts_by_reference view (key ["shortcode", code]) read
// through the API's /medic proxy, which answers only online users (an
// offline user gets an *APIError with StatusCode 403). The contacts are
// the stored documents, not hydrated. CHT's transitions generate unique
// shortcodes but nothing stops a user from typing one twice, so check
// how many came back before taking the first. No match returns
// (nil, nil). When members of contacts cannot be decoded (see
// [DecodeError]; CHT stores what it is sent, a phone as a number too),
// every contact is still returned, with their member errors joined.
func (s *ContactsService) ByShortcode(ctx context.Context, code string) ([]*Contact, error) {
	if code == "" {
		return nil, fmt.Errorf("cht: contacts by shortcode: empty shortcode")
	}
	key, err := json.Marshal([2]string{"shortcode", code})
	if err != nil {
		return nil, fmt.Errorf("cht: contacts by shortcode: %w", err)
	}
	var res struct {
		Rows []struct {
			Doc json.RawMessage `json:"doc"`
		} `json:"rows"`
	}
	_, err = s.client.do(ctx, request{
		method: http.MethodGet, path: "/" + s.client.db + "/_design/medic-client/_view/contacts_by_reference",
		query: url.Values{"key": {string(key)}, "include_docs": {"true"}}, retry: true,
	}, &res)
	if err != nil {
		return nil, fmt.Errorf("cht: contacts by shortcode %q: %w", code, err)
	}
	var out []*Contact
	var members []error
	for _, r := range res.Rows {
		if len(r.Doc) == 0 || isNull(r.Doc) {
			continue
		}
		c := new(Contact)
		if err := c.UnmarshalJSON(r.Doc); err != nil {
			// A document error is never joined with others: its first
			// *DecodeError tells which kind err is.
			var de *DecodeError
			if !errors.As(err, &de) || !de.Member {
				return nil, fmt.Errorf("cht: contacts by shortcode %q: %w", code, err)
			}
			members = append(members, fmt.Errorf("contact %q: %w", c.ID, err))
		}
		out = append(out, c)
	}
	if len(members) > 0 {
		return out, fmt.Errorf("cht: contacts by shortcode %q: %w", code, errors.Join(members...))
	}
	return out, nil
}
