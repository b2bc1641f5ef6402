package mediator

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testAuthUser  = "openhim-route"
	testAuthPass  = "route-secret-7c1f"
	testAuthToken = "bearer-secret-93ab"
)

func okHandler() HandlerFunc {
	return func(r *Request) (*Result, error) {
		return JSONResult(http.StatusOK, map[string]string{"ok": "yes"})
	}
}

func TestInboundAuth(t *testing.T) {
	logs := &syncBuffer{}
	_, base := startMediator(t, Config{
		Handler: okHandler(),
		Auth:    InboundAuth{Username: testAuthUser, Password: testAuthPass, Token: testAuthToken},
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	basic := func(u, p string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	tests := []struct {
		name   string
		path   string
		header http.Header
		want   int
	}{
		{"no credentials", "/route", nil, http.StatusUnauthorized},
		{"right basic", "/route", basic(testAuthUser, testAuthPass), http.StatusOK},
		{"wrong password", "/route", basic(testAuthUser, "guess"), http.StatusUnauthorized},
		{"wrong username", "/route", basic("root", testAuthPass), http.StatusUnauthorized},
		{"password as username", "/route", basic(testAuthPass, testAuthUser), http.StatusUnauthorized},
		{"right bearer", "/route", bearer(testAuthToken), http.StatusOK},
		{"bearer scheme lower case", "/route", http.Header{"Authorization": {"bearer " + testAuthToken}}, http.StatusOK},
		{"wrong bearer", "/route", bearer(testAuthToken + "x"), http.StatusUnauthorized},
		{"token sent as basic password", "/route", basic(testAuthUser, testAuthToken), http.StatusUnauthorized},
		{"password sent as bearer", "/route", bearer(testAuthPass), http.StatusUnauthorized},
		{"raw token without scheme", "/route", http.Header{"Authorization": {testAuthToken}}, http.StatusUnauthorized},
		{"healthz open", "/healthz", nil, http.StatusOK},
		{"readyz open", "/readyz", nil, http.StatusOK},
		{"metrics protected", "/metrics", nil, http.StatusUnauthorized},
		{"metrics with credentials", "/metrics", basic(testAuthUser, testAuthPass), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, base+tt.path, strings.NewReader(`{}`))
			require.NoError(t, err)
			if tt.path == "/healthz" || tt.path == "/readyz" || tt.path == "/metrics" {
				req.Method = http.MethodGet
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode, "%s", body)
			if tt.want != http.StatusUnauthorized {
				assert.Empty(t, resp.Header.Values("WWW-Authenticate"))
				return
			}
			assert.ElementsMatch(t, []string{`Basic realm="urn:mediator:test-testinboundauth", charset="UTF-8"`,
				`Bearer realm="urn:mediator:test-testinboundauth"`}, resp.Header.Values("WWW-Authenticate"))
			if tt.path == "/route" {
				// An envelope core stores, carrying the challenge to core's client.
				env, err := ParseEnvelope(body)
				require.NoError(t, err, "%s", body)
				assert.Equal(t, http.StatusUnauthorized, env.Response.Status)
				assert.Contains(t, env.Response.Headers["WWW-Authenticate"], "Basic realm=")
				assert.Contains(t, env.Response.Body, "authentication required")
			}
		})
	}
	out := logs.String()
	for _, secret := range []string{testAuthPass, testAuthToken, "guess"} {
		assert.NotContains(t, out, secret, "a secret reached the log")
	}
	assert.Contains(t, out, `"code":401`)
	assert.Contains(t, out, `"level":"WARN","msg":"mediator: request"`, "a refusal is a warning")
}

func TestInboundAuthOpenWarns(t *testing.T) {
	logs := &syncBuffer{}
	_, base := startMediator(t, Config{Handler: okHandler(), Auth: InboundAuth{Open: true}, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	resp, err := http.Post(base+"/route", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, logs.String(), "mediator: Auth.Open: anyone who reaches")
}

func TestMetricsListen(t *testing.T) {
	m, base := startMediator(t, Config{
		Handler:       okHandler(),
		Auth:          InboundAuth{Token: testAuthToken},
		MetricsListen: "127.0.0.1:0",
	})
	require.Eventually(t, func() bool { return m.Addr() != nil }, 5*time.Second, 5*time.Millisecond)
	m.mu.Lock()
	maddr := m.metricsLn.Addr().String()
	m.mu.Unlock()

	resp, err := http.Get("http://" + maddr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "openhim_mediator_requests_in_flight")

	resp, err = http.Get("http://" + maddr + "/route")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "the metrics address serves /metrics only")

	// On the main address /metrics is an ordinary (authenticated) path now.
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAuthToken)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `x-mediator-urn`, "the handler answered, not Prometheus")
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, and another CA's client certificate.
type testPKI struct {
	pool               *x509.CertPool
	server, client     tls.Certificate
	strangerClientCert tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		require.NoError(t, err)
		cert, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		return cert, key
	}
	issue := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage, ip net.IP) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	ca, caKey := newCA("test CA")
	other, otherKey := newCA("stranger CA")
	p := testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.server = issue(ca, caKey, "mediator", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	p.client = issue(ca, caKey, "openhim-core", x509.ExtKeyUsageClientAuth, nil)
	p.strangerClientCert = issue(other, otherKey, "openhim-core", x509.ExtKeyUsageClientAuth, nil)
	return p
}

