package cht

import (
	"context"
	"fmt"
	"net/http"
)

// ensureSession logs in via POST /_session unless a session cookie is held.
func (c *Client) ensureSession(ctx context.Context) error {
	c.sessMu.Lock()
	have := c.cookie != ""
	c.sessMu.Unlock()
	if have {
		return nil
	}
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	c.sessMu.Lock()
	have = c.cookie != ""
	c.sessMu.Unlock()
	if have {
		return nil
	}
	return c.Login(ctx)
}

// Login opens a cookie session with POST /_session. It is called
// automatically when Config.Session is true; a failed login (401) is
// returned as is and never retried, because CHT rate-limits failed logins.
func (c *Client) Login(ctx context.Context) error {
	body := map[string]string{"name": c.user, "password": string(c.pass)}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/_session", body: body, noAuth: true}, nil)
	if err != nil {
		return fmt.Errorf("cht: login: %w", err)
	}
	if !c.captureCookie(resp.header) {
		return fmt.Errorf("cht: login: no AuthSession cookie in response")
	}
	return nil
}

func (c *Client) dropSession() {
	c.sessMu.Lock()
	c.cookie = ""
	c.sessMu.Unlock()
}

// captureCookie stores an AuthSession cookie from a response, reporting
// whether there was one. CouchDB refreshes the cookie on use.
func (c *Client) captureCookie(h http.Header) bool {
	for _, ck := range (&http.Response{Header: h}).Cookies() {
		if ck.Name == "AuthSession" && ck.Value != "" {
			c.sessMu.Lock()
			c.cookie = ck.Value
			c.sessMu.Unlock()
			return true
		}
	}
	return false
}
