package fhir

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every attempt sends the whole body with its length (not chunked), and
// done runs once, after the call.
func TestTransactionDoneRunsOnceAfterEveryAttempt(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		assert.Equal(t, bundleOf(3), body, "attempt %d", i)
		assert.Equal(t, strconv.Itoa(len(bundleOf(3))), r.Header.Get("Content-Length"), "attempt %d", i)
		assert.Empty(t, r.TransferEncoding, "attempt %d", i)
		if i < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, answer("201 Created", "201 Created", "200 OK"))
	}))
	defer srv.Close()
	var done atomic.Int32
	c := testClient(t, srv, ClientConfig{})
	require.NoError(t, c.transactionDone(context.Background(), bundleOf(3), 3, func() { done.Add(1) }))
	assert.EqualValues(t, 3, calls.Load())
	assert.EqualValues(t, 1, done.Load())
}

// lateClose answers 503 without reading the body of the first request
// and reads and closes it only when told, as net/http's transport may
// after a server answered early; the other requests it answers 200.
type lateClose struct {
	calls atomic.Int32
	read  chan struct{}
	body  chan []byte
}

func (l *lateClose) RoundTrip(r *http.Request) (*http.Response, error) {
	status, body := http.StatusOK, answer("201 Created")
	if l.calls.Add(1) == 1 {
		go func() {
			<-l.read
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			l.body <- b
		}()
		status, body = http.StatusServiceUnavailable, ""
	} else {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(bytes.NewReader([]byte(body))), Request: r}, nil
}

// done waits for the transport to close a body it still reads after the
// call returned.
func TestTransactionDoneWaitsForLateReaders(t *testing.T) {
	tr := &lateClose{read: make(chan struct{}), body: make(chan []byte)}
	c, err := NewClient(ClientConfig{BaseURL: "http://fhir.invalid/fhir", HTTPClient: &http.Client{Transport: tr}})
	require.NoError(t, err)
	c.rc.SetRetryWaitTime(0).SetRetryMaxWaitTime(0)
	var done atomic.Int32
	require.NoError(t, c.transactionDone(context.Background(), bundleOf(1), 1, func() { done.Add(1) }))
	assert.EqualValues(t, 2, tr.calls.Load())
	assert.Zero(t, done.Load(), "the first attempt's body is not closed yet")
	close(tr.read)
	assert.Equal(t, bundleOf(1), <-tr.body)
	assert.EqualValues(t, 1, done.Load())
}
