package fhir

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestReleasedStateSharesNothing: a released transaction's memory goes to
// the next conversions; what a caller keeps (the bytes written, the
// Warnings read before the release, a transaction never released) is
// unchanged by the conversions that reuse it.
func TestReleasedStateSharesNothing(t *testing.T) {
	type kept struct {
		what     string
		json     []byte
		warnings []*ConversionError
		warnText string
		tx       *Transaction // not released
	}
	released, warned := 0, 0
	for i, o := range allDirectOpts() {
		c := directConverter(t, o)
		g := &dgen{r: rand.New(rand.NewPCG(uint64(i), 11)), legacy: o.legacy}
		var all []kept
		for n := range 40 {
			what := fmt.Sprintf("%v doc %d", o, n)
			var tx *Transaction
			var err error
			if n%3 == 2 {
				tx, err = c.reportTransaction(g.report())
			} else {
				tx, err = c.contactTransaction(g.contact(), nil)
			}
			if err != nil {
				continue
			}
			b, err := appendJSON(nil, tx)
			if err != nil {
				continue // a value the encoder refuses (NaN), as on the samply path
			}
			k := kept{what: what, json: b, warnings: tx.Warnings, warnText: fmt.Sprint(tx.Warnings)}
			if len(tx.Warnings) > 0 {
				warned++
			}
			if n%2 == 0 {
				k.tx = tx
			} else {
				tx.release()
				released++
			}
			all = append(all, k)
		}
		for _, k := range all {
			if got := fmt.Sprint(k.warnings); got != k.warnText {
				t.Errorf("%s: warnings changed after later conversions:\n%s\nwas\n%s", k.what, got, k.warnText)
			}
			if k.tx == nil {
				continue
			}
			b, err := appendJSON(nil, k.tx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, k.json) {
				t.Errorf("%s: an unreleased transaction changed after later conversions", k.what)
			}
		}
	}
	if released < 200 || warned < 30 {
		t.Errorf("too few released (%d) or warned (%d) transactions to mean something", released, warned)
	}
}
