package cht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/redact"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/release"
)

// Config configures a [Client]. The zero value of every field but URL is a
// usable default.
type Config struct {
	// URL is the CHT base URL, e.g. https://cht.example.org. It may have a
	// path prefix. Credentials embedded as user:pass@ are used when
	// Username is empty, and are never logged or put in errors.
	URL string
	// Username and Password authenticate every request (basic auth), or
	// log in once via POST /_session when Session is true. Config redacts
	// Password (and credentials in URL) when it is logged or printed.
	Username string
	Password string
	// Session uses cookie authentication (POST /_session) instead of
	// sending basic credentials with every request. An expired session is
	// renewed once per request; a failed login is never retried.
	Session bool
	// HTTPClient is copied and used for all requests; nil uses a new client
	// with resty's default transport. Its Jar and Timeout are not used.
	HTTPClient *http.Client
	// Timeout bounds each attempt of a request; 0 means 30s. Long-polling
	// _changes requests get their poll timeout on top.
	Timeout time.Duration
	// HydrateBatchSize is the number of ids per hydrate request; 0 means 100.
	HydrateBatchSize int
	// MaxRetries is how often a request that is safe to retry is retried
	// after 429, 5xx or a network error; 0 means 3, negative disables.
	MaxRetries int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff; 0 means
	// 500ms and 30s. A Retry-After header is honoured up to RetryWaitMax.
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxResponseBytes bounds the size of a response body; 0 means 64 MiB.
	// Larger answers (e.g. a huge _changes page) fail with an error.
	MaxResponseBytes int
	// DB is the CouchDB database proxied by the API; "" means "medic".
	DB string
	// UserAgent is sent with each request; "" means a library default.
	UserAgent string
	// Version, when set (e.g. "4.10.0"), is the CHT version for good:
	// it skips version detection. Unset, the client detects the version
	// with GET /api/deploy-info at first need, and again at the first need
	// 10 minutes or more after, so that it learns of an upgrade of CHT
	// without a restart (the Watch of package cht/outbound detects it
	// again at each read of the app settings). A detection again that
	// fails keeps the version last detected.
	Version string
	// Logger receives debug logs of requests and retries, a WARN line
	// when the CHT version cannot be detected again (once, until it can)
	// and an INFO line when the detected version changes; nil discards.
	// Neither credentials nor query strings are logged.
	Logger *slog.Logger
}

// redacted returns cfg with its secrets replaced by "REDACTED".
func (cfg Config) redacted() Config {
	if cfg.Password != "" {
		cfg.Password = "REDACTED"
	}
	cfg.URL = redact.URL(cfg.URL)
	return cfg
}

// String implements fmt.Stringer without the password.
func (cfg Config) String() string { return fmt.Sprintf("%+v", configFields(cfg.redacted())) }

// GoString implements fmt.GoStringer, so %#v does not print the password.
func (cfg Config) GoString() string { return fmt.Sprintf("%#v", configFields(cfg.redacted())) }

// LogValue implements slog.LogValuer: the settings a log reader needs,
// without the password.
func (cfg Config) LogValue() slog.Value {
	r := cfg.redacted()
	return slog.GroupValue(
		slog.String("url", r.URL), slog.String("username", r.Username),
		slog.String("password", r.Password), slog.Bool("session", r.Session),
		slog.Duration("timeout", r.Timeout), slog.Int("max_retries", r.MaxRetries),
		slog.String("db", r.DB), slog.String("version", r.Version),
	)
}

// configFields is Config without its methods, for formatting.
type configFields Config

// Client is a CHT API client. It is safe for concurrent use and holds one
// http.Client for all requests. Create it with [New].
type Client struct {
	common service

	// Services, one per resource.
	Contacts *ContactsService
	Reports  *ReportsService
	Records  *RecordsService
	Docs     *DocsService

	rc         *resty.Client
	base       *url.URL // without credentials
	baseText   string   // redacted base for messages
	hydrateURL string   // endpoint of the hydrate API
	user       string
	pass       string
	session    bool
	timeout    time.Duration
	batch      int
	db         string
	log        *slog.Logger

	loginMu chan struct{} // one slot: serialises logins; waiting ends with the caller's context
	sessMu  sync.Mutex    // guards cookie
	cookie  string        // AuthSession cookie value in session mode

	verMu      sync.Mutex       // guards ver, verAt and verFailing
	ver        *release.Version // Config.Version, or the version last detected; nil: none yet
	verFixed   bool             // ver is Config.Version: never detected
	verAt      time.Time        // when the last detection that reached CHT started
	verFailing bool             // the last re-detection failed (logged once)
	verSlot    chan struct{}    // one slot: one detection at a time
	now        func() time.Time // the clock of verAt
}

