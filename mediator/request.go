package mediator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Headers core sets on the requests it routes to a mediator.
const (
	HeaderTransactionID = "X-OpenHIM-TransactionID"
	HeaderClientID      = "X-OpenHIM-ClientID"
)

// Request is the request core routed to the mediator. Its context carries
// the orchestration recorder: make outbound calls with r.Context() through a
// client using [Transport].
type Request struct {
	*http.Request
	// TransactionID is core's transaction ID (X-OpenHIM-TransactionID);
	// empty when the request did not come through core.
	TransactionID string
	// ClientID is the client core authenticated (X-OpenHIM-ClientID).
	ClientID string
	// ForwardedFor and ForwardedHost are core's X-Forwarded-For and
	// X-Forwarded-Host.
	ForwardedFor, ForwardedHost string

	rec *recorder
	cfg *handlerConfig
}

func (q *Request) init(r *http.Request, rec *recorder, cfg *handlerConfig) {
	h := r.Header
	*q = Request{
		Request:       r,
		TransactionID: h.Get(HeaderTransactionID),
		ClientID:      h.Get(HeaderClientID),
		ForwardedFor:  h.Get("X-Forwarded-For"),
		ForwardedHost: h.Get("X-Forwarded-Host"),
		rec:           rec,
		cfg:           cfg,
	}
}

// Result is what a [HandlerFunc] answers; the library turns it into the
// application/json+openhim envelope.
type Result struct {
	// Status overrides the transaction status; empty means computed
	// from StatusCode and the orchestrations as [Envelope.Status] says.
	Status Status
	// StatusCode is the HTTP status core returns to its client; 0 means 200.
	// A code core 4 cannot answer with (499, 520, ...) is sent as the first
	// code of its class, as [Envelope.Normalize] says.
	StatusCode int
	// Header is returned to core's client (core drops Content-Length,
	// Content-Encoding and Transfer-Encoding).
	Header http.Header
	// Body is returned to core's client and stored as the response body.
	Body []byte
	// Properties are stored as the transaction's properties.
	Properties map[string]any
	// Orchestrations are added after the recorded ones.
	Orchestrations []Orchestration
}

// JSONResult returns a Result with statusCode and v encoded as JSON.
func JSONResult(statusCode int, v any) (*Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("mediator: encode result: %w", err)
	}
	return &Result{
		StatusCode: statusCode,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       b,
	}, nil
}

// StatusError is an error with the HTTP status the handler wants core's
// client to see. A 4xx StatusError answers that status with the message
// ("Completed", no envelope error, so core does not retry); a 5xx one, like
// any other error, answers "Failed" with the envelope error set.
type StatusError struct {
	StatusCode int
	Err        error
}

// Errorf returns a *StatusError with the formatted message (%w wraps).
func Errorf(statusCode int, format string, args ...any) error {
	return &StatusError{StatusCode: statusCode, Err: fmt.Errorf(format, args...)}
}

func (e *StatusError) Error() string {
	if e.Err == nil {
		return http.StatusText(e.StatusCode)
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *StatusError) Unwrap() error { return e.Err }

// errorStatus returns the HTTP status for a handler error.
func errorStatus(err error) int {
	var se *StatusError
	if errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode <= 599 {
		return se.StatusCode
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}
