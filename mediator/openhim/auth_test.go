package openhim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The test vector of the reference (§1.1): core's root user.
const (
	lcRootSalt         = "d9bcb40e-ae65-478f-962e-5e5e5e7d0a01"
	lcRootPasswordHash = "943a856bba65aad6c639d5c8d4a11fc8bb7fe9de62ae307aec8cf6ae6c1faab722127964c71db4bdd2ea2cdf60c6e4094dcad54d4522ab2839b65ae98100d0fb"
)

func TestTokenVector(t *testing.T) {
	if got := passwordHash(lcRootSalt, "openhim-password"); got != lcRootPasswordHash {
		t.Fatalf("passwordHash = %s, want core's root passwordHash %s", got, lcRootPasswordHash)
	}
	got := authToken(lcRootPasswordHash, "842cd4a0-1a91-45a7-bf76-c292cb36b2e8", "2024-01-01T00:00:00.000Z")
	const want = "6d77e1c3ead6e913595a0df569d195c77c2586c5e9b474af271685aed60a981a0f09844dcab872ff7361ca87bb2e96eca2013b16b6d198287d98b99965ccb3cd"
	if got != want {
		t.Fatalf("authToken = %s, want %s", got, want)
	}
}

func TestAuthTimestampFormat(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "2024-01-01T00:00:00.000Z"},
		{time.Date(2024, 1, 1, 2, 3, 4, 5_600_000, time.FixedZone("X", 3600)), "2024-01-01T01:03:04.005Z"},
	}
	for _, tt := range tests {
		if got := tt.in.UTC().Format(authTSLayout); got != tt.want {
			t.Errorf("format(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRandomSalt(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		s := randomSalt()
		if !uuid.MatchString(s) {
			t.Fatalf("randomSalt() = %q, not a UUIDv4", s)
		}
		if seen[s] {
			t.Fatalf("randomSalt repeated %q", s)
		}
		seen[s] = true
	}
}

// TestSecretsRedacted: the core password (Config) and a route's password
// (Route, as held in a Definition) never show in formatted output or logs,
// yet a route marshals its password, which core needs to call the route.
func TestSecretsRedacted(t *testing.T) {
	route := Route{Name: "r", Username: "u", Password: "hunter2"}
	def := Definition{URN: "urn:x", Endpoints: []Route{route}, DefaultChannelConfig: []Channel{{Name: "c", Routes: []Route{route}}}}
	cfg := Config{URL: "https://u:pw@core", Password: "hunter2"}
	for _, s := range []string{route.String(), fmt.Sprint(route), fmt.Sprintf("%v %+v %#v %s", route, route, route, route),
		fmt.Sprintf("%v", def), fmt.Sprintf("%+v", def), fmt.Sprintf("%#v", def),
		fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, ":pw@") {
			t.Errorf("formatted output leaks a password: %s", s)
		}
	}
	for _, h := range []func(io.Writer) slog.Handler{
		func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
		func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
	} {
		var buf strings.Builder
		slog.New(h(&buf)).Info("x", "route", route, "def", def, "cfg", cfg)
		if strings.Contains(buf.String(), "hunter2") || strings.Contains(buf.String(), ":pw@") {
			t.Errorf("log leaks a password: %s", buf.String())
		}
		if !strings.Contains(buf.String(), "REDACTED") {
			t.Errorf("log does not say the password is redacted: %s", buf.String())
		}
	}
	if b, err := json.Marshal(route); err != nil || !strings.Contains(string(b), `"password":"hunter2"`) {
		t.Errorf("a route must marshal its password for core, got %s, %v", b, err)
	}
}

// lcAuthCore is a tiny core for auth flows: it records which scheme each
// request used and accepts the schemes in accept.
type lcAuthCore struct {
	accept      map[string]bool // "basic", "token", "session"
	tokenUser   bool            // GET /authenticate/:user answers 200
	saltCalls   atomic.Int32
	loginCalls  atomic.Int32
	requests    atomic.Int32
	expireAfter int32 // session: 401 once after this many requests
	schemes     chan string
	// secureCookie answers the login as core 7.2+ does over http with
	// api.secureCookie on (src/koaApi.js gives koa-session secure:
	// api.secureCookie; the cookies module throws when koa-session sets the
	// cookie, and Koa's lib/context.js onerror hides a 5xx error's message:
	// 500 "Internal Server Error").
	secureCookie bool
	forbid       bool // 403 to authenticated requests
}

