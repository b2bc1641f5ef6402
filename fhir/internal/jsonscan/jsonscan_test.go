package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// The scanner must accept exactly the JSON encoding/json accepts, and a
// lenient string read must give what json.Unmarshal gives.
func FuzzScannerAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2.5e-3,true,false,null,"x\u00e9\n"]}`,
		`"caf\u00e9 \ud83d\ude00"`, `"\ud800"`, "\"\xff\"", `-0.0E+1`,
		`01`, `1.`, `{"a":1,}`, `[1 2]`, `nul`, `{} {}`, `"a\tb"`, "\"a\tb\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := New(s, false)
		d.Skip(0)
		d.End()
		if d.Err() != nil && strings.Contains(d.Err().Error(), tooDeep) {
			return
		}
		if got, want := d.Err() == nil, json.Valid([]byte(s)); got != want {
			t.Fatalf("Skip accepts %q: %v (%v), encoding/json: %v", s, got, d.Err(), want)
		}
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		if want, ok := v.(string); ok {
			d := New(s, false)
			if got := d.Str(); got != want || d.Err() != nil {
				t.Fatalf("Str(%q) = %q, %v; want %q", s, got, d.Err(), want)
			}
		}
	})
}

func TestStrictRefusesWhatAFHIRStringMayNotHold(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when accepted
	}{
		{`"plain"`, ""},
		{`"escaped tab\tok"`, ""},
		{"\"raw tab\tno\"", "control"},
		{`"esc\u0001aped"`, "control"},
		{"\"bad \xff utf8\"", "UTF-8"},
		{`"lone \ud800"`, "surrogate"},
	} {
		d := New(tc.in, true)
		d.Str()
		switch {
		case tc.want == "" && d.Err() != nil:
			t.Errorf("%q: unexpected %v", tc.in, d.Err())
		case tc.want != "" && (d.Err() == nil || !strings.Contains(d.Err().Error(), tc.want)):
			t.Errorf("%q: error %v, want one naming %q", tc.in, d.Err(), tc.want)
		}
	}
}
