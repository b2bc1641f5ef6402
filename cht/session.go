package cht

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-resty/resty/v2"
)

// In session mode the client keeps CouchDB's AuthSession cookie itself,
// rather than in a cookie jar: the login request must go without a stale
// cookie, and a cookie refused with 401 is replaced exactly once. Two
// middlewares of the resty client carry it: sendSession adds it to every
// attempt but the login, keepSession takes the newest one from every
// answer (CouchDB refreshes it on use).

// ensureSession logs in via POST /_session unless a session cookie is held.
func (c *Client) ensureSession(ctx context.Context) error {
	if c.sessionCookie() != "" {
		return nil
	}
	select {
	case c.loginMu <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("cht: login: waiting for another login: %w", context.Cause(ctx))
	}
	defer func() { <-c.loginMu }()
	if c.sessionCookie() != "" {
		return nil // another call logged in meanwhile
	}
	return c.login(ctx)
}

// login opens a cookie session with POST /_session. It is called
// automatically when Config.Session is true; a failed login (401) is
// returned as is and never retried, because CHT rate-limits failed logins.
func (c *Client) login(ctx context.Context) error {
	ctx, cancel := withoutValues(ctx)
	defer cancel()
	body := map[string]string{"name": c.user, "password": c.pass}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/_session", body: body, noAuth: true}, nil)
	if err != nil {
		return fmt.Errorf("cht: login: %w", err)
	}
	if authSession(resp.header) == "" {
		return fmt.Errorf("cht: login: no AuthSession cookie in response")
	}
	return nil
}

// withoutValues returns a context with ctx's deadline and cancellation
// but none of its values, for the login: its body holds the password, and
// a value such as the recorder of mediator.Transport (whose orchestrations
// OpenHIM core stores with their bodies) would keep it.
func withoutValues(ctx context.Context) (context.Context, context.CancelFunc) {
	base, cancel := context.WithCancelCause(context.Background())
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	out, cancelDeadline := context.Context(base), context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		out, cancelDeadline = context.WithDeadline(base, dl)
	}
	return out, func() {
		cancelDeadline()
		stop()
		cancel(nil)
	}
}

func (c *Client) sessionCookie() string {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	return c.cookie
}

// dropSession forgets the session cookie that req was refused with, unless
// another call has already replaced it.
func (c *Client) dropSession(req *http.Request) {
	sent := ""
	if req != nil {
		if ck, err := req.Cookie("AuthSession"); err == nil {
			sent = ck.Value
		}
	}
	c.sessMu.Lock()
	if c.cookie == sent || sent == "" {
		c.cookie = ""
	}
	c.sessMu.Unlock()
}

// sendSession is a request middleware: every attempt but the login
// carries the current session cookie.
func (c *Client) sendSession(_ *resty.Client, req *resty.Request) error {
	if cl := callOf(req.Context()); cl != nil && cl.login {
		return nil
	}
	if ck := c.sessionCookie(); ck != "" {
		req.SetHeader("Cookie", "AuthSession="+ck)
	}
	return nil
}

// keepSession is a response middleware: it stores the AuthSession cookie
// of any answer.
func (c *Client) keepSession(_ *resty.Client, res *resty.Response) error {
	if v := authSession(res.Header()); v != "" {
		c.sessMu.Lock()
		c.cookie = v
		c.sessMu.Unlock()
	}
	return nil
}

// authSession returns the AuthSession cookie set by a response, or "".
func authSession(h http.Header) string {
	for _, ck := range (&http.Response{Header: h}).Cookies() {
		if ck.Name == "AuthSession" && ck.Value != "" {
			return ck.Value
		}
	}
	return ""
}
