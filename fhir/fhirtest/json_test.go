package fhirtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

// stdDecode is the reference: encoding/json with UseNumber and a trailing-data check.
func stdDecode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// checkCodec requires parseJSON and appendJSON to agree exactly with encoding/json on b.
func checkCodec(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := stdDecode(b)
	got, gotErr := parseJSON(b)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("input %q: encoding/json error %v, parseJSON error %v", b, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("input %q: parseJSON %#v, encoding/json %#v", b, got, want)
	}
	wantEnc, err := encodeJSON(want)
	if err != nil {
		t.Fatal(err)
	}
	gotEnc, err := appendJSON(nil, got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotEnc, wantEnc) {
		t.Fatalf("input %q: appendJSON %s, encoding/json %s", b, gotEnc, wantEnc)
	}
}

var codecCases = []string{
	`{}`, `[]`, ` {"a" : [1, -0.50e+3, 1E2, 0, true, false, null, "x"]} `, `"\u00e9\ud83d\ude00\ud800\udc00"`,
	`"\ud800"`, `"\udc00\ud800x"`, `"\ud800\u0041"`, `"a\"\\\/\b\f\n\r\t"`, "\"\x7f\u2028\u2029<>&\"",
	"\"\xff\xfe ok \xc3\"", `{"a":1,"a":2}`, `01`, `-`, `1.`, `1e`, `.5`, `+1`, `"\x"`, `"\u12"`, `[1,]`, `{"a":1,}`,
	`{"a"}`, `{1:2}`, `tru`, `nul`, `[`, `{`, `"abc`, "\"a\x01\"", `{} {}`, `[1 2]`, ``, `  `, `1 `, `-0`, `-01`,
	`1.5e-7`, `"\uD83D\uDE00"`, `{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Zoë &amp; co</div>"}`,
}

func TestJSONCodecMatchesEncodingJSON(t *testing.T) {
	for _, c := range codecCases {
		checkCodec(t, []byte(c))
	}
	for _, f := range []string{"testdata/transaction-encounter-20obs.json", "testdata/search-fixtures.json", "testdata/fuzz-bundle-seed.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkCodec(t, b)
	}
	deep := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	checkCodec(t, []byte(deep))
	checkCodec(t, []byte("["+deep+"]"))
}

func FuzzJSONCodec(f *testing.F) {
	for _, c := range codecCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkCodec(t, b) })
}
