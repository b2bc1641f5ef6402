package openhim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-resty/resty/v2"

	"github.com/cht-interop/openhim-mediator-go/mediator/internal/redact"
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
	// [NewClient] logs a warning when it is set.
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
		slog.String("url", redact.URL(c.URL)),
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
		redact.URL(c.URL), c.Username, redactSecret(c.Password), c.Auth, c.InsecureSkipVerify, c.CAFile, c.CertFile, c.KeyFile, c.Timeout, c.CoreVersion)
}

// GoString is String, so %#v does not print the password either.
func (c Config) GoString() string { return "openhim.Config" + c.String() }

func redactSecret(s string) string {
	if s == "" {
		return ""
	}
	return redactedText
}

// Client talks to the OpenHIM core API. It is safe for concurrent use.
// Create it with [NewClient].
type Client struct {
	base        *url.URL      // nil: standalone
	rc          *resty.Client // retries network errors and 5xx
	once        *resty.Client // no retries: heartbeats, salt fetch, login
	log         *slog.Logger
	auth        *authState
	timeout     time.Duration
	coreVersion int
	maxRetries  int
	waitMin     time.Duration
	waitMax     time.Duration
	// passportCore: GET /me showed core to be 7.2 or later (see
	// coreHasSessions); only a positive answer is kept.
	passportCore atomic.Bool
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
		// Not wrapped: url.Parse's reason can quote part of the userinfo
		// (a port "invalid" because a password holds a '/').
		return nil, fmt.Errorf("openhim: invalid Config.URL %q", redact.URL(cfg.URL))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("openhim: Config.URL must be http:// or https://, got %q", redact.URL(cfg.URL))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("openhim: Config.URL has no host: %q", redact.URL(cfg.URL))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("openhim: Config.URL must not have a query or fragment: %q", redact.URL(cfg.URL))
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
	hc, err := buildHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.InsecureSkipVerify {
		logger.Warn("openhim: TLS certificate verification of core is off (InsecureSkipVerify): "+
			"anyone who can intercept the traffic can impersonate core and read the credentials; use it only on a test machine",
			"url", redact.URL(cfg.URL))
	}
	c.rc, c.once = c.newResty(hc, c.maxRetries), c.newResty(hc, 0)
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

// apiResponse is a fully read core API response.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
	// tokenRefused is tokenSessionRefused's verdict on the answer: core
	// 7.2 or later refusing a token-authenticated call over plain http.
	tokenRefused bool
}

// Do sends one API request with the client's authentication, timeout and
// retry policy, and decodes a JSON response into out (which may be nil,
// or a *[]byte to receive the raw body). in, if not nil, is sent as JSON
// (a []byte or json.RawMessage is sent as is). path is the escaped path
// below the base URL, e.g. "/mediators/" + url.PathEscape(urn). A non-2xx
// answer is returned as an [*APIError].
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.call(ctx, method, path, in, true)
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

// newResty returns the resty client the Client sends with: hc's transport,
// TLS settings and cookie jar (shared, so a session login serves every
// call), a timeout per attempt, a response size limit, retries with
// resty's capped exponential backoff with jitter, the credentials of the
// active auth scheme added by a request middleware, and a debug line per
// answer.
func (c *Client) newResty(hc *http.Client, retries int) *resty.Client {
	return resty.NewWithClient(hc).
		SetLogger(restyLogger{c.log}).
		SetTimeout(c.timeout).
		SetResponseBodyLimit(maxResponseBytes).
		SetHeader("Accept", "application/json").
		SetRetryCount(retries).
		SetRetryWaitTime(c.waitMin).
		SetRetryMaxWaitTime(c.waitMax).
		AddRetryHook(c.logRetry).
		OnBeforeRequest(c.authenticate).
		OnAfterResponse(c.logCall)
}

// authKey marks, in a request's context, a call made with the client's
// credentials; its value records the credential generation the last
// attempt used. The auth schemes' own requests (salt, login) have none.
type authKey struct{}

type authAttempt struct{ gen uint64 }

// authenticate is the request middleware that adds the credentials of the
// active scheme to every attempt, fetching the token salt or logging in
// first when the scheme needs it.
func (c *Client) authenticate(_ *resty.Client, r *resty.Request) error {
	st, _ := r.Context().Value(authKey{}).(*authAttempt)
	if st == nil {
		return nil
	}
	gen, err := c.auth.prepare(r.Context(), c)
	if err != nil {
		return err
	}
	st.gen = gen
	c.auth.apply(r.Header)
	return nil
}

// logCall logs each answer at debug level.
func (c *Client) logCall(_ *resty.Client, r *resty.Response) error {
	c.log.DebugContext(r.Request.Context(), "openhim api call", "method", r.Request.Method, "path", r.Request.RawRequest.URL.Path,
		"status", r.StatusCode(), "duration", r.Time().Round(time.Microsecond).String())
	return nil
}

