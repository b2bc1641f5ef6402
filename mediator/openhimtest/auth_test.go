package openhimtest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"
)

// §1.1 test vector: the root user's passwordHash and the documented token.
func TestTokenAuth_ReferenceVector_S1_1(t *testing.T) {
	ts := "2024-01-01T00:00:00.000Z"
	now, _ := time.Parse(time.RFC3339, "2024-01-01T00:00:03Z")
	srv, c := newFake(t, Config{Version: Version4, Now: func() time.Time { return now }})

	var salt struct{ Salt, Ts string }
	c.scheme = "none"
	r := c.do(t, http.MethodGet, "/authenticate/"+RootUser, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /authenticate: %d %s", r.Status, r.Body)
	}
	r.json(t, &salt)
	ph := hexSHA512(salt.Salt + RootPassword)
	if !strings.HasPrefix(ph, "943a856b") || !strings.HasSuffix(ph, "100d0fb") {
		t.Fatalf("root passwordhash = %s, want 943a856b…100d0fb (src/server.js)", ph)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/mediators", nil)
	req.Header.Set("auth-username", RootUser)
	req.Header.Set("auth-ts", ts)
	req.Header.Set("auth-salt", "842cd4a0-1a91-45a7-bf76-c292cb36b2e8")
	req.Header.Set("auth-token", "6d77e1c3ead6e913595a0df569d195c77c2586c5e9b474af271685aed60a981a0f09844dcab872ff7361ca87bb2e96eca2013b16b6d198287d98b99965ccb3cd")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token from the reference vector: status %d, want 200", resp.StatusCode)
	}
}

