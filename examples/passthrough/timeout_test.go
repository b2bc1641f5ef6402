package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An upstream that sends its headers and then stalls the body is cut off
// at upstream_timeout, and the call is not answered as a success.
func TestStalledUpstreamIsCutOff(t *testing.T) {
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-release
	}))
	t.Cleanup(upstream.Close)
	t.Cleanup(func() { close(release) })
	port := freePort(t)
	t.Setenv("MEDIATOR_LISTEN", fmt.Sprintf("127.0.0.1:%d", port))
	t.Setenv("MEDIATOR_UPSTREAM_URL", upstream.URL)
	t.Setenv("MEDIATOR_UPSTREAM_TIMEOUT", "300ms")
	t.Setenv("MEDIATOR_AUTH_DISABLED", "true") // the client sends no credentials
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, io.Discard, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/passthrough/x", port)
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "serving")

	client := &http.Client{Timeout: 20 * time.Second}
	start := time.Now()
	resp, err := client.Get(url)
	if err == nil {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			assert.NotEqual(t, http.StatusOK, resp.StatusCode, "a cut-off upstream answered as a success: %s", body)
		}
	}
	assert.Less(t, time.Since(start), 15*time.Second, "the stalled upstream held the request")
}

// The wait for the upstream's response headers follows upstream_timeout
// (default 50 s), in both directions: it was fixed at 30 s, so an upstream
// answering after 31 s got a 502 although upstream_timeout allowed 50 s.
// The transport's header timeout is checked for values above and below
// 30 s. The program is then run with small values, an upstream answering
// after 600 ms within a 3 s upstream_timeout and beyond a 300 ms one: this
// checks the call's overall bound, which the request's deadline also sets.
func TestUpstreamTimeoutGovernsTheResponseHeaderWait(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 31 * time.Second, defaultUpstreamTimeout} {
		assert.Equal(t, d, upstreamTransport(d).ResponseHeaderTimeout, "upstream_timeout %s", d)
	}

	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(600 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte("slow but fine"))
	}
	for _, tc := range []struct {
		timeout string
		want    int
	}{
		{"3s", http.StatusOK},
		{"300ms", http.StatusBadGateway},
	} {
		t.Run(tc.timeout, func(t *testing.T) {
			addr := startStandaloneWith(t, map[string]string{"MEDIATOR_UPSTREAM_TIMEOUT": tc.timeout}, slow)
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/passthrough/x")
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode, "upstream answering after 600 ms, upstream_timeout %s: %s", tc.timeout, body)
		})
	}
}
