package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/decodehook"
)

// Payload is one push received from CHT's outbound feature. CHT
// sends whatever the push's mapping produces, so the payload is kept as
// raw JSON (decode other shapes from Body); the handler also recognises
// the two common shapes:
//
//   - the whole document, mapped as {"doc": "doc"} (or sent as the body
//     itself), which fills Doc;
//   - a reference such as {"id": "doc._id", "rev": "doc._rev"}, which
//     fills ID and Rev, and Doc when the handler has a Fetch function.
type Payload struct {
	// Body is the request body as received. Body and Doc share memory with
	// the decoded document's Extra values: treat them as read-only.
	Body json.RawMessage
	// Doc is the CHT document when the payload carries or references one
	// (hydrated when CHT sent it: outbound evaluates hydrated docs).
	Doc json.RawMessage
	// ID and Rev identify the document, from "_id"/"_rev" or "id"/"rev"
	// of the body or of Doc; "" when unknown.
	ID, Rev string
	// RequestID is CHT's X-Request-Id header, if any.
	RequestID string
	// Header is the request header without Authorization,
	// Proxy-Authorization and Cookie.
	Header http.Header

	view docView // Doc decoded; nil until first needed
}

// docView is what package cht's decoder gives for a document.
type docView interface {
	DocType() string
	Contact() (*cht.Contact, error)
	Report() (*cht.Report, error)
}

// decoded returns Doc decoded, decoding it on first use.
func (p *Payload) decoded() (docView, error) {
	if len(p.Doc) == 0 {
		return nil, errors.New("cht: outbound payload carries no document")
	}
	if p.view == nil {
		v, err := decodehook.DecodeDoc(p.Doc)
		if err != nil {
			return nil, fmt.Errorf("cht: outbound document %q: %w", p.ID, err)
		}
		p.view = v.(docView)
	}
	return p.view, nil
}

// DocType returns Doc's type member, or "" without Doc.
func (p *Payload) DocType() string {
	dd, err := p.decoded()
	if err != nil {
		return ""
	}
	return dd.DocType()
}

// Contact returns Doc as a contact. It fails when there is no Doc. The
// document is decoded once per payload (when the push arrived, or on first
// use after Fetch): every call returns the same value, so changes made to
// it are seen by later calls. On a *DecodeError for a member the contact
// is returned too (see [cht.DecodeError]).
func (p *Payload) Contact() (*cht.Contact, error) {
	dd, err := p.decoded()
	if err != nil {
		return nil, err
	}
	c, err := dd.Contact()
	if err != nil {
		return c, fmt.Errorf("cht: outbound document %q: %w", p.ID, err)
	}
	return c, nil
}

// Report returns Doc as a report, decoded once like [Payload.Contact].
func (p *Payload) Report() (*cht.Report, error) {
	dd, err := p.decoded()
	if err != nil {
		return nil, err
	}
	r, err := dd.Report()
	if err != nil {
		return r, fmt.Errorf("cht: outbound document %q: %w", p.ID, err)
	}
	return r, nil
}

