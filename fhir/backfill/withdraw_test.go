package backfill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
)

// report is the demo report whose mapped fields (weight, height; the
// default mapping) the edits of these tests empty and fill in again.
const report = chttest.DemoHeightWeightReportID

// withStrategy makes e's converter write with strategy.
func withStrategy(t *testing.T, e *env, strategy fhir.WriteStrategy) {
	t.Helper()
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: e.cht.URL,
		Mapping: fhir.DefaultMapping(), Strategy: strategy})
	require.NoError(t, err)
	e.cfg.Converter = conv
}

// editReport sets, in CHT, the fields of the report (nil deletes one); the
// report gets a new _rev, which it returns.
func editReport(t *testing.T, ctx context.Context, c *cht.Client, fields map[string]any) string {
	t.Helper()
	var d map[string]any
	require.NoError(t, c.Docs.Get(ctx, report, &d))
	f := d["fields"].(map[string]any)
	for k, v := range fields {
		if v == nil {
			delete(f, k)
		} else {
			f[k] = v
		}
	}
	res, err := c.Docs.Put(ctx, report, d)
	require.NoError(t, err)
	return res.Rev
}

// observations returns the report's Observations on the FHIR server by
// the field path of their identifier ("<report id>/<path>").
func (e *env) observations(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, raw := range e.fhir.Resources("Observation") {
		var o map[string]any
		require.NoError(t, json.Unmarshal(raw, &o))
		for _, id := range o["identifier"].([]any) {
			if path, ok := strings.CutPrefix(id.(map[string]any)["value"].(string), report+"/"); ok {
				_, dup := out[path]
				require.False(t, dup, "two Observations of %s", path)
				out[path] = o
			}
		}
	}
	return out
}

func versionOf(o map[string]any) string {
	v, _ := o["meta"].(map[string]any)["versionId"].(string)
	return v
}

// run syncs the feed from e's checkpoint and requires a clean run.
func (e *env) run(t *testing.T, ctx context.Context) *backfill.Summary {
	t.Helper()
	sum, err := backfill.Run(ctx, e.cfg)
	require.NoError(t, err)
	require.Zero(t, sum.Failed, "%v", sum.Failures)
	return sum
}

// A report edited after the push route was down, or before a first sync,
// is backfilled at its current version: the Observations of the fields an
// edit emptied are withdrawn, as the push of the edit would have
// (fhir/push), in the transaction that writes the version. They stay, with
// status entered-in-error and their value; a later version that fills a
// field in again makes its Observation final with the new value. A
// report's first version costs no search, and a run from scratch, which
// writes every version again, withdraws nothing twice.
func TestBackfillWithdrawsEmptiedFields(t *testing.T) {
	for _, strategy := range []fhir.WriteStrategy{fhir.WritePut, fhir.WriteConditionalUpdate} {
		t.Run(strategy.String(), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, 2)
			withStrategy(t, e, strategy)
			f := spy(t, e)
			e.run(t, ctx)
			assert.Zero(t, f.searched(), "first versions (_rev 1-…) have nothing to withdraw")
			v1 := e.observations(t)
			require.Len(t, v1, 2)
			require.Equal(t, "final", v1["weight"]["status"])

			// The CHW edits the report and clears the weight; the
			// push of the edit is lost, and the backfill resumes.
			rev := editReport(t, ctx, e.cfg.CHT, map[string]any{"weight": nil})
			require.True(t, strings.HasPrefix(rev, "2-"), rev)
			sum := e.run(t, ctx)
			assert.EqualValues(t, 1, sum.Processed)
			assert.Equal(t, 1, f.searched())
			v2 := e.observations(t)
			require.Len(t, v2, 2, "withdrawn, not deleted")
			assert.Equal(t, "entered-in-error", v2["weight"]["status"])
			assert.Equal(t, v1["weight"]["valueQuantity"], v2["weight"]["valueQuantity"], "the value withdrawn stays readable")
			assert.Equal(t, v1["weight"]["code"], v2["weight"]["code"])
			assert.Equal(t, "final", v2["height"]["status"])

			// A run from scratch (a lost checkpoint) writes the version
			// again and finds the Observation withdrawn already.
			cp := e.cfg.CheckpointFile
			e.cfg.CheckpointFile = filepath.Join(t.TempDir(), "again.json")
			e.run(t, ctx)
			assert.Equal(t, 2, f.searched())
			again := e.observations(t)
			assert.Equal(t, "entered-in-error", again["weight"]["status"])
			assert.Equal(t, versionOf(v2["weight"]), versionOf(again["weight"]), "withdrawn once")
			e.cfg.CheckpointFile = cp

			// A later edit fills the weight in again.
			editReport(t, ctx, e.cfg.CHT, map[string]any{"weight": 12.5})
			e.run(t, ctx)
			v3 := e.observations(t)
			require.Len(t, v3, 2)
			assert.Equal(t, "final", v3["weight"]["status"])
			assert.Equal(t, 12.5, v3["weight"]["valueQuantity"].(map[string]any)["value"])
			assert.Equal(t, "final", v3["height"]["status"])
		})
	}
}

