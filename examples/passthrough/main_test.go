package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

func TestSettingsErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no upstream", nil, "upstream_url"},
		{"upstream without scheme", map[string]string{"MEDIATOR_UPSTREAM_URL": "upstream:8080"}, "upstream_url"},
		{"bad heartbeat", map[string]string{"MEDIATOR_UPSTREAM_URL": "http://u", "MEDIATOR_HEARTBEAT_INTERVAL": "often"}, "heartbeat_interval"},
		{"listen without port", map[string]string{"MEDIATOR_UPSTREAM_URL": "http://u", "MEDIATOR_LISTEN": "127.0.0.1:0"}, "fixed port"},
		{"no inbound credentials", map[string]string{"MEDIATOR_UPSTREAM_URL": "http://u", "MEDIATOR_AUTH_TOKEN": ""},
			"the mediator's routes would be open to anyone who reaches listen"},
		{"forwarding the inbound credentials", map[string]string{"MEDIATOR_UPSTREAM_URL": "http://u", "MEDIATOR_FORWARD_HEADERS": "authorization"},
			"forward_headers (MEDIATOR_FORWARD_HEADERS): Authorization carries the credentials the mediator requires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MEDIATOR_AUTH_TOKEN", "route-token")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := run(context.Background(), nil, io.Discard, slog.New(slog.DiscardHandler))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Credentials in upstream_url are refused naming the key: ReverseProxy
// does not send a URL's userinfo, so they were silently dropped and the
// upstream saw no Authorization. The error does not repeat the password.
func TestUpstreamURLCredentialsRefused(t *testing.T) {
	for _, u := range []string{"http://up:s3cretU@127.0.0.1:18630", "https://token-s3cretU@upstream.example.org/api"} {
		t.Run(u, func(t *testing.T) {
			t.Setenv("MEDIATOR_UPSTREAM_URL", u)
			t.Setenv("MEDIATOR_LISTEN", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // if it serves
			defer cancel()
			var log strings.Builder
			err := run(ctx, nil, io.Discard, slog.New(slog.NewTextHandler(&log, nil)))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "upstream_url (MEDIATOR_UPSTREAM_URL) must not carry credentials")
			assert.Contains(t, err.Error(), "forward_headers")
			assert.NotContains(t, err.Error()+log.String(), "s3cretU")
		})
	}
}

// TestForwardsThroughOpenHIM runs the program against the fake OpenHIM core
// and an upstream server, and sends requests through core's router.
func TestForwardsThroughOpenHIM(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+string(body))
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"echo":%q}`, body)
	}))
	t.Cleanup(upstream.Close)
	core := openhimtest.NewServer(openhimtest.Config{})
	t.Cleanup(core.Close)
	core.AddClient("client", "client-secret", "passthrough")

	t.Setenv("MEDIATOR_LISTEN", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	t.Setenv("MEDIATOR_PUBLIC_HOST", "127.0.0.1")
	t.Setenv("MEDIATOR_UPSTREAM_URL", upstream.URL+"/api")
	t.Setenv("MEDIATOR_OPENHIM_URL", core.URL)
	t.Setenv("MEDIATOR_OPENHIM_USERNAME", openhimtest.RootUser)
	t.Setenv("MEDIATOR_OPENHIM_PASSWORD", openhimtest.RootPassword)
	t.Setenv("MEDIATOR_HEARTBEAT_INTERVAL", "100ms")
	t.Setenv("MEDIATOR_INSTALL_CHANNELS", "true")
	// What the mediator requires of its callers; the default channel's
	// route sends it.
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, io.Discard, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop")
		}
	})
	require.Eventually(t, func() bool {
		_, ok := core.Mediator("urn:mediator:passthrough")
		return ok && len(core.Channels()) == 1
	}, 10*time.Second, 50*time.Millisecond, "registered with its channel installed")
	assert.Equal(t, "openhim-route", core.Channels()[0].Routes[0].Username, "the route sends what the mediator requires")
	first := heartbeats(t, core)
	require.Eventually(t, func() bool { return heartbeats(t, core) > first }, 5*time.Second, 50*time.Millisecond, "heartbeats")

	tests := []struct {
		method, path, body string
		status             int
		want               string
		upstreamSaw        string
	}{
		{"POST", "/passthrough/items?x=1", "hello", 200, `{"echo":"hello"}`, "POST /api/passthrough/items?x=1 hello"},
		{"GET", "/passthrough/missing", "", 404, "404 page not found", "GET /api/passthrough/missing "},
	}
	for i, tt := range tests {
		req, err := http.NewRequest(tt.method, core.RouterURL+tt.path, strings.NewReader(tt.body))
		require.NoError(t, err)
		req.SetBasicAuth("client", "client-secret")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, tt.status, resp.StatusCode, "%s", body)
		assert.Contains(t, string(body), tt.want)
		mu.Lock()
		require.Len(t, seen, i+1)
		assert.Equal(t, tt.upstreamSaw, seen[i], "forwarded with path, query and body")
		mu.Unlock()
	}

	txs := core.Transactions()
	require.Len(t, txs, len(tests))
	for i, tx := range txs {
		require.NotEmpty(t, tx.Orchestrations, "transaction %d", i)
		o := tx.Orchestrations[0]
		assert.Equal(t, "Upstream", o.Name)
		assert.Equal(t, tests[i].status, o.Response.Status)
		assert.Equal(t, tests[i].method, o.Request.Method)
	}
	assert.Equal(t, "Successful", string(txs[0].Status))
	assert.Equal(t, "Completed", string(txs[1].Status), "a 4xx upstream answer")
}

// heartbeats returns the number of heartbeats core received.
func heartbeats(t *testing.T, core *openhimtest.Server) int {
	t.Helper()
	return len(core.Heartbeats("urn:mediator:passthrough"))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
