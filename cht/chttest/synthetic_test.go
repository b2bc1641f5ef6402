package chttest

import (
	"context"
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
