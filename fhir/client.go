package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/redact"
)

// ClientConfig configures a [Client]. Every field but BaseURL has a usable
// zero value.
type ClientConfig struct {
	// BaseURL is the FHIR server's base URL (e.g.
	// http://hapi:8080/fhir), or the URL of an OpenHIM channel in front of
	// it. Transactions are posted to it, resources read below it.
	BaseURL string
	// Username and Password, when Username is set, authenticate every
	// request with basic auth. The password never appears in logs or
	// errors, and ClientConfig redacts it (and one in BaseURL) when it is
	// logged or printed.
	Username, Password string
	// HTTPClient is copied and used for all requests; nil means a new
	// client with http.DefaultTransport. A mediator plugs its orchestration
	// capture here: &http.Client{Transport: mediator.Transport(nil)}. A
	// redirect that would change a request's method (a 301, 302 or 303 of
	// a write, which net/http follows with a GET) is not followed but
	// returned as a *ServerError.
	HTTPClient *http.Client
	// Timeout bounds each attempt of a request; 0 means 30s. A context
	// deadline bounds the whole call, retries included.
	Timeout time.Duration
	// MaxRetries is how often a call is retried after a network error,
	// 408, 429, 502, 503 or 504; 0 means 2, negative disables. The backoff
	// is resty's (exponential with jitter, between 200ms and 5s, or the
	// server's Retry-After in seconds, held within those bounds: a longer
	// Retry-After is waited 5s). A 2xx answer is never retried, and a POST
	// of [Client.Create] is retried only when the server did not process
	// it (429, 503), and so is a transaction with version-aware entries
	// (If-Match: those CloseReferral and the withdrawal of an edited
	// report's Observations write), which, applied by an attempt whose
	// answer was lost, would fail its retry with 409 or 412 although
	// written. Another retried transaction is idempotent with WritePut;
	// with a conditional strategy, an attempt retried after a timeout can
	// run beside the first one still running on the server, and two
	// conditional writes of one new resource can then create it twice on
	// servers without a unique constraint on the identifier.
	MaxRetries int
	// MaxResponseBytes bounds the body read from a read, search, create,
	// update or error answer; 0 means 16 MiB. A larger read or search
	// answer is an error; a larger 2xx answer to a create, update or
	// delete is not (the write was done): its out is left unchanged, and a
	// warning logged. So is a 2xx answer to one of those that cannot be read
	// to its end (out left unchanged) or decoded (out holds what could be
	// decoded). A transaction answer is checked while it streams and has no
	// limit.
	MaxResponseBytes int64
	// Logger receives debug lines for retries, and a warning for a write
	// whose answer is over MaxResponseBytes or unreadable; nil discards.
	Logger *slog.Logger
}

// LogValue implements slog.LogValuer: the settings a log reader needs,
// without the password.
func (cfg ClientConfig) LogValue() slog.Value {
	r := cfg.redacted()
	return slog.GroupValue(
		slog.String("base_url", r.BaseURL), slog.String("username", r.Username),
		slog.String("password", r.Password), slog.Duration("timeout", r.Timeout),
		slog.Int("max_retries", r.MaxRetries),
	)
}

// String implements fmt.Stringer without the password.
func (cfg ClientConfig) String() string {
	return fmt.Sprintf("%+v", clientConfigFields(cfg.redacted()))
}

// GoString implements fmt.GoStringer, so %#v does not print the password.
func (cfg ClientConfig) GoString() string {
	return fmt.Sprintf("%#v", clientConfigFields(cfg.redacted()))
}

// clientConfigFields is ClientConfig without its methods, for formatting.
type clientConfigFields ClientConfig

// redacted returns cfg with its password replaced by "REDACTED" and the
// credentials of BaseURL dropped.
func (cfg ClientConfig) redacted() ClientConfig {
	if cfg.Password != "" {
		cfg.Password = "REDACTED"
	}
	cfg.BaseURL = redact.URL(cfg.BaseURL)
	return cfg
}

