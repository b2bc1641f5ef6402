package mediator

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/internal/redact"
)

// defaultMaxCapturedBodyBytes (1 MiB) is the default cap on each body an
// orchestration records (the caller always receives the full body).
const defaultMaxCapturedBodyBytes = 1 << 20

// redacted replaces the value of a secret header in orchestrations.
const redacted = "[REDACTED]"

// CaptureConfig controls what orchestration capture records.
// The zero value is ready to use.
type CaptureConfig struct {
	// MaxBodyBytes caps each recorded request or response body (the
	// caller still gets the full body). 0 means 1 MiB;
	// a negative value records no bodies.
	MaxBodyBytes int64
	// BodyBudget caps the bodies of one transaction: request, response
	// and every orchestration body (a request body sent without a
	// Content-Length, chunked, counts as far as the handler read it).
	// Orchestration bodies are cut, last
	// first, to fit; the response is never cut, but a plain http.Handler's
	// response body over the budget (it is buffered to be wrapped in the
	// envelope) is answered 502 Failed. 0 means 15 MiB, core's
	// default MAX_BODIES_SIZE (api.maxBodiesSizeMB);
	// a negative value disables the budget.
	BodyBudget int64
	// RedactHeaders names further headers whose values are replaced by
	// "[REDACTED]" (case-insensitive). Authorization, Proxy-Authorization,
	// Cookie and Set-Cookie are always redacted.
	RedactHeaders []string
}

func (c CaptureConfig) maxBody() int64 {
	switch {
	case c.MaxBodyBytes == 0:
		return defaultMaxCapturedBodyBytes
	case c.MaxBodyBytes < 0:
		return 0
	}
	return c.MaxBodyBytes
}

func (c CaptureConfig) budget() int64 {
	if c.BodyBudget == 0 {
		return defaultBodyBudget
	}
	return c.BodyBudget
}

// compiled is a CaptureConfig ready for the hot path.
type compiled struct {
	maxBody int64
	budget  int64
	redact  map[string]bool // canonical header names, beyond the built-in ones
	observe func(name string, d time.Duration)
}

func (c CaptureConfig) compile() *compiled {
	cc := &compiled{maxBody: c.maxBody(), budget: c.budget()}
	if len(c.RedactHeaders) > 0 {
		cc.redact = make(map[string]bool, len(c.RedactHeaders))
		for _, h := range c.RedactHeaders {
			cc.redact[http.CanonicalHeaderKey(h)] = true
		}
	}
	return cc
}

// secret reports whether header k is redacted; k need not be canonical.
func (cc *compiled) secret(k string) bool {
	k = http.CanonicalHeaderKey(k)
	switch k {
	case "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie":
		return true
	}
	return cc.redact[k]
}

// recorderKey is the context key of the *recorder of a request.
type recorderKey struct{}

// nameKey is the context key of the orchestration name and group.
type nameKey struct{}

type orchName struct{ name, group string }

// noBodiesKey marks a context whose calls are recorded without bodies.
type noBodiesKey struct{}

// recorder collects the orchestrations of one transaction. It is safe for
// concurrent use: a handler may make calls in parallel.
type recorder struct {
	cfg *compiled
	txn *txn // nil for RecordOrchestrations

	mu    sync.Mutex // guards the fields below
	orchs []*orchRec
	done  bool
}

// orchRec is one orchestration being recorded; its bodies fill as the
// caller reads them.
type orchRec struct {
	o        Orchestration
	reqBody  capBuf
	respBody capBuf
	nested   bool // response is application/json+openhim: merge at the end
	manual   bool // added with AddOrchestration: bodies are in o

	// Allocated with the record: the request copy and the body wrappers.
	cp              http.Request
	reqTee, respTee teeBody
}

// capBuf keeps the first limit bytes written to it and counts the rest.
type capBuf struct {
	b     []byte
	limit int64
	total int64
}

func (c *capBuf) write(p []byte) {
	c.total += int64(len(p))
	if room := c.limit - int64(len(c.b)); room > 0 {
		if int64(len(p)) > room {
			p = p[:room]
		}
		c.b = append(c.b, p...)
	}
}

func (c *capBuf) String() string {
	if c.total > int64(len(c.b)) {
		return truncateUTF8(string(c.b)) + truncateMarker
	}
	return string(c.b)
}

// RecordOrchestrations returns a context in which [Transport] records
// orchestrations, and a function returning what was recorded so far (with
// nested envelopes merged). A [Mediator] and [HandlerFunc] do this for every
// request; call it for work outside a request, such as a background job.
func RecordOrchestrations(ctx context.Context, cfg CaptureConfig) (context.Context, func() []Orchestration) {
	rec := &recorder{cfg: cfg.compile()}
	return context.WithValue(ctx, recorderKey{}, rec), func() []Orchestration { return rec.snapshot(false) }
}

func recorderFrom(ctx context.Context) *recorder {
	rec, _ := ctx.Value(recorderKey{}).(*recorder)
	return rec
}

