package fhir

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// attemptTimeout bounds each attempt of a call ([ClientConfig].Timeout) as
// http.Client.Timeout would, with a context deadline on the request: the
// answer's headers and its body must arrive before it. An attempt that
// follows redirects keeps the deadline of its first request.
//
// http.Client.Timeout does the same, but for any transport other than
// net/http's own (mediator.Transport, for one) it runs a goroutine and a
// timer for every request.
type attemptTimeout struct {
	next http.RoundTripper // nil: http.DefaultTransport
	d    time.Duration
}

func (t *attemptTimeout) RoundTrip(r *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	if r.Response == nil {
		// An attempt, not a redirect within one. A call that outlives
		// its caller (outlive) starts none once the caller's context
		// has ended: resty's backoff wait before a retry does not end
		// with it (the call's context is never done), and shouldRetry
		// saw the caller still there when it decided to retry.
		if caller, ok := r.Context().Value(retryWhileKey{}).(context.Context); ok && caller.Err() != nil {
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, fmt.Errorf("not attempted: the caller gave up: %w", caller.Err())
		}
	}
	deadline := time.Now().Add(t.d)
	if r.Response != nil && r.Response.Request != nil {
		// A redirect of the attempt: the deadline of the request
		// redirected holds.
		if d, ok := r.Response.Request.Context().Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	if d, ok := r.Context().Deadline(); ok && !deadline.Before(d) {
		// The caller's deadline comes first.
		return next.RoundTrip(r)
	}
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	resp, err := next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody is the body of an answer whose attempt's deadline is
// released once the body has been read to its end or closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc // may be called more than once
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.cancel()
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// CloseIdleConnections closes the idle connections of the transport
// underneath, as http.Client.CloseIdleConnections would without the
// wrapper.
func (t *attemptTimeout) CloseIdleConnections() {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	if ci, ok := next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
