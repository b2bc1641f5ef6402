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
}

// withdrawnStatus is the status of an Observation whose field an edit of
// its report emptied: FHIR R4 observation-status "entered-in-error", "the
// observation has been withdrawn following previous final release".
const withdrawnStatus = "entered-in-error"

// withdrawStale adds to tx, the transaction of report r, an update of each
// Observation an earlier version of r made from a field this version does
// not convert (absent, empty, or a lenient value left out): its status
// becomes entered-in-error, its other members stay, and it is updated
// If-Match the version found (when the server gives one), so that a
// concurrent change fails the transaction (412; 409 on HAPI) instead of being
// overwritten. They are found by their identifiers, with one search per
// searchBatch fields (a short URL whatever the form); an Observation
// already withdrawn is left alone. An answer with a next page is an
// error: what it leaves out would stay final. It does nothing for a
// report's first version (_rev "1-…"), which no earlier version wrote
// anything for, for a report without _rev, and with
// WriteConditionalCreate, which propagates no edit.
//
// The Observations are withdrawn rather than deleted: a delete fails on
// servers that keep references intact (an EMR's resource pointing at the
// Observation), and the Observation stays in the record as a value that
// was entered and withdrawn. Should the field come back in a later
// version, that version's transaction makes the Observation final again.
func (c *Converter) withdrawStale(ctx context.Context, tx *Transaction, r *cht.Report, s direct.Searcher) error {
	gen, _, _ := strings.Cut(r.Rev, "-")
	if n, err := strconv.Atoi(gen); err != nil || n < 2 || c.cfg.Strategy == WriteConditionalCreate {
		return nil
	}
	fi, err := c.form(r.Form)
	if err != nil {
		return err
	}
	stale := map[string]bool{} // identifier values
	for i := range fi.fields {
		path := fi.fields[i].fm.Path
		if v, ok := r.Fields.Field(path); !ok || isEmptyValue(v) {
			stale[r.ID+"/"+path] = true
		}
	}
	for _, w := range tx.Warnings {
		if w.DocID == r.ID && strings.HasPrefix(w.Field, "fields.") {
			stale[r.ID+"/"+strings.TrimPrefix(w.Field, "fields.")] = true
		}
	}
	seen := map[string]bool{}
	// Sorted: the same searches for every retry.
	for batch := range slices.Chunk(slices.Sorted(maps.Keys(stale)), searchBatch) {
		alts := make([]string, len(batch))
		for i, v := range batch {
			alts[i] = search.Escape(c.sys.Observation) + "|" + search.Escape(v)
		}
		q := url.Values{"identifier": {strings.Join(alts, ",")}, "_count": {strconv.Itoa(4 * searchBatch)}}
		var found searchPage
		if err := s.Search(ctx, "Observation", q, &found); err != nil {
			return fmt.Errorf("fhir: find the Observations of the fields %s no longer has: %w", r.ID, err)
		}
		if found.hasNext() {
			return fmt.Errorf("fhir: find the Observations of the fields %s no longer has: the FHIR server answered "+
				"more than one page for %d identifiers (_count %s)", r.ID, len(batch), q.Get("_count"))
		}
		for _, e := range found.Entry {
			dec := json.NewDecoder(bytes.NewReader(e.Resource))
			dec.UseNumber()
			var res map[string]any
			if dec.Decode(&res) != nil || res["resourceType"] != "Observation" || res["status"] == withdrawnStatus {
				continue
			}
			id, _ := res["id"].(string)
			if id == "" || seen[id] || !hasIdentifier(res, c.sys.Observation, stale) {
				continue // not one of ours (a server that ignored the search), or listed twice
			}
			seen[id] = true
			res["status"] = withdrawnStatus
			version := versionOf(res)
			keepClientMeta(res)
			tx.Entries = append(tx.Entries, updateEntry(c, "Observation", id, version, res, "withdrawn"))
		}
	}
	return nil
}

// searchBatch is the number of identifiers withdrawStale looks for in one
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