// WriteConditionalCreate propagates no edit: nothing is searched, nothing
// withdrawn.
func TestBackfillConditionalCreateWithdrawsNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 1)
	withStrategy(t, e, fhir.WriteConditionalCreate)
	f := spy(t, e)
	e.run(t, ctx)
	editReport(t, ctx, e.cfg.CHT, map[string]any{"weight": nil})
	e.run(t, ctx)
	assert.Zero(t, f.searched())
	assert.Equal(t, "final", e.observations(t)["weight"]["status"])
}

// fhirSpy is the transport of e's FHIR client: it counts the Observation
// searches and the transactions (and those answered with a version
// conflict), answers the searches with the statuses of fail, one per
// search, before it lets them through, and calls after once the n-th
// search (from 1) was answered.
type fhirSpy struct {
	mu                         sync.Mutex
	fail                       []int
	searches, posts, conflicts int
	after                      func(n int)
}

func (f *fhirSpy) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost {
		resp, err := http.DefaultTransport.RoundTrip(r)
		f.mu.Lock()
		f.posts++
		if err == nil && (resp.StatusCode == http.StatusPreconditionFailed || resp.StatusCode == http.StatusConflict) {
			f.conflicts++
		}
		f.mu.Unlock()
		return resp, err
	}
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/Observation") {
		return http.DefaultTransport.RoundTrip(r)
	}
	f.mu.Lock()
	f.searches++
	n := f.searches
	status := 0
	if len(f.fail) > 0 {
		status, f.fail = f.fail[0], f.fail[1:]
	}
	f.mu.Unlock()
	if status != 0 {
		return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{},
			Body: http.NoBody, Request: r}, nil
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && f.after != nil {
		f.after(n)
	}
	return resp, err
}

// counts returns the searches, transactions and conflicts so far.
func (f *fhirSpy) counts() (searches, posts, conflicts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.searches, f.posts, f.conflicts
}

func (f *fhirSpy) searched() int {
	n, _, _ := f.counts()
	return n
}

// spy gives e a FHIR client whose requests a new fhirSpy sees.
func spy(t *testing.T, e *env) *fhirSpy { return spyOn(t, e) }

func spyOn(t testing.TB, e *env) *fhirSpy {
	t.Helper()
	f := &fhirSpy{}
	c, err := fhir.NewClient(fhir.ClientConfig{BaseURL: e.fhir.URL, MaxRetries: -1, HTTPClient: &http.Client{Transport: f}})
	require.NoError(t, err)
	e.cfg.FHIR = c
	return f
}

// A failed search fails the attempt to write the batch, which then writes
// nothing: a transient failure (5xx, 429) is retried and the retry
// withdraws; one that concerns the configuration (401, 403) stops Run at
// once, and one that lasts stops it after MaxAttempts. A stopped Run
// leaves the checkpoint before the batch, and its Observation final, for
// the next run to withdraw.
func TestBackfillFailedSearch(t *testing.T) {
	for _, tt := range []struct {
		name     string
		fail     []int
		searches int
		stops    bool
	}{
		{"server error, retried", []int{503, 429}, 3, false},
		{"unauthorized", []int{401}, 1, true},
		{"forbidden", []int{403}, 1, true},
		{"bad request", []int{400}, 1, true},
		{"down for good", []int{503, 503, 503}, 3, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, 1)
			e.run(t, ctx)
			editReport(t, ctx, e.cfg.CHT, map[string]any{"weight": nil})
			before, err := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
			require.NoError(t, err)
			f := spy(t, e)
			f.fail = tt.fail
			e.cfg.MaxAttempts = 3

			sum, err := backfill.Run(ctx, e.cfg)
			searches, posts, _ := f.counts()
			assert.Equal(t, tt.searches, searches)
			if !tt.stops {
				require.NoError(t, err)
				assert.EqualValues(t, 1, sum.Converted-before.Converted)
				assert.Equal(t, "entered-in-error", e.observations(t)["weight"]["status"])
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), report)
			assert.Zero(t, sum.FailedNow, "not the document's fault")
			after, err := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
			require.NoError(t, err)
			assert.Equal(t, before.Seq, after.Seq, "the checkpoint stays before the batch")
			assert.Equal(t, before.Converted, after.Converted)
			assert.Zero(t, posts, "a transaction without its search")
			assert.Equal(t, "final", e.observations(t)["weight"]["status"])

			// Once the server answers, the next run withdraws.
			f.mu.Lock()
			f.fail = nil
			f.mu.Unlock()
			e.run(t, ctx)
			assert.Equal(t, "entered-in-error", e.observations(t)["weight"]["status"])
		})
	}
}