// Client is a FHIR R4 REST client: transactions with their answer checked,
// and read, search, create, update and delete of single resources. It is
// safe for concurrent use. Create it with [NewClient].
//
// Every answer that is not a success is a *[ServerError] carrying the status
// and the server's OperationOutcome; network errors are returned wrapped.
type Client struct {
	rc      *resty.Client
	base    string // without trailing slash and credentials
	maxBody int64
	log     *slog.Logger
}

// NewClient returns a Client for cfg. It does no I/O.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fhir: base URL %q: want an absolute http(s) URL", redact.URL(cfg.BaseURL))
	}
	if cfg.Username == "" && u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	u.User = nil
	c := &Client{base: strings.TrimRight(u.String(), "/"), maxBody: cfg.MaxResponseBytes, log: cfg.Logger}
	if c.maxBody <= 0 {
		c.maxBody = 16 << 20
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	// Each attempt is bounded by a context deadline (attemptTimeout)
	// rather than by http.Client.Timeout, which for any transport but
	// net/http's own (mediator.Transport, for one) runs a goroutine and
	// a timer per request.
	hc.Timeout = 0
	hc.Transport = &attemptTimeout{next: hc.Transport, d: timeout}
	hc.CheckRedirect = keepMethod(hc.CheckRedirect)
	retries := cfg.MaxRetries
	switch {
	case retries == 0:
		retries = 2
	case retries < 0:
		retries = 0
	}
	c.rc = resty.NewWithClient(hc).
		SetLogger(restyLogger{c.log}).
		SetHeader("Accept", contentType).
		// resty's own User-Agent, set once here rather than on every
		// request.
		SetHeader("User-Agent", userAgent).
		SetRetryCount(retries).
		SetRetryWaitTime(200 * time.Millisecond).
		SetRetryMaxWaitTime(5 * time.Second).
		SetRetryAfter(retryAfter).
		AddRetryCondition(c.shouldRetry).
		SetPreRequestHook(attachBody)
	if cfg.Username != "" {
		c.rc.SetBasicAuth(cfg.Username, cfg.Password)
	}
	return c, nil
}

