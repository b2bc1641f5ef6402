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
