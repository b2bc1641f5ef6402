package cht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DocsService reads and writes raw CouchDB documents through the API's
// /medic proxy (online users only), and follows the _changes feed.
type DocsService service

// DocResult is CouchDB's answer to a write.
type DocResult struct {
	OK  bool   `json:"ok"`
	ID  string `json:"id"`
	Rev string `json:"rev"`
}

func (s *DocsService) path(id string) string { return "/" + s.client.db + "/" + escapeID(id) }

// Get fetches GET /medic/<id> and decodes it into v, which may be a
// *Contact, *Report, *json.RawMessage or any JSON target. A missing or
// deleted document is an *APIError matching [ErrNotFound].
func (s *DocsService) Get(ctx context.Context, id string, v any) error {
	if id == "" {
		return fmt.Errorf("cht: get doc: empty id")
	}
	if _, err := s.client.do(ctx, request{method: http.MethodGet, path: s.path(id), retry: true}, v); err != nil {
		return fmt.Errorf("cht: get doc %q: %w", id, err)
	}
	return nil
}

// Put writes doc with PUT /medic/<id>. To update, doc must carry the
// current _rev; a stale or missing _rev is an *APIError matching
// [ErrConflict]. Put is not retried on server errors (only on 429), since
// a replay after a lost answer would itself conflict.
func (s *DocsService) Put(ctx context.Context, id string, doc any) (*DocResult, error) {
	if id == "" {
		return nil, fmt.Errorf("cht: put doc: empty id")
	}
	var res DocResult
	if _, err := s.client.do(ctx, request{method: http.MethodPut, path: s.path(id), body: doc}, &res); err != nil {
		return nil, fmt.Errorf("cht: put doc %q: %w", id, err)
	}
	return &res, nil
}

// Seq is a CouchDB update sequence, used as the checkpoint of a _changes
// consumer. Persist it as a string and pass it back as
// ChangesOptions.Since to resume. CouchDB 2+ uses opaque strings, CouchDB
// 1.x numbers; both decode. The zero value means "from the beginning".
type Seq string

// UnmarshalJSON accepts a string or a number.
func (s *Seq) UnmarshalJSON(b []byte) error {
	switch k := jsonKind(b); k {
	case "string":
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = Seq(v)
	case "number":
		*s = Seq(string(b))
	case "null":
		*s = ""
	default:
		return fmt.Errorf("cht: sequence: want string or number, got %s", k)
	}
	return nil
}

// Change is one entry of the _changes feed.
type Change struct {
	Seq     Seq    `json:"seq"`
	ID      string `json:"id"`
	Changes []struct {
		Rev string `json:"rev"`
	} `json:"changes"`
	Deleted bool `json:"deleted,omitempty"`
	// Doc is the document when IncludeDocs was set (the stored, minified
	// form; use [Client.Hydrate] for lineage).
	Doc json.RawMessage `json:"doc,omitempty"`
}

// rev returns the first (winning) revision of the change.
func (c *Change) rev() string {
	if len(c.Changes) == 0 {
		return ""
	}
	return c.Changes[0].Rev
}

// Changes is one page of the _changes feed.
type Changes struct {
	Results []Change `json:"results"`
	LastSeq Seq      `json:"last_seq"`
	// Pending estimates the changes after LastSeq (CouchDB 2+ counts
	// superseded ones too); use it for progress, never to stop.
	Pending int `json:"pending"`
}

// ChangesOptions selects a page of the _changes feed.
type ChangesOptions struct {
	Since       Seq  // checkpoint to resume from; "" for the beginning
	Limit       int  // maximum results; 0 means CouchDB's default (all)
	IncludeDocs bool // include each document
	// Longpoll waits until at least one change is available or
	// PollTimeout passes (feed=longpoll).
	Longpoll    bool
	PollTimeout time.Duration // 0 means 60s; only with Longpoll
}