// keepMethod wraps an http.Client's CheckRedirect (nil: net/http's
// default, at most 10 redirects) so that a redirect that changes the
// method is not followed: net/http follows a 301, 302 or 303 of a POST,
// PUT or DELETE with a GET without the body (an http → https redirect in
// front of a server, for one), so the write would not be done and the
// GET's answer taken for it. The redirect is answered instead, a
// *ServerError (see newServerError). 307 and 308 keep the method and body.
//
// Nor is a redirect to another host or port followed, or from https to
// http: net/http would send the body (patient data) there, and keeps the
// basic-auth credentials for a host of the same name, over plain http
// too. Only the move from http to https of the same host name is.
func keepMethod(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if req.Method != via[0].Method {
			return http.ErrUseLastResponse
		}
		from, to := via[0].URL, req.URL
		upgrade := from.Scheme == "http" && to.Scheme == "https" && strings.EqualFold(from.Hostname(), to.Hostname())
		if !upgrade && (to.Scheme != from.Scheme || !strings.EqualFold(to.Host, from.Host)) {
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

// contentType is the FHIR JSON media type accepted; bodies are sent as
// it with the charset FHIR requires requests to state (R4
// http.html#mime-type: "SHALL explicitly set the character encoding to
// UTF-8 using the charset parameter").
const contentType = "application/fhir+json"

// userAgent is the User-Agent resty sends by default.
const userAgent = "go-resty/" + resty.Version + " (https://github.com/go-resty/resty)"

// The values of the headers a call sets, shared by every request: resty
// copies a request's headers into the one it sends, and nothing appends
// to these (each has no room left).
var (
	contentTypeValue   = []string{contentType + "; charset=utf-8"}
	preferMinimalValue = []string{"return=minimal"}
)

// emptyBody is the body a call with a body gives resty, which hands it on
// to http.NewRequest as it is; attachBody replaces it. Nothing reads it
// (a request with an empty *strings.Reader gets http.NoBody), so every
// call shares it.
var emptyBody = strings.NewReader("")

// noRetryKey marks a request whose network errors must not be retried.
type noRetryKey struct{}

// retryWhileKey carries, in the context of a call that may outlive its
// caller's context (see outlive), that context: once it has ended, no
// attempt is retried.
type retryWhileKey struct{}

// outlive is direct.Outlive: a context with ctx's values and without its
// cancellation or deadline, so that the attempt in flight when ctx ends
// runs to the server's answer, bounded by the per-attempt timeout
// (attemptTimeout); shouldRetry retries nothing once ctx has ended, and
// attemptTimeout starts no attempt then (a backoff wait under way when
// ctx ends still runs out, within ClientConfig's 5 s, but is followed by
// no attempt). A caller that gave up on a write thus learns whether the
// server applied it before it writes anything else that the write could
// overtake.
func outlive(ctx context.Context) context.Context { return outlived{ctx} }

// outlived is the context outlive returns, in one allocation:
// context.WithoutCancel(caller) with caller as its retryWhileKey value.
type outlived struct{ caller context.Context }

func (outlived) Deadline() (time.Time, bool) { return time.Time{}, false }
func (outlived) Done() <-chan struct{}       { return nil }
func (outlived) Err() error                  { return nil }
func (o outlived) Value(key any) any {
	if key == (retryWhileKey{}) {
		return o.caller
	}
	return o.caller.Value(key)
}

// shouldRetry is the client's only retry condition (it replaces resty's
// default of retrying every error). A retried answer's body is buffered
// (bounded) and closed, so the connection is reused and the last answer can
// still be read.
func (c *Client) shouldRetry(resp *resty.Response, err error) bool {
	if resp != nil && resp.Request != nil {
		if caller, ok := resp.Request.Context().Value(retryWhileKey{}).(context.Context); ok && caller.Err() != nil {
			return false
		}
	}
	if err != nil {
		if resp != nil && resp.Request != nil {
			ctx := resp.Request.Context()
			if ctx.Err() != nil || ctx.Value(noRetryKey{}) != nil {
				return false
			}
		}
		var tooBig *http.MaxBytesError
		return !errors.As(err, &tooBig)
	}
	if resp == nil || resp.RawResponse == nil {
		return false
	}
	status := resp.StatusCode()
	retry := false
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		retry = true
	case http.StatusRequestTimeout, http.StatusBadGateway, http.StatusGatewayTimeout:
		retry = resp.Request.Context().Value(noRetryKey{}) == nil
	}
	if retry {
		c.log.DebugContext(resp.Request.Context(), "fhir: retrying", "method", resp.Request.Method,
			"url", resp.Request.URL, "status", status, "attempt", resp.Request.Attempt)
		bufferBody(resp.RawResponse, 64<<10)
	}
	return retry
}

// bufferBody replaces resp.Body by its first n bytes and closes the original.
func bufferBody(resp *http.Response, n int64) {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, n))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
}

// retryAfter honours a Retry-After header given in seconds.
func retryAfter(_ *resty.Client, resp *resty.Response) (time.Duration, error) {
	if s, err := strconv.Atoi(resp.Header().Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second, nil
	}
	return 0, nil
}

