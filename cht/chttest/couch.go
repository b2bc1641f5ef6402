package chttest

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Server) handleDBInfo(c *reqCtx, _ []string) {
	writeJSON(c.w, http.StatusOK, map[string]any{"db_name": "medic", "doc_count": s.store.count(),
		"update_seq": formatSeq(s.store.lastSeq())})
}

func (s *Server) decodeDocBody(c *reqCtx) (map[string]any, bool) {
	if !isJSON(c.r) {
		couchError(c.w, http.StatusUnsupportedMediaType, "bad_content_type", "Content-Type must be application/json")
		return nil, false
	}
	// api/src/routing.js: jsonParser parses the body and writeParsedBody
	// sends CouchDB JSON.stringify(req.body).
	d, err := decodeJSDoc(c.body)
	if err != nil {
		couchError(c.w, http.StatusBadRequest, "bad_request", "invalid UTF-8 JSON")
		return nil, false
	}
	return d, true
}

func (s *Server) writeDocResult(c *reqCtx, id string, rev string, err error) {
	var refused forbiddenWrite
	switch {
	case errors.As(err, &refused):
		couchError(c.w, http.StatusForbidden, "forbidden", string(refused))
	case errors.Is(err, errConflict):
		couchError(c.w, http.StatusConflict, "conflict", "Document update conflict.")
	case err != nil:
		couchError(c.w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		writeJSON(c.w, http.StatusCreated, map[string]any{"ok": true, "id": id, "rev": rev})
	}
}

func (s *Server) handleDBPost(c *reqCtx, _ []string) {
	d, ok := s.decodeDocBody(c)
	if !ok {
		return
	}
	if str(d["_id"]) == "" {
		d["_id"] = newCouchID()
	}
	rev, err := s.validatedPut(c.user, d, false)
	s.writeDocResult(c, str(d["_id"]), rev, err)
}

func (s *Server) handleDocGet(c *reqCtx, params []string) {
	raw, deleted, ok := s.store.lookup(params[0])
	switch {
	case !ok:
		couchError(c.w, http.StatusNotFound, "not_found", "missing")
	case deleted:
		couchError(c.w, http.StatusNotFound, "not_found", "deleted")
	case !s.sees(c.user, raw):
		// api/src/controllers/db-doc.js permissionsError
		writeJSON(c.w, http.StatusForbidden, map[string]any{"error": "forbidden", "reason": "Insufficient privileges"})
	default:
		if rev := c.r.URL.Query().Get("rev"); rev != "" && rev != s.store.currentRev(params[0]) {
			couchError(c.w, http.StatusNotFound, "not_found", "missing")
			return
		}
		c.w.Header().Set("Content-Type", "application/json")
		c.w.Header().Set("ETag", strconv.Quote(s.store.currentRev(params[0])))
		c.w.WriteHeader(http.StatusOK)
		_, _ = c.w.Write(raw)
	}
}

func (s *Server) handleDocPut(c *reqCtx, params []string) {
	d, ok := s.decodeDocBody(c)
	if !ok {
		return
	}
	if id := str(d["_id"]); id != "" && id != params[0] {
		couchError(c.w, http.StatusBadRequest, "bad_request", "Document id must match the URL")
		return
	}
	d["_id"] = params[0]
	if rev := c.r.URL.Query().Get("rev"); rev != "" && str(d["_rev"]) == "" {
		d["_rev"] = rev
	}
	rev, err := s.validatedPut(c.user, d, false)
	s.writeDocResult(c, params[0], rev, err)
}

func (s *Server) handleDocDelete(c *reqCtx, params []string) {
	rev := c.r.URL.Query().Get("rev")
	if rev == "" {
		rev = c.r.Header.Get("If-Match")
	}
	if _, deleted, ok := s.store.lookup(params[0]); !ok || deleted {
		couchError(c.w, http.StatusNotFound, "not_found", "missing")
		return
	}
	nrev, err := s.validatedPut(c.user, map[string]any{"_id": params[0], "_rev": rev, "_deleted": true}, false)
	if err == nil {
		writeJSON(c.w, http.StatusOK, map[string]any{"ok": true, "id": params[0], "rev": nrev})
		return
	}
	s.writeDocResult(c, params[0], "", err)
}

func (s *Server) handleBulkDocs(c *reqCtx, _ []string) {
	var body struct {
		Docs     []json.RawMessage `json:"docs"`
		NewEdits *bool             `json:"new_edits"`
	}
	if !isJSON(c.r) {
		couchError(c.w, http.StatusUnsupportedMediaType, "bad_content_type", "Content-Type must be application/json")
		return
	}
	if err := json.Unmarshal(c.body, &body); err != nil || body.Docs == nil {
		couchError(c.w, http.StatusBadRequest, "bad_request", "POST body must include `docs` parameter.")
		return
	}
	force := body.NewEdits != nil && !*body.NewEdits
	out := make([]any, 0, len(body.Docs))
	for _, raw := range body.Docs {
		d, err := decodeJSDoc(raw) // jsonParser, then writeParsedBody
		if err != nil {
			out = append(out, map[string]any{"error": "bad_request", "reason": "invalid document"})
			continue
		}
		if str(d["_id"]) == "" {
			d["_id"] = newCouchID()
		}
		id := str(d["_id"])
		rev, err := s.validatedPut(c.user, d, force)
		var refused forbiddenWrite
		switch {
		case errors.As(err, &refused):
			out = append(out, map[string]any{"id": id, "error": "forbidden", "reason": string(refused)})
		case errors.Is(err, errConflict):
			out = append(out, map[string]any{"id": id, "error": "conflict", "reason": "Document update conflict."})
		case err != nil:
			out = append(out, map[string]any{"id": id, "error": "bad_request", "reason": err.Error()})
		default:
			out = append(out, map[string]any{"ok": true, "id": id, "rev": rev})
		}
	}
	writeJSON(c.w, http.StatusCreated, out)
}

// forbiddenWrite is a write a validate_doc_update function refuses:
// CouchDB's 403 {"error":"forbidden","reason":<its message>}.
type forbiddenWrite string

func (e forbiddenWrite) Error() string { return string(e) }

// validatedPut writes d for user u through the medic database's
// validate_doc_update functions (validateDocUpdate).
func (s *Server) validatedPut(u *User, d map[string]any, force bool) (string, error) {
	old, _ := s.store.get(str(d["_id"]))
	if reason := s.validateDocUpdate(u, d, old); reason != "" {
		return "", forbiddenWrite(reason)
	}
	return s.store.put(d, force)
}

// adminOnlyIDs and adminOnlyTypes are ADMIN_ONLY_IDS and ADMIN_ONLY_TYPES
// of ddocs/medic-db/medic/validate_doc_update.js, with the version that
// added each.
var (
	adminOnlyIDs = map[string][2]int{"resources": {0, 0}, "service-worker-meta": {0, 0}, "zscore-charts": {0, 0},
		"settings": {0, 0}, "branding": {0, 0}, "partners": {0, 0}, "privacy-policies": {0, 0},
		"extension-libs": {4, 2}, "migration-log": {5, 0}}
	adminOnlyTypes = map[string][2]int{"form": {0, 0}, "translations": {0, 0}, "token_login": {0, 0}, "ui-extension": {5, 2}}
)

// validateDocUpdate returns why the medic database's validate_doc_update
// functions refuse user u the write of doc over old (nil when there is
// none), or "" (ddocs/medic-db/medic/validate_doc_update.js and
// medic-client/validate_doc_update.js, cht-core 4.0 to 5.2): a doc with
// purged set is refused to everyone; a database admin (roles "_admin" or
// "admin") may write anything else; others may not write an admin-only
// doc (isAdminOnlyDoc: a _design doc, an id of ADMIN_ONLY_IDS, a type of
// ADMIN_ONLY_TYPES; new or stored) nor the doc of their own facility. The
// rules medic-client's function sets for form and user-settings docs are
// not modelled.
func (s *Server) validateDocUpdate(u *User, doc, old map[string]any) string {
	if jsonTruthy(doc["purged"]) {
		return "Purged documents should not be written to CouchDB!"
	}
	if u == nil || u.admin() {
		return ""
	}
	if s.adminOnlyDoc(doc) || old != nil && s.adminOnlyDoc(old) {
		return "You are not authorized to edit admin only docs"
	}
	if id := str(doc["_id"]); u.Facility != "" && id == u.Facility {
		return "You are not authorized to edit your own place"
	}
	return ""
}

// adminOnlyDoc is validate_doc_update.js isAdminOnlyDoc in the server's
// version.
func (s *Server) adminOnlyDoc(d map[string]any) bool {
	id, _ := d["_id"].(string)
	typ, _ := d["type"].(string)
	since, idOnly := adminOnlyIDs[id]
	typeSince, typeOnly := adminOnlyTypes[typ]
	return strings.HasPrefix(id, "_design/") || idOnly && s.version().AtLeast(since[0], since[1]) ||
		typeOnly && s.version().AtLeast(typeSince[0], typeSince[1])
}

// offlineWriteAllowed is api/src/controllers/db-doc.js request for an
// offline user's PUT or DELETE of /medic/<id> and POST /medic/, which
// api/src/routing.js runs before canEdit: services/replication/db-doc.js
// filterOfflineRequest lets the write through when the stored doc, if
// any, and the doc written (the body; none for a DELETE) are both the
// user's (authorization.js allowedDoc: _design/medic-client, the user's
// org.couchdb.user doc, or a doc of its facility's subtree as sees
// decides), and a write with neither is refused, as is a POST to a doc id
// (isValidRequest). A POST is checked on its body alone: getStoredDoc
// reads the route's docId, which it has none of. Other writes, and online
// users, pass.
func (s *Server) offlineWriteAllowed(c *reqCtx, rt route, params []string) bool {
	if c.user == nil || c.user.online() {
		return true
	}
	var id string
	var written map[string]any
	switch {
	case rt.pattern == "/medic/{}" && (c.r.Method == http.MethodPut || c.r.Method == http.MethodDelete):
		id = params[0]
		if c.r.Method == http.MethodPut {
			written = s.parsedBody(c)
			if _, ok := written["_id"]; !ok {
				written["_id"] = id
			}
		}
	case rt.pattern == "/medic" && c.r.Method == http.MethodPost:
		// getStoredDoc reads params.docId, which a POST has none of: the
		// body's _id reads no stored doc.
		written = s.parsedBody(c)
	default:
		return true
	}
	stored, isStored := s.store.get(id)
	if id == "" {
		isStored = false
	}
	if !isStored && written == nil {
		return false
	}
	return (!isStored || s.mayReplicate(c.user, stored)) && (written == nil || s.mayReplicate(c.user, written))
}

// parsedBody is the body as jsonParser leaves it in req.body: the JSON
// object of a JSON request, {} otherwise.
func (s *Server) parsedBody(c *reqCtx) map[string]any {
	if isJSON(c.r) {
		if d, err := decodeJSDoc(c.body); err == nil {
			return d
		}
	}
	return map[string]any{}
}

// mayReplicate is authorization.js allowedDoc for offline user u.
func (s *Server) mayReplicate(u *User, d map[string]any) bool {
	switch str(d["_id"]) {
	case "_design/medic-client", "org.couchdb.user:" + u.Name:
		return true
	}
	return u.Facility != "" && s.inSubtree(u.Facility, d, 0)
}

func (s *Server) handleAllDocs(c *reqCtx, _ []string) { s.allDocs(c, s.store) }

// visible filters the ids of st an offline user may read (medic only).
func (s *Server) visible(c *reqCtx, st *store, ids []string) []string {
	if st != s.store || c.user.online() {
		return ids
	}
	out := ids[:0:0]
	for _, id := range ids {
		if raw, ok := st.getRaw(id); ok && s.sees(c.user, raw) {
			out = append(out, id)
		}
	}
	return out
}

// handleSentinelAllDocs serves medic-sentinel's _all_docs, where Sentinel
// keeps its task:outbound:* queue. Only database admins may read it, as
// CouchDB's security object for that database says.
func (s *Server) handleSentinelAllDocs(c *reqCtx, _ []string) {
	if !s.sentinelReader(c) {
		return
	}
	s.allDocs(c, s.sentinel)
}

func (s *Server) handleSentinelDocGet(c *reqCtx, params []string) {
	if !s.sentinelReader(c) {
		return
	}
	raw, deleted, ok := s.sentinel.lookup(params[0])
	switch {
	case !ok:
		couchError(c.w, http.StatusNotFound, "not_found", "missing")
	case deleted:
		couchError(c.w, http.StatusNotFound, "not_found", "deleted")
	default:
		c.w.Header().Set("Content-Type", "application/json")
		_, _ = c.w.Write(raw)
	}
}

func (s *Server) sentinelReader(c *reqCtx) bool {
	if !slices.Contains(c.user.Roles, RoleDBAdmin) {
		couchError(c.w, http.StatusForbidden, "forbidden", "You are not allowed to access this db.")
		return false
	}
	return true
}

// allDocs serves _all_docs of st: keys, startkey/endkey (inclusive),
// skip, limit and include_docs.
func (s *Server) allDocs(c *reqCtx, st *store) {
	q := c.r.URL.Query()
	include := q.Get("include_docs") == "true"
	var keys []string
	if c.r.Method == http.MethodPost {
		var body struct {
			Keys []string `json:"keys"`
		}
		if err := json.Unmarshal(c.body, &body); err != nil {
			couchError(c.w, http.StatusBadRequest, "bad_request", "invalid UTF-8 JSON")
			return
		}
		keys = body.Keys
	} else if k := q.Get("keys"); k != "" {
		if err := json.Unmarshal([]byte(k), &keys); err != nil {
			couchError(c.w, http.StatusBadRequest, "bad_request", "invalid keys")
			return
		}
	}
	limit, skip := -1, 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			couchError(c.w, http.StatusBadRequest, "query_parse_error", "Invalid value for integer: \""+l+"\"")
			return
		}
		limit = n
	}
	if sk := q.Get("skip"); sk != "" {
		n, err := strconv.Atoi(sk)
		if err != nil || n < 0 {
			couchError(c.w, http.StatusBadRequest, "query_parse_error", "Invalid value for integer: \""+sk+"\"")
			return
		}
		skip = n
	}
	var startKey, endKey string
	if sk := q.Get("startkey"); sk != "" {
		_ = json.Unmarshal([]byte(sk), &startKey)
	}
	hasEnd := q.Get("endkey") != ""
	if hasEnd {
		_ = json.Unmarshal([]byte(q.Get("endkey")), &endKey)
	}
	row := func(id string) map[string]any {
		raw, deleted, ok := st.lookup(id)
		if !ok {
			return map[string]any{"key": id, "error": "not_found"}
		}
		rev := st.currentRev(id)
		r := map[string]any{"id": id, "key": id, "value": map[string]any{"rev": rev}}
		if deleted {
			r["value"] = map[string]any{"rev": rev, "deleted": true}
			r["doc"] = nil
		} else if include {
			r["doc"] = json.RawMessage(raw)
		}
		return r
	}
	var rows []any
	total := st.count()
	if keys != nil {
		for _, k := range keys {
			if raw, ok := st.getRaw(k); ok && st == s.store && !s.sees(c.user, raw) {
				continue
			}
			rows = append(rows, row(k))
		}
	} else {
		ids := s.visible(c, st, st.ids(func(id string, _ docMeta) bool { return id >= startKey && (!hasEnd || id <= endKey) }))
		if skip > len(ids) {
			skip = len(ids)
		}
		ids = ids[skip:]
		if limit >= 0 && limit < len(ids) {
			ids = ids[:limit]
		}
		for _, id := range ids {
			rows = append(rows, row(id))
		}
	}
	if rows == nil {
		rows = []any{}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"total_rows": total, "offset": skip, "rows": rows})
}

