package soak

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// faultRun is the outcome of runFaults.
type faultRun struct {
	Pushed, Sent, Failed     int
	FHIRRequests, FHIRFaults int // of the last 8,000 FHIR requests
	HeapBefore, HeapAfter    uint64
	HeapPeak                 uint64 // at the end of the run, fakes included
	Goroutines               [2]int
	Elapsed                  time.Duration
}

// runFaults pushes about n payloads through core's router to the
// cht-to-fhir mediator with faults everywhere, and checks that the FHIR
// store ends with exactly the expected resources.
func runFaults(t *testing.T, n int) faultRun {
	var run faultRun
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	run.HeapBefore = ms.HeapAlloc
	run.Goroutines[0] = runtime.NumGoroutine()

	faultScenario(t, n, &run)

	// Everything the scenario made is closed and unreachable now: what is
	// left on the heap or running was leaked.
	// Connection goroutines of the closed servers may still be finishing
	// (slowly on a loaded machine), holding what they served: give them
	// up to 3 s.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	for range 30 {
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc < run.HeapBefore+1<<20 {
			break
		}
	}
	run.HeapAfter = ms.HeapAlloc
	run.Goroutines[1] = runtime.NumGoroutine()
	return run
}

// keepHistory is how many transactions the fake core and attempts each
// pusher keep.
const keepHistory = 500

// budget is how long n payloads may take: generous (a busy CI machine, the
// race detector), but proportional to n, so that a run that slows down as
// it grows fails instead of hanging.
func budget(n int) time.Duration { return time.Minute + time.Duration(n)*200*time.Millisecond }

// pushers is the number of outbound pushers, each pushing a share of the
// documents (CHT pushes one at a time; several make the run shorter).
const pushers = 4

func faultScenario(t *testing.T, n int, run *faultRun) {

	// The fakes keep a bounded history, so that memory, and with it the
	// collector's work per request, stays flat however long the run.
	core := openhimtest.NewServer(openhimtest.Config{MaxTransactions: keepHistory})
	defer core.Close()
	core.AddClient(routerClient, routerPassword, chtRole)
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1, Seed: 11})
	defer chtSrv.Close()
	// 3 people and 6 reports per household are pushed.
	stats, err := chtSrv.SeedSynthetic(chttest.Synthetic{Households: max(1, n/9), PeoplePerHousehold: 3, ReportsPerPerson: 2, Seed: 5})
	require.NoError(t, err)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{RequestLog: min(4*n, 8000)})
	defer fhirSrv.Close()

	// 30% of FHIR writes fail: errors, timeouts (not applied) and lost
	// answers (applied, then no answer).
	require.NoError(t, fhirSrv.SetFaults(fhirtest.Faults{FailRate: 0.15, TimeoutRate: 0.08, LostResponseRate: 0.07,
		Hang: 100 * time.Millisecond, Seed: 42}))
	// CHT answers 429 and 503 to some hydrates.
	chtSrv.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: http.StatusTooManyRequests, RetryAfter: time.Second, Probability: 0.15})
	chtSrv.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: http.StatusServiceUnavailable, Probability: 0.15})

	// Core is unreachable when the mediator starts.
	core.SetDown(true)
	h, conv := newBridge(t, bridgeConfig{CHTURL: chtSrv.URL, CHTUser: chttest.AdminUsername,
		CHTPassword: chttest.AdminPassword, FHIRURL: fhirSrv.URL})
	mctx, stopMediator := context.WithCancel(context.Background())
	mdone := runMediatorCtx(t, mctx, h, openhim.Config{URL: core.URL, Username: openhimtest.RootUser,
		Password: openhimtest.RootPassword, Timeout: time.Second}, 100*time.Millisecond)

	ids := append(append([]string{}, stats.PersonIDs...), stats.ReportIDs...)
	want := expectedResources(t, chtSrv, conv, allDocIDs(t, chtSrv))
	wantEncounters := stats.Reports + 3 // and the demo reports

	var ps []*chttest.OutboundPusher
	for i := range pushers {
		p, err := chttest.NewOutboundPusher(chttest.PusherConfig{
			Name: "cht_to_fhir", URL: core.RouterURL + push.OutboundPath,
			Username: routerClient, Password: routerPassword,
			RelevantTo: func(doc map[string]any) bool { return relevant(doc) && share(doc, pushers) == i },
			Map:        mixedPayload, Server: chtSrv,
			RetryInterval: 20 * time.Millisecond, Timeout: 5 * time.Second, MaxAttempts: keepHistory,
		})
		require.NoError(t, err)
		ps = append(ps, p)
	}
	start := time.Now()
	pctx, stopPusher := context.WithCancel(context.Background())
	pdone := make(chan error, pushers)
	for _, p := range ps {
		go func() { pdone <- p.Run(pctx) }()
	}

	time.Sleep(300 * time.Millisecond)
	assert.Empty(t, core.Heartbeats(chtToFHIRURN), "core down: no heartbeat accepted yet")
	core.SetDown(false)
	t.Logf("%v core up", time.Since(start))

	// Restart core once a third of the reports are in.
	if !assert.Eventually(t, func() bool { return fhirSrv.Count("Encounter") >= wantEncounters/3 }, budget(n/3), 10*time.Millisecond) {
		t.Fatalf("a third of the reports not written in %v (%d/%d)", budget(n/3), fhirSrv.Count("Encounter"), wantEncounters)
	}
	t.Logf("%v a third written; restarting core", time.Since(start))
	beats := len(core.Heartbeats(chtToFHIRURN))
	require.NoError(t, core.Restart())
	require.Eventually(t, func() bool { return len(core.Heartbeats(chtToFHIRURN)) > beats }, 30*time.Second, 10*time.Millisecond,
		"heartbeats resume after the restart")

	t.Logf("%v heartbeats resumed", time.Since(start))
	if !assert.Eventually(t, func() bool {
		// The pushers also push the demo documents, which ids leaves
		// out: wait for their retries too, or one still queued when
		// the pushers stop fails the check below.
		return fhirSrv.Count("Encounter") >= wantEncounters && pushedAll(ps, ids) && queuesEmpty(ps)
	}, budget(n), 20*time.Millisecond) {
		t.Fatalf("not every payload delivered in %v (encounters %d/%d)", budget(n), fhirSrv.Count("Encounter"), wantEncounters)
	}
	run.Elapsed = time.Since(start)
	stopPusher()
	for range ps {
		require.NoError(t, <-pdone)
	}

	require.NoError(t, fhirSrv.SetFaults(fhirtest.Faults{}))
	got, dups := storedResources(t, fhirSrv)
	assert.Zero(t, dups, "resources sharing a CHT identifier")
	assert.Equal(t, wantEncounters, fhirSrv.Count("Encounter"))
	assert.Empty(t, missing(want, got), "lost resources")
	assert.Empty(t, missing(got, want), "unexpected resources")

	run.Pushed = len(ids)
	for _, p := range ps {
		run.Sent += p.CountOutcome(chttest.OutcomeSent)
		run.Failed += p.CountOutcome(chttest.OutcomeFailed)
		assert.Empty(t, p.Queue(), "nothing left to retry")
		if testing.Verbose() {
			var d [2]time.Duration
			var c [2]int
			for _, a := range p.Attempts() {
				k := 0
				if a.Outcome != chttest.OutcomeSent {
					k = 1
				}
				d[k] += a.Duration
				c[k]++
			}
			t.Logf("pusher: %d sent (%v total), %d other (%v total)", c[0], d[0], c[1], d[1])
		}
	}
	for _, r := range fhirSrv.Requests() {
		run.FHIRRequests++
		if r.Fault != "" {
			run.FHIRFaults++
		}
	}
	assert.Positive(t, run.Failed, "faults made pushes fail")
	assert.Positive(t, run.FHIRFaults, "faults were injected")

	stopMediator()
	require.NoError(t, <-mdone)
	var peak runtime.MemStats
	runtime.ReadMemStats(&peak)
	run.HeapPeak = peak.HeapAlloc
}

