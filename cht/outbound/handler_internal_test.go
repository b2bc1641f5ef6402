package outbound

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestReadBody: the body is read whole whatever Content-Length says, and
// a body over the limit fails with *http.MaxBytesError.
func TestReadBody(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name    string
		size    int
		length  int64 // Content-Length sent; -1 unknown
		tooLong bool
	}{
		{"empty", 0, 0, false},
		{"known length", 700, 700, false},
		{"unknown length, several reads", 999, -1, false},
		{"exactly the limit", limit, limit, false},
		{"length understated", 900, 10, false},
		{"length overstated", 10, 900, false},
		{"over the limit, known", limit + 1, limit + 1, true},
		{"over the limit, unknown", 3 * limit, -1, true},
		{"over the limit, understated", 3 * limit, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Repeat("x", tt.size)
			// A reader that is neither a strings.Reader nor a bytes.Reader,
			// so that NewRequest leaves ContentLength as set here.
			r := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(body)))
			r.ContentLength = tt.length
			got, err := readBody(httptest.NewRecorder(), r, limit)
			var mbe *http.MaxBytesError
			switch {
			case tt.tooLong:
				if !errors.As(err, &mbe) || mbe.Limit != limit {
					t.Errorf("err = %v, want *http.MaxBytesError", err)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			case string(got) != body:
				t.Errorf("read %d bytes, want %d", len(got), len(body))
			}
		})
	}
}

// TestReadBodyPresizeBounded: a declared length is trusted for the first
// allocation only up to presizeMax, so a client that declares the limit
// and sends a few bytes does not make the handler allocate the limit.
func TestReadBodyPresizeBounded(t *testing.T) {
	const limit = 32 << 20
	body := strings.Repeat("x", 100)
	r := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(body)))
	r.ContentLength = limit
	got, err := readBody(httptest.NewRecorder(), r, limit)
	if err != nil || string(got) != body {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(body))
	}
	if cap(got) > presizeMax {
		t.Errorf("a %d-byte declared length and a %d-byte body: %d bytes allocated", limit, len(body), cap(got))
	}
}

// TestHeaderWithoutSecrets: what Clone then Del of Authorization,
// Proxy-Authorization and Cookie give, nil values kept. The credential
// headers are those package mediator always redacts (compiled.secret).
func TestHeaderWithoutSecrets(t *testing.T) {
	for _, h := range []http.Header{
		nil,
		{},
		{"Authorization": {"Basic x"}, "Cookie": {"a=b"}},
		{"Proxy-Authorization": {"Basic cHJveHk6c2VjcmV0"}, "X-Request-Id": {"r"}},
		{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}, "Authorization": {"Basic x"},
			"Accept": {"a", "b"}, "X-Nil": nil, "X-Empty": {}},
	} {
		want := h.Clone()
		want.Del("Authorization")
		want.Del("Cookie")
		want.Del("Proxy-Authorization")
		got := headerWithoutSecrets(h)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("headerWithoutSecrets(%v) = %#v, want %#v", h, got, want)
		}
		if len(h["Accept"]) > 0 {
			got["Accept"][0] = "changed"
			if h["Accept"][0] != "a" {
				t.Error("the copy shares values with the request")
			}
		}
	}
}

// TestAwaitKeepsAResultReadyAtTheDeadline: when the deadline has passed
// and the job's result is there too, select may pick either; the result
// must win every time, so that a push that was handled is not answered
// 503. Without a result, the deadline ends the wait.
func TestAwaitKeepsAResultReadyAtTheDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	want := errors.New("handled, with an error")
	for i := range 200 {
		done := make(chan error, 1)
		done <- want
		if finished, err := await(ctx, done); !finished || err != want {
			t.Fatalf("round %d: await = %v, %v; want the job's result", i, finished, err)
		}
	}
	if finished, err := await(ctx, make(chan error, 1)); finished || err != nil {
		t.Fatalf("no result: await = %v, %v; want not finished", finished, err)
	}
}