// Error lets the handler function choose the status code of a
// failure. Any status is a failure to CHT, which retries the push about
// every 5 minutes until it gets a 2xx; the code only informs people reading
// CHT's logs. Plain errors answer 500.
type Error struct {
	StatusCode int // 4xx or 5xx; anything else means 500
	Err        error
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("cht: outbound: %d: %v", e.StatusCode, e.Err)
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// HandlerConfig configures a [Handler].
type HandlerConfig struct {
	// Handle processes one push. It must return nil only once the data is
	// durably stored or queued: the handler then answers 2xx and CHT never
	// sends this payload again. Any error makes CHT retry. Handle must be
	// idempotent (the same payload can arrive again) and honour ctx,
	// which is cancelled at the deadline. Required.
	Handle func(ctx context.Context, p *Payload) error
	// Fetch, if set, loads the current document for payloads that only
	// reference one (an id without a doc), e.g. [HydrateFetcher].
	// A Fetch error fails the push (503), so CHT retries.
	Fetch func(ctx context.Context, id string) (json.RawMessage, error)
	// DocKey is the payload member holding the whole document; "" means
	// "doc". A body with "_id" and "type" members is itself taken as the
	// document.
	DocKey string
	// Timeout is the deadline for Fetch plus Handle; the handler answers
	// 503 when it passes. CHT gives up after 10 s, so keep it below that.
	// 0 means 8s.
	Timeout time.Duration
	// MaxBodyBytes limits the request body (413 beyond); 0 means 4 MiB.
	MaxBodyBytes int64
	// Logger logs failures; nil discards.
	Logger *slog.Logger
}

// Handler is an http.Handler receiving CHT outbound pushes. It
// answers by CHT's rules (cht-api.md §4.3-4.5):
//
//   - 200 with the JSON body {"ok":true} only after Handle succeeded (CHT
//     4.17+ fails a 2xx push whose JSON body does not parse);
//   - 503 when Fetch fails or the deadline passes, 500 (or the
//     [Error] status) when Handle fails, so that CHT retries;
//   - 405 for methods other than POST, 415 for a content type other than
//     application/json or a Content-Encoding other than identity (a
//     compressed body is not decoded), 413 for a body over the limit, 400
//     naming the problem for an empty or malformed body.
//
// Each push is handled on a goroutine of the handler's, so that the
// handler can answer at the deadline while Handle goes on; these
// goroutines are reused from push to push and end when no push comes for
// a moment, or on [Handler.Wait].
//
// Error bodies are JSON {"ok":false,"error":"..."}. The handler does not
// authenticate the caller: put it behind an OpenHIM channel (which checks
// CHT's basic credentials) or wrap it. It is safe for concurrent use.
type Handler struct {
	cfg     HandlerConfig
	log     *slog.Logger
	wg      sync.WaitGroup // pushes being handled, also after their deadline
	workers *workers       // the goroutines that handle pushes
}

// NewHandler validates cfg and returns a handler.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Handle == nil {
		return nil, errors.New("cht: outbound handler: Handle is required")
	}
	if cfg.Timeout < 0 || cfg.MaxBodyBytes < 0 {
		return nil, errors.New("cht: outbound handler: Timeout and MaxBodyBytes must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 8 * time.Second
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.DocKey == "" {
		cfg.DocKey = "doc"
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, workers: newWorkers(workerIdle)}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// Wait blocks until Handle calls that outlived their deadline have
// returned, and the goroutines that wait for the next push have ended;
// call it on shutdown. (Those goroutines also end on their own when no
// push comes for a moment.)
func (h *Handler) Wait() {
	h.wg.Wait()
	h.workers.stop()
}

func writeOutbound(w http.ResponseWriter, status int, msg string) {
	// Both values in one allocation; full slice expressions keep an
	// append to one from writing over the other.
	v := []string{"application/json", "no-store"}
	hdr := w.Header()
	hdr["Content-Type"] = v[0:1:1]
	hdr["Cache-Control"] = v[1:2:2]
	w.WriteHeader(status)
	if status < 300 {
		_, _ = io.WriteString(w, `{"ok":true}`+"\n")
		return
	}
	b, _ := json.Marshal(map[string]any{"ok": false, "error": msg})
	_, _ = w.Write(append(b, '\n'))
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOutbound(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; CHT outbound pushes use POST")
		return
	}
	if !mediaTypeIs(r.Header, "application/json") {
		writeOutbound(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not application/json", r.Header.Get("Content-Type")))
		return
	}
	if err := checkContentEncoding(r.Header); err != nil {
		writeOutbound(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	body, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeOutbound(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", mbe.Limit))
			return
		}
		writeOutbound(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	pp, err := decodehook.ParsePush(body, h.cfg.DocKey)
	if err != nil {
		writeOutbound(w, http.StatusBadRequest, err.Error())
		return
	}
	p := &Payload{Body: body, Doc: pp.Doc, ID: pp.ID, Rev: pp.Rev}
	if pp.View != nil {
		p.view = pp.View.(docView)
	}
	p.RequestID = r.Header.Get("X-Request-Id")
	p.Header = headerWithoutSecrets(r.Header)

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	j := jobs.Get().(*job)
	j.h, j.ctx, j.p = h, ctx, p
	h.wg.Add(1)
	h.workers.start(j)
	finished, err := await(ctx, j.done)
	if !finished {
		// The worker may still be using j: leave it to the collector.
		// Answer before CHT's own timeout; the push will be retried.
		h.log.WarnContext(ctx, "cht: outbound push not handled in time", "id", p.ID, "timeout", h.cfg.Timeout, "request_id", p.RequestID)
		writeOutbound(w, http.StatusServiceUnavailable, "not processed within "+h.cfg.Timeout.String())
		return
	}
	// The worker is done with j.
	*j = job{done: j.done}
	jobs.Put(j)
	if err == nil {
		writeOutbound(w, http.StatusOK, "")
		return
	}
	status := http.StatusInternalServerError
	var oe *Error
	var fe *fetchError
	switch {
	case errors.As(err, &fe):
		status = http.StatusServiceUnavailable
	case errors.As(err, &oe) && oe.StatusCode >= 400 && oe.StatusCode <= 599:
		status = oe.StatusCode
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	h.log.ErrorContext(ctx, "cht: outbound push failed", "id", p.ID, "status", status, "err", err, "request_id", p.RequestID)
	writeOutbound(w, status, err.Error())
}

// await waits for a job's result until ctx is done. A result that is there
// when the deadline has passed too stands (finished is true), so that work
// that was done is not answered 503.
func await(ctx context.Context, done <-chan error) (finished bool, err error) {
	select {
	case err = <-done:
		return true, err
	case <-ctx.Done():
		select {
		case err = <-done:
			return true, err
		default:
			return false, nil
		}
	}
}

type fetchError struct{ err error }

func (e *fetchError) Error() string { return "fetch document: " + e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// run fetches the document if needed and calls Handle, turning a panic
// into an error.
func (h *Handler) run(ctx context.Context, p *Payload) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("cht: outbound handler panic: %v", v)
		}
	}()
	if len(p.Doc) == 0 && p.ID != "" && h.cfg.Fetch != nil {
		doc, err := h.cfg.Fetch(ctx, p.ID)
		if err != nil {
			return &fetchError{err}
		}
		p.Doc = doc
	}
	return h.cfg.Handle(ctx, p)
}

// HydrateFetcher returns a Fetch function for [HandlerConfig] that loads
// the current hydrated document with [cht.Client.Hydrate]. A missing
// document is an error matching [cht.ErrNotFound].
//
// It asks for one id, which CHT's /api/v1/hydrate answers with lineage
// fetchHydratedDoc, as the real-time push loads its doc: a document
// without lineage (a report without a form, a doc whose type is not a
// contact type) comes back as stored, its contact a minified stub.
// Sentinel's retries hydrate with hydrateDocs instead, which hydrates
// those too. A report pushed by the records API or SMS before it was saved
// is not found until the save (docs/cht-outbound.md).
func HydrateFetcher(c *cht.Client) func(ctx context.Context, id string) (json.RawMessage, error) {
	return func(ctx context.Context, id string) (json.RawMessage, error) {
		res, err := c.Hydrate(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(res.Docs) == 0 {
			return nil, fmt.Errorf("cht: hydrate %q: %w", id, cht.ErrNotFound)
		}
		return res.Docs[0].Doc, nil
	}
}

// mediaTypeIs reports whether the Content-Type header has media type mt.
func mediaTypeIs(h http.Header, mt string) bool {
	ct := h.Get("Content-Type")
	if ct == mt { // what CHT sends: no need to parse it
		return true
	}
	got, _, err := mime.ParseMediaType(ct)
	return err == nil && strings.EqualFold(got, mt)
}

// maxQuotedCoding bounds the header value repeated in the error of
// checkContentEncoding.
const maxQuotedCoding = 100

// checkContentEncoding returns nil when h declares a body sent as it is: no
// Content-Encoding, or only the coding identity, in any case and with
// spaces around it (RFC 9110 §8.4: codings are case-insensitive, a list
// separated by commas). Any other coding (gzip, deflate, br, ...) is an
// error naming the header and its value, answered 415 before the body is
// read: the handler does not decode bodies, and the encoded bytes read as
// JSON would only give a misleading "malformed" answer. CHT sends none
// (shared-libs/outbound/src/outbound.js, sendPayload). It is the check of
// fhir/internal/contentcoding, which cht may not import.
func checkContentEncoding(h http.Header) error {
	vv := h.Values("Content-Encoding")
	for _, v := range vv {
		for c := range strings.SplitSeq(v, ",") {
			c = strings.Trim(c, " \t")
			if c != "" && !strings.EqualFold(c, "identity") {
				q := strings.Join(vv, ", ")
				if len(q) > maxQuotedCoding {
					q = q[:maxQuotedCoding] + "..."
				}
				return fmt.Errorf("request header Content-Encoding %q is not supported: send the body unencoded (no Content-Encoding, or identity)", q)
			}
		}
	}
	return nil
}

// presizeMax is the most readBody allocates before the bytes arrive: a
// client that declares a large body and sends little costs no more.
const presizeMax = 1 << 20

// readBody reads the request body, at most limit bytes (an
// *http.MaxBytesError beyond), into a buffer sized by Content-Length when
// the client sent one of at most presizeMax.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	size := int64(512)
	if n := r.ContentLength; n > 0 && n <= limit && n <= presizeMax {
		size = n + 1 // room to read EOF without growing
	}
	b := make([]byte, 0, size)
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// headerWithoutSecrets copies h, as h.Clone does, without Authorization,
// Proxy-Authorization and Cookie: credentials are never handed on to be
// logged.
func headerWithoutSecrets(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	nv, nk := 0, 0
	for k, vv := range h {
		if secretHeader(k) {
			continue
		}
		nv += len(vv)
		nk++
	}
	sv := make([]string, nv)
	out := make(http.Header, nk)
	for k, vv := range h {
		if secretHeader(k) {
			continue
		}
		if vv == nil {
			out[k] = nil // as Clone: nil and empty values differ for some
			continue
		}
		n := copy(sv, vv)
		out[k] = sv[:n:n]
		sv = sv[n:]
	}
	return out
}

// secretHeader reports whether the header k (canonical, as a server
// gives it) carries credentials.
func secretHeader(k string) bool {
	return k == "Authorization" || k == "Proxy-Authorization" || k == "Cookie"
}

// jobs recycles the jobs of pushes answered in time.
var jobs = sync.Pool{New: func() any { return &job{done: make(chan error, 1)} }}
