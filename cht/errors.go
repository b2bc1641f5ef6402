package cht

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. An *APIError matches the sentinel for its status code
// with errors.Is, e.g. errors.Is(err, cht.ErrNotFound).
var (
	ErrUnauthorized = errors.New("cht: unauthorized")      // 401
	ErrForbidden    = errors.New("cht: forbidden")         // 403
	ErrNotFound     = errors.New("cht: not found")         // 404
	ErrConflict     = errors.New("cht: document conflict") // 409
	ErrServer       = errors.New("cht: server error")      // 5xx
	ErrUnsupported  = errors.New("cht: unsupported by this CHT version")
	// ErrInvalidRecord is matched by the error of [RecordsService.Submit]
	// when CHT saved the record but stored validation errors on it.
	ErrInvalidRecord = errors.New("cht: record has validation errors")
)

// APIError is a non-2xx answer from CHT. CHT's JSON error bodies have the
// shapes {"code":N,"error":"...","details":...} (API errors) and
// {"error":"...","reason":"..."} (CouchDB and some API routes); the members
// are copied into Err, Reason and Details, as CHT sent them. Body keeps the
// raw body when it was not JSON: at most 4 KiB, a longer body cut between
// characters and ending with a marker saying how many bytes were left out.
// Error gives CHT's text within the same 4 KiB, so that an answer of
// megabytes never becomes a message of megabytes.
//
// Use errors.As(err, new(*cht.APIError)) to inspect it, or errors.Is with
// the sentinels such as [ErrNotFound].
type APIError struct {
	StatusCode int
	Method     string
	URL        string // redacted (no credentials)
	Err        string // the "error" member, e.g. "not_found" or "forbidden"
	Reason     string // the "reason" member
	Details    string // the "details" member; JSON text when it is not a string
	Body       string // raw body when it was not a JSON error object
	// RetryAfter is the server's Retry-After hint, if any.
	RetryAfter time.Duration
}

// Error implements error: method, redacted URL, status and CHT's message.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cht: %s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	parts := [...]string{e.Err, e.Reason, e.Details}
	total := 0
	for _, s := range parts {
		if s != "" {
			total += len(": ") + len(s)
		}
	}
	if total == 0 {
		if e.Body != "" {
			b.WriteString(": ")
			b.WriteString(capText(e.Body, len(e.Body), maxErrorBody))
		}
		return b.String()
	}
	// CHT's text, within maxErrorBody: only its start is copied when
	// it is longer.
	var t strings.Builder
	for _, s := range parts {
		if s != "" && t.Len() <= maxErrorBody {
			t.WriteString(": ")
			t.WriteString(s[:min(len(s), maxErrorBody)])
		}
	}
	b.WriteString(": ")
	b.WriteString(capText(t.String()[len(": "):], total-len(": "), maxErrorBody))
	return b.String()
}

// Is matches the sentinel errors by status code.
func (e *APIError) Is(target error) bool {
	var s error
	switch code := e.StatusCode; {
	case code >= 500:
		s = ErrServer
	case code == http.StatusUnauthorized:
		s = ErrUnauthorized
	case code == http.StatusForbidden:
		s = ErrForbidden
	case code == http.StatusNotFound:
		s = ErrNotFound
	case code == http.StatusConflict:
		s = ErrConflict
	}
	return s != nil && s == target
}

const maxErrorBody = 4 << 10

func newAPIError(method, url string, status int, header http.Header, body []byte) *APIError {
	e := &APIError{StatusCode: status, Method: method, URL: url}
	e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
	var m map[string]json.RawMessage
	if jsonKind(body) == "object" && json.Unmarshal(body, &m) == nil {
		get := func(k string) string {
			v, ok := m[k]
			if !ok {
				return ""
			}
			if jsonKind(v) == "string" {
				var s string
				_ = json.Unmarshal(v, &s)
				return s
			}
			return string(v)
		}
		e.Err, e.Reason, e.Details = get("error"), get("reason"), get("details")
		if e.Err != "" || e.Reason != "" || e.Details != "" {
			return e
		}
	}
	s := bytes.TrimSpace(body)
	e.Body = capText(string(s[:min(len(s), maxErrorBody)]), len(s), maxErrorBody)
	return e
}

// capText returns the text whose first bytes are start and whose length
// is total (start holds at least its first max bytes): whole when total is
// at most max, else its start cut between UTF-8 characters and followed by
// "… (N more bytes)", at most max bytes in all.
func capText(start string, total, max int) string {
	if total <= max {
		return start
	}
	cut := max - len("… ( more bytes)") - len(strconv.Itoa(total))
	for cut > 0 && !utf8.RuneStart(start[cut]) {
		cut-- // not inside a character: the message stays UTF-8
	}
	return start[:cut] + "… (" + strconv.Itoa(total-cut) + " more bytes)"
}

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		if n > int(math.MaxInt64/time.Second) {
			return math.MaxInt64 // would overflow a Duration
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