// logRetry logs a failed attempt at debug level: the caller reports an
// outage once (the Lifecycle does).
func (c *Client) logRetry(r *resty.Response, err error) {
	attrs := []any{"error", err}
	if r != nil && r.Request != nil {
		attrs = append(attrs, "method", r.Request.Method, "attempt", r.Request.Attempt)
		if err == nil {
			attrs = append(attrs, "status", r.StatusCode())
		}
	}
	c.log.Debug("openhim api call failed", attrs...)
}

// restyLogger sends resty's own messages to the client's logger at debug
// level (they repeat what the errors and logCall say).
type restyLogger struct{ log *slog.Logger }

func (l restyLogger) Errorf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l restyLogger) Warnf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l restyLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// call sends an API request with the client's credentials, retried (when
// retry is set) after a network error or a 5xx. A 401 lets the auth scheme
// recover once (session re-login, token salt refresh, auto's fallback from
// basic to token or a session) before the request is sent again.
func (c *Client) call(ctx context.Context, method, path string, in any, retry bool) (*apiResponse, error) {
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
	rc := c.once
	if retry {
		rc = c.rc
	}
	for resent := false; ; resent = true {
		st := &authAttempt{}
		resp, err := c.send(context.WithValue(ctx, authKey{}, st), rc, method, path, body, in != nil)
		switch {
		case err != nil:
			return nil, err
		case resp.status == http.StatusUnauthorized && !resent:
			recovered, err := c.auth.recover(ctx, c, st.gen)
			if err != nil {
				return nil, err
			}
			if recovered {
				continue
			}
			return nil, c.auth.refused(c.apiError(method, path, resp))
		case resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden:
			return nil, c.auth.refused(c.apiError(method, path, resp))
		case resp.tokenRefused:
			return nil, tokenOverHTTP(c.apiError(method, path, resp))
		case resp.status >= 300:
			return nil, c.apiError(method, path, resp)
		}
		return resp, nil
	}
}

// attempt sends one request without credentials and without retries: the
// auth schemes' own calls (salt, login).
func (c *Client) attempt(ctx context.Context, method, path string, body []byte, hasBody bool) (*apiResponse, error) {
	return c.send(context.WithValue(ctx, authKey{}, (*authAttempt)(nil)), c.once, method, path, body, hasBody)
}

// send executes one request with rc and returns its answer, whatever its
// status, or the error of the last attempt, with the URL redacted.
func (c *Client) send(ctx context.Context, rc *resty.Client, method, path string, body []byte, hasBody bool) (*apiResponse, error) {
	authenticated, _ := ctx.Value(authKey{}).(*authAttempt)
	// tokenRefused is tokenSessionRefused of an answer, worked out once:
	// the retry condition asks it of every 5xx, and the answer it stops
	// at (or the only one, without retries) carries it to call, so both
	// agree even if another call switches the auth scheme in between.
	var seen *resty.Response
	var refused bool
	tokenRefused := func(r *resty.Response) bool {
		if r != seen {
			seen, refused = r, c.tokenSessionRefused(ctx, authenticated != nil, r.StatusCode(), r.Body())
		}
		return refused
	}
	req := rc.R().SetContext(ctx).AddRetryCondition(func(r *resty.Response, err error) bool {
		return ctx.Err() == nil && retryable(r, err) && (err != nil || !tokenRefused(r))
	})
	if hasBody {
		req.SetHeader("Content-Type", "application/json").SetBody(body)
	}
	res, err := req.Execute(method, c.base.String()+path)
	if err == nil {
		return &apiResponse{status: res.StatusCode(), header: res.Header(), body: res.Body(), tokenRefused: tokenRefused(res)}, nil
	}
	var api *APIError
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("openhim: %s %s: %w", method, c.redactedURL(path), ctx.Err())
	case errors.Is(err, ErrConfig) || errors.As(err, &api): // from the salt fetch or login
		return nil, err
	case errors.Is(err, resty.ErrResponseBodyTooLarge):
		return nil, fmt.Errorf("openhim: %s %s: response larger than %d bytes", method, c.redactedURL(path), maxResponseBytes)
	}
	return nil, tlsFailure(fmt.Errorf("openhim: %s %s: %w", method, c.redactedURL(path), stripURLErr(err)))
}

// retryable is the retry condition: a network error or a 5xx from core,
// including from the salt fetch or login, is retried; any other answer is
// final, and so is an error a setting must fix (see [ErrConfig]), an
// answer over the size limit, or core's 500 to the update of an unknown
// transaction (see [isUnknownTransaction]).
func retryable(r *resty.Response, err error) bool {
	if err != nil {
		var api *APIError
		switch {
		case errors.Is(err, ErrConfig), errors.Is(err, resty.ErrResponseBodyTooLarge), errors.Is(tlsFailure(err), ErrConfig):
			return false
		case errors.As(err, &api):
			return api.StatusCode >= 500
		}
		return true
	}
	if r == nil || r.StatusCode() < 500 {
		return false
	}
	// Core's 500 to the update of an unknown transaction is final.
	return !isUnknownTransaction(r.StatusCode(), coreMessage(r.Body()))
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
