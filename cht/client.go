package cht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"
)

// Password is a secret that redacts itself when logged, printed or
// marshalled. Convert with string(p) to use the value.
type Password string

// LogValue implements slog.LogValuer.
func (p Password) LogValue() slog.Value { return slog.StringValue(p.String()) }

// String returns "REDACTED" (or "" for an empty password).
func (p Password) String() string {
	if p == "" {
		return ""
	}
	return "REDACTED"
}

// GoString implements fmt.GoStringer so %#v does not leak the secret.
func (p Password) GoString() string { return `"` + p.String() + `"` }

// MarshalJSON encodes the redacted form.
func (p Password) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON decodes a plain JSON string.
func (p *Password) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*p = Password(s)
	return nil
}

// Config configures a [Client]. The zero value of every field but URL is a
// usable default.
type Config struct {
	// URL is the CHT base URL, e.g. https://cht.example.org. It may have a
	// path prefix. Credentials embedded as user:pass@ are used when
	// Username is empty, and are never logged or put in errors.
	URL string
	// Username and Password authenticate every request (basic auth), or
	// log in once via POST /_session when Session is true.
	Username string
	Password Password
	// Session uses cookie authentication (POST /_session) instead of
	// sending basic credentials with every request. An expired session is
	// renewed once per request; a failed login is never retried.
	Session bool
	// HTTPClient is copied and used for all requests; nil uses a new client
	// with resty's default transport. Its Jar is not used.
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
	// Version, when set (e.g. "4.10.0"), skips version detection via
	// GET /api/info.
	Version string
	// Logger receives debug logs of requests and retries; nil discards.
	Logger *slog.Logger
}

// Client is a CHT API client. It is safe for concurrent use and holds one
// http.Client for all requests. Create it with [New].
type Client struct {
	common service

	// Services, one per resource.
	People   *PeopleService
	Places   *PlacesService
	Contacts *ContactsService
	Reports  *ReportsService
	Records  *RecordsService
	Docs     *DocsService

	rc       *resty.Client
	base     *url.URL // without credentials
	baseText string   // redacted base for messages
	user     string
	pass     Password
	session  bool
	timeout  time.Duration
	batch    int
	retries  int
	waitMin  time.Duration
	waitMax  time.Duration
	db       string
	log      *slog.Logger

	loginMu sync.Mutex // serialises logins
	sessMu  sync.Mutex // guards cookie
	cookie  string     // AuthSession cookie value in session mode

	verMu   sync.Mutex // guards version
	version *Version   // detected or configured version
}

type service struct{ client *Client }

