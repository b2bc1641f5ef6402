package fhir

import (
	"fmt"
	"testing"
	"unicode/utf8"
)

// TestTextProblem checks textProblem against its definition over every
// single byte, in every position of a short string, and over runes.
func TestTextProblem(t *testing.T) {
	want := func(s string) string { // the rule, stated plainly
		if !utf8.ValidString(s) {
			return "not valid UTF-8"
		}
		for _, r := range s {
			if r == 0 {
				return "contains a NUL byte"
			}
			if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
				return fmt.Sprintf("contains the control character %#02x", r)
			}
		}
		return ""
	}
	var cases []string
	for b := 0; b < 256; b++ {
		for _, mid := range []string{string(rune(b)), string([]byte{byte(b)})} { // as UTF-8, and raw
			for _, around := range [][2]string{{"", ""}, {"ab", ""}, {"", "cd"}, {"abcdefgh", "ijklmnop"}} {
				cases = append(cases, around[0]+mid+around[1])
			}
		}
	}
	cases = append(cases, "", "Jane Doe", "Zoë", "\u2028", "a\x00b\x01", "a\x7f", "\xff\xfe", "tab\there")
	for _, s := range cases {
		if got, w := textProblem(s), want(s); got != w {
			t.Errorf("textProblem(%q) = %q, want %q", s, got, w)
		}
	}
}

// TestTextProblemEveryPosition: textProblem, which reads eight bytes at a
// time, finds a byte that is not printable ASCII at every position of a
// string, alone or after another, and nothing in printable ASCII (the
// bytes around 0x20 and 0x7f included).
func TestTextProblemEveryPosition(t *testing.T) {
	printable := []byte(" !~}09AZaz")
	for n := 1; n <= 24; n++ {
		for p := range n {
			base := make([]byte, n)
			for i := range base {
				base[i] = printable[(i+p)%len(printable)]
			}
			if got := textProblem(string(base)); got != "" {
				t.Fatalf("textProblem(%q) = %q", base, got)
			}
			for b := 0; b < 256; b++ {
				if b >= 0x20 && b < 0x7f {
					continue
				}
				s := append([]byte(nil), base...)
				s[p] = byte(b)
				if textProblem(string(s)) == "" && !(b == '\t' || b == '\n' || b == '\r') {
					t.Fatalf("textProblem(%q) found nothing", s)
				}
				if got, want := textProblem(string(s)), slowTextProblem(string(s)); got != want {
					t.Fatalf("textProblem(%q) = %q, want %q", s, got, want)
				}
			}
		}
	}
}