// An Observation updated on the server between the search and the
// transaction fails the transaction's If-Match (412; 409 on HAPI); the
// retry searches again and withdraws the version it finds then, rather
// than sending the stale If-Match again until MaxAttempts. Under
// WriteConditionalUpdate, where a 412 otherwise means an ambiguous
// conditional write (the document fails), the first one after a
// withdrawal is retried the same way.
func TestBackfillWithdrawalConflictSearchesAgain(t *testing.T) {
	for _, strategy := range []fhir.WriteStrategy{fhir.WritePut, fhir.WriteConditionalUpdate} {
		t.Run(strategy.String(), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, 1)
			withStrategy(t, e, strategy)
			e.run(t, ctx)
			editReport(t, ctx, e.cfg.CHT, map[string]any{"weight": nil})
			weight := e.observations(t)["weight"]
			id := weight["id"].(string)
			f := spy(t, e)
			f.after = func(n int) {
				if n != 1 {
					return
				}
				// Another writer (an EMR) updates the Observation.
				o := map[string]any{}
				for k, v := range weight {
					o[k] = v
				}
				delete(o, "meta")
				o["note"] = []any{map[string]any{"text": "checked"}}
				assert.NoError(t, fhirClient(t, e.fhir.URL).Update(ctx, "Observation", id, o, nil))
			}
			e.cfg.MaxAttempts = 3

			e.run(t, ctx)
			searches, _, conflicts := f.counts()
			assert.Equal(t, 2, searches, "searched again after the conflict")
			assert.Equal(t, 1, conflicts)
			got := e.observations(t)["weight"]
			assert.Equal(t, "entered-in-error", got["status"])
			assert.Equal(t, []any{map[string]any{"text": "checked"}}, got["note"], "the other writer's change is kept")
		})
	}
}

// editReportAndAnother empties the weight of the edited report and saves
// a person again (not the report's patient or submitter), so that a
// resumed run reads both in one batch; it returns the person's id.
func editReportAndAnother(t *testing.T, ctx context.Context, e *env) string {
	t.Helper()
	bad := e.stats.PersonIDs[0]
	editReport(t, ctx, e.cfg.CHT, map[string]any{"weight": nil})
	var d map[string]any
	require.NoError(t, e.cfg.CHT.Docs.Get(ctx, bad, &d))
	_, err := e.cfg.CHT.Docs.Put(ctx, bad, d)
	require.NoError(t, err)
	return bad
}

// A batch the server rejects for another document's content is written
// document by document: the edited report alone, with its withdrawal,
// searched again for its own bundle.
func TestBackfillWithdrawsInARejectedBatch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 1)
	e.run(t, ctx)
	bad := editReportAndAnother(t, ctx, e)
	f := spy(t, e)
	e.cfg.Writer = rejectingWriter{Writer: txWriter{e.cfg.FHIR}, bad: bad}

	sum, err := backfill.Run(ctx, e.cfg)
	require.NoError(t, err)
	assert.EqualValues(t, 2, sum.Processed, "one batch of the two edits")
	require.Len(t, sum.Failures, 1)
	assert.Equal(t, bad, sum.Failures[0].DocID)
	assert.Equal(t, 2, f.searched(), "the batch's search, then the report's own")
	assert.Equal(t, "entered-in-error", e.observations(t)["weight"]["status"])
}

