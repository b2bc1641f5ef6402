package jsonstr

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// reference is what encoding/json writes for s.
func reference(t testing.TB, s string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

func TestAppendMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "a<b>&c", "\x00\x01\b\f\n\r\t\x1f\x7f", "é ü 日本", "\u2028\u2029", "bad \xff\xfe utf8", "\xed\xa0\x80"} {
		for _, html := range []bool{false, true} {
			if got, want := string(Append(nil, s, html)), reference(t, s, html); got != want {
				t.Errorf("Append(%q, html %v) = %s, want %s", s, html, got, want)
			}
		}
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("a<b>\u2028\xff\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{false, true} {
			if got, want := string(Append(nil, s, html)), reference(t, s, html); got != want {
				t.Fatalf("Append(%q, html %v) = %s, want %s", s, html, got, want)
			}
		}
	})
}

// TestAppendLongRuns covers the eight-byte fast path: every escaped byte at
// every offset of safe runs of several lengths.
func TestAppendLongRuns(t *testing.T) {
	special := []string{"\"", "\\", "<", ">", "&", "\x00", "\x1f", "\x7f", "é", "\u2028", "\xff", " ", "~"}
	for n := range 20 {
		for at := 0; at <= n; at++ {
			for _, sp := range special {
				s := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
				for _, html := range []bool{false, true} {
					if got, want := string(Append(nil, s, html)), reference(t, s, html); got != want {
						t.Fatalf("Append(%q, html %v) = %s, want %s", s, html, got, want)
					}
				}
			}
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	s := "https://cht.example.org/observation/442b0937-a32f-443e-8d28-7d9a7552fda2"
	var buf []byte
	for b.Loop() {
		buf = Append(buf[:0], s, true)
	}
}
