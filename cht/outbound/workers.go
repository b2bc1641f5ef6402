package outbound

import (
	"context"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// The handler runs each push on a goroutine of its own, so that it can
// answer 503 at the deadline while the push goes on. A goroutine starts
// with a small stack that the conversion of a document grows several
// times (each time copying it); a goroutine that has handled a push keeps
// its grown stack. So a push is handed to a worker: a goroutine that
// handled an earlier push and waits for the next, for workerIdle at most.
// There is no fixed number of workers and no queue: a push that finds no
// idle worker starts a new one at once, as many as there are pushes in
// progress, and a worker that nobody needs for workerIdle exits.

// workerIdle is how long a worker waits for a push before it exits. Under
// load pushes follow each other within milliseconds; a push that comes
// after a longer pause pays for a new goroutine, which then matters little.
const workerIdle = 250 * time.Millisecond

// job is one push handed to a worker.
type job struct {
	h    *Handler
	ctx  context.Context
	p    *Payload
	done chan error // buffered: the worker never waits for ServeHTTP
}

// workers are the handler's idle workers and the generation they belong
// to; Wait ends a generation.
type workers struct {
	jobs chan *job // unbuffered: a send succeeds only when a worker is idle
	idle time.Duration

	mu  sync.Mutex
	gen *generation // the generation new workers join

	started, live atomic.Int64 // workers started and running, for tests
}

// generation is the set of workers started between two calls of
// Handler.Wait.
type generation struct {
	stop chan struct{}  // closed by Wait: the workers exit when idle
	wg   sync.WaitGroup // running workers
}

func newWorkers(idle time.Duration) *workers {
	return &workers{jobs: make(chan *job), idle: idle, gen: &generation{stop: make(chan struct{})}}
}

// start runs j on an idle worker, or on a new one. The caller has counted
// j in j.h.wg.
func (ws *workers) start(j *job) {
	select {
	case ws.jobs <- j:
		return
	default:
	}
	ws.mu.Lock()
	g := ws.gen
	g.wg.Add(1)
	ws.mu.Unlock()
	ws.started.Add(1)
	ws.live.Add(1)
	go g.work(ws, j)
}

// stop makes the current workers exit once they are idle and waits until
// they have; workers started later belong to a new generation.
func (ws *workers) stop() {
	ws.mu.Lock()
	g := ws.gen
	ws.gen = &generation{stop: make(chan struct{})}
	ws.mu.Unlock()
	close(g.stop)
	g.wg.Wait()
}

// work runs j, then the jobs handed to it, until it has been idle for
// ws.idle or its generation is stopped. It holds no reference to a handler
// while it waits (ws is the handler's, but refers to no handler), so that
// an idle worker keeps nothing alive.
func (g *generation) work(ws *workers, j *job) {
	defer g.wg.Done()
	defer ws.live.Add(-1)
	jobs, idle := ws.jobs, ws.idle
	var t *time.Timer
	for {
		j.run()
		j = nil
		select {
		case <-g.stop:
			return
		default:
		}
		if t == nil {
			t = time.NewTimer(idle)
		} else {
			t.Reset(idle)
		}
		select {
		case j = <-jobs:
		case <-t.C:
			return
		case <-g.stop:
			t.Stop()
			return
		}
	}
}

// run handles the push and hands the result to ServeHTTP. The profiler
// labels of the worker are those of the push's context (pprof.Do), as a
// goroutine started for the push would have had those of the request.
func (j *job) run() {
	h := j.h
	defer h.wg.Done()
	pprof.SetGoroutineLabels(j.ctx)
	j.done <- h.run(j.ctx, j.p)
}
