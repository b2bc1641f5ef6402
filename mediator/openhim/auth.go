package openhim

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// AuthScheme selects how the client authenticates to the core API.
type AuthScheme string

// Authentication schemes. See [Config.Auth].
const (
	// AuthAuto tries Basic first; on a 401 it falls back to Token if
	// GET /authenticate/:user answers 200 (core 4.x–7.0 have no Basic, or
	// it is disabled). The choice is then kept. This is the default.
	AuthAuto AuthScheme = "auto"
	// AuthBasic sends an Authorization: Basic header on every request and
	// never calls /authenticate/:user (so it works for users created on
	// core 7.2+, which have no token passport). Core 5.1+ when enabled, on
	// by default since 7.1.
	AuthBasic AuthScheme = "basic"
	// AuthToken is core's legacy token scheme (auth-username, auth-ts,
	// auth-salt, auth-token headers), available on every core version;
	// the user salt from GET /authenticate/:user is cached. From core 7.2
	// it also opens a session, whose Secure cookie (always on 7.2;
	// api.secureCookie from 8.0) fails every call over plain http: use it
	// over https there.
	AuthToken AuthScheme = "token"
	// AuthSession logs in with POST /authenticate/local (core 7.2+) and
	// uses the session cookie, avoiding a bcrypt check per request; on a
	// 401 it logs in again once. Core marks the cookie Secure by default
	// (api.secureCookie), so use it over https.
	AuthSession AuthScheme = "session"
)

// redactedText replaces secrets in logs and formatted output.
const redactedText = "REDACTED"

// authState holds the credentials and the per-scheme state. mu guards
// everything below it.
type authState struct {
	scheme   AuthScheme
	username string
	password string

	mu       sync.Mutex
	active   AuthScheme    // scheme in use (Auto starts with Basic)
	gen      uint64        // bumped on every credential refresh
	passHash string        // token: hex(sha512(userSalt + password)); "" = not fetched
	skew     time.Duration // token: server time - local time, when large
	loggedIn bool          // session
}

// prepare makes sure the active scheme has what it needs (token salt,
// session login) and returns the credential generation.
func (a *authState) prepare(ctx context.Context, c *Client) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.active {
	case AuthToken:
		if a.passHash == "" {
			if err := a.fetchSaltLocked(ctx, c); err != nil {
				return a.gen, err
			}
		}
	case AuthSession:
		if !a.loggedIn {
			if err := a.loginLocked(ctx, c); err != nil {
				return a.gen, err
			}
		}
	}
	return a.gen, nil
}

// recover is called after a 401. It reports whether the request should be
// sent once more with refreshed credentials.
func (a *authState) recover(ctx context.Context, c *Client, gen uint64) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen != gen {
		return true, nil // another request refreshed the credentials meanwhile
	}
	switch a.active {
	case AuthBasic:
		if a.scheme != AuthAuto {
			return false, nil
		}
		// auto: basic was refused (core up to 7.0 has no basic auth, or
		// it is off); token auth next, then a session.
		terr := a.fetchSaltLocked(ctx, c)
		if terr == nil {
			c.log.InfoContext(ctx, "openhim core refused basic auth; using token auth", "username", a.username)
			a.active = AuthToken
			return true, nil
		}
		var tce *configError
		if !errors.As(terr, &tce) {
			return false, terr // core trouble: retried
		}
		serr := a.loginLocked(ctx, c)
		if serr == nil {
			c.log.InfoContext(ctx, "openhim core refused basic and token auth; using a session", "username", a.username)
			a.active = AuthSession
			return true, nil
		}
		var sce *configError
		if !errors.As(serr, &sce) {
			return false, serr
		}
		return false, &configError{api: sce.api, matches: ErrUnauthorized, fix: fmt.Sprintf(
			"core accepted none of the auth schemes for user %q: basic was refused; token: %s; session: %s",
			a.username, tce.fix, sce.fix)}
	case AuthToken:
		a.passHash = ""
		return refreshed(a.fetchSaltLocked(ctx, c))
	case AuthSession:
		a.loggedIn = false
		return refreshed(a.loginLocked(ctx, c))
	}
	return false, nil
}

// refreshed is recover's answer after a salt fetch or login: send again
// if it worked; if core refused the credentials, the original 401 is
// reported; other errors (core trouble) are returned.
func refreshed(err error) (bool, error) {
	if errors.Is(err, ErrConfig) {
		return false, nil
	}
	return err == nil, err
}

// activeScheme returns the scheme in use.
func (a *authState) activeScheme() AuthScheme {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.active
}

// apply sets the credentials of the active scheme in h (and removes those
// of another scheme an earlier attempt may have used).
func (a *authState) apply(h http.Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range []string{"Authorization", "auth-username", "auth-ts", "auth-salt", "auth-token"} {
		h.Del(k)
	}
	switch a.active {
	case AuthBasic:
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.username+":"+a.password)))
	case AuthToken:
		ts := time.Now().Add(a.skew).UTC().Format(authTSLayout)
		salt := randomSalt()
		h.Set("auth-username", a.username)
		h.Set("auth-ts", ts)
		h.Set("auth-salt", salt)
		h.Set("auth-token", authToken(a.passHash, salt, ts))
	case AuthSession:
		// the cookie jar sends the session cookie
	}
}

