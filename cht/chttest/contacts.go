package chttest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// --- legacy /api/v1/people and /api/v1/places ---

func (s *Server) legacyBody(c *reqCtx) (map[string]any, bool) {
	if !s.strictJSON(c) {
		return nil, false
	}
	body, _ := jsonBody(c) // strictJSON has parsed it
	if len(body) == 0 {
		s.apiError(c, http.StatusBadRequest, "Request body is empty or Content-Type header was not set to application/json.", nil)
		return nil, false
	}
	return body, true
}

func (s *Server) handleLegacyPeople(c *reqCtx, _ []string) {
	if !c.user.can(PermEdit, PermCreatePeople) {
		s.forbidden(c)
		return
	}
	body, ok := s.legacyBody(c)
	if !ok {
		return
	}
	id, rev, err := s.createPerson(body)
	if err != nil {
		s.contactError(c, err)
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"ok": true, "id": id, "rev": rev})
}

// contactErr is an error of shared-libs/contacts: {code, message}.
type contactErr struct {
	code int
	msg  string
}

func (e *contactErr) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &contactErr{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

var (
	errPersonNotFound = &contactErr{http.StatusNotFound, "Failed to find person."}
	errPlaceNotFound  = &contactErr{http.StatusNotFound, "Failed to find place."}
)

func (s *Server) contactError(c *reqCtx, err error) {
	if ce, ok := err.(*contactErr); ok {
		s.apiError(c, ce.code, ce.msg, nil)
		return
	}
	if errors.Is(err, errConflict) {
		// db.medic.post's conflict (PouchDB: status 409, message the
		// CouchDB reason), answered by api/src/server-utils.js error
		// with its status.
		s.apiError(c, http.StatusConflict, "Document update conflict.", nil)
		return
	}
	s.serverError(c, err.Error())
}

// validatePerson is people.js validatePerson: name must be defined and a
// string ("" is accepted).
func (s *Server) validatePerson(p map[string]any) error {
	if !s.personTy[typeIDOf(p)] {
		return badRequest("Wrong type, this is not a person.")
	}
	name, ok := p["name"]
	if !ok {
		return badRequest(`Person is missing a "name" property.`)
	}
	if _, isStr := name.(string); !isStr {
		return badRequest(`Property "name" must be a string.`)
	}
	if v, ok := p["reported_date"]; ok && !validContactDate(v) {
		return badRequest("Reported date is invalid: %s", jsString(jsValue(v)))
	}
	return nil
}

// createPerson is people.js createPerson: validate, resolve or create the
// place (404 for a missing one), then write.
func (s *Server) createPerson(p map[string]any) (id, rev string, err error) {
	if !jsonTruthy(p["type"]) {
		s.setDefaultPersonType(p)
	}
	if err := s.validatePerson(p); err != nil {
		return "", "", err
	}
	s.setContactReportedDate(p)
	if place, ok := p["place"]; ok && jsonTruthy(place) {
		placeID, err := s.getOrCreatePlace(place)
		if err != nil {
			return "", "", err
		}
		delete(p, "place")
		p["parent"] = s.minifyLineage(placeID)
	}
	if _, ok := p["_id"]; !ok {
		p["_id"] = newCouchID()
	}
	rev, err = s.store.put(p, false)
	if err != nil {
		return "", "", err
	}
	return p["_id"].(string), rev, nil
}

// setDefaultPersonType sets p's type to people.js getDefaultPersonType(),
// "person", when app_settings.contact_types declare it; otherwise p keeps
// the type it has, which validatePerson refuses.
func (s *Server) setDefaultPersonType(p map[string]any) {
	if _, ok := s.types["person"]; ok {
		p["type"] = "person"
	}
}

// getOrCreatePerson is people.js getOrCreatePerson: an id must name a
// person (404 otherwise), a new object is created.
func (s *Server) getOrCreatePerson(v any) (string, error) {
	switch t := v.(type) {
	case string:
		d, ok := s.store.get(t)
		if !ok || !s.isPersonMeta(extractMeta(d)) {
			return "", errPersonNotFound
		}
		return t, nil
	case map[string]any:
		if _, hasRev := t["_rev"]; !hasRev {
			id, _, err := s.createPerson(t)
			return id, err
		}
	}
	return "", badRequest("Person must be a new object or string identifier (UUID).")
}

// getOrCreatePlace is places.js getOrCreatePlace.
func (s *Server) getOrCreatePlace(v any) (string, error) {
	switch t := v.(type) {
	case string:
		d, ok := s.store.get(t)
		if !ok || !s.isPlaceMeta(extractMeta(d)) {
			return "", errPlaceNotFound
		}
		return t, nil
	case map[string]any:
		if _, hasRev := t["_rev"]; !hasRev {
			id, _, _, err := s.createPlaces(t)
			return id, err
		}
	}
	return "", badRequest("Place must be a new object or string identifier (UUID).")
}

// validDate is contacts utils isDateStrValid: a number or a string a date
// can be read from.
func validDate(v any) bool {
	switch t := v.(type) {
	case json.Number:
		return true
	case string:
		if _, ok := jsNumber(t); ok && t != "" {
			return true
		}
		_, ok := parseDateMillis(t)
		return ok
	}
	return false
}

// contactDate is shared-libs/contacts/src/libs/utils.js parseDate, which
// isDateStrValid and the reported_date people and places are stored with
// use: moment(value, ['YYYY-MM-DDTHH:mm:ssZ', 'YYYY-MM-DDTHH:mm:ss.SSSZ',
// 'x'], true), which reads the value as a string, strictly: a date and
// time with seconds, milliseconds of three digits or none, and a zone (Z
// or an offset), or an integer of milliseconds. It returns the
// milliseconds.
func contactDate(v any) (int64, bool) {
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case json.Number:
		s = jsString(jsValue(t))
	default:
		return 0, false
	}
	if momentDigits.MatchString(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	m := momentDateTime.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	zone := strings.ToUpper(m[3])
	switch len(zone) {
	case 3: // +hh
		zone += ":00"
	case 5: // +hhmm
		zone = zone[:3] + ":" + zone[3:]
	}
	t, err := time.Parse(time.RFC3339Nano, m[1]+m[2]+zone)
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

var (
	// momentDigits is moment's strict 'x' token (matchSigned).
	momentDigits = regexp.MustCompile(`^[+-]?\d+$`)
	// momentDateTime is 'YYYY-MM-DDTHH:mm:ss' with an optional '.SSS' and
	// the 'Z' token (matchShortOffset, case-insensitive).
	momentDateTime = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{3})?([Zz]|[+-]\d{2}(?::?\d{2})?)$`)
)

// validContactDate is utils.js isDateStrValid.
func validContactDate(v any) bool {
	_, ok := contactDate(v)
	return ok
}

// setContactReportedDate is how people.js createPerson and places.js
// createPlace set reported_date: a truthy one as parseDate reads it (the
// caller has validated it), else now.
func (s *Server) setContactReportedDate(d map[string]any) {
	if ms, ok := contactDate(d["reported_date"]); ok && jsonTruthy(d["reported_date"]) {
		d["reported_date"] = ms
		return
	}
	d["reported_date"] = s.now().UnixMilli()
}

// jsValue turns decoded JSON numbers into float64 for jsString.
func jsValue(v any) any {
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		return f
	}
	return v
}

func (s *Server) setReportedDate(d map[string]any) {
	switch t := d["reported_date"].(type) {
	case json.Number:
		return
	case string:
		if f, ok := jsNumber(t); ok && t != "" {
			d["reported_date"] = json.Number(jsNumberString(f))
			return
		}
		if ms, ok := parseDateMillis(t); ok {
			d["reported_date"] = ms
			return
		}
	}
	d["reported_date"] = s.now().UnixMilli()
}

// validatePlace is places.js validatePlace for a place whose parent is
// resolved (a stored place id).
func (s *Server) validatePlace(p map[string]any) error { return s.validatePlaceChain(p, 0) }

// validatePlaceChain is validatePlace at depth in the lineage: places.js
// validatePlace ends with validatePlace(place.parent), and the parent is
// the doc getPlace read, hydrated with its ancestors (fetchHydratedDoc: an
// ancestor CHT does not have stays the stub {_id, parent}), so each
// ancestor is checked as the place is.
func (s *Server) validatePlaceChain(p map[string]any, depth int) error {
	pid := str(p["_id"])
	tid := typeIDOf(p)
	ct, ok := s.types[tid]
	if !ok || ct.Person {
		return badRequest("Wrong type, object %s is not a place.", pid)
	}
	name, ok := p["name"]
	if !ok {
		return badRequest(`Place %s is missing a "name" property.`, pid)
	}
	if v, ok := p["reported_date"]; ok && !validContactDate(v) {
		return badRequest("Reported date on place %s is invalid: %s", pid, jsString(jsValue(v)))
	}
	if _, isStr := name.(string); !isStr {
		return badRequest(`Property "name" on place %s must be a string.`, pid)
	}
	if len(ct.Parents) > 0 {
		parentID := refID(p["parent"])
		if parentID == "" {
			return badRequest(`Place %s is missing a "parent" property.`, pid)
		}
		pd, _ := s.store.get(parentID)
		if !slices.Contains(ct.Parents, typeIDOf(pd)) {
			return badRequest(`%s "%s" should have one of the following parent types: "%s".`, ct.ID, pid, strings.Join(ct.Parents, ","))
		}
	}
	if c, ok := p["contact"]; ok && jsonTruthy(c) {
		switch c.(type) {
		case string, map[string]any, []any:
		default:
			return badRequest(`Property "contact" on place %s must be an object or string.`, pid)
		}
	}
	parentID := refID(p["parent"])
	if parentID == "" || depth >= maxDepth {
		return nil
	}
	parent, ok := s.store.get(parentID)
	if !ok {
		parent, _ = p["parent"].(map[string]any)
		if parent == nil {
			parent = map[string]any{"_id": parentID}
		}
	}
	return s.validatePlaceChain(parent, depth+1)
}

// createPlaces is places.js createPlaces and createPlace: parents are
// resolved (a missing one is 404) or created first, the place is
// validated, a contact id is checked before anything is written (404),
// and a new contact is created after the place and linked to it. It
// returns the place id, its revision, the contact id if any, and whether
// the answer carries "ok" (not when a new contact was created).
func (s *Server) createPlaces(p map[string]any) (id, contactID string, withOK bool, err error) {
	switch parent := p["parent"].(type) {
	case string:
		if _, err := s.getOrCreatePlace(parent); err != nil {
			return "", "", false, err
		}
	case map[string]any:
		if _, hasID := parent["_id"]; !hasID {
			pid, _, _, err := s.createPlaces(parent)
			if err != nil {
				return "", "", false, err
			}
			p["parent"] = pid
		}
	}
	if err := s.validatePlace(p); err != nil {
		return "", "", false, err
	}
	if !s.version().AtLeast(4, 7) {
		return s.createPlaceBefore47(p)
	}
	contact, hasContact := p["contact"]
	var newContact map[string]any
	if hasContact && jsonTruthy(contact) {
		switch t := contact.(type) {
		case string:
			if contactID, err = s.getOrCreatePerson(t); err != nil {
				return "", "", false, err
			}
		case map[string]any:
			if t["type"] == nil { // contact.type ?? getDefaultPersonType()
				s.setDefaultPersonType(t)
			}
			if err := s.validatePerson(t); err != nil {
				return "", "", false, err
			}
			newContact = t
		default:
			return "", "", false, badRequest("")
		}
	}
	delete(p, "contact")
	s.setContactReportedDate(p)
	if pid := refID(p["parent"]); pid != "" {
		p["parent"] = s.minifyLineage(pid)
	}
	if contactID != "" {
		p["contact"] = contactID
	}
	if _, ok := p["_id"]; !ok {
		p["_id"] = newCouchID()
	}
	id = p["_id"].(string)
	if _, err := s.store.put(p, false); err != nil {
		return "", "", false, err
	}
	if newContact == nil {
		return id, contactID, true, nil
	}
	newContact["place"] = id
	if contactID, _, err = s.createPerson(newContact); err != nil {
		return "", "", false, err
	}
	cur, _ := s.store.get(id)
	cur["contact"] = s.minifyLineage(contactID)
	if _, err := s.store.put(cur, false); err != nil {
		return "", "", false, err
	}
	return id, contactID, false, nil
}

// createPlaceBefore47 is places.js createPlace before cht-core 4.7.0,
// for a validated place: the primary contact, an id or a new person
// (created first, without a place), is read with people.getOrCreatePerson
// (404 for a missing one) and stored as lineage.minifyLineage of it, and
// the answer is db.medic.post's {ok, id, rev}, without the contact.
func (s *Server) createPlaceBefore47(p map[string]any) (id, contactID string, withOK bool, err error) {
	s.setContactReportedDate(p)
	if pid := refID(p["parent"]); pid != "" {
		p["parent"] = s.minifyLineage(pid)
	}
	if c := p["contact"]; jsonTruthy(c) {
		cid, err := s.getOrCreatePerson(c)
		if err != nil {
			return "", "", false, err
		}
		p["contact"] = s.minifyLineage(cid)
	}
	if _, ok := p["_id"]; !ok {
		p["_id"] = newCouchID()
	}
	if _, err := s.store.put(p, false); err != nil {
		return "", "", false, err
	}
	return p["_id"].(string), "", true, nil
}

func (s *Server) handleLegacyPlaces(c *reqCtx, _ []string) {
	if !c.user.can(PermEdit, PermCreatePlaces) {
		s.forbidden(c)
		return
	}
	body, ok := s.legacyBody(c)
	if !ok {
		return
	}
	id, contactID, withOK, err := s.createPlaces(body)
	if err != nil {
		s.contactError(c, err)
		return
	}
	out := map[string]any{"id": id, "rev": s.store.currentRev(id)}
	if withOK {
		out["ok"] = true
	}
	if contactID != "" {
		out["contact"] = map[string]any{"id": contactID}
	}
	writeJSON(c.w, http.StatusOK, out)
}

// placeEditable are places.js PLACE_EDITABLE_FIELDS; other members of an
// update are ignored.
var placeEditable = []string{"name", "parent", "contact", "place_id"}

// handleLegacyPlaceUpdate is places.js updatePlace.
func (s *Server) handleLegacyPlaceUpdate(c *reqCtx, params []string) {
	if !c.user.can(PermEdit, PermUpdatePlaces) {
		s.forbidden(c)
		return
	}
	body, ok := s.legacyBody(c)
	if !ok {
		return
	}
	if !slices.ContainsFunc(placeEditable, func(k string) bool { return body[k] != nil }) {
		s.apiError(c, http.StatusBadRequest, "One of the following fields are required: "+strings.Join(placeEditable, ", "), nil)
		return
	}
	cur, ok := s.store.get(params[0])
	if !ok || !s.isPlaceMeta(extractMeta(cur)) {
		s.apiError(c, http.StatusNotFound, "Failed to find place.", nil)
		return
	}
	for _, k := range placeEditable {
		if v, ok := body[k]; ok {
			cur[k] = v
		}
	}
	if v := body["contact"]; jsonTruthy(v) {
		id, err := s.getOrCreatePerson(v)
		if err != nil {
			s.contactError(c, err)
			return
		}
		cur["contact"] = id
	}
	if v := body["parent"]; jsonTruthy(v) {
		id, err := s.getOrCreatePlace(v)
		if err != nil {
			s.contactError(c, err)
			return
		}
		cur["parent"] = id
	}
	if err := s.validatePlace(cur); err != nil {
		s.contactError(c, err)
		return
	}
	for _, k := range []string{"contact", "parent"} {
		if id := refID(cur[k]); id != "" {
			cur[k] = s.minifyLineage(id)
		}
	}
	rev, err := s.store.put(cur, false)
	if err != nil {
		s.apiError(c, http.StatusConflict, err.Error(), nil)
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"id": params[0], "rev": rev})
}

// --- contacts-by-phone ---

func (s *Server) handleContactsByPhone(c *reqCtx, _ []string) {
	phone := c.r.URL.Query().Get("phone")
	if c.r.Method == http.MethodPost {
		if !s.bodyParserJSON(c) {
			return
		}
		body, err := jsonBody(c)
		if err == nil {
			phone = str(body["phone"])
		}
	}
	// api/src/controllers/contacts-by-phone.js: the number is normalised
	// with the settings' default country and looked up in
	// contacts_by_phone, which indexes the stored phone as is.
	norm, valid := phoneNormalize(s.phoneSettings(), phone)
	if phone == "" || !valid {
		writeJSON(c.w, http.StatusBadRequest, map[string]any{"error": "bad_request",
			"reason": "`phone` parameter is required and must be a valid phone number"})
		return
	}
	ids := s.store.ids(func(_ string, m docMeta) bool { return m.phone == norm && s.phoneViewType(m) })
	if len(ids) == 0 {
		writeJSON(c.w, http.StatusNotFound, map[string]any{"error": "not_found", "reason": "no matches found"})
		return
	}
	docs := make([]any, 0, len(ids))
	for _, id := range ids {
		if d, ok := s.HydratedDoc(id); ok {
			docs = append(docs, d)
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"ok": true, "docs": docs})
}

// --- cht-datasource endpoints (4.9+) ---

type kind int

const (
	kindPerson kind = iota
	kindPlace
	kindContact
	kindReport
)

func (k kind) name() string {
	return [...]string{"Person", "Place", "Contact", "Report"}[k]
}

func (s *Server) ofKind(k kind, m docMeta) bool {
	switch k {
	case kindPerson:
		return s.isPersonMeta(m)
	case kindPlace:
		return s.isPlaceMeta(m)
	case kindContact:
		return s.isContactMeta(m)
	default:
		return m.typ == "data_record"
	}
}

func (k kind) viewPerm() string {
	if k == kindReport {
		return PermViewReports
	}
	return PermViewContacts
}

func kindGet(k kind) func(*Server, *reqCtx, []string) {
	return func(s *Server, c *reqCtx, params []string) {
		if !c.user.can(k.viewPerm()) {
			s.forbidden(c)
			return
		}
		id := params[0]
		d, ok := s.store.get(id)
		if !ok || !s.ofKind(k, extractMeta(d)) {
			s.apiError(c, http.StatusNotFound, k.name()+" not found", nil)
			return
		}
		lineage := c.r.URL.Query().Get("with_lineage") == "true"
		if k == kindReport && !s.version().AtLeast(4, 22) {
			lineage = false
		}
		if lineage {
			s.hydrateDoc(d)
		}
		writeJSON(c.w, http.StatusOK, d)
	}
}

type page struct {
	limit  int
	offset int
}

// parsePage validates limit and cursor as cht-datasource does
// (checkPageArgs, then pageOffset).
func (s *Server) parsePage(c *reqCtx, defLimit int, opaque bool) (page, bool) {
	p, ok := s.checkPageArgs(c, defLimit)
	if !ok {
		return p, false
	}
	return p, s.pageOffset(c, &p, opaque)
}

// jsonText is JSON.stringify of a query parameter as Express parses it:
// undefined when absent, a string, or an array when repeated.
func jsonText(vals []string) string {
	switch len(vals) {
	case 0:
		return "undefined"
	case 1:
		b, _ := json.Marshal(vals[0])
		return string(b)
	}
	b, _ := json.Marshal(vals)
	return string(b)
}

// checkPageArgs is the datasource's getPage argument checks before the
// type is looked up: assertCursor (a given cursor must be a non-empty
// string), then assertLimit. From 4.18 (shared-libs/cht-datasource/src/
// libs/parameter-validators.ts) the limit is anything Number() makes a
// positive integer and the messages quote the value with JSON.stringify;
// before (libs/core.ts, and the controller's Number(req.query.limit) when
// truthy) they print String(value).
func (s *Server) checkPageArgs(c *reqCtx, defLimit int) (page, bool) {
	q := c.r.URL.Query()
	p := page{limit: defLimit}
	v418 := s.version().AtLeast(4, 18)
	if cur, given := q["cursor"]; given && (len(cur) != 1 || cur[0] == "") {
		s.badCursor(c, cur)
		return p, false
	}
	lim, given := q["limit"]
	if !given || (!v418 && len(lim) == 1 && lim[0] == "") {
		// 4.17: req.query.limit ? Number(limit) : limit; "" reaches
		// assertLimit as a string.
		if given {
			s.apiError(c, http.StatusBadRequest, "The limit must be a positive number: [].", nil)
			return p, false
		}
		return p, true
	}
	n, ok := 0.0, false
	if len(lim) == 1 {
		n, ok = jsNumber(lim[0])
	}
	if !ok || n <= 0 || n != math.Trunc(n) || math.IsInf(n, 0) {
		msg := "The limit must be a positive number: [NaN]."
		if ok {
			msg = fmt.Sprintf("The limit must be a positive number: [%s].", jsNumberString(n))
		}
		if v418 {
			msg = fmt.Sprintf("The limit must be a positive integer: [%s].", jsonText(lim))
		}
		s.apiError(c, http.StatusBadRequest, msg, nil)
		return p, false
	}
	p.limit = int(min(n, math.MaxInt32))
	return p, true
}

// badCursor answers 400 for the cursor values vals, in the words of the
// server's version: 4.18's parameter-validators quote them with
// JSON.stringify, before they are printed as given.
func (s *Server) badCursor(c *reqCtx, vals []string) {
	msg := fmt.Sprintf("Invalid cursor token: [%s].", strings.Join(vals, ","))
	if s.version().AtLeast(4, 18) {
		msg = fmt.Sprintf("The cursor must be a string or null for first page: [%s].", jsonText(vals))
	}
	s.apiError(c, http.StatusBadRequest, msg, nil)
}

// pageOffset reads the cursor as the local getPage does after the type
// check: validateCursor (local/libs/core.ts; 4.17 inline in local/
// person.ts getPage) takes Number(cursor), which must be a non-negative
// integer; "null" is NaN and refused (the controller passes
// req.query.cursor, a string). opaque cursors (freetext pages) are base64.
func (s *Server) pageOffset(c *reqCtx, p *page, opaque bool) bool {
	cur := c.r.URL.Query().Get("cursor")
	if cur == "" {
		return true
	}
	bad := func() bool {
		s.badCursor(c, []string{cur})
		return false
	}
	raw := cur
	if opaque {
		b, err := base64.StdEncoding.DecodeString(cur)
		if err != nil {
			return bad()
		}
		raw = string(b)
	}
	n, ok := jsNumber(raw)
	if !ok || n < 0 || n != math.Trunc(n) || math.IsInf(n, 0) {
		return bad()
	}
	p.offset = int(min(n, math.MaxInt32))
	return true
}

// pageOf slices ids; the cursor is null only when the page is short, as
// cht-datasource's fetchAndFilter does (a full last page still returns a
// cursor whose next page is empty).
func pageOf[T any](items []T, p page, opaque bool) ([]T, any) {
	if p.offset > len(items) {
		p.offset = len(items)
	}
	end := min(p.offset+p.limit, len(items))
	out := items[p.offset:end]
	if len(out) < p.limit {
		return out, nil
	}
	next := strconv.Itoa(end)
	if opaque {
		next = base64.StdEncoding.EncodeToString([]byte(next))
	}
	return out, next
}

func kindList(k kind) func(*Server, *reqCtx, []string) {
	return func(s *Server, c *reqCtx, _ []string) {
		if !c.user.can(k.viewPerm()) {
			s.forbidden(c)
			return
		}
		// api/src/controllers/{person,place}.js getAll:
		// Qualifier.byContactType(req.query.type) refuses a missing or
		// empty type; getPage checks cursor and limit, then the local
		// getPage the type, then the cursor's value.
		types := c.r.URL.Query()["type"]
		if len(types) != 1 || types[0] == "" {
			s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid contact type [%s].", jsonText(types)), nil)
			return
		}
		typ := types[0]
		p, ok := s.checkPageArgs(c, 100)
		if !ok {
			return
		}
		ct, known := s.types[typ]
		if !known || ct.Person != (k == kindPerson) {
			s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid contact type [%s].", typ), nil)
			return
		}
		if !s.pageOffset(c, &p, false) {
			return
		}
		ids := s.store.ids(func(_ string, m docMeta) bool {
			t := m.typ
			if t == "contact" {
				t = m.contactType
			}
			return t == typ
		})
		ids, cursor := pageOf(ids, p, false)
		data := make([]any, 0, len(ids))
		for _, id := range ids {
			if d, ok := s.store.get(id); ok {
				data = append(data, d)
			}
		}
		writeJSON(c.w, http.StatusOK, map[string]any{"data": data, "cursor": cursor})
	}
}

func kindUUIDs(k kind) func(*Server, *reqCtx, []string) {
	return func(s *Server, c *reqCtx, _ []string) {
		if !c.user.can(k.viewPerm()) {
			s.forbidden(c)
			return
		}
		q := c.r.URL.Query()
		typ, free, form := q.Get("type"), q.Get("freetext"), q.Get("form")
		if free != "" && (len(free) < 3 || strings.ContainsAny(free, " \t\n")) {
			s.apiError(c, http.StatusBadRequest,
				fmt.Sprintf("Invalid freetext [%s]: expected a string of at least 3 characters without whitespace.", free), nil)
			return
		}
		if k == kindReport && free == "" {
			s.apiError(c, http.StatusBadRequest, "Invalid freetext [undefined].", nil)
			return
		}
		if k == kindContact && typ == "" && free == "" {
			s.apiError(c, http.StatusBadRequest, "Either \"type\" or \"freetext\" must be provided.", nil)
			return
		}
		if typ != "" {
			if _, ok := s.types[typ]; !ok {
				s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid contact type [%s].", typ), nil)
				return
			}
		}
		p, ok := s.parsePage(c, 10000, free != "")
		if !ok {
			return
		}
		ids := s.store.ids(func(_ string, m docMeta) bool {
			if !s.ofKind(k, m) {
				return false
			}
			if typ != "" {
				t := m.typ
				if t == "contact" {
					t = m.contactType
				}
				return t == typ
			}
			return true
		})
		if free != "" || form != "" {
			kept := ids[:0]
			for _, id := range ids {
				d, ok := s.store.get(id)
				if !ok {
					continue
				}
				if form != "" && str(d["form"]) != form {
					continue
				}
				if free != "" && !freetextMatch(d, strings.ToLower(free)) {
					continue
				}
				kept = append(kept, id)
			}
			ids = kept
		}
		out, cursor := pageOf(ids, p, free != "")
		writeJSON(c.w, http.StatusOK, map[string]any{"data": out, "cursor": cursor})
	}
}

// freetextMatch approximates the contacts/reports_by_freetext views: a
// "key:value" term matches a field exactly, another term matches the start of
// any word of a string field.
func freetextMatch(d map[string]any, term string) bool {
	if k, v, ok := strings.Cut(term, ":"); ok {
		return strings.ToLower(str(lookupDotted(d, k))) == v
	}
	var found bool
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				if !strings.HasPrefix(k, "_") {
					walk(x)
				}
			}
		case string:
			for w := range strings.FieldsSeq(strings.ToLower(t)) {
				if strings.HasPrefix(w, term) {
					found = true
				}
			}
		}
	}
	walk(d)
	return found
}

func lookupDotted(d map[string]any, path string) any {
	var cur any = d
	for p := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// --- 5.2+ create and update ---

func kindCreate(k kind) func(*Server, *reqCtx, []string) {
	return func(s *Server, c *reqCtx, _ []string) {
		if k == kindPerson || k == kindPlace {
			s.createContact52(c, k)
			return
		}
		perms := map[kind][]string{kindPerson: {PermCreatePeople, PermEdit}, kindPlace: {PermCreatePlaces, PermEdit},
			kindReport: {PermCreateRecords, PermEdit}}[k]
		if !c.user.canAny(perms...) {
			s.forbidden(c)
			return
		}
		if !s.strictJSON(c) {
			return
		}
		body, err := jsonBody(c)
		if err != nil || body == nil {
			s.apiError(c, http.StatusBadRequest, "Request body must be a JSON object.", nil)
			return
		}
		// shared-libs/cht-datasource parameter-validators.ts
		// assertContactInput and assertReportInput:
		// assertDoesNotHaveField (libs/core.ts) refuses _id and _rev
		// unless undefined or null.
		for _, f := range []string{"_id", "_rev"} {
			if v, ok := body[f]; ok && v != nil {
				s.apiError(c, http.StatusBadRequest, "The ["+f+"] field must not be set.", nil)
				return
			}
		}
		delete(body, "_id")
		delete(body, "_rev")
		doc, err := s.buildDoc(k, body)
		if err != nil {
			s.apiError(c, http.StatusBadRequest, err.Error(), nil)
			return
		}
		s.saveNew(c, doc)
	}
}

// saveNew stores doc under a new id and answers it with its _id and _rev,
// as local/libs/doc.ts createDoc does.
func (s *Server) saveNew(c *reqCtx, doc map[string]any) {
	doc["_id"] = s.newUUID()
	if _, err := s.store.put(doc, false); err != nil {
		s.serverError(c, err.Error())
		return
	}
	writeJSON(c.w, http.StatusOK, doc)
}

// createContact52 is POST /api/v1/person and /api/v1/place in cht-core
// 5.2.0. api/src/routing.js postJson refuses a Content-Type other than
// application/json before the controller runs; api/src/controllers/
// person.js and place.js v1.create then call auth.assertPermissions with
// isOnline and hasAny (can_create_people or can_create_places, or
// can_edit), whose PermissionError is 403 "Insufficient privileges" for
// an offline user too; the body is checked as contactDoc52 says and the
// doc saved with a new id (local/libs/doc.ts createDoc answers the doc
// with _id and _rev).
func (s *Server) createContact52(c *reqCtx, k kind) {
	if !s.strictJSON(c) {
		return
	}
	perm := PermCreatePeople
	if k == kindPlace {
		perm = PermCreatePlaces
	}
	if !c.user.online() || !c.user.canAny(perm, PermEdit) {
		s.forbidden(c)
		return
	}
	body, _ := jsonBody(c) // strictJSON has parsed it
	if body == nil {
		// body-parser's {} for an empty body; an array has no fields
		// either, and fails as {} does.
		body = map[string]any{}
	}
	doc, err := s.contactDoc52(k, body)
	if err != nil {
		s.apiError(c, http.StatusBadRequest, err.Error(), nil)
		return
	}
	s.saveNew(c, doc)
}

// defaultPersonParents are the parents of local/person.ts
// DEFAULT_PERSON_TYPE, the type of a person of type "person" when the
// app's contact_types do not declare it.
var defaultPersonParents = []string{"district_hospital", "health_center", "clinic"}

// defaultPlaceTypes are local/place.ts DEFAULT_PLACE_TYPES_DICT, the place
// types a create accepts when the app's contact_types do not declare them.
var defaultPlaceTypes = map[string]ContactType{
	"district_hospital": {ID: "district_hospital"},
	"health_center":     {ID: "health_center", Parents: []string{"district_hospital"}},
	"clinic":            {ID: "clinic", Parents: []string{"health_center"}},
}

// contactDoc52 checks the body of a 5.2 person or place create and
// returns the doc to store, as shared-libs/cht-datasource (cht-core
// 5.2.0) does: libs/parameter-validators.ts assertPersonInput and
// assertPlaceInput (libs/core.ts assertHasRequiredField: type and name,
// and a person's parent, are non-blank strings; assertHasOptionalField: a
// person's phone, patient_id and sex, a place's parent, contact and
// place_id are strings when present, null included; assertReportedDate:
// a truthy reported_date is an integer or a UTC ISO 8601 string;
// assertDoesNotHaveField: no _id or _rev; a truthy date_of_birth is a
// string Date.parse reads), then local/person.ts and local/place.ts
// v1.create: the type (getTypeProperties: a declared type is stored as
// type "contact" plus contact_type, "person" and the legacy place types
// as they are), a person's parent (assertParent), a place's primary
// contact, which must be a contact, before its parent
// (getPrimaryContactForCreate, getParentForCreate), the parent's type
// (local/libs/lineage.ts assertHasValidParentType), parent and contact
// minified (minifyDoc) and reported_date in milliseconds
// (local/libs/core.ts getReportedDateTimestamp). Its errors are the
// InvalidArgumentError messages.
func (s *Server) contactDoc52(k kind, in map[string]any) (map[string]any, error) {
	for _, f := range []string{"type", "name"} {
		if !nonBlankString(in[f]) {
			return nil, fmt.Errorf("The [%s] field must have a [string] value.", f)
		}
	}
	if v := in["reported_date"]; jsonTruthy(v) && !validReportedDate52(v) {
		return nil, errors.New("Invalid reported_date. Expected format to be 'YYYY-MM-DDTHH:mm:ssZ', " +
			"'YYYY-MM-DDTHH:mm:ss.SSSZ', or a Unix epoch.")
	}
	for _, f := range []string{"_id", "_rev"} {
		if v, ok := in[f]; ok && v != nil {
			return nil, fmt.Errorf("The [%s] field must not be set.", f)
		}
	}
	optional := []string{"parent", "contact", "place_id"}
	if k == kindPerson {
		if !nonBlankString(in["parent"]) {
			return nil, errors.New("The [parent] field must have a [string] value.")
		}
		optional = []string{"phone", "patient_id", "sex"}
	}
	for _, f := range optional {
		if v, ok := in[f]; ok {
			if _, isStr := v.(string); !isStr {
				return nil, fmt.Errorf("The [%s] field must have the type [string].", f)
			}
		}
	}
	if v := in["date_of_birth"]; k == kindPerson && jsonTruthy(v) && !dateTimeString(v) {
		return nil, errors.New("The [date_of_birth] field must have a [date] value.")
	}

	typ := in["type"].(string)
	ct, declared := s.types[typ]
	doc := make(map[string]any, len(in)+2)
	for key, v := range in {
		doc[key] = v
	}
	if declared {
		doc["type"], doc["contact_type"] = "contact", typ
	}
	parentID, _ := in["parent"].(string)
	if k == kindPerson {
		if !s.personTy[typ] {
			return nil, fmt.Errorf("[%s] is not a valid person type.", typ)
		}
		if !declared {
			ct = ContactType{ID: typ, Parents: defaultPersonParents, Person: true}
		}
		parent, ok := s.store.get(parentID)
		if !ok {
			return nil, fmt.Errorf("Parent contact [%s] not found.", parentID)
		}
		if err := assertParentType52(ct, parent); err != nil {
			return nil, err
		}
		doc["parent"] = s.minifyLineage(parentID)
	} else {
		if !declared {
			ct, declared = defaultPlaceTypes[typ]
		}
		if !declared || ct.Person {
			return nil, fmt.Errorf("[%s] is not a valid place type.", typ)
		}
		delete(doc, "contact")
		if contactID, _ := in["contact"].(string); contactID != "" {
			d, ok := s.store.get(contactID)
			if _, isType := s.types[typeIDOf(d)]; !ok || !isType && typeIDOf(d) != "person" {
				return nil, fmt.Errorf("Primary contact [%s] not found.", contactID)
			}
			doc["contact"] = s.minifyLineage(contactID)
		}
		delete(doc, "parent")
		if parentID != "" || ct.Parents != nil {
			switch {
			case ct.Parents == nil:
				return nil, fmt.Errorf("Place type [%s] does not support having a parent contact.", ct.ID)
			case parentID == "":
				return nil, fmt.Errorf("Place type [%s] requires a parent contact.", ct.ID)
			}
			parent, ok := s.store.get(parentID)
			if pt, isType := s.types[typeIDOf(parent)]; !ok || !isType || pt.Person || pt.ID == "person" {
				return nil, fmt.Errorf("Parent contact [%s] not found.", parentID)
			}
			if err := assertParentType52(ct, parent); err != nil {
				return nil, err
			}
			doc["parent"] = s.minifyLineage(parentID)
		}
	}
	switch v := in["reported_date"].(type) {
	case nil:
		doc["reported_date"] = s.now().UnixMilli()
	case bool: // false: new Date(false) is the epoch
		doc["reported_date"] = 0
	case string:
		ms, ok := parseDateMillis(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("Invalid date value [%s].", v)
		}
		doc["reported_date"] = ms
	}
	return doc, nil
}

// nonBlankString is libs/core.ts hasField with type string and not
// isBlankString.
func nonBlankString(v any) bool {
	s, ok := v.(string)
	return ok && strings.TrimSpace(s) != ""
}

// iso8601UTC is libs/constants.ts ISO_8601_DATE_PATTERN.
var iso8601UTC = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?Z)$`)

// validReportedDate52 is libs/parameter-validators.ts isValidReportedDate:
// an integer, or a string of ISO_8601_DATE_PATTERN.
func validReportedDate52(v any) bool {
	if s, ok := v.(string); ok {
		return iso8601UTC.MatchString(s)
	}
	return isJSInteger(v)
}

// dateTimeString is libs/core.ts isDateTimeString, a string Date.parse
// reads. The fake reads the ISO 8601 forms (parseDateMillis) and takes
// any other string with a digit for a date: V8 reads many more forms
// ("Jan 2 2024"), and none without one.
func dateTimeString(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	if _, ok := parseDateMillis(s); ok {
		return true
	}
	return strings.ContainsAny(s, "0123456789")
}

// assertParentType52 is local/libs/lineage.ts assertHasValidParentType:
// the parent's type id (contact-types-utils getTypeId) is one of the
// child type's parents.
func assertParentType52(child ContactType, parent map[string]any) error {
	id, ok := parent["type"]
	if id == "contact" {
		id, ok = parent["contact_type"]
	}
	if s, isStr := id.(string); isStr && slices.Contains(child.Parents, s) {
		return nil
	}
	shown := "undefined"
	if ok {
		shown = jsString(jsValue(id))
	}
	return fmt.Errorf("Parent contact of type [%s] is not allowed for type [%s].", shown, child.ID)
}

// buildDoc validates a 5.2 person/place/report body and returns the doc to
// store (configured types as type "contact" + contact_type; parent and
// contact minified).
func (s *Server) buildDoc(k kind, body map[string]any) (map[string]any, error) {
	doc := make(map[string]any, len(body)+3)
	for key, v := range body {
		doc[key] = v
	}
	if v, ok := doc["reported_date"]; ok && v != nil && !validDate(v) {
		return nil, fmt.Errorf("Reported date is invalid: %v", v)
	}
	s.setReportedDate(doc)
	if k == kindReport {
		if str(doc["form"]) == "" {
			return nil, fmt.Errorf("Missing or empty required field (form).")
		}
		cid := refID(doc["contact"])
		if cid == "" {
			return nil, fmt.Errorf("Missing or empty required field (contact).")
		}
		if cd, ok := s.store.get(cid); !ok || !s.isContactMeta(extractMeta(cd)) {
			return nil, fmt.Errorf("Contact with _id %s does not exist.", cid)
		}
		doc["type"] = "data_record"
		doc["contact"] = s.minifyLineage(cid)
		if _, ok := doc["fields"]; !ok {
			doc["fields"] = map[string]any{}
		}
		return doc, nil
	}
	if str(doc["name"]) == "" {
		return nil, fmt.Errorf("Missing or empty required field (name).")
	}
	typ := str(doc["type"])
	if typ == "contact" {
		typ = str(doc["contact_type"])
	}
	ct, ok := s.types[typ]
	if !ok || ct.Person != (k == kindPerson) {
		return nil, fmt.Errorf("Invalid type for %ss.", strings.ToLower(k.name()))
	}
	doc["type"], doc["contact_type"] = "contact", typ
	if pid := refID(doc["parent"]); pid != "" {
		pd, ok := s.store.get(pid)
		if !ok {
			return nil, fmt.Errorf("Parent with _id %s does not exist.", pid)
		}
		if !slices.Contains(ct.Parents, typeIDOf(pd)) {
			return nil, fmt.Errorf("Invalid parent type for %s.", typ)
		}
		doc["parent"] = s.minifyLineage(pid)
	} else if len(ct.Parents) > 0 {
		return nil, fmt.Errorf("Missing or empty required field (parent).")
	}
	if cid := refID(doc["contact"]); cid != "" {
		if _, ok := s.store.get(cid); !ok {
			return nil, fmt.Errorf("Contact with _id %s does not exist.", cid)
		}
		doc["contact"] = s.minifyLineage(cid)
	}
	return doc, nil
}

func kindUpdate(k kind) func(*Server, *reqCtx, []string) {
	return func(s *Server, c *reqCtx, params []string) {
		perms := map[kind][]string{kindPerson: {PermUpdatePeople, PermEdit}, kindPlace: {PermUpdatePlaces, PermEdit},
			kindReport: {PermUpdateReports, PermEdit}}[k]
		if !c.user.canAny(perms...) {
			s.forbidden(c)
			return
		}
		if !s.strictJSON(c) {
			return
		}
		body, err := jsonBody(c)
		if err != nil || body == nil {
			s.apiError(c, http.StatusBadRequest, "Request body must be a JSON object.", nil)
			return
		}
		// shared-libs/cht-datasource/src/local/{person,place,report}.ts
		// v1.update (cht-core 5.2.0): the input {...body, _id} must be a
		// doc of the kind (isDoc: string _id and _rev); the stored one
		// must exist and be of the kind (ResourceNotFoundError); then
		// assertFieldsUnchanged (local/libs/core.ts) refuses a changed
		// _rev (a stale one included), reported_date, type or
		// contact_type (reports: _rev and reported_date).
		body["_id"] = params[0]
		rev, _ := body["_rev"].(string)
		form, _ := body["form"].(string)
		if rev == "" || !s.ofKind(k, extractMeta(body)) || (k == kindReport && form == "") {
			fields := "_id, _rev, and type"
			if k == kindReport {
				fields = "_id, _rev, form, and type"
			}
			s.apiError(c, http.StatusBadRequest, "Valid "+fields+" fields must be provided.", nil)
			return
		}
		cur, ok := s.store.get(params[0])
		if curForm, _ := cur["form"].(string); !ok || !s.ofKind(k, extractMeta(cur)) || (k == kindReport && curForm == "") {
			s.apiError(c, http.StatusNotFound, fmt.Sprintf("%s record [%s] not found.", k.name(), params[0]), nil)
			return
		}
		keys := []string{"_rev", "reported_date", "type", "contact_type"}
		if k == kindReport {
			keys = keys[:2]
		}
		var changed []string
		for _, key := range keys {
			if !jsStrictEqual(cur[key], body[key]) {
				changed = append(changed, key)
			}
		}
		if len(changed) > 0 {
			s.apiError(c, http.StatusBadRequest, "The ["+strings.Join(changed, ",")+"] fields must not be changed.", nil)
			return
		}
		delete(body, "_rev")
		delete(body, "_id")
		doc, err := s.buildDoc(k, body)
		if err != nil {
			s.apiError(c, http.StatusBadRequest, err.Error(), nil)
			return
		}
		doc["_id"], doc["_rev"] = params[0], rev
		if _, err := s.store.put(doc, false); err != nil {
			s.apiError(c, http.StatusConflict, "Document update conflict.", nil)
			return
		}
		writeJSON(c.w, http.StatusOK, doc)
	}
}

// jsStrictEqual is JavaScript's === for JSON values: primitives by value
// (numbers numerically), objects and arrays never equal.
func jsStrictEqual(a, b any) bool {
	switch a.(type) {
	case map[string]any, []any:
		return false
	}
	switch b.(type) {
	case map[string]any, []any:
		return false
	}
	if af, ok := jsonFloat(a); ok {
		bf, ok := jsonFloat(b)
		return ok && af == bf
	}
	return a == b
}

// jsonFloat reads a JSON number.
func jsonFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	case float64:
		return t, true
	}
	return 0, false
}

// refID accepts a reference given as an id string or as a {_id} object.
func refID(v any) string {
	if id := str(v); id != "" {
		return id
	}
	return idOf(v)
}