func TestInboundAuthClientCertificate(t *testing.T) {
	pki := newTestPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m, err := New(Config{
		Definition: testDefinition("urn:mediator:mtls"),
		Listener:   ln,
		Handler:    okHandler(),
		Auth:       InboundAuth{ClientCert: true, Username: "route", Password: "route-pw"},
		TLSConfig:  &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })
	base := "https://" + ln.Addr().String()

	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, Certificates: certs}}}
	}
	tests := []struct {
		name   string
		client *http.Client
		path   string
		want   int
	}{
		{"trusted client certificate", client(pki.client), "/route", http.StatusOK},
		{"no client certificate", client(), "/route", http.StatusUnauthorized},
		{"healthz without certificate", client(), "/healthz", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Get(base + tt.path)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
			if tt.want == http.StatusUnauthorized {
				assert.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// A client that sends a certificate the CAs did not sign, as core
	// sends its keystore's on every secured route (openhim-core
	// src/middleware/router.js: key and cert on the request options) and
	// OpenSSL whatever CAs the server names: the handshake succeeds, the
	// certificate is no credential, and the other credentials decide.
	stranger := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pki.strangerClientCert, nil }}}}
	for name, tt := range map[string]struct {
		user, pass string
		want       int
	}{
		"certificate of another CA":                   {"", "", http.StatusUnauthorized},
		"certificate of another CA, with basic auth":  {"route", "route-pw", http.StatusOK},
		"certificate of another CA, wrong basic auth": {"route", "nope", http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, base+"/route", nil)
			require.NoError(t, err)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := stranger.Do(req)
			require.NoError(t, err, "the handshake does not fail")
			resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}
}

func TestNewValidatesInboundAuth(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"password without username", Config{Auth: InboundAuth{Password: "p"}}, "Password is set without a Username"},
		{"username without password", Config{Auth: InboundAuth{Username: "u"}}, "Username is set without a Password"},
		{"colon in username", Config{Auth: InboundAuth{Username: "a:b", Password: "p"}}, "must not contain ':'"},
		{"client cert without TLS", Config{Auth: InboundAuth{ClientCert: true}}, "needs Config.TLSConfig with ClientCAs"},
		{"client cert without CAs", Config{Auth: InboundAuth{ClientCert: true},
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.server}}}, "needs Config.TLSConfig with ClientCAs"},
		{"TLS without certificate", Config{TLSConfig: &tls.Config{}, Auth: InboundAuth{Open: true}}, "has no certificate"},
		// Secure by default: a mediator serves its routes open only when
		// told to.
		{"no credentials", Config{}, "Config.Auth sets no credentials"},
		{"open with credentials", Config{Auth: InboundAuth{Open: true, Token: "t"}}, "Open is set together with credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Handler, tt.cfg.Definition = okHandler(), testDefinition("urn:a")
			_, err := New(tt.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestInboundAuthRedacted(t *testing.T) {
	a := InboundAuth{Username: "route", Password: testAuthPass, Token: testAuthToken, ClientCert: true}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "auth", a)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a), logs.String()} {
		assert.NotContains(t, s, testAuthPass)
		assert.NotContains(t, s, testAuthToken)
		assert.Contains(t, s, "client certificate")
	}
}

// TestRegisteredRoutesCarryCredentials checks that New registers the
// endpoints with the credentials the mediator then requires.
func TestRegisteredRoutesCarryCredentials(t *testing.T) {
	m, err := New(Config{Definition: testDefinition("urn:a"), Handler: okHandler(),
		Auth: InboundAuth{Username: testAuthUser, Password: testAuthPass}})
	require.NoError(t, err)
	def := m.lifecycle.Definition()
	assert.Equal(t, testAuthUser, def.Endpoints[0].Username)
	assert.Equal(t, testAuthPass, def.Endpoints[0].Password)
}
