package fhirtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Notification is one rest-hook notification the server sent (or tried to send) for an active
// Subscription, as returned by [Handler.Notifications].
type Notification struct {
	Subscription string      // id of the Subscription
	Method       string      // POST (no payload) or PUT (payload: the resource)
	URL          string      // the channel endpoint, plus /Type/id when the resource is sent
	Header       http.Header // the channel headers sent, Content-Type included
	Resource     string      // the resource that matched: Type/id/_history/version
	Body         []byte      // the resource sent; nil without a payload
	Status       int         // the endpoint's HTTP status; 0 when it could not be reached
	Err          string      // why delivery failed: a transport error or a non-2xx status; "" on success
	Time         time.Time   // when the notification was sent
}

// subscription is an active rest-hook Subscription, parsed from its stored record.
type subscription struct {
	id       string
	typ      string // resource type of the criteria
	q        *query
	endpoint string
	payload  string // channel.payload MIME type; "" sends no body
	header   http.Header
}

// delivery is one notification to send.
type delivery struct {
	sub *subscription
	rec *record
	gen uint64 // Handler.gen when the write was made; a Reset since forgets the delivery
}

// subscriptionJSON is the part of an R4 Subscription fhirtest reads.
type subscriptionJSON struct {
	Status   string `json:"status"`
	Reason   string `json:"reason"`
	Criteria string `json:"criteria"`
	Channel  struct {
		Type     string   `json:"type"`
		Endpoint string   `json:"endpoint"`
		Payload  string   `json:"payload"`
		Header   []string `json:"header"`
	} `json:"channel"`
}

// checkSubscription validates a Subscription body and, like a server that accepts the channel at
// once, turns status requested into active. Only rest-hook channels with JSON payloads are
// delivered, so other requested or active channels are rejected rather than silently never
// notified.
func checkSubscription(m map[string]any) *opError {
	var s subscriptionJSON
	raw, err := encodeJSON(m)
	if err == nil {
		err = json.Unmarshal(raw, &s)
	}
	if err != nil {
		return errInvalid("Subscription", "invalid Subscription: %v", err)
	}
	switch s.Status {
	case "requested", "active":
	case "error", "off":
		return nil // stored as sent, never notified
	case "":
		return errInvalid("Subscription.status", "Subscription.status is required")
	default:
		return errInvalid("Subscription.status", "unknown Subscription.status %q (want requested, active, error or off)", s.Status)
	}
	if _, perr := parseSubscription("", s); perr != nil {
		return perr
	}
	m["status"] = "active"
	return nil
}

// parseSubscription checks the elements fhirtest needs to deliver s.
func parseSubscription(id string, s subscriptionJSON) (*subscription, *opError) {
	if strings.TrimSpace(s.Reason) == "" {
		return nil, errInvalid("Subscription.reason", "Subscription.reason is required")
	}
	typ, rawQuery, _ := strings.Cut(s.Criteria, "?")
	if typ == "" {
		return nil, errInvalid("Subscription.criteria", "Subscription.criteria is required (for example Task?_id=123)")
	}
	if !resourceTypes[typ] {
		return nil, errInvalid("Subscription.criteria", "unknown resource type %q in Subscription.criteria", typ)
	}
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errInvalid("Subscription.criteria", "invalid search in Subscription.criteria: %v", err)
	}
	q, qerr := parseQuery(typ, vals)
	if qerr != nil {
		qerr.msg = "Subscription.criteria: " + qerr.msg
		qerr.expression = "Subscription.criteria"
		return nil, qerr
	}
	if s.Channel.Type != "rest-hook" {
		return nil, &opError{status: http.StatusBadRequest, code: "not-supported", expression: "Subscription.channel.type",
			msg: fmt.Sprintf("fhirtest delivers rest-hook channels only, got Subscription.channel.type %q", s.Channel.Type)}
	}
	u, err := url.Parse(s.Channel.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errInvalid("Subscription.channel.endpoint", "Subscription.channel.endpoint %q must be an absolute http or https URL", s.Channel.Endpoint)
	}
	switch s.Channel.Payload {
	case "", "application/fhir+json", "application/json", "application/json+fhir":
	default:
		return nil, &opError{status: http.StatusBadRequest, code: "not-supported", expression: "Subscription.channel.payload",
			msg: fmt.Sprintf("fhirtest sends JSON payloads only, got Subscription.channel.payload %q", s.Channel.Payload)}
	}
	hdr := http.Header{}
	for i, h := range s.Channel.Header {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, errInvalid(fmt.Sprintf("Subscription.channel.header[%d]", i), "channel header %q is not \"Name: value\"", h)
		}
		hdr.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return &subscription{id: id, typ: typ, q: q, endpoint: strings.TrimRight(s.Channel.Endpoint, "/"),
		payload: s.Channel.Payload, header: hdr}, nil
}

