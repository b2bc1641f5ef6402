package fhirtest

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// record is one stored version of a resource. Records are immutable once stored: a write replaces the
// pointer in the store, so readers holding a record never see it change.
type record struct {
	typ     string
	id      string
	version int       // meta.versionId as a number, 1-based
	seq     uint64    // creation order of the resource (kept across updates), for stable listing
	updated time.Time // meta.lastUpdated
	raw     []byte    // the resource JSON including id and meta; nil for a tombstone
	idents  []ident   // identifier[].system/value
	refs    []ref     // indexed reference elements (subject, patient, ...)
	status  string    // the top-level status code ("" when absent)
}

func (r *record) deleted() bool { return r.raw == nil }

// ident is one identifier of a resource; a missing system is "".
type ident struct{ system, value string }

// ref is one indexed reference: param names the search parameter ("subject", "patient") and target
// is the normalised "Type/id" reference.
type ref struct{ param, target string }

// typeStore holds the resources of one type and their search indexes. Tombstones stay in byID (so
// version numbers continue after a delete) but never in the indexes.
type typeStore struct {
	byID    map[string]*record
	live    int              // number of non-deleted records
	byIdent map[ident]idSet  // system+value -> ids
	byValue map[string]idSet // value (any system) -> ids
	byRef   map[ref]idSet    // param+target -> ids
}

// idSet is a set of ids that stores the common single id without allocating a map.
type idSet struct {
	one  string              // the only id, when many is nil
	many map[string]struct{} // two or more ids
}

// appendTo appends the ids of s to dst.
func (s idSet) appendTo(dst []string) []string {
	if s.many == nil {
		if s.one != "" {
			dst = append(dst, s.one)
		}
		return dst
	}
	for id := range s.many {
		dst = append(dst, id)
	}
	return dst
}

func newTypeStore() *typeStore {
	return &typeStore{
		byID:    make(map[string]*record),
		byIdent: make(map[ident]idSet),
		byValue: make(map[string]idSet),
		byRef:   make(map[ref]idSet),
	}
}

// store is the in-memory database. It is not synchronised: Handler guards it with its mutex.
type store struct {
	types map[string]*typeStore
	seq   uint64

	// changed lists the records (tombstones included) written since the Handler last drained it,
	// once the store has seen a Subscription; dirty is the Handler's flag that it is not empty.
	changed []*record
	track   bool
	dirty   *atomic.Bool
	subs    map[string]*subscription // active rest-hook subscriptions by id
}

func newStore(dirty *atomic.Bool) *store {
	return &store{types: make(map[string]*typeStore), dirty: dirty}
}

func (s *store) typeStore(typ string, create bool) *typeStore {
	ts := s.types[typ]
	if ts == nil && create {
		ts = newTypeStore()
		s.types[typ] = ts
	}
	return ts
}

// get returns the record (possibly a tombstone) for typ/id, or nil.
func (s *store) get(typ, id string) *record {
	ts := s.types[typ]
	if ts == nil {
		return nil
	}
	return ts.byID[id]
}

// live returns the current, non-deleted record for typ/id, or nil.
func (s *store) live(typ, id string) *record {
	r := s.get(typ, id)
	if r == nil || r.deleted() {
		return nil
	}
	return r
}

// set replaces the record for typ/id with r (nil removes the entry entirely, which only undo does)
// and keeps the indexes in step. It returns the previous record for the undo log.
func (s *store) set(typ, id string, r *record) *record {
	ts := s.typeStore(typ, true)
	old := ts.byID[id]
	if old != nil && !old.deleted() {
		ts.unindex(old)
		ts.live--
	}
	if r == nil {
		delete(ts.byID, id)
		return old
	}
	ts.byID[id] = r
	if !r.deleted() {
		ts.index(r)
		ts.live++
	}
	return old
}

func addID[K comparable](m map[K]idSet, k K, id string) {
	s, ok := m[k]
	switch {
	case !ok:
		m[k] = idSet{one: id}
	case s.many != nil:
		s.many[id] = struct{}{}
	case s.one != id:
		m[k] = idSet{many: map[string]struct{}{s.one: {}, id: {}}}
	}
}

func delID[K comparable](m map[K]idSet, k K, id string) {
	s, ok := m[k]
	switch {
	case !ok:
	case s.many == nil:
		if s.one == id {
			delete(m, k)
		}
	default:
		delete(s.many, id)
		if len(s.many) == 1 {
			for last := range s.many {
				m[k] = idSet{one: last}
			}
		}
	}
}

func (ts *typeStore) index(r *record) {
	for _, in := range r.idents {
		addID(ts.byIdent, in, r.id)
		addID(ts.byValue, in.value, r.id)
	}
	for _, rf := range r.refs {
		addID(ts.byRef, rf, r.id)
	}
}

func (ts *typeStore) unindex(r *record) {
	for _, in := range r.idents {
		delID(ts.byIdent, in, r.id)
		delID(ts.byValue, in.value, r.id)
	}
	for _, rf := range r.refs {
		delID(ts.byRef, rf, r.id)
	}
}

// liveRecords returns the non-deleted records of typ in creation order.
func (s *store) liveRecords(typ string) []*record {
	ts := s.types[typ]
	if ts == nil {
		return nil
	}
	out := make([]*record, 0, ts.live)
	for _, r := range ts.byID {
		if !r.deleted() {
			out = append(out, r)
		}
	}
	sortBySeq(out)
	return out
}

func sortBySeq(rs []*record) {
	slices.SortFunc(rs, func(a, b *record) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
}

// undoLog records the previous state of every key a transaction touched so that a failed
// transaction leaves the store exactly as it was.
type undoLog struct {
	entries []undoEntry
	seq     uint64
	changed int // len(store.changed) at the start
}

type undoEntry struct {
	typ, id string
	prev    *record
}

func (s *store) begin() *undoLog { return &undoLog{seq: s.seq, changed: len(s.changed)} }

// put stores r, recording the previous state in u when u is not nil.
func (s *store) put(u *undoLog, r *record) {
	prev := s.set(r.typ, r.id, r)
	if s.track || r.typ == "Subscription" {
		s.track = true
		s.changed = append(s.changed, r)
		s.dirty.Store(true)
	}
	if u != nil {
		u.entries = append(u.entries, undoEntry{typ: r.typ, id: r.id, prev: prev})
	}
}

// rollback restores the state recorded in u, newest change first.
func (s *store) rollback(u *undoLog) {
	for i := len(u.entries) - 1; i >= 0; i-- {
		e := u.entries[i]
		s.set(e.typ, e.id, e.prev)
	}
	s.seq = u.seq
	clear(s.changed[u.changed:])
	s.changed = s.changed[:u.changed]
	u.entries = nil
}
