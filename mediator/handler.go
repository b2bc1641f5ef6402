package mediator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cht-interop/openhim-mediator-go/mediator/internal/redact"
)

// handlerConfig is what a transaction needs from its Mediator.
type handlerConfig struct {
	urn     string
	capture *compiled
	log     *slog.Logger
	async   *asyncRunner // nil outside a Mediator
	// errorBody formats error answers; nil means {"error": message}.
	errorBody func(statusCode int, err error) (contentType string, body []byte)
}

var defaultHandlerConfig = &handlerConfig{
	capture: CaptureConfig{}.compile(),
	log:     slog.New(slog.DiscardHandler),
}

// txn is the state of one transaction, kept on its recorder.
type txn struct {
	cfg      *handlerConfig
	reqBytes int64 // request body size counted against the budget
	// reqRead counts the body bytes read of a request without a
	// Content-Length (see countingBody); atomic, as a reverse proxy's
	// transport reads the body on its own goroutine.
	reqRead atomic.Int64
	direct  bool // a HandlerFunc writes the envelope itself
	head    bool // a HEAD request: answered without an envelope (see writeHead)
	code    int  // response status written
	status  Status
	errMsg  string
	header  http.Header // the request's, for the log

	req Request       // the HandlerFunc's request, allocated with the txn
	cw  captureWriter // used by a Mediator
}

// txnState allocates a recorder and its txn together.
type txnState struct {
	rec recorder
	t   txn
}

// HandlerFunc handles a request routed by core and returns the result the
// library turns into an application/json+openhim envelope, with the
// orchestrations recorded by [Transport] during the call. A non-nil error
// answers an envelope whose status is Failed (or the 4xx of a
// [*StatusError]) and whose error.message is the error's text; a panic is
// answered the same way, with the stack in error.stack.
//
// HandlerFunc implements http.Handler; it works inside a [Mediator] (which
// fills the mediator URN and limits) and on its own.
type HandlerFunc func(r *Request) (*Result, error)

// ServeHTTP calls f and writes the envelope.
func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := recorderFrom(r.Context())
	if rec == nil || rec.txn == nil {
		rec = newRecorder(defaultHandlerConfig, r)
		r = r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec))
	}
	t := rec.txn
	t.direct = true
	req := &t.req
	req.init(r, rec, t.cfg)
	res, stack, err := callHandler(f, req)
	rec.write(w, rec.resultEnvelope(res, stack, err))
}

// resultEnvelope is the envelope of what a handler (or an async run)
// returned: its result, or a failure for its error, for a status code
// outside 200-599 and for an invalid Status.
func (rec *recorder) resultEnvelope(res *Result, stack string, err error) *Envelope {
	if err != nil {
		return rec.errorEnvelope(err, stack)
	}
	if res == nil {
		res = &Result{StatusCode: http.StatusNoContent}
	}
	if res.StatusCode != 0 && !validResponseStatus(res.StatusCode) {
		return rec.errorEnvelope(invalidStatusError(res.StatusCode), "")
	}
	env := rec.envelope(res.StatusCode, res.Header, res.Body, res.Status, res.Properties, res.Orchestrations, nil)
	if env == nil { // invalid Status
		env = rec.errorEnvelope(validateStatus(res.Status), "")
	}
	return env
}

// validResponseStatus reports whether code can be the final status of an
// answer: 200-599 (net/http panics on codes outside 100-999, and a 1xx is
// not a final answer).
func validResponseStatus(code int) bool { return code >= 200 && code <= 599 }

func invalidStatusError(code int) error {
	return fmt.Errorf("mediator: handler answered invalid HTTP status %d (want 200-599)", code)
}

func callHandler(f HandlerFunc, r *Request) (res *Result, stack string, err error) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			res, stack, err = nil, string(debug.Stack()), fmt.Errorf("mediator: handler panic: %v", v)
		}
	}()
	res, err = f(r)
	return res, "", err
}

// requestBytes is the size of the request body core stored and counts
// against the body budget: its Content-Length, or what was read of a body
// sent without one.
func (t *txn) requestBytes() int64 { return t.reqBytes + t.reqRead.Load() }

