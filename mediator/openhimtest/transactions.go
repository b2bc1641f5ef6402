package openhimtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// truncateSize is api.truncateSize (fulltruncate listings, §5.4).
const truncateSize = 15000

// txVisible: admins see every transaction, others those of channels whose
// txViewAcl names one of their groups. s.mu must be held.
func (s *Server) txVisible(u *user, t *Transaction) bool {
	if u.admin() {
		return true
	}
	for _, c := range s.channels {
		if c.ID == t.ChannelID {
			return channelVisible(u, c)
		}
	}
	return false
}

// handleGetTransactions is GET /transactions with filterRepresentation
// (simple, simpledetails, full, fulltruncate), filterLimit, filterPage and a
// JSON `filters` object of equality matches on dotted paths.
func (s *Server) handleGetTransactions(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	var filters map[string]any
	if f := q.Get("filters"); f != "" {
		if err := json.Unmarshal([]byte(f), &filters); err != nil {
			writeText(w, http.StatusBadRequest, "Could not retrieve transactions via the API: "+err.Error())
			return
		}
	}
	if ch := q.Get("channelID"); ch != "" {
		if filters == nil {
			filters = map[string]any{}
		}
		filters["channelID"] = ch
	}
	rep := q.Get("filterRepresentation")
	if !u.admin() {
		rep = ""
	}
	s.mu.Lock()
	var list []map[string]any
	txs := slices.Clone(s.txs)
	slices.SortStableFunc(txs, func(a, b *Transaction) int { // newest first
		return txTime(b).Compare(txTime(a))
	})
	for _, t := range txs {
		if !s.txVisible(u, t) {
			continue
		}
		var m map[string]any
		if err := remarshal(t, &m); err != nil {
			s.mu.Unlock()
			writeText(w, http.StatusInternalServerError, err.Error())
			return
		}
		if !matchFilters(m, filters) {
			continue
		}
		list = append(list, project(m, rep))
	}
	s.mu.Unlock()
	if l, err := strconv.Atoi(q.Get("filterLimit")); err == nil && l > 0 {
		p, _ := strconv.Atoi(q.Get("filterPage"))
		start := min(max(p, 0)*l, len(list))
		list = list[start:min(start+l, len(list))]
	}
	if list == nil {
		list = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, list)
}

// matchFilters applies equality filters; request.path and
// request.querystring are case-insensitive regexps as in core.
func matchFilters(m map[string]any, filters map[string]any) bool {
	for k, want := range filters {
		if k == "request.path" || k == "request.querystring" {
			re, err := regexp.Compile("(?i)" + jsString(want))
			if err != nil || !re.MatchString(jsString(dotted(m, k))) {
				return false
			}
			continue
		}
		if jsString(dotted(m, k)) != jsString(want) {
			return false
		}
	}
	return true
}

func dotted(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// project applies core's projections for a filterRepresentation.
func project(m map[string]any, rep string) map[string]any {
	del := func(path string) {
		parts := strings.Split(path, ".")
		cur := m
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				return
			}
			cur = next
		}
		delete(cur, parts[len(parts)-1])
	}
	switch rep {
	case "full":
	case "fulltruncate":
		// truncateTransactionDetails: the request and response bodies of
		// the transaction, of each route and of each orchestration,
		// longer than truncateSize JavaScript characters, are cut to it
		// and end with api.truncateAppend.
		trunc := func(v any) {
			t, _ := v.(map[string]any)
			for _, p := range []string{"request", "response"} {
				if sub, ok := t[p].(map[string]any); ok {
					if b, ok := sub["body"].(string); ok && jsLength(b) > truncateSize {
						sub["body"] = jsSlice(b, truncateSize) + truncateAppend
					}
				}
			}
		}
		trunc(m)
		for _, key := range []string{"routes", "orchestrations"} {
			arr, _ := m[key].([]any)
			for _, e := range arr {
				trunc(e)
			}
		}
	case "simpledetails":
		for _, p := range []string{"request.body", "response.body"} {
			del(p)
		}
		for _, key := range []string{"routes", "orchestrations"} {
			arr, _ := m[key].([]any)
			for _, e := range arr {
				if em, ok := e.(map[string]any); ok {
					for _, part := range []string{"request", "response"} {
						if sub, ok := em[part].(map[string]any); ok {
							delete(sub, "body")
						}
					}
				}
			}
		}
	default: // simple
		for _, p := range []string{"request.body", "request.headers", "response.body", "response.headers", "routes", "orchestrations"} {
			del(p)
		}
	}
	return m
}