type service struct{ client *Client }

// DefaultUserAgent is sent when Config.UserAgent is empty.
const defaultUserAgent = "openhim-mediator-go-cht/1"

// New validates cfg and returns a client. It does no I/O.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("cht: config: URL is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cht: config: URL: %w", redactURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cht: config: URL %q must be http(s)://host[/prefix]", (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String())
	}
	user, pass := cfg.Username, cfg.Password
	if u.User != nil {
		if user == "" {
			user = u.User.Username()
			pass, _ = u.User.Password()
		}
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if cfg.Session && user == "" {
		return nil, errors.New("cht: config: Session requires Username and Password")
	}
	if cfg.Timeout < 0 || cfg.HydrateBatchSize < 0 || cfg.RetryWaitMin < 0 || cfg.RetryWaitMax < 0 || cfg.MaxResponseBytes < 0 {
		return nil, errors.New("cht: config: Timeout, HydrateBatchSize, RetryWait* and MaxResponseBytes must not be negative")
	}
	maxResp := cfg.MaxResponseBytes
	if maxResp == 0 {
		maxResp = 64 << 20
	}
	c := &Client{
		loginMu: make(chan struct{}, 1), verSlot: make(chan struct{}, 1), now: time.Now,
		base: u, baseText: u.String(), user: user, pass: pass, session: cfg.Session,
		timeout: cfg.Timeout, batch: cfg.HydrateBatchSize, db: cfg.DB, log: cfg.Logger,
	}
	c.hydrateURL = c.endpoint(request{path: hydratePath})
	if c.timeout == 0 {
		c.timeout = 30 * time.Second
	}
	if c.batch == 0 {
		c.batch = 100
	}
	retries := cfg.MaxRetries
	switch {
	case retries == 0:
		retries = 3
	case retries < 0:
		retries = 0
	}
	waitMin, waitMax := cfg.RetryWaitMin, cfg.RetryWaitMax
	if waitMin == 0 {
		waitMin = 500 * time.Millisecond
	}
	if waitMax == 0 {
		waitMax = 30 * time.Second
	}
	waitMax = max(waitMax, waitMin)
	if c.db == "" {
		c.db = "medic"
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Version != "" {
		v, err := release.Parse(cfg.Version)
		if err != nil {
			return nil, fmt.Errorf("cht: config: Version: %w", err)
		}
		c.ver, c.verFixed = &v, true
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	// Each attempt gets its own deadline (attemptTransport), so that a slow
	// attempt is retried within the caller's context; the session cookie
	// is the client's own (see session.go), so no jar.
	hc.Jar, hc.Timeout = nil, 0
	hc.Transport = attemptTransport{next: hc.Transport, limit: int64(maxResp)}
	hc.CheckRedirect = safeRedirect(hc.CheckRedirect)
	ua := cfg.UserAgent
	if ua == "" {
		ua = defaultUserAgent
	}
	c.rc = resty.NewWithClient(hc).
		SetCookieJar(nil).
		SetLogger(quietLogger{}). // the middleware below logs, without URLs' queries
		SetDisableWarn(true).
		SetHeader("User-Agent", ua).
		SetHeader("Accept", "application/json").
		SetRetryCount(retries).
		SetRetryWaitTime(waitMin).
		SetRetryMaxWaitTime(waitMax).
		SetRetryAfter(retryAfter).
		OnAfterResponse(c.logResponse).
		AddRetryHook(c.logRetry)
	if c.session {
		c.rc.OnBeforeRequest(c.sendSession).OnAfterResponse(c.keepSession)
	} else if user != "" {
		c.rc.SetBasicAuth(user, pass)
	}
	c.common.client = c
	c.Contacts = (*ContactsService)(&c.common)
	c.Reports = (*ReportsService)(&c.common)
	c.Records = (*RecordsService)(&c.common)
	c.Docs = (*DocsService)(&c.common)
	return c, nil
}

// request describes one API call.
type request struct {
	method  string
	path    string     // escaped path below the base URL, starting with "/"
	url     string     // c.endpoint of path without query, if known
	query   url.Values // may be nil
	body    any        // encoded as JSON; []byte is sent as is
	ctype   string     // content type of a []byte body; "" means application/json
	retry   bool       // safe to retry on 5xx and network errors
	timeout time.Duration
	noAuth  bool // login request
}

// response is a successful answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (c *Client) endpoint(r request) string {
	u := *c.base
	u.RawPath = ""
	p := c.base.EscapedPath() + r.path
	u.Path, _ = url.PathUnescape(p)
	u.RawPath = p
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	return u.String()
}

// call is what the middleware, the retry condition and the transport know
// of the API call an attempt belongs to; it travels in the request context.
type call struct {
	path    string        // for logs: below the base URL, without query
	retry   bool          // safe to retry on 5xx and network errors
	login   bool          // the session login: sent without the session cookie
	timeout time.Duration // deadline of one attempt
	ctx     context.Context
}

type callKey struct{}

func callOf(ctx context.Context) *call {
	cl, _ := ctx.Value(callKey{}).(*call)
	return cl
}

// callCtx is the caller's context carrying its call: what
// context.WithValue(ctx, callKey{}, &call) gives, in one allocation
// instead of two.
type callCtx struct {
	context.Context
	call call
}

// Value implements context.Context.
func (c *callCtx) Value(key any) any {
	if _, ok := key.(callKey); ok {
		return &c.call
	}
	return c.Context.Value(key)
}

// jsonContentType is the Content-Type of JSON bodies. Exactly this: CHT
// rejects "; charset=utf-8" on most JSON routes. Requests share it, as
// resty's requests share the client's headers: it is never modified.
var jsonContentType = []string{"application/json"}

// do performs r, retried by resty as shouldRetry decides, and decodes a
// 2xx JSON body into out (if non-nil). Non-2xx answers are returned as
// *APIError. In session mode it logs in first, and once more when CHT
// answers 401 (the session expired).
func (c *Client) do(ctx context.Context, r request, out any) (*response, error) {
	var body any // nil or a []byte, for resty's SetBody
	if r.body != nil {
		switch b := r.body.(type) {
		case []byte:
			if b != nil {
				body = r.body // as it is: no new interface value
			}
		default:
			enc, err := json.Marshal(b)
			if err != nil {
				return nil, fmt.Errorf("cht: %s %s: encode body: %w", r.method, r.path, err)
			}
			body = enc
		}
	}
	target := r.url
	if target == "" {
		target = c.endpoint(r)
	}
	cc := &callCtx{Context: ctx, call: call{path: r.path, retry: r.retry, login: r.noAuth, timeout: c.timeout + r.timeout, ctx: ctx}}
	for relogged := false; ; relogged = true {
		if c.session && !r.noAuth {
			if err := c.ensureSession(ctx); err != nil {
				return nil, err
			}
		}
		req := c.rc.R().SetContext(cc).AddRetryCondition(shouldRetry)
		if body != nil {
			if r.ctype == "" {
				req.Header["Content-Type"] = jsonContentType
			} else {
				req.SetHeader("Content-Type", r.ctype)
			}
			req.SetBody(body)
		}
		res, err := req.Execute(r.method, target)
		// Messages name c.baseText+r.path: no query (may hold phone
		// numbers), no credentials.
		if err != nil {
			return nil, fmt.Errorf("cht: %s %s: %w", r.method, c.baseText+r.path, attemptError(ctx, err, cc.call.timeout))
		}
		status := res.StatusCode()
		if status >= 200 && status < 300 {
			resp := &response{status: status, header: res.Header(), body: res.Body()}
			if out != nil && len(resp.body) > 0 {
				if err := json.Unmarshal(resp.body, out); err != nil {
					return resp, fmt.Errorf("cht: %s %s: decode response: %w", r.method, c.baseText+r.path, err)
				}
			}
			return resp, nil
		}
		if status == http.StatusUnauthorized && c.session && !r.noAuth && !relogged {
			// The session cookie expired: log in again, once.
			c.dropSession(res.Request.RawRequest)
			continue
		}
		return nil, newAPIError(r.method, c.baseText+r.path, status, res.Header(), res.Body())
	}
}

// shouldRetry is the only retry condition (it replaces resty's default of
// retrying every error): 429 always (CHT's rate limit; the request was not
// processed), 5xx but 501 and network errors only for calls safe to retry,
// never 401 (CHT rate-limits failed logins) nor a body over the limit.
func shouldRetry(res *resty.Response, err error) bool {
	if res == nil || res.Request == nil {
		return false
	}
	cl := callOf(res.Request.Context())
	if cl == nil || cl.ctx.Err() != nil {
		return false
	}
	if err != nil {
		return cl.retry && !errors.Is(err, resty.ErrResponseBodyTooLarge)
	}
	status := res.StatusCode()
	return status == http.StatusTooManyRequests ||
		(cl.retry && status >= 500 && status != http.StatusNotImplemented)
}

// retryAfter waits as CHT's Retry-After header says (capped by resty at
// RetryWaitMax), or returns 0 for resty's exponential backoff with jitter.
func retryAfter(_ *resty.Client, res *resty.Response) (time.Duration, error) {
	return parseRetryAfter(res.Header().Get("Retry-After"), time.Now()), nil
}

// attemptError makes a request error fit for messages: the caller's own
// cancellation as is, an attempt's deadline named, and no URL (the caller
// reports it, redacted).
func attemptError(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("attempt timed out after %v: %w", timeout, errAttemptTimeout)
	}
	return err
}

