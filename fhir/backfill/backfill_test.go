package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
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
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// fhirClient is a client for url that leaves retries to Run.
func fhirClient(t testing.TB, url string) *fhir.Client {
	t.Helper()
	c, err := fhir.NewClient(fhir.ClientConfig{BaseURL: url, MaxRetries: -1})
	require.NoError(t, err)
	return c
}

// txWriter writes bundles as FHIR transactions, for writers that wrap it.
type txWriter struct{ c *fhir.Client }

func (w txWriter) WriteBundle(ctx context.Context, _ string, b []byte) error {
	return w.c.Transaction(ctx, b)
}

type env struct {
	cht   *chttest.Server
	fhir  *fhirtest.Server
	stats chttest.SyntheticStats
	docs  int
	cfg   backfill.Config
}

// demoReports is the number of reports in the demo fixture.
const demoReports = 3

func newEnv(t testing.TB, households int) *env {
	t.Helper()
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1})
	t.Cleanup(chtSrv.Close)
	stats, err := chtSrv.SeedSynthetic(chttest.Synthetic{Households: households, PeoplePerHousehold: 3, ReportsPerPerson: 2, Seed: 1})
	require.NoError(t, err)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{RequestLog: -1})
	t.Cleanup(fhirSrv.Close)
	client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond})
	require.NoError(t, err)
	mapping := fhir.DefaultMapping()
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: chtSrv.URL, Mapping: mapping})
	require.NoError(t, err)
	return &env{cht: chtSrv, fhir: fhirSrv, stats: stats, docs: len(chtSrv.Docs()), cfg: backfill.Config{
		CHT: client, Converter: conv, FHIR: fhirClient(t, fhirSrv.URL),
		CheckpointFile: filepath.Join(t.TempDir(), "checkpoint.json"), BatchSize: 20, Workers: 3, PageSize: 50,
		RetryWait: time.Millisecond,
	}}
}

func TestRunWritesEverythingOnce(t *testing.T) {
	e := newEnv(t, 20)
	var progress []backfill.Progress
	e.cfg.OnProgress = func(p backfill.Progress) { progress = append(progress, p) }
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)

	assert.Equal(t, int64(e.docs), sum.Docs)
	assert.Equal(t, int64(e.docs), sum.Converted, "skipped %v, failures %v", sum.Skipped, sum.Failures)
	assert.Equal(t, e.stats.Reports+demoReports, e.fhir.Count("Encounter"))
	assert.Equal(t, e.stats.Households+5, e.fhir.Count("Location"), "households, the 4 demo places and the place the geolocated demo report was filled in")

	require.NotEmpty(t, progress)
	last := progress[len(progress)-1]
	assert.Equal(t, int64(e.docs), last.Done)
	assert.GreaterOrEqual(t, last.Total, last.Done, "total estimated from the feed's pending count (it counts updates, not documents)")
	for i := 1; i < len(progress); i++ {
		assert.Greater(t, progress[i].Checkpoint.Batches, progress[i-1].Checkpoint.Batches)
	}

	cp, err := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.Equal(t, sum.Seq, cp.Seq)
	assert.Equal(t, sum.Converted, cp.Converted)

	// Nothing left: a second run writes nothing.
	e.fhir.Reset()
	again, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.Zero(t, again.Processed)
	assert.Zero(t, e.fhir.Count("Encounter"))
	assert.Equal(t, sum.Converted, again.Converted)
}

// orderedWriter holds the first bundle until the second one is written.
type orderedWriter struct {
	mu       sync.Mutex
	release  chan struct{}
	written  []string
	snapshot func() // called after the second bundle
}