// authTSLayout is UTC ISO-8601 with milliseconds and a Z, as JavaScript's
// Date.toISOString produces; core parses auth-ts with Date.parse.
const authTSLayout = "2006-01-02T15:04:05.000Z07:00"

// passwordHash is core's token passport hash: hex(sha512(salt + password)).
func passwordHash(salt, password string) string {
	sum := sha512.Sum512([]byte(salt + password))
	return hex.EncodeToString(sum[:])
}

// authToken is the auth-token header: hex(sha512(passwordHash + authSalt + authTS)).
func authToken(passwordHash, authSalt, authTS string) string {
	h := sha512.New()
	h.Write([]byte(passwordHash))
	h.Write([]byte(authSalt))
	h.Write([]byte(authTS))
	return hex.EncodeToString(h.Sum(nil))
}

// randomSalt returns a random UUIDv4 string (core does not check auth-salt
// beyond it being non-empty; its docs ask for a random UUID).
func randomSalt() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// fetchSaltLocked calls GET /authenticate/:user (public) and caches the
// password hash. The server's ts corrects a large clock skew, since core
// accepts auth-ts only within ±10 s of its own clock.
func (a *authState) fetchSaltLocked(ctx context.Context, c *Client) error {
	path := "/authenticate/" + url.PathEscape(a.username)
	start := time.Now()
	resp, err := c.attempt(ctx, http.MethodGet, path, nil, false)
	if err != nil {
		return err
	}
	if resp.status == http.StatusNotFound {
		return a.noTokenCredentials(c.apiError(http.MethodGet, path, resp))
	}
	if resp.status != http.StatusOK {
		return a.credentialFailure(c.apiError(http.MethodGet, path, resp))
	}
	var body struct {
		Salt string `json:"salt"`
		TS   string `json:"ts"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || body.Salt == "" {
		return fmt.Errorf("openhim: GET %s: no salt in response", c.redactedURL(path))
	}
	a.passHash = passwordHash(body.Salt, a.password)
	a.skew = 0
	if ts, err := time.Parse(time.RFC3339Nano, body.TS); err == nil {
		local := start.Add(time.Since(start) / 2)
		if skew := ts.Sub(local); skew > 2*time.Second || skew < -2*time.Second {
			a.skew = skew
			c.log.WarnContext(ctx, "clock skew with openhim core; correcting auth-ts", "skew", skew.Round(time.Millisecond).String())
		}
	}
	a.gen++
	return nil
}

// loginLocked does POST /authenticate/local; the cookie jar keeps the session.
func (a *authState) loginLocked(ctx context.Context, c *Client) error {
	const path = "/authenticate/local"
	body, err := json.Marshal(map[string]string{"username": a.username, "password": a.password})
	if err != nil {
		return fmt.Errorf("openhim: encode login: %w", err)
	}
	resp, err := c.attempt(ctx, http.MethodPost, path, body, true)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		api := c.apiError(http.MethodPost, path, resp)
		if resp.status == http.StatusInternalServerError && c.base.Scheme == "http" {
			return insecureSessionLogin(api)
		}
		return a.credentialFailure(api)
	}
	a.loggedIn = true
	a.gen++
	return nil
}

// Settings named in configuration errors (keys of package settings and
// their environment variables).
const (
	fixCredentials = "check openhim.username and openhim.password (MEDIATOR_OPENHIM_USERNAME, MEDIATOR_OPENHIM_PASSWORD)"
	fixAuthScheme  = "openhim.auth (MEDIATOR_OPENHIM_AUTH)"
	// fixSecureCookie ends the errors of core's Secure session cookie
	// over plain http.
	fixSecureCookie = "use an https openhim.url (MEDIATOR_OPENHIM_URL), or set " + fixAuthScheme +
		" to basic (if core's api.secureCookie is false, core failed: see its log)"
)

// credentialFailure turns a 4xx answer of the salt fetch or the login into
// a configuration error saying what to change; other errors (5xx: core
// trouble, retried) pass through.
func (a *authState) credentialFailure(err error) error {
	var api *APIError
	if !errors.As(err, &api) {
		return err
	}
	if api.StatusCode >= 400 && api.StatusCode < 500 {
		return &configError{api: api, matches: ErrUnauthorized, fix: "core refused the credentials: " + fixCredentials}
	}
	return err
}

// insecureSessionLogin is the configuration error of a 500 to
// POST /authenticate/local over plain http. Core 7.2+ gives koa-session
// secure: api.secureCookie (true by default; src/koaApi.js); after the
// login succeeded koa-session sets its cookie, the cookies module throws
// "Cannot send secure cookie over unencrypted connection", and Koa's
// default error handler (koa lib/context.js onerror: a 5xx error is not
// exposed) answers 500 with the body "Internal Server Error" only, so the
// status and the scheme are all the client can go by. Core's login route
// has no other 500 (src/passport.js handlePassportError turns a strategy's
// error into a 401). It still matches ErrServer: core did answer 500.
func insecureSessionLogin(api *APIError) error {
	return &configError{api: api, matches: ErrServer, fix: "core sends its session cookie only over https (its api.secureCookie " +
		"setting, on by default), so a session login over http fails with 500: " + fixSecureCookie}
}

// tokenSessionRefused reports the answer of core 7.2 or later to a
// token-authenticated call over plain http: 500 "Internal Server Error".
// Core's authenticateToken (src/api/authentication.js, 7.2 and later)
// calls passport.authenticate('token') without a callback, so passport
// logs the user into a session; koa-session (src/koaApi.js: secure: true
// on 7.2, api.secureCookie, on by default, from 8.0) then cannot set its
// cookie over http and Koa (lib/context.js onerror) answers 500 with the
// status text only - after the handler has done the work. Every such call
// fails alike, so it is a configuration error, not retried. Core 7.1 and
// older have no sessions, and the same 500 from them (an uncaught error)
// is core trouble: with a CoreVersion below 8, which does not tell 7.2
// from 7.1, core's release is told by GET /me (see coreHasSessions).
func (c *Client) tokenSessionRefused(ctx context.Context, authenticated bool, status int, body []byte) bool {
	if !authenticated || status != http.StatusInternalServerError || c.base.Scheme != "http" {
		return false
	}
	if c.auth.activeScheme() != AuthToken || coreMessage(body) != "Internal Server Error" {
		return false
	}
	return c.coreVersion >= 8 || c.coreHasSessions(ctx)
}

// coreHasSessions reports whether core is 7.2 or later: GET /me, without
// credentials, is public there (src/koaApi.js mounts it before the auth
// middleware) and answers the session's user, or 404 "Not authenticated"
// (src/api/users.js me), writing no cookie; up to 7.1 there is no such
// route and the auth middleware answers 401. Anything else (an error, a
// proxy's answer) says nothing, and the 500 stays core trouble. A positive
// answer is kept.
func (c *Client) coreHasSessions(ctx context.Context) bool {
	if c.passportCore.Load() {
		return true
	}
	resp, err := c.attempt(ctx, http.MethodGet, "/me", nil, false)
	if err != nil {
		return false
	}
	if resp.status == http.StatusOK || resp.status == http.StatusNotFound && coreMessage(resp.body) == "Not authenticated" {
		c.passportCore.Store(true)
		return true
	}
	return false
}

// tokenOverHTTP is the configuration error of tokenSessionRefused.
func tokenOverHTTP(api *APIError) error {
	return &configError{api: api, matches: ErrServer, fix: "core 7.2 and later log a token-authenticated user into a session whose " +
		"cookie they send only over https (always on 7.2; api.secureCookie, on by default, from 8.0), so over http every call with " +
		"token auth fails with 500 after core has carried it out: " + fixSecureCookie}
}

// noTokenCredentials is the configuration error of a 404 from
// GET /authenticate/:user.
func (a *authState) noTokenCredentials(api *APIError) error {
	return &configError{api: api, matches: ErrUnauthorized, fix: fmt.Sprintf(
		"core has no token credentials for user %q (an unknown user, or one created on core 7.2 or later, has none): "+
			"set %s to basic or session, or check openhim.username (MEDIATOR_OPENHIM_USERNAME)", a.username, fixAuthScheme)}
}

// refused is the configuration error of a 401 or 403 to an API call made
// with the chosen scheme's credentials.
func (a *authState) refused(api *APIError) error {
	if api.StatusCode == http.StatusForbidden {
		return &configError{api: api, matches: ErrForbidden, fix: fmt.Sprintf(
			"user %q lacks the permission: put it in core's admin group (core 8.5 and older) or give it the mediator-manage roles", a.username)}
	}
	return &configError{api: api, matches: ErrUnauthorized, fix: fmt.Sprintf(
		"core refused the credentials with %s auth: %s, and %s", a.activeScheme(), fixCredentials, fixAuthScheme)}
}

// tlsFailure turns a certificate verification error into a configuration
// error; other errors pass through.
func tlsFailure(err error) error {
	var (
		verr *tls.CertificateVerificationError
		herr x509.HostnameError
		uerr x509.UnknownAuthorityError
		ierr x509.CertificateInvalidError
	)
	if !errors.As(err, &verr) && !errors.As(err, &herr) && !errors.As(err, &uerr) && !errors.As(err, &ierr) {
		return err
	}
	return &configError{cause: err, fix: "core's TLS certificate does not verify: give core a certificate whose subjectAltName " +
		"names the host of openhim.url (Go ignores the Common Name; core's bundled certificate has none), or trust its CA " +
		"with openhim.ca_file (MEDIATOR_OPENHIM_CA_FILE). openhim.insecure_skip_verify turns verification off, and " +
		"anyone on the network path can then read the credentials"}
}
