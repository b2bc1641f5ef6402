package backfill

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

var sniffSeeds = []string{
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

func TestSniffTypeMatchesType(t *testing.T) {
	for _, s := range sniffSeeds {
		checkSniff(t, []byte(s))
	}
}

func FuzzSniffType(f *testing.F) {
	for _, s := range sniffSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSniff(t, b)
	})
}

// checkSniff requires docType to agree with cht.HydratedDoc.Type on every
// valid JSON document in valid UTF-8 (cht's decoder refuses invalid UTF-8
// whatever the type, so the document fails in conversion either way).
func checkSniff(t *testing.T, b []byte) {
	t.Helper()
	d := &cht.HydratedDoc{ID: "x", Doc: b}
	got := docType(d)
	if !json.Valid(b) || !utf8.Valid(b) {
		return // the document decoder rejects it whatever the type
	}
	if want := d.Type(); got != want {
		t.Errorf("docType(%s) = %q, HydratedDoc.Type = %q", b, got, want)
	}
}
