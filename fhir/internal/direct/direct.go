// Package direct gives the pipelines of this module (fhir/push,
// fhir/backfill) the direct paths of package fhir that are not part of its
// API: bundles whose resources (contacts, Encounters, Observations) are
// written straight to JSON rather than built as samply values, and
// posting a bundle whose number of entries the caller already knows, which
// fhir.Client.Transaction otherwise counts by reading the bundle again.
//
// Package fhir sets the functions when it is initialised; their arguments
// are package fhir's types (*fhir.Converter, *fhir.Client,
// *fhir.Transaction), typed any here because this package cannot import
// fhir.
package direct

import (
	"context"
	"net/url"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// Stale is an Observation an earlier version of a report may have made from
// a mapped field that the version at hand does not convert.
type Stale struct {
	// Report is the report's _id, Identifier the Observation's identifier
	// value ("<report _id>/<path>").
	Report, Identifier string
	// Request is the JSON of the request of the entry that writes the
	// Observation, as the transaction of a version that converts the
	// field has it (entry.request of the bundle); "" with
	// fhir.WriteConditionalCreate.
	Request string
}

// Searcher searches a FHIR server; *fhir.Client satisfies it.
type Searcher interface {
	Search(ctx context.Context, resourceType string, query url.Values, out any) error
}

var (
	// ReportTransaction is conv.ReportBundle(r) whose Observations are
	// not built as samply values but written when the transaction is
	// encoded: its Entries hold the other resources, its Len counts all.
	// The result is a *fhir.Transaction.
	ReportTransaction func(conv any, r *cht.Report) (any, error)

	// ContactTransaction is conv.ContactBundle(c) whose resources are not
	// built as samply values but written when the transaction is encoded
	// (the same bytes). The result is a *fhir.Transaction.
	ContactTransaction func(conv any, c *cht.Contact) (any, error)

	// BatchTransaction is the transaction of one document of a batch whose
	// transactions are merged (Merge): for a *cht.Report,
	// ReportTransaction; for a *cht.Contact, conv.ContactBundle. The
	// contact resources listed in built (resource type and CHT id), which
	// an earlier document of the batch already holds, are left out, and
	// those it adds are listed in built once the transaction is complete
	// (not when it fails). Merged in the same order, the batch's bundle is
	// the one the full transactions make. The result is a
	// *fhir.Transaction.
	BatchTransaction func(conv any, doc any, built map[[2]string]struct{}) (any, error)

	// PayloadBundleJSON is conv.PayloadBundleJSON(dst, payload), which
	// also returns the number of entries of the bundle and the payload's
	// id (whose bytes are payload's).
	PayloadBundleJSON func(conv any, dst, payload []byte) ([]byte, int, string, error)

	// Merge merges transactions (each a *fhir.Transaction) into one, a
	// *fhir.Transaction: entries of the same fullUrl (or, without one, of
	// the same request) are kept once, the first time they appear.
	Merge func(txs []any) any

	// Transaction is client.Transaction(ctx, bundle) for a bundle of n
	// entries.
	Transaction func(client any, ctx context.Context, bundle []byte, n int) error

	// PostTransaction is Transaction that calls done once nothing reads
	// bundle any more: after the call returned and the HTTP transport
	// closed every reader of the request body it was given (retries and
	// rewinds included), which can be later than the return when a
	// server answered before reading the whole body. A transport that
	// never closes a body never calls done. The caller may then reuse
	// bundle's memory.
	PostTransaction func(client any, ctx context.Context, bundle []byte, n int, done func()) error

	// Outlive returns a context for a call of a *fhir.Client that may
	// outlive ctx: the attempt in flight when ctx ends runs on to the
	// server's answer (within the client's per-attempt timeout), and no
	// attempt is retried after ctx ended. Its values are ctx's.
	Outlive func(ctx context.Context) context.Context

	// AppendTransaction appends the JSON of tx, a *fhir.Transaction, to
	// dst (tx.MarshalJSON into a caller's buffer).
	AppendTransaction func(dst []byte, tx any) ([]byte, error)

	// Conditional reports whether conv, a *fhir.Converter, writes with a
	// conditional strategy (fhir.WriteConditionalUpdate or
	// fhir.WriteConditionalCreate) rather than PUT to deterministic ids.
	Conditional func(conv any) bool

	// WithdrawStale adds to tx, the *fhir.Transaction of report r made by
	// conv (a *fhir.Converter), an update to status entered-in-error of
	// each Observation an earlier version of r made from a field this
	// version no longer converts, found with s. It adds nothing for a
	// report's first version.
	WithdrawStale func(conv any, ctx context.Context, tx any, r *cht.Report, s Searcher) error

	// StaleObservations lists, sorted by identifier, the Observations that
	// WithdrawStale would look for: those an earlier version of report r
	// may have made from a mapped field that this version, whose
	// *fhir.Transaction made by conv is tx, does not convert. None for a
	// report's first version, nor with fhir.WriteConditionalCreate.
	StaleObservations func(conv any, tx any, r *cht.Report) ([]Stale, error)

	// Withdrawals searches the Observations of stale (of one report or
	// several), found with s, and returns a *fhir.Transaction holding an
	// update to status entered-in-error of each one not withdrawn yet,
	// If-Match the version found. WithdrawStale is StaleObservations
	// then Withdrawals.
	Withdrawals func(conv any, ctx context.Context, s Searcher, stale []Stale) (any, error)

	// Release gives the memory of a transaction of ReportTransaction or
	// ContactTransaction back for the next conversion. Call it once the
	// transaction is written and nothing reads it (entries, strings)
	// any more; a Warnings slice read before stays valid. Not calling it
	// is safe: the garbage collector then frees the memory.
	Release func(tx any)
)