func (f *lcAuthCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const user, pw = "root@openhim.org", "openhim-password"
	switch {
	case strings.HasPrefix(r.URL.Path, "/authenticate/") && r.Method == http.MethodGet:
		f.saltCalls.Add(1)
		if !f.tokenUser {
			http.Error(w, "Could not find token passport for user", http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"salt":%q,"ts":%q}`, lcRootSalt, time.Now().UTC().Format(time.RFC3339Nano))
		return
	case r.URL.Path == "/authenticate/local" && r.Method == http.MethodPost:
		f.loginCalls.Add(1)
		if f.secureCookie {
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		if !f.accept["session"] {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "koa.sess", Value: fmt.Sprint("s", f.loginCalls.Load()), Path: "/"})
		fmt.Fprint(w, `{"result":"User authenticated successfully"}`)
		return
	}
	n := f.requests.Add(1)
	scheme := ""
	if u, p, ok := r.BasicAuth(); ok && f.accept["basic"] && u == user && p == pw {
		scheme = "basic"
	}
	if r.Header.Get("auth-username") != "" && f.accept["token"] {
		ts := r.Header.Get("auth-ts")
		want := authToken(lcRootPasswordHash, r.Header.Get("auth-salt"), ts)
		parsed, err := time.Parse(time.RFC3339Nano, ts)
		if r.Header.Get("auth-token") == want && err == nil && time.Since(parsed).Abs() < 10*time.Second {
			scheme = "token"
		}
	}
	if c, err := r.Cookie("koa.sess"); err == nil && f.accept["session"] {
		if f.expireAfter > 0 && n == f.expireAfter+1 {
			scheme = "" // the session expired
		} else if c.Value != "" {
			scheme = "session"
		}
	}
	if f.schemes != nil {
		f.schemes <- scheme
	}
	if scheme == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if f.forbid {
		http.Error(w, "User root@openhim.org is not an admin, API access to getChannels denied.", http.StatusForbidden)
		return
	}
	fmt.Fprint(w, `[]`)
}

func TestAuthSchemes(t *testing.T) {
	tests := []struct {
		name       string
		scheme     AuthScheme
		core       *lcAuthCore
		calls      int
		wantErr    error
		wantScheme string
		wantSalt   int32 // GET /authenticate/:user calls
		wantLogin  int32
		wantText   string // in the error: what to change
	}{
		{name: "basic never asks for the salt", scheme: AuthBasic, core: &lcAuthCore{accept: map[string]bool{"basic": true}},
			calls: 3, wantScheme: "basic", wantSalt: 0},
		{name: "basic works for a user without token passport", scheme: AuthBasic,
			core: &lcAuthCore{accept: map[string]bool{"basic": true}, tokenUser: false}, calls: 2, wantScheme: "basic"},
		{name: "basic rejected is a credential error", scheme: AuthBasic, core: &lcAuthCore{accept: map[string]bool{"token": true}, tokenUser: true},
			calls: 1, wantErr: ErrUnauthorized},
		{name: "token caches the salt", scheme: AuthToken, core: &lcAuthCore{accept: map[string]bool{"token": true}, tokenUser: true},
			calls: 3, wantScheme: "token", wantSalt: 1},
		{name: "auto uses basic when it works", scheme: AuthAuto, core: &lcAuthCore{accept: map[string]bool{"basic": true, "token": true}, tokenUser: true},
			calls: 3, wantScheme: "basic", wantSalt: 0},
		{name: "auto falls back to token (core 4.x)", scheme: AuthAuto, core: &lcAuthCore{accept: map[string]bool{"token": true}, tokenUser: true},
			calls: 3, wantScheme: "token", wantSalt: 1},
		{name: "auto with none", scheme: AuthAuto, core: &lcAuthCore{accept: map[string]bool{"token": true}, tokenUser: false},
			calls: 1, wantErr: ErrConfig, wantSalt: 1, wantLogin: 1, wantText: "none of the auth schemes"},
		{name: "auto falls through to a session (no basic, no token passport)", scheme: AuthAuto,
			core:  &lcAuthCore{accept: map[string]bool{"session": true}, tokenUser: false},
			calls: 3, wantScheme: "session", wantSalt: 1, wantLogin: 1},
		{name: "session over http refused by core", scheme: AuthSession,
			core:  &lcAuthCore{accept: map[string]bool{"session": true}, secureCookie: true},
			calls: 1, wantErr: ErrConfig, wantLogin: 1, wantText: "use an https openhim.url"},
		{name: "forbidden is a configuration error", scheme: AuthBasic, core: &lcAuthCore{accept: map[string]bool{"basic": true}, forbid: true},
			calls: 1, wantErr: ErrForbidden, wantText: "lacks the permission"},
		{name: "session logs in once", scheme: AuthSession, core: &lcAuthCore{accept: map[string]bool{"session": true}},
			calls: 3, wantScheme: "session", wantLogin: 1},
		{name: "session re-logs in once on 401", scheme: AuthSession, core: &lcAuthCore{accept: map[string]bool{"session": true}, expireAfter: 2},
			calls: 4, wantScheme: "session", wantLogin: 2},
		{name: "session login refused", scheme: AuthSession, core: &lcAuthCore{accept: map[string]bool{"basic": true}},
			calls: 1, wantErr: ErrUnauthorized, wantLogin: 1},
		{name: "token user without token passport", scheme: AuthToken, core: &lcAuthCore{accept: map[string]bool{"token": true}, tokenUser: false},
			calls: 1, wantErr: ErrUnauthorized, wantSalt: 1, wantText: "set openhim.auth (MEDIATOR_OPENHIM_AUTH) to basic or session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core := tt.core
			srv := httptest.NewServer(core)
			defer srv.Close()
			c, err := NewClient(Config{URL: srv.URL, Username: "root@openhim.org", Password: "openhim-password",
				Auth: tt.scheme, RetryWaitMin: time.Millisecond, MaxRetries: 3}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var lastErr error
			for range tt.calls {
				var out []any
				lastErr = c.Do(context.Background(), http.MethodGet, "/channels", nil, &out)
				if tt.wantErr == nil && lastErr != nil {
					t.Fatalf("Do: %v", lastErr)
				}
			}
			if tt.wantErr != nil && !errors.Is(lastErr, tt.wantErr) {
				t.Fatalf("err = %v, want %v", lastErr, tt.wantErr)
			}
			if tt.wantErr != nil {
				if !errors.Is(lastErr, ErrConfig) {
					t.Errorf("err = %v does not match ErrConfig: retrying cannot fix it", lastErr)
				}
				if !strings.Contains(lastErr.Error(), tt.wantText) {
					t.Errorf("err = %v, want it to say %q", lastErr, tt.wantText)
				}
				if strings.Contains(lastErr.Error(), "openhim-password") {
					t.Errorf("err leaks the password: %v", lastErr)
				}
				// A credential failure never reads as "mediator deleted" or
				// "definition rejected", and still carries core's answer.
				for _, bad := range []error{ErrNotFound, ErrBadRequest} {
					if errors.Is(lastErr, bad) {
						t.Errorf("err = %v matches %v", lastErr, bad)
					}
				}
				var api *APIError
				if !errors.As(lastErr, &api) {
					t.Errorf("err = %v is not an *APIError", lastErr)
				}
			}
			if tt.wantErr == nil {
				c.auth.mu.Lock()
				active := c.auth.active
				c.auth.mu.Unlock()
				if string(active) != tt.wantScheme {
					t.Errorf("active scheme = %s, want %s", active, tt.wantScheme)
				}
			}
			if got := core.saltCalls.Load(); got != tt.wantSalt {
				t.Errorf("GET /authenticate/:user calls = %d, want %d", got, tt.wantSalt)
			}
			if got := core.loginCalls.Load(); got != tt.wantLogin {
				t.Errorf("POST /authenticate/local calls = %d, want %d", got, tt.wantLogin)
			}
		})
	}
}

// TestAuthBadPasswordNotHammered checks that a 401 is not retried beyond the
// one credential refresh.
func TestAuthBadPasswordNotHammered(t *testing.T) {
	core := &lcAuthCore{accept: map[string]bool{"basic": true, "token": true}, tokenUser: true}
	srv := httptest.NewServer(core)
	defer srv.Close()
	c, err := NewClient(Config{URL: srv.URL, Username: "root@openhim.org", Password: "wrong", MaxRetries: 5,
		RetryWaitMin: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), http.MethodGet, "/channels", nil, nil)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error leaks the password: %v", err)
	}
	// auto: one basic attempt, salt fetch, one token attempt; no retries.
	if got := core.requests.Load(); got != 2 {
		t.Errorf("authenticated requests = %d, want 2 (basic, then token once)", got)
	}
}
