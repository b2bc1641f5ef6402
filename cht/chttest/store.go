package chttest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// errConflict is returned by the store when a write names a stale or missing
// revision, as CouchDB's 409 "Document update conflict."
var errConflict = errors.New("chttest: document update conflict")

// entry is one stored document: its raw JSON (with _id and _rev) plus the few
// index keys the fake needs.
type entry struct {
	raw     []byte
	rev     string
	seq     int64
	deleted bool
	meta    docMeta
}

// docMeta holds the values extracted from a document at write time.
type docMeta struct {
	typ         string   // "type"
	contactType string   // "contact_type"
	shortcodes  []string // keys contacts_by_reference emits as ["shortcode", key]
	external    string   // key contacts_by_reference emits as ["external", key]
	phone       string   // "phone" of contacts, as stored
}

// store is an in-memory, CouchDB-like document database.
type store struct {
	mu      sync.RWMutex
	docs    map[string]*entry
	log     []string            // log[seq-1] is the id changed at seq
	refs    map[string][]string // shortcode -> sorted ids (contacts_by_reference)
	seq     int64
	changed chan struct{} // closed and replaced on every change
	// lazy, when set, is a population generated when read, at sequences
	// lazy.from to lazy.from+lazy.n-1 (see Server.GenerateSynthetic); log
	// has no entries for them.
	lazy *lazySynthetic
}

// logID returns the id changed at seq, and the generated population's
// index of that document (-1 for a stored document).
func (s *store) logID(seq int64) (string, int64) {
	if g := s.lazy; g != nil && seq >= g.from {
		if seq < g.from+g.n {
			return g.at(seq - g.from), seq - g.from
		}
		return s.log[seq-1-g.n], -1
	}
	return s.log[seq-1], -1
}

// generated returns the JSON of a generated document that was not written
// since.
func (s *store) generated(id string) ([]byte, bool) {
	if s.lazy == nil || s.docs[id] != nil {
		return nil, false
	}
	return s.lazy.raw(id)
}

// hasGenerated reports whether the store has a generated population.
func (s *store) hasGenerated() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lazy != nil
}

func newStore() *store {
	return &store{
		docs:    make(map[string]*entry),
		refs:    make(map[string][]string),
		changed: make(chan struct{}),
	}
}

// decodeDoc decodes a JSON object keeping numbers exact.
func decodeDoc(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("document is not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON object")
	}
	return m, nil
}

// decodeAny decodes any JSON value keeping numbers exact.
func decodeAny(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// toDoc converts any Go value (struct, map, json.RawMessage, []byte, string
// holding JSON) to a decoded document.
func toDoc(v any) (map[string]any, error) {
	var raw []byte
	switch t := v.(type) {
	case map[string]any:
		var err error
		if raw, err = json.Marshal(t); err != nil {
			return nil, err
		}
	case json.RawMessage:
		raw = t
	case []byte:
		raw = t
	case string:
		raw = []byte(t)
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	return decodeDoc(raw)
}

func str(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	return ""
}

// idOf returns m["_id"] when m is a JSON object with a string _id.
func idOf(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	s, _ := m["_id"].(string)
	return s
}

// referenceTypes are the document types medic-client's
// contacts_by_reference view indexes (ddocs/medic-db/medic-client/views/
// contacts_by_reference/map.js).
var referenceTypes = []string{"contact", "clinic", "health_center", "district_hospital", "national_office", "person"}

func extractMeta(m map[string]any) docMeta {
	md := docMeta{typ: str(m["type"]), contactType: str(m["contact_type"])}
	if md.typ != "data_record" && md.typ != "" {
		md.phone = str(m["phone"]) // contacts_by_phone indexes the stored value
	}
	if slices.Contains(referenceTypes, md.typ) {
		// map.js emits ["shortcode", String(doc.place_id)] and then
		// ["shortcode", String(doc.patient_id)], each when truthy.
		for _, k := range []string{"place_id", "patient_id"} {
			if v := m[k]; jsonTruthy(v) {
				md.shortcodes = append(md.shortcodes, jsString(jsValue(v)))
			}
		}
		if v := m["rc_code"]; jsonTruthy(v) {
			md.external = strings.ToUpper(jsString(jsValue(v)))
		}
	}
	return md
}

// nextRev computes a CouchDB-style revision "<gen>-<32 hex>".
func nextRev(prev string, raw []byte) string {
	gen := 0
	if i := strings.IndexByte(prev, '-'); i > 0 {
		gen, _ = strconv.Atoi(prev[:i])
	}
	h := md5.New()
	h.Write([]byte(prev))
	h.Write(raw)
	return strconv.Itoa(gen+1) + "-" + hex.EncodeToString(h.Sum(nil))
}

// put writes doc. With force, the revision check is skipped and a _rev the
// document already carries is kept (seeding); otherwise doc["_rev"] must
// match the current revision (or be absent for a new or deleted document).
// It returns the new revision.
func (s *store) put(doc map[string]any, force bool) (string, error) {
	id, _ := doc["_id"].(string)
	if id == "" {
		return "", errors.New("chttest: document has no _id")
	}
	given, _ := doc["_rev"].(string)
	deleted, _ := doc["_deleted"].(bool)

	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.docs[id]
	if !force {
		switch {
		case cur == nil && given != "":
			return "", errConflict
		case cur != nil && !cur.deleted && given != cur.rev:
			return "", errConflict
		case cur != nil && cur.deleted && given != "" && given != cur.rev:
			return "", errConflict
		}
	}
	prev := ""
	if cur != nil {
		prev = cur.rev
	}
	delete(doc, "_rev")
	body, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("chttest: encode %q: %w", id, err)
	}
	rev := nextRev(prev, body)
	if force && given != "" {
		rev = given
	}
	doc["_rev"] = rev
	if deleted {
		doc = map[string]any{"_id": id, "_rev": rev, "_deleted": true}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("chttest: encode %q: %w", id, err)
	}
	if cur != nil {
		for _, sc := range cur.meta.shortcodes {
			if ids := slices.DeleteFunc(s.refs[sc], func(x string) bool { return x == id }); len(ids) > 0 {
				s.refs[sc] = ids
			} else {
				delete(s.refs, sc)
			}
		}
	}
	s.seq++
	e := &entry{raw: raw, rev: rev, seq: s.seq, deleted: deleted}
	if !deleted {
		e.meta = extractMeta(doc)
		for _, sc := range e.meta.shortcodes {
			// A view row's order among equal keys is by document id.
			if i, found := slices.BinarySearch(s.refs[sc], id); !found {
				s.refs[sc] = slices.Insert(s.refs[sc], i, id)
			}
		}
	}
	s.docs[id] = e
	s.log = append(s.log, id)
	close(s.changed)
	s.changed = make(chan struct{})
	return rev, nil
}

// getRaw returns the stored JSON of a live document.
func (s *store) getRaw(id string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.docs[id]
	if e == nil {
		return s.generated(id)
	}
	if e.deleted {
		return nil, false
	}
	return e.raw, true
}

// get returns a decoded copy of a live document.
func (s *store) get(id string) (map[string]any, bool) {
	s.mu.RLock()
	g := s.lazy
	if g != nil && s.docs[id] != nil {
		g = nil
	}
	s.mu.RUnlock()
	if g != nil {
		return g.doc(id) // generated as decoded, without JSON in between
	}
	raw, ok := s.getRaw(id)
	if !ok {
		return nil, false
	}
	m, err := decodeDoc(raw)
	if err != nil {
		return nil, false
	}
	return m, true
}

// lookup returns the entry state for GET /medic/<id>: live, deleted or missing.
func (s *store) lookup(id string) (raw []byte, deleted, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.docs[id]
	if e == nil {
		raw, ok := s.generated(id)
		return raw, false, ok
	}
	return e.raw, e.deleted, true
}

func (s *store) currentRev(id string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.docs[id]; e != nil {
		return e.rev
	}
	if s.lazy != nil {
		if rev, ok := s.lazy.revOf(id); ok {
			return rev
		}
	}
	return ""
}

// byShortcode returns the ids of the contacts whose patient_id or place_id
// is code, in the order of contacts_by_reference's rows for the key
// ["shortcode", code].
func (s *store) byShortcode(code string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.refs[code])
}