// jsLength is JavaScript's s.length: UTF-16 code units.
func jsLength(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

func (s *Server) findTx(id string) *Transaction {
	for _, t := range s.txs {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func (s *Server) handleGetTransaction(w http.ResponseWriter, u *user, id string) {
	id = jsUnescape(id)
	s.mu.Lock()
	t := s.findTx(id)
	var out Transaction
	visible := false
	if t != nil {
		out = cloneJSON(*t)
		visible = s.txVisible(u, t)
	}
	s.mu.Unlock()
	switch {
	case t == nil:
		writeText(w, http.StatusNotFound, fmt.Sprintf("Could not find transaction with ID: %s", id))
	case !visible:
		writeText(w, http.StatusForbidden, fmt.Sprintf("User %s is not authenticated to retrieve transaction %s", u.email, id))
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// handleUpdateTransaction is PUT /transactions/:id (§5.6): the body is a
// Mongo update document; plain keys (dotted paths allowed) are $set, and
// $set and $push (with $each) are supported.
func (s *Server) handleUpdateTransaction(w http.ResponseWriter, r *http.Request, u *user, id string) {
	if notAdmin(w, u, "updateTransaction") {
		return
	}
	id = jsUnescape(id)
	if _, ok := requestBody(r).(map[string]any); !ok {
		writeText(w, http.StatusBadRequest, "invalid JSON")
		return
	}
	upd, ok := orderedObject(rawRequestBody(r), requestBody(r))
	if !ok {
		writeText(w, http.StatusBadRequest, "invalid JSON")
		return
	}
	status, msg := s.updateTransaction(id, upd)
	writeText(w, status, msg)
}

// updateHasError is core's hasError (src/api/transactions.js): the update
// sets an error, a route with an error, or pushes routes with an error.
func updateHasError(upd map[string]any) bool {
	if upd["error"] != nil {
		return true
	}
	if routes, ok := upd["routes"].([]any); ok {
		for _, r := range routes {
			if m, ok := r.(map[string]any); ok && m["error"] != nil {
				return true
			}
		}
	}
	push, _ := upd["$push"].(map[string]any)
	routes, _ := push["routes"].(map[string]any)
	return routes["error"] != nil
}

// orderedObject is the update as core's handler sees it: the object
// parsed from raw with its keys in JavaScript's order, or, without raw
// (an empty or non-JSON body, which koa-bodyparser leaves as {}), v.
func orderedObject(raw []byte, v any) (*jsObject, bool) {
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, false
		}
	}
	o, err := decodeOrdered(raw)
	if err != nil {
		return nil, false
	}
	obj, ok := o.(*jsObject)
	return obj, ok
}

func (s *Server) updateTransaction(id string, ordered *jsObject) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findTx(id)
	if t == nil {
		// core's src/api/transactions.js, updateTransaction (v4.0.5 to
		// v8.5.0, on Node 14) dereferences the missing transaction inside
		// its try: transaction.channelID when hasError(updates), else
		// calculateTransactionBodiesByteLength reads null.body; the catch
		// answers 500.
		prop := "body"
		if upd, _ := plainJSON(ordered).(map[string]any); updateHasError(upd) {
			prop = "channelID"
		}
		return http.StatusInternalServerError, "Could not update transaction via the API: TypeError: Cannot read property '" + prop + "' of null"
	}
	enforceUpdateBodies(t, ordered)
	upd, _ := plainJSON(ordered).(map[string]any)
	var doc map[string]any
	if err := remarshal(t, &doc); err != nil {
		return http.StatusInternalServerError, err.Error()
	}
	for k, v := range upd {
		switch k {
		case "$set":
			sets, _ := v.(map[string]any)
			for p, sv := range sets {
				setDotted(doc, p, sv)
			}
		case "$push":
			pushes, _ := v.(map[string]any)
			for p, pv := range pushes {
				items := []any{pv}
				if each, ok := pv.(map[string]any); ok {
					if arr, ok := each["$each"].([]any); ok {
						items = arr
					}
				}
				cur, _ := dotted(doc, p).([]any)
				setDotted(doc, p, append(cur, items...))
			}
		case "_id":
		default:
			if strings.HasPrefix(k, "$") {
				return http.StatusInternalServerError, fmt.Sprintf("Could not update transaction via the API: unsupported operator %s", k)
			}
			setDotted(doc, k, v)
		}
	}
	var updated Transaction
	if err := remarshal(doc, &updated); err != nil {
		return http.StatusInternalServerError, "Could not update transaction via the API: " + err.Error()
	}
	updated.MediatorURN, updated.MetadataError, updated.MetricsSkipped = t.MediatorURN, t.MetadataError, t.MetricsSkipped
	updated.Core4Crash = t.Core4Crash
	updated.Updates = t.Updates + 1
	if updated.Error != nil {
		updated.AutoRetry = true
	}
	*t = updated
	return http.StatusOK, fmt.Sprintf("Transaction with ID: %s successfully updated", id)
}

func setDotted(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

func txTime(t *Transaction) time.Time {
	if t.Request == nil || t.Request.Timestamp == nil {
		return time.Time{}
	}
	return *t.Request.Timestamp
}
