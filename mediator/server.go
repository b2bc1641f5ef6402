package mediator

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// serveTransaction handles one request routed by core: it sets up the
// recorder, enforces the body limit, calls the handler, answers with an
// envelope, and records metrics and a log line.
func (m *Mediator) serveTransaction(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m.metrics.inFlight.Inc()
	defer m.metrics.inFlight.Dec()

	rec := newRecorder(m.hc, r)
	cw := &rec.txn.cw
	cw.w, cw.rec = w, rec
	r2 := r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec))
	if !m.auth.allow(r) {
		m.auth.refuseEnvelope(w, rec)
	} else if m.maxBody > 0 && r.ContentLength > m.maxBody {
		rec.txn.direct = true
		rec.write(w, rec.errorEnvelope(&StatusError{StatusCode: http.StatusRequestEntityTooLarge,
			Err: fmt.Errorf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, m.maxBody)}, ""))
	} else {
		if m.maxBody > 0 && r.Body != nil && r.Body != http.NoBody {
			r2.Body = http.MaxBytesReader(w, r.Body, m.maxBody)
		}
		if r.ContentLength < 0 && r2.Body != nil && r2.Body != http.NoBody {
			r2.Body = countingBody{r2.Body, &rec.txn.reqRead}
		}
		m.callPlain(cw, r2)
		cw.finish()
	}

	t := rec.txn
	route := r2.Pattern
	if route == "" {
		route = "default"
	}
	d := time.Since(start)
	m.metrics.observeRequest(route, t.code, t.status, d)
	if m.log.Enabled(r.Context(), slog.LevelInfo) {
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
			slog.Int("code", t.code), slog.String("status", string(t.status)), slog.String("duration", d.Round(time.Microsecond).String()),
		}
		if id := r.Header.Get(HeaderTransactionID); id != "" {
			attrs = append(attrs, slog.String("transaction_id", id))
		}
		if id := r.Header.Get(HeaderClientID); id != "" {
			attrs = append(attrs, slog.String("client_id", id))
		}
		level := slog.LevelInfo
		if t.errMsg != "" {
			attrs = append(attrs, slog.String("error", t.errMsg))
			level = slog.LevelWarn
		}
		m.log.LogAttrs(r.Context(), level, "mediator: request", attrs...)
	}
}

// callPlain calls the handler; a panic in a plain handler that has not
// answered yet becomes a Failed envelope.
func (m *Mediator) callPlain(cw *captureWriter, r *http.Request) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			if cw.over && !cw.rec.txn.direct {
				// httputil.ReverseProxy aborts when a Write fails: here
				// because the body went over the budget, which finish
				// answers.
				return
			}
			panic(v)
		}
		rec := cw.rec
		if rec.txn.direct {
			// A HandlerFunc recovers its own panics; this one came
			// after it started writing: nothing can be answered.
			panic(v)
		}
		rec.txn.direct = true
		rec.write(cw.w, rec.errorEnvelope(fmt.Errorf("mediator: handler panic: %v", v), string(debug.Stack())))
	}()
	m.cfg.Handler.ServeHTTP(cw, r)
}
