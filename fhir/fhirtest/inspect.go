package fhirtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Request is one request the server received, as returned by [Handler.Requests].
type Request struct {
	Method   string
	Path     string // URL path, including the base path
	Query    string // raw query, without "?"
	Header   http.Header
	Body     []byte
	Status   int           // status answered; 0 when the connection was dropped
	Fault    string        // injected fault: "", FaultFail, FaultTimeout, FaultLostResponse or FaultDrop
	Time     time.Time     // when the request arrived
	Duration time.Duration // time to answer, injected latency and hangs included
}

func (h *Handler) logRequest(r Request) {
	if h.logSize == 0 {
		return
	}
	h.reqMu.Lock()
	defer h.reqMu.Unlock()
	if len(h.reqs) < h.logSize {
		h.reqs = append(h.reqs, r)
	} else {
		h.reqs[h.reqN%h.logSize] = r
	}
	h.reqN++
}

// Requests returns the most recent requests (up to [Config.RequestLog]), oldest first. A request
// appears before its client can see the answer (or the dropped connection), so it can be checked
// as soon as the call returns.
func (h *Handler) Requests() []Request {
	h.reqMu.Lock()
	defer h.reqMu.Unlock()
	if h.logSize == 0 || len(h.reqs) < h.logSize || h.reqN%h.logSize == 0 {
		return slices.Clone(h.reqs)
	}
	start := h.reqN % h.logSize
	return append(slices.Clone(h.reqs[start:]), h.reqs[:start]...)
}

// Resources returns the current version of every resource of resourceType, in creation order.
// Each element is the JSON the server returns for it, including id and meta.
func (h *Handler) Resources(resourceType string) []json.RawMessage {
	h.mu.RLock()
	recs := h.st.liveRecords(resourceType)
	h.mu.RUnlock()
	out := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		out[i] = slices.Clone(r.raw)
	}
	return out
}

// Resource returns the current version of resourceType/id, or false when it does not exist.
func (h *Handler) Resource(resourceType, id string) (json.RawMessage, bool) {
	h.mu.RLock()
	r := h.st.live(resourceType, id)
	h.mu.RUnlock()
	if r == nil {
		return nil, false
	}
	return slices.Clone(r.raw), true
}

// Count returns the number of resources of resourceType (deleted ones excluded).
func (h *Handler) Count(resourceType string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ts := h.st.types[resourceType]; ts != nil {
		return ts.live
	}
	return 0
}

// Counts returns the number of resources per resource type, omitting types with none.
func (h *Handler) Counts() map[string]int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make(map[string]int, len(h.st.types))
	for typ, ts := range h.st.types {
		if ts.live > 0 {
			out[typ] = ts.live
		}
	}
	return out
}

// Reset deletes every resource, forgets the logged requests and notifications and clears all
// faults. Notifications of earlier writes that are still queued are not sent; one being sent when
// Reset is called is not recorded.
func (h *Handler) Reset() {
	h.mu.Lock()
	h.noteMu.Lock()
	h.st = newStore(&h.dirty)
	h.dirty.Store(false)
	h.gen.Add(1) // a notification queued or being sent is forgotten
	h.queue, h.notes = nil, nil
	h.noteMu.Unlock()
	h.mu.Unlock()
	h.reqMu.Lock()
	h.reqs, h.reqN = nil, 0
	h.reqMu.Unlock()
	h.faults.reset()
}

// Load stores resources as if each had been PUT (an id is required), for seeding fixtures. A
// resource is a json.RawMessage or []byte holding its JSON, or any value encoding/json marshals to
// a resource, such as the github.com/samply/golang-fhir-models types the fhir package builds with
// (models.Patient{Id: &id, ...}). Load validates them all first and stores none if one is invalid.
// Active Subscriptions are notified as for a PUT.
func (h *Handler) Load(resources ...any) error {
	ps := make([]*prepared, len(resources))
	for i, res := range resources {
		var raw []byte
		var err error
		switch v := res.(type) {
		case json.RawMessage:
			raw = v
		case []byte:
			raw = v
		default:
			if raw, err = json.Marshal(v); err != nil {
				return fmt.Errorf("fhirtest: load resource %d (%T): %w", i, res, err)
			}
		}
		m, oerr := decodeObject(raw, "")
		if oerr == nil {
			ps[i], oerr = prepare(m, "", h.strict)
		}
		if oerr == nil && !validID(fmt.Sprint(m["id"])) {
			oerr = errInvalid("id", "Load needs resources with an id")
		}
		if oerr != nil {
			return fmt.Errorf("fhirtest: load resource %d: %w", i, oerr)
		}
	}
	defer h.drainChanges()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range ps {
		if _, err := h.store(nil, p, p.m["id"].(string)); err != nil {
			return fmt.Errorf("fhirtest: load %s: %w", p.typ, err)
		}
	}
	return nil
}
