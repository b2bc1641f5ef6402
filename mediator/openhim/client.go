package openhim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults of [Config].
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxRetries   = 3
	DefaultRetryWaitMin = 250 * time.Millisecond
	DefaultRetryWaitMax = 5 * time.Second
)

// maxResponseBytes bounds how much of a core API response is read.
const maxResponseBytes = 16 << 20

// Config configures the connection to the OpenHIM core API. The zero
// value of every field except URL, Username and Password is a usable
// default. Password never appears in logs: Config redacts it in
// LogValue, String and GoString.
type Config struct {
	// URL is the core API base URL, e.g. https://openhim-core:8080. A path
	// prefix is kept (core behind a reverse proxy). "" means standalone:
	// no core, every API call returns ErrNoCore. Plain http:// is allowed
	// (core's api.protocol "http").
	URL string
	// Username is the core user's email; Password its password.
	Username, Password string
	// Auth selects the authentication scheme; "" means AuthAuto.
	Auth AuthScheme
	// InsecureSkipVerify turns TLS certificate verification off: anyone
	// who can intercept the traffic can then impersonate core and read
	// the credentials. Core's bundled default certificate has no SAN, so
	// Go rejects it even when pinned with CAFile; give core a certificate
	// whose subjectAltName names its host instead, and use this only on a
	// test machine. A verification failure is an [ErrConfig] error.
	InsecureSkipVerify bool
	// CAFile is a PEM bundle of CAs to trust instead of the system pool.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key presented
	// to core (mutual TLS). Both or neither.
	CertFile, KeyFile string
	// Timeout bounds each HTTP attempt; 0 means DefaultTimeout.
	Timeout time.Duration
	// CoreVersion is the target core major version used for local
	// validation (route rules differ between 7 and 8); 0 means
	// DefaultCoreVersion (8).
	CoreVersion int
	// HTTPClient is optional; its Transport (and CheckRedirect) are used as
	// the base. The TLS options above are applied to a clone of its
	// Transport when that is an *http.Transport.
	HTTPClient *http.Client
	// MaxRetries is the number of retries after a network error or a 5xx;
	// 0 means DefaultMaxRetries and a negative value disables retries.
	// 400, 401, 403 and 404 are never retried, nor an [ErrConfig] error.
	MaxRetries int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff (with
	// jitter) between retries; 0 means DefaultRetryWaitMin / Max.
	RetryWaitMin, RetryWaitMax time.Duration
}

// LogValue logs the config with the password redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(c.URL)),
		slog.String("username", c.Username),
		slog.String("password", redactSecret(c.Password)),
		slog.String("auth", string(c.Auth)),
		slog.Bool("insecureSkipVerify", c.InsecureSkipVerify),
		slog.Int("coreVersion", c.CoreVersion),
	)
}

// String formats the config with the password redacted.
func (c Config) String() string {
	return fmt.Sprintf("{URL:%s Username:%s Password:%s Auth:%s InsecureSkipVerify:%t CAFile:%s CertFile:%s KeyFile:%s Timeout:%s CoreVersion:%d}",
		redactURL(c.URL), c.Username, redactSecret(c.Password), c.Auth, c.InsecureSkipVerify, c.CAFile, c.CertFile, c.KeyFile, c.Timeout, c.CoreVersion)
}

// GoString is String, so %#v does not print the password either.
func (c Config) GoString() string { return "openhim.Config" + c.String() }

func redactSecret(s string) string {
	if s == "" {
		return ""
	}
	return redactedText
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<invalid URL>"
	}
	return u.Redacted()
}

// Client talks to the OpenHIM core API. It is safe for concurrent use.
// Create it with [NewClient].
type Client struct {
	base        *url.URL // nil: standalone
	hc          *http.Client
	log         *slog.Logger
	auth        *authState
	timeout     time.Duration
	coreVersion int
	maxRetries  int
	waitMin     time.Duration
	waitMax     time.Duration
}

