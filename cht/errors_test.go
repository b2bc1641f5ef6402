package cht

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAPIErrorMatchesOnlyItsSentinel(t *testing.T) {
	sentinels := []error{ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict, ErrServer, ErrUnsupported, ErrInvalidRecord}
	tests := []struct {
		status int
		want   error // nil: matches none
	}{
		{400, nil}, {401, ErrUnauthorized}, {403, ErrForbidden}, {404, ErrNotFound},
		{409, ErrConflict}, {429, nil}, {500, ErrServer}, {503, ErrServer},
	}
	for _, tt := range tests {
		err := error(&APIError{StatusCode: tt.status})
		for _, s := range sentinels {
			if got := errors.Is(err, s); got != (s == tt.want) {
				t.Errorf("errors.Is(APIError{%d}, %v) = %v", tt.status, s, got)
			}
		}
	}
}

// An error answer of megabytes gives a message whose CHT text is at most
// maxErrorBody bytes, cut between characters, starting with what CHT said
// first and ending with how many bytes were left out; the fields keep
// what CHT sent, and errors.As and errors.Is still see the *APIError.
func TestAPIErrorTextIsCapped(t *testing.T) {
	huge := strings.Repeat("é", 1<<20) // 2 MiB
	tests := []struct {
		name  string
		body  string
		start string // what the message's CHT text starts with
		text  int    // length of CHT's whole text
	}{
		{"short JSON", `{"error":"bad_request","reason":"missing field"}`, "bad_request: missing field", len("bad_request: missing field")},
		{"short text", "  Bad Gateway\n", "Bad Gateway", len("Bad Gateway")},
		{"huge reason", `{"error":"bad_request","reason":"` + huge + `"}`, "bad_request: éé", len("bad_request: ") + len(huge)},
		{"huge details", `{"code":400,"error":"invalid","details":{"x":"` + huge + `"}}`, `invalid: {"x":"éé`, len(`invalid: {"x":""}`) + len(huge)},
		{"huge text", "<html>" + huge, "<html>éé", len("<html>") + len(huge)},
		{"huge text, ASCII", strings.Repeat("x", 3<<20), "xxx", 3 << 20},
	}
	marker := regexp.MustCompile(`… \((\d+) more bytes\)$`)
	const prefix = "cht: POST https://cht/api/v1/people: 500 Internal Server Error: "
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAPIError(http.MethodPost, "https://cht/api/v1/people", 500, http.Header{}, []byte(tt.body))
			err := fmt.Errorf("create person: %w", e)
			var ae *APIError
			if !errors.As(err, &ae) || ae != e || !errors.Is(err, ErrServer) {
				t.Fatalf("errors.As/Is no longer see the *APIError of %v", err)
			}
			if len(e.Body) > maxErrorBody {
				t.Errorf("Body has %d bytes, want at most %d", len(e.Body), maxErrorBody)
			}
			if strings.Contains(tt.body, huge) && tt.body[0] == '{' && !strings.Contains(e.Reason+e.Details, huge) {
				t.Errorf("Reason or Details lost what CHT sent")
			}
			msg := e.Error()
			text, ok := strings.CutPrefix(msg, prefix)
			if !ok || !strings.HasPrefix(text, tt.start) || !utf8.ValidString(msg) {
				t.Fatalf("message %.120q: want %q then CHT's text starting %q, as UTF-8", msg, prefix, tt.start)
			}
			if len(text) > maxErrorBody {
				t.Errorf("CHT's text in the message has %d bytes, want at most %d", len(text), maxErrorBody)
			}
			m := marker.FindStringSubmatch(text)
			if tt.text <= maxErrorBody {
				if m != nil || len(text) != tt.text {
					t.Errorf("short text changed: %q", text)
				}
				return
			}
			if m == nil {
				t.Fatalf("message ends %q, want how many bytes were left out", text[max(0, len(text)-40):])
			}
			left, _ := strconv.Atoi(m[1])
			if kept := len(text) - len(m[0]); kept+left != tt.text || kept < maxErrorBody-40 {
				t.Errorf("kept %d bytes and says %d more, of a text of %d", kept, left, tt.text)
			}
		})
	}
}
