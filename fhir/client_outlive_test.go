package fhir

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A call in the context outlive gives (the push handler's write) runs the
// attempt in flight when the caller's context ends to the server's answer,
// and retries nothing after that end, whatever the answer; before it, the
// usual retries apply.
func TestOutliveAnswersTheAttemptInFlightAndRetriesNothingAfter(t *testing.T) {
	tests := []struct {
		name      string
		deadline  time.Duration // of the caller's context
		answers   []int         // status of each attempt, each after 150 ms
		wantCalls int32
		wantErr   bool
	}{
		{"answered after the deadline: applied", 50 * time.Millisecond, []int{http.StatusOK}, 1, false},
		{"503 after the deadline: not retried", 50 * time.Millisecond, []int{http.StatusServiceUnavailable, http.StatusOK}, 1, true},
		{"503 before the deadline: retried", 5 * time.Second, []int{http.StatusServiceUnavailable, http.StatusOK}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				_, _ = io.Copy(io.Discard, r.Body)
				time.Sleep(150 * time.Millisecond)
				if status := tt.answers[n-1]; status != http.StatusOK {
					w.WriteHeader(status)
					return
				}
				io.WriteString(w, answer("200 OK"))
			}))
			defer srv.Close()
			c := testClient(t, srv, ClientConfig{MaxRetries: 2})
			ctx, cancel := context.WithTimeout(context.Background(), tt.deadline)
			defer cancel()
			err := c.transactionDone(outlive(ctx), bundleOf(1), 1, nil)
			assert.Equal(t, tt.wantErr, err != nil, "err = %v", err)
			assert.Equal(t, tt.wantCalls, calls.Load())
		})
	}
}

// Without outlive, the same call ends at the caller's deadline.
func TestWithoutOutliveTheCallEndsAtTheDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(150 * time.Millisecond)
		io.WriteString(w, answer("200 OK"))
	}))
	defer srv.Close()
	c := testClient(t, srv, ClientConfig{MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.transactionDone(ctx, bundleOf(1), 1, nil), context.DeadlineExceeded)
}

// A retry whose backoff wait began before the caller's context ended, and
// ends after it, is not attempted: no attempt starts after the caller gave
// up, whether the attempt before failed with an answer (503) or without
// one (the connection dropped).
func TestOutliveStartsNoAttemptAfterTheDeadline(t *testing.T) {
	tests := []struct {
		name  string
		first func(w http.ResponseWriter) // the first attempt's answer, at once
	}{
		{"503", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{"connection dropped", func(w http.ResponseWriter) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if calls.Add(1) == 1 {
					tt.first(w)
					return
				}
				io.WriteString(w, answer("200 OK"))
			}))
			defer srv.Close()
			c := testClient(t, srv, ClientConfig{MaxRetries: 2})
			// The backoff wait of the retry ends after the deadline.
			c.rc.SetRetryWaitTime(300 * time.Millisecond).SetRetryMaxWaitTime(300 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			var released atomic.Int32
			err := c.transactionDone(outlive(ctx), bundleOf(1), 1, func() { released.Add(1) })
			assert.Error(t, err, "the only attempt failed")
			assert.Equal(t, int32(1), calls.Load(), "attempts made")
			assert.Equal(t, int32(1), released.Load(), "the bundle was given back once, the refused attempt's reader closed")
		})
	}
}