// countingBody counts into n the bytes read from a request body that came
// without a Content-Length: core forwards its client's headers
// (src/middleware/router.js constructOptionsObject), Transfer-Encoding:
// chunked among them, so such a body arrives chunked, and core counts all
// of it against the transaction's body budget.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func newRecorder(cfg *handlerConfig, r *http.Request) *recorder {
	st := &txnState{}
	st.rec.cfg, st.rec.txn, st.t.cfg = cfg.capture, &st.t, cfg
	if r != nil && r.ContentLength > 0 {
		st.t.reqBytes = r.ContentLength
	}
	st.t.head = r != nil && r.Method == http.MethodHead
	if r != nil {
		st.t.header = r.Header
	}
	return &st.rec
}

// envelope builds the normalized envelope of a transaction; nil if status
// is invalid.
func (rec *recorder) envelope(code int, h http.Header, body []byte, status Status, props map[string]any, extra []Orchestration, e *ErrorDetails) *Envelope {
	if validateStatus(status) != nil {
		return nil
	}
	orchs := rec.snapshot(true)
	orchs = append(orchs, extra...)
	now := time.Now()
	env := &Envelope{
		Status:         status,
		Response:       Response{Status: code, Headers: flatten(h), Body: string(body), Timestamp: now},
		Orchestrations: orchs,
		Properties:     props,
		Error:          e,
	}
	fitBodies(orchs, rec.txn.requestBytes()+int64(len(body)), rec.cfg.budget)
	_ = env.Normalize(rec.txn.cfg.urn, now) // status validated above
	return env
}

// errorText is err's message with the URLs of the *url.Error it wraps
// redacted (credentials and query secrets such as ?access_token=): the
// message goes to core's client, into core's stored transaction and into
// the log, and net/http's url.Error hides only a URL's password.
func errorText(err error) string {
	msg := err.Error()
	for e := err; e != nil; {
		var ue *url.Error
		if !errors.As(e, &ue) {
			break
		}
		if r := redact.URL(ue.URL); r != ue.URL {
			msg = strings.ReplaceAll(msg, ue.URL, r)
		}
		e = ue.Err
	}
	return msg
}

// errorEnvelope answers a handler error.
func (rec *recorder) errorEnvelope(err error, stack string) *Envelope {
	code := errorStatus(err)
	msg := capText(errorText(err), maxErrorText)
	var h http.Header
	var body []byte
	if f := rec.txn.cfg.errorBody; f != nil {
		ct, b := f(code, err)
		h, body = http.Header{"Content-Type": {ct}}, b
	} else {
		h, body = http.Header{"Content-Type": {"application/json"}}, errorBody(msg)
	}
	var e *ErrorDetails
	if code >= 500 || stack != "" {
		e = &ErrorDetails{Message: msg, Stack: stack}
	}
	return rec.envelope(code, h, body, "", nil, nil, e)
}

// maxErrorText bounds a handler error's text in the envelope
// (error.message and the default {"error": ...} body) and the log, and
// the error.message of an orchestration whose call failed in [Transport]:
// one error must not become a field or a log line of megabytes. It is
// twice the 4 KiB to which the cht and fhir clients cut the text of a
// server's answer, so that such a text, with the messages of the calls
// that wrap it, stays whole.
const maxErrorText = 8 << 10

// capText returns s whole when it has at most max bytes, else its start,
// cut between UTF-8 characters, and "… (N more bytes)": at most max bytes
// in all.
func capText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("… ( more bytes)") - len(strconv.Itoa(len(s)))
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (" + strconv.Itoa(len(s)-cut) + " more bytes)"
}

// errorBody is the JSON body of an error answer: {"error":"..."}.
func errorBody(msg string) []byte {
	b := append([]byte(`{"error":`), appendString(nil, msg)...)
	return append(b, '}')
}

