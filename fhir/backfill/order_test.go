package backfill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
)

const newName = "Renamed During Backfill"

// gate holds the _changes requests after the first one until open is
// closed: the reader cuts batch 0 from the first page and reads the rest of
// the feed only after the test edited a document.
type gate struct {
	mu      sync.Mutex
	changes int
	open    chan struct{}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/_changes") {
		g.mu.Lock()
		g.changes++
		first := g.changes == 1
		g.mu.Unlock()
		if !first {
			select {
			case <-g.open:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// editingWriter edits a document in CHT (edit) during batch 0's first
// attempt, which then fails with a 503 (retry) or stays in flight
// (!retry). Batch 0's next write waits until either a younger batch wrote
// the document's new version (newCopy tells a bundle that holds it: the
// stale write the fix prevents) or a younger batch waits for batch 0 (the
// fix).
type editingWriter struct {
	backfill.Writer
	edit    func(ctx context.Context) error
	newCopy func(b []byte) bool
	retry   bool
	opened  func()

	attempts atomic.Int32
	wrote    chan struct{} // a younger batch wrote the document's new version
	waited   chan struct{} // a younger batch waits for batch 0
	once     sync.Once
}

func (w *editingWriter) WriteBundle(ctx context.Context, name string, b []byte) error {
	if name != "batch-000000" {
		err := w.Writer.WriteBundle(ctx, name, b)
		if err == nil && w.newCopy(b) {
			w.once.Do(func() { close(w.wrote) })
		}
		return err
	}
	if w.attempts.Add(1) == 1 {
		// On a Run worker, not the test's goroutine: a failure is
		// returned, so that Run ends instead of hanging.
		if err := w.edit(ctx); err != nil {
			return err
		}
		w.opened()
		if w.retry {
			return &fhir.ServerError{Entry: -1, StatusCode: http.StatusServiceUnavailable, Reason: "busy"}
		}
	}
	select {
	case <-w.wrote:
	case <-w.waited:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.Writer.WriteBundle(ctx, name, b)
}

// renaming renames the person of id person, as docs holds it, in CHT.
func renaming(t *testing.T, client *cht.Client, docs func() map[string]json.RawMessage, person string) func(context.Context) error {
	return func(ctx context.Context) error {
		d := map[string]any{}
		if err := json.Unmarshal(docs()[person], &d); !assert.NoError(t, err) {
			return err
		}
		d["name"] = newName
		_, err := client.Docs.Put(ctx, person, d)
		assert.NoError(t, err)
		return err
	}
}

// A document edited in CHT while the run reads the feed is in two batches:
// the one read before the edit (old) and a younger one (new). Whichever
// write of the old batch comes last, a retry after the younger batch wrote
// or an attempt still in flight when it starts, FHIR ends with the new
// version: the younger batch waits for the older one.
func TestNewerCopyOfAResourceWins(t *testing.T) {
	for _, tt := range []struct {
		name  string
		retry bool
	}{
		{"retry of the older batch", true},
		{"older batch in flight", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 10)
			e.cfg.BatchSize, e.cfg.PageSize, e.cfg.Workers = 10, 10, 8
			person := onlyInBatch0(t, e)
			g := &gate{open: make(chan struct{})}
			client, err := cht.New(cht.Config{URL: e.cht.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
				HTTPClient: &http.Client{Transport: g}, RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond})
			require.NoError(t, err)
			// 12 batches: all within the window of 2 × Workers batches
			// read ahead of the committed prefix.
			e.cfg.CHT = client
			w := &editingWriter{Writer: txWriter{e.cfg.FHIR}, edit: renaming(t, client, docsByID(e.cht), person), retry: tt.retry,
				newCopy: func(b []byte) bool {
					return bytes.Contains(b, []byte(newName)) && bytes.Contains(b, []byte(`"value":"`+person+`"`))
				},
				wrote: make(chan struct{}), waited: make(chan struct{})}
			var open sync.Once
			w.opened = func() { open.Do(func() { close(g.open) }) }
			e.cfg.Writer = w
			var mu sync.Mutex
			var waiters []int64
			var waited sync.Once
			backfill.SetOnWait(&e.cfg, func(batch, older int64) {
				if older == 0 {
					mu.Lock()
					waiters = append(waiters, batch)
					mu.Unlock()
					waited.Do(func() { close(w.waited) })
				}
			})

			sum, err := backfill.Run(context.Background(), e.cfg)
			require.NoError(t, err)
			assert.Zero(t, sum.Failed, "%v", sum.Failures)
			// Every resource of the person has the new name.
			found := 0
			for _, typ := range []string{"Patient", "Practitioner", "RelatedPerson"} {
				for _, r := range e.fhir.Resources(typ) {
					if strings.Contains(string(r), `"value":"`+person+`"`) {
						found++
						assert.Contains(t, string(r), newName, "FHIR holds the version of the older batch")
					}
				}
			}
			assert.Positive(t, found, "no resource of %s", person)
			mu.Lock()
			defer mu.Unlock()
			assert.NotEmpty(t, waiters, "no younger batch waited for batch 0")
		})
	}
}

// recordingWriter keeps the bundles in memory.
type recordingWriter struct {
	mu      sync.Mutex
	bundles map[string][]byte
}

func (w *recordingWriter) WriteBundle(_ context.Context, name string, b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bundles[name] = b
	return nil
}

// onlyInBatch0 returns a person whose resources only batch 0 of a run of
// e.cfg writes: renamed during the run, it is in batch 0 (old) and in the
// batch of its new change (new) only, which a dry run shows.
func onlyInBatch0(t *testing.T, e *env) string {
	t.Helper()
	cfg := e.cfg
	cfg.CheckpointFile = ""
	rec := &recordingWriter{bundles: map[string][]byte{}}
	cfg.Writer = rec
	_, err := backfill.Run(context.Background(), cfg)
	require.NoError(t, err)
	docs := docsByID(e.cht)()
	for _, id := range slices.Sorted(maps.Keys(docs)) {
		var d struct{ Type, Name string }
		require.NoError(t, json.Unmarshal(docs[id], &d))
		if d.Type != "person" || d.Name == "" {
			continue
		}
		var in []string
		for name, b := range rec.bundles {
			if bytes.Contains(b, []byte(`"value":"`+id+`"`)) {
				in = append(in, name)
			}
		}
		if len(in) == 1 && in[0] == "batch-000000" {
			return id
		}
	}
	t.Fatal("no person only in batch 0")
	return ""
}

func docsByID(s *chttest.Server) func() map[string]json.RawMessage {
	return func() map[string]json.RawMessage {
		out := map[string]json.RawMessage{}
		for _, raw := range s.Docs() {
			var d struct {
				ID string `json:"_id"`
			}
			if json.Unmarshal(raw, &d) == nil && d.ID != "" {
				out[d.ID] = raw
			}
		}
		return out
	}
}

// barrierWriter holds the first writes until n are in flight at once,
// then lets every write through; it records the bundles that were.
type barrierWriter struct {
	backfill.Writer
	n        int
	mu       sync.Mutex
	inFlight [][]byte
	full     chan struct{}
	waited   chan struct{}
}

func (w *barrierWriter) WriteBundle(ctx context.Context, name string, b []byte) error {
	w.mu.Lock()
	select {
	case <-w.full:
	default:
		w.inFlight = append(w.inFlight, b)
		if len(w.inFlight) == w.n {
			close(w.full)
		}
	}
	w.mu.Unlock()
	select {
	case <-w.full:
	case <-w.waited:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.Writer.WriteBundle(ctx, name, b)
}

// The resources every batch shares with the same content (the places and
// the CHW of the documents) do not make the workers wait for each other:
// as many bundles as workers are in flight at once, sharing resources.
func TestSharedResourcesKeepWritesParallel(t *testing.T) {
	e := newEnv(t, 20)
	e.cfg.Workers, e.cfg.BatchSize = 4, 5
	w := &barrierWriter{Writer: txWriter{e.cfg.FHIR}, n: e.cfg.Workers, full: make(chan struct{}), waited: make(chan struct{})}
	e.cfg.Writer = w
	var once sync.Once
	backfill.SetOnWait(&e.cfg, func(batch, older int64) {
		t.Errorf("batch %d waits for batch %d", batch, older)
		once.Do(func() { close(w.waited) })
	})
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.Equal(t, int64(e.docs), sum.Converted, "skipped %v, failures %v", sum.Skipped, sum.Failures)
	select {
	case <-w.full:
	default:
		t.Fatal("the workers did not write in parallel")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]int{}
	for _, b := range w.inFlight {
		var bundle struct {
			Entry []struct {
				Request struct{ Method, URL string }
			}
		}
		require.NoError(t, json.Unmarshal(b, &bundle))
		for _, en := range bundle.Entry {
			seen[en.Request.Method+" "+en.Request.URL]++
		}
	}
	shared := 0
	for _, n := range seen {
		if n > 1 {
			shared++
		}
	}
	assert.Positive(t, shared, "the bundles in flight together share resources")
}

// editOnNextPage renames, in CHT, the person of id person before it lets
// the second _changes request of a run through.
type editOnNextPage struct {
	t      *testing.T
	cht    *cht.Client // without this transport
	person string
	mu     sync.Mutex
	pages  int
}

func (e *editOnNextPage) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/_changes") {
		e.mu.Lock()
		e.pages++
		second := e.pages == 2
		e.mu.Unlock()
		if second {
			var d map[string]any
			if err := e.cht.Docs.Get(r.Context(), e.person, &d); !assert.NoError(e.t, err) {
				return nil, err
			}
			d["name"] = newName
			if _, err := e.cht.Docs.Put(r.Context(), e.person, d); !assert.NoError(e.t, err) {
				return nil, err
			}
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A batch spans pages of the feed, read and hydrated one after the other.
// A person read in the first page and edited before the next is in the
// batch twice: the first page's copy, and its new change at the end of the
// feed. The edit's change is committed with the batch, so FHIR must end
// with the new version: each shared resource is built from the last copy
// of the batch, not the first.
func TestEditBetweenPagesOfOneBatch(t *testing.T) {
	e := newEnv(t, 2)
	ctx := context.Background()
	feed, err := e.cfg.CHT.Docs.Changes(ctx, cht.ChangesOptions{IncludeDocs: true})
	require.NoError(t, err)
	person, page := "", 0
	for i, ch := range feed.Results {
		var d struct{ Type, Name string }
		require.NoError(t, json.Unmarshal(ch.Doc, &d))
		if d.Type == "person" && d.Name != "" {
			person, page = ch.ID, i+1
			break
		}
	}
	require.NotEmpty(t, person)
	require.Less(t, page, len(feed.Results), "the first page must not be the whole feed")
	client, err := cht.New(cht.Config{URL: e.cht.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		HTTPClient: &http.Client{Transport: &editOnNextPage{t: t, cht: e.cfg.CHT, person: person}}})
	require.NoError(t, err)
	// The person closes the first page; one batch holds the whole feed.
	e.cfg.CHT, e.cfg.PageSize, e.cfg.BatchSize = client, page, 2*len(feed.Results)

	sum, err := backfill.Run(ctx, e.cfg)
	require.NoError(t, err)
	assert.Zero(t, sum.Failed, "%v", sum.Failures)
	assert.EqualValues(t, 1, sum.Checkpoint.Batches, "one batch")
	found := 0
	for _, typ := range []string{"Patient", "Practitioner", "RelatedPerson"} {
		for _, r := range e.fhir.Resources(typ) {
			if strings.Contains(string(r), `"value":"`+person+`"`) {
				found++
				assert.Contains(t, string(r), newName, "FHIR holds the copy of the first page")
			}
		}
	}
	assert.Positive(t, found, "no resource of %s", person)
}