// Changes fetches one page of GET /medic/_changes. For backfill and pull
// mode, store Changes.LastSeq after processing the page and pass it as
// Since next time.
func (s *DocsService) Changes(ctx context.Context, opts ChangesOptions) (*Changes, error) {
	q := url.Values{}
	if opts.Since != "" {
		q.Set("since", string(opts.Since))
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.IncludeDocs {
		q.Set("include_docs", "true")
	}
	var extra time.Duration
	if opts.Longpoll {
		pt := opts.PollTimeout
		if pt <= 0 {
			pt = 60 * time.Second
		}
		q.Set("feed", "longpoll")
		q.Set("timeout", strconv.FormatInt(pt.Milliseconds(), 10))
		extra = pt
	}
	var res Changes
	_, err := s.client.do(ctx, request{
		method: http.MethodGet, path: "/" + s.client.db + "/_changes", query: q, retry: true, timeout: extra,
	}, &res)
	if err != nil {
		return nil, fmt.Errorf("cht: changes: %w", err)
	}
	return &res, nil
}

// All iterates over the _changes feed from opts.Since to the current end,
// fetching pages of opts.Limit (0 means 100) changes. Each change carries
// its Seq, so a consumer can checkpoint after every item. Sequences are
// opaque; CouchDB may replay changes already sent (after a node restart),
// and a revision already yielded in this iteration is skipped, but a
// consumer resuming from a checkpoint must still be idempotent. On error
// it yields (nil, err) once and stops. The sequence may be iterated
// again; it restarts from opts.Since. Longpoll is ignored.
func (s *DocsService) All(ctx context.Context, opts ChangesOptions) iter.Seq2[*Change, error] {
	return func(yield func(*Change, error) bool) {
		o := opts
		o.Longpoll = false
		if o.Limit <= 0 {
			o.Limit = 100
		}
		var seen replays
		for {
			page, err := s.Changes(ctx, o)
			if err != nil {
				yield(nil, err)
				return
			}
			for i := range page.Results {
				if seen.again(&page.Results[i]) {
					continue
				}
				if !yield(&page.Results[i], nil) {
					return
				}
			}
			if len(page.Results) < o.Limit || page.LastSeq == "" || page.LastSeq == o.Since {
				return
			}
			o.Since = page.LastSeq
		}
	}
}

// HydratedChange is a change of the _changes feed with its document as
// hydrate returns it.
type HydratedChange struct {
	Change
	// Hydrated is the current hydrated document; nil when the change is a
	// deletion, the document was gone when it was hydrated, or Err is set.
	Hydrated *HydratedDoc
	// Err is set when CHT's hydrated copy of this document cannot be read
	// (a *DecodeError: not JSON, or nested too deeply) or CHT fails to
	// hydrate it (an *APIError with StatusCode 500, while CHT hydrates an
	// id no document has); the other changes of its page are yielded as
	// usual.
	Err error
}

// AllHydrated iterates over the _changes feed like [DocsService.All] and
// hydrates each page's documents with one batched [Client.Hydrate] call,
// which is how a pull-mode mediator or a backfill reads CHT. Design
// documents (_design/...) are skipped. Changes are yielded in feed order;
// store Seq after processing each one to checkpoint. When the hydrated
// copy of a page cannot be read, or CHT answers 500 for it, the page is
// hydrated again in smaller groups, down to single documents, so that only
// the documents that cannot be read or hydrated carry an Err; a 500 is
// taken for a document's only while CHT hydrates an absent id without
// error, so that CHT failing as a whole is not blamed on its documents. On
// any other error (network errors, 429, 502, 503, 504 after the client's
// retries, and such a 500) it yields (nil, err) once and stops.
func (s *DocsService) AllHydrated(ctx context.Context, opts ChangesOptions) iter.Seq2[*HydratedChange, error] {
	return func(yield func(*HydratedChange, error) bool) {
		o := opts
		o.Longpoll, o.IncludeDocs = false, false
		if o.Limit <= 0 {
			o.Limit = 100
		}
		var seen replays
		for {
			page, err := s.Changes(ctx, o)
			if err != nil {
				yield(nil, err)
				return
			}
			fresh := page.Results[:0:0]
			for i := range page.Results {
				if !seen.again(&page.Results[i]) {
					fresh = append(fresh, page.Results[i])
				}
			}
			var ids []string
			for _, ch := range fresh {
				if !ch.Deleted && !isDesignDoc(ch.ID) {
					ids = append(ids, ch.ID)
				}
			}
			docs, bad, err := s.hydratePage(ctx, ids)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, ch := range fresh {
				if isDesignDoc(ch.ID) {
					continue
				}
				if !yield(&HydratedChange{Change: ch, Hydrated: docs[ch.ID], Err: bad[ch.ID]}, nil) {
					return
				}
			}
			if len(page.Results) < o.Limit || page.LastSeq == "" || page.LastSeq == o.Since {
				return
			}
			o.Since = page.LastSeq
		}
	}
}

func isDesignDoc(id string) bool { return strings.HasPrefix(id, "_design/") }

// replays remembers the revision yielded for each document in one
// iteration of the feed, so that a replayed change is not yielded twice.
// It holds hashes rather than strings: 24 bytes per document and nothing
// for the garbage collector to scan, so a feed of millions of documents
// neither grows the heap by the size of its ids nor slows every collection
// down. A change is taken for a replay only when a 128-bit hash of its id
// and a 64-bit hash of its revision both match an earlier one.
type replays struct {
	seeds [3]maphash.Seed // id (two halves), revision
	revs  map[[2]uint64]uint64
}

func (r *replays) again(c *Change) bool {
	if r.revs == nil {
		r.seeds = [3]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed(), maphash.MakeSeed()}
		r.revs = map[[2]uint64]uint64{}
	}
	id := [2]uint64{maphash.String(r.seeds[0], c.ID), maphash.String(r.seeds[1], c.ID)}
	rev := maphash.String(r.seeds[2], c.rev())
	if old, ok := r.revs[id]; ok && old == rev {
		return true
	}
	r.revs[id] = rev
	return false
}

