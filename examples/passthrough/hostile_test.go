package main

import (
	"bufio"
	"compress/gzip"
	"context"
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

	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// seenRequest is what the upstream received.
type seenRequest struct {
	uri    string
	header http.Header
	body   int
}

// startStandalone runs the program standalone in front of a recording
// upstream with base path /base and returns the mediator's address and the
// requests the upstream saw.
func startStandalone(t *testing.T, env map[string]string) (string, func() []seenRequest) {
	t.Helper()
	var (
		mu   sync.Mutex
		seen []seenRequest
	)
	addr := startStandaloneWith(t, env, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, seenRequest{r.RequestURI, r.Header.Clone(), int(n)})
		mu.Unlock()
		fmt.Fprint(w, "ok")
	})
	return addr, func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), seen...)
	}
}

// startStandaloneWith runs the program standalone in front of an upstream
// with base path /base served by h, and returns the mediator's address.
func startStandaloneWith(t *testing.T, env map[string]string, h http.HandlerFunc) string {
	t.Helper()
	upstream := httptest.NewServer(h)
	t.Cleanup(upstream.Close)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	t.Setenv("MEDIATOR_LISTEN", addr)
	t.Setenv("MEDIATOR_UPSTREAM_URL", upstream.URL+"/base")
	// These tests are about what goes upstream, the caller's credential
	// headers included: the mediator asks for none.
	t.Setenv("MEDIATOR_AUTH_DISABLED", "true")
	for k, v := range env {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, io.Discard, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "serving")
	return addr
}

// rawRequest sends the request text as is (no client-side path cleaning)
// and returns the status and body.
func rawRequest(t *testing.T, addr, request string) (int, string, http.Header) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, request)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body), resp.Header
}

// Dot-segments, encoded or not, are refused with 400 before anything goes
// upstream; clean paths stay under the upstream's base path.
func TestPathsConfinedToUpstreamBase(t *testing.T) {
	addr, seen := startStandalone(t, nil)
	tests := []struct {
		path   string
		status int
		want   string // request URI the upstream saw; "" when nothing may reach it
	}{
		{"/passthrough/items?x=1", 200, "/base/passthrough/items?x=1"},
		{"/passthrough/a..b/c.d", 200, "/base/passthrough/a..b/c.d"},
		{"/passthrough/../../etc/passwd", 400, ""},
		{"/passthrough/./x", 400, ""},
		{"/passthrough/..", 400, ""},
		{"/passthrough/%2e%2e/%2e%2e/etc/passwd", 400, ""},
		{"/passthrough/%2E%2e/x", 400, ""},
		{"/passthrough/.%2e/x", 400, ""},
		{"/passthrough/%2e./x", 400, ""},
		{"/passthrough/..%2f..%2fetc", 400, ""},
		{"/passthrough/..%5c..%5cetc", 400, ""},
		{"/passthrough/%252e%252e/x", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := len(seen())
			status, body, _ := rawRequest(t, addr, "GET "+tt.path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			require.Equal(t, tt.status, status, "%s", body)
			after := seen()
			if tt.want == "" {
				assert.Len(t, after, before, "a refused path reached the upstream")
				assert.Contains(t, body, "dot-segments")
				return
			}
			require.Len(t, after, before+1)
			assert.Equal(t, tt.want, after[before].uri)
		})
	}
}

