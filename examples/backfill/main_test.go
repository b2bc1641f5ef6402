package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// fakes are a fake CHT seeded with a synthetic population and an in-memory
// FHIR server.
type fakes struct {
	cht   *chttest.Server
	fhir  *fhirtest.Server
	stats chttest.SyntheticStats
	docs  int // entries of the changes feed
}

// newFakes seeds the demo hierarchy and households households of 3 people
// with 2 reports each (9 documents per household).
func newFakes(t testing.TB, households int) *fakes {
	t.Helper()
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1})
	t.Cleanup(chtSrv.Close)
	stats, err := chtSrv.SeedSynthetic(chttest.Synthetic{Households: households, PeoplePerHousehold: 3, ReportsPerPerson: 2, Seed: 7})
	require.NoError(t, err)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{RequestLog: -1})
	t.Cleanup(fhirSrv.Close)
	return &fakes{cht: chtSrv, fhir: fhirSrv, stats: stats, docs: len(chtSrv.Docs())}
}

// env returns the settings of a backfill against the fakes.
func (f *fakes) env(checkpoint string) []string {
	return []string{
		"MEDIATOR_CHT_URL=" + f.cht.URL,
		"MEDIATOR_CHT_USERNAME=" + chttest.AdminUsername,
		"MEDIATOR_CHT_PASSWORD=" + chttest.AdminPassword,
		"MEDIATOR_FHIR_URL=" + f.fhir.URL,
		"MEDIATOR_CHECKPOINT_FILE=" + checkpoint,
	}
}