type changeRow struct {
	Seq     string           `json:"seq"`
	ID      string           `json:"id"`
	Changes []map[string]any `json:"changes"`
	Deleted bool             `json:"deleted,omitempty"`
	Doc     json.RawMessage  `json:"doc,omitempty"`
}

// ReplayChanges makes the next _changes request that resumes from a
// sequence start n sequences earlier, so that changes the client has seen
// come again, as a clustered CouchDB does after a node restarts. Sequences
// are opaque strings and "pending" is an estimate (it counts superseded
// changes), as in CouchDB 2+; consumers must treat the feed as
// at-least-once.
func (s *Server) ReplayChanges(n int) {
	s.mu.Lock()
	s.replay = int64(n)
	s.mu.Unlock()
}

// handleChanges serves GET/POST /medic/_changes with since, limit,
// include_docs and feed=normal|longpoll (timeout bounded by
// Config.MaxLongpoll).
func (s *Server) handleChanges(c *reqCtx, _ []string) {
	if !c.user.online() && s.version().AtLeast(4, 3) {
		s.offlineChanges(c)
		return
	}
	q := c.r.URL.Query()
	var since int64
	switch sv := q.Get("since"); sv {
	case "now":
		since = s.store.lastSeq()
	default:
		n, err := parseSeq(sv)
		if err != nil {
			couchError(c.w, http.StatusBadRequest, "bad_request", "Malformed sequence supplied in 'since' parameter.")
			return
		}
		since = n
	}
	s.mu.Lock()
	if n := s.replay; n > 0 && since > 0 {
		since, s.replay = max(since-n, 0), 0
	}
	s.mu.Unlock()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			couchError(c.w, http.StatusBadRequest, "query_parse_error", "Invalid value for integer: \""+l+"\"")
			return
		}
		limit = n
	}
	include := q.Get("include_docs") == "true"
	feed := q.Get("feed")
	if feed != "" && feed != "normal" && feed != "longpoll" {
		couchError(c.w, http.StatusBadRequest, "bad_request", "Supported feeds are normal and longpoll in this fake.")
		return
	}
	wait := s.cfg.MaxLongpoll
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.Atoi(t)
		if err != nil || ms < 0 {
			couchError(c.w, http.StatusBadRequest, "query_parse_error", "Invalid value for integer: \""+t+"\"")
			return
		}
		wait = min(wait, time.Duration(ms)*time.Millisecond)
	}
	changes, last, changed := s.store.changesSince(since, limit)
	if feed == "longpoll" && len(changes) == 0 {
		timer := time.NewTimer(wait)
		select {
		case <-changed:
			changes, last, _ = s.store.changesSince(since, limit)
		case <-timer.C:
		case <-s.closing:
		case <-c.r.Context().Done():
			timer.Stop()
			return
		}
		timer.Stop()
	}
	rows := make([]changeRow, 0, len(changes))
	for i := range changes {
		ch := &changes[i]
		if !ch.deleted && !c.user.online() && !s.sees(c.user, ch.doc()) {
			continue // before 4.3, api/src/controllers/changes.js: only the user's docs
		}
		r := changeRow{Seq: formatSeq(ch.seq), ID: ch.id, Changes: []map[string]any{{"rev": ch.rev}}, Deleted: ch.deleted}
		if include {
			r.Doc = ch.doc()
		}
		rows = append(rows, r)
	}
	pending := max(s.store.lastSeq()-last, 0)
	writeJSON(c.w, http.StatusOK, map[string]any{"results": rows, "last_seq": formatSeq(last), "pending": pending})
}