// Hop-by-hop headers and the caller's credentials stay here unless
// forward_headers lists them.
func TestCallerCredentialsNotForwarded(t *testing.T) {
	const headers = "Authorization: Basic Y2xpZW50OnNlY3JldA==\r\nCookie: session=1\r\n" +
		"Proxy-Authorization: Basic eDp5\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n" +
		"X-Kept: yes\r\n"
	tests := []struct {
		name    string
		forward string
		want    []string // credential headers the upstream must see
	}{
		{"default forwards none", "", nil},
		{"authorization configured", "Authorization", []string{"Authorization"}},
		{"all configured", "Authorization,Cookie,Proxy-Authorization", []string{"Authorization", "Cookie", "Proxy-Authorization"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, seen := startStandalone(t, map[string]string{"MEDIATOR_FORWARD_HEADERS": tt.forward})
			status, body, _ := rawRequest(t, addr, "GET /passthrough/x HTTP/1.1\r\nHost: x\r\n"+headers+"\r\n")
			require.Equal(t, 200, status, "%s", body)
			got := seen()
			require.Len(t, got, 1)
			h := got[0].header
			assert.Equal(t, "yes", h.Get("X-Kept"))
			for _, hop := range []string{"X-Hop", "Keep-Alive"} {
				assert.Empty(t, h.Values(hop), "hop-by-hop %s forwarded", hop)
			}
			for _, cred := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
				if contains(tt.want, cred) {
					assert.NotEmpty(t, h.Get(cred), "%s configured but not forwarded", cred)
				} else {
					assert.Empty(t, h.Values(cred), "%s forwarded", cred)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestForwardHeadersSettingChecked(t *testing.T) {
	t.Setenv("MEDIATOR_UPSTREAM_URL", "http://u")
	t.Setenv("MEDIATOR_FORWARD_HEADERS", "Transfer-Encoding")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := run(ctx, nil, io.Discard, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "forward_headers")
}

// An oversized body, chunked or with a length, is refused with 413 and a
// JSON error before anything reaches the upstream; one within the limit is
// forwarded whole.
func TestOversizedBodyRefusedBeforeUpstream(t *testing.T) {
	const limit = 1000
	addr, seen := startStandalone(t, map[string]string{"MEDIATOR_MAX_BODY_BYTES": fmt.Sprint(limit)})
	chunked := func(n int) string {
		return fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", n, strings.Repeat("a", n))
	}
	withLength := func(n int) string {
		return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", n, strings.Repeat("a", n))
	}
	tests := []struct {
		name   string
		body   string
		status int
		sent   int // body bytes the upstream must see; -1 for no request at all
	}{
		{"chunked within limit", chunked(limit), 200, limit},
		{"length within limit", withLength(limit), 200, limit},
		{"chunked over limit", chunked(limit + 1), 413, -1},
		{"length over limit", withLength(limit + 1), 413, -1},
		{"chunked far over limit", chunked(50 * limit), 413, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(seen())
			status, body, h := rawRequest(t, addr, "POST /passthrough/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"+tt.body)
			require.Equal(t, tt.status, status, "%s", body)
			after := seen()
			if tt.sent < 0 {
				assert.Len(t, after, before, "an oversized body reached the upstream")
				assert.Contains(t, h.Get("Content-Type"), "json")
				assert.Contains(t, body, "exceeds the limit")
				return
			}
			require.Len(t, after, before+1)
			assert.Equal(t, tt.sent, after[before].body)
		})
	}
}

// Core forwards its client's Accept-Encoding. Sent upstream, a gzip answer
// would come back compressed (Go's transport decompresses only what it
// asked for itself) and could not be carried in the envelope: the
// passthrough drops the header, so the upstream's JSON arrives as text,
// without a stale Content-Encoding.
func TestCompressedUpstreamArrivesAsText(t *testing.T) {
	const patient = `{"resourceType":"Patient"}`
	addr := startStandaloneWith(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			fmt.Fprint(w, patient)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		fmt.Fprint(zw, patient)
		_ = zw.Close()
	})
	for _, ae := range []string{"gzip", "gzip, deflate, br", ""} {
		t.Run("Accept-Encoding "+ae, func(t *testing.T) {
			req := "GET /passthrough/Patient/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			if ae != "" {
				req += "Accept-Encoding: " + ae + "\r\n"
			}
			status, body, _ := rawRequest(t, addr, req+"\r\n")
			require.Equal(t, 200, status, "%s", body)
			env, err := mediator.ParseEnvelope([]byte(body))
			require.NoError(t, err, "%s", body)
			assert.Equal(t, mediator.StatusSuccessful, env.Status)
			assert.Equal(t, patient, env.Response.Body)
			for k := range env.Response.Headers {
				assert.NotEqual(t, "content-encoding", strings.ToLower(k), "stale %s in %v", k, env.Response.Headers)
			}
		})
	}
}

// A request body with a Content-Encoding (gzip here) is forwarded as the
// caller sent it, bytes and header, as a proxy does: the passthrough
// neither decodes nor parses bodies, so it has no reason to refuse one the
// upstream may accept. The body limit counts the encoded bytes, those that
// go upstream. (The routes that parse JSON answer 415 instead.)
func TestEncodedRequestBodyForwardedUnchanged(t *testing.T) {
	const limit = 1000
	var (
		mu     sync.Mutex
		got    []byte
		coding string
	)
	addr := startStandaloneWith(t, map[string]string{"MEDIATOR_MAX_BODY_BYTES": fmt.Sprint(limit)}, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, coding = b, r.Header.Get("Content-Encoding")
		mu.Unlock()
		fmt.Fprint(w, "ok")
	})
	var gz strings.Builder
	zw := gzip.NewWriter(&gz)
	_, err := io.WriteString(zw, `{"pad":"`+strings.Repeat("a", 20*limit)+`"}`) // larger than the limit once decoded
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.Less(t, gz.Len(), limit)
	status, body, _ := rawRequest(t, addr, fmt.Sprintf("POST /passthrough/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"+
		"Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", gz.Len(), gz.String()))
	require.Equal(t, 200, status, "%s", body)
	env, err := mediator.ParseEnvelope([]byte(body))
	require.NoError(t, err, "%s", body)
	assert.Equal(t, "ok", env.Response.Body)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "gzip", coding)
	assert.Equal(t, gz.String(), string(got), "the encoded body, byte for byte")
}
