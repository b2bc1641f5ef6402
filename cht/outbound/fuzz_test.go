package outbound

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzHandler checks that any body gets a JSON answer with an
// expected status and that Handle only sees valid JSON.
func FuzzHandler(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{``, `{}`, `{"doc":1}`, `{"id":"a","rev":"1"}`, `[`, `null`, `{"doc":{"_id":5}}`, `{"_id":"a","type":"x"}`} {
		f.Add([]byte(s))
	}
	h, err := NewHandler(HandlerConfig{
		MaxBodyBytes: 1 << 16,
		Handle: func(_ context.Context, p *Payload) error {
			if !json.Valid(p.Body) || (len(p.Doc) > 0 && !json.Valid(p.Doc)) {
				panic("invalid JSON reached Handle")
			}
			_ = p.DocType()
			return nil
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rec.Body)
		}
	})
}
