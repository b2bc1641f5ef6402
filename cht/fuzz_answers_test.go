package cht

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseContactTypes feeds CHT's app settings (GET /api/v1/settings)
// to ParseContactTypes: it never panics, an error is a *DecodeError naming
// the app settings or a contact_types member, and what it accepts answers
// its lookups.
func FuzzParseContactTypes(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `null`, `{"contact_types":null}`, `{"contact_types":[]}`,
		`{"contact_types":{}}`, `{"contact_types":[1]}`, `{"contact_types":[{"id":""}]}`,
		`{"contact_types":[{"id":"district_hospital"},{"id":"health_center","parents":["district_hospital"]},` +
			`{"id":"person","person":true,"parents":["health_center"]}]}`,
		`{"contact_types":[{"id":"a","parents":["a"]}]}`, `{"contact_types":[{"id":"a","person":"yes"}]}`,
		`{"contact_types":[{"id":"a","parents":[1]}]}`, `{"contact_types":[{"id":"a"},{"id":"a"}]}`,
		`{"contact_types":[{"id":"a","parents":["b"]}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ct, err := ParseContactTypes(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if de.Path != "" && !strings.HasPrefix(de.Path, "contact_types") {
				t.Fatalf("error %v names %q, not a contact_types member", err, de.Path)
			}
			if de.Path == "" && !strings.Contains(err.Error(), "app settings") {
				t.Fatalf("error %v names no member", err)
			}
			return
		}
		for _, typ := range ct.Types() {
			got, ok := ct.Lookup(typ.ID)
			if !ok || got.ID != typ.ID {
				t.Fatalf("type %q listed but Lookup = %+v, %t", typ.ID, got, ok)
			}
			if ct.IsPerson(typ.ID) == ct.IsPlace(typ.ID) {
				t.Fatalf("type %q is a person and a place, or neither", typ.ID)
			}
		}
	})
}

// FuzzNewAPIError feeds a CHT error answer (status, Retry-After and body)
// to newAPIError: it never panics, the retry hint is never negative,
// a UTF-8 body gives a UTF-8 message, and CHT's text in it is at most
// maxErrorBody bytes.
func FuzzNewAPIError(f *testing.F) {
	for _, tt := range []struct {
		status     int
		retryAfter string
		body       string
	}{
		{404, "", `{"error":"not_found","reason":"missing"}`},
		{400, "", `{"code":400,"error":"bad","details":{"a":[1]}}`},
		{429, "30", `Too many requests`},
		{503, "Wed, 21 Oct 2015 07:28:00 GMT", ``},
		{503, "-1", `{}`},
		{503, "9223372037", `{"error":1}`},
		{500, " 12 ", `[` + strings.Repeat("é", 3000) + `]`},
	} {
		f.Add(tt.status, tt.retryAfter, []byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		e := newAPIError(http.MethodGet, "https://cht/medic/x", status, http.Header{"Retry-After": {retryAfter}}, body)
		if e.RetryAfter < 0 {
			t.Fatalf("Retry-After %q gives %v", retryAfter, e.RetryAfter)
		}
		msg := e.Error()
		if utf8.Valid(body) && !utf8.ValidString(msg) {
			t.Fatalf("UTF-8 body of %d bytes gives a message that is not UTF-8, ending %q", len(body), msg[max(0, len(msg)-8):])
		}
		if len(msg) > len(fmt.Sprintf("cht: GET https://cht/medic/x: %d %s: ", status, http.StatusText(status)))+maxErrorBody {
			t.Fatalf("body of %d bytes gives a message of %d bytes", len(body), len(msg))
		}
		_ = errors.Is(e, ErrNotFound)
	})
}

// parseRetryAfter holds a hint in seconds too large for a time.Duration
// at the largest one instead of wrapping to a negative or arbitrary one.
func TestParseRetryAfterOverflow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * time.Second},
		{"9223372036", 9223372036 * time.Second},
		{"9223372037", time.Duration(1<<63 - 1)},
		{"99999999999999", time.Duration(1<<63 - 1)},
		{"-5", 0},
	} {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
