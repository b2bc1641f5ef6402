package chttest

import (
	"encoding/json"
	"net/http"
	"slices"
)

// maxDepth bounds lineage walks so a cyclic parent chain cannot hang.
const maxDepth = 64

// HydratedDoc returns the document as CHT's hydration (shared-libs/lineage)
// returns it: for a contact, the parent chain replaced by the full
// ancestors, each ancestor's (and the doc's own) primary contact filled in
// shallowly and linked_docs filled shallowly; for a report, the submitter
// contact hydrated deeply plus "patient" and "place" resolved by shortcode
// or UUID. It reports false for missing and deleted documents.
//
// This is the doc Sentinel's outbound retries map (sentinel/src/schedule/
// outbound.js queuedTasks hydrates with hydrateDocs); its signature fits
// PusherConfig.Source. The real-time push loads the doc with
// fetchHydratedDoc instead, which returns a doc without lineage as stored
// (see fetchHydratedDoc).
func (s *Server) HydratedDoc(id string) (map[string]any, bool) {
	return s.hydrator().doc(id)
}

// lineageTypes are the doc types medic-client/views/docs_by_id_lineage
// emits a lineage for (ddocs/medic-db/medic-client/views/
// docs_by_id_lineage/map.js), besides reports with a form.
var lineageTypes = []string{"contact", "district_hospital", "health_center", "clinic", "person"}

// hasLineage reports whether docs_by_id_lineage emits rows for d: a
// contact of one of lineageTypes, or a data_record whose form is truthy.
func hasLineage(d map[string]any) bool {
	t := str(d["type"])
	return slices.Contains(lineageTypes, t) || (t == "data_record" && jsonTruthy(d["form"]))
}

// fetchHydratedDoc is shared-libs/lineage/src/hydration.js
// fetchHydratedDoc: the lineage comes from docs_by_id_lineage, and a doc
// the view emits nothing for (a report without a form, a doc whose type is
// not a contact type) is returned as stored by fetchDoc. It is what one id
// of /api/v1/hydrate returns (fetchHydratedDocs) and the doc the real-time
// outbound push maps (shared-libs/transitions/src/transitions/index.js
// processChange).
func (s *Server) fetchHydratedDoc(id string) (map[string]any, bool) {
	h := s.hydrator()
	d, ok := h.get(id)
	if !ok {
		return nil, false
	}
	if hasLineage(d) {
		h.hydrateDoc(d)
	}
	return d, true
}

// hydrator hydrates docs, decoding each stored doc at most once per
// request (ancestors are shared by most docs of a batch).
type hydrator struct {
	s     *Server
	cache map[string]map[string]any // decoded docs; nil value = missing
	gen   *lazyHydrated             // for generated documents, built at the first
}

func (s *Server) hydrator() *hydrator {
	return &hydrator{s: s, cache: make(map[string]map[string]any)}
}

// get returns a private copy of a live stored doc.
func (h *hydrator) get(id string) (map[string]any, bool) {
	d, seen := h.cache[id]
	if !seen {
		d, _ = h.s.store.get(id)
		h.cache[id] = d
	}
	if d == nil {
		return nil, false
	}
	return deepCopy(d).(map[string]any), true
}

func (h *hydrator) doc(id string) (map[string]any, bool) {
	d, ok := h.get(id)
	if !ok {
		return nil, false
	}
	h.hydrateDoc(d)
	return d, true
}

func (s *Server) hydrateDoc(d map[string]any) { s.hydrator().hydrateDoc(d) }

func (h *hydrator) hydrateDoc(d map[string]any) {
	if str(d["type"]) == "data_record" {
		h.hydrateReport(d)
		return
	}
	h.hydrateContact(d)
}

// hydrateContact fills the parent chain and primary contacts of a contact.
func (h *hydrator) hydrateContact(d map[string]any) {
	if p, ok := d["parent"]; ok {
		d["parent"] = h.hydrateParent(p, 0)
	}
	h.fillContact(d)
	h.fillLinkedDocs(d)
}