// NewClient validates cfg and returns a client. It does no network I/O
// (it reads CAFile, CertFile and KeyFile). If logger is nil, nothing is
// logged.
func NewClient(cfg Config, logger *slog.Logger) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		log:         logger,
		timeout:     cfg.Timeout,
		coreVersion: cfg.CoreVersion,
		maxRetries:  cfg.MaxRetries,
		waitMin:     cfg.RetryWaitMin,
		waitMax:     cfg.RetryWaitMax,
	}
	if c.timeout < 0 {
		return nil, errors.New("openhim: Config.Timeout must not be negative")
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.coreVersion < 0 {
		return nil, errors.New("openhim: Config.CoreVersion must not be negative")
	}
	if c.coreVersion == 0 {
		c.coreVersion = DefaultCoreVersion
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.waitMin <= 0 {
		c.waitMin = DefaultRetryWaitMin
	}
	if c.waitMax <= 0 {
		c.waitMax = DefaultRetryWaitMax
	}
	if c.waitMax < c.waitMin {
		c.waitMax = c.waitMin
	}
	scheme := cfg.Auth
	if scheme == "" {
		scheme = AuthAuto
	}
	switch scheme {
	case AuthAuto, AuthBasic, AuthToken, AuthSession:
	default:
		return nil, fmt.Errorf("openhim: unknown Config.Auth %q (want basic, token, session or auto)", cfg.Auth)
	}
	if cfg.URL == "" {
		return c, nil // standalone
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("openhim: invalid Config.URL: %w", stripURLErr(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("openhim: Config.URL must be http:// or https://, got %q", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("openhim: Config.URL has no host: %q", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("openhim: Config.URL must not have a query or fragment: %q", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	username, password := cfg.Username, cfg.Password
	if u.User != nil { // credentials in the URL
		if username == "" {
			username = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && password == "" {
			password = p
		}
		u.User = nil
	}
	if username == "" {
		return nil, errors.New("openhim: Config.Username is required with a core URL")
	}
	c.base = u
	c.auth = &authState{scheme: scheme, username: username, password: password}
	if scheme == AuthAuto || scheme == AuthBasic {
		c.auth.active = AuthBasic
	} else {
		c.auth.active = scheme
	}
	c.hc, err = buildHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// stripURLErr avoids echoing a URL (which may hold a password) in errors.
func stripURLErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func buildHTTPClient(cfg Config) (*http.Client, error) {
	var base http.RoundTripper
	var checkRedirect func(*http.Request, []*http.Request) error
	if cfg.HTTPClient != nil {
		base = cfg.HTTPClient.Transport
		checkRedirect = cfg.HTTPClient.CheckRedirect
	}
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSHandshakeTimeout = 10 * time.Second
		t.ResponseHeaderTimeout = 0 // bounded by the per-attempt context
		t.MaxIdleConnsPerHost = 4
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		base = t
	}
	if cfg.InsecureSkipVerify || cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
		t, ok := base.(*http.Transport)
		if !ok {
			return nil, fmt.Errorf("openhim: TLS options need Config.HTTPClient.Transport to be an *http.Transport, got %T", base)
		}
		t = t.Clone()
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if t.TLSClientConfig != nil {
			tc = t.TLSClientConfig.Clone()
		}
		if cfg.InsecureSkipVerify {
			tc.InsecureSkipVerify = true
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("openhim: read Config.CAFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("openhim: Config.CAFile %s holds no PEM certificate", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		if (cfg.CertFile == "") != (cfg.KeyFile == "") {
			return nil, errors.New("openhim: Config.CertFile and KeyFile must be set together")
		}
		if cfg.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("openhim: load client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		t.TLSClientConfig = tc
		base = t
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("openhim: cookie jar: %w", err)
	}
	if checkRedirect == nil {
		// Never follow redirects: the auth-* headers would follow them.
		checkRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return &http.Client{Transport: base, Jar: jar, CheckRedirect: checkRedirect}, nil
}

// CoreVersion returns the core major version used for validation.
func (c *Client) CoreVersion() int { return c.coreVersion }

// Standalone reports whether the client has no core URL.
func (c *Client) Standalone() bool { return c.base == nil }

// response is a fully read core API response.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

// Do sends one API request with the client's authentication, timeout and
// retry policy, and decodes a JSON response into out (which may be nil,
// or a *[]byte to receive the raw body). in, if not nil, is sent as JSON
// (a []byte or json.RawMessage is sent as is). path is the escaped path
// below the base URL, e.g. "/mediators/" + url.PathEscape(urn). A non-2xx
// answer is returned as an [*APIError].
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.call(ctx, method, path, in)
	if err != nil {
		return err
	}
	return decodeInto(resp, out, method, c.redactedURL(path))
}

func decodeInto(resp *apiResponse, out any, method, u string) error {
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = resp.body
		return nil
	}
	if len(bytes.TrimSpace(resp.body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return fmt.Errorf("openhim: %s %s: decode response: %w", method, u, err)
	}
	return nil
}

func (c *Client) redactedURL(path string) string {
	if c.base == nil {
		return path
	}
	return c.base.Redacted() + path
}

// call runs the retry loop around attempt.
func (c *Client) call(ctx context.Context, method, path string, in any) (*apiResponse, error) {
	return c.callN(ctx, method, path, in, c.maxRetries)
}

// callN is call with an explicit retry budget.
func (c *Client) callN(ctx context.Context, method, path string, in any, maxRetries int) (*apiResponse, error) {
	if c.base == nil {
		return nil, ErrNoCore
	}
	var body []byte
	switch b := in.(type) {
	case nil:
	case []byte:
		body = b
	case json.RawMessage:
		body = b
	default:
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("openhim: %s %s: encode request: %w", method, path, err)
		}
	}
	for try := 0; ; try++ {
		resp, err := c.authedAttempt(ctx, method, path, body, in != nil)
		retry := false
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("openhim: %s %s: %w", method, c.redactedURL(path), ctx.Err())
			}
			var ae *APIError
			switch {
			case errors.Is(err, ErrConfig):
				return nil, err // a setting must change
			case errors.As(err, &ae): // from the salt fetch or login
				retry = ae.StatusCode >= 500
			default:
				retry = true // network error
			}
		case resp.status >= 500:
			err = c.apiError(method, path, resp)
			retry = true
		case resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden:
			return nil, c.auth.refused(c.apiError(method, path, resp))
		case resp.status >= 300:
			return nil, c.apiError(method, path, resp)
		default:
			return resp, nil
		}
		if !retry || try >= maxRetries {
			return nil, err
		}
		wait := retryBackoff(c.waitMin, c.waitMax, try)
		// Debug: the caller reports the outage once (the Lifecycle does).
		c.log.DebugContext(ctx, "openhim api call failed; retrying", "method", method, "path", path,
			"attempt", try+1, "retry_in", wait, "error", err)
		if err := sleepOrDone(ctx, wait); err != nil {
			return nil, fmt.Errorf("openhim: %s %s: %w", method, c.redactedURL(path), err)
		}
	}
}

// authedAttempt sends one request; on a 401 it lets the auth scheme
// recover once (session re-login, token salt refresh, auto fallback to
// token) and resends.
func (c *Client) authedAttempt(ctx context.Context, method, path string, body []byte, hasBody bool) (*apiResponse, error) {
	gen, err := c.auth.prepare(ctx, c)
	if err != nil {
		return nil, err
	}
	resp, err := c.attempt(ctx, method, path, body, hasBody, true)
	if err != nil || resp.status != http.StatusUnauthorized {
		return resp, err
	}
	recovered, rerr := c.auth.recover(ctx, c, gen)
	if rerr != nil {
		return nil, rerr
	}
	if !recovered {
		return resp, nil
	}
	return c.attempt(ctx, method, path, body, hasBody, true)
}

// attempt sends one HTTP request and reads the whole response.
func (c *Client) attempt(ctx context.Context, method, path string, body []byte, hasBody, withAuth bool) (*apiResponse, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, c.base.String()+path, rd)
	if err != nil {
		return nil, fmt.Errorf("openhim: %s %s: %w", method, c.redactedURL(path), stripURLErr(err))
	}
	req.Header.Set("Accept", "application/json")
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if withAuth {
		c.auth.apply(req)
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, tlsFailure(fmt.Errorf("openhim: %s %s: %w", method, c.redactedURL(path), stripURLErr(err)))
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("openhim: %s %s: read response: %w", method, c.redactedURL(path), err)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("openhim: %s %s: response larger than %d bytes", method, c.redactedURL(path), maxResponseBytes)
	}
	c.log.DebugContext(ctx, "openhim api call", "method", method, "path", path, "status", res.StatusCode,
		"duration", time.Since(start).Round(time.Microsecond).String())
	return &apiResponse{status: res.StatusCode, header: res.Header, body: data}, nil
}

func (c *Client) apiError(method, path string, resp *apiResponse) *APIError {
	return &APIError{StatusCode: resp.status, Method: method, URL: c.redactedURL(path), Message: coreMessage(resp.body)}
}

// coreMessage trims core's (text or JSON) error body to a short message.
func coreMessage(body []byte) string {
	s := strings.TrimSpace(string(body))
	var obj map[string]any
	if json.Unmarshal(body, &obj) == nil {
		for _, k := range []string{"error", "message", "result"} {
			if m, ok := obj[k].(string); ok && m != "" {
				s = m
				break
			}
		}
	}
	const max = 512
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// backoff returns the wait before retry number try (0-based): exponential
// from min, capped at max, with "equal jitter" (uniform in [d/2, d]).
func retryBackoff(min, max time.Duration, try int) time.Duration {
	d := max
	if try < 62 {
		if e := min << uint(try); e > 0 && e < max {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleepOrDone waits d or until ctx is done.
func sleepOrDone(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isNetworkError reports errors that are not API answers.
func isNetworkError(err error) bool {
	var ne net.Error
	var ae *APIError
	return errors.As(err, &ne) || (err != nil && !errors.As(err, &ae) && !errors.Is(err, ErrInvalid))
}
