package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/contentcoding"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
)

// Paths served by [Handler].
const (
	// OutboundPath receives CHT outbound pushes.
	OutboundPath = "/cht/outbound"
	// EncounterPath receives the cht-interoperability encounter payload.
	EncounterPath = "/cht/encounter"
)

// DefaultTimeout is the deadline of one push: CHT gives up after 10 s.
const DefaultTimeout = 8 * time.Second

// maxEncounterBody bounds an encounter payload when nothing else does (a
// mediator limits bodies before the handler).
const maxEncounterBody = 32 << 20

// Config configures a [Handler].
type Config struct {
	// Converter converts CHT documents to FHIR. Required.
	Converter *fhir.Converter
	// FHIR writes the transactions. Required.
	FHIR *fhir.Client
	// CHT, when set, hydrates documents that arrive without their
	// lineage, patient or place, and resolves pushes that only name a
	// document.
	CHT *cht.Client
	// SkipUnmappedForms answers 200 (and logs the reason) to reports whose
	// form has no mapping. By default they are answered 422, so a missing
	// mapping is noticed instead of silently dropping data.
	SkipUnmappedForms bool
	// Timeout is the deadline of one push; 0 means DefaultTimeout.
	Timeout time.Duration
	// Orchestrate, when set, names each outgoing call in its context
	// ("CHT hydrate", "FHIR transaction"). A mediator passes
	// mediator.WithOrchestration so that OpenHIM shows the calls by name.
	Orchestrate func(ctx context.Context, name string) context.Context
	// Logger receives a line per failed or skipped push and a WARN line
	// per conversion warning (naming the document and field); nil
	// discards.
	Logger *slog.Logger
}

// Handler converts CHT pushes to FHIR transactions and serves
// [OutboundPath] and [EncounterPath]. It is safe for concurrent use.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	outbound *outbound.Handler
	// docs lets one push of a document at a time write it; the handlers
	// a Pending serves with one after another share it.
	docs *docLocks
	// fetch loads the hydrated document a push only names ({"id"});
	// nil without Config.CHT.
	fetch func(ctx context.Context, id string) (json.RawMessage, error)
}

// New returns a Handler for cfg. It does no I/O.
func New(cfg Config) (*Handler, error) { return newHandler(cfg, new(docLocks)) }

// newHandler is New with the document locks docs.
func newHandler(cfg Config, docs *docLocks) (*Handler, error) {
	if cfg.Converter == nil {
		return nil, errors.New("push: Converter is required")
	}
	if cfg.FHIR == nil {
		return nil, errors.New("push: FHIR client is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Orchestrate == nil {
		cfg.Orchestrate = func(ctx context.Context, _ string) context.Context { return ctx }
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, docs: docs}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if cfg.CHT != nil {
		// Push fetches a document a push only names once it has the
		// document's turn (see Push), not the outbound handler before.
		hydrate := outbound.HydrateFetcher(cfg.CHT)
		h.fetch = func(ctx context.Context, id string) (json.RawMessage, error) {
			return hydrate(cfg.Orchestrate(ctx, "CHT hydrate"), id)
		}
	}
	var err error
	h.outbound, err = outbound.NewHandler(outbound.HandlerConfig{
		Handle: func(ctx context.Context, p *outbound.Payload) error {
			return outboundError(h.Push(ctx, p))
		},
		Timeout: cfg.Timeout,
		Logger:  h.log,
	})
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	h.mux = http.NewServeMux()
	h.mux.Handle("POST "+OutboundPath, h.outbound)
	h.mux.HandleFunc("POST "+EncounterPath, h.serveEncounter)
	return h, nil
}

// ServeHTTP serves POST [OutboundPath] and POST [EncounterPath]. A push
// written with conversion warnings (values of lenient fields left out, a
// follow-up's Task or ServiceRequest gone from the FHIR server, see
// fhir.Transaction.Warnings) is answered {"ok":true,"warnings":[...]},
// each warning {"doc","field","reason"}: inside a mediator this body is the
// OpenHIM transaction's response, so the warnings show there.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != OutboundPath {
		h.mux.ServeHTTP(w, r)
		return
	}
	pr := &pushRequest{Context: r.Context()}
	pr.answer.w = w
	h.mux.ServeHTTP(&pr.answer, r.WithContext(pr))
	pr.answer.finish(pr.warnings.snapshot())
}

