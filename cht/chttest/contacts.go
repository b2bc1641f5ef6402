package chttest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// --- legacy /api/v1/people and /api/v1/places ---

func (s *Server) legacyBody(c *reqCtx) (map[string]any, bool) {
	if !s.strictJSON(c) {
		return nil, false
	}
	body, err := jsonBody(c)
	if err != nil {
		s.apiError(c, http.StatusBadRequest, "Invalid JSON: "+err.Error(), nil)
		return nil, false
	}
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
		s.apiError(c, http.StatusBadRequest, err.Error(), nil)
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"ok": true, "id": id, "rev": rev})
}

// createPerson implements shared-libs/contacts people.createPerson.
func (s *Server) createPerson(p map[string]any) (id, rev string, err error) {
	if _, ok := p["type"]; !ok {
		p["type"] = "person"
	}
	if !s.personTy[typeIDOf(p)] {
		return "", "", fmt.Errorf("Wrong type, this is not a person.")
	}
	if name, _ := p["name"].(string); name == "" {
		return "", "", fmt.Errorf(`Person is missing a "name" property.`)
	}
	if err := s.setReportedDate(p); err != nil {
		return "", "", err
	}
	if place, ok := p["place"]; ok {
		var placeID string
		switch t := place.(type) {
		case string:
			placeID = t
			if _, ok := s.store.get(placeID); !ok {
				return "", "", fmt.Errorf("Failed to find place.")
			}
		case map[string]any:
			if placeID, _, err = s.createPlace(t); err != nil {
				return "", "", err
			}
		default:
			return "", "", fmt.Errorf("Place must be a string id or an object.")
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

func (s *Server) setReportedDate(d map[string]any) error {
	v, ok := d["reported_date"]
	if !ok || v == nil {
		d["reported_date"] = s.now().UnixMilli()
		return nil
	}
	switch t := v.(type) {
	case json.Number:
		return nil
	case string:
		if digits13.MatchString(t) {
			d["reported_date"] = json.Number(t)
			return nil
		}
		if ms, ok := parseDateMillis(t); ok {
			d["reported_date"] = ms
			return nil
		}
	}
	return fmt.Errorf("Reported date is invalid: %v", v)
}

var legacyPlaceNames = map[string]string{"district_hospital": "Districts", "health_center": "Health Centers", "clinic": "Clinics"}

// createPlace implements shared-libs/contacts places.createPlace, returning
// the place id and, when a contact was set, its id.
func (s *Server) createPlace(p map[string]any) (id, contactID string, err error) {
	tid := typeIDOf(p)
	ct, ok := s.types[tid]
	if !ok || ct.Person {
		return "", "", fmt.Errorf("Wrong type, object %s is not a place.", mustJSON(p))
	}
	if name, _ := p["name"].(string); name == "" {
		return "", "", fmt.Errorf(`Place is missing a "name" property.`)
	}
	if err := s.setReportedDate(p); err != nil {
		return "", "", err
	}
	plural := legacyPlaceNames[tid]
	if plural == "" {
		plural = tid
	}
	parent, hasParent := p["parent"]
	if hasParent && parent != "" && parent != nil {
		var pid string
		switch t := parent.(type) {
		case string:
			pid = t
		case map[string]any:
			if pid, _, err = s.createPlace(t); err != nil {
				return "", "", err
			}
		}
		pd, ok := s.store.get(pid)
		if !ok {
			return "", "", fmt.Errorf("Failed to find parent.")
		}
		if !slices.Contains(ct.Parents, typeIDOf(pd)) {
			return "", "", fmt.Errorf("%s should have %q parent type.", plural, strings.Join(ct.Parents, `" or "`))
		}
		p["parent"] = s.minifyLineage(pid)
	} else if len(ct.Parents) > 0 {
		return "", "", fmt.Errorf("%s should have %q parent type.", plural, strings.Join(ct.Parents, `" or "`))
	}
	contact, hasContact := p["contact"]
	delete(p, "contact")
	if _, ok := p["_id"]; !ok {
		p["_id"] = newCouchID()
	}
	id = p["_id"].(string)
	if _, err := s.store.put(p, false); err != nil {
		return "", "", err
	}
	if hasContact && contact != nil && contact != "" {
		switch t := contact.(type) {
		case string:
			if _, ok := s.store.get(t); !ok {
				return "", "", fmt.Errorf("Failed to find person.")
			}
			contactID = t
		case map[string]any:
			t["place"] = id
			if contactID, _, err = s.createPerson(t); err != nil {
				return "", "", err
			}
		}
		cur, _ := s.store.get(id)
		cur["contact"] = s.minifyLineage(contactID)
		if _, err := s.store.put(cur, false); err != nil {
			return "", "", err
		}
	}
	return id, contactID, nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
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
	id, contactID, err := s.createPlace(body)
	if err != nil {
		s.apiError(c, http.StatusBadRequest, err.Error(), nil)
		return
	}
	out := map[string]any{"ok": true, "id": id, "rev": s.store.currentRev(id)}
	if contactID != "" {
		out["contact"] = map[string]any{"id": contactID}
	}
	writeJSON(c.w, http.StatusOK, out)
}

var placeEditable = []string{"name", "type", "contact_type", "parent", "contact", "place_id", "external_id", "notes", "phone", "geolocation"}

func (s *Server) handleLegacyPlaceUpdate(c *reqCtx, params []string) {
	if !c.user.can(PermEdit, PermUpdatePlaces) {
		s.forbidden(c)
		return
	}
	body, ok := s.legacyBody(c)
	if !ok {
		return
	}
	cur, ok := s.store.get(params[0])
	if !ok || !s.isPlaceMeta(extractMeta(cur)) {
		s.apiError(c, http.StatusNotFound, "Failed to find place.", nil)
		return
	}
	for _, k := range placeEditable {
		v, ok := body[k]
		if !ok {
			continue
		}
		switch k {
		case "parent", "contact":
			id := str(v)
			if id == "" {
				id = idOf(v)
			}
			if _, found := s.store.get(id); !found {
				s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Failed to find %s.", k), nil)
				return
			}
			cur[k] = s.minifyLineage(id)
		default:
			cur[k] = v
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
		body, err := jsonBody(c)
		if err == nil {
			phone = str(body["phone"])
		}
	}
	norm := normalizePhone(phone)
	if !validPhone(norm) {
		writeJSON(c.w, http.StatusBadRequest, map[string]any{"error": "bad_request",
			"reason": "`phone` parameter is required and must be a valid phone number"})
		return
	}
	ids := s.store.ids(func(_ string, m docMeta) bool { return m.phone == norm && s.isContactMeta(m) })
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
		if k == kindReport && !s.ver.atLeast(4, 22) {
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

// parsePage validates limit and cursor as cht-datasource does.
func (s *Server) parsePage(c *reqCtx, defLimit int, opaque bool) (page, bool) {
	q := c.r.URL.Query()
	p := page{limit: defLimit}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			s.apiError(c, http.StatusBadRequest, fmt.Sprintf("The limit must be a positive number: [%s].", l), nil)
			return p, false
		}
		p.limit = n
	}
	if cur := q.Get("cursor"); cur != "" && cur != "null" {
		raw := cur
		if opaque {
			b, err := base64.StdEncoding.DecodeString(cur)
			if err != nil {
				s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid cursor token: [%s].", cur), nil)
				return p, false
			}
			raw = string(b)
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid cursor token: [%s].", cur), nil)
			return p, false
		}
		p.offset = n
	}
	return p, true
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
		typ := c.r.URL.Query().Get("type")
		ct, known := s.types[typ]
		if !known || ct.Person != (k == kindPerson) {
			s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid contact type [%s].", typ), nil)
			return
		}
		p, ok := s.parsePage(c, 100, false)
		if !ok {
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
		if _, ok := body["_id"]; ok {
			s.apiError(c, http.StatusBadRequest, "Ignoring _id: cannot pass _id when creating a document.", nil)
			return
		}
		doc, err := s.buildDoc(k, body)
		if err != nil {
			s.apiError(c, http.StatusBadRequest, err.Error(), nil)
			return
		}
		doc["_id"] = s.newUUID()
		if _, err := s.store.put(doc, false); err != nil {
			s.serverError(c, err.Error())
			return
		}
		writeJSON(c.w, http.StatusOK, doc)
	}
}

// buildDoc validates a 5.2 person/place/report body and returns the doc to
// store (configured types as type "contact" + contact_type; parent and
// contact minified).
func (s *Server) buildDoc(k kind, body map[string]any) (map[string]any, error) {
	doc := make(map[string]any, len(body)+3)
	for key, v := range body {
		doc[key] = v
	}
	if err := s.setReportedDate(doc); err != nil {
		return nil, err
	}
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
		cur, ok := s.store.get(params[0])
		if !ok || !s.ofKind(k, extractMeta(cur)) {
			s.apiError(c, http.StatusNotFound, k.name()+" not found", nil)
			return
		}
		if str(body["_rev"]) == "" {
			s.apiError(c, http.StatusBadRequest, "Missing or empty required field (_rev).", nil)
			return
		}
		if mustJSON(body["reported_date"]) != mustJSON(cur["reported_date"]) {
			s.apiError(c, http.StatusBadRequest, "Value of reported_date cannot be changed.", nil)
			return
		}
		rev := str(body["_rev"])
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

// refID accepts a reference given as an id string or as a {_id} object.
func refID(v any) string {
	if id := str(v); id != "" {
		return id
	}
	return idOf(v)
}
