package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hang blocks until the client gave up on the request (or 10 s). The
// server notices only once it has read the request's body.
func hang(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// ClientConfig.Timeout bounds each attempt, through a transport that is
// not net/http's own (as mediator.Transport): an attempt that hangs is
// given up and retried, and one whose answer stops half way fails with a
// deadline error instead of waiting.
func TestTimeoutBoundsEachAttempt(t *testing.T) {
	t.Run("a hung attempt is retried", func(t *testing.T) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				hang(r)
				return
			}
			io.WriteString(w, answer("201 Created"))
		}))
		defer srv.Close()
		tr := &countingTransport{}
		c := testClient(t, srv, ClientConfig{HTTPClient: &http.Client{Transport: tr}, Timeout: 300 * time.Millisecond, MaxRetries: 1})
		start := time.Now()
		require.NoError(t, c.Transaction(context.Background(), bundleOf(1)))
		assert.EqualValues(t, 2, calls.Load())
		assert.EqualValues(t, 2, tr.n.Load())
		assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "the first attempt waited for its timeout")
	})
	t.Run("an answer that stops half way", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"resourceType":"Patient",`)
			w.(http.Flusher).Flush()
			hang(r)
		}))
		defer srv.Close()
		c := testClient(t, srv, ClientConfig{HTTPClient: &http.Client{Transport: &countingTransport{}}, Timeout: 300 * time.Millisecond})
		start := time.Now()
		err := c.Read(context.Background(), "Patient", "p1", nil)
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("redirects share the attempt's deadline", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(250 * time.Millisecond)
			if r.URL.Path == "/fhir/Patient/p1" {
				http.Redirect(w, r, "/fhir/Patient/p2", http.StatusFound)
				return
			}
			io.WriteString(w, `{"resourceType":"Patient","id":"p2"}`)
		}))
		defer srv.Close()
		c := testClient(t, srv, ClientConfig{HTTPClient: &http.Client{Transport: &countingTransport{}}, Timeout: 400 * time.Millisecond, MaxRetries: -1})
		err := c.Read(context.Background(), "Patient", "p1", nil)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "two hops of 250 ms exceed one attempt of 400 ms: %v", err)
		c = testClient(t, srv, ClientConfig{HTTPClient: &http.Client{Transport: &countingTransport{}}, Timeout: 5 * time.Second, MaxRetries: -1})
		assert.NoError(t, c.Read(context.Background(), "Patient", "p1", nil), "the redirect is followed")
	})
	t.Run("the caller's deadline comes first", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hang(r) }))
		defer srv.Close()
		c := testClient(t, srv, ClientConfig{HTTPClient: &http.Client{Transport: &countingTransport{}}, Timeout: time.Minute, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.Transaction(ctx, bundleOf(1))
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		assert.Less(t, time.Since(start), 5*time.Second)
	})
}

// The headers of a call: every one accepts FHIR JSON with resty's
// User-Agent; one with a body says its type, and a transaction asks for
// minimal answers; a read sends neither.
func TestCallHeaders(t *testing.T) {
	got := map[string]http.Header{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got[r.Method] = r.Header.Clone()
		if r.Method == http.MethodPost {
			io.WriteString(w, answer("201 Created"))
			return
		}
		io.WriteString(w, `{"resourceType":"Patient","id":"p1"}`)
	}))
	defer srv.Close()
	c := testClient(t, srv, ClientConfig{})
	ctx := context.Background()
	require.NoError(t, c.Transaction(ctx, bundleOf(1)))
	require.NoError(t, c.Read(ctx, "Patient", "p1", nil))
	require.NoError(t, c.Update(ctx, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1"}`), new(json.RawMessage)))
	ua := "go-resty/" + resty.Version + " (https://github.com/go-resty/resty)"
	for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodPut} {
		assert.Equal(t, []string{"application/fhir+json"}, got[m]["Accept"], m)
		assert.Equal(t, []string{ua}, got[m]["User-Agent"], m)
	}
	assert.Equal(t, []string{"application/fhir+json; charset=utf-8"}, got[http.MethodPost]["Content-Type"])
	assert.Equal(t, []string{"return=minimal"}, got[http.MethodPost]["Prefer"])
	assert.Equal(t, []string{"application/fhir+json; charset=utf-8"}, got[http.MethodPut]["Content-Type"])
	assert.Nil(t, got[http.MethodPut]["Prefer"], "an update whose answer is read")
	assert.Nil(t, got[http.MethodGet]["Content-Type"])
	assert.Nil(t, got[http.MethodGet]["Prefer"])
}
