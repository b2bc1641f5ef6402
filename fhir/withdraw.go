package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/search"
)

func init() {
	direct.WithdrawStale = func(conv any, ctx context.Context, tx any, r *cht.Report, s direct.Searcher) error {
		return conv.(*Converter).withdrawStale(ctx, tx.(*Transaction), r, s)
	}
	direct.StaleObservations = func(conv any, tx any, r *cht.Report) ([]direct.Stale, error) {
		return conv.(*Converter).staleObservations(tx.(*Transaction), r)
	}
	direct.Withdrawals = func(conv any, ctx context.Context, s direct.Searcher, stale []direct.Stale) (any, error) {
		entries, err := conv.(*Converter).withdrawals(ctx, s, stale)
		if err != nil {
			return nil, err
		}
		return &Transaction{Entries: entries}, nil
	}
}

// withdrawnStatus is the status of an Observation whose field an edit of
// its report emptied: FHIR R4 observation-status "entered-in-error", "the
// observation has been withdrawn following previous final release".
const withdrawnStatus = "entered-in-error"

// withdrawStale adds to tx, the transaction of report r, an update of each
// Observation an earlier version of r made from a field this version does
// not convert (see staleObservations): its status becomes
// entered-in-error, its other members stay, and it is updated If-Match the
// version found (see withdrawals).
//
// The Observations are withdrawn rather than deleted: a delete fails on
// servers that keep references intact (an EMR's resource pointing at the
// Observation), and the Observation stays in the record as a value that
// was entered and withdrawn. Should the field come back in a later
// version, that version's transaction makes the Observation final again.
func (c *Converter) withdrawStale(ctx context.Context, tx *Transaction, r *cht.Report, s direct.Searcher) error {
	stale, err := c.staleObservations(tx, r)
	if err != nil || len(stale) == 0 {
		return err
	}
	entries, err := c.withdrawals(ctx, s, stale)
	if err != nil {
		return err
	}
	tx.Entries = append(tx.Entries, entries...)
	return nil
}

// staleObservations lists, sorted by identifier, the Observations an
// earlier version of report r may have made from a mapped field that this
// version, whose transaction is tx, does not convert: absent, empty, or a
// lenient value left out (a warning of tx). It lists none for a report's
// first version (_rev "1-…"), which no earlier version wrote anything
// for, for a report without _rev, and with WriteConditionalCreate, which
// propagates no edit.
func (c *Converter) staleObservations(tx *Transaction, r *cht.Report) ([]direct.Stale, error) {
	gen, _, _ := strings.Cut(r.Rev, "-")
	if n, err := strconv.Atoi(gen); err != nil || n < 2 || c.cfg.Strategy == WriteConditionalCreate {
		return nil, nil
	}
	fi, err := c.form(r.Form)
	if err != nil {
		return nil, err
	}
	stale := map[string]*fieldIndex{} // by path
	for i := range fi.fields {
		fx := &fi.fields[i]
		if v, ok := r.Fields.Field(fx.fm.Path); !ok || isEmptyValue(v) {
			stale[fx.fm.Path] = fx
		}
	}
	for _, w := range tx.Warnings {
		path, ok := strings.CutPrefix(w.Field, "fields.")
		if w.DocID != r.ID || !ok || stale[path] != nil {
			continue
		}
		for i := range fi.fields {
			if fi.fields[i].fm.Path == path {
				stale[path] = &fi.fields[i]
			}
		}
	}
	out := make([]direct.Stale, 0, len(stale))
	for _, path := range slices.Sorted(maps.Keys(stale)) {
		out = append(out, direct.Stale{Report: r.ID, Identifier: r.ID + "/" + path,
			Request: c.observationRequest(r.ID, stale[path])})
	}
	return out, nil
}

// observationRequest returns the JSON of the request of the entry that
// writes the Observation of field fx of report id, as the transaction of
// a version that converts the field has it.
func (c *Converter) observationRequest(id string, fx *fieldIndex) string {
	u := uuidString(c.uuid("Observation", id, fx.fm.Path))
	return string(c.appendRequest([]byte(`{"method":`), "Observation", []byte(u), c.direct.obsQuery, id, fx.fm.Path, 0))
}

// withdrawals returns an update of each Observation of the identifiers
// of stale (of one report or several) that is not withdrawn yet: its
// status becomes entered-in-error, its other members stay, and it is
// updated If-Match the version found (when the server gives one), so that
// a concurrent change fails the transaction (412; 409 on HAPI) instead of
// being overwritten. They are found by their identifiers, with one search
// per searchBatch identifiers (a short URL whatever the form), in the
// order of the identifiers: the same searches for every retry. An answer
// with a next page is an error: what it leaves out would stay final.
func (c *Converter) withdrawals(ctx context.Context, s direct.Searcher, stale []direct.Stale) ([]Entry, error) {
	sorted := slices.SortedFunc(slices.Values(stale), func(a, b direct.Stale) int {
		return strings.Compare(a.Identifier, b.Identifier)
	})
	values := make(map[string]bool, len(sorted))
	for _, st := range sorted {
		values[st.Identifier] = true
	}
	var out []Entry
	seen := map[string]bool{}
	for batch := range slices.Chunk(sorted, searchBatch) {
		alts := make([]string, len(batch))
		var reports []string
		for i, st := range batch {
			alts[i] = search.Escape(c.sys.Observation) + "|" + search.Escape(st.Identifier)
			if !slices.Contains(reports, st.Report) {
				reports = append(reports, st.Report)
			}
		}
		what := "the fields " + strings.Join(reports, ", ") + " no longer has"
		if len(reports) > 1 {
			what = "the fields reports " + strings.Join(reports, ", ") + " no longer have"
		}
		q := url.Values{"identifier": {strings.Join(alts, ",")}, "_count": {strconv.Itoa(4 * searchBatch)}}
		var found searchPage
		if err := s.Search(ctx, "Observation", q, &found); err != nil {
			return nil, fmt.Errorf("fhir: find the Observations of %s: %w", what, err)
		}
		if found.hasNext() {
			return nil, fmt.Errorf("fhir: find the Observations of %s: the FHIR server answered more than one "+
				"page for %d identifiers (_count %s)", what, len(batch), q.Get("_count"))
		}
		for _, e := range found.Entry {
			dec := json.NewDecoder(bytes.NewReader(e.Resource))
			dec.UseNumber()
			var res map[string]any
			if dec.Decode(&res) != nil || res["resourceType"] != "Observation" || res["status"] == withdrawnStatus {
				continue
			}
			id, _ := res["id"].(string)
			if id == "" || seen[id] || !hasIdentifier(res, c.sys.Observation, values) {
				continue // not one of ours (a server that ignored the search), or listed twice
			}
			seen[id] = true
			res["status"] = withdrawnStatus
			version := versionOf(res)
			keepClientMeta(res)
			out = append(out, updateEntry(c, "Observation", id, version, res, "withdrawn"))
		}
	}
	return out, nil
}

// searchBatch is the number of identifiers withdrawals looks for in one
// search: about 1.5 KB of URL, and a page of answers far below the page
// sizes servers cap _count at.
const searchBatch = 10

// hasIdentifier reports whether res has an identifier of system whose value
// is in values.
func hasIdentifier(res map[string]any, system string, values map[string]bool) bool {
	ids, _ := res["identifier"].([]any)
	for _, x := range ids {
		id, _ := x.(map[string]any)
		sys, _ := id["system"].(string)
		v, _ := id["value"].(string)
		if sys == system && values[v] {
			return true
		}
	}
	return false
}