// drainChanges matches the records written since the last call against the active subscriptions,
// updates the subscriptions written, and queues the notifications. It runs before every answer
// (see loggingWriter) and after every request.
func (h *Handler) drainChanges() {
	if !h.dirty.Load() {
		return
	}
	h.mu.Lock()
	gen := h.gen.Load()
	changed := h.st.changed
	h.st.changed = nil
	h.dirty.Store(false)
	var out []delivery
	for _, r := range changed {
		if r.typ == "Subscription" {
			h.st.setSubscription(r)
			continue
		}
		if r.deleted() {
			continue
		}
		for _, sub := range h.st.sortedSubs() {
			if sub.typ == r.typ && matchAll(r, sub.q.filters) {
				out = append(out, delivery{sub: sub, rec: r, gen: gen})
			}
		}
	}
	h.mu.Unlock()
	h.enqueue(out)
}

// setSubscription registers or forgets the subscription stored as r.
func (s *store) setSubscription(r *record) {
	delete(s.subs, r.id)
	if r.deleted() || r.status != "active" {
		return
	}
	var sj subscriptionJSON
	if json.Unmarshal(r.raw, &sj) != nil {
		return
	}
	if sub, err := parseSubscription(r.id, sj); err == nil {
		if s.subs == nil {
			s.subs = make(map[string]*subscription)
		}
		s.subs[r.id] = sub
	}
}

// sortedSubs returns the active subscriptions ordered by id, so notifications go out in a stable
// order.
func (s *store) sortedSubs() []*subscription {
	out := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, sub)
	}
	slices.SortFunc(out, func(a, b *subscription) int { return strings.Compare(a.id, b.id) })
	return out
}

// enqueue hands ds to the delivery goroutine, starting it when idle. Notifications are sent one at
// a time in the order of the writes.
func (h *Handler) enqueue(ds []delivery) {
	if len(ds) == 0 {
		return
	}
	h.noteMu.Lock()
	defer h.noteMu.Unlock()
	if h.stopped {
		// Close has run (or is waiting for the delivery goroutine): start no new one, so that
		// Close's wait cannot miss it, and record the notifications as not sent.
		for _, d := range ds {
			if d.gen != h.gen.Load() {
				continue // written before a Reset
			}
			n := d.notification()
			n.Err = errClosed
			h.addNote(n)
		}
		return
	}
	h.queue = append(h.queue, ds...)
	if !h.delivering {
		h.delivering = true
		h.deliverWG.Add(1) // under noteMu, before Close sets stopped and waits
		go h.deliverLoop()
	}
}

// errClosed is the Notification.Err of a notification not sent because the handler is closed.
const errClosed = "not sent: the handler is closed"

// addNote records n and wakes AwaitNotifications. h.noteMu must be held.
func (h *Handler) addNote(n Notification) {
	h.notes = append(h.notes, n)
	close(h.noteSignal)
	h.noteSignal = make(chan struct{})
}