// call is one request; the caller closes the returned response's body.
// done, when not nil, is called once nothing reads body any more (see
// sentBody); the caller may then reuse its memory.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body []byte, prefer string, done func()) (*http.Response, error) {
	var sb *sentBody
	if body != nil {
		// Each attempt reads body through its own reader (attachBody),
		// not through copies resty would make of it. sb is the call's
		// context, carrying itself to attachBody.
		sb = newSentBody(ctx, body, done)
		ctx = sb
	} else if done != nil {
		defer done()
	}
	req := c.rc.R().SetContext(ctx).SetDoNotParseResponse(true)
	if body != nil {
		// An empty reader resty hands on as it is; attachBody replaces it.
		req.Header["Content-Type"] = contentTypeValue
		req.SetBody(emptyBody)
	}
	switch prefer {
	case "":
	case "return=minimal":
		req.Header["Prefer"] = preferMinimalValue
	default:
		req.Header.Set("Prefer", prefer)
	}
	if query != nil {
		req.SetQueryParamsFromValues(query)
	}
	target := c.base
	if path != "" {
		target += "/" + path
	}
	resp, err := req.Execute(method, target)
	if sb != nil {
		sb.release() // no attempt opens the body any more
	}
	if err != nil {
		if resp != nil && resp.RawResponse != nil {
			resp.RawResponse.Body.Close()
		}
		return nil, fmt.Errorf("fhir: %s %s: %w", method, c.shown(path), err)
	}
	return resp.RawResponse, nil
}

// shown is path as put in messages: the base without credentials.
func (c *Client) shown(path string) string {
	if path == "" {
		return c.base
	}
	return c.base + "/" + path
}

// do runs a request and decodes a 2xx answer's body into out (when out is
// not nil and the body is not empty). Any other answer is a *ServerError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	prefer := ""
	if out == nil && body != nil {
		prefer = "return=minimal"
	}
	resp, err := c.call(ctx, method, path, query, body, prefer, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	success := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if err != nil {
		if success && method != http.MethodGet {
			// The server did the write (see below): an answer cut
			// short does not undo it.
			c.log.WarnContext(ctx, "fhir: the write succeeded but its answer could not be read: not decoded",
				"method", method, "url", c.shown(path), "status", resp.StatusCode, "err", err)
			return nil
		}
		return fmt.Errorf("fhir: %s %s: read answer: %w", method, c.shown(path), err)
	}
	if !success {
		return newServerError(method, c.shown(path), resp, data)
	}
	if int64(len(data)) > c.maxBody {
		if method == http.MethodGet {
			return fmt.Errorf("fhir: %s %s: answer larger than %d bytes", method, c.shown(path), c.maxBody)
		}
		// The server did the write: answering failure would make the
		// caller retry it (a second resource for a Create). The answer
		// is left unread instead.
		c.log.WarnContext(ctx, "fhir: the write succeeded but its answer is larger than MaxResponseBytes: not decoded",
			"method", method, "url", c.shown(path), "status", resp.StatusCode, "limit", c.maxBody)
		return nil
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		if method != http.MethodGet {
			// Done, as above: out holds what could be decoded.
			c.log.WarnContext(ctx, "fhir: the write succeeded but its answer could not be decoded",
				"method", method, "url", c.shown(path), "status", resp.StatusCode, "err", err)
			return nil
		}
		return fmt.Errorf("fhir: %s %s: decode answer: %w", method, c.shown(path), err)
	}
	return nil
}

// resourcePath is Type/id with id escaped; it refuses ids that are not FHIR
// ids, so a caller's value cannot reach another path of the server.
func resourcePath(typ, id string) (string, error) {
	if !validType(typ) {
		return "", fmt.Errorf("fhir: resource type %q: want letters only", typ)
	}
	if id == "" {
		return typ, nil
	}
	if !validID(id) {
		return "", fmt.Errorf("fhir: %s id %q: want 1-64 characters of [A-Za-z0-9-.]", typ, id)
	}
	return typ + "/" + id, nil
}

func validType(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// validID reports whether id matches FHIR R4's id syntax [A-Za-z0-9\-\.]{1,64}.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return id != "." && id != ".."
}