// A report edited while the backfill reads the feed is in two batches:
// batch 0 with the copy read before the edit, and a younger one with the
// new copy. FHIR ends with the new copy's state whichever batch's write
// comes first: the younger batch waits for batch 0 before it searches
// (the old copy writes the weight, the new one withdraws it) and before
// it writes (the old copy withdraws the weight, the new one fills it in
// again), although the report's other resources are the same in both.
func TestBackfillReportEditedDuringSync(t *testing.T) {
	for _, tt := range []struct {
		name   string
		before map[string]any // edit before the run (after a first sync)
		during map[string]any // edit during batch 0's write
		want   string         // the weight's status at the end
	}{
		{"emptied during the sync", nil, map[string]any{"weight": nil}, "entered-in-error"},
		{"filled in again during the sync", map[string]any{"weight": nil}, map[string]any{"weight": 12.5}, "final"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, 3)
			// A first sync (pushes) wrote the report's first version.
			first := e.cfg
			first.CheckpointFile = filepath.Join(t.TempDir(), "first.json")
			_, err := backfill.Run(ctx, first)
			require.NoError(t, err)
			if tt.before != nil {
				editReport(t, ctx, e.cfg.CHT, tt.before)
				// Younger changes follow the report's.
				touchPeople(t, ctx, e, 5)
			}
			// Batch 0 is the first page and ends with the report.
			feed, err := e.cfg.CHT.Docs.Changes(ctx, cht.ChangesOptions{})
			require.NoError(t, err)
			at := -1
			for i, ch := range feed.Results {
				if ch.ID == report {
					at = i
				}
			}
			require.GreaterOrEqual(t, at, 0)
			require.Less(t, at+1, len(feed.Results)-3, "younger batches")
			g := &gate{open: make(chan struct{})}
			client, err := cht.New(cht.Config{URL: e.cht.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
				HTTPClient: &http.Client{Transport: g}, RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond})
			require.NoError(t, err)
			e.cfg.CHT, e.cfg.BatchSize, e.cfg.PageSize, e.cfg.Workers = client, at+1, at+1, 4
			// Batch 0 holds the report's copy read before the edit.
			w := &editingWriter{Writer: txWriter{e.cfg.FHIR},
				edit:    func(ctx context.Context) error { editReport(t, ctx, client, tt.during); return nil },
				newCopy: func(b []byte) bool { return strings.Contains(string(b), report) },
				wrote:   make(chan struct{}), waited: make(chan struct{})}
			var open, waited sync.Once
			w.opened = func() { open.Do(func() { close(g.open) }) }
			e.cfg.Writer = w
			backfill.SetOnWait(&e.cfg, func(_, older int64) {
				if older == 0 {
					waited.Do(func() { close(w.waited) })
				}
			})

			e.run(t, ctx)
			got := e.observations(t)
			require.Len(t, got, 2)
			assert.Equal(t, tt.want, got["weight"]["status"])
			assert.Equal(t, "final", got["height"]["status"])
			select {
			case <-w.waited:
			default:
				t.Error("no younger batch waited for batch 0")
			}
		})
	}
}

// touchPeople stores n people again, unchanged: their changes move to the
// end of the feed.
func touchPeople(t *testing.T, ctx context.Context, e *env, n int) {
	t.Helper()
	docs := docsByID(e.cht)()
	for _, id := range slices.Sorted(maps.Keys(docs)) {
		var d map[string]any
		require.NoError(t, json.Unmarshal(docs[id], &d))
		if d["type"] != "person" || n == 0 {
			continue
		}
		_, err := e.cfg.CHT.Docs.Put(ctx, id, d)
		require.NoError(t, err)
		n--
	}
	require.Zero(t, n, "not enough people")
}

// editBetweenPages empties the report's weight, in CHT, before it lets
// the second _changes request of a run through.
type editBetweenPages struct {
	t     *testing.T
	cht   *cht.Client // without this transport
	mu    sync.Mutex
	pages int
}