// write sends env and remembers the outcome for metrics and logs.
func (rec *recorder) write(w http.ResponseWriter, env *Envelope) {
	t := rec.txn
	t.code, t.status = env.Response.Status, env.Status
	if env.Error != nil {
		t.errMsg = env.Error.Message
	}
	if t.head {
		writeHead(w, env)
		return
	}
	if b, n, req := rec.cfg.budget, int64(len(env.Response.Body)), t.requestBytes(); b > 0 && n > 0 && req < b && req+n > b {
		// Core stores the request, then the response cut to what the
		// budget leaves (openhim-core src/middleware/messageStore.js
		// storeTransaction and storeResponse, src/utils.js
		// enforceMaxBodiesSize): its client gets the response whole,
		// only the stored record is short. A request over the budget by
		// itself (answered 413 or 401 before it is read, usually) is cut
		// first, and the answer to it is not what went missing.
		t.cfg.log.Warn("mediator: response body is over what core's transaction body budget leaves after the stored request: core stores it truncated",
			"response_bytes", n, "request_bytes", req, "budget", b, "transaction_id", t.header.Get(HeaderTransactionID))
	}
	if err := WriteEnvelope(w, env); err != nil {
		t.cfg.log.Warn("mediator: write envelope", "error", err)
	}
}

// writeHead answers a HEAD request with env's status and headers and no
// envelope. net/http sends no body with a HEAD answer, and core, finding
// application/json+openhim without a body, could not parse it and answered
// its client 500 (openhim-core src/middleware/router.js); a plain answer
// core passes on as it is, without orchestrations.
func writeHead(w http.ResponseWriter, env *Envelope) {
	h := w.Header()
	for k, v := range env.Response.Headers {
		h[http.CanonicalHeaderKey(k)] = splitHeader(k, v)
	}
	w.WriteHeader(env.Response.Status)
}

// flatten turns headers into an envelope's string map (never nil).
func flatten(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		m[k] = joinHeader(k, v)
	}
	return m
}

// joinHeader is the envelope's one string for the values v of header k:
// joined with ", ", except Set-Cookie's, one cookie per line (see
// [Response]).
func joinHeader(k string, v []string) string {
	if len(v) == 1 {
		return v[0]
	}
	if isSetCookie(k) {
		return strings.Join(v, "\n")
	}
	return strings.Join(v, ", ")
}

// splitHeader is the values of header k that joinHeader joined into v:
// v, or Set-Cookie's cookies, one per line.
func splitHeader(k, v string) []string {
	if isSetCookie(k) {
		return strings.Split(v, "\n")
	}
	return []string{v}
}

// isSetCookie reports whether k names the Set-Cookie header.
func isSetCookie(k string) bool { return strings.EqualFold(k, "Set-Cookie") }

// captureWriter buffers what a plain http.Handler writes so that it can be
// answered as an envelope. When a HandlerFunc writes the envelope itself,
// it passes writes straight through.
type captureWriter struct {
	w    http.ResponseWriter
	rec  *recorder
	h    http.Header
	code int
	bad  int // first invalid status the handler wrote, 0 if none
	buf  bytes.Buffer
	over bool // the handler wrote more than the body budget
}

// errResponseTooLarge is what a plain handler's Write returns past the
// body budget: the rest is not buffered, and the answer is a 502.
var errResponseTooLarge = errors.New("mediator: response body exceeds the transaction body budget")

func (c *captureWriter) Header() http.Header {
	if c.rec.txn.direct {
		return c.w.Header()
	}
	if c.h == nil {
		c.h = make(http.Header)
	}
	return c.h
}

func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 && c.bad == 0 && (code < 100 || code > 599) {
		// Answered as a Failed envelope by finish, instead of the
		// panic of the underlying writer.
		c.bad = code
		return
	}
	if c.code == 0 && code >= 200 {
		c.code = code
	}
	if c.rec.txn.direct {
		c.w.WriteHeader(code)
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	if c.rec.txn.direct {
		return c.w.Write(p)
	}
	if c.rec.txn.head {
		// A HEAD answer has no body (writeHead): eaten, as net/http's own
		// writer eats it, so that neither its size nor its bytes fail it.
		return len(p), nil
	}
	if b := c.rec.cfg.budget; c.over || (b > 0 && int64(c.buf.Len())+int64(len(p)) > b) {
		// Buffered whole for the envelope: past the budget, refuse the
		// rest rather than hold any size in memory.
		c.over = true
		return 0, errResponseTooLarge
	}
	return c.buf.Write(p)
}

