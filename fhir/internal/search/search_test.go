package search

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"r1/vitals.weight": "r1/vitals.weight",
		`a,b|c$d\e`:        `a\,b\|c\$d\\e`,
		"":                 "",
		"é|ü":              `é\|ü`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