func (w *orderedWriter) WriteBundle(ctx context.Context, name string, _ []byte) error {
	if name == "batch-000000" {
		select {
		case <-w.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	w.written = append(w.written, name)
	w.mu.Unlock()
	if name == "batch-000001" {
		w.snapshot()
		close(w.release)
	}
	return nil
}

func TestCheckpointNeverPassesAnUncommittedBatch(t *testing.T) {
	e := newEnv(t, 10)
	var before backfill.Checkpoint
	w := &orderedWriter{release: make(chan struct{})}
	w.snapshot = func() {
		// Give the committer time to (wrongly) advance past batch 0.
		time.Sleep(50 * time.Millisecond)
		var err error
		before, err = backfill.ReadCheckpoint(e.cfg.CheckpointFile)
		require.NoError(t, err)
	}
	e.cfg.Writer = w
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.Less(t, slices.Index(w.written, "batch-000001"), slices.Index(w.written, "batch-000000"), "batch 1 finished before batch 0: %v", w.written)
	assert.Zero(t, before.Batches, "no checkpoint while batch 0 is in flight")
	assert.Equal(t, cht.Seq(""), before.Seq)
	assert.Equal(t, int64(e.docs), sum.Converted)
}

// rejectingWriter answers 400 to bundles holding a marked document, or,
// with ambiguous, 412, as a FHIR server answers a conditional write of a
// resource it holds twice (fhirtest, HAPI: "more than 1 is 412"); it
// never clears.
type rejectingWriter struct {
	backfill.Writer
	bad       string
	ambiguous bool
}

func (w rejectingWriter) WriteBundle(ctx context.Context, name string, b []byte) error {
	switch {
	case !strings.Contains(string(b), w.bad):
		return w.Writer.WriteBundle(ctx, name, b)
	case w.ambiguous:
		return &fhir.ServerError{Entry: -1, StatusCode: http.StatusPreconditionFailed, Reason: "multiple matches"}
	}
	return &fhir.ServerError{Entry: -1, StatusCode: http.StatusBadRequest, Reason: "Observation.value: bad"}
}

func TestRejectedDocumentFailsAlone(t *testing.T) {
	e := newEnv(t, 4)
	bad := e.stats.ReportIDs[5]
	e.cfg.Writer = rejectingWriter{Writer: txWriter{e.cfg.FHIR}, bad: bad}
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.Equal(t, int64(1), sum.Failed)
	require.Len(t, sum.Failures, 1)
	assert.Equal(t, bad, sum.Failures[0].DocID)
	assert.Contains(t, sum.Failures[0].Reason, "400")
	assert.Equal(t, int64(e.docs-1), sum.Converted)
	assert.Equal(t, e.stats.Reports+demoReports-1, e.fhir.Count("Encounter"))
	assert.Equal(t, int64(1), sum.FailedNow)

	// Resumed with nothing new: the checkpoint still counts the failure,
	// this run failed nothing (the command exits 0).
	again, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.Equal(t, int64(1), again.Failed)
	assert.Zero(t, again.FailedNow)
}

func TestTransientFailuresAreRetried(t *testing.T) {
	e := newEnv(t, 20)
	require.NoError(t, e.fhir.SetFaults(fhirtest.Faults{FailRate: 0.3, LostResponseRate: 0.1, Hang: 20 * time.Millisecond, Seed: 3}))
	e.cht.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: http.StatusServiceUnavailable, Probability: 0.3})
	e.cfg.MaxAttempts = 20
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.Equal(t, int64(e.docs), sum.Converted)
	require.NoError(t, e.fhir.SetFaults(fhirtest.Faults{}))
	assert.Equal(t, e.stats.Reports+demoReports, e.fhir.Count("Encounter"), "none lost, none duplicated")
}

func TestPersistentFailureStopsBeforeTheBatch(t *testing.T) {
	e := newEnv(t, 10)
	e.cfg.MaxAttempts = 2
	e.fhir.FailNextWrites(1000, http.StatusServiceUnavailable)
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.Error(t, err)
	var we *fhir.ServerError
	require.True(t, errors.As(err, &we), "%v", err)
	assert.Equal(t, http.StatusServiceUnavailable, we.StatusCode)
	assert.Zero(t, sum.Converted)
	cp, err := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.Equal(t, cht.Seq(""), cp.Seq, "checkpoint stays before the failed batch")
}

func TestDirWriter(t *testing.T) {
	dir := t.TempDir()
	w := backfill.DirWriter{Dir: dir}
	require.NoError(t, w.WriteBundle(context.Background(), "batch-000001-a/b", []byte(`{"resourceType":"Bundle"}`)))
	matches, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	assert.Equal(t, "batch-000001-a_b.json", filepath.Base(matches[0]))
}

func TestReadCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cp, err := backfill.ReadCheckpoint(filepath.Join(dir, "missing.json"))
	require.NoError(t, err, "a missing checkpoint starts from the beginning")
	assert.Zero(t, cp.Batches)

	path := filepath.Join(dir, "cp.json")
	want := backfill.Checkpoint{Seq: "12-abc", Batches: 3, Docs: 300, Converted: 290, Failed: 1,
		Skipped: map[string]int64{"deleted": 9}, Failures: []backfill.Failure{{DocID: "r1", Reason: "bad"}}}
	require.NoError(t, backfill.WriteCheckpoint(path, want))
	got, err := backfill.ReadCheckpoint(path)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o600))
	_, err = backfill.ReadCheckpoint(path)
	require.ErrorContains(t, err, "delete it to start over")
}

// WriteCheckpoint replaces the checkpoint atomically (a temporary file
// beside it, synced, renamed over it): a reader, like a restart after a
// crash mid-write, sees the old or the new checkpoint, never a file cut
// short; a write that fails leaves the old one and no temporary file.
func TestWriteCheckpointIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	small := backfill.Checkpoint{Seq: "1-a", Batches: 1, Docs: 1}
	big := backfill.Checkpoint{Seq: "2-b", Batches: 2, Docs: 2}
	for i := range backfill.MaxFailures {
		big.Failures = append(big.Failures, backfill.Failure{DocID: fmt.Sprint("doc-", i), Reason: strings.Repeat("r", 1000)})
	}
	require.NoError(t, backfill.WriteCheckpoint(path, small))
	done := make(chan error, 1)
	go func() {
		for i := range 60 {
			cp := small
			if i%2 == 0 {
				cp = big
			}
			if err := backfill.WriteCheckpoint(path, cp); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	reads := 0
	for writing := true; writing; reads++ {
		select {
		case err := <-done:
			require.NoError(t, err)
			writing = false
		default:
		}
		cp, err := backfill.ReadCheckpoint(path)
		require.NoError(t, err, "read %d saw a torn checkpoint", reads)
		require.Contains(t, []cht.Seq{"1-a", "2-b"}, cp.Seq)
	}
	t.Logf("%d reads", reads)

	// A write that fails (the rename onto a directory) leaves what was there.
	blocked := filepath.Join(dir, "blocked")
	require.NoError(t, os.MkdirAll(filepath.Join(blocked, "x"), 0o755))
	require.Error(t, backfill.WriteCheckpoint(blocked, small))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"cp.json", "blocked"}, names, "no temporary file left")
	cp, err := backfill.ReadCheckpoint(path)
	require.NoError(t, err)
	assert.Equal(t, small, cp)
}

