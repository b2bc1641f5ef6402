package fhir

import (
	"bytes"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// TestMergeDirectTransactions merges the transactions of reports that
// share their contacts, as the backfill does for a batch: with the
// Observations written directly (reportTransaction, what fhir/push and
// fhir/backfill use) the bundle is byte-for-byte the one merged from
// ReportBundle's samply values, shared resources are written once, and Len
// counts the entries written.
func TestMergeDirectTransactions(t *testing.T) {
	base := loadReport(t, "testdata/report_assessment_hydrated.json")
	for _, s := range []WriteStrategy{WriteConditionalCreate, WriteConditionalUpdate, WritePut} {
		t.Run(s.String(), func(t *testing.T) {
			c := testConverter(t, Config{Strategy: s})
			var typed, fast []*Transaction
			for _, id := range []string{"r1", "r2", "r3"} {
				r := *base
				r.ID = id
				tx, err := c.ReportBundle(&r)
				if err != nil {
					t.Fatal(err)
				}
				rt, err := c.reportTransaction(&r)
				if err != nil {
					t.Fatal(err)
				}
				typed, fast = append(typed, tx), append(fast, rt)
			}
			// A contact document between the reports, sharing their lineage.
			ct, err := c.ContactBundle(base.Patient)
			if err != nil {
				t.Fatal(err)
			}
			typed = append(typed[:1], append([]*Transaction{ct}, typed[1:]...)...)
			fast = append(fast[:1], append([]*Transaction{ct}, fast[1:]...)...)

			want, err := mergeTransactions(typed).MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			m := mergeTransactions(fast)
			got, err := m.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("merged bundles differ:\ndirect %s\ntyped  %s", got, want)
			}
			w, repeats := countEntries(got)
			if n := m.Len(); n != w || n != mergeTransactions(typed).Len() || repeats != 0 {
				// No repeated conditional entries either, which HAPI FHIR
				// would merge (see TestCountEntries).
				t.Errorf("Len %d, bundle has %d entries, %d repeated conditional ones", n, w, repeats)
			}
			if n := len(typed[0].Entries); m.Len() >= 4*n {
				t.Errorf("%d entries merged from 4 documents of %d: shared contacts not merged", m.Len(), n)
			}
		})
	}
}

// TestDirectTransactionAppend: entries appended after
// reportTransaction (as CloseReferral appends the Task) come after the
// Observations, as they do after ReportBundle's.
func TestDirectTransactionAppend(t *testing.T) {
	c := testConverter(t, Config{})
	r := loadReport(t, "testdata/report_assessment_hydrated.json")
	tx, err := c.ReportBundle(r)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := c.reportTransaction(r)
	if err != nil {
		t.Fatal(err)
	}
	extra := c.entry(&refs{c: c}, "Patient", "extra-doc", "", nil, c.sys.DocumentID, "extra-doc")
	extra.Resource = &cht.Contact{ID: "x"} // any resource: encoded with encoding/json
	tx.Entries = append(tx.Entries, extra)
	rt.Entries = append(rt.Entries, extra)
	want, err := tx.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := rt.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("bundles differ:\ndirect %s\ntyped  %s", got, want)
	}
	if rt.Len() != tx.Len() {
		t.Errorf("Len %d, want %d", rt.Len(), tx.Len())
	}
}
