package cht

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/decodehook"
)

// decodePaths returns the paths of the *DecodeError values in err.
func decodePaths(err error) []string {
	var paths []string
	var walk func(error)
	walk = func(err error) {
		var de *DecodeError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		default:
			if errors.As(err, &de) {
				paths = append(paths, de.Path)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return paths
}

// TestDecodeStrict pins the strictness: wrong JSON types, NUL characters,
// lone surrogates and numbers beyond float64 name their path, and the
// rest of the document is still decoded with the bad value kept in Extra
// (or Fields).
func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		report bool
		paths  []string
		check  func(t *testing.T, c *Contact, r *Report)
	}{
		{name: "numeric _id", in: `{"_id":123,"type":"person","name":"a"}`, paths: []string{"_id"},
			check: func(t *testing.T, c *Contact, _ *Report) {
				if c.ID != "" || string(c.Extra["_id"]) != "123" || c.Name != "a" {
					t.Errorf("contact = %+v", c)
				}
			}},
		{name: "numeric name and sex", in: `{"_id":"a","type":"person","name":123,"sex":5}`, paths: []string{"name", "sex"}},
		{name: "boolean phone", in: `{"_id":"a","type":"person","phone":true}`, paths: []string{"phone"}},
		{name: "NUL in name", in: `{"_id":"a","type":"person","name":"Am\u0000ina"}`, paths: []string{"name"},
			check: func(t *testing.T, c *Contact, _ *Report) {
				if c.Name != "" || string(c.Extra["name"]) != `"Am\u0000ina"` {
					t.Errorf("name %q, extra %s", c.Name, c.Extra["name"])
				}
			}},
		{name: "lone surrogate", in: `{"_id":"a","type":"person","name":"x\ud800y"}`, paths: []string{"name"}},
		{name: "surrogate pair is fine", in: `{"_id":"a","type":"person","name":"\ud83d\ude00"}`,
			check: func(t *testing.T, c *Contact, _ *Report) {
				if c.Name != "😀" {
					t.Errorf("name = %q", c.Name)
				}
			}},
		{name: "deep lineage name", in: `{"_id":"a","parent":{"_id":"p","type":"clinic","parent":{"_id":"q","type":"health_center","name":[]}}}`,
			paths: []string{"parent.parent.name"}},
		{name: "reported_date overflow", in: `{"_id":"a","reported_date":1e999}`, paths: []string{"reported_date"}},
		{name: "reported_date garbage", in: `{"_id":"a","reported_date":"2099-13-45"}`, paths: []string{"reported_date"}},
		{name: "geolocation types", in: `{"_id":"a","geolocation":{"latitude":"1.5","longitude":1e400}}`,
			paths: []string{"geolocation.latitude", "geolocation.longitude"}},
		{name: "fields out of range and NUL", report: true,
			in:    `{"_id":"r","type":"data_record","form":"f","fields":{"temp":1e999,"a":[{"b":"x\u0000"}],"ok":1.5}}`,
			paths: []string{"fields.temp", "fields.a.0.b"},
			check: func(t *testing.T, _ *Contact, r *Report) {
				if v, _ := r.Fields.Field("temp"); v != json.Number("1e999") {
					t.Errorf("fields.temp = %v, want it kept", v)
				}
				if v, ok := r.Fields.Float("ok"); !ok || v != 1.5 {
					t.Errorf("fields.ok = %v", v)
				}
			}},
		{name: "report from and form types", report: true, in: `{"_id":"r","type":"data_record","form":7,"from":254700}`,
			paths: []string{"form", "from"}},
		{name: "report patient id type", report: true, in: `{"_id":"r","patient":{"_id":5}}`, paths: []string{"patient._id"}},
		{name: "fields not an object", report: true, in: `{"_id":"r","fields":"x"}`, paths: []string{"fields"}},
		{name: "contact-only members are extra in a report", report: true, in: `{"_id":"r","name":5,"parent":7}`},
		{name: "report-only members are extra in a contact", in: `{"_id":"c","fields":5,"form":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Contact
			var r Report
			var err error
			if tt.report {
				err = r.UnmarshalJSON([]byte(tt.in))
			} else {
				err = c.UnmarshalJSON([]byte(tt.in))
			}
			if got := decodePaths(err); !slices.Equal(got, tt.paths) {
				t.Fatalf("error paths %q (err %v), want %q", got, err, tt.paths)
			}
			if tt.check != nil {
				tt.check(t, &c, &r)
			}
			if err != nil {
				return
			}
			// What decodes without error re-encodes to the same JSON value.
			var out []byte
			if tt.report {
				out, err = json.Marshal(&r)
			} else {
				out, err = json.Marshal(&c)
			}
			if err != nil || !sameJSON(t, []byte(tt.in), out) {
				t.Errorf("round trip: %s, %v", out, err)
			}
		})
	}
}

// TestDecodeSyntax: malformed JSON, invalid UTF-8 and raw control
// characters fail the whole document with a *DecodeError.
func TestDecodeSyntax(t *testing.T) {
	for _, in := range []string{
		``, `{`, `{"_id":"a",}`, `{"_id":"a"} x`, `{"_id":"a\x00"}`, "{\"_id\":\"a\xff\"}",
		"{\"meta\":{\"x\":\"\xc3\x28\"}}", `{"n":01}`, `{"n":1.}`, `{"n":-}`, `{"n":tru}`, `{"s":"\x"}`, `{"s":"\u12"}`,
		`[1]`, `"x"`,
	} {
		err := new(Contact).UnmarshalJSON([]byte(in))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%q: err = %v, want *DecodeError", in, err)
		}
	}
}

// TestDecodeErrorsFilteredByView: a document of unknown type is decoded
// once; the errors of members that belong to one kind only are reported
// for that kind.
func TestDecodeErrorsFilteredByView(t *testing.T) {
	dd, err := decodeDoc(`{"_id":"x","type":"person","name":5,"fields":"y","contact":{"_id":6}}`)
	if err != nil {
		t.Fatal(err)
	}
	c, cerr := dd.contact()
	r, rerr := dd.report()
	if got := decodePaths(cerr); !slices.Equal(got, []string{"name", "contact._id"}) {
		t.Errorf("contact errors %q", got)
	}
	if got := decodePaths(rerr); !slices.Equal(got, []string{"fields", "contact._id"}) {
		t.Errorf("report errors %q", got)
	}
	if c.Extra["fields"] == nil || r.Extra["name"] == nil || c.Extra["name"] == nil || r.Extra["fields"] == nil {
		t.Errorf("contact extra %v, report extra %v", c.Extra, r.Extra)
	}
}

func TestGeolocationKept(t *testing.T) {
	in := `{"_id":"h","type":"clinic","geolocation":{"latitude":-0.09,"longitude":34.77,"accuracy":12.5,"provider":"gps","timestamp":1730355950419}}`
	var c Contact
	if err := c.UnmarshalJSON([]byte(in)); err != nil {
		t.Fatal(err)
	}
	g := c.Geolocation
	if !g.Valid() || *g.Latitude != -0.09 || *g.Longitude != 34.77 || *g.Accuracy != 12.5 || string(g.Extra["provider"]) != `"gps"` {
		t.Fatalf("geolocation = %+v", g)
	}
	out, err := json.Marshal(&c)
	if err != nil || !sameJSON(t, []byte(in), out) {
		t.Errorf("round trip %s, %v", out, err)
	}
}

// countDecodes counts document decodes while the test runs.
func countDecodes(t *testing.T) *int {
	n := new(int)
	decodeHook = func() { *n++ }
	t.Cleanup(func() { decodeHook = nil })
	return n
}

// TestOutboundDecodesOnce: the outbound push parser decodes the pushed
// document once, in the pass that checks the body; DocType, Report and
// Contact share that decode (a fetched document is decoded once too).
func TestOutboundDecodesOnce(t *testing.T) {
	report := string(readFixture(t, "report_xform.json"))
	person := string(readFixture(t, "person_hydrated.json"))
	tests := []struct {
		name, body string
		fetch      string // document fetched for a reference
	}{
		{"doc member", `{"doc":` + report + `}`, ""},
		{"body is the doc", person, ""},
		{"id only, fetched", `{"id":"r1","rev":"1-a"}`, report},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := countDecodes(t)
			p, err := parsePush([]byte(tt.body), "doc")
			if err != nil {
				t.Fatal(err)
			}
			view := p.View
			if tt.fetch != "" {
				if view != nil {
					t.Fatal("a reference decoded as a document")
				}
				if view, err = decodehook.DecodeDoc([]byte(tt.fetch)); err != nil {
					t.Fatal(err)
				}
			}
			v := view.(docView)
			_ = v.DocType()
			r1, err := v.Report()
			if err != nil {
				t.Fatal(err)
			}
			if r2, _ := v.Report(); r1 != r2 {
				t.Error("Report decoded twice")
			}
			if _, err := v.Contact(); err != nil {
				t.Fatal(err)
			}
			if r1.ID == "" {
				t.Errorf("report %+v", r1)
			}
			if *n != 1 {
				t.Errorf("%d decodes, want 1", *n)
			}
		})
	}
}

// TestOutboundPayloadViews: the contact and report views of one pushed
// document carry the members of their kind.
func TestOutboundPayloadViews(t *testing.T) {
	body := `{"doc":{"_id":"r","_rev":"2-b","type":"data_record","form":"f","from":"+254700","fields":{"a":"1"},"name":"n","parent":{"_id":"p"}},"id":"outer"}`
	p, err := parsePush([]byte(body), "doc")
	if err != nil {
		t.Fatal(err)
	}
	v := p.View.(docView)
	if p.ID != "r" || p.Rev != "2-b" || v.DocType() != "data_record" {
		t.Errorf("id %q rev %q type %q", p.ID, p.Rev, v.DocType())
	}
	r, err := v.Report()
	if err != nil || r.Form != "f" || r.From != "+254700" || r.Fields["a"] != "1" || string(r.Extra["name"]) != `"n"` || r.Extra["parent"] == nil {
		t.Errorf("report %+v, %v", r, err)
	}
	c, err := v.Contact()
	if err != nil || c.Name != "n" || c.ParentID() != "p" || c.Extra["form"] == nil || c.Extra["id"] != nil {
		t.Errorf("contact %+v, %v", c, err)
	}
	if !reflect.DeepEqual(r.Extra["fields"], json.RawMessage(nil)) {
		t.Errorf("report extra holds fields")
	}
}

// TestReportSenderAndGeolocation: what FHIR has a place for is decoded.
// An SMS report's sender is the top-level from (api/src/services/records.js
// getDataRecord: from is the normalised options.from, and sms_message keeps
// the POST as sent); an XForm report carries the browser's geolocation.
func TestReportSenderAndGeolocation(t *testing.T) {
	in := `{"_id":"r","type":"data_record","form":"HEIGHT_WEIGHT","from":"+254712345679",
		"sms_message":{"from":"0712345679","message":"HW 172 65","form":"HEIGHT_WEIGHT"},
		"geolocation":{"latitude":-1.28,"longitude":36.81,"accuracy":20,"altitude":null},
		"geolocation_log":[{"timestamp":1730355950419,"recording":{"latitude":-1.28,"longitude":36.81}}]}`
	var r Report
	if err := r.UnmarshalJSON([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if r.From != "+254712345679" || r.Extra["sms_message"] == nil || r.Extra["geolocation_log"] == nil {
		t.Errorf("from %q, extra %v", r.From, r.Extra)
	}
	if g := r.Geolocation; !g.Valid() || *g.Latitude != -1.28 || *g.Longitude != 36.81 || *g.Accuracy != 20 || g.Altitude != nil {
		t.Errorf("geolocation %+v", g)
	}
}

// TestDecodedValuesOwnTheirMemory: decoders and their buffers are reused,
// so what a decode returns must share memory with neither the input (the
// caller may reuse it) nor the decoders that go on decoding other
// documents, here concurrently.
func TestDecodedValuesOwnTheirMemory(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) < 5 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	type decoded struct {
		name       string
		c          Contact
		r          Report
		view       *Contact // the contact view of a pushed body
		cjs, rjs   []byte
		viewJS     []byte
		in, pushed []byte
	}
	var all []*decoded
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		x := &decoded{name: name, in: slices.Clone(raw)}
		if err := x.c.UnmarshalJSON(x.in); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := x.r.UnmarshalJSON(x.in); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		x.pushed = append(append([]byte(`{"doc":`), raw...), '}')
		p, err := parsePush(x.pushed, "doc")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if x.view, err = p.View.(docView).Contact(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		x.cjs, _ = json.Marshal(&x.c)
		x.rjs, _ = json.Marshal(&x.r)
		x.viewJS, _ = json.Marshal(x.view)
		all = append(all, x)
	}
	// The caller reuses its buffers (not the pushed body, which Extra
	// values alias by design: cht/outbound documents it as read-only).
	for _, x := range all {
		for i := range x.in {
			x.in[i] = 'x'
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				for _, name := range files {
					raw, _ := os.ReadFile(name)
					var c Contact
					var r Report
					_ = c.UnmarshalJSON(raw)
					_ = r.UnmarshalJSON(raw)
					if dd, err := decodeDoc(string(raw)); err == nil {
						_, _ = dd.contact()
						_, _ = dd.report()
					}
					_, _ = parsePush(append(append([]byte(`{"doc":`), raw...), '}'), "doc")
					_ = new(Contact).UnmarshalJSON([]byte(`{"_id":5,"name":"\u0000","parent":{"_id":"p","x":[1]}}`))
				}
			}
		}()
	}
	wg.Wait()
	for _, x := range all {
		for _, v := range []struct {
			what string
			val  any
			want []byte
		}{{"contact", &x.c, x.cjs}, {"report", &x.r, x.rjs}, {"pushed contact", x.view, x.viewJS}} {
			got, err := json.Marshal(v.val)
			if err != nil || string(got) != string(v.want) {
				t.Errorf("%s: the %s changed after its input was overwritten and other documents decoded:\n got %s\nwant %s",
					x.name, v.what, got, v.want)
			}
		}
	}
}

// CHT's death_reporting transition stores date_of_death as the report's
// reported_date, a number of milliseconds, when no date field is
// configured (cht-core shared-libs/transitions/src/transitions/
// death_reporting.js getDateOfDeath; its integration test
// tests/integration/sentinel/transitions/death-reporting.spec.js expects
// person.date_of_death to equal doc.reported_date). Such a person, and a
// report hydrated with them, decode: the digits go to DateOfDeath and are
// written back as a number. A number that is not whole milliseconds is a
// value error naming the member.
func TestDateOfDeathInMilliseconds(t *testing.T) {
	tests := []struct {
		name    string
		dod     string // the JSON value
		want    string
		wantErr bool
	}{
		{"milliseconds", `1742380956176`, "1742380956176", false},
		{"a date", `"2025-03-19"`, "2025-03-19", false},
		{"a fraction", `1742380956176.5`, "", true},
		{"a boolean", `true`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"_id":"p1","type":"person","name":"P","date_of_death":` + tt.dod + `}`
			var c Contact
			err := c.UnmarshalJSON([]byte(doc))
			var de *DecodeError
			if tt.wantErr {
				if !errors.As(err, &de) || de.Path != "date_of_death" {
					t.Fatalf("err = %v, want a DecodeError at date_of_death", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if c.DateOfDeath != tt.want {
				t.Errorf("DateOfDeath = %q, want %q", c.DateOfDeath, tt.want)
			}
			out, err := c.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatal(err)
			}
			if string(m["date_of_death"]) != tt.dod {
				t.Errorf("written back as %s, want %s", m["date_of_death"], tt.dod)
			}
			// The same person hydrated into a report.
			var r Report
			if err := r.UnmarshalJSON([]byte(`{"_id":"r1","type":"data_record","form":"f","patient":` + doc + `}`)); (err != nil) != tt.wantErr {
				t.Fatalf("report: %v", err)
			}
			if r.Patient == nil || r.Patient.DateOfDeath != tt.want {
				t.Errorf("report patient = %+v", r.Patient)
			}
		})
	}
	// A string of digits stays a string.
	var c Contact
	if err := c.UnmarshalJSON([]byte(`{"_id":"p1","type":"person","date_of_death":"1742380956176"}`)); err != nil {
		t.Fatal(err)
	}
	if out, _ := c.MarshalJSON(); !strings.Contains(string(out), `"date_of_death":"1742380956176"`) {
		t.Errorf("a string written back as %s", out)
	}
}