// runMediatorCtx is runMediator with a caller's context; done reports Run's
// error (nil on cancel).
func runMediatorCtx(t *testing.T, ctx context.Context, h http.Handler, oh openhim.Config, heartbeat time.Duration) <-chan error {
	t.Helper()
	m, _ := newMediator(t, h, oh, heartbeat, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() {
		err := m.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		done <- err
	}()
	return done
}

// pushedAll reports whether every id was accepted by one of the pushers.
// queuesEmpty reports whether no pusher has a push left to retry.
func queuesEmpty(ps []*chttest.OutboundPusher) bool {
	for _, p := range ps {
		if len(p.Queue()) > 0 {
			return false
		}
	}
	return true
}

func pushedAll(ps []*chttest.OutboundPusher, ids []string) bool {
next:
	for _, id := range ids {
		for _, p := range ps {
			if _, ok := p.SentHash(id); ok {
				continue next
			}
		}
		return false
	}
	return true
}

func allDocIDs(t testing.TB, srv *chttest.Server) []string {
	var ids []string
	for _, raw := range srv.Docs() {
		var d struct {
			ID string `json:"_id"`
		}
		require.NoError(t, jsonUnmarshal(raw, &d))
		if d.ID != "" && d.ID[0] != '_' {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// missing lists the keys of a that b lacks (at most 10).
func missing(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... %d more", len(out)-10))
	}
	return out
}

// TestFaultsNoLossNoDuplicates is the short fault run: SOAK_N payloads,
// default 200, so that go test ./... stays short; CI's fault harness step
// runs it with SOAK_N=1000.
func TestFaultsNoLossNoDuplicates(t *testing.T) {
	n := payloads(t, 200)
	if testing.Short() || raceEnabled {
		n = min(n, 200)
	}
	run := runFaults(t, n)
	t.Logf("%d docs pushed in %v: %d sent, %d failed attempts; FHIR %d requests, %d faulted; heap %d KiB before, %d KiB at the end (fakes included), %d KiB after; goroutines %d → %d",
		run.Pushed, run.Elapsed.Round(time.Millisecond), run.Sent, run.Failed, run.FHIRRequests, run.FHIRFaults,
		run.HeapBefore>>10, run.HeapPeak>>10, run.HeapAfter>>10, run.Goroutines[0], run.Goroutines[1])
	// Everything is closed: what the run allocated must be garbage.
	assert.Less(t, int64(run.HeapAfter)-int64(run.HeapBefore), int64(4<<20), "heap retained after the run")
	assert.LessOrEqual(t, run.Goroutines[1], run.Goroutines[0]+5, "goroutines left running")
}