// pushRequest is the state of one push request, allocated together: its
// context, which carries its warnings, and its held back answer.
type pushRequest struct {
	context.Context
	warnings warnings
	answer   answer
}

// Value returns the request's warnings for warningsKey, and otherwise the
// value of the request's context.
func (pr *pushRequest) Value(key any) any {
	if _, ok := key.(warningsKey); ok {
		return &pr.warnings
	}
	return pr.Context.Value(key)
}

// warning is a conversion warning as answered to the push.
type warning struct {
	Doc    string `json:"doc,omitempty"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// warnings collects the warnings of one push request.
type warnings struct {
	mu   sync.Mutex
	list []warning
}

type warningsKey struct{}

func (ws *warnings) snapshot() []warning {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.list)
}

// warn logs the warnings of a written push, one WARN line each naming the
// field (not the value, which may be personal data), and adds them to the
// answer of the request ctx belongs to.
func (h *Handler) warn(ctx context.Context, docID string, list []*fhir.ConversionError) {
	if len(list) == 0 {
		return
	}
	ws, _ := ctx.Value(warningsKey{}).(*warnings)
	for _, e := range list {
		doc := e.DocID
		if doc == "" {
			doc = docID
		}
		h.log.WarnContext(ctx, "push written with a warning", "doc", doc, "field", e.Field, "reason", e.Reason)
		if ws != nil {
			ws.mu.Lock()
			ws.list = append(ws.list, warning{Doc: doc, Field: e.Field, Reason: e.Reason})
			ws.mu.Unlock()
		}
	}
}

// answer holds back the outbound handler's answer so that a successful
// one can carry the push's warnings. Its bodies are a few bytes.
type answer struct {
	w      http.ResponseWriter
	status int
	body   []byte
	small  [64]byte // body's first memory
}

func (a *answer) Header() http.Header { return a.w.Header() }

func (a *answer) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *answer) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if a.body == nil {
		a.body = a.small[:0]
	}
	a.body = append(a.body, b...)
	return len(b), nil
}

// finish writes the answer, with the warnings added to a 2xx JSON object.
func (a *answer) finish(list []warning) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	body := a.body
	if len(list) > 0 && a.status < 300 {
		var m map[string]any
		if json.Unmarshal(body, &m) == nil && m != nil {
			m["warnings"] = list
			if b, err := json.Marshal(m); err == nil {
				body = append(b, '\n')
			}
		}
	}
	a.w.Header().Del("Content-Length")
	a.w.WriteHeader(a.status)
	_, _ = a.w.Write(body)
}

// Push converts one outbound push and writes it to the FHIR server. It
// returns nil only once the FHIR server committed the transaction. A
// failure of the FHIR server is returned as (or wrapping) a
// *fhir.ServerError, a document that cannot be converted as a
// *fhir.ConversionError.
//
// Pushes of one document are converted and written one at a time, so
// that a version's transaction reaches the FHIR server after the previous
// version's was answered. A transaction in flight when ctx ends (the push
// was answered 503) still gets its answer, within the FHIR client's
// timeout of an attempt, and is not retried: the server may commit it
// after the deadline, and a newer version written before that commit
// would be overwritten by the older one, which CHT would not send again.
// A push that is still waiting for an earlier push of its document when
// ctx ends converts and writes nothing. A push that only names its
// document ({"id": ...}) fetches it from CHT (with Config.CHT) once it has
// its turn, so that it reads the version after the earlier push's; a
// failed fetch is answered 503.
func (h *Handler) Push(ctx context.Context, p *outbound.Payload) error {
	dl, err := h.docs.lock(ctx, p.ID)
	if err != nil {
		h.log.WarnContext(ctx, "push not written: an earlier push of the document was still being written at the deadline; CHT will retry",
			"doc", p.ID, "err", err)
		return fmt.Errorf("push: %s: an earlier push of the document is still being written: %w", p.ID, err)
	}
	defer h.docs.unlock(p.ID, dl)
	if len(p.Doc) == 0 && p.ID != "" && h.fetch != nil {
		if p.Doc, err = h.fetch(ctx, p.ID); err != nil {
			return &failure{status: http.StatusServiceUnavailable, err: fmt.Errorf("fetch document: %w", err)}
		}
	}
	tx, err := h.convert(ctx, p)
	if err != nil {
		if errors.Is(err, fhir.ErrUnmappedForm) && h.cfg.SkipUnmappedForms {
			h.log.InfoContext(ctx, "skipped push of an unmapped form", "doc", p.ID, "reason", err)
			return nil
		}
		return err
	}
	buf := getBundleBuf()
	body, err := direct.AppendTransaction(buf.bytes(), tx)
	if err != nil {
		buf.put(body)
		return fmt.Errorf("push: encode transaction for %s: %w", p.ID, err)
	}
	n, warnings := tx.Len(), tx.Warnings
	direct.Release(tx) // written: nothing reads tx any more
	if err := h.writeInTurn(ctx, p.ID, body, n, buf); err != nil {
		h.log.WarnContext(ctx, "push not written to FHIR; CHT will retry", "doc", p.ID, "err", err)
		return err
	}
	h.warn(ctx, p.ID, warnings)
	return nil
}

// writeInTurn writes body, the transaction Bundle of n entries of the
// document id, for a push that holds the document's lock, unless ctx has
// ended: a push past its deadline starts no write. A write it starts runs
// on to the server's answer (within the FHIR client's timeout of an
// attempt) should ctx end meanwhile, and is not retried after that, so
// that the next push of the document writes after it (see Push). buf, the
// buffer of body, is given back once nothing reads body any more.
func (h *Handler) writeInTurn(ctx context.Context, id string, body []byte, n int, buf *bundleBuf) error {
	if err := ctx.Err(); err != nil {
		buf.put(body)
		return fmt.Errorf("push: %s: %w", id, err)
	}
	if err := h.write(direct.Outlive(ctx), body, n, buf.hold(body)); err != nil {
		return err
	}
	if ctx.Err() != nil {
		h.log.InfoContext(ctx, "push written to FHIR after its deadline; it was answered as failed and will be sent again", "doc", id)
	}
	return nil
}

// write posts one transaction Bundle of n entries. done runs once nothing
// reads bundle any more (possibly after write returned, see
// direct.PostTransaction); it gives the bundle's buffer back.
func (h *Handler) write(ctx context.Context, bundle []byte, n int, done func()) error {
	if err := direct.PostTransaction(h.cfg.FHIR, h.cfg.Orchestrate(ctx, "FHIR transaction"), bundle, n, done); err != nil {
		return &failure{status: upstreamStatus(err), err: err}
	}
	return nil
}

// convert turns the payload into a transaction, hydrating what is missing.
// A document whose only faults are member errors the conversion handles
// (see direct.Usable: a phone stored as a number, a NUL in a note) is
// converted; refused at decoding, it would never reach FHIR: CHT resends
// the same document forever.
func (h *Handler) convert(ctx context.Context, p *outbound.Payload) (*fhir.Transaction, error) {
	if len(p.Doc) == 0 {
		return nil, &failure{status: http.StatusBadRequest,
			err: errors.New("payload carries no document: map the push as {\"doc\": \"doc\"} or configure CHT access to resolve {\"id\": ...}")}
	}
	if p.DocType() == "data_record" {
		r, err := p.Report()
		if err = direct.Usable(err, true); err != nil {
			return nil, &failure{status: http.StatusBadRequest, err: err}
		}
		if needsHydration(r) && h.cfg.CHT != nil && r.ID != "" {
			hr, err := h.hydrate(ctx, r.ID)
			if err != nil {
				return nil, err
			}
			if hr != nil {
				r, err = hr.Report()
				if err = direct.Usable(err, true); err != nil {
					return nil, &failure{status: http.StatusBadGateway, err: err}
				}
			}
		}
		// ReportBundle, with the Observations written when the
		// transaction is encoded rather than built as samply values.
		t, err := direct.ReportTransaction(h.cfg.Converter, r)
		if err != nil {
			return nil, &failure{status: http.StatusUnprocessableEntity, err: err}
		}
		tx := t.(*fhir.Transaction)
		// A follow-up report closes its referral in the same transaction
		// (fhir.Converter.CloseReferral; nothing for other forms).
		if err := h.cfg.Converter.CloseReferral(ctx, tx, r, reader{h}); err != nil {
			var ce *fhir.ConversionError
			if errors.As(err, &ce) {
				return nil, &failure{status: http.StatusUnprocessableEntity, err: err}
			}
			return nil, &failure{status: upstreamStatus(err), err: err}
		}
		// An edited report withdraws, in the same transaction, the
		// Observations of fields the edit emptied.
		if err := direct.WithdrawStale(h.cfg.Converter, ctx, tx, r, searcher{h}); err != nil {
			return nil, &failure{status: upstreamStatus(err), err: err}
		}
		return tx, nil
	}
	c, err := p.Contact()
	if err = direct.Usable(err, false); err != nil {
		return nil, &failure{status: http.StatusBadRequest, err: err}
	}
	if c.Parent != nil && c.Parent.Doc == nil && h.cfg.CHT != nil && c.ID != "" {
		hc, err := h.hydrate(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		if hc != nil {
			c, err = hc.Contact()
			if err = direct.Usable(err, false); err != nil {
				return nil, &failure{status: http.StatusBadGateway, err: err}
			}
		}
	}
	// ContactBundle, with the resources written when the transaction is
	// encoded rather than built as samply values.
	t, err := direct.ContactTransaction(h.cfg.Converter, c)
	if err != nil {
		return nil, &failure{status: http.StatusUnprocessableEntity, err: err}
	}
	return t.(*fhir.Transaction), nil
}

// searcher searches the FHIR server, naming each call "FHIR search <type>".
type searcher struct{ h *Handler }

func (s searcher) Search(ctx context.Context, typ string, q url.Values, out any) error {
	return s.h.cfg.FHIR.Search(s.h.cfg.Orchestrate(ctx, "FHIR search "+typ), typ, q, out)
}

// reader reads from the FHIR server, naming each call "FHIR read <type>".
type reader struct{ h *Handler }

func (r reader) Read(ctx context.Context, typ, id string, out any) error {
	return r.h.cfg.FHIR.Read(r.h.cfg.Orchestrate(ctx, "FHIR read "+typ), typ, id, out)
}

// needsHydration reports whether a report arrived as stored, without the
// documents the converter links to (submitting CHW, patient, place). CHT
// hydrates them in one pass (cht-core shared-libs/lineage/src/hydration.js
// hydrateDocs, mergeLineagesIntoDoc): a report with any of them hydrated is
// as complete as CHT can make it, even without a patient (its subject is a
// place, or a shortcode no contact has), and hydrating it again would only
// make the push depend on CHT's API.
func needsHydration(r *cht.Report) bool {
	if r.Patient != nil || r.Place != nil || r.Contact.Hydrated() {
		return false
	}
	_, _, subject := r.Subject()
	return subject || (r.Contact != nil && r.Contact.ID != "")
}

// hydrate fetches the hydrated document id; nil when CHT does not know it
// (the pushed copy is then converted as it is).
func (h *Handler) hydrate(ctx context.Context, id string) (*cht.HydratedDoc, error) {
	res, err := h.cfg.CHT.Hydrate(h.cfg.Orchestrate(ctx, "CHT hydrate"), id)
	if err != nil {
		return nil, &failure{status: upstreamStatus(err), err: fmt.Errorf("hydrate %s: %w", id, err)}
	}
	if len(res.Docs) == 0 {
		return nil, nil
	}
	return &res.Docs[0], nil
}

// failure is an error with the HTTP status it is answered with; the cause
// (a *fhir.ServerError, a *fhir.ConversionError...) stays reachable with
// errors.As.
type failure struct {
	status int
	err    error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// upstreamStatus is the status for a failed call to the FHIR server or
// CHT: 504 when it did not answer in time, else 502.
func upstreamStatus(err error) int {
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// statusOf is the HTTP status for an error of Push.
func statusOf(err error) int {
	var f *failure
	if errors.As(err, &f) {
		return f.status
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// outboundError gives CHT's outbound handler the status of err.
func outboundError(err error) error {
	if err == nil {
		return nil
	}
	return &outbound.Error{StatusCode: statusOf(err), Err: err}
}

// serveEncounter handles the cht-interoperability style payload.
func (h *Handler) serveEncounter(w http.ResponseWriter, r *http.Request) {
	if !jsonMediaType(r.Header.Get("Content-Type")) {
		writeJSON(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: send application/json", r.Header.Get("Content-Type")))
		return
	}
	if err := contentcoding.Check(r.Header); err != nil {
		writeJSON(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	payload, err := readBody(http.MaxBytesReader(w, r.Body, maxEncounterBody), r.ContentLength, maxEncounterBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit))
			return
		}
		writeJSON(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	buf := getBundleBuf()
	bundle, n, id, err := direct.PayloadBundleJSON(h.cfg.Converter, buf.bytes(), payload) // PayloadBundleJSON
	if err != nil {
		buf.put(bundle)
		writeJSON(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	// The payloads of a report are written in order, as the pushes of a
	// document (see Push); the payload's id is the report's.
	dl, err := h.docs.lock(ctx, id)
	if err != nil {
		buf.put(bundle)
		h.log.WarnContext(ctx, "encounter not written: an earlier payload of the report was still being written at the deadline; the sender should retry",
			"id", id, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, fmt.Sprintf("an earlier payload of %s is still being written: %v", id, err))
		return
	}
	err = h.writeInTurn(ctx, id, bundle, n, buf)
	h.docs.unlock(id, dl)
	if err != nil {
		h.log.WarnContext(ctx, "encounter not written to FHIR; the sender should retry", "id", id, "err", err)
		writeJSON(w, statusOf(err), err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"written"}`)
}

// jsonMediaType reports whether the media type of the Content-Type ct is
// application/json or application/fhir+json.
func jsonMediaType(ct string) bool {
	switch ct {
	case "application/json", "application/fhir+json":
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || mt == "application/fhir+json")
}

// presizeMax is the most readBody allocates before the bytes arrive: a
// client that declares a large body and sends little costs no more.
const presizeMax = 1 << 20

// readBody reads r to its end, as io.ReadAll, into one allocation when the
// request's length is declared (n >= 0; at most limit and presizeMax are
// trusted).
func readBody(r io.Reader, n, limit int64) ([]byte, error) {
	if n < 0 || n > limit || n > presizeMax {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, n+1) // +1: EOF is seen without growing
	for {
		k, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			// Longer than declared: read the rest as io.ReadAll would.
			rest, err := io.ReadAll(r)
			return append(b, rest...), err
		}
	}
}

// writeJSON answers {"error": msg}.
func writeJSON(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