// hydratePage hydrates the documents of one page of changes, one request
// per HydrateBatchSize ids. A request that fails in a way one document can
// cause is hydrated again in two halves, and so on down to single
// documents: bad holds the error of each document that fails on its own,
// and the others come as usual. Those ways are:
//
//   - an answer that cannot be read (a *DecodeError): a document's content;
//   - 500: CHT's hydrate API answers any error of the hydration with
//     serverUtils.serverError, 500 "Server error"
//     (api/src/controllers/hydration.js), be it a document that makes
//     shared-libs/lineage hydrateDocs (several ids) or fetchHydratedDoc
//     (one id) throw, or CouchDB failing. To tell them apart, CHT is asked
//     to hydrate an id no document has (hydrateProbeID) when a request of
//     the page first fails with 500, before it is split, and when a single
//     document does: if that fails too, CHT is failing, not the documents,
//     and the error is returned; a single document's 500 is taken for its
//     own only after CHT answered the probe.
//
// Any other error (a network error, 429, 502, 503 or 504: CHT or its
// gateway down, restarting, or overloaded) is returned at once, as is a 500
// that the probe shows to be CHT's: the caller stops or retries, and no
// document is blamed. A failed request of m ids costs at most 2m-2 more
// requests (about 2*log2(m) for one bad document among them), plus a probe
// for it and one for each document that fails with 500; the client retries
// each failed one as any hydrate request.
func (s *DocsService) hydratePage(ctx context.Context, ids []string) (docs map[string]*HydratedDoc, bad map[string]error, err error) {
	p := &pageHydration{c: s.client, docs: make(map[string]*HydratedDoc, len(ids))}
	for start := 0; start < len(ids); start += s.client.batch {
		if err := p.hydrate(ctx, ids[start:min(start+s.client.batch, len(ids))], false); err != nil {
			return nil, nil, err
		}
	}
	return p.docs, p.bad, nil
}

// hydrateProbeID is the id of no document. CHT hydrates one id with
// fetchHydratedDoc: a query of the docs_by_id_lineage view, then, as it
// emits no rows for the id, a get, whose 404 fetchHydratedDocs answers as
// not_found. So a hydrate of it succeeds when CHT and its CouchDB work,
// whatever the documents hold.
const hydrateProbeID = "cht-interop-hydrate-probe"

// pageHydration collects the documents of hydratePage.
type pageHydration struct {
	c    *Client
	docs map[string]*HydratedDoc
	bad  map[string]error
}

// hydrate hydrates ids with one request, split as hydratePage says when
// it fails; half is true for the halves of a failed request.
func (p *pageHydration) hydrate(ctx context.Context, ids []string, half bool) error {
	var res HydrateResult
	err := p.c.hydrateBatch(ctx, ids, &res, len(ids))
	if err == nil {
		for i := range res.Docs {
			p.docs[res.Docs[i].ID] = &res.Docs[i]
		}
		return nil
	}
	var de *DecodeError
	var ae *APIError
	switch {
	case errors.As(err, &de):
	case !errors.As(err, &ae) || ae.StatusCode != http.StatusInternalServerError:
		return err
	case (!half || len(ids) == 1) && p.c.hydrateBatch(ctx, []string{hydrateProbeID}, &HydrateResult{}, 1) != nil:
		return err // CHT fails to hydrate anything
	}
	if len(ids) > 1 {
		mid := len(ids) / 2
		if err := p.hydrate(ctx, ids[:mid], true); err != nil {
			return err
		}
		return p.hydrate(ctx, ids[mid:], true)
	}
	if p.bad == nil {
		p.bad = map[string]error{}
	}
	p.bad[ids[0]] = err
	return nil
}
