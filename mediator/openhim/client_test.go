package openhim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	min, max := 100*time.Millisecond, 2*time.Second
	for try := range 70 {
		want := max
		if try < 5 { // 100ms<<4 = 1.6s < 2s
			want = min << try
		}
		for range 50 {
			got := retryBackoff(min, max, try)
			if got < want/2 || got > want {
				t.Fatalf("retryBackoff(try=%d) = %v, want in [%v, %v]", try, got, want/2, want)
			}
		}
	}
}

func TestJitterBounds(t *testing.T) {
	d := 10 * time.Second
	for range 1000 {
		got := jitter(d)
		if got < 9*time.Second || got > 11*time.Second {
			t.Fatalf("jitter(10s) = %v, want within ±10%%", got)
		}
	}
}

func TestNewClientConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "standalone", cfg: Config{}},
		{name: "https", cfg: Config{URL: "https://core:8080", Username: "u", Password: "p"}},
		{name: "plain http allowed", cfg: Config{URL: "http://core:8080/openhim/", Username: "u"}},
		{name: "credentials in URL", cfg: Config{URL: "https://u:p@core:8080"}},
		{name: "bad scheme", cfg: Config{URL: "ftp://core", Username: "u"}, wantErr: "http:// or https://"},
		{name: "no host", cfg: Config{URL: "https://", Username: "u"}, wantErr: "no host"},
		{name: "query", cfg: Config{URL: "https://core?x=1", Username: "u"}, wantErr: "query"},
		{name: "no username", cfg: Config{URL: "https://core"}, wantErr: "Username is required"},
		{name: "unknown auth", cfg: Config{URL: "https://core", Username: "u", Auth: "jwt"}, wantErr: "unknown Config.Auth"},
		{name: "negative timeout", cfg: Config{URL: "https://core", Username: "u", Timeout: -1}, wantErr: "Timeout"},
		{name: "missing CA file", cfg: Config{URL: "https://core", Username: "u", CAFile: filepath.Join(dir, "none.pem")}, wantErr: "CAFile"},
		{name: "CA file without PEM", cfg: Config{URL: "https://core", Username: "u", CAFile: bad}, wantErr: "no PEM"},
		{name: "cert without key", cfg: Config{URL: "https://core", Username: "u", CertFile: bad}, wantErr: "set together"},
		{name: "TLS options with custom RoundTripper", cfg: Config{URL: "https://core", Username: "u", InsecureSkipVerify: true,
			HTTPClient: &http.Client{Transport: lcRoundTrip(nil)}}, wantErr: "*http.Transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.cfg, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				if c == nil {
					t.Fatal("nil client")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

type lcRoundTrip func(*http.Request) (*http.Response, error)

func (f lcRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestStandaloneClient(t *testing.T) {
	c, err := NewClient(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Standalone() {
		t.Fatal("want standalone")
	}
	if err := c.Register(context.Background(), &Definition{URN: "u", Version: "1.0.0", Name: "n",
		Endpoints: []Route{{Name: "r", Host: "h", Port: 1}}}); !errors.Is(err, ErrNoCore) {
		t.Fatalf("err = %v, want ErrNoCore", err)
	}
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int // answers in order; the last repeats
		body      string
		wantCalls int32
		wantErr   error
		wantMsg   string
	}{
		{name: "2xx", statuses: []int{201}, wantCalls: 1},
		{name: "5xx then ok", statuses: []int{503, 500, 201}, wantCalls: 3},
		{name: "5xx exhausts retries", statuses: []int{502}, wantCalls: 4, wantErr: ErrServer},
		{name: "400 is fatal with core's message", statuses: []int{400},
			body: "Could not add Mediator via the API: ValidationError: name: Path `name` is required.", wantCalls: 1,
			wantErr: ErrBadRequest, wantMsg: "Path `name` is required"},
		{name: "403 not retried", statuses: []int{403}, wantCalls: 1, wantErr: ErrForbidden},
		{name: "404 not retried", statuses: []int{404}, wantCalls: 1, wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls, bad atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Every attempt carries the body and the credentials again.
				b, _ := io.ReadAll(r.Body)
				if user, pw, ok := r.BasicAuth(); !ok || user != "u" || pw != "secret-pw" || string(b) != `{"a":"b"}` ||
					r.Header.Get("Content-Type") != "application/json" {
					bad.Add(1)
				}
				n := int(calls.Add(1)) - 1
				st := tt.statuses[min(n, len(tt.statuses)-1)]
				w.WriteHeader(st)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, err := NewClient(Config{URL: srv.URL, Username: "u", Password: "secret-pw", Auth: AuthBasic,
				RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Do(context.Background(), http.MethodPost, "/mediators", map[string]string{"a": "b"}, nil)
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			if n := bad.Load(); n > 0 {
				t.Errorf("%d attempts without the body or the credentials", n)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err %T is not an *APIError", err)
			}
			if ae.Method != http.MethodPost || ae.URL != srv.URL+"/mediators" || ae.StatusCode != int(tt.statuses[len(tt.statuses)-1]) {
				t.Errorf("APIError = %+v", ae)
			}
			if !strings.Contains(ae.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", ae.Message, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestRetryNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on
	c, err := NewClient(Config{URL: "http://user:urlpass@" + addr, Password: "secret-pw", Auth: AuthBasic,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond, MaxRetries: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), http.MethodGet, "/channels", nil, nil)
	if err == nil {
		t.Fatal("want an error")
	}
	var ae *APIError
	if errors.As(err, &ae) {
		t.Fatalf("network error reported as APIError: %v", err)
	}
	for _, secret := range []string{"urlpass", "secret-pw"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks %q: %v", secret, err)
		}
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Errorf("err %v does not carry the network error", err)
	}
}

// TestRetryBackoffTiming checks the waits between retries in fake time.
func TestRetryBackoffTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time
		c, err := NewClient(Config{URL: "http://core", Username: "u", Auth: AuthBasic, MaxRetries: 4,
			RetryWaitMin: time.Second, RetryWaitMax: 4 * time.Second,
			HTTPClient: &http.Client{Transport: lcHandlerTransport(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				times = append(times, time.Now())
				w.WriteHeader(http.StatusServiceUnavailable)
			}))}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Do(context.Background(), http.MethodGet, "/channels", nil, nil)
		if !errors.Is(err, ErrServer) {
			t.Fatalf("err = %v", err)
		}
		if len(times) != 5 {
			t.Fatalf("attempts = %d, want 5", len(times))
		}
		caps := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
		for i, cp := range caps {
			gap := times[i+1].Sub(times[i])
			if gap < cp/2 || gap > cp {
				t.Errorf("wait before retry %d = %v, want in [%v, %v]", i+1, gap, cp/2, cp)
			}
		}
	})
}

// TestTimeout checks that a hanging core is abandoned after Timeout.
func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := NewClient(Config{URL: "http://core", Username: "u", Auth: AuthBasic, Timeout: 3 * time.Second, MaxRetries: -1,
			HTTPClient: &http.Client{Transport: lcRoundTrip(func(r *http.Request) (*http.Response, error) {
				<-r.Context().Done()
				return nil, r.Context().Err()
			})}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.Do(context.Background(), http.MethodGet, "/channels", nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("gave up after %v, want 3s", d)
		}
	})
}

func TestContextCanceledStopsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		c, err := NewClient(Config{URL: "http://core", Username: "u", Auth: AuthBasic, MaxRetries: 100, RetryWaitMin: time.Second,
			HTTPClient: &http.Client{Transport: lcHandlerTransport(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(http.StatusInternalServerError)
			}))}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = c.Do(ctx, http.MethodGet, "/channels", nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if n := calls.Load(); n < 3 || n > 6 {
			t.Errorf("calls in 10s = %d, want between 3 and 6 (backoff 1s, 2s, 4s, 5s)", n)
		}
	})
}

