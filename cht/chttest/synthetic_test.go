package chttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestSeedSynthetic(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	cfg := Synthetic{Households: 3, PeoplePerHousehold: 2, ReportsPerPerson: 2, Seed: 1}
	st, err := srv.SeedSynthetic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Households != 3 || st.People != 6 || st.Reports != 12 || len(st.ReportIDs) != 12 {
		t.Fatalf("stats %+v", st)
	}
	if n := len(srv.Docs()); n != 13+3+6+12 {
		t.Fatalf("%d docs", n)
	}
	// Generated reports hydrate with patient and CHW lineage.
	d, ok := srv.HydratedDoc(st.ReportIDs[5])
	if !ok {
		t.Fatal("report missing")
	}
	for path, want := range map[string]any{
		"patient.parent.parent.name": "Sigomere CHW Area",
		"contact.name":               "Example CHW",
		"patient.parent.contact._id": str(get(d, "patient.parent.contact._id")),
	} {
		if got := get(d, path); got != want || got == "" {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	// Deterministic for a seed.
	other := NewDemoServer()
	t.Cleanup(other.Close)
	st2, err := other.SeedSynthetic(cfg)
	if err != nil || st2.ReportIDs[11] != st.ReportIDs[11] {
		t.Fatalf("not deterministic: %v %v", st2.ReportIDs[11], st.ReportIDs[11])
	}
	a, _ := srv.Doc(st.PersonIDs[3])
	b, _ := other.Doc(st.PersonIDs[3])
	jsonEqual(t, a, b)

	if _, err := srv.SeedSynthetic(Synthetic{Households: 1, Parent: "nope"}); err == nil {
		t.Fatal("unknown parent accepted")
	}
	// The changes feed carries everything for a backfill.
	p, _ := NewOutboundPusher(PusherConfig{URL: "http://127.0.0.1:1", Server: srv,
		Map:        func(map[string]any) (any, error) { return nil, nil },
		RelevantTo: func(map[string]any) bool { return false }})
	n, err := p.Sync(context.Background())
	if err != nil || n != 34 {
		t.Fatalf("Sync %d %v", n, err)
	}
}

func BenchmarkSeedSynthetic(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		srv := NewDemoServer()
		if _, err := srv.SeedSynthetic(Synthetic{Households: 100, PeoplePerHousehold: 4, ReportsPerPerson: 2}); err != nil {
			b.Fatal(err)
		}
		srv.Close()
	}
}

// TestGenerateSynthetic: a generated population reads like a stored one
// (the feed lists each document once, GET and the hydrate API return it,
// hydrated with its patient's and CHW's lineage, exactly as the same
// documents hydrate once stored) and holds no memory per document.
func TestGenerateSynthetic(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	before := srv.store.lastSeq()
	n, err := srv.GenerateSynthetic(Synthetic{Households: 3, PeoplePerHousehold: 2, ReportsPerPerson: 2, Seed: 1})
	if err != nil || n != 3*(1+2*3) {
		t.Fatalf("GenerateSynthetic: %d, %v", n, err)
	}
	changes, last, _ := srv.store.changesSince(before, 0)
	if len(changes) != int(n) || last != before+n {
		t.Fatalf("%d changes up to %d, want %d up to %d", len(changes), last, n, before+n)
	}
	// The same documents, stored, in a server of the same hierarchy.
	stored := NewDemoServer()
	t.Cleanup(stored.Close)
	seen := map[string]bool{}
	var reports []string
	for _, ch := range changes {
		if seen[ch.id] {
			t.Fatalf("%s listed twice", ch.id)
		}
		seen[ch.id] = true
		raw, ok := srv.Doc(ch.id)
		if !ok {
			t.Fatalf("GET %s: not found", ch.id)
		}
		jsonEqual(t, raw, ch.doc())
		d, err := decodeDoc(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stored.store.put(d, true); err != nil {
			t.Fatal(err)
		}
		if str(d["type"]) == "data_record" {
			reports = append(reports, ch.id)
		}
	}
	if len(reports) != 12 {
		t.Fatalf("%d reports", len(reports))
	}
	for _, id := range append(reports, changes[0].id, changes[1].id) {
		got, ok := srv.HydratedDoc(id)
		want, ok2 := stored.HydratedDoc(id)
		if !ok || !ok2 {
			t.Fatalf("hydrate %s: %v %v", id, ok, ok2)
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		jsonEqual(t, a, b)
	}
	d, _ := srv.HydratedDoc(reports[5])
	for path, want := range map[string]any{
		"patient.parent.parent.name": "Sigomere CHW Area",
		"contact.name":               "Example CHW",
	} {
		if got := get(d, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if _, ok := srv.Doc(lazyID(lazyReport, 2, 0, 1)); ok {
		t.Error("a person beyond PeoplePerHousehold has a report")
	}
	if _, err := srv.GenerateSynthetic(Synthetic{Households: 1}); err == nil {
		t.Error("a second generated population accepted")
	}
	// A write after the population comes after it in the feed.
	if _, err := srv.store.put(map[string]any{"_id": "later", "type": "person"}, false); err != nil {
		t.Fatal(err)
	}
	tail, _, _ := srv.store.changesSince(before+n, 0)
	if len(tail) != 1 || tail[0].id != "later" {
		t.Fatalf("after the population: %v", tail)
	}
}

// TestGenerateSyntheticMillion: a million documents are read from any
// place in the feed without being stored.
func TestGenerateSyntheticMillion(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	before := srv.store.lastSeq()
	logLen := len(srv.store.log)
	n, err := srv.GenerateSynthetic(Synthetic{Households: 100_000, PeoplePerHousehold: 3, ReportsPerPerson: 2})
	if err != nil || n != 1_000_000 {
		t.Fatalf("%d, %v", n, err)
	}
	page, last, _ := srv.store.changesSince(before+999_990, 500)
	if len(page) != 10 || last != before+n {
		t.Fatalf("last page: %d changes up to %d", len(page), last)
	}
	if id := page[9].id; id != lazyID(lazyReport, 2, 1, 99_999) {
		t.Errorf("last document %s", id)
	}
	if len(srv.store.log) != logLen || len(srv.store.docs) != logLen {
		t.Errorf("generated documents were stored: %d log entries, %d docs", len(srv.store.log), len(srv.store.docs))
	}
}

// BenchmarkHydrateGenerated: the hydrate API over 100 generated documents
// (what a backfill asks for at a time), per document.
func BenchmarkHydrateGenerated(b *testing.B) {
	srv := NewDemoServer(Config{MaxRecordedRequests: -1})
	b.Cleanup(srv.Close)
	before := srv.store.lastSeq()
	if _, err := srv.GenerateSynthetic(Synthetic{Households: 1000, PeoplePerHousehold: 3, ReportsPerPerson: 2}); err != nil {
		b.Fatal(err)
	}
	changes, _, _ := srv.store.changesSince(before+500, 100)
	ids := make([]string, len(changes))
	for i, ch := range changes {
		ids[i] = ch.id
	}
	body, _ := json.Marshal(map[string]any{"doc_ids": ids})
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/hydrate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(AdminUsername, AdminPassword)
		resp, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/doc")
}

// TestGeneratedHydrateFastPath: the hydrate API writes generated documents
// as JSON directly; the answer equals what the general hydrator makes of
// the same documents, for every kind of document, mixed with stored and
// missing ones, once a generated document was written, and for an id
// spelled in upper case.
func TestGeneratedHydrateFastPath(t *testing.T) {
	for _, cfg := range []Synthetic{
		{Households: 2, PeoplePerHousehold: 2, ReportsPerPerson: 2, Seed: 3},
		{Households: 2, PeoplePerHousehold: 3, ReportsPerPerson: 1, Seed: 4, HouseholdType: "clinic", Forms: []string{"delivery"}},
		{Households: 2, PeoplePerHousehold: 0, Seed: 5},
	} {
		srv := NewDemoServer()
		t.Cleanup(srv.Close)
		before := srv.store.lastSeq()
		if _, err := srv.GenerateSynthetic(cfg); err != nil {
			t.Fatal(err)
		}
		changes, _, _ := srv.store.changesSince(before, 0)
		ids := []string{DemoCHWID, "missing"}
		for _, ch := range changes {
			ids = append(ids, ch.id)
		}
		check := func(ids []string) {
			t.Helper()
			var got []struct {
				ID    string          `json:"id"`
				Doc   json.RawMessage `json:"doc"`
				Error string          `json:"error"`
			}
			if err := json.Unmarshal(postHydrate(t, srv, ids), &got); err != nil || len(got) != len(ids) {
				t.Fatalf("%d answers for %d ids: %v", len(got), len(ids), err)
			}
			for i, id := range ids {
				want, ok := srv.HydratedDoc(id)
				if got[i].ID != id || ok != (got[i].Error == "") {
					t.Fatalf("%s: answer %+v, found %v", id, got[i], ok)
				}
				if ok {
					w, _ := json.Marshal(want)
					jsonEqual(t, got[i].Doc, w)
				}
			}
		}
		check(ids)
		if cfg.PeoplePerHousehold == 0 {
			continue
		}
		// A generated person written since: the documents that embed it
		// show the written one.
		person := lazyID(lazyPerson, 0, 0, 1)
		d, _ := srv.store.get(person)
		d["name"] = "Renamed"
		delete(d, "_rev")
		if _, err := srv.store.put(d, false); err != nil {
			t.Fatal(err)
		}
		check(ids)
		if b := postHydrate(t, srv, []string{lazyID(lazyReport, 0, 0, 1)}); !bytes.Contains(b, []byte("Renamed")) {
			t.Errorf("the report's patient is not the written person: %s", b)
		}
		check([]string{strings.ToUpper(lazyID(lazyHousehold, 0, 0, 0)), lazyID(lazyHousehold, 0, 0, 1)})
	}
}

func postHydrate(t *testing.T, srv *Server, ids []string) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"doc_ids": ids})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/hydrate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(AdminUsername, AdminPassword)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("hydrate: %s %v %s", resp.Status, err, b)
	}
	return b
}
