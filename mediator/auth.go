package mediator

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// AuthScheme selects how the client authenticates to the core API.
type AuthScheme string

// Authentication schemes. See [OpenHIMConfig.Auth].
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
	// the user salt from GET /authenticate/:user is cached.
	AuthToken AuthScheme = "token"
	// AuthSession logs in with POST /authenticate/local (core 7.2+) and
	// uses the session cookie, avoiding a bcrypt check per request; on a
	// 401 it logs in again once. Core marks the cookie Secure by default
	// (api.secureCookie), so use it over https.
	AuthSession AuthScheme = "session"
)

// redactedText replaces secrets in logs and formatted output.
const redactedText = "REDACTED"

// Password is a secret string. It formats and logs as "REDACTED" (String,
// GoString, LogValue) but marshals to JSON as its real value, which is
// what core needs. Use it for password config parameters (see
// [ConfigDefsOf]) and convert with string(p) where the value is needed.
type Password string

// String returns "REDACTED" (or "" for an empty password).
func (p Password) String() string { return redactSecret(string(p)) }

// GoString returns the redacted value quoted.
func (p Password) GoString() string { return `"` + p.String() + `"` }

// LogValue redacts the password in slog output.
func (p Password) LogValue() slog.Value { return slog.StringValue(p.String()) }

// authState holds the credentials and the per-scheme state. mu guards
// everything below it.
type authState struct {
	scheme   AuthScheme
	username string
	password Password

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
		if err := a.fetchSaltLocked(ctx, c); err != nil {
			if isCredentialError(err) { // incl. the 404 of a user without token passport
				return false, nil // no token passport either: report the original 401
			}
			return false, err
		}
		c.log.InfoContext(ctx, "openhim core rejected basic auth; using token auth", "username", a.username)
		a.active = AuthToken
		return true, nil
	case AuthToken:
		a.passHash = ""
		if err := a.fetchSaltLocked(ctx, c); err != nil {
			if isCredentialError(err) {
				return false, nil
			}
			return false, err
		}
		return true, nil
	case AuthSession:
		a.loggedIn = false
		if err := a.loginLocked(ctx, c); err != nil {
			if isCredentialError(err) {
				return false, nil
			}
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// apply adds the credentials of the active scheme to req.
func (a *authState) apply(req *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.active {
	case AuthBasic:
		req.SetBasicAuth(a.username, string(a.password))
	case AuthToken:
		ts := time.Now().Add(a.skew).UTC().Format(authTSLayout)
		salt := randomSalt()
		req.Header.Set("auth-username", a.username)
		req.Header.Set("auth-ts", ts)
		req.Header.Set("auth-salt", salt)
		req.Header.Set("auth-token", authToken(a.passHash, salt, ts))
	case AuthSession:
		// the cookie jar sends the session cookie
	}
}

// authTSLayout is UTC ISO-8601 with milliseconds and a Z, as JavaScript's
// Date.toISOString produces; core parses auth-ts with Date.parse.
const authTSLayout = "2006-01-02T15:04:05.000Z07:00"

// passwordHash is core's token passport hash: hex(sha512(salt + password)).
func passwordHash(salt string, password Password) string {
	sum := sha512.Sum512([]byte(salt + string(password)))
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
	resp, err := c.attempt(ctx, http.MethodGet, path, nil, false, false)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return credentialFailure(c.apiError(http.MethodGet, path, resp))
	}
	var body struct {
		Salt string `json:"salt"`
		TS   string `json:"ts"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || body.Salt == "" {
		return fmt.Errorf("mediator: GET %s: no salt in response", c.redactedURL(path))
	}
	a.passHash = passwordHash(body.Salt, a.password)
	a.skew = 0
	if ts, err := time.Parse(time.RFC3339Nano, body.TS); err == nil {
		local := start.Add(time.Since(start) / 2)
		if skew := ts.Sub(local); skew > 2*time.Second || skew < -2*time.Second {
			a.skew = skew
			c.log.WarnContext(ctx, "clock skew with openhim core; correcting auth-ts", "skew", skew)
		}
	}
	a.gen++
	return nil
}

// loginLocked does POST /authenticate/local; the cookie jar keeps the session.
func (a *authState) loginLocked(ctx context.Context, c *Client) error {
	const path = "/authenticate/local"
	body, err := json.Marshal(map[string]string{"username": a.username, "password": string(a.password)})
	if err != nil {
		return fmt.Errorf("mediator: encode login: %w", err)
	}
	resp, err := c.attempt(ctx, http.MethodPost, path, body, true, false)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return credentialFailure(c.apiError(http.MethodPost, path, resp))
	}
	a.loggedIn = true
	a.gen++
	return nil
}

// credentialError is a 4xx answer to the salt fetch or the login: the
// credentials (user, password, auth scheme) are wrong, whatever the status.
// It matches [ErrUnauthorized] and converts to the [*APIError] with
// errors.As, but never matches the sentinel of its own status: a 404 for an
// unknown user must not read as "mediator deleted" (ErrNotFound), nor a
// 400 as a rejected definition (ErrBadRequest).
type credentialError struct{ api *APIError }

func (e *credentialError) Error() string {
	return "mediator: authentication failed (check username, password and auth scheme): " + e.api.Error()
}

// Is matches ErrUnauthorized.
func (e *credentialError) Is(target error) bool { return target == ErrUnauthorized }

// As converts to the *APIError of core's answer.
func (e *credentialError) As(target any) bool {
	if p, ok := target.(**APIError); ok {
		*p = e.api
		return true
	}
	return false
}

// credentialFailure wraps a 4xx answer of the salt fetch or the login as a
// credential error; other errors (5xx: core trouble, retried) pass through.
func credentialFailure(err error) error {
	var api *APIError
	if errors.As(err, &api) && api.StatusCode >= 400 && api.StatusCode < 500 {
		return &credentialError{api: api}
	}
	return err
}