// Flush implements http.Flusher: it flushes when a HandlerFunc writes the
// envelope itself and does nothing while the answer is buffered (it can't
// be sent before it is wrapped in the envelope).
func (c *captureWriter) Flush() { _ = c.FlushError() }

// FlushError is Flush for http.ResponseController.
func (c *captureWriter) FlushError() error {
	if c.rec.txn.direct {
		return http.NewResponseController(c.w).Flush()
	}
	return nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.w }

// finish answers what a plain handler wrote as an envelope (or as is, if
// it wrote an application/json+openhim body itself).
func (c *captureWriter) finish() {
	t := c.rec.txn
	if t.direct {
		return
	}
	if c.bad != 0 {
		c.rec.write(c.w, c.rec.errorEnvelope(invalidStatusError(c.bad), ""))
		return
	}
	code := c.code
	if code == 0 {
		code = http.StatusOK
	}
	if c.over {
		c.rec.write(c.w, c.rec.errorEnvelope(&StatusError{StatusCode: http.StatusBadGateway,
			Err: fmt.Errorf("mediator: handler answered %d with a body over the transaction body budget of %d bytes (Capture.BodyBudget)", code, c.rec.cfg.budget)}, ""))
		return
	}
	if t.head && strings.Contains(c.h.Get("Content-Type"), ContentType) {
		c.h.Del("Content-Type") // a nested mediator's HEAD answer: no envelope either
	}
	if strings.Contains(c.h.Get("Content-Type"), ContentType) {
		// The handler wrote its own envelope: add the orchestrations
		// recorded through Transport meanwhile. A body that doesn't
		// parse passes through as written.
		body := c.buf.Bytes()
		env, err := ParseEnvelope(body)
		if err == nil {
			if c.rec.relayed(body) {
				// A proxied nested mediator's answer: the recorded call
				// merges its orchestrations (grouped under the call,
				// headers redacted); keep them once.
				env.Orchestrations = nil
			}
			if orchs := c.rec.snapshot(true); len(orchs) > 0 {
				fitBodies(orchs, t.requestBytes()+int64(len(env.Response.Body)), c.rec.cfg.budget)
				env.Orchestrations = append(env.Orchestrations, orchs...)
			}
			if env.Normalize(t.cfg.urn, time.Now()) == nil {
				body = env.appendJSON(nil)
				c.h.Del("Content-Length")
			}
		}
		dst := c.w.Header()
		for k, v := range c.h {
			dst[k] = v
		}
		c.w.WriteHeader(outerStatus(code))
		_, _ = c.w.Write(body)
		t.code = code
		if err == nil {
			t.status = env.Status
			if env.Error != nil {
				t.errMsg = env.Error.Message
			}
		}
		return
	}
	if !utf8.Valid(c.buf.Bytes()) {
		// An envelope body is a JSON string: invalid bytes would become
		// U+FFFD and a compressed or binary answer would reach core's
		// client corrupted, as a success.
		c.rec.write(c.w, c.rec.errorEnvelope(notTextError(code, c.h), ""))
		return
	}
	env := c.rec.envelope(code, c.h, c.buf.Bytes(), "", nil, nil, nil)
	c.rec.write(c.w, env)
}

// notTextError is the 502 of a plain handler whose answer is not UTF-8
// text, which an envelope cannot carry. It names the status the handler
// answered: the work behind it may have been done.
func notTextError(code int, h http.Header) error {
	msg := fmt.Sprintf("mediator: handler answered %d with a body that is not UTF-8 text, which an OpenHIM envelope cannot carry", code)
	if ce := h.Get("Content-Encoding"); ce != "" {
		msg += fmt.Sprintf(" (Content-Encoding %q: do not forward Accept-Encoding upstream)", ce)
	}
	return &StatusError{StatusCode: http.StatusBadGateway, Err: errors.New(msg)}
}
