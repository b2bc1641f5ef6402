package openhim

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors matched by [*APIError] (and [*ValidationError]) through
// errors.Is.
var (
	// ErrBadRequest matches a 400 from core: core rejected the request
	// (for example a definition that fails its validation). Retrying the
	// same request cannot succeed.
	ErrBadRequest = errors.New("openhim: bad request")
	// ErrUnauthorized matches a 401: the credentials are wrong or the
	// auth scheme is not enabled in core.
	ErrUnauthorized = errors.New("openhim: unauthorized")
	// ErrForbidden matches a 403: the user lacks the permission (admin on
	// core 8.5 and older, mediator-manage-* with RBAC).
	ErrForbidden = errors.New("openhim: forbidden")
	// ErrNotFound matches a 404, for example an unknown mediator URN.
	ErrNotFound = errors.New("openhim: not found")
	// ErrServer matches any 5xx.
	ErrServer = errors.New("openhim: core server error")
	// ErrInvalid matches a *ValidationError: a local check, done before any
	// network call, found a value core would reject.
	ErrInvalid = errors.New("openhim: invalid")
	// ErrNoCore is returned by client calls when [Config.URL] is
	// empty (standalone mode).
	ErrNoCore = errors.New("openhim: no OpenHIM core configured")
	// ErrConfig matches a failure that retrying cannot fix because a
	// setting must change: credentials core refuses (401/403), a user
	// without the credentials of the chosen auth scheme, a session
	// cookie core will not send over http (session or, on core 8, token
	// auth), a core certificate that does not verify. The error's text says what to change.
	ErrConfig = errors.New("openhim: configuration error")
)

// APIError is the error for any non-2xx answer of the OpenHIM core API.
// Use errors.As(err, new(*openhim.APIError)) to inspect it, or errors.Is
// with [ErrBadRequest], [ErrUnauthorized], [ErrForbidden], [ErrNotFound]
// or [ErrServer].
type APIError struct {
	StatusCode int
	Method     string
	// URL is the request URL with any user info redacted.
	URL string
	// Message is core's response body (trimmed and truncated), which for a
	// 400 carries the reason, e.g. "Could not add Mediator via the API: ...".
	Message string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("openhim: %s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is matches the sentinel error of e's status code.
func (e *APIError) Is(target error) bool {
	if target == ErrServer {
		return e.StatusCode >= 500
	}
	s, ok := statusSentinels[e.StatusCode]
	return ok && s == target
}

// statusSentinels are the sentinels an *APIError of a status code matches.
var statusSentinels = map[int]error{
	http.StatusBadRequest:   ErrBadRequest,
	http.StatusUnauthorized: ErrUnauthorized,
	http.StatusForbidden:    ErrForbidden,
	http.StatusNotFound:     ErrNotFound,
}

// isCredentialError reports a 401 or 403: retrying quickly does not help
// and would only hammer core's (bcrypt) password checks.
func isCredentialError(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden)
}

// configError is a failure a setting must fix. It matches [ErrConfig]
// and, for a refusal of the credentials, ErrUnauthorized or ErrForbidden;
// it converts to the [*APIError] of core's answer with errors.As but never
// matches the sentinel of that answer's status otherwise: a 404 for a user
// without token credentials must not read as "mediator deleted"
// (ErrNotFound), nor a 400 as a rejected definition (ErrBadRequest).
type configError struct {
	api     *APIError // core's answer, if any
	cause   error     // otherwise (TLS verification)
	matches error     // ErrUnauthorized, ErrForbidden or nil
	fix     string    // what to change
}

func (e *configError) Error() string {
	what := ""
	switch {
	case e.api != nil:
		what = e.api.Error()
	case e.cause != nil:
		what = e.cause.Error()
	}
	return "openhim: configuration error: " + e.fix + " (" + what + ")"
}

// Is matches ErrConfig and the sentinel of a refused credential.
func (e *configError) Is(target error) bool {
	return target == ErrConfig || (e.matches != nil && target == e.matches)
}

// As converts to the *APIError of core's answer.
func (e *configError) As(target any) bool {
	if p, ok := target.(**APIError); ok && e.api != nil {
		*p = e.api
		return true
	}
	return false
}

// Unwrap returns the non-API cause (a TLS error), if any.
func (e *configError) Unwrap() error { return e.cause }

// Fix is what to change, for /readyz.
func (e *configError) Fix() string { return e.fix }

// joinErrors is errors.Join on one line: the messages are separated by
// "; ", so that a logged error stays one log line. It drops nil errors
// and returns nil when none is left; errors.Is and errors.As see each.
func joinErrors(errs ...error) error {
	var j joinedErrors
	for _, err := range errs {
		if err != nil {
			j = append(j, err)
		}
	}
	if len(j) == 0 {
		return nil
	}
	return j
}

type joinedErrors []error

func (j joinedErrors) Error() string {
	msgs := make([]string, len(j))
	for i, err := range j {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (j joinedErrors) Unwrap() []error { return j }
