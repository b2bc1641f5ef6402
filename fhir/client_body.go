package fhir

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/go-resty/resty/v2"
)

// sentBody is the body of a request. Every attempt, and every rewind of
// the HTTP client (GetBody), reads it through a reader of its own, so that
// resty neither copies it nor reads it again; done runs once the call has
// returned and the transport has closed each of those readers, the last
// point anything reads b.
//
// A sentBody is also the call's context: the context it was made with,
// carrying the sentBody to attachBody (one allocation for both).
type sentBody struct {
	context.Context
	b    []byte
	refs atomic.Int32 // open readers, plus one until the call returns
	done func()
	// first is the reader of the first attempt, allocated with the
	// body; firstUsed is set once it is handed out.
	first     bodyReader
	firstUsed atomic.Bool
}

// newSentBody returns the body b of a call in ctx, with one reference
// held until the call returns (see release).
func newSentBody(ctx context.Context, b []byte, done func()) *sentBody {
	s := &sentBody{Context: ctx, b: b, done: done}
	s.first.s = s
	s.refs.Store(1)
	return s
}

// sentBodyKey is the context key under which a call's *sentBody carries
// itself to attachBody.
type sentBodyKey struct{}

// Value returns s for sentBodyKey, and otherwise the value of the
// context s was made with.
func (s *sentBody) Value(key any) any {
	if _, ok := key.(sentBodyKey); ok {
		return s
	}
	return s.Context.Value(key)
}

// errBodyClosed is the error of a read after Close.
var errBodyClosed = errors.New("fhir: request body read after it was closed")

// open returns a new reader of the body.
func (s *sentBody) open() io.ReadCloser {
	s.refs.Add(1)
	if s.firstUsed.CompareAndSwap(false, true) {
		return &s.first
	}
	return &bodyReader{s: s}
}

// getBody is the GetBody of the call's requests: another reader.
func (s *sentBody) getBody() (io.ReadCloser, error) { return s.open(), nil }

// release drops one reference; the last one runs done.
func (s *sentBody) release() {
	if s.refs.Add(-1) == 0 && s.done != nil {
		s.done()
	}
}

// bodyReader reads a sentBody. Read and Close exclude each other, so once
// Close has returned nothing copies from the body's memory.
type bodyReader struct {
	mu     sync.Mutex
	s      *sentBody
	off    int
	closed bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errBodyClosed
	}
	if r.off >= len(r.s.b) {
		return 0, io.EOF
	}
	n := copy(p, r.s.b[r.off:])
	r.off += n
	return n, nil
}

func (r *bodyReader) Close() error {
	r.mu.Lock()
	closed := r.closed
	r.closed = true
	r.mu.Unlock()
	if !closed {
		r.s.release()
	}
	return nil
}

// attachBody, resty's pre-request hook, gives each attempt of a call with
// a body a reader of its own, with the length known (no chunked encoding)
// and a GetBody that opens another.
func attachBody(_ *resty.Client, r *http.Request) error {
	s, ok := r.Context().Value(sentBodyKey{}).(*sentBody)
	if !ok {
		return nil
	}
	if r.Body != nil {
		r.Body.Close() // resty's empty body
	}
	if len(s.b) == 0 {
		r.Body, r.ContentLength = http.NoBody, 0
		r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		return nil
	}
	r.Body, r.ContentLength = s.open(), int64(len(s.b))
	r.GetBody = s.getBody
	return nil
}