// hydrateParent replaces a minified {_id, parent} stub by the stored doc,
// recursively. Missing ancestors stay as stubs.
func (h *hydrator) hydrateParent(stub any, depth int) any {
	m, ok := stub.(map[string]any)
	id := idOf(stub)
	if !ok || id == "" || depth > maxDepth {
		return stub
	}
	found, ok := h.get(id)
	var res map[string]any
	if ok {
		res = found
	} else {
		res = make(map[string]any, len(m))
		for k, v := range m {
			res[k] = v
		}
	}
	next, has := m["parent"]
	if !has && ok {
		next, has = found["parent"]
	}
	if has {
		res["parent"] = h.hydrateParent(next, depth+1)
	}
	if ok {
		// fillContactsInDocs fills every lineage doc's contact and
		// linked_docs (fetchHydratedDoc: getContactIds over the lineage;
		// hydrateDocs: the second round, collectLeafContactIds).
		h.fillContact(res)
		h.fillLinkedDocs(res)
	}
	return res
}

// fillContact replaces a place's contact stub by the person doc, shallowly
// (the person's own parent stays minified).
func (h *hydrator) fillContact(d map[string]any) {
	id := idOf(d["contact"])
	if id == "" {
		return
	}
	if c, ok := h.get(id); ok {
		d["contact"] = c
	}
}

// fillLinkedDocs fills linked_docs values (ids or {_id}) shallowly.
func (h *hydrator) fillLinkedDocs(d map[string]any) {
	ld, ok := d["linked_docs"].(map[string]any)
	if !ok {
		return
	}
	for k, v := range ld {
		id, _ := v.(string)
		if id == "" {
			id = idOf(v)
		}
		if id == "" {
			continue
		}
		if doc, ok := h.get(id); ok {
			ld[k] = doc
		}
	}
}

// deepContact returns the contact with id hydrated deeply, following the
// lineage of stub when given (a report's minified contact) or else the
// contact's own parent chain.
func (h *hydrator) deepContact(id string, stub map[string]any) (map[string]any, bool) {
	d, ok := h.get(id)
	if !ok {
		return nil, false
	}
	if stub != nil {
		if p, has := stub["parent"]; has {
			d["parent"] = p
		}
	}
	h.hydrateContact(d)
	return d, true
}

func (h *hydrator) hydrateReport(d map[string]any) {
	if stub, ok := d["contact"].(map[string]any); ok {
		if id := idOf(stub); id != "" {
			if c, ok := h.deepContact(id, stub); ok {
				d["contact"] = c
			}
		}
	}
	fields, _ := d["fields"].(map[string]any)
	if ref := firstTruthy(fields["patient_id"], fields["patient_uuid"], d["patient_id"]); ref != "" {
		if c, ok := h.deepContact(h.s.resolveRef(ref), nil); ok {
			d["patient"] = c
		}
	}
	if ref := firstTruthy(fields["place_id"], d["place_id"]); ref != "" {
		if c, ok := h.deepContact(h.s.resolveRef(ref), nil); ok {
			d["place"] = c
		}
	}
}

// resolveRef resolves a shortcode through contacts_by_reference, falling
// back to using the value as a UUID.
func (s *Server) resolveRef(ref string) string {
	if ids := s.store.byShortcode(ref); len(ids) > 0 {
		return ids[0] // hydration.js contactUuidByShortcode takes the first row
	}
	return ref
}

// firstTruthy mirrors JavaScript's a || b || c for string-ish values.
func firstTruthy(vs ...any) string {
	for _, v := range vs {
		switch t := v.(type) {
		case string:
			if t != "" {
				return t
			}
		case json.Number:
			if t.String() != "0" {
				return t.String()
			}
		}
	}
	return ""
}

// minifyLineage builds the stored lineage {_id, parent:{_id,...}} of the
// doc with id, as CHT stores parents.
func (s *Server) minifyLineage(id string) map[string]any {
	out := map[string]any{"_id": id}
	cur := out
	d, ok := s.store.get(id)
	for depth := 0; ok && depth < maxDepth; depth++ {
		pid := idOf(d["parent"])
		if pid == "" {
			break
		}
		next := map[string]any{"_id": pid}
		cur["parent"] = next
		cur = next
		// Follow the stored minified chain of the first doc; it already
		// holds every ancestor.
		p, _ := d["parent"].(map[string]any)
		d = p
		ok = d != nil
	}
	return out
}