func (e *editBetweenPages) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/_changes") {
		e.mu.Lock()
		e.pages++
		second := e.pages == 2
		e.mu.Unlock()
		if second {
			editReport(e.t, r.Context(), e.cht, map[string]any{"weight": nil})
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// namesWriter records the names of the bundles written.
type namesWriter struct {
	backfill.Writer
	mu    sync.Mutex
	names []string
}

func (w *namesWriter) WriteBundle(ctx context.Context, name string, b []byte) error {
	w.mu.Lock()
	w.names = append(w.names, name)
	w.mu.Unlock()
	return w.Writer.WriteBundle(ctx, name, b)
}

// A report read in one page and edited before the next is in one batch
// twice. The batch writes its last copy only (the older one is skipped),
// so its bundle neither writes the report's Observations twice nor both
// writes and withdraws the weight: the server takes it whole.
func TestBackfillReportTwiceInOneBatch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 2)
	first := e.cfg
	first.CheckpointFile = filepath.Join(t.TempDir(), "first.json")
	_, err := backfill.Run(ctx, first)
	require.NoError(t, err)
	feed, err := e.cfg.CHT.Docs.Changes(ctx, cht.ChangesOptions{})
	require.NoError(t, err)
	page := 0
	for i, ch := range feed.Results {
		if ch.ID == report {
			page = i + 1
		}
	}
	require.Positive(t, page)
	require.Less(t, page, len(feed.Results))
	client, err := cht.New(cht.Config{URL: e.cht.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		HTTPClient: &http.Client{Transport: &editBetweenPages{t: t, cht: e.cfg.CHT}}})
	require.NoError(t, err)
	// The report closes the first page; one batch holds the whole feed.
	e.cfg.CHT, e.cfg.PageSize, e.cfg.BatchSize = client, page, 2*len(feed.Results)
	w := &namesWriter{Writer: txWriter{e.cfg.FHIR}}
	e.cfg.Writer = w

	sum := e.run(t, ctx)
	assert.EqualValues(t, 1, sum.Checkpoint.Batches, "one batch")
	assert.Equal(t, []string{"batch-000000"}, w.names, "written whole, not document by document")
	assert.EqualValues(t, 1, sum.Skipped["older copy (its batch writes a newer one)"])
	assert.Equal(t, sum.Docs, sum.Converted+1)
	got := e.observations(t)
	assert.Equal(t, "entered-in-error", got["weight"]["status"])
	assert.Equal(t, "final", got["height"]["status"])
}

// Under WriteConditionalUpdate, the first 412 of a bundle with a
// withdrawal is retried with a new search only while attempts are left:
// the last attempt's 412 is an ambiguous match, as without a withdrawal,
// so the batch is written document by document and the document that
// carries the duplicated resource fails alone. Left unclassified, it
// stopped Run at that batch, and every later Run again (with MaxAttempts
// 1, the 412 never got its second attempt).
func TestBackfillWithdrawalAmbiguousMatchOnLastAttempt(t *testing.T) {
	for _, attempts := range []int{1, 2} {
		t.Run(fmt.Sprint(attempts), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, 1)
			withStrategy(t, e, fhir.WriteConditionalUpdate)
			e.run(t, ctx)
			bad := editReportAndAnother(t, ctx, e)
			e.cfg.Writer = rejectingWriter{Writer: txWriter{e.cfg.FHIR}, bad: bad, ambiguous: true}
			e.cfg.MaxAttempts = attempts

			sum, err := backfill.Run(ctx, e.cfg)
			require.NoError(t, err, "the sync goes on past the document")
			assert.EqualValues(t, 2, sum.Processed, "one batch of the two edits")
			require.Len(t, sum.Failures, 1)
			assert.Equal(t, bad, sum.Failures[0].DocID)
			assert.Contains(t, sum.Failures[0].Reason, "several resources with the identifier")
			assert.Equal(t, "entered-in-error", e.observations(t)["weight"]["status"])
		})
	}
}

// A Writer without Config.FHIR cannot search for the Observations to
// withdraw: Run says so once, in a WARN line, rather than leaving them
// final unannounced. With Config.FHIR it says nothing of the kind.
func TestWriterWithoutFHIRWarnsThatNothingIsWithdrawn(t *testing.T) {
	for _, withFHIR := range []bool{false, true} {
		e := newEnv(t, 1)
		var logs bytes.Buffer
		e.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		e.cfg.Writer = backfill.DirWriter{Dir: t.TempDir()}
		if !withFHIR {
			e.cfg.FHIR = nil
		}
		_, err := backfill.Run(context.Background(), e.cfg)
		require.NoError(t, err)
		n := strings.Count(logs.String(), "are not withdrawn")
		if withFHIR {
			assert.Zero(t, n, "%s", logs.String())
		} else {
			assert.Equal(t, 1, n, "one WARN line: %s", logs.String())
			assert.Contains(t, logs.String(), "level=WARN")
		}
	}
}
