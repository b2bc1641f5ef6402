package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
)

// What backfill shows: progress (a bar on a terminal, else log lines) and
// the JSON summary at the end.

// progress shows the progress: a bar on a terminal, else a log line per
// interval. Call finish at the end.
func progress(stdout io.Writer, logger *slog.Logger, interval time.Duration) (show func(backfill.Progress), finish func()) {
	if !isTerminal(stdout) {
		return logProgress(logger, interval), func() {}
	}
	bar := newBar(stdout)
	return func(p backfill.Progress) {
		if p.Total > 0 && bar.GetMax64() != p.Total {
			bar.ChangeMax64(p.Total)
		}
		_ = bar.Set64(p.Done)
	}, func() { _ = bar.Finish() }
}

func newBar(w io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("backfill"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("docs"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionFullWidth(),
	)
}

// logProgress returns a progress callback that logs at most one line per
// interval, with the rate and the estimated time left.
func logProgress(logger *slog.Logger, interval time.Duration) func(backfill.Progress) {
	var last time.Time
	return func(p backfill.Progress) {
		now := time.Now()
		if now.Sub(last) < interval {
			return
		}
		last = now
		rate := float64(p.Done) / p.Elapsed.Seconds()
		attrs := []any{"done", p.Done, "total", p.Total, "docs_per_s", int(rate),
			"converted", p.Checkpoint.Converted, "skipped", p.Checkpoint.SkippedTotal(), "failed", p.Checkpoint.Failed}
		if p.Total > 0 && rate > 0 {
			attrs = append(attrs, "eta", (time.Duration(float64(p.Total-p.Done)/rate) * time.Second).Round(time.Second).String())
		}
		logger.Info("backfill progress", attrs...)
	}
}

// summary is the JSON printed at the end.
type summary struct {
	Converted  int64              `json:"converted"`
	Skipped    map[string]int64   `json:"skipped"`
	Failed     int64              `json:"failed"`
	Failures   []backfill.Failure `json:"failures,omitempty"`
	Resources  int64              `json:"resources"`
	Docs       int64              `json:"docs"`
	ThisRun    int64              `json:"thisRun"`
	Seconds    float64            `json:"seconds"`
	DocsPerSec float64            `json:"docsPerSecond"`
	Checkpoint string             `json:"seq"`
	// PeakRSSMiB is the process's peak resident memory (Linux VmHWM; 0
	// elsewhere).
	PeakRSSMiB float64 `json:"peakRssMiB"`
}

func printSummary(w io.Writer, s *backfill.Summary) error {
	out := summary{Converted: s.Converted, Skipped: s.Skipped, Failed: s.Failed, Failures: s.Failures,
		Resources: s.Resources, Docs: s.Docs, ThisRun: s.Processed, Seconds: s.Elapsed.Seconds(),
		Checkpoint: string(s.Seq), PeakRSSMiB: float64(peakRSS()) / (1 << 20)}
	if out.Skipped == nil {
		out.Skipped = map[string]int64{}
	}
	if s.Elapsed > 0 {
		out.DocsPerSec = float64(s.Processed) / s.Elapsed.Seconds()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// tuneGC trades memory for CPU unless GOGC or GOMEMLIMIT say otherwise:
// the live heap of a sync is small (tens of MB) but it allocates some 50 KB
// per document, so collecting at 5× the live heap rather than 2× cuts the
// GC's CPU by more than half, and a soft limit of 160 MiB keeps the peak
// RSS under 200 MB however far the GC falls behind on a busy machine.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(160 << 20)
	}
}

// peakRSS is the process's peak resident set size in bytes, from
// /proc/self/status; 0 where that is not available.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// isTerminal reports whether w is a terminal (character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
