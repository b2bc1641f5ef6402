package chttest

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fault describes an injected failure. A request matches when Method (if
// set) equals its method and Path matches its path relative to the base
// path: exactly, or as a prefix when Path ends in "*". An empty Path matches
// every request.
//
// A matching request first waits Latency (or until the client gives up),
// then, if Status is set, gets that status with a CHT-style JSON error body
// (and Retry-After for 429 when RetryAfter is set); if Abort is set the
// connection is closed without an answer; otherwise it is served normally.
type Fault struct {
	Method string
	Path   string
	// Status is the HTTP status to answer; 0 serves the request normally
	// (after Latency).
	Status int
	// RetryAfter is sent as Retry-After (whole seconds, at least 1) with
	// Status 429 or 503.
	RetryAfter time.Duration
	// Latency delays the request before it is answered.
	Latency time.Duration
	// Abort closes the connection without answering (a network error for
	// the client).
	Abort bool
	// Count limits how many requests the fault affects; 0 means no limit.
	Count int
	// Skip lets that many matching requests through before the fault
	// starts.
	Skip int
	// Probability, if in (0,1), applies the fault to that fraction of
	// matching requests, drawn from the server's seeded random source.
	Probability float64
	// DocID, if set, limits the fault to hydrate requests
	// (/api/v1/hydrate) whose doc_ids name that document, however many
	// ids they ask for: a document CHT fails to hydrate. When lineage
	// fetchHydratedDocs throws for one document (hydrateDocs for several
	// ids, fetchHydratedDoc for one), api/src/controllers/hydration.js
	// answers the whole request with serverUtils.serverError: Status 500
	// is that answer, {"code":500,"error":"Server error"}.
	DocID string
}

type faultState struct {
	Fault
	skipped int
	applied int
}

// InjectFault adds a fault and returns a function that removes it.
func (s *Server) InjectFault(f Fault) (remove func()) {
	st := &faultState{Fault: f}
	s.mu.Lock()
	s.faults = append(s.faults, st)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.faults {
			if x == st {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
				return
			}
		}
	}
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

func (f *Fault) matches(c *reqCtx) bool {
	method, path := c.r.Method, c.path
	if f.Method != "" && !strings.EqualFold(f.Method, method) {
		return false
	}
	if f.DocID != "" && (path != hydratePath || !slices.Contains(hydrateIDs(c), f.DocID)) {
		return false
	}
	if f.Path == "" {
		return true
	}
	if prefix, ok := strings.CutSuffix(f.Path, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return f.Path == path
}

// pickFault returns the first fault that applies to the request, counting it.
func (s *Server) pickFault(c *reqCtx) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.faults {
		if !st.matches(c) {
			continue
		}
		if st.Count > 0 && st.applied >= st.Count {
			continue
		}
		if st.skipped < st.Skip {
			st.skipped++
			continue
		}
		if st.Probability > 0 && st.Probability < 1 && s.rng.Float64() >= st.Probability {
			continue
		}
		st.applied++
		f := st.Fault
		return &f
	}
	return nil
}

// applyFaults runs an injected fault; it reports whether the request was
// answered (or aborted).
func (s *Server) applyFaults(c *reqCtx) bool {
	f := s.pickFault(c)
	if f == nil {
		return false
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-s.closing:
		case <-c.r.Context().Done():
			t.Stop()
			return true
		}
	}
	if f.Abort {
		if hj, ok := c.w.ResponseWriter.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				c.w.status = -1
				return true
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter > 0 {
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		c.w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	if f.DocID != "" && f.Status == http.StatusInternalServerError {
		// hydration.js: serverUtils.serverError(err), without publicMessage.
		s.apiError(c, f.Status, "Server error", nil)
		return true
	}
	s.apiError(c, f.Status, http.StatusText(f.Status), nil)
	return true
}
