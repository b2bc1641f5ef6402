package outbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
)

// pushID posts the reference push {"id": id} to h and returns the status.
func pushID(h http.Handler, id string) int {
	req := httptest.NewRequest(http.MethodPost, "/cht/push", strings.NewReader(`{"id":"`+id+`"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func newTestHandler(t *testing.T, cfg HandlerConfig, idle time.Duration) *Handler {
	t.Helper()
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.workers.idle = idle
	return h
}

// eventually fails unless cond becomes true within 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdle waits until n workers wait for a push: a push handed to one
// then runs on it rather than on a new worker.
func waitIdle(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	eventually(t, fmt.Sprint(n, " idle workers"), func() bool {
		idle := 0
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, " [select") && strings.Contains(g, "outbound.(*generation).work") {
				idle++
			}
		}
		return idle == n
	})
}

// TestWorkersReused: pushes one after another are handled by one worker,
// which outlives a panic and a failure, and exits once idle.
func TestWorkersReused(t *testing.T) {
	h := newTestHandler(t, HandlerConfig{Handle: func(_ context.Context, p *Payload) error {
		switch p.ID {
		case "panic":
			panic("boom")
		case "fail":
			return errors.New("fhir down")
		}
		return nil
	}}, time.Hour)
	for i, tt := range []struct {
		id     string
		status int
	}{{"a", 200}, {"panic", 500}, {"fail", 500}, {"b", 200}} {
		if i > 0 {
			waitIdle(t, 1)
		}
		if got := pushID(h, tt.id); got != tt.status {
			t.Fatalf("push %d %q: status %d, want %d", i, tt.id, got, tt.status)
		}
	}
	if s, l := h.workers.started.Load(), h.workers.live.Load(); s != 1 || l != 1 {
		t.Errorf("workers started %d, running %d; want 1 and 1", s, l)
	}
	h.Wait()
	if l := h.workers.live.Load(); l != 0 {
		t.Errorf("%d workers running after Wait", l)
	}
	// The handler still serves after Wait, with a new worker.
	if got := pushID(h, "c"); got != 200 {
		t.Fatalf("push after Wait: status %d", got)
	}
	if s := h.workers.started.Load(); s != 2 {
		t.Errorf("workers started %d, want 2", s)
	}
	h.Wait()
	if l := h.workers.live.Load(); l != 0 {
		t.Errorf("%d workers running after the second Wait", l)
	}
}

// TestWorkersExitWhenIdle: a worker nobody needs exits on its own, without
// Wait, and keeps no goroutine behind.
func TestWorkersExitWhenIdle(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newTestHandler(t, HandlerConfig{Handle: func(context.Context, *Payload) error { return nil }}, 20*time.Millisecond)
	if got := pushID(h, "a"); got != 200 {
		t.Fatalf("status %d", got)
	}
	eventually(t, "idle worker exits", func() bool { return h.workers.live.Load() == 0 })
	eventually(t, "goroutines back to their number", func() bool { return runtime.NumGoroutine() <= before })
	if got := pushID(h, "b"); got != 200 {
		t.Fatalf("status %d", got)
	}
	if s := h.workers.started.Load(); s != 2 {
		t.Errorf("workers started %d, want 2", s)
	}
	eventually(t, "second idle worker exits", func() bool { return h.workers.live.Load() == 0 })
}

// TestWorkersConcurrent: pushes in progress at once each get a worker at
// once (none waits for another), and all exit on Wait.
func TestWorkersConcurrent(t *testing.T) {
	const n = 8
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	h := newTestHandler(t, HandlerConfig{Timeout: 10 * time.Second, Handle: func(ctx context.Context, _ *Payload) error {
		arrived.Done()
		select {
		case <-all: // every push is being handled at the same time
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}, time.Hour)
	go func() { arrived.Wait(); close(all) }()
	statuses := make(chan int, n)
	for i := range n {
		go func() { statuses <- pushID(h, fmt.Sprint(i)) }()
	}
	for range n {
		if s := <-statuses; s != 200 {
			t.Errorf("status %d", s)
		}
	}
	if s := h.workers.started.Load(); s != n {
		t.Errorf("workers started %d, want %d", s, n)
	}
	h.Wait()
	if l := h.workers.live.Load(); l != 0 {
		t.Errorf("%d workers running after Wait", l)
	}
}

// TestWorkersLateResult: a push answered 503 at its deadline goes on, Wait
// waits for it, and its late result is not the answer to a later push.
func TestWorkersLateResult(t *testing.T) {
	release := make(chan struct{})
	finished := make(chan string, 2)
	h := newTestHandler(t, HandlerConfig{Timeout: 30 * time.Millisecond, Handle: func(_ context.Context, p *Payload) error {
		if p.ID == "slow" {
			<-release // ignores its context
			finished <- p.ID
			return errors.New("late failure")
		}
		finished <- p.ID
		return nil
	}}, time.Hour)
	if got := pushID(h, "slow"); got != 503 {
		t.Fatalf("slow push: status %d, want 503", got)
	}
	// The slow push still holds its worker: this one gets another.
	if got := pushID(h, "fast"); got != 200 {
		t.Fatalf("push during the slow one: status %d", got)
	}
	close(release)
	waited := make(chan struct{})
	go func() { h.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait does not return")
	}
	if a, b := <-finished, <-finished; a != "fast" || b != "slow" {
		t.Errorf("finished %q then %q", a, b)
	}
	// Both workers are gone, and pushes that follow get their own results.
	if l := h.workers.live.Load(); l != 0 {
		t.Errorf("%d workers running after Wait", l)
	}
	for range 3 {
		if got := pushID(h, "fast"); got != 200 {
			t.Fatalf("status %d", got)
		}
		<-finished
	}
	h.Wait()
}

// TestWorkersGoexit: a Handle that ends its goroutine (t.FailNow in a
// test's Handle does) is answered 503 at the deadline and counted as
// finished; the next push gets a new worker.
func TestWorkersGoexit(t *testing.T) {
	h := newTestHandler(t, HandlerConfig{Timeout: 30 * time.Millisecond, Handle: func(_ context.Context, p *Payload) error {
		if p.ID == "exit" {
			runtime.Goexit()
		}
		return nil
	}}, time.Hour)
	if got := pushID(h, "exit"); got != 503 {
		t.Fatalf("status %d, want 503", got)
	}
	if got := pushID(h, "a"); got != 200 {
		t.Fatalf("status %d", got)
	}
	if s := h.workers.started.Load(); s != 2 {
		t.Errorf("workers started %d, want 2", s)
	}
	h.Wait()
	if l := h.workers.live.Load(); l != 0 {
		t.Errorf("%d workers running after Wait", l)
	}
}

// TestWorkersProfilerLabels: Handle runs with the profiler labels of the
// push's context (pprof.Do around the handler), also on a reused worker.
func TestWorkersProfilerLabels(t *testing.T) {
	var profile bytes.Buffer
	h := newTestHandler(t, HandlerConfig{Handle: func(context.Context, *Payload) error {
		profile.Reset()
		return pprof.Lookup("goroutine").WriteTo(&profile, 1)
	}}, time.Hour)
	for i, label := range []string{"first", "second"} {
		if i > 0 {
			waitIdle(t, 1)
		}
		pprof.Do(context.Background(), pprof.Labels("push", label), func(ctx context.Context) {
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/cht/push", strings.NewReader(`{"id":"a"}`))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
		})
		// The goroutine writing the profile is the worker, in Handle.
		var stack string
		for _, rec := range strings.Split(profile.String(), "\n\n") {
			if strings.Contains(rec, "outbound.(*job).run") && strings.Contains(rec, "pprof.writeGoroutine") {
				stack = rec
			}
		}
		if want := `# labels: {"push":"` + label + `"}`; !strings.Contains(stack, want) {
			t.Errorf("worker's profile record lacks %s:\n%s", want, stack)
		}
	}
	if s := h.workers.started.Load(); s != 1 {
		t.Errorf("workers started %d, want 1", s)
	}
	h.Wait()
}