// §1.1: ±authWindowSeconds (default 10), both directions; an auth-ts that
// Date.parse cannot read is NaN and passes the window check (core 4.0.5
// src/api/authentication.js, authenticate; core 8 src/protocols/token.js,
// login: authWindowSeconds around Date.parse(auth-ts)).
func TestTokenAuth_Window_S1_1(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		ts     string
		window time.Duration
		want   int
	}{
		{"now", "2025-03-01T12:00:00.000Z", 0, 200},
		{"9s old", "2025-03-01T11:59:51.000Z", 0, 200},
		{"11s old", "2025-03-01T11:59:49.000Z", 0, 401},
		{"9s future", "2025-03-01T12:00:09.000Z", 0, 200},
		{"11s future", "2025-03-01T12:00:11.000Z", 0, 401},
		{"11s old, window 50s", "2025-03-01T11:59:49.000Z", 50 * time.Second, 200},
		{"unparseable ts is NaN and not rejected", "not a date", 0, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newFake(t, Config{Version: Version4, AuthWindow: tt.window, Now: func() time.Time { return base }})
			salt := rootSalt
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/mediators", nil)
			req.Header.Set("auth-username", RootUser)
			req.Header.Set("auth-ts", tt.ts)
			req.Header.Set("auth-salt", "x")
			req.Header.Set("auth-token", hexSHA512(hexSHA512(salt+RootPassword)+"x"+tt.ts))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// §1.1–§1.3: which scheme works on which version profile.
func TestAuthSchemesPerVersion_S1(t *testing.T) {
	tests := []struct {
		version Version
		scheme  string
		want    int
		cfg     Config // TLS, InsecureSessionCookie
	}{
		{Version4, "token", 200, Config{}},
		{Version4, "badtoken", 401, Config{}},
		{Version4, "basic", 401, Config{}}, // 4.0.5: basic is answered 401
		{Version4, "session", 401, Config{}},
		{Version4, "none", 401, Config{}},
		{Version7, "token", 200, Config{}},
		{Version7, "basic", 200, Config{}},
		{Version7, "badbasic", 401, Config{}},
		{Version7, "session", 401, Config{}}, // /authenticate/local arrived in 7.2
		// 7.2 brought core 8's passport dispatch and sessions
		// (src/api/authentication.js, src/koaApi.js), with koa-session
		// secure: true whatever the configuration (api.secureCookie came
		// with 8.0): token auth over http answers 500 even then.
		{Version7, "token", 500, Config{Release: "7.2.0"}},
		{Version7, "token", 500, Config{Release: "7.2.1", InsecureSessionCookie: true}},
		{Version7, "token", 200, Config{Release: "7.2.0", TLS: true}},
		{Version7, "basic", 200, Config{Release: "7.2.0"}},
		{Version7, "session", 200, Config{Release: "7.2.0", TLS: true}},
		{Version7, "session", 401, Config{Release: "7.2.0"}},
		{Version7, "basic+authheader", 401, Config{Release: "7.2.0"}},
		// core 8's authenticateToken (src/api/authentication.js) lets
		// passport 0.6 log the user into a session; koa-session cannot
		// set its Secure cookie over http and Koa answers 500 (see
		// Server.sessionCommitFails). Over https, or with secureCookie
		// false, token auth works.
		{Version8, "token", 500, Config{}},
		{Version8, "token", 200, Config{TLS: true}},
		{Version8, "token", 200, Config{InsecureSessionCookie: true}},
		{Version8, "basic", 200, Config{}},
		{Version8, "badbasic", 401, Config{}},
		{Version8, "session", 200, Config{TLS: true}},
		// core's default api.secureCookie: true (config/default.json, given
		// to koa-session in src/koaApi.js): the login over http fails with
		// 500 and sets no cookie; with secureCookie: false it works.
		{Version8, "session", 401, Config{}},
		{Version8, "session", 200, Config{InsecureSessionCookie: true}},
		{Version8, "basic+authheader", 401, Config{}}, // any auth-* header: only token is tried
		{Version8, "none", 401, Config{}},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("v%d/%s", tt.version, tt.scheme)
		passport := tt.version == Version8 || tt.cfg.Release != ""
		if tt.cfg.Release != "" {
			name += "/" + tt.cfg.Release
		}
		if (tt.scheme == "session" || tt.scheme == "token") && passport {
			name += fmt.Sprintf("/tls=%t,insecureCookie=%t", tt.cfg.TLS, tt.cfg.InsecureSessionCookie)
		}
		t.Run(name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Version = tt.version
			srv, c := newFake(t, cfg)
			hc := srv.Client()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/mediators", nil)
			switch tt.scheme {
			case "token":
				if err := c.tokenHeaders(req.Header); err != nil {
					t.Fatal(err)
				}
			case "badtoken":
				c.pass = "wrong"
				if err := c.tokenHeaders(req.Header); err != nil {
					t.Fatal(err)
				}
			case "basic":
				req.SetBasicAuth(RootUser, RootPassword)
			case "badbasic":
				req.SetBasicAuth(RootUser, "wrong")
			case "basic+authheader":
				req.SetBasicAuth(RootUser, RootPassword)
				req.Header.Set("auth-username", RootUser)
			case "session":
				resp := logIn(t, srv.URL, hc)
				wantLogin := resp.StatusCode // the earlier profiles: see want
				if passport {
					wantLogin = http.StatusOK
					if !cfg.TLS && !cfg.InsecureSessionCookie {
						wantLogin = http.StatusInternalServerError
					}
				}
				if resp.StatusCode != wantLogin {
					t.Fatalf("login status %d, want %d", resp.StatusCode, wantLogin)
				}
				if got := resp.Cookies(); wantLogin == http.StatusOK && (len(got) == 0 || got[0].Secure == cfg.InsecureSessionCookie) {
					t.Fatalf("login cookies = %v, want Secure=%t", got, !cfg.InsecureSessionCookie)
				}
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// §1.4: a v8 user with only a local passport cannot use token auth (core 8
// src/api/users.js, authenticateToken, and src/protocols/token.js, login,
// look for a passport with protocol 'token'; basic auth uses
// src/protocols/local.js).
func TestLocalOnlyUser_S1_4(t *testing.T) {
	srv, c := newFake(t, Config{Version: Version8})
	srv.AddLocalUser("console@example.org", "pw", "admin")
	c.user, c.pass, c.scheme = "console@example.org", "pw", "none"
	if r := c.do(t, http.MethodGet, "/authenticate/console@example.org", nil); r.Status != http.StatusNotFound {
		t.Fatalf("GET /authenticate for a local-only user: %d, want 404", r.Status)
	}
	c.scheme = "basic"
	if r := c.do(t, http.MethodGet, "/mediators", nil); r.Status != http.StatusOK {
		t.Fatalf("basic auth for a local-only user: %d, want 200", r.Status)
	}
}

// §1.5: /mediators* needs the admin group, with core's 403 texts (core's
// src/api/mediators.js: each handler starts with
// authorisation.inGroup('admin', ctx.authenticated); heartbeat, setConfig
// and loadDefaultChannels reuse removeMediator's text); so do the channel,
// client and transaction writes and GET /clients (src/api/channels.js
// addChannel, updateChannel, removeChannel; src/api/clients.js addClient,
// getClients; src/api/transactions.js updateTransaction; the same texts
// from 4.0.5 to 8.4.3).
func TestNonAdminForbidden_S1_5(t *testing.T) {
	srv, c := newFake(t, Config{Version: Version4})
	srv.AddUser("viewer@example.org", "pw", "viewers")
	c.user, c.pass = "viewer@example.org", "pw"
	tests := []struct{ method, path, fn string }{
		{http.MethodGet, "/mediators", "getAllMediators"},
		{http.MethodPost, "/mediators", "addMediator"},
		{http.MethodGet, "/mediators/urn:x", "getMediator"},
		{http.MethodDelete, "/mediators/urn:x", "removeMediator"},
		{http.MethodPost, "/mediators/urn:x/heartbeat", "removeMediator"},
		{http.MethodPut, "/mediators/urn:x/config", "removeMediator"},
		{http.MethodPost, "/mediators/urn:x/channels", "removeMediator"},
		{http.MethodPost, "/channels", "addChannel"},
		{http.MethodPut, "/channels/x", "updateChannel"},
		{http.MethodDelete, "/channels/x", "removeChannel"},
		{http.MethodPost, "/clients", "addClient"},
		{http.MethodGet, "/clients", "getClients"},
		{http.MethodPut, "/transactions/x", "updateTransaction"},
	}
	for _, tt := range tests {
		r := c.do(t, tt.method, tt.path, map[string]any{})
		want := "User viewer@example.org is not an admin, API access to " + tt.fn + " denied."
		if r.Status != http.StatusForbidden || r.Body != want {
			t.Errorf("%s %s: %d %q, want 403 %q", tt.method, tt.path, r.Status, r.Body, want)
		}
	}
}

// TestAPIAuthDispatchV8 follows core 8's src/api/authentication.js,
// authenticateRequest and requestType: token auth only when one of
// auth-username, auth-ts, auth-salt, auth-token is non-empty (another
// auth-* header leaves basic in charge); basic auth looks the user up with
// src/protocols/local.js login, UserModelAPI.findOne({email}): an exact,
// case-sensitive match (core 7.1's basic auth used caseInsensitiveRegex);
// src/koaApi.js mounts GET /logout after the auth middleware.
func TestAPIAuthDispatchV8(t *testing.T) {
	tests := []struct {
		name    string
		version Version
		path    string
		set     func(h http.Header)
		want    int
	}{
		{"other auth-* header keeps basic", Version8, "/mediators", func(h http.Header) {
			h.Set("Authorization", basicHeader(RootUser, RootPassword))
			h.Set("Auth-Request-Id", "abc")
		}, 200},
		{"empty token header keeps basic", Version8, "/mediators", func(h http.Header) {
			h.Set("Authorization", basicHeader(RootUser, RootPassword))
			h.Set("auth-token", "")
		}, 200},
		{"non-empty token header: only token is tried", Version8, "/mediators", func(h http.Header) {
			h.Set("Authorization", basicHeader(RootUser, RootPassword))
			h.Set("auth-salt", "x")
		}, 401},
		{"basic e-mail is case-sensitive on 8", Version8, "/mediators", func(h http.Header) {
			h.Set("Authorization", basicHeader("ROOT@openhim.org", RootPassword))
		}, 401},
		{"basic e-mail is case-insensitive on 7.1", Version7, "/mediators", func(h http.Header) {
			h.Set("Authorization", basicHeader("ROOT@openhim.org", RootPassword))
		}, 200},
		{"logout needs authentication", Version8, "/logout", func(http.Header) {}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newFake(t, Config{Version: tt.version, TLS: true})
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			tt.set(req.Header)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestSessionCommitOverHTTPV8: core 8 gives koa-session secure:
// api.secureCookie (config/default.json: true; src/koaApi.js). A request
// that writes the session - token auth (src/api/authentication.js,
// authenticateToken: passport.authenticate('token') without a callback, so
// passport 0.6 req.logIn regenerates the session) or GET /logout
// (src/api/users.js logout: ctx.session = null) - makes koa-session's
// commit set or clear its cookie after the handler ran; over http the
// cookies module throws and Koa (lib/context.js onerror) answers 500
// "Internal Server Error". The handler's work is done all the same.
func TestSessionCommitOverHTTPV8(t *testing.T) {
	for _, cfg := range []Config{{}, {TLS: true}, {InsecureSessionCookie: true}} {
		cfg.Version = Version8
		fails := !cfg.TLS && !cfg.InsecureSessionCookie
		t.Run(fmt.Sprintf("tls=%t,insecureCookie=%t", cfg.TLS, cfg.InsecureSessionCookie), func(t *testing.T) {
			srv, c := newFake(t, cfg)
			c.scheme = "token"
			r, err := c.try(http.MethodPost, "/mediators", testMediator("urn:mediator:tok", "1.0.0"))
			if err != nil {
				t.Fatal(err)
			}
			want, wantBody := http.StatusCreated, ""
			if fails {
				want, wantBody = http.StatusInternalServerError, "Internal Server Error"
			}
			if r.Status != want || (wantBody != "" && r.Body != wantBody) {
				t.Errorf("token POST /mediators: %d %q, want %d %q", r.Status, r.Body, want, wantBody)
			}
			if _, ok := srv.Mediator("urn:mediator:tok"); !ok {
				t.Error("mediator not stored: the handler runs before koa-session's commit")
			}
			c.scheme = "basic"
			if r := c.do(t, http.MethodGet, "/mediators", nil); r.Status != http.StatusOK {
				t.Errorf("basic auth makes no session: %d, want 200", r.Status)
			}
			want = http.StatusOK
			if fails {
				want = http.StatusInternalServerError
			}
			if r := c.do(t, http.MethodGet, "/logout", nil); r.Status != want {
				t.Errorf("GET /logout: %d, want %d", r.Status, want)
			}
		})
	}
}

func basicHeader(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// TestBasicAuthBodyV8: core 8's authenticateBasic (src/api/authentication.js)
// sets ctx.body = 'User Authenticated Successfully'; a handler that only
// sets a status (src/api/mediators.js getMediator and heartbeat: ctx.status
// = 404; addMediator: ctx.status = 201) leaves that body in place. Token
// auth, core 7.1's basic auth and a status with its own body do not.
func TestBasicAuthBodyV8(t *testing.T) {
	tests := []struct {
		name     string
		version  Version
		scheme   string
		method   string
		path     string
		want     int
		wantBody string
	}{
		{"8.x basic, unknown mediator", Version8, "basic", http.MethodGet, "/mediators/urn:none", 404, "User Authenticated Successfully"},
		{"8.x basic, heartbeat of an unknown mediator", Version8, "basic", http.MethodPost, "/mediators/urn:none/heartbeat", 404, "User Authenticated Successfully"},
		{"8.x basic, registration", Version8, "basic", http.MethodPost, "/mediators", 201, "User Authenticated Successfully"},
		{"8.x token, unknown mediator", Version8, "token", http.MethodGet, "/mediators/urn:none", 404, "Not Found"},
		{"7.1 basic, unknown mediator", Version7, "basic", http.MethodGet, "/mediators/urn:none", 404, "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newFake(t, Config{Version: tt.version, TLS: true})
			c.scheme = tt.scheme
			var body any
			switch {
			case tt.path == "/mediators":
				body = testMediator("urn:mediator:body", "1.0.0")
			case tt.method == http.MethodPost:
				body = map[string]any{"uptime": 1}
			}
			r := c.do(t, tt.method, tt.path, body)
			if r.Status != tt.want || r.Body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", r.Status, r.Body, tt.want, tt.wantBody)
			}
		})
	}
}

// TestAPISessionFirstV8: core 8's authenticateRequest
// (src/api/authentication.js) takes the session's ctx.req.user first and
// then tries neither token nor basic auth, so a session request is not
// checked against its auth-* or Authorization headers, and its answer has
// none of authenticateBasic's ctx.body ('User Authenticated Successfully').
// Without a session the same headers decide (requestType).
func TestAPISessionFirstV8(t *testing.T) {
	tests := []struct {
		name     string
		session  bool
		set      func(h http.Header)
		want     int
		wantBody string
	}{
		{"session", true, func(http.Header) {}, 404, "Not Found"},
		{"session with basic", true, func(h http.Header) {
			h.Set("Authorization", basicHeader(RootUser, RootPassword))
		}, 404, "Not Found"},
		{"session with a wrong token", true, func(h http.Header) {
			h.Set("auth-username", RootUser)
			h.Set("auth-token", "wrong")
		}, 404, "Not Found"},
		{"session with wrong basic", true, func(h http.Header) {
			h.Set("Authorization", basicHeader(RootUser, "wrong"))
		}, 404, "Not Found"},
		{"basic without a session", false, func(h http.Header) {
			h.Set("Authorization", basicHeader(RootUser, RootPassword))
		}, 404, "User Authenticated Successfully"},
		{"wrong token without a session", false, func(h http.Header) {
			h.Set("auth-username", RootUser)
			h.Set("auth-token", "wrong")
		}, 401, "Unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newFake(t, Config{Version: Version8, TLS: true})
			hc := srv.Client()
			if tt.session {
				if resp := logIn(t, srv.URL, hc); resp.StatusCode != http.StatusOK {
					t.Fatalf("login status %d, want 200", resp.StatusCode)
				}
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/mediators/urn:none", nil)
			tt.set(req.Header)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want || string(body) != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.want, tt.wantBody)
			}
		})
	}
}

// logIn gives hc a cookie jar and logs in as root with a session
// (POST /authenticate/local) at the fake at url, returning the answer
// (its body closed).
func logIn(t *testing.T, url string, hc *http.Client) *http.Response {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc.Jar = jar
	resp, err := hc.Post(url+"/authenticate/local", "application/json",
		bytes.NewBufferString(`{"username":"root@openhim.org","password":"openhim-password"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestMalformedJSONBody: core's API parses bodies with koa-bodyparser
// (src/koaApi.js app.use(bodyParser(...))), which answers 400 to a JSON
// content type with malformed JSON before any handler runs, and before
// the auth middleware (app.use(authentication.authenticate)), so an
// unauthenticated or non-admin caller gets 400 too, on 4.0.5 as on 8.x.
// koa-bodyparser parses JSON with co-body in strict mode (co-body
// lib/json.js, parse): a body that is not an object or an array (null, a
// string, a number, only white space) is refused the same way. The fake
// does not model koa-bodyparser's message, so only the status is pinned.
func TestMalformedJSONBody(t *testing.T) {
	bodies := []string{`{"urn":`, `null`, `"x"`, `42`, "  \n"}
	tests := []struct{ method, path string }{
		{http.MethodPost, "/mediators"},
		{http.MethodPost, "/mediators/urn:x/heartbeat"},
		{http.MethodPut, "/mediators/urn:x/config"},
		{http.MethodPost, "/mediators/urn:x/channels"},
		{http.MethodPost, "/channels"},
		{http.MethodPut, "/channels/x"},
		{http.MethodPost, "/clients"},
		{http.MethodPut, "/transactions/x"},
	}
	callers := []struct {
		name string
		set  func(srv *Server, c *apiClient)
	}{
		{"admin", func(*Server, *apiClient) {}},
		{"non-admin", func(srv *Server, c *apiClient) {
			srv.AddUser("viewer@example.org", "pw", "viewers")
			c.user, c.pass = "viewer@example.org", "pw"
		}},
		{"no credentials", func(_ *Server, c *apiClient) { c.scheme = "none" }},
		{"wrong password", func(_ *Server, c *apiClient) { c.pass = "wrong" }},
	}
	for _, v := range []Version{Version4, Version8} {
		for _, caller := range callers {
			for _, tt := range tests {
				t.Run(fmt.Sprintf("v%d %s %s %s", v, caller.name, tt.method, tt.path), func(t *testing.T) {
					srv, c := newFake(t, Config{Version: v, TLS: true})
					caller.set(srv, c)
					for _, body := range bodies {
						if r := c.do(t, tt.method, tt.path, body); r.Status != http.StatusBadRequest {
							t.Errorf("body %q: status %d %q, want 400", body, r.Status, r.Body)
						}
					}
				})
			}
		}
	}
	// The login route reads the parsed body too: malformed JSON is 400,
	// and so are missing credentials (passport-local's "Missing
	// credentials").
	_, c := newFake(t, Config{Version: Version8, TLS: true})
	c.scheme = "none"
	for _, body := range []string{`{"username":`, `{"username":"root@openhim.org"}`, `{}`} {
		if r := c.do(t, http.MethodPost, "/authenticate/local", body); r.Status != http.StatusBadRequest {
			t.Errorf("login with %s: status %d %q, want 400", body, r.Status, r.Body)
		}
	}
}

// TestMeRoute: GET /me is public from 7.2 (src/koaApi.js mounts it before
// the auth middleware; src/api/users.js me): the session's user, or 404
// "Not authenticated" without one, over http too (reading no session
// writes no cookie). Up to 7.1 there is no such route before the auth
// middleware, which answers a request without credentials 401.
func TestMeRoute(t *testing.T) {
	for _, tt := range []struct {
		cfg      Config
		session  bool
		want     int
		wantBody string
	}{
		{Config{Version: Version4}, false, http.StatusUnauthorized, ""},
		{Config{Version: Version7}, false, http.StatusUnauthorized, ""},
		{Config{Version: Version7, Release: "7.2.0"}, false, http.StatusNotFound, "Not authenticated"},
		{Config{Version: Version8}, false, http.StatusNotFound, "Not authenticated"},
		{Config{Version: Version8, TLS: true}, true, http.StatusOK, `{"user":{"email":"root@openhim.org","groups":["admin"]}}`},
	} {
		t.Run(fmt.Sprintf("v%d-%s-session=%t", tt.cfg.Version, tt.cfg.Release, tt.session), func(t *testing.T) {
			srv, _ := newFake(t, tt.cfg)
			hc := srv.Client()
			if tt.session {
				logIn(t, srv.URL, hc)
			}
			resp, err := hc.Get(srv.URL + "/me")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want || (tt.wantBody != "" && strings.TrimSpace(string(b)) != tt.wantBody) {
				t.Errorf("GET /me: %d %q, want %d %q", resp.StatusCode, b, tt.want, tt.wantBody)
			}
		})
	}
}
