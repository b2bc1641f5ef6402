package openhimtest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Session cookie names of koa-session (§1.3).
const (
	sessionCookie    = "koa.sess"
	sessionSigCookie = "koa.sess.sig"
)

// AddLocalUser adds a Version8 user with only a "local" passport, like users
// created on core ≥7.2 through POST /users: basic and session auth work,
// GET /authenticate/:user answers 404 and token auth fails (§1.4).
func (s *Server) AddLocalUser(email, password string, groups ...string) {
	s.AddUser(email, password, groups...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToLower(email)].localOnly = true
}

func (s *Server) lookupUser(email string) *user {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[strings.ToLower(email)]
}

// authMethod is the scheme a request was authenticated with.
type authMethod int

const (
	authSession authMethod = iota + 1
	authToken
	authBasic
)

// authenticate applies the version profile's API authentication (§1.1–§1.3)
// and returns the user, or nil for 401, and the scheme that accepted it. On
// Version8 that scheme also decides what koa-session and authenticateBasic
// do to the answer (see sessionCommitFails and basicAuthWriter).
func (s *Server) authenticate(r *http.Request) (*user, authMethod) {
	switch s.cfg.Version {
	case Version4:
		return s.tokenAuth(r), authToken
	case Version7:
		if s.passport {
			break // 7.2 dispatches as 8 does
		}
		// v5.1–v7.1: basic first when an Authorization header parses as
		// Basic; a failure there is final. Otherwise token.
		if email, pw, ok := r.BasicAuth(); ok {
			return s.basicAuth(email, pw), authBasic
		}
		return s.tokenAuth(r), authToken
	}
	// v7.2+/v8 passport dispatch (src/api/authentication.js,
	// authenticateRequest and requestType): a session, else token auth
	// when one of the four token headers is non-empty, else basic
	// when the Authorization header contains "Basic".
	if u := s.sessionUser(r); u != nil {
		return u, authSession
	}
	if hasTokenHeader(r) {
		return s.tokenAuth(r), authToken
	}
	if strings.Contains(r.Header.Get("Authorization"), "Basic") {
		if email, pw, ok := r.BasicAuth(); ok {
			return s.basicAuth(email, pw), authBasic
		}
	}
	return nil, 0
}

// hasTokenHeader is core 8's requestType(ctx, 'token'): one of the four
// token headers is present and non-empty; other auth-* headers do not count.
func hasTokenHeader(r *http.Request) bool {
	for _, k := range []string{"auth-username", "auth-ts", "auth-salt", "auth-token"} {
		if r.Header.Get(k) != "" {
			return true
		}
	}
	return false
}

// sessionCommitFails reports a Version8 request whose answer koa-session
// turns into a 500 (see secureCookieOverHTTP) because it writes the
// session: token auth (src/api/authentication.js authenticateToken calls
// passport.authenticate('token') without a callback, so passport 0.6 logs
// the user into a new session) and GET /logout (src/api/users.js logout
// sets ctx.session = null). Basic auth passes a callback and makes no
// session. via is the scheme authenticate used.
func (s *Server) sessionCommitFails(logout bool, via authMethod) bool {
	return s.passport && (logout || via == authToken) && s.secureCookieOverHTTP()
}

// secureCookieOverHTTP reports a core that marks its session cookie Secure
// (config/default.json api.secureCookie: true, given to koa-session in
// src/koaApi.js) serving plain http: when koa-session's commit sets or
// clears the cookie, the cookies module throws "Cannot send secure cookie
// over unencrypted connection" and Koa's default error handler
// (lib/context.js onerror) answers 500 with the status text only
// (err.expose is false for a 5xx).
func (s *Server) secureCookieOverHTTP() bool {
	// 7.2 (src/koaApi.js) gives koa-session secure: true, whatever the
	// configuration.
	return !s.cfg.TLS && (!s.cfg.InsecureSessionCookie || s.cfg.Version == Version7)
}

// basicAuth checks a basic auth or local login. On Version8 the e-mail is
// matched exactly (src/protocols/local.js login: UserModelAPI.findOne({email})),
// before that without case (src/api/authentication.js: caseInsensitiveRegex).
func (s *Server) basicAuth(email, password string) *user {
	u := s.lookupUser(email)
	if u == nil || (s.passport && u.email != email) {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(sha512Hex(u.passwordSalt+password)), []byte(u.passwordHash)) != 1 {
		return nil
	}
	return u
}