// A checkpoint file that is corrupt or edited by hand into something
// WriteCheckpoint could not have written is an error naming the file and
// the field, never a checkpoint at an earlier place (which would sync
// again what was synced, and start the failure list over) or a later one.
func TestReadCheckpointRefusesWhatWasNotWritten(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	require.NoError(t, backfill.WriteCheckpoint(good, backfill.Checkpoint{Seq: "12-abc", Batches: 3, Docs: 300, Converted: 290,
		Failed: 1, Skipped: map[string]int64{"deleted": 9}, Failures: []backfill.Failure{{DocID: "r1", Reason: "bad"}}}))
	written, err := os.ReadFile(good)
	require.NoError(t, err)
	edit := func(old, new string) string {
		require.Contains(t, string(written), old)
		return strings.Replace(string(written), old, new, 1)
	}
	tests := []struct {
		name, content, want string
	}{
		{"empty file", "", "not a JSON object"},
		{"null", "null", "not a JSON object"},
		{"array", "[]", "not a JSON object"},
		{"empty object", "{}", `"seq" is missing`},
		{"seq renamed", edit(`"seq"`, `"Seq"`), `"seq" is missing`},
		{"batches removed", edit(`"batches": 3,`, ``), `"batches" is missing`},
		{"seq emptied", edit(`"12-abc"`, `""`), `"seq" is empty after 3 batches`},
		{"seq of another kind", edit(`"12-abc"`, `{}`), `"seq"`},
		{"batches below zero", edit(`"batches": 3`, `"batches": -3`), `"batches" is -3`},
		{"docs below zero", edit(`"docs": 300`, `"docs": -1`), `"docs" is -1`},
		{"skipped below zero", edit(`"deleted": 9`, `"deleted": -9`), `"skipped" "deleted" is -9`},
		{"batches as text", edit(`"batches": 3`, `"batches": "3"`), `"batches"`},
		{"batches fractional", edit(`"batches": 3`, `"batches": 3.5`), `"batches"`},
		{"updatedAt not a time", edit(`"updatedAt": "`, `"updatedAt": "x`), `"updatedAt"`},
		{"failure without docId", edit(`"docId": "r1"`, `"docId": ""`), `"failures"[0].docId is empty`},
	}
	// A file cut anywhere (as by a crash while a non-atomic write
	// wrote it) is refused too.
	for _, n := range []int{1, len(written) / 3, len(written) / 2, len(written) - 3} {
		tests = append(tests, struct{ name, content, want string }{fmt.Sprintf("cut after %d bytes", n), string(written[:n]), "not a JSON object"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "cp.json")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			cp, err := backfill.ReadCheckpoint(path)
			require.Error(t, err, "read as %+v", cp)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), tt.want)
			assert.Zero(t, cp)
		})
	}
	// What WriteCheckpoint writes is read back, a position without
	// batches (a start the program chose) included.
	for _, cp := range []backfill.Checkpoint{{}, {Seq: "5-x"}, {Seq: "9", Batches: 1, Docs: 1}} {
		require.NoError(t, backfill.WriteCheckpoint(good, cp))
		got, err := backfill.ReadCheckpoint(good)
		require.NoError(t, err)
		assert.Equal(t, cp, got)
	}
}

// failingWriter answers every bundle with one status.
type failingWriter struct{ status int }

func (w failingWriter) WriteBundle(context.Context, string, []byte) error {
	return &fhir.ServerError{Entry: -1, StatusCode: w.status, Reason: http.StatusText(w.status)}
}

func TestConfigurationErrorsStopAtOnce(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t, 3)
			e.cfg.Writer = failingWriter{status}
			sum, err := backfill.Run(context.Background(), e.cfg)
			var we *fhir.ServerError
			require.ErrorAs(t, err, &we)
			assert.Equal(t, status, we.StatusCode)
			assert.Zero(t, sum.Failed, "no document is blamed for a configuration error")
			assert.Zero(t, sum.Converted)
			cp, err := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
			require.NoError(t, err)
			assert.Zero(t, cp.Batches, "checkpoint stays before the batch")
		})
	}
}

// failingBatch fails one batch with 503, every time.
type failingBatch struct {
	backfill.Writer
	name string
}

func (w failingBatch) WriteBundle(ctx context.Context, name string, b []byte) error {
	if name == w.name {
		return &fhir.ServerError{StatusCode: http.StatusServiceUnavailable, Reason: "down"}
	}
	return w.Writer.WriteBundle(ctx, name, b)
}

// TestCheckpointHoldsTheCommittedPrefixOnFailure: when a batch fails for
// good, the checkpoint file holds every batch committed before it, though
// they committed faster than checkpoints are written.
func TestCheckpointHoldsTheCommittedPrefixOnFailure(t *testing.T) {
	e := newEnv(t, 10)
	e.cfg.MaxAttempts, e.cfg.Workers = 2, 1 // one batch at a time: 0, 1 and 2 commit
	e.cfg.Writer = failingBatch{Writer: txWriter{e.cfg.FHIR}, name: "batch-000003"}
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.Error(t, err)
	cp, err := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.Equal(t, int64(3), cp.Batches, "batches 0 to 2 committed, batch 3 failed")
	assert.Equal(t, sum.Seq, cp.Seq)
	assert.Equal(t, sum.Docs, cp.Docs)
	assert.Equal(t, int64(3*e.cfg.BatchSize), cp.Docs)
}