func (h *Handler) deliverLoop() {
	defer h.deliverWG.Done()
	for {
		h.noteMu.Lock()
		if len(h.queue) == 0 {
			h.delivering = false
			h.noteMu.Unlock()
			return
		}
		d := h.queue[0]
		h.queue[0] = delivery{}
		h.queue = h.queue[1:]
		forgotten := d.gen != h.gen.Load()
		h.noteMu.Unlock()
		if forgotten {
			continue // written before a Reset
		}

		n := h.deliver(d)
		if n.Err != "" && n.Err != errClosed {
			h.markError(d, n.Err)
		}
		h.noteMu.Lock()
		if d.gen == h.gen.Load() { // else Reset ran while it was being sent and forgot it
			h.addNote(n)
		}
		h.noteMu.Unlock()
	}
}

// notification returns the notification d sends, before it is sent: Status, Err and Header unset.
func (d delivery) notification() Notification {
	rec := d.rec
	n := Notification{Subscription: d.sub.id, Method: http.MethodPost, URL: d.sub.endpoint,
		Resource: fmt.Sprintf("%s/%s/_history/%d", rec.typ, rec.id, rec.version), Time: time.Now()}
	if d.sub.payload != "" {
		n.Method = http.MethodPut
		n.URL = d.sub.endpoint + "/" + rec.typ + "/" + rec.id
		n.Body = slices.Clone(rec.raw)
	}
	return n
}

// deliver sends one notification as R4 rest-hook does: without a payload a POST with no body to
// the endpoint; with a payload the resource is PUT to [endpoint]/[type]/[id].
func (h *Handler) deliver(d delivery) Notification {
	n := d.notification()
	var body io.Reader
	if n.Body != nil {
		body = bytes.NewReader(n.Body)
	}
	select {
	case <-h.closed:
		n.Err = errClosed
		return n
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, n.Method, n.URL, body)
	if err != nil {
		n.Err = err.Error()
		return n
	}
	req.Header = d.sub.header.Clone()
	if d.sub.payload != "" {
		req.Header.Set("Content-Type", d.sub.payload)
	}
	n.Header = req.Header.Clone()
	resp, err := h.notifyClient.Do(req)
	if err != nil {
		n.Err = err.Error()
		return n
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	n.Status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		n.Err = "endpoint answered " + resp.Status
	}
	return n
}

// markError sets an active subscription's status to error with the reason, as R4 asks of a server
// whose notification failed; it is then no longer notified until a client sets it active again.
func (h *Handler) markError(d delivery, reason string) {
	id := d.sub.id
	h.mu.Lock()
	if d.gen != h.gen.Load() {
		h.mu.Unlock()
		return // the store was Reset: the subscription is gone (or is another one)
	}
	cur := h.st.live("Subscription", id)
	if cur == nil || cur.status != "active" {
		h.mu.Unlock()
		return
	}
	m, derr := decodeObject(cur.raw, "Subscription")
	if derr == nil {
		m["status"] = "error"
		m["error"] = reason
		if p, perr := prepare(m, "Subscription", false); perr == nil {
			_, _ = h.store(nil, p, id)
		}
	}
	h.mu.Unlock()
	h.drainChanges()
}

// Notifications returns the rest-hook notifications sent so far, oldest first.
func (h *Handler) Notifications() []Notification {
	h.noteMu.Lock()
	defer h.noteMu.Unlock()
	return slices.Clone(h.notes)
}

// AwaitNotifications waits until at least n notifications have been sent (successfully or not) and
// returns them all, or returns ctx's error with those sent so far. A failed notification has
// already set its Subscription's status to error when it is returned.
func (h *Handler) AwaitNotifications(ctx context.Context, n int) ([]Notification, error) {
	for {
		h.noteMu.Lock()
		notes, signal := slices.Clone(h.notes), h.noteSignal
		h.noteMu.Unlock()
		if len(notes) >= n {
			return notes, nil
		}
		select {
		case <-ctx.Done():
			return notes, fmt.Errorf("fhirtest: %d of %d notifications sent: %w", len(notes), n, ctx.Err())
		case <-signal:
		}
	}
}