// encodeBody is resource as JSON: []byte and json.RawMessage as they are,
// anything else through encoding/json (samply's types marshal to FHIR JSON).
func encodeBody(resource any) ([]byte, error) {
	switch r := resource.(type) {
	case []byte:
		return r, nil
	case json.RawMessage:
		return r, nil
	case nil:
		return nil, errors.New("fhir: no resource")
	}
	b, err := json.Marshal(resource)
	if err != nil {
		return nil, fmt.Errorf("fhir: encode resource: %w", err)
	}
	return b, nil
}

// Read reads typ/id (GET [base]/typ/id) into out: a pointer to a samply
// type such as *models.Patient, or a *json.RawMessage for the bytes. A
// resource that does not exist is a *ServerError with StatusCode 404 (or 410
// when deleted).
func (c *Client) Read(ctx context.Context, typ, id string, out any) error {
	if id == "" {
		return fmt.Errorf("fhir: read %s: empty id", typ)
	}
	path, err := resourcePath(typ, id)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodGet, path, nil, nil, out)
}

// Search searches typ (GET [base]/typ?query) and decodes the searchset
// Bundle into out (a *models.Bundle or *json.RawMessage). Follow further
// pages with the Bundle's "next" link yourself; this reads one page.
func (c *Client) Search(ctx context.Context, typ string, query url.Values, out any) error {
	path, err := resourcePath(typ, "")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodGet, path, query, nil, out)
}

// Create creates resource as a new typ (POST [base]/typ) and decodes the
// stored resource, with the id the server assigned, into out (nil skips
// it; an answer over ClientConfig.MaxResponseBytes leaves out unchanged
// and is no error, since the resource was created, nor is an answer that
// cannot be read or decoded). resource is JSON bytes or a value
// encoding/json marshals (a samply type). A network error is not retried,
// since the server may have created the resource: make creates idempotent
// with a conditional [Client.Update] or a transaction's ifNoneExist where
// duplicates matter.
func (c *Client) Create(ctx context.Context, typ string, resource, out any) error {
	path, err := resourcePath(typ, "")
	if err != nil {
		return err
	}
	body, err := encodeBody(resource)
	if err != nil {
		return err
	}
	return c.do(context.WithValue(ctx, noRetryKey{}, true), http.MethodPost, path, nil, body, out)
}

// Update writes resource as typ/id (PUT [base]/typ/id), creating it when the
// server allows clients to choose ids, and decodes the stored resource into
// out (nil skips it; an answer over ClientConfig.MaxResponseBytes leaves
// out unchanged and is no error, since the resource was written, nor is an
// answer that cannot be read or decoded). Updates are idempotent and
// retried.
func (c *Client) Update(ctx context.Context, typ, id string, resource, out any) error {
	if id == "" {
		return fmt.Errorf("fhir: update %s: empty id", typ)
	}
	path, err := resourcePath(typ, id)
	if err != nil {
		return err
	}
	body, err := encodeBody(resource)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, path, nil, body, out)
}

// Delete deletes typ/id (DELETE [base]/typ/id). Deleting a resource that
// does not exist succeeds on servers that answer 204 or 404 as FHIR allows
// (a 404 is returned as a *ServerError).
func (c *Client) Delete(ctx context.Context, typ, id string) error {
	if id == "" {
		return fmt.Errorf("fhir: delete %s: empty id", typ)
	}
	path, err := resourcePath(typ, id)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil, nil)
}

// restyLogger routes resty's messages to slog at debug level.
type restyLogger struct{ l *slog.Logger }

func (r restyLogger) Errorf(format string, v ...any) {
	r.l.Debug("fhir: resty: " + fmt.Sprintf(format, v...))
}
func (r restyLogger) Warnf(format string, v ...any) {
	r.l.Debug("fhir: resty: " + fmt.Sprintf(format, v...))
}
func (r restyLogger) Debugf(format string, v ...any) {
	r.l.Debug("fhir: resty: " + fmt.Sprintf(format, v...))
}