func (f *fakes) setEnv(t *testing.T, checkpoint string) {
	for _, kv := range f.env(checkpoint) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// demoReports is the number of reports of the demo fixture (all of mapped
// forms).
const demoReports = 3

func TestRunSyncsAndPrintsSummary(t *testing.T) {
	f := newFakes(t, 30)
	checkpoint := filepath.Join(t.TempDir(), "cp.json")
	f.setEnv(t, checkpoint)
	t.Setenv("MEDIATOR_BATCH_SIZE", "25")

	var out, logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	require.NoError(t, run(context.Background(), []string{"--config", "config.yaml"}, &out, logger))

	var sum summary
	require.NoError(t, json.Unmarshal(out.Bytes(), &sum), out.String())
	assert.Equal(t, int64(f.docs), sum.Docs, "every feed entry processed once")
	assert.Equal(t, sum.Docs, sum.Converted+sum.Failed+sumValues(sum.Skipped))
	assert.Zero(t, sum.Failed, "failures: %v", sum.Failures)
	assert.Equal(t, f.stats.Reports+demoReports, f.fhir.Count("Encounter"))
	assert.GreaterOrEqual(t, f.fhir.Count("Patient"), f.stats.People)
	assert.Contains(t, logs.String(), `"msg":"backfill progress"`, "not a terminal: progress as log lines")
	assert.Positive(t, sum.PeakRSSMiB, "peak RSS from /proc/self/status")

	// A second run has nothing left to do and keeps the counts.
	out.Reset()
	require.NoError(t, run(context.Background(), nil, &out, logger))
	var again summary
	require.NoError(t, json.Unmarshal(out.Bytes(), &again))
	assert.Zero(t, again.ThisRun)
	assert.Equal(t, sum.Converted, again.Converted)
}

func TestRunDryRunWritesBundles(t *testing.T) {
	f := newFakes(t, 5)
	dir := t.TempDir()
	f.setEnv(t, filepath.Join(dir, "cp.json"))
	out := filepath.Join(dir, "bundles")
	var stdout bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--dry-run", out}, &stdout, slog.New(slog.DiscardHandler)))

	assert.Zero(t, f.fhir.Count("Encounter"), "a dry run writes nothing to FHIR")
	files, err := filepath.Glob(filepath.Join(out, "batch-*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	encounters := 0
	for _, name := range files {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		var b struct {
			ResourceType, Type string
			Entry              []struct {
				Resource struct{ ResourceType string }
			}
		}
		require.NoError(t, json.Unmarshal(data, &b), name)
		assert.Equal(t, "transaction", b.Type)
		for _, e := range b.Entry {
			if e.Resource.ResourceType == "Encounter" {
				encounters++
			}
		}
	}
	assert.Equal(t, f.stats.Reports+demoReports, encounters)
}

func TestSettingsErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no CHT URL", map[string]string{"MEDIATOR_FHIR_URL": "http://f"}, "cht.url"},
		{"no FHIR URL", map[string]string{"MEDIATOR_CHT_URL": "http://c"}, "fhir.url"},
		{"zero workers", map[string]string{"MEDIATOR_CHT_URL": "http://c", "MEDIATOR_FHIR_URL": "http://f", "MEDIATOR_WORKERS": "0"}, "workers (MEDIATOR_WORKERS)"},
		{"bad batch size", map[string]string{"MEDIATOR_CHT_URL": "http://c", "MEDIATOR_FHIR_URL": "http://f", "MEDIATOR_BATCH_SIZE": "many"}, "batch_size"},
		{"missing mapping", map[string]string{"MEDIATOR_CHT_URL": "http://c", "MEDIATOR_FHIR_URL": "http://f", "MEDIATOR_MAPPING_FILE": "nope.yaml"}, "nope.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := run(context.Background(), nil, new(bytes.Buffer), slog.New(slog.DiscardHandler))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// buildBinary builds the command once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "backfill-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "backfill")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the command as a subprocess")
	}
	bin, err := buildBinary()
	require.NoError(t, err)
	return bin
}

// TestKillAndResume kills the backfill process with SIGKILL at several
// points, restarts it, and checks that in the end every document is written
// exactly once and counted once.
func TestKillAndResume(t *testing.T) {
	bin := binary(t)
	f := newFakes(t, 200) // 1,800 synthetic docs
	// Slow writes so that the kills land mid-run, at checkpoints written at
	// the command's pace (at most four a second): about 15 batches each.
	require.NoError(t, f.fhir.SetFaults(fhirtest.Faults{Latency: 60 * time.Millisecond}))
	checkpoint := filepath.Join(t.TempDir(), "cp.json")
	env := append(os.Environ(), f.env(checkpoint)...)
	env = append(env, "MEDIATOR_BATCH_SIZE=20", "MEDIATOR_WORKERS=4", "MEDIATOR_PAGE_SIZE=60")

	var seqs []string
	for _, killAfter := range []int64{3, 20, 45} { // committed batches
		cmd := exec.Command(bin)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		var cp backfill.Checkpoint
		require.Eventually(t, func() bool {
			c, err := backfill.ReadCheckpoint(checkpoint)
			if err != nil {
				t.Logf("checkpoint unreadable mid-run: %v", err) // atomic writes: never
				return false
			}
			cp = c
			return c.Batches >= killAfter
		}, 60*time.Second, time.Millisecond, "checkpoint reaches %d batches; stderr: %s", killAfter, &stderr)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		err := cmd.Wait()
		require.Error(t, err, "killed before the end; raise the latency if this fails")
		after, err := backfill.ReadCheckpoint(checkpoint)
		require.NoError(t, err, "the checkpoint survives a SIGKILL")
		require.GreaterOrEqual(t, after.Batches, cp.Batches)
		assert.Equal(t, after.Docs, after.Converted+after.Failed+after.SkippedTotal())
		t.Logf("killed at %d committed batches, checkpoint at %d", cp.Batches, after.Batches)
		seqs = append(seqs, string(after.Seq))
	}
	assert.Len(t, compact(seqs), len(seqs), "each run made progress: %v", seqs)

	cmd := exec.Command(bin)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	var sum summary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &sum), stdout.String())
	assert.Equal(t, int64(f.docs), sum.Docs, "each feed entry counted exactly once over four runs")
	assert.Equal(t, int64(f.docs), sum.Converted, "failures %v, skipped %v", sum.Failures, sum.Skipped)
	assert.Equal(t, f.stats.Reports+demoReports, f.fhir.Count("Encounter"), "no report lost or duplicated")
	assert.Equal(t, f.stats.Households, f.fhir.Count("Location")-5, "households (besides the 4 demo places and the place the geolocated demo report was filled in)")

	// The same data written by an uninterrupted in-process run.
	ref := newFakes(t, 200)
	ref.setEnv(t, filepath.Join(t.TempDir(), "ref.json"))
	require.NoError(t, run(context.Background(), nil, new(bytes.Buffer), slog.New(slog.DiscardHandler)))
	assert.Equal(t, ref.fhir.Counts(), f.fhir.Counts(), "same resources as a run without kills")
}