// DefaultUserAgent is sent when Config.UserAgent is empty.
const DefaultUserAgent = "openhim-mediator-go-cht/1"

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
			p, _ := u.User.Password()
			pass = Password(p)
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
		base: u, baseText: u.String(), user: user, pass: pass, session: cfg.Session,
		timeout: cfg.Timeout, batch: cfg.HydrateBatchSize, retries: cfg.MaxRetries,
		waitMin: cfg.RetryWaitMin, waitMax: cfg.RetryWaitMax, db: cfg.DB, log: cfg.Logger,
	}
	if c.timeout == 0 {
		c.timeout = 30 * time.Second
	}
	if c.batch == 0 {
		c.batch = 100
	}
	switch {
	case c.retries == 0:
		c.retries = 3
	case c.retries < 0:
		c.retries = 0
	}
	if c.waitMin == 0 {
		c.waitMin = 500 * time.Millisecond
	}
	if c.waitMax == 0 {
		c.waitMax = 30 * time.Second
	}
	if c.waitMax < c.waitMin {
		c.waitMax = c.waitMin
	}
	if c.db == "" {
		c.db = "medic"
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Version != "" {
		v, err := ParseVersion(cfg.Version)
		if err != nil {
			return nil, fmt.Errorf("cht: config: Version: %w", err)
		}
		c.version = &v
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	hc.Jar = nil
	c.rc = resty.NewWithClient(hc)
	c.rc.SetCookieJar(nil)
	c.rc.SetDisableWarn(true)
	c.rc.SetLogger(restyLogger{c.log})
	c.rc.SetRetryCount(0)
	c.rc.SetResponseBodyLimit(maxResp)
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	c.rc.SetHeader("User-Agent", ua)
	c.rc.SetHeader("Accept", "application/json")
	if !c.session && user != "" {
		c.rc.SetBasicAuth(user, string(pass))
	}
	c.common.client = c
	c.People = (*PeopleService)(&c.common)
	c.Places = (*PlacesService)(&c.common)
	c.Contacts = (*ContactsService)(&c.common)
	c.Reports = (*ReportsService)(&c.common)
	c.Records = (*RecordsService)(&c.common)
	c.Docs = (*DocsService)(&c.common)
	return c, nil
}

// BaseURL returns the configured CHT URL without credentials.
func (c *Client) BaseURL() string { return c.baseText }

// request describes one API call.
type request struct {
	method  string
	path    string     // escaped path below the base URL, starting with "/"
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

// do performs r with retries and decodes a 2xx JSON body into out (if
// non-nil). Non-2xx answers are returned as *APIError.
func (c *Client) do(ctx context.Context, r request, out any) (*response, error) {
	var body []byte
	if r.body != nil {
		switch b := r.body.(type) {
		case []byte:
			body = b
		default:
			var err error
			if body, err = json.Marshal(b); err != nil {
				return nil, fmt.Errorf("cht: %s %s: encode body: %w", r.method, r.path, err)
			}
		}
	}
	target := c.endpoint(r)
	shown := c.baseText + r.path // for messages: no query (may hold phone numbers), no credentials
	relogged := false
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cht: %s %s: %w", r.method, shown, err)
		}
		if c.session && !r.noAuth {
			if err := c.ensureSession(ctx); err != nil {
				return nil, err
			}
		}
		resp, err := c.attempt(ctx, r, target, body)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("cht: %s %s: %w", r.method, shown, ctx.Err())
			}
			if !r.retry || attempt >= c.retries || errors.Is(err, resty.ErrResponseBodyTooLarge) {
				return nil, fmt.Errorf("cht: %s %s: %w", r.method, shown, err)
			}
			c.log.DebugContext(ctx, "cht: retrying after network error", "method", r.method, "path", r.path, "attempt", attempt+1, "err", err)
		} else if resp.status >= 200 && resp.status < 300 {
			if out != nil && len(resp.body) > 0 {
				if err := json.Unmarshal(resp.body, out); err != nil {
					return resp, fmt.Errorf("cht: %s %s: decode response: %w", r.method, shown, err)
				}
			}
			return resp, nil
		} else {
			apiErr := newAPIError(r.method, shown, resp.status, resp.header, resp.body)
			if resp.status == http.StatusUnauthorized && c.session && !r.noAuth && !relogged {
				// The session cookie expired: log in again once.
				relogged = true
				c.dropSession()
				attempt--
				continue
			}
			retryable := resp.status == http.StatusTooManyRequests ||
				(r.retry && resp.status >= 500 && resp.status != http.StatusNotImplemented)
			if !retryable || attempt >= c.retries {
				return nil, apiErr
			}
			wait = apiErr.RetryAfter
			c.log.DebugContext(ctx, "cht: retrying", "method", r.method, "path", r.path, "status", resp.status, "attempt", attempt+1)
		}
		if wait <= 0 {
			wait = c.backoff(attempt)
		}
		if wait > c.waitMax {
			wait = c.waitMax
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("cht: %s %s: %w", r.method, shown, ctx.Err())
		case <-t.C:
		}
	}
}

// backoff returns the exponential backoff with full jitter for attempt.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.waitMin << min(attempt, 20)
	if d > c.waitMax || d <= 0 {
		d = c.waitMax
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Client) attempt(ctx context.Context, r request, target string, body []byte) (*response, error) {
	timeout := c.timeout + r.timeout
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := c.rc.R().SetContext(actx)
	if body != nil {
		ct := r.ctype
		if ct == "" {
			// Exactly this: CHT rejects "; charset=utf-8" on most JSON routes.
			ct = "application/json"
		}
		req.SetHeader("Content-Type", ct).SetBody(body)
	}
	if c.session && !r.noAuth {
		c.sessMu.Lock()
		if c.cookie != "" {
			req.SetHeader("Cookie", "AuthSession="+c.cookie)
		}
		c.sessMu.Unlock()
	}
	start := time.Now()
	res, err := req.Execute(r.method, target)
	if res != nil && err == nil {
		c.log.DebugContext(ctx, "cht: request", "method", r.method, "path", r.path,
			"status", res.StatusCode(), "duration", time.Since(start))
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is reported by the caller, redacted
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("attempt timed out after %v: %w", timeout, errAttemptTimeout)
		}
		return nil, err
	}
	if c.session {
		c.captureCookie(res.Header())
	}
	return &response{status: res.StatusCode(), header: res.Header(), body: res.Body()}, nil
}

// errAttemptTimeout marks an attempt that exceeded Config.Timeout while
// the caller's context was still live.
var errAttemptTimeout = errors.New("attempt timeout")

// restyLogger routes resty's own messages to slog at debug level.
type restyLogger struct{ l *slog.Logger }

func (r restyLogger) Errorf(format string, v ...any) {
	r.l.Debug("resty: " + fmt.Sprintf(format, v...))
}
func (r restyLogger) Warnf(format string, v ...any) { r.l.Debug("resty: " + fmt.Sprintf(format, v...)) }
func (r restyLogger) Debugf(format string, v ...any) {
	r.l.Debug("resty: " + fmt.Sprintf(format, v...))
}

func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New("invalid URL")
	}
	return err
}

// escapeID escapes a document id for use as one path segment.
func escapeID(id string) string { return url.PathEscape(id) }