// lcHandlerTransport serves requests in process with h (no network), so it
// works inside a synctest bubble.
func lcHandlerTransport(h http.Handler) http.RoundTripper {
	return lcRoundTrip(func(r *http.Request) (*http.Response, error) {
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		rec := httptest.NewRecorder()
		sr := r.Clone(r.Context())
		if sr.Body == nil {
			sr.Body = http.NoBody
		}
		h.ServeHTTP(rec, sr)
		res := rec.Result()
		res.Request = r
		return res, nil
	})
}

func TestPathPrefixAndURNEscaping(t *testing.T) {
	var gotPath, gotRaw string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotRaw = r.URL.Path, r.URL.EscapedPath()
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	c, err := NewClient(Config{URL: srv.URL + "/openhim/", Username: "u", Auth: AuthBasic}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetMediator(context.Background(), "urn:mediator:a/b c")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if gotPath != "/openhim/mediators/urn:mediator:a/b c" || gotRaw != "/openhim/mediators/urn:mediator:a%2Fb%20c" {
		t.Errorf("path = %q (raw %q)", gotPath, gotRaw)
	}
}

// lcWriteCert creates a self-signed CA and a leaf certificate for 127.0.0.1
// signed by it, writes PEM files into dir and returns their paths and the
// leaf as a tls.Certificate.
func lcWriteCert(t *testing.T, dir, name string, client bool) (caFile, certFile, keyFile string, leaf tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	caFile = filepath.Join(dir, name+"-ca.pem")
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	for f, b := range map[string][]byte{caFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	leaf, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return caFile, certFile, keyFile, leaf
}

func TestTLSOptions(t *testing.T) {
	dir := t.TempDir()
	serverCA, _, _, serverCert := lcWriteCert(t, dir, "server", false)
	clientCA, clientCert, clientKey, _ := lcWriteCert(t, dir, "client", true)
	clientPool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(clientCA)
	clientPool.AppendCertsFromPEM(pemBytes)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			w.Header().Set("X-Client-CN", r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		_, _ = w.Write([]byte(`[]`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientPool}
	srv.StartTLS()
	defer srv.Close()

	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "verification on by default", cfg: Config{}, wantErr: true},
		{name: "CA bundle", cfg: Config{CAFile: serverCA}},
		{name: "wrong CA bundle", cfg: Config{CAFile: clientCA}, wantErr: true},
		{name: "insecure skip verify", cfg: Config{InsecureSkipVerify: true}},
		{name: "client certificate", cfg: Config{CAFile: serverCA, CertFile: clientCert, KeyFile: clientKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.URL, cfg.Username, cfg.Auth, cfg.MaxRetries = srv.URL, "u", AuthBasic, -1
			c, err := NewClient(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.call(context.Background(), http.MethodGet, "/channels", nil, true)
			if tt.wantErr {
				var uae x509.UnknownAuthorityError
				if err == nil || !errors.As(err, &uae) {
					t.Fatalf("err = %v, want x509.UnknownAuthorityError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.cfg.CertFile != "" && resp.header.Get("X-Client-CN") != "client" {
				t.Errorf("client certificate not presented (CN %q)", resp.header.Get("X-Client-CN"))
			}
		})
	}
}

func TestCoreMessage(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	tests := []struct{ body, want string }{
		{"", ""},
		{"  Could not add Mediator via the API: ValidationError: x \n", "Could not add Mediator via the API: ValidationError: x"},
		{`{"error":"Could not find token passport"}`, "Could not find token passport"},
		{`{"message":"nope","error":""}`, "nope"},
		{`{"other":1}`, `{"other":1}`},
		{long, strings.Repeat("é", 256) + "…"},
	}
	for _, tt := range tests {
		if got := coreMessage([]byte(tt.body)); got != tt.want {
			t.Errorf("coreMessage(%.20q) = %.40q, want %.40q", tt.body, got, tt.want)
		}
	}
}

// A core URL of any shape is reported without its password: url.Parse
// reads "admin:s3cret@core" as scheme "admin" with an opaque part, and
// "http://admin:s3/cret@core" as host "admin:s3" with a bad port, so
// neither URL.Redacted nor url.Parse's error hides it.
func TestNewClientErrorsHideURLPassword(t *testing.T) {
	for _, raw := range []string{
		"admin:s3cret@core:8080",
		"//admin:s3cret@core:8080",
		"http//admin:s3cret@core:8080",
		"ftp://admin:s3cret@core",
		"https://admin:s3cret@core?x=1",
		"https://admin:s3cret@",
		"http://admin:s3/cret@core",
		"http://admin:s3cret@core:port",
	} {
		t.Run(raw, func(t *testing.T) {
			cfg := Config{URL: raw, Username: "admin"}
			_, err := NewClient(cfg, nil)
			if err == nil {
				t.Fatal("NewClient accepted the URL")
			}
			var b strings.Builder
			slog.New(slog.NewTextHandler(&b, nil)).Info("config", "cfg", cfg)
			out := err.Error() + b.String() + fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
			if strings.Contains(out, "s3") {
				t.Errorf("password shown: %s", out)
			}
			if !strings.Contains(err.Error(), "Config.URL") {
				t.Errorf("error %q does not name Config.URL", err)
			}
		})
	}
}

// NewClient warns, once and without the password, when TLS verification of
// core is turned off; it says nothing of TLS when verification is on.
func TestNewClientWarnsInsecureSkipVerify(t *testing.T) {
	for _, tt := range []struct {
		name     string
		insecure bool
		want     int
	}{
		{name: "verification off", insecure: true, want: 1},
		{name: "verification on", insecure: false, want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			logger := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelWarn}))
			cfg := Config{URL: "https://admin:s3cret@core:8080", Username: "admin", InsecureSkipVerify: tt.insecure}
			if _, err := NewClient(cfg, logger); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if got := strings.Count(out, "level=WARN"); got != tt.want {
				t.Fatalf("%d warnings, want %d: %s", got, tt.want, out)
			}
			if tt.want > 0 && !strings.Contains(out, "InsecureSkipVerify") {
				t.Errorf("warning does not name InsecureSkipVerify: %s", out)
			}
			if strings.Contains(out, "s3cret") {
				t.Errorf("password logged: %s", out)
			}
		})
	}
}
