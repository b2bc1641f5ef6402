//go:build soak

package soak

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoakFaults is the long fault run: SOAK_N payloads (default 10,000).
// Its time and CPU grow linearly with SOAK_N (about 10 ms of CPU per
// payload for the mediator and the fakes together); the fakes keep a
// bounded history plus every stored resource (about 30 KB per payload).
//
//	go test -count=1 -tags soak -run Soak -timeout 30m -v ./examples/soak/
//	SOAK_N=100000 go test -count=1 -tags soak -run Soak -timeout 180m -v ./examples/soak/
func TestSoakFaults(t *testing.T) {
	run := runFaults(t, payloads(t, 10_000))
	t.Logf("%d docs pushed in %v: %d sent, %d failed attempts; FHIR %d requests, %d faulted; heap %d KiB before, %d KiB at the end (fakes included), %d KiB after; goroutines %d → %d",
		run.Pushed, run.Elapsed.Round(time.Millisecond), run.Sent, run.Failed, run.FHIRRequests, run.FHIRFaults,
		run.HeapBefore>>10, run.HeapPeak>>10, run.HeapAfter>>10, run.Goroutines[0], run.Goroutines[1])
	if d := int64(run.HeapAfter) - int64(run.HeapBefore); d > 4<<20 {
		t.Errorf("heap retained after the run: %d KiB", d>>10)
	}
	if run.Goroutines[1] > run.Goroutines[0]+5 {
		t.Errorf("goroutines left running: %d → %d", run.Goroutines[0], run.Goroutines[1])
	}
}

// TestLoadTable offers fixed request rates (LOAD_RATES, comma-separated,
// default 100,250,500,1000,2000 req/s) for LOAD_SECONDS each (default 3) to
// the mediators of loadTargets on loopback and prints throughput and
// latency as a Markdown table. It asserts nothing about timings.
//
//	go test -count=1 -tags soak -run LoadTable -v ./examples/soak/
func TestLoadTable(t *testing.T) {
	rates := []int{100, 250, 500, 1000, 2000}
	if v := os.Getenv("LOAD_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || r <= 0 {
				t.Fatalf("LOAD_RATES: %q", f)
			}
			rates = append(rates, r)
		}
	}
	d := 3 * time.Second
	if v := os.Getenv("LOAD_SECONDS"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("LOAD_SECONDS: %v", err)
		}
		d = time.Duration(s * float64(time.Second))
	}
	for _, lt := range loadTargets(t) {
		// Warm up connections and caches.
		load(context.Background(), lt.client, 50, 500*time.Millisecond, lt.request)
		var rs []loadResult
		for _, r := range rates {
			rs = append(rs, load(context.Background(), lt.client, r, d, lt.request))
		}
		t.Log(formatLoad(lt.name, rs))
	}
}

// formatLoad formats results as a Markdown table.
func formatLoad(name string, rs []loadResult) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n%s\n\n| offered req/s | sent | 2xx | throughput req/s | p50 | p99 | max |\n|---:|---:|---:|---:|---:|---:|---:|\n", name)
	for _, r := range rs {
		fmt.Fprintf(&b, "| %d | %d | %d | %.0f | %v | %v | %v |\n", r.Rate, r.Sent, r.OK, r.Throughput,
			r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(100*time.Microsecond))
	}
	return b.String()
}