// errAttemptTimeout marks an attempt that exceeded Config.Timeout while
// the caller's context was still live.
var errAttemptTimeout = errors.New("attempt timeout")

// safeRedirect wraps an http.Client's CheckRedirect (nil: net/http's
// default, at most 10 redirects) so that the client follows a redirect
// only with the same method (net/http turns a POST or PUT answered 301,
// 302 or 303 into a GET without its body: the write would not be done,
// and the GET's answer taken for it) and only to the same host and port,
// or from http to https on the same host name: net/http would send a
// 307's body (a person, a report) to another host, and the credentials to
// a host of the same name over plain http. The redirect is then the
// answer, an *APIError with its status.
func safeRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		from, to := via[0].URL, req.URL
		upgrade := from.Scheme == "http" && to.Scheme == "https" && strings.EqualFold(from.Hostname(), to.Hostname())
		if req.Method != via[0].Method || (!upgrade && (to.Scheme != from.Scheme || !strings.EqualFold(to.Host, from.Host))) {
			return http.ErrUseLastResponse
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

// attemptTransport gives each attempt its call's deadline, so that resty
// retries an attempt that timed out while the caller's context lives on,
// and bounds the size of response bodies (MaxResponseBytes). The bound is
// here rather than resty's, which reads a body 512 bytes at a time into a
// slice that grows by a quarter: resty then reads with io.ReadAll, which
// reads large bodies (hydrated pages of megabytes) in large chunks.
type attemptTransport struct {
	next  http.RoundTripper
	limit int64
}

func (t attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	cl := callOf(req.Context())
	if cl == nil || cl.timeout <= 0 {
		res, err := next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		res.Body = &limitedBody{ReadCloser: res.Body, left: t.limit}
		return res, nil
	}
	ctx, cancel := context.WithTimeout(req.Context(), cl.timeout)
	res, err := next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	res.Body = &limitedBody{ReadCloser: res.Body, left: t.limit, cancel: cancel}
	return res, nil
}

// limitedBody fails with resty.ErrResponseBodyTooLarge (which is not
// retried) once more than its limit was read, and ends the attempt's
// deadline (cancel, if set) when it is closed.
type limitedBody struct {
	io.ReadCloser
	left   int64
	cancel context.CancelFunc
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n, resty.ErrResponseBodyTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.cancel != nil {
		b.cancel()
	}
	return err
}

// logResponse logs each attempt's answer at debug level.
func (c *Client) logResponse(_ *resty.Client, res *resty.Response) error {
	if cl := callOf(res.Request.Context()); cl != nil && c.log.Enabled(cl.ctx, slog.LevelDebug) {
		c.log.DebugContext(cl.ctx, "cht: request", "method", res.Request.Method, "path", cl.path,
			"status", res.StatusCode(), "attempt", res.Request.Attempt, "duration", res.Time())
	}
	return nil
}

// logRetry logs each retry at debug level.
func (c *Client) logRetry(res *resty.Response, err error) {
	if res == nil || res.Request == nil {
		return
	}
	cl := callOf(res.Request.Context())
	if cl == nil || !c.log.Enabled(cl.ctx, slog.LevelDebug) {
		return
	}
	args := []any{"method", res.Request.Method, "path", cl.path, "attempt", res.Request.Attempt}
	if err != nil {
		args = append(args, "err", attemptError(cl.ctx, err, cl.timeout))
	} else {
		args = append(args, "status", res.StatusCode())
	}
	c.log.DebugContext(cl.ctx, "cht: retrying", args...)
}

// quietLogger drops resty's own messages: they hold full URLs, whose
// queries may carry phone numbers. The client logs through its middleware.
type quietLogger struct{}

func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}

func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New("invalid URL")
	}
	return err
}

// escapeID escapes a document id for use as one path segment.
func escapeID(id string) string { return url.PathEscape(id) }
