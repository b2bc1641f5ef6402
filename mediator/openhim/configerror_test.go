package openhim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTLSVerificationIsConfigError: core's bundled certificate names its
// host only in the Common Name, which Go refuses even when the certificate
// is trusted with CAFile ("x509: certificate relies on legacy Common Name
// field"). That is a setting to change, not an outage: it is not retried
// and the error says how to fix it.
func TestTLSVerificationIsConfigError(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	caFile := filepath.Join(t.TempDir(), "core.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))

	var handshakes atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			handshakes.Add(1)
			return nil, nil
		},
	}
	srv.StartTLS()
	defer srv.Close()

	for _, tt := range []struct {
		name   string
		caFile string
		want   string
	}{
		{"legacy Common Name, trusted", caFile, "legacy Common Name"},
		{"not trusted", "", "failed to verify certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			handshakes.Store(0)
			c, err := NewClient(Config{URL: srv.URL, Username: "u", Password: "p", Auth: AuthBasic, CAFile: tt.caFile,
				MaxRetries: 3, RetryWaitMin: time.Millisecond}, nil)
			require.NoError(t, err)
			err = c.Do(context.Background(), http.MethodGet, "/channels", nil, nil)
			require.ErrorIs(t, err, ErrConfig)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "subjectAltName")
			assert.Contains(t, err.Error(), "openhim.ca_file (MEDIATOR_OPENHIM_CA_FILE)")
			assert.Equal(t, int32(1), handshakes.Load(), "not retried")
		})
	}
}

// TestLifecycleProblemSaysWhy: while a configuration error keeps the
// mediator from registering, Problem (what /readyz answers) says what to
// change, and the log says it once.
func TestLifecycleProblemSaysWhy(t *testing.T) {
	core := httptest.NewServer(&lcAuthCore{accept: map[string]bool{"session": true}, secureCookie: true})
	defer core.Close()
	logs := &lcSyncBuffer{}
	c, err := NewClient(Config{URL: core.URL, Username: "root@openhim.org", Password: "openhim-password", Auth: AuthSession}, nil)
	require.NoError(t, err)
	l, err := NewLifecycle(LifecycleConfig{Client: c, Definition: testDefinition("urn:mediator:problem"),
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	assert.Equal(t, "not registered with OpenHIM core yet", l.Problem())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	require.Eventually(t, func() bool { return strings.HasPrefix(l.Problem(), "configuration error") }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.False(t, l.Registered())
	assert.Contains(t, l.Problem(), "use an https openhim.url (MEDIATOR_OPENHIM_URL), or set openhim.auth (MEDIATOR_OPENHIM_AUTH) to basic")
	assert.Equal(t, 1, strings.Count(logs.String(), `"level":"ERROR"`), "%s", logs.String())
	assert.NotContains(t, logs.String(), "openhim-password")
}

// flakyCore answers the first failures requests 503, then registers,
// heartbeats and reads back like core.
// flakyCore is a core whose first failures requests fail, and whose GET
// /about fails aboutFailures times more.
type flakyCore struct {
	failures      int32
	calls         atomic.Int32
	aboutFailures int32
	abouts        atomic.Int32
}

func (f *flakyCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.calls.Add(1) <= f.failures {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	switch {
	case r.URL.Path == "/about":
		if f.abouts.Add(1) <= f.aboutFailures {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"currentCoreVersion": "8.5.0", "serverTimezone": "UTC"})
	case r.Method == http.MethodPost && r.URL.Path == "/mediators":
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/mediators/"):
		_ = json.NewEncoder(w).Encode(testDefinition("urn:mediator:flaky"))
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// TestOutageLoggedOnce: an outage at start is one warning with the next
// retry time, then one line when it ends; the attempts in between are
// debug lines.
func TestOutageLoggedOnce(t *testing.T) {
	fc := &flakyCore{failures: 5}
	core := httptest.NewServer(fc)
	defer core.Close()
	logs := &lcSyncBuffer{}
	c, err := NewClient(Config{URL: core.URL, Username: "u", Password: "p", Auth: AuthBasic, MaxRetries: -1}, nil)
	require.NoError(t, err)
	l, err := NewLifecycle(LifecycleConfig{Client: c, Definition: testDefinition("urn:mediator:flaky"),
		HeartbeatInterval: time.Hour, RegisterRetryMin: time.Millisecond, RegisterRetryMax: 5 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	// 5 failures, the registration, the read-back and the first heartbeat.
	require.Eventually(t, func() bool { return fc.calls.Load() >= 8 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	var warns, recovered, debug int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		switch {
		case rec["level"] == "WARN":
			warns++
			assert.Contains(t, rec, "retry_at")
			_, err := time.ParseDuration(rec["retry_in"].(string))
			assert.NoError(t, err, "retry_in is a Go duration string: %v", rec["retry_in"])
		case rec["msg"] == "registered with openhim core after a failure":
			recovered++
		case rec["level"] == "DEBUG" && rec["msg"] == "registration failed again":
			debug++
		}
	}
	assert.Equal(t, 1, warns, logs.String())
	assert.Equal(t, 1, recovered, logs.String())
	assert.Equal(t, 4, debug)
}

// TestConfigErrorIsNotNotFound: the 404 of a user without token
// credentials (src/api/users.js, authenticateToken: "Could not find token
// passport for user") is a configuration error, never "mediator deleted".
func TestConfigErrorIsNotNotFound(t *testing.T) {
	err := (&authState{username: "u"}).noTokenCredentials(&APIError{StatusCode: 404, Method: "GET", URL: "https://core/authenticate/u"})
	assert.ErrorIs(t, err, ErrConfig)
	assert.ErrorIs(t, err, ErrUnauthorized)
	assert.False(t, errors.Is(err, ErrNotFound))
	var api *APIError
	require.ErrorAs(t, err, &api)
	assert.Equal(t, 404, api.StatusCode)
}

func testDefinition(urn string) Definition {
	return Definition{URN: urn, Version: "1.0.0", Name: "Test Mediator",
		Endpoints: []Route{{Name: "Test Route", Host: "127.0.0.1", Port: 8080, Primary: true, Type: "http"}}}
}

// lcSyncBuffer is a strings.Builder safe for concurrent writes and reads.
type lcSyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *lcSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lcSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReleaseReadAfterAFailedRead: core's release (GET /about, which every
// core from 4.0.5 serves: src/api/about.js) is read before the mediator is
// registered; when that read fails, after later heartbeats until it is
// known, without holding registration back.
func TestReleaseReadAfterAFailedRead(t *testing.T) {
	ac := &flakyCore{aboutFailures: 2}
	core := httptest.NewServer(ac)
	defer core.Close()
	c, err := NewClient(Config{URL: core.URL, Username: "u", Password: "p", Auth: AuthBasic, MaxRetries: -1}, nil)
	require.NoError(t, err)
	l, err := NewLifecycle(LifecycleConfig{Client: c, Definition: testDefinition("urn:mediator:flaky"),
		HeartbeatInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	require.Eventually(t, l.Registered, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return l.CoreRelease() == "8.5.0" }, 5*time.Second, time.Millisecond)
	assert.Equal(t, int32(3), ac.abouts.Load(), "read at registration, then after heartbeats until known, then no more")
	time.Sleep(100 * time.Millisecond) // a few more heartbeats
	assert.Equal(t, int32(3), ac.abouts.Load(), "not read again once known")
}
