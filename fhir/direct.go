package fhir

import (
	"context"
	"fmt"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
)

// The direct paths of fhir/push and fhir/backfill; see package direct.
func init() {
	direct.ReportTransaction = func(conv any, r *cht.Report) (any, error) {
		t, err := conv.(*Converter).reportTransaction(r)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	direct.ContactTransaction = func(conv any, c *cht.Contact) (any, error) {
		t, err := conv.(*Converter).contactTransaction(c, nil)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	direct.BatchTransaction = func(conv any, doc any, built map[[2]string]struct{}) (any, error) {
		var t *Transaction
		var err error
		switch d := doc.(type) {
		case *cht.Report:
			t, err = conv.(*Converter).reportTransactionIn(d, built)
		case *cht.Contact:
			t, err = conv.(*Converter).contactTransaction(d, built)
		default:
			return nil, fmt.Errorf("fhir: BatchTransaction: %T is neither a report nor a contact", doc)
		}
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	direct.PayloadBundleJSON = func(conv any, dst, payload []byte) ([]byte, int, string, error) {
		return conv.(*Converter).payloadBundleJSON(dst, payload)
	}
	direct.Merge = func(txs []any) any {
		all := make([]*Transaction, len(txs))
		for i, t := range txs {
			all[i] = t.(*Transaction)
		}
		return mergeTransactions(all)
	}
	direct.Conditional = func(conv any) bool { return conv.(*Converter).cfg.Strategy != WritePut }
	direct.Transaction = func(client any, ctx context.Context, bundle []byte, n int) error {
		return client.(*Client).transaction(ctx, bundle, n)
	}
}

// mergeTransactions merges txs into one transaction. Entries of the same
// fullUrl (or, without one, the same request) are kept once: the
// resources several documents share (a patient, the CHW, their places)
// have the same deterministic fullUrl.
func mergeTransactions(txs []*Transaction) *Transaction {
	if len(txs) == 1 {
		return txs[0]
	}
	n := 0
	for _, t := range txs {
		n += len(t.Entries)
	}
	merged := &Transaction{Entries: make([]Entry, 0, n)}
	seen := make(map[string]struct{}, n)
	for _, t := range txs {
		d := t.direct
		for i, e := range t.Entries {
			for len(d) > 0 && d[0].at <= i {
				merged.direct = append(merged.direct, d[0].moved(len(merged.Entries)))
				d = d[1:]
			}
			key := e.FullURL
			if key == "" {
				key = e.Request.Method.Code() + " " + e.Request.Url
			}
			if _, dup := seen[key]; dup {
				continue
			}
			seen[key] = struct{}{}
			merged.Entries = append(merged.Entries, e)
		}
		for _, ob := range d {
			merged.direct = append(merged.direct, ob.moved(len(merged.Entries)))
		}
		merged.Warnings = append(merged.Warnings, t.Warnings...)
	}
	return merged
}