type hydrateEntry struct {
	ID    string         `json:"id"`
	Doc   map[string]any `json:"doc,omitempty"`
	Error string         `json:"error,omitempty"`
}

// hydratePath is the path of the hydrate API.
const hydratePath = "/api/v1/hydrate"

// docIDs is the doc_ids parameter of a hydrate request
// (api/src/controllers/hydration.js getDocIds): the query's, else the
// body's.
func docIDs(c *reqCtx) any {
	if q := c.r.URL.Query().Get("doc_ids"); q != "" {
		// jsonQueryParser: JSON-parse the value; keep the raw string if it is not JSON.
		if v, err := decodeAny([]byte(q)); err == nil {
			return v
		}
		return q
	}
	if c.r.Method != http.MethodPost {
		return nil
	}
	body, _ := jsonBody(c)
	return body["doc_ids"]
}

// hydrateIDs returns the ids a hydrate request asks for.
func hydrateIDs(c *reqCtx) []string {
	list, _ := docIDs(c).([]any)
	ids := make([]string, len(list))
	for i, v := range list {
		ids[i] = str(v)
	}
	return ids
}

func (s *Server) handleHydrate(c *reqCtx, _ []string) {
	if c.r.URL.Query().Get("doc_ids") == "" && c.r.Method == http.MethodPost && !s.bodyParserJSON(c) {
		return
	}
	list, ok := docIDs(c).([]any)
	if !ok {
		writeJSON(c.w, http.StatusBadRequest, map[string]any{"error": "bad_request",
			"reason": "`doc_ids` parameter must be a json array."})
		return
	}
	out := make([]hydrateEntry, 0, len(list))
	h := s.hydrator()
	if len(list) == 1 {
		// One id goes through lineage fetchHydratedDoc, which returns a
		// doc without lineage (a report without a form, a doc that is not
		// a contact type) as stored; several go through hydrateDocs,
		// which hydrates it.
		id := str(list[0])
		if d, ok := s.store.get(id); ok && !hasLineage(d) {
			writeJSON(c.w, http.StatusOK, []hydrateEntry{{ID: id, Doc: d}})
			return
		}
	}
	if s.store.hasGenerated() {
		// Generated documents are written as JSON directly, the others
		// hydrated and encoded as below.
		b := make([]byte, 1, 1<<16)
		b[0] = '['
		for i, v := range list {
			if i > 0 {
				b = append(b, ',')
			}
			id := str(v)
			b = append(b, `{"id":`...)
			q, err := json.Marshal(id)
			if err != nil {
				http.Error(c.w, "chttest: encode response: "+err.Error(), http.StatusInternalServerError)
				return
			}
			b = append(b, q...)
			if g, ok := h.generatedHydrated(append(b, `,"doc":`...), id); ok {
				b = append(g, '}')
				if i == 0 {
					b = slices.Grow(b, len(b)*len(list)) // about the size of the answer
				}
				continue
			}
			e := hydrateEntry{ID: id, Error: "not_found"}
			if d, ok := h.doc(id); ok {
				e = hydrateEntry{ID: id, Doc: d}
			}
			one, err := json.Marshal(e)
			if err != nil {
				http.Error(c.w, "chttest: encode response: "+err.Error(), http.StatusInternalServerError)
				return
			}
			b = append(b[:len(b)-len(`{"id":`)-len(q)], one...)
		}
		b = append(b, ']')
		c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
		c.w.WriteHeader(http.StatusOK)
		_, _ = c.w.Write(b)
		return
	}
	for _, v := range list {
		id := str(v)
		if d, ok := h.doc(id); ok {
			out = append(out, hydrateEntry{ID: id, Doc: d})
		} else {
			out = append(out, hydrateEntry{ID: id, Error: "not_found"})
		}
	}
	writeJSON(c.w, http.StatusOK, out)
}
