package fhirtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Faults configures failures injected into requests, for retry, idempotency and soak tests. The zero
// value injects nothing. A write is a POST, PUT or DELETE (a transaction or batch Bundle counts as one
// write); reads and searches are only delayed by Latency unless IncludeReads is set.
type Faults struct {
	// FailRate is the fraction, from 0 to 1, of writes answered with FailStatus and an
	// OperationOutcome without being applied.
	FailRate float64
	// FailStatus is the status of injected failures; 0 means 503 Service Unavailable.
	FailStatus int
	// TimeoutRate is the fraction of writes that are not applied and not answered until the client
	// gives up (its request context ends), the server closes, or Hang elapses.
	TimeoutRate float64
	// LostResponseRate is the fraction of writes that are applied and then answered like a timeout:
	// the data is stored but the client never learns it. Retrying them must not create duplicates.
	LostResponseRate float64
	// DropRate is the fraction of writes whose connection is closed without an answer and without
	// applying them, as when a proxy or the network resets the connection.
	DropRate float64
	// Down makes the server drop every request, reads included, as if it were stopped.
	Down bool
	// Hang bounds how long a timeout or lost-response fault holds the request before it is answered
	// with 504 Gateway Timeout; 0 means until the client gives up or the server closes.
	Hang time.Duration
	// Latency is added before every request is handled, reads included.
	Latency time.Duration
	// Seed seeds the random choices, so a test replays the same sequence of decisions for the same
	// sequence of requests.
	Seed uint64
	// IncludeReads applies FailRate and TimeoutRate to reads and searches too.
	IncludeReads bool
}

func (f Faults) validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{{"FailRate", f.FailRate}, {"TimeoutRate", f.TimeoutRate}, {"LostResponseRate", f.LostResponseRate}, {"DropRate", f.DropRate}} {
		if !(r.v >= 0 && r.v <= 1) {
			errs = append(errs, fmt.Errorf("fhirtest: Faults.%s %v outside [0, 1]", r.name, r.v))
		}
	}
	if len(errs) == 0 && f.FailRate+f.TimeoutRate+f.LostResponseRate+f.DropRate > 1 {
		errs = append(errs, errors.New("fhirtest: Faults.FailRate+TimeoutRate+LostResponseRate+DropRate exceeds 1"))
	}
	if f.FailStatus != 0 && (f.FailStatus < 400 || f.FailStatus > 599) {
		errs = append(errs, fmt.Errorf("fhirtest: Faults.FailStatus %d is not a 4xx or 5xx status", f.FailStatus))
	}
	if f.Hang < 0 || f.Latency < 0 {
		errs = append(errs, errors.New("fhirtest: Faults.Hang and Faults.Latency must not be negative"))
	}
	return errors.Join(errs...)
}

// Fault kinds reported in [Request.Fault].
const (
	FaultFail         = "fail"          // answered with an error status, not applied
	FaultTimeout      = "timeout"       // not applied, not answered in time
	FaultLostResponse = "lost-response" // applied, not answered in time
	FaultDrop         = "drop"          // connection closed without an answer, not applied
)

// faultState is the live fault configuration of a Handler.
type faultState struct {
	mu       sync.Mutex // guards everything below
	cfg      Faults
	rng      *rand.Rand
	failNext []int // statuses for the next writes, consumed first-in first-out
	hangNext int   // number of next writes to time out
}

func (fs *faultState) set(f Faults) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.cfg = f
	fs.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
}

func (fs *faultState) reset() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.cfg = Faults{}
	fs.rng = nil
	fs.failNext = nil
	fs.hangNext = 0
}

func (fs *faultState) latency() time.Duration {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.cfg.Latency
}

// decide picks the fault for one request: kind is "" for none, status the answer of a FaultFail.
func (fs *faultState) decide(write bool) (kind string, status int, hang time.Duration) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	hang = fs.cfg.Hang
	if fs.cfg.Down {
		return FaultDrop, 0, hang
	}
	if write && len(fs.failNext) > 0 {
		status = fs.failNext[0]
		fs.failNext = fs.failNext[1:]
		return FaultFail, status, hang
	}
	if write && fs.hangNext > 0 {
		fs.hangNext--
		return FaultTimeout, 0, hang
	}
	if fs.rng == nil || (!write && !fs.cfg.IncludeReads) {
		return "", 0, hang
	}
	x := fs.rng.Float64()
	status = fs.cfg.FailStatus
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	switch {
	case x < fs.cfg.FailRate:
		return FaultFail, status, hang
	case x < fs.cfg.FailRate+fs.cfg.TimeoutRate:
		return FaultTimeout, 0, hang
	case write && x < fs.cfg.FailRate+fs.cfg.TimeoutRate+fs.cfg.LostResponseRate:
		return FaultLostResponse, 0, hang
	case write && x < fs.cfg.FailRate+fs.cfg.TimeoutRate+fs.cfg.LostResponseRate+fs.cfg.DropRate:
		return FaultDrop, 0, hang
	}
	return "", 0, hang
}

// SetFaults replaces the random fault configuration. It returns an error, and changes nothing, when a
// rate is outside [0, 1] or FailStatus is not an error status.
func (h *Handler) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	h.faults.set(f)
	return nil
}

// FailNextWrites makes the next n writes fail with status (0 means 503) without being applied. These
// failures come before, and in addition to, the random ones of [Faults].
func (h *Handler) FailNextWrites(n, status int) {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	h.faults.mu.Lock()
	defer h.faults.mu.Unlock()
	for range n {
		h.faults.failNext = append(h.faults.failNext, status)
	}
}

// TimeoutNextWrites makes the next n writes time out without being applied: each is held until the
// client gives up, the server closes, or [Faults.Hang] elapses.
func (h *Handler) TimeoutNextWrites(n int) {
	h.faults.mu.Lock()
	defer h.faults.mu.Unlock()
	h.faults.hangNext += n
}

// hang holds a request until the client gives up, the handler closes, or d elapses (d > 0).
func (h *Handler) hang(r *http.Request, d time.Duration) {
	h.held.Add(1)
	defer h.held.Add(-1)
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-r.Context().Done():
	case <-h.closed:
	case <-timeout:
	}
}

// drop closes the client connection without an answer. Without a hijackable connection (a
// ResponseRecorder) it answers 503 instead.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	writeError(w, &opError{status: http.StatusServiceUnavailable, code: "transient", msg: "fhirtest: injected connection drop"})
}

// Held returns the number of requests currently held by timeout or lost-response faults.
func (h *Handler) Held() int { return int(h.held.Load()) }

// sleep waits d or until the request or handler ends.
func (h *Handler) sleep(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-h.closed:
	case <-t.C:
	}
}