// WithOrchestration returns a context that names the orchestrations of the
// outbound calls made with it. Without a name, an orchestration is named
// after its method, host and port, e.g. "GET cht:5988".
func WithOrchestration(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, nameKey{}, orchName{name: name})
}

// WithOrchestrationGroup is like [WithOrchestration] and also sets the
// orchestration's group.
func WithOrchestrationGroup(ctx context.Context, name, group string) context.Context {
	return context.WithValue(ctx, nameKey{}, orchName{name: name, group: group})
}

// WithoutBodies returns a context whose outbound calls are recorded without
// their request and response bodies (their names, headers with secrets
// redacted, statuses and times are still recorded). Use it for a call whose
// body carries a secret, such as an OAuth token request or a FHIR
// Subscription holding an endpoint's credentials: OpenHIM core stores
// orchestration bodies in its transaction log for anyone who may view it.
func WithoutBodies(ctx context.Context) context.Context {
	return context.WithValue(ctx, noBodiesKey{}, true)
}

// AddOrchestration records o, for work that is not an HTTP call made
// through [Transport]. It reports whether ctx carries a recorder.
func AddOrchestration(ctx context.Context, o Orchestration) bool {
	rec := recorderFrom(ctx)
	if rec == nil {
		return false
	}
	if o.Request.Timestamp.IsZero() {
		o.Request.Timestamp = time.Now()
	}
	o = cloneOrchestration(o) // the caller keeps its pointers and maps
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.done {
		return false
	}
	rec.orchs = append(rec.orchs, &orchRec{o: o, manual: true})
	return true
}

// cloneOrchestration copies o's response, error and header maps, so that
// the copy shares nothing a reader of the other may write: an envelope
// normalizes and cuts what it holds, and an async run does the same on
// its own goroutine.
func cloneOrchestration(o Orchestration) Orchestration {
	o.Request.Headers = maps.Clone(o.Request.Headers)
	if o.Response != nil {
		r := *o.Response
		r.Headers = maps.Clone(r.Headers)
		o.Response = &r
	}
	if o.Error != nil {
		e := *o.Error
		o.Error = &e
	}
	return o
}

// Orchestrations returns the orchestrations recorded so far in ctx, or nil.
func Orchestrations(ctx context.Context) []Orchestration {
	if rec := recorderFrom(ctx); rec != nil {
		return rec.snapshot(false)
	}
	return nil
}

// snapshot copies the orchestrations, merging nested envelopes. With
// finish, later calls are no longer recorded.
func (rec *recorder) snapshot(finish bool) []Orchestration {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if finish {
		rec.done = true
	}
	if len(rec.orchs) == 0 {
		return nil
	}
	out := make([]Orchestration, 0, len(rec.orchs))
	for _, r := range rec.orchs {
		o := r.o
		if r.manual {
			// Each snapshot gets its own copy: the request's envelope and
			// an async run's update each normalize theirs.
			o = cloneOrchestration(o)
		} else {
			o.Request.Body = r.reqBody.String()
			if o.Response != nil {
				if finish { // no one else reads r.o any more: no copy
					o.Response.Body = r.respBody.String()
				} else {
					resp := *o.Response
					resp.Body = r.respBody.String()
					o.Response = &resp
				}
			}
		}
		out = append(out, o)
		if r.nested && r.respBody.total == int64(len(r.respBody.b)) {
			if env, err := ParseEnvelope(r.respBody.b); err == nil {
				out[len(out)-1].Response.Body = env.Response.Body
				for _, n := range env.Orchestrations {
					if n.Group == "" {
						n.Group = o.Name
					}
					rec.cfg.redactMap(n.Request.Headers)
					n.Request.Querystring = redact.Query(n.Request.Querystring)
					if n.Response != nil {
						rec.cfg.redactMap(n.Response.Headers)
					}
					out = append(out, n)
				}
			}
		}
	}
	if len(out) > len(rec.orchs) { // merged: order by start time
		sort.SliceStable(out, func(i, j int) bool {
			return out[i].Request.Timestamp.Before(out[j].Request.Timestamp)
		})
	}
	return out
}

// relayed reports whether body is the whole envelope a nested mediator
// answered to a call recorded here, whose orchestrations snapshot merges.
func (rec *recorder) relayed(body []byte) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, r := range rec.orchs {
		if r.nested && r.respBody.total == int64(len(r.respBody.b)) && bytes.Equal(r.respBody.b, body) {
			return true
		}
	}
	return false
}

// Transport returns an http.RoundTripper that records every call made with
// a request context carrying a recorder (see [RecordOrchestrations]; a [Mediator]
// and [HandlerFunc] set one up per request) as an [Orchestration]: name and
// group (see [WithOrchestration]), method, host, port, path, query, headers
// with secrets redacted, bodies capped, timestamps, status and transport
// errors (their text cut to 8 KiB; the caller gets the error whole). A
// downstream answer of type application/json+openhim has its
// orchestrations merged into ours. Calls whose context has no recorder pass
// through untouched. If next is nil, http.DefaultTransport is used.
//
// Use it with a plain client, &http.Client{Transport: mediator.Transport(nil)},
// or with resty, client.SetTransport(mediator.Transport(nil)), and make the
// calls with the handler's request context. The returned RoundTripper is safe
// for concurrent use; it never modifies the request and the caller always
// receives the full response body.
func Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{next: next}
}