// ids returns the sorted ids of live documents whose meta matches keep.
func (s *store) ids(keep func(id string, m docMeta) bool) []string {
	s.mu.RLock()
	out := make([]string, 0, len(s.docs))
	for id, e := range s.docs {
		if !e.deleted && (keep == nil || keep(id, e.meta)) {
			out = append(out, id)
		}
	}
	s.mu.RUnlock()
	sort.Strings(out)
	return out
}

// change is one row of the changes feed.
type change struct {
	seq     int64
	id      string
	rev     string
	deleted bool
	raw     []byte
	gen     *lazySynthetic // a generated document: raw is nil, doc generates it
}

// doc returns the JSON of the changed document.
func (c *change) doc() []byte {
	if c.raw == nil && c.gen != nil {
		c.raw, _ = c.gen.raw(c.id)
	}
	return c.raw
}

// changesSince returns up to limit changes after seq (limit <= 0: all), each
// document once at its latest sequence, plus the feed's last sequence and a
// channel closed at the next change.
func (s *store) changesSince(since int64, limit int) ([]change, int64, <-chan struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if since < 0 {
		since = 0
	}
	var out []change
	last := since
	for seq := since + 1; seq <= s.seq; seq++ {
		id, k := s.logID(seq)
		e := s.docs[id]
		last = seq
		if k >= 0 {
			if e != nil {
				continue // written since
			}
			rev, ok := s.lazy.revOf(id)
			if !ok {
				continue
			}
			// The JSON is generated only if it is asked for (change.doc).
			out = append(out, change{seq: seq, id: id, rev: rev, gen: s.lazy})
			if limit > 0 && len(out) == limit {
				break
			}
			continue
		}
		if e.seq != seq {
			continue // superseded by a later change
		}
		out = append(out, change{seq: seq, id: id, rev: e.rev, deleted: e.deleted, raw: e.raw})
		if limit > 0 && len(out) == limit {
			break
		}
	}
	if limit <= 0 || len(out) < limit {
		last = s.seq
	}
	if since > s.seq {
		last = s.seq
	}
	return out, last, s.changed
}

func (s *store) lastSeq() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.seq
}

func (s *store) count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, e := range s.docs {
		if !e.deleted {
			n++
		}
	}
	return n
}

// formatSeq renders a sequence the way CouchDB 2+ does: an opaque string
// starting with the number. Clients must treat it as opaque.
func formatSeq(n int64) string {
	h := md5.Sum([]byte(strconv.FormatInt(n, 10)))
	return strconv.FormatInt(n, 10) + "-g1AAAA" + hex.EncodeToString(h[:6])
}

// parseSeq accepts a sequence produced by formatSeq, a bare number, or "0".
func parseSeq(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num := s
	if i := strings.IndexByte(s, '-'); i > 0 {
		num = s[:i]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("malformed sequence %q", s)
	}
	return n, nil
}
