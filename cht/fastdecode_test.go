package cht

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// errText is err's message, "" for nil; a fast decode must never let
// errRetry out.
func errText(t *testing.T, err error) string {
	t.Helper()
	if errors.Is(err, errRetry) {
		t.Fatalf("errRetry reached the caller: %v", err)
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// sameDecode checks that the fast decoders (no path tracking, decoded
// again on the first error) give what the tracking decoders give: the same
// values, the same errors.
func sameDecode(t *testing.T, data []byte) {
	c1, c2 := new(Contact), new(Contact)
	e1, e2 := decodeContactAs(data, c1, true), decodeContactAs(data, c2, false)
	if errText(t, e1) != errText(t, e2) || !reflect.DeepEqual(c1, c2) {
		t.Fatalf("contact %q:\nfast %v %+v\nslow %v %+v", data, e1, c1, e2, c2)
	}
	r1, r2 := new(Report), new(Report)
	e1, e2 = decodeReportAs(data, r1, true), decodeReportAs(data, r2, false)
	if errText(t, e1) != errText(t, e2) || !reflect.DeepEqual(r1, r2) {
		t.Fatalf("report %q:\nfast %v %+v\nslow %v %+v", data, e1, r1, e2, r2)
	}
	d1, e1 := decodeDocAs(string(data), true)
	d2, e2 := decodeDocAs(string(data), false)
	if errText(t, e1) != errText(t, e2) {
		t.Fatalf("document %q:\nfast %v\nslow %v", data, e1, e2)
	}
	if d1 != nil {
		sameViews(t, data, d1, d2)
	}
	for _, key := range []string{"doc", ""} {
		p1, e1 := parsePushAs(data, key, true)
		p2, e2 := parsePushAs(data, key, false)
		if errText(t, e1) != errText(t, e2) || p1.ID != p2.ID || p1.Rev != p2.Rev || string(p1.Doc) != string(p2.Doc) ||
			(p1.View == nil) != (p2.View == nil) {
			t.Fatalf("push %q (key %q):\nfast %v %+v\nslow %v %+v", data, key, e1, p1, e2, p2)
		}
		if p1.View != nil {
			sameViews(t, data, p1.View.(docView).dd, p2.View.(docView).dd)
		}
	}
}

func sameViews(t *testing.T, data []byte, d1, d2 *decodedDoc) {
	t.Helper()
	c1, e1 := d1.contact()
	c2, e2 := d2.contact()
	if errText(t, e1) != errText(t, e2) || !reflect.DeepEqual(c1, c2) {
		t.Fatalf("contact view of %q:\nfast %v %+v\nslow %v %+v", data, e1, c1, e2, c2)
	}
	r1, e1 := d1.report()
	r2, e2 := d2.report()
	if errText(t, e1) != errText(t, e2) || !reflect.DeepEqual(r1, r2) {
		t.Fatalf("report view of %q:\nfast %v %+v\nslow %v %+v", data, e1, r1, e2, r2)
	}
}

// fastSeeds are documents with errors at every place the decoders report
// one: the fast decoders stop there and decode again.
var fastSeeds = []string{
	`{"_id":1,"name":2,"parent":[],"contact":true}`,
	`{"_id":"a","parent":{"_id":"b","name":1,"parent":{"_id":2}}}`,
	`{"_id":"a","contact":{"_id":"k","parent":{"_id":"p","type":"clinic","x":"\ud800"}}}`,
	`{"type":"data_record","fields":{"a":[1,{"b":"\u0000"}],"n":1e999},"errors":[1,{"code":2,"message":"\ud800"}]}`,
	`{"reported_date":"soon","geolocation":{"latitude":"x","code":"y","message":3,"speed":1e999}}`,
	`{"reported_date":1e300,"patient":1,"place":[],"form":{},"from":"\u0000"}`,
	`{"doc":{"_id":"c1","type":"person","name":1},"id":"x"}`,
	`{"doc":{"_id":"c1","type":"person","parent":{"_id":"p","x":[}},"id":"x"}`,
	`{"doc":"c1","id":"x","rev":"1-a"}`,
	`{"id":"c\u0001","rev":"1"}`,
	`{"_id":"a","meta":{"x":[1,2,{"y":"\q"}]}}`,
	`{"_id":"a"} x`,
	`{"_id":"a",}`,
	`{"_id":"a","name":"\xff"}`,
	`{"fields":{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`,
	`{"parent":` + strings.Repeat(`{"parent":`, 70) + `"x"` + strings.Repeat("}", 71),
	`{"_id":"a","_id":1,"name":"n","name":null}`,
	`[1,2]`,
	``,
}

// TestFastDecodeSameAsTracked runs the fixtures and documents with errors
// through both ways of decoding.
func TestFastDecodeSameAsTracked(t *testing.T) {
	for _, s := range fastSeeds {
		sameDecode(t, []byte(s))
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatal("no fixtures", err)
	}
	for _, name := range files {
		sameDecode(t, readFixture(t, filepath.Base(name)))
	}
}

func FuzzFastDecodeSameAsTracked(f *testing.F) {
	addFixtureSeeds(f)
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(sameDecode)
}
