package openhim_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// TestSessionLoginOverHTTP: core 7.2+ (src/koaApi.js) gives koa-session
// secure: api.secureCookie (config/default.json: true). Over plain http the
// login succeeds, then koa-session's cookie cannot be set (the cookies
// module throws "Cannot send secure cookie over unencrypted connection")
// and Koa's default error handler (koa lib/context.js onerror) answers 500
// with the body "Internal Server Error" only. The client must read that as
// the configuration error (not retried), not as core trouble retried
// forever. Over https, or with api.secureCookie false, the session works.
func TestSessionLoginOverHTTP(t *testing.T) {
	tests := []struct {
		name       string
		cfg        openhimtest.Config
		maxRetries int // -1: no retries, so no retry condition sees the 500
		wantConfig bool
	}{
		{name: "http, secureCookie on", cfg: openhimtest.Config{Version: openhimtest.Version8}, maxRetries: 3, wantConfig: true},
		{name: "http, secureCookie on, no retries", cfg: openhimtest.Config{Version: openhimtest.Version8}, maxRetries: -1, wantConfig: true},
		{name: "http, secureCookie off", cfg: openhimtest.Config{Version: openhimtest.Version8, InsecureSessionCookie: true}, maxRetries: 3},
		{name: "https", cfg: openhimtest.Config{Version: openhimtest.Version8, TLS: true}, maxRetries: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openhimtest.NewServer(tt.cfg)
			defer srv.Close()
			var logins atomic.Int32
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodPost && r.URL.Path == "/authenticate/local" {
					logins.Add(1)
				}
				return srv.Client().Transport.RoundTrip(r)
			})}
			c, err := openhim.NewClient(openhim.Config{URL: srv.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
				Auth: openhim.AuthSession, CoreVersion: 8, HTTPClient: hc, MaxRetries: tt.maxRetries, RetryWaitMin: time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListChannels(context.Background())
			if !tt.wantConfig {
				if err != nil {
					t.Fatalf("ListChannels: %v", err)
				}
				return
			}
			if !errors.Is(err, openhim.ErrConfig) || !strings.Contains(err.Error(), "use an https openhim.url") {
				t.Fatalf("err = %v; want the configuration error naming openhim.url", err)
			}
			if !errors.Is(err, openhim.ErrServer) {
				t.Errorf("err = %v does not match ErrServer, though core answered 500", err)
			}
			if n := logins.Load(); n != 1 {
				t.Errorf("POST /authenticate/local sent %d times; a configuration error is not retried", n)
			}
		})
	}
}