// tokenAuth mirrors core's legacy token check (§1.1): four non-empty
// headers, auth-ts within ±AuthWindow (an unparseable auth-ts is NaN in
// JavaScript and passes the window check), and
// auth-token == hex(sha512(passwordHash + auth-salt + auth-ts)).
func (s *Server) tokenAuth(r *http.Request) *user {
	email := r.Header.Get("auth-username")
	ts := r.Header.Get("auth-ts")
	salt := r.Header.Get("auth-salt")
	token := r.Header.Get("auth-token")
	if email == "" || ts == "" || salt == "" || token == "" {
		return nil
	}
	u := s.lookupUser(email)
	if u == nil || (s.passport && u.localOnly) {
		return nil
	}
	if t, ok := parseJSDate(ts); ok {
		now := s.cfg.Now()
		if t.Before(now.Add(-s.cfg.AuthWindow)) || t.After(now.Add(s.cfg.AuthWindow)) {
			return nil
		}
	}
	want := sha512Hex(u.passwordHash + salt + ts)
	if subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 {
		return nil
	}
	return u
}

// parseJSDate approximates Date.parse for the formats clients send: ISO-8601
// with or without zone (without zone = server local time, as V8 does),
// RFC 1123 and Date.toString() forms.
func parseJSDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, true
		}
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, true
	}
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon Jan 02 2006 15:04:05 GMT-0700"} {
		v := s
		if i := strings.Index(v, " ("); i > 0 {
			v = v[:i]
		}
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// sessionSig is the fake's value of koa-session's signature cookie.
func sessionSig(id string) string { return sha512Hex("sig:" + id)[:27] }

func (s *Server) sessionUser(r *http.Request) *user {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	sig, err := r.Cookie(sessionSigCookie)
	if err != nil || sig.Value != sessionSig(c.Value) {
		return nil
	}
	s.mu.Lock()
	email, ok := s.sessions[c.Value]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return s.lookupUser(email)
}

// handleLocalLogin is POST /authenticate/local (7.2 and later, §1.3).
func (s *Server) handleLocalLogin(w http.ResponseWriter, r *http.Request) {
	// passport-local reads ctx.request.body and fails with 400 "Missing
	// credentials" when either field is missing or empty.
	body, _ := requestBody(r).(map[string]any)
	username, _ := body["username"].(string)
	password, _ := body["password"].(string)
	if username == "" || password == "" {
		writeStatus(w, http.StatusBadRequest)
		return
	}
	u := s.basicAuth(username, password)
	if u == nil {
		writeStatus(w, http.StatusUnauthorized)
		return
	}
	if s.secureCookieOverHTTP() {
		// koa-session sets its cookie after the login succeeded.
		writeText(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s.mu.Lock()
	s.sessions[id] = u.email
	s.mu.Unlock()
	for _, c := range []*http.Cookie{
		{Name: sessionCookie, Value: id},
		{Name: sessionSigCookie, Value: sessionSig(id)},
	} {
		c.Path = "/"
		c.HttpOnly = true
		c.MaxAge = 7200
		if !s.cfg.InsecureSessionCookie {
			c.Secure = true
			c.SameSite = http.SameSiteNoneMode
		}
		http.SetCookie(w, c)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"result": "User authenticated successfully",
		"user":   userJSON(u),
	})
}

// handleLogout is GET /logout (7.2 and later).
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	writeHandlerStatus(w, http.StatusOK)
}

// handleAuthenticateSalt is GET /authenticate/:username (§1.1 step 1).
func (s *Server) handleAuthenticateSalt(w http.ResponseWriter, email string) {
	u := s.lookupUser(email)
	if u == nil {
		writeText(w, http.StatusNotFound, "Could not find user by email "+email)
		return
	}
	if s.passport && u.localOnly {
		writeText(w, http.StatusNotFound, "Could not find token passport for user "+email)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"salt": u.passwordSalt,
		"ts":   s.now(),
	})
}

func userJSON(u *user) map[string]any {
	return map[string]any{"email": u.email, "groups": u.groups}
}

// handleMe is GET /me (7.2 and later; src/api/users.js me, mounted before
// the auth middleware in src/koaApi.js): the session's user, or 404 "Not
// authenticated" without a session. Up to 7.1 there is no such public
// route: the request meets the auth middleware.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	u := s.sessionUser(r)
	if u == nil {
		writeText(w, http.StatusNotFound, "Not authenticated")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": map[string]any{"email": u.email, "groups": u.groups}})
}
