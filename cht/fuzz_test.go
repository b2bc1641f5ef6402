package cht

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func addFixtureSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `""`, `null`, `{"parent":""}`, `{"parent":{"parent":{"_id":1}}}`,
		`{"reported_date":"x"}`, `{"fields":{"a":[{"b":1}]}}`, `{"contact":"id"}`, `{"errors":[1]}`} {
		f.Add([]byte(s))
	}
}

// roundTrip checks that what decodes also re-encodes, and that the
// encoding is stable.
func roundTrip[T any](t *testing.T, data []byte, newT func() *T) {
	v := newT()
	if err := json.Unmarshal(data, v); err != nil {
		return
	}
	b1, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal after successful decode: %v", err)
	}
	v2 := newT()
	if err := json.Unmarshal(b1, v2); err != nil {
		t.Fatalf("re-decode %s: %v", b1, err)
	}
	b2, err := json.Marshal(v2)
	if err != nil {
		t.Fatalf("re-marshal: %v", err)
	}
	if string(b1) != string(b2) {
		t.Fatalf("encoding not stable:\n%s\n%s", b1, b2)
	}
}

func FuzzDecodeContact(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, func() *Contact { return new(Contact) })
	})
}

func FuzzDecodeReport(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, func() *Report { return new(Report) })
		var r Report
		if json.Unmarshal(data, &r) == nil {
			r.Subject()
			r.Fields.Field("a.0.b")
		}
	})
}

// FuzzDecodeDoc feeds raw bytes to the one-pass decoder (no encoding/json
// check first): it must reject what encoding/json rejects, never panic,
// and both views of what it accepts must re-encode stably.
func FuzzDecodeDoc(f *testing.F) {
	addFixtureSeeds(f)
	for _, s := range []string{`{"_id":"a\u0000"}`, `{"a":"\ud800"}`, `{"fields":{"x":1e999}}`, "{\"a\":\"\xff\"}",
		`{"geolocation":{"latitude":1,"x":null}}`, `{"_id":1,"name":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dd, err := decodeDoc(string(data))
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		c, cerr := dd.contact()
		r, rerr := dd.report()
		if cerr == nil {
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatalf("marshal contact: %v", err)
			}
			roundTrip(t, b, func() *Contact { return new(Contact) })
		}
		if rerr == nil {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("marshal report: %v", err)
			}
			roundTrip(t, b, func() *Report { return new(Report) })
		}
	})
}
