package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// ErrContactTypesUnread is the error of [Pending.Ready] and of the pushes
// [Pending] refuses while the app's contact types are not read.
var ErrContactTypesUnread = errors.New("push: the app's contact types (app_settings.contact_types) are not read from CHT yet")

// retryInterval is the least time between two reads of the contact types
// while none have been read; refreshInterval the time after which types
// read are read again.
const (
	retryInterval   = 5 * time.Second
	refreshInterval = 5 * time.Minute
)

// Pending is the [Handler] of a mediator that reads the app's contact types
// (app_settings.contact_types, with GET /api/v1/settings) from CHT before it
// converts anything: they tell people from places, and a guess would write
// wrong resources. Until they are read it answers every push 503 with a JSON
// error naming the cause (CHT keeps the push and sends it again) and Ready
// fails (a mediator's /readyz through mediator.Config.ReadyCheck). A failed
// read is tried again on the next push or readiness check, at most every
// 5 s. Types read from CHT are read again every 5 minutes, in the background
// from the first push or readiness check after that time (neither waits
// for it), so that a contact type added to the app is converted without a
// restart (CHT retries a refused push every 5 minutes); while a new read
// fails, the types read before stay in use. The pushes of one document
// are written one at a time across such reads, as by one [Handler] (see
// [Handler.Push]). It is safe for concurrent use.
type Pending struct {
	conv    fhir.Config
	cfg     Config
	log     *slog.Logger
	handler atomic.Pointer[Handler]
	// docs are the document locks of every handler it serves with, so
	// that a push of a handler made after a new read of the types waits
	// for the push of the same document a handler before is writing.
	docs    *docLocks
	retry   time.Duration // retryInterval; shorter in tests
	refresh time.Duration // refreshInterval; shorter in tests
	mu      sync.Mutex    // held while reading
	last    time.Time     // of the last read, or attempt
	lastErr error
	// due is when (Unix ns) the types in use are to be read again; never
	// for types given in conv or without CHT.
	due atomic.Int64
}

// NewPending returns a Pending for the conversion conv and the handler
// cfg, whose Converter it builds from conv. It reads the contact types
// through cfg.CHT when conv has none; without cfg.CHT, or with conv's
// contact types (read from a file for offline work), it takes pushes at
// once (with neither, the converter knows only CHT's legacy hierarchy).
// Both configurations are checked now, so that an error in them stops the
// program at start; it does no I/O.
func NewPending(conv fhir.Config, cfg Config) (*Pending, error) {
	c, err := fhir.New(conv)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	cfg.Converter = c
	docs := new(docLocks)
	h, err := newHandler(cfg, docs)
	if err != nil {
		return nil, err
	}
	p := &Pending{conv: conv, cfg: cfg, log: cfg.Logger, docs: docs, retry: retryInterval, refresh: refreshInterval}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if cfg.CHT == nil || len(conv.ContactTypes.Types()) > 0 {
		p.handler.Store(h)
		p.due.Store(math.MaxInt64)
	}
	return p, nil
}

// Ready reads the contact types unless they are read, and returns nil once
// they are; otherwise an error wrapping [ErrContactTypesUnread] and the
// cause. It returns when ctx is done, even while the read goes on.
func (p *Pending) Ready(ctx context.Context) error {
	_, err := p.get(ctx)
	return err
}

// ServeHTTP serves the pushes as [Handler] does once the contact types are
// read, and answers 503 until then. A push that comes while they are not
// read waits for the read within its deadline (Config.Timeout), which
// starts when it comes rather than once they are read: CHT stops waiting
// for an answer after 10 s.
func (p *Pending) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.handler.Load() == nil {
		timeout := p.cfg.Timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	h, err := p.get(r.Context())
	if err != nil {
		w.Header().Set("Retry-After", strconv.Itoa(max(int(p.retry/time.Second), 1)))
		writeJSON(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.ServeHTTP(w, r)
}

// get returns the handler, reading the contact types if they are due. It
// waits for the read until ctx is done; the read goes on without it.
func (p *Pending) get(ctx context.Context) (*Handler, error) {
	if h := p.handler.Load(); h != nil {
		p.refreshIfDue()
		return p.handler.Load(), nil
	}
	if !p.mu.TryLock() { // another request is reading them
		return nil, fmt.Errorf("%w: reading them", ErrContactTypesUnread)
	}
	if h := p.handler.Load(); h != nil {
		p.mu.Unlock()
		return h, nil
	}
	if p.lastErr != nil && time.Since(p.last) < p.retry {
		err := p.lastErr
		p.mu.Unlock()
		return nil, err
	}
	type result struct {
		h   *Handler
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer p.mu.Unlock()
		h, n, err := p.read()
		if err == nil {
			p.lastErr = nil
			p.log.Info("read the app's contact types from CHT; taking pushes", "contact_types", n)
			done <- result{h: h}
			return
		}
		if p.lastErr == nil {
			p.log.Warn("cannot read the app's contact types from CHT; pushes are answered 503 until they are read",
				"err", err, "retry_every", p.retry.String())
		}
		p.lastErr = fmt.Errorf("%w: %w", ErrContactTypesUnread, err)
		done <- result{err: p.lastErr}
	}()
	select {
	case r := <-done:
		return r.h, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: still reading them: %w", ErrContactTypesUnread, context.Cause(ctx))
	}
}

// refreshIfDue starts a new read of the contact types when those in use
// were read from CHT over p.refresh ago and no other request is reading
// them. The read runs in the background (at most its 10 s timeout), so
// that neither the push nor the readiness check that starts it waits for
// CHT: both go on with the types in use, which a successful read replaces.
// A failed read keeps them and is tried again after p.retry. The pushes
// in between pay one clock read.
func (p *Pending) refreshIfDue() {
	if time.Now().UnixNano() < p.due.Load() || !p.mu.TryLock() {
		return
	}
	if time.Now().UnixNano() < p.due.Load() { // read by the request before
		p.mu.Unlock()
		return
	}
	go func() {
		defer p.mu.Unlock()
		if _, _, err := p.read(); err != nil {
			if p.lastErr == nil {
				p.log.Warn("cannot read the app's contact types from CHT again; converting with those read before",
					"err", err, "retry_every", p.retry.String())
			}
			p.lastErr = err
			p.due.Store(p.last.Add(p.retry).UnixNano())
			return
		}
		p.lastErr = nil
	}()
}

// read reads the contact types from CHT and, when they are read, stores a
// handler converting with them. p.mu is held.
func (p *Pending) read() (*Handler, int, error) {
	p.last = time.Now()
	// The read is not the request's work: it is neither cancelled with the
	// request nor recorded as one of its orchestrations.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	types, err := p.cfg.CHT.ContactTypes(ctx)
	switch {
	case errors.Is(err, cht.ErrUnauthorized), errors.Is(err, cht.ErrForbidden):
		return nil, 0, fmt.Errorf("%w (check the CHT user name and password the mediator is given)", err)
	case err != nil:
		return nil, 0, err
	}
	conv := p.conv
	conv.ContactTypes = types
	cfg := p.cfg
	if cfg.Converter, err = fhir.New(conv); err != nil {
		return nil, 0, err
	}
	h, err := newHandler(cfg, p.docs)
	if err != nil {
		return nil, 0, err
	}
	p.handler.Store(h)
	p.due.Store(p.last.Add(p.refresh).UnixNano())
	return h, len(types.Types()), nil
}
