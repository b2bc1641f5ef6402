package jsonstr

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
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

// TestSafePrefix: the bytes before SafePrefix are safe, and the byte at it
// is not, unless it starts a tail of fewer than eight bytes.
func TestSafePrefix(t *testing.T) {
	alphabet := "ab~ \x7f\"\\<>&\x00\x1f\xc3\xa9"
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(6) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = 'a' + byte(r.IntN(26))
			}
		}
		s := string(b)
		for _, html := range []bool{false, true} {
			safe := func(c byte) bool {
				return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && (!html || c != '<' && c != '>' && c != '&')
			}
			n := SafePrefix(s, html)
			for i := range n {
				if !safe(s[i]) {
					t.Fatalf("SafePrefix(%q, %v) = %d past byte %d", s, html, n, i)
				}
			}
			if n < len(s) && safe(s[n]) && (n%8 != 0 || len(s)-n >= 8) {
				t.Fatalf("SafePrefix(%q, %v) = %d stops at a safe byte before the tail", s, html, n)
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