// TestTokenAuthOverHTTPCoreVersion7: core 7.2 already logs a
// token-authenticated user into a session (src/api/authentication.js,
// authenticateToken) whose cookie koa-session always marks Secure
// (src/koaApi.js: secure: true; api.secureCookie came with 8.0), so over
// http every token call answers 500 "Internal Server Error" (Koa
// lib/context.js onerror), as on 8.x. CoreVersion 7 does not tell 7.2 from
// 7.1, which has no sessions (a 500 there is core trouble, retried): the
// client asks GET /me, public from 7.2 (404 "Not authenticated" without a
// session, src/api/users.js me) and behind the auth middleware before
// (401), once.
func TestTokenAuthOverHTTPCoreVersion7(t *testing.T) {
	tests := []struct {
		name        string
		cfg         openhimtest.Config
		coreVersion int
		maxRetries  int // -1: no retries, so no retry condition sees the 500
		failNext    int // answers core gives 500 first (core trouble)
		wantConfig  bool
		wantProbes  int // GET /me
	}{
		{name: "7.2.0 over http", cfg: openhimtest.Config{Version: openhimtest.Version7, Release: "7.2.0"}, coreVersion: 7, maxRetries: 3, wantConfig: true, wantProbes: 1},
		{name: "7.2.1 over http, no retries", cfg: openhimtest.Config{Version: openhimtest.Version7, Release: "7.2.1"}, coreVersion: 7, maxRetries: -1, wantConfig: true, wantProbes: 1},
		{name: "8.5.0 with CoreVersion 7", cfg: openhimtest.Config{Version: openhimtest.Version8}, coreVersion: 7, maxRetries: 3, wantConfig: true, wantProbes: 1},
		{name: "7.2.0 over https", cfg: openhimtest.Config{Version: openhimtest.Version7, Release: "7.2.0", TLS: true}, coreVersion: 7, maxRetries: 3},
		{name: "7.1.0 over http", cfg: openhimtest.Config{Version: openhimtest.Version7}, coreVersion: 7, maxRetries: 3},
		{name: "7.1.0, a 500 is core trouble", cfg: openhimtest.Config{Version: openhimtest.Version7}, coreVersion: 7, maxRetries: 3, failNext: 1, wantProbes: 1},
		{name: "4.0.5, a 500 is core trouble", cfg: openhimtest.Config{Version: openhimtest.Version4}, coreVersion: 4, maxRetries: 3, failNext: 1, wantProbes: 1},
		{name: "8.5.0 needs no probe", cfg: openhimtest.Config{Version: openhimtest.Version8}, coreVersion: 8, maxRetries: 3, wantConfig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openhimtest.NewServer(tt.cfg)
			defer srv.Close()
			var failures, probes atomic.Int32
			var failed atomic.Bool
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path == "/me" {
					probes.Add(1)
				}
				if r.URL.Path == "/channels" && tt.failNext > 0 && !failed.Swap(true) {
					srv.FailNext(tt.failNext, http.StatusInternalServerError) // this call, not the salt fetch
				}
				resp, err := srv.Client().Transport.RoundTrip(r)
				if err == nil && resp.StatusCode == http.StatusInternalServerError {
					failures.Add(1)
				}
				return resp, err
			})}
			c, err := openhim.NewClient(openhim.Config{URL: srv.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
				Auth: openhim.AuthToken, CoreVersion: tt.coreVersion, HTTPClient: hc, MaxRetries: tt.maxRetries, RetryWaitMin: time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				_, err = c.ListChannels(context.Background())
				if !tt.wantConfig {
					if err != nil {
						t.Fatalf("ListChannels: %v", err)
					}
					continue
				}
				if !errors.Is(err, openhim.ErrConfig) || !errors.Is(err, openhim.ErrServer) || !strings.Contains(err.Error(), "use an https openhim.url") {
					t.Fatalf("err = %v; want the configuration error naming openhim.url, matching ErrServer", err)
				}
			}
			if tt.wantConfig {
				if n := failures.Load(); n != 2 {
					t.Errorf("core answered 500 %d times to 2 calls; a configuration error is not retried", n)
				}
			}
			if n := probes.Load(); n != int32(tt.wantProbes) {
				t.Errorf("GET /me sent %d times, want %d", n, tt.wantProbes)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTokenAuthOverHTTPV8: core 7.2+ (src/api/authentication.js,
// authenticateToken: passport.authenticate('token') without a callback)
// logs a token-authenticated user into a koa-session session; with
// api.secureCookie on (config/default.json, src/koaApi.js) the cookie
// cannot be set over http, and Koa (lib/context.js onerror) answers 500
// "Internal Server Error" to every such call. The client reports the
// configuration error once instead of retrying core trouble forever.
func TestTokenAuthOverHTTPV8(t *testing.T) {
	tests := []struct {
		name       string
		cfg        openhimtest.Config
		maxRetries int // -1: no retries, so no retry condition sees the 500
		wantConfig bool
	}{
		{name: "http, secureCookie on", cfg: openhimtest.Config{Version: openhimtest.Version8}, maxRetries: 3, wantConfig: true},
		{name: "http, secureCookie on, no retries", cfg: openhimtest.Config{Version: openhimtest.Version8}, maxRetries: -1, wantConfig: true},
		{name: "http, secureCookie off", cfg: openhimtest.Config{Version: openhimtest.Version8, InsecureSessionCookie: true}, maxRetries: 3},
		{name: "https", cfg: openhimtest.Config{Version: openhimtest.Version8, TLS: true}, maxRetries: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openhimtest.NewServer(tt.cfg)
			defer srv.Close()
			var failures atomic.Int32
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := srv.Client().Transport.RoundTrip(r)
				if err == nil && resp.StatusCode == http.StatusInternalServerError {
					failures.Add(1)
				}
				return resp, err
			})}
			c, err := openhim.NewClient(openhim.Config{URL: srv.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
				Auth: openhim.AuthToken, CoreVersion: 8, HTTPClient: hc, MaxRetries: tt.maxRetries, RetryWaitMin: time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListChannels(context.Background())
			if !tt.wantConfig {
				if err != nil {
					t.Fatalf("ListChannels: %v", err)
				}
				return
			}
			if !errors.Is(err, openhim.ErrConfig) || !strings.Contains(err.Error(), "use an https openhim.url") {
				t.Fatalf("err = %v; want the configuration error naming openhim.url", err)
			}
			if n := failures.Load(); n != 1 {
				t.Errorf("core answered 500 %d times; a configuration error is not retried", n)
			}
		})
	}
}