type transport struct{ next http.RoundTripper }

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	rec := recorderFrom(ctx)
	if rec == nil {
		return t.next.RoundTrip(req)
	}
	start := time.Now()
	r := &orchRec{}
	bodies := ctx.Value(noBodiesKey{}) == nil
	if bodies {
		r.reqBody.limit = rec.cfg.maxBody
		r.respBody.limit = rec.cfg.maxBody
	}
	o := &r.o
	if n, ok := ctx.Value(nameKey{}).(orchName); ok {
		o.Name, o.Group = n.name, n.group
	}
	u := req.URL
	o.Request = OrchestrationRequest{
		Host:        u.Hostname(),
		Port:        u.Port(),
		Path:        u.Path,
		Querystring: redact.Query(u.RawQuery), // core shows it to console users
		Method:      req.Method,
		Headers:     rec.cfg.headers(req.Header),
		Timestamp:   start,
	}
	if o.Request.Method == "" {
		o.Request.Method = http.MethodGet
	}
	if o.Request.Port == "" {
		if u.Scheme == "https" {
			o.Request.Port = "443"
		} else {
			o.Request.Port = "80"
		}
	}
	if o.Name == "" {
		o.Name = defaultName(o.Request.Method, o.Request.Host, o.Request.Port)
	}
	teeReq := req.Body != nil && req.Body != http.NoBody && r.reqBody.limit > 0
	if cl := req.ContentLength; teeReq && cl > 0 && cl <= r.reqBody.limit {
		// Allocated before r is published: snapshot reads it under rec.mu.
		r.reqBody.b = make([]byte, 0, cl)
	}
	rec.mu.Lock()
	if rec.done {
		rec.mu.Unlock()
		return t.next.RoundTrip(req)
	}
	rec.orchs = append(rec.orchs, r)
	rec.mu.Unlock()

	out := req
	if teeReq {
		// A shallow copy with a teeing body: the caller's request is
		// not modified, and the transport still closes the body.
		r.cp = *req
		r.reqTee = teeBody{rc: req.Body, rec: rec, buf: &r.reqBody}
		r.cp.Body = &r.reqTee
		if getBody := req.GetBody; getBody != nil {
			// The transport rewinds the body with GetBody to retry on a
			// new connection: record the body sent last, not both.
			r.cp.GetBody = func() (io.ReadCloser, error) {
				b, err := getBody()
				if err != nil {
					return nil, err
				}
				rec.mu.Lock()
				r.reqBody.b, r.reqBody.total = r.reqBody.b[:0], 0
				rec.mu.Unlock()
				return &teeBody{rc: b, rec: rec, buf: &r.reqBody}, nil
			}
		}
		out = &r.cp
	}
	resp, err := t.next.RoundTrip(out)
	now := time.Now()
	if rec.cfg.observe != nil {
		rec.cfg.observe(o.Name, now.Sub(start))
	}
	if err != nil {
		rec.mu.Lock()
		// Cut as a handler error's text is: a dial, TLS or timeout error
		// may wrap a text of any length.
		o.Error = &ErrorDetails{Message: capText(err.Error(), maxErrorText)}
		rec.mu.Unlock()
		return nil, err
	}
	nested := bodies && strings.Contains(resp.Header.Get("Content-Type"), ContentType)
	rec.mu.Lock()
	o.Response = &Response{Status: resp.StatusCode, Headers: rec.cfg.headers(resp.Header), Timestamp: now}
	if nested {
		r.nested = true
		r.respBody.limit = max(r.respBody.limit, rec.cfg.budget)
	}
	teeResp := resp.Body != nil && resp.Body != http.NoBody && resp.StatusCode != http.StatusSwitchingProtocols && r.respBody.limit > 0
	if cl := resp.ContentLength; teeResp && cl > 0 && cl <= r.respBody.limit {
		r.respBody.b = make([]byte, 0, cl) // under rec.mu: r is published
	}
	rec.mu.Unlock()
	if teeResp {
		r.respTee = teeBody{rc: resp.Body, rec: rec, buf: &r.respBody}
		resp.Body = &r.respTee
	}
	return resp, nil
}

// headers flattens h for an orchestration, redacting secrets.
func (cc *compiled) headers(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		switch {
		case cc.secret(k):
			m[k] = redacted
		default:
			m[k] = joinHeader(k, v)
		}
	}
	return m
}

// redactMap replaces the values of secret headers in m, a freshly decoded
// map no one else holds (nested orchestrations).
func (cc *compiled) redactMap(m map[string]string) {
	for k := range m {
		if cc.secret(k) {
			m[k] = redacted
		}
	}
}

// teeBody copies what is read through it into a capped buffer.
type teeBody struct {
	rc  io.ReadCloser
	rec *recorder
	buf *capBuf
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.rec.mu.Lock()
		b.buf.write(p[:n])
		b.rec.mu.Unlock()
	}
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }
