package push

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readBody reads what io.ReadAll reads, whatever length the request
// declares.
func TestReadBody(t *testing.T) {
	body := strings.Repeat("0123456789", 100)
	for _, tt := range []struct {
		name     string
		declared int64
		r        io.Reader
	}{
		{"declared", int64(len(body)), strings.NewReader(body)},
		{"declared, one byte a read", int64(len(body)), iotest.OneByteReader(strings.NewReader(body))},
		{"unknown", -1, strings.NewReader(body)},
		{"longer than declared", 10, strings.NewReader(body)},
		{"shorter than declared", 5000, strings.NewReader(body)},
		{"declared beyond the limit", 1 << 30, strings.NewReader(body)},
		{"empty", 0, strings.NewReader("")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := body
			if tt.declared == 0 {
				want = ""
			}
			got, err := readBody(tt.r, tt.declared, 1<<20)
			if err != nil || !bytes.Equal(got, []byte(want)) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(want))
			}
		})
	}
	// A declared length is trusted for the first allocation only up to
	// presizeMax: a client that declares the limit and sends a few bytes
	// does not make the handler allocate the limit.
	got, err := readBody(strings.NewReader(body), 16<<20, 32<<20)
	if err != nil || string(got) != body {
		t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(body))
	}
	if cap(got) > presizeMax {
		t.Errorf("a 16 MiB declared length and a %d-byte body: %d bytes allocated", len(body), cap(got))
	}
	boom := errors.New("boom")
	if _, err := readBody(io.MultiReader(strings.NewReader(body), iotest.ErrReader(boom)), int64(len(body))+10, 1<<20); !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
}

func TestJSONMediaType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                     true,
		"application/fhir+json":                true,
		"application/json; charset=utf-8":      true,
		"Application/FHIR+JSON; charset=UTF-8": true,
		"text/plain":                           false,
		"application/json+openhim":             false,
		"":                                     false,
		"application/json; charset=\"unclosed": false,
	} {
		if got := jsonMediaType(ct); got != want {
			t.Errorf("jsonMediaType(%q) = %v, want %v", ct, got, want)
		}
	}
}
