package cht

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

var scanTypeSeeds = []string{
	`{"type":"data_record","form":"x"}`,
	`{"_id":"a","parent":{"type":"contact","parent":{"type":"x"}},"type":"person"}`,
	` { "contact" : { "type" : "person" } , "type" : "clinic" } `,
	`{"type":"a","type":"b"}`,
	`{"Type":"person"}`,
	`{"TYPE":"person","type":"clinic"}`,
	`{"type":"da\u0074a_record"}`,
	`{"ty\u0070e":"person"}`,
	`{"type":1}`,
	`{"type":null}`,
	`{"type":["person"]}`,
	`{"fields":{"s":"a \"quoted\" } ] { [ string","type":"x"},"type":"data_record"}`,
	`{}`,
	`[]`,
	`{"type":"x"`,
	`{"type":"x"}}`,
	`{"a":[1,2,{"b":"}"}],"type":"ok"}`,
	`"type"`,
	`{"a":tru,"type":"x"}`,
}

// TestTypeScanMatchesDecoder: HydratedDoc.Type's scan of the top level
// gives the type the document decoder gives, for every seed.
func TestTypeScanMatchesDecoder(t *testing.T) {
	sure := 0
	for _, s := range scanTypeSeeds {
		if checkScanType(t, []byte(s)) {
			sure++
		}
	}
	if sure < len(scanTypeSeeds)/2 {
		t.Errorf("the scan settled %d of %d seeds", sure, len(scanTypeSeeds))
	}
	for _, s := range []string{`{"Type":"person"}`, `{"type":"a","type":"b"}`, `{"ty\u0070e":"person"}`, `{"type":"da\u0074a_record"}`} {
		if _, ok := scanType([]byte(s)); ok {
			t.Errorf("scanType(%s) is sure; it should leave it to the decoder", s)
		}
	}
	if got := (HydratedDoc{Doc: []byte(`{"type":"da\u0074a_record"}`)}).Type(); got != "data_record" {
		t.Errorf("Type of an escaped type = %q", got)
	}
}

// FuzzScanType: on every valid JSON document in valid UTF-8 (the decoder
// refuses invalid UTF-8 whatever the type), what the scan is sure of is
// what the decoder reads.
func FuzzScanType(f *testing.F) {
	for _, s := range scanTypeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkScanType(t, b)
	})
}

// checkScanType reports whether the scan was sure of b's type.
func checkScanType(t *testing.T, b []byte) bool {
	t.Helper()
	got, ok := scanType(b)
	if !ok || !json.Valid(b) || !utf8.Valid(b) {
		return ok
	}
	dd, err := decodeDoc(string(b))
	want := ""
	if err == nil {
		want = dd.docType()
	}
	if got != want {
		t.Errorf("scanType(%s) = %q, the decoder reads %q", b, got, want)
	}
	return true
}
