package backfill

import (
	"context"

	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
)

// A report edited in CHT may no longer have a mapped field an earlier
// version had (Enketo empties the answers that are no longer relevant),
// and the Observation written for that version is withdrawn, as the push
// handler does (fhir/push): for every version after the first, the
// Observations of the mapped fields it does not convert (direct.Stale)
// are searched by identifier on the FHIR server and each one found is
// updated, in the batch's bundle, to status entered-in-error If-Match the
// version found. The reports of a batch are searched together, ten
// identifiers per search.
//
// The search is part of each attempt to write the bundle: a failed search
// fails the attempt (retried, or stopping Run, as a failed write), and a
// retry, after a version conflict (412, 409) included, searches again and
// withdraws the version it finds then, or nothing when the Observation is
// withdrawn already (an earlier attempt whose answer was lost).
//
// The Observations of an edited report can be in two batches of one run
// (see order): written by the older batch, with the copy read before the
// edit, and withdrawn by the younger one; or withdrawn by the older one
// and written again by a younger one whose copy fills the field in again.
// So a batch claims, besides the resources of its bundle, each
// Observation it may withdraw, under the request that writes it
// (direct.Stale.Request), with content that is no entry's: the batch
// searches only once the older batches that write that Observation are
// done, and the younger batches that write it wait until it is done. Two
// batches that both withdraw it may run in parallel: the second update's
// If-Match then fails, and its retry finds the Observation withdrawn.

// withdrawClaim is the content of a batch's claim on an Observation it may
// withdraw: equal to no entry of a bundle.
var withdrawClaim = []byte("withdraw")

// withdrawalKeys returns the claims of a batch on the Observations of
// stale, for order.enter.
func withdrawalKeys(cfg Config, stale []direct.Stale) []entryKey {
	if cfg.FHIR == nil {
		return nil
	}
	keys := make([]entryKey, 0, len(stale))
	for _, s := range stale {
		if s.Request != "" {
			keys = append(keys, entryKey{key: s.Request, entry: withdrawClaim})
		}
	}
	return keys
}

// withdraw returns j's bundle and its number of entries with the
// withdrawals of the Observations of j.stale found on the FHIR server now,
// and whether there are any: j.bundle when there are none. Without
// Config.FHIR (a Writer alone) nothing is searched. A failed search is a
// *searchFailed.
func withdraw(ctx context.Context, cfg Config, j *job) (bundle []byte, n int, withdrew bool, err error) {
	if len(j.stale) == 0 || cfg.FHIR == nil {
		return j.bundle, j.entries, false, nil
	}
	w, err := direct.Withdrawals(cfg.Converter, ctx, cfg.FHIR, j.stale)
	if err != nil {
		return nil, 0, false, &searchFailed{err}
	}
	tx := w.(*fhir.Transaction)
	if len(tx.Entries) == 0 {
		return j.bundle, j.entries, false, nil
	}
	bundle, n, err = encode(j.txs, tx)
	return bundle, n, true, err
}

// searchFailed is a failed search for the Observations to withdraw. It is
// never the documents' fault: a 4xx answer other than 408 and 429 (409
// and 412 are no answers to a search) concerns the configuration (the FHIR
// user may not search Observations, a wrong URL) and stops Run; network
// errors, 408, 429 and 5xx answers, and any other failure (an answer with
// more than one page), are retried.
type searchFailed struct{ err error }

func (e *searchFailed) Error() string { return e.err.Error() }

func (e *searchFailed) Unwrap() error { return e.err }
