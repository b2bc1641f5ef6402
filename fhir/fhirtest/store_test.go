package fhirtest

import (
	"slices"
	"sync/atomic"
	"testing"
)

func TestIDSet(t *testing.T) {
	m := map[string]idSet{}
	ids := func() []string {
		out := m["k"].appendTo(nil)
		slices.Sort(out)
		return out
	}
	steps := []struct {
		add  bool
		id   string
		want []string
	}{
		{true, "a", []string{"a"}},
		{true, "a", []string{"a"}},
		{true, "b", []string{"a", "b"}},
		{true, "c", []string{"a", "b", "c"}},
		{false, "b", []string{"a", "c"}},
		{false, "x", []string{"a", "c"}},
		{false, "a", []string{"c"}},
		{true, "d", []string{"c", "d"}},
		{false, "d", []string{"c"}},
		{false, "z", []string{"c"}},
		{false, "c", nil},
		{false, "c", nil},
	}
	for i, s := range steps {
		if s.add {
			addID(m, "k", s.id)
		} else {
			delID(m, "k", s.id)
		}
		if got := ids(); !slices.Equal(got, s.want) {
			t.Fatalf("step %d (%v %s): %v, want %v", i, s.add, s.id, got, s.want)
		}
	}
	if len(m) != 0 {
		t.Errorf("empty set left in the map: %v", m)
	}
}

// TestRollbackRestoresIndexes checks set/put/rollback on the store directly.
func TestRollbackRestoresIndexes(t *testing.T) {
	s := newStore(new(atomic.Bool))
	rec := func(id string, v int, value string) *record {
		return &record{typ: "Patient", id: id, version: v, raw: []byte("{}"), idents: []ident{{"s", value}}}
	}
	s.put(nil, rec("a", 1, "x"))
	s.put(nil, rec("b", 1, "x"))
	u := s.begin()
	s.put(u, rec("a", 2, "y"))
	s.put(u, &record{typ: "Patient", id: "b", version: 2}) // delete
	s.put(u, rec("c", 1, "x"))
	s.rollback(u)
	ts := s.types["Patient"]
	got := ts.byIdent[ident{"s", "x"}].appendTo(nil)
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) || ts.live != 2 || len(ts.byIdent[ident{"s", "y"}].appendTo(nil)) != 0 {
		t.Errorf("after rollback: x=%v live=%d y=%v", got, ts.live, ts.byIdent[ident{"s", "y"}])
	}
	if s.get("Patient", "c") != nil || s.live("Patient", "a").version != 1 {
		t.Error("records not restored")
	}
}