func compact(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func sumValues(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// BenchmarkBackfillSubprocess runs the backfill command as a subprocess
// against the fakes (in this test process) over BACKFILL_BENCH_DOCS
// documents (default 100,000; the fixture is generated, 9 documents per
// household) and reports the documents per second end to end, the
// subprocess's peak RSS and CPU time per document, and this process's peak
// RSS (the fakes). Run it with -benchtime=1x:
//
//	go test -run '^$' -bench BackfillSubprocess -benchtime=1x ./examples/backfill/
func BenchmarkBackfillSubprocess(b *testing.B) {
	bin := binary(b)
	docs := 100_000
	if v := os.Getenv("BACKFILL_BENCH_DOCS"); v != "" {
		var err error
		docs, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	f := newFakes(b, docs/9)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		f.fhir.Reset()
		checkpoint := filepath.Join(b.TempDir(), fmt.Sprintf("cp%d.json", i))
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), f.env(checkpoint)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		b.StartTimer()
		start := time.Now()
		require.NoError(b, cmd.Run(), stderr.String())
		elapsed := time.Since(start)
		b.StopTimer()
		var sum summary
		require.NoError(b, json.Unmarshal(stdout.Bytes(), &sum))
		require.Equal(b, int64(f.docs), sum.Converted)
		// Not rusage's Maxrss: the child is cloned with the parent's
		// address space until exec, so Maxrss reports this (much larger)
		// test process. The command reports its own VmHWM.
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		b.ReportMetric(float64(f.docs)/elapsed.Seconds(), "docs/s")
		b.ReportMetric(sum.PeakRSSMiB, "backfill-peak-RSS-MiB")
		b.ReportMetric(float64(cpu.Microseconds())/float64(f.docs), "backfill-cpu-µs/doc")
		b.ReportMetric(float64(f.docs), "docs")
		b.ReportMetric(float64(vmHWM())/1024, "fakes-peak-RSS-MiB")
		b.StartTimer()
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.Logf("test process (fakes): CPU %v, GOMAXPROCS %d", time.Duration(ru.Utime.Nano()+ru.Stime.Nano()), runtime.GOMAXPROCS(0))
	}
}

// vmHWM is this process's peak RSS in KiB, from /proc/self/status.
func vmHWM() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// The error says "run backfill again to resume" only once the sync has
// started and its checkpoint holds what was written: not after a settings
// error, nor when CHT cannot be read at start.
func TestResumeHintOnlyOnceTheSyncStarted(t *testing.T) {
	f := newFakes(t, 2)
	require.NoError(t, f.fhir.SetFaults(fhirtest.Faults{FailRate: 1, FailStatus: http.StatusUnauthorized}))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		env    map[string]string
		want   string
		resume bool
	}{
		{"settings error", context.Background(), map[string]string{"MEDIATOR_CHT_URL": ""}, "cht.url (MEDIATOR_CHT_URL) is required", false},
		{"CHT not read at start", cancelled, nil, "read the app's contact types from CHT", false},
		{"FHIR refuses the sync", context.Background(), nil, "401", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.setEnv(t, filepath.Join(t.TempDir(), "cp.json"))
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := run(tc.ctx, nil, new(bytes.Buffer), slog.New(slog.DiscardHandler))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, tc.resume, strings.Contains(err.Error(), "run backfill again to resume"), err.Error())
		})
	}
}

// A document that cannot be converted fails the run that meets it (the
// program exits 1, saying where the failures are listed); a later run,
// which the checkpoint starts after it, succeeds.
func TestFailedDocumentFailsOnlyTheRunThatMetIt(t *testing.T) {
	f := newFakes(t, 2)
	_, err := f.cht.PutDoc(map[string]any{"_id": "bad-person", "type": "person", "name": "Bad",
		"date_of_birth": "not a date", "parent": map[string]any{"_id": chttest.DemoHouseholdID}})
	require.NoError(t, err)
	checkpoint := filepath.Join(t.TempDir(), "cp.json")
	f.setEnv(t, checkpoint)
	logger := slog.New(slog.DiscardHandler)

	err = run(context.Background(), nil, io.Discard, logger)
	require.ErrorIs(t, err, errFailed)
	assert.Contains(t, err.Error(), "1 not written by this run")
	assert.Contains(t, err.Error(), checkpoint+".failures every one")

	assert.NoError(t, run(context.Background(), nil, io.Discard, logger), "the resume failed nothing")
}

// --retry-failed writes the documents earlier runs failed on once they are
// fixed, and fails while one still fails.
func TestRetryFailed(t *testing.T) {
	f := newFakes(t, 2)
	bad := map[string]any{"_id": "bad-person", "type": "person", "name": "Bad",
		"date_of_birth": "not a date", "parent": map[string]any{"_id": chttest.DemoHouseholdID}}
	_, err := f.cht.PutDoc(bad)
	require.NoError(t, err)
	checkpoint := filepath.Join(t.TempDir(), "cp.json")
	f.setEnv(t, checkpoint)
	logger := slog.New(slog.DiscardHandler)
	require.ErrorIs(t, run(context.Background(), nil, io.Discard, logger), errFailed)

	err = run(context.Background(), []string{"--retry-failed"}, io.Discard, logger)
	require.ErrorIs(t, err, errFailed, "not fixed yet")
	patients := func() int {
		n := 0
		for _, r := range f.fhir.Resources("Patient") {
			if strings.Contains(string(r), `"value":"bad-person"`) {
				n++
			}
		}
		return n
	}
	assert.Zero(t, patients())

	var doc map[string]any
	raw, ok := f.cht.Doc("bad-person")
	require.True(t, ok)
	require.NoError(t, json.Unmarshal(raw, &doc))
	doc["date_of_birth"] = "1990-01-02"
	_, err = f.cht.PutDoc(doc)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--retry-failed"}, &out, logger))
	assert.Equal(t, 1, patients())
	assert.Contains(t, out.String(), `"failed": 0`)
}