// offlineChanges is an offline user's _changes from cht-core 4.3 to 5.2:
// api/src/controllers/changes.js processRequest answers
// db.medic.changes({doc_ids: authorization.getDefaultDocs(userCtx)}),
// whatever the query asks: only _design/medic-client, service-worker-meta,
// settings and org.couchdb.user:<name> (services/replication/
// authorization.js DEFAULT_DDOCS, getDefaultDocs), from the start, without
// docs. Offline users get the rest through /api/v1/replication/get-ids.
func (s *Server) offlineChanges(c *reqCtx) {
	ids := []string{"_design/medic-client", "service-worker-meta", "settings", "org.couchdb.user:" + c.user.Name}
	changes, last, _ := s.store.changesSince(0, 0)
	rows := make([]changeRow, 0, len(ids))
	for i := range changes {
		ch := &changes[i]
		if slices.Contains(ids, ch.id) {
			rows = append(rows, changeRow{Seq: formatSeq(ch.seq), ID: ch.id, Changes: []map[string]any{{"rev": ch.rev}}, Deleted: ch.deleted})
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"results": rows, "last_seq": formatSeq(last)})
}

// viewRow is one row of a CouchDB view.
type viewRow struct {
	key [2]string
	id  string
}

// handleView is GET /medic/_design/<ddoc>/_view/<view>, which the API
// proxies to CouchDB for online users only (api/src/routing.js:
// ONLINE_ONLY_ENDPOINTS, then UNAUDITED_ENDPOINTS). Only
// medic-client/contacts_by_reference is modelled, with the query
// parameters key and include_docs: its map function
// (ddocs/medic-db/medic-client/views/contacts_by_reference/map.js) emits,
// for a contact, ["shortcode", String(place_id)] and ["shortcode",
// String(patient_id)] when truthy, and ["external", String(rc_code)
// upper-cased], each with the value reported_date. Rows are ordered by key,
// then by document id (keys compared byte by byte, where CouchDB collates
// strings with ICU: the same order for shortcodes of digits).
func (s *Server) handleView(c *reqCtx, params []string) {
	if params[0] != "medic-client" || params[1] != "contacts_by_reference" {
		couchError(c.w, http.StatusNotFound, "not_found", "missing_named_view")
		return
	}
	q := c.r.URL.Query()
	var (
		key       *[2]string // nil: every row
		matchNone bool
	)
	if k, ok := q["key"]; ok {
		if !json.Valid([]byte(k[0])) {
			couchError(c.w, http.StatusBadRequest, "bad_request", "invalid UTF-8 JSON")
			return
		}
		var v []any
		_ = json.Unmarshal([]byte(k[0]), &v)
		if a, b, ok := stringPair(v); ok {
			key = &[2]string{a, b}
		} else {
			matchNone = true // any other JSON value is a key no row has (its offset is not modelled)
		}
	}
	var rows []viewRow
	s.store.ids(func(id string, m docMeta) bool { // the rows are collected here, not the ids
		for _, sc := range m.shortcodes {
			rows = append(rows, viewRow{key: [2]string{"shortcode", sc}, id: id})
		}
		if m.external != "" {
			rows = append(rows, viewRow{key: [2]string{"external", m.external}, id: id})
		}
		return false
	})
	compareKeys := func(a, b [2]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	}
	slices.SortFunc(rows, func(a, b viewRow) int {
		return cmp.Or(compareKeys(a.key, b.key), strings.Compare(a.id, b.id))
	})
	total, offset := len(rows), 0
	switch {
	case matchNone:
		rows = nil
	case key != nil:
		// offset is the number of rows before the first with key.
		offset, _ = slices.BinarySearchFunc(rows, *key, func(r viewRow, k [2]string) int { return compareKeys(r.key, k) })
		end := offset
		for end < len(rows) && rows[end].key == *key {
			end++
		}
		rows = rows[offset:end]
	}
	includeDocs := q.Get("include_docs") == "true"
	out := make([]map[string]any, 0, len(rows))
	for _, r := range rows {
		d, _ := s.store.get(r.id)
		row := map[string]any{"id": r.id, "key": r.key, "value": d["reported_date"]}
		if includeDocs {
			row["doc"] = d
		}
		out = append(out, row)
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"total_rows": total, "offset": offset, "rows": out})
}

// stringPair returns the two strings of v when it holds exactly two.
func stringPair(v []any) (a, b string, ok bool) {
	if len(v) != 2 {
		return "", "", false
	}
	a, okA := v[0].(string)
	b, okB := v[1].(string)
	return a, b, okA && okB
}
