package cht

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDecodeCopiesWhatItKeeps: the decoders read the caller's bytes in
// place and copy what the result keeps of them. Each case keeps the input
// in a different place (typed members, Extra keys and values, form data
// keys, strings and numbers, report errors, geolocation, lineage, the ids
// of an outbound push); overwriting the input after the decode must not
// change the result.
func TestDecodeCopiesWhatItKeeps(t *testing.T) {
	type decodeFn func(b []byte) (any, error)
	contact := func(b []byte) (any, error) { c := new(Contact); return c, c.UnmarshalJSON(b) }
	report := func(b []byte) (any, error) { r := new(Report); return r, r.UnmarshalJSON(b) }
	lineage := func(b []byte) (any, error) { l := new(Lineage); return l, l.UnmarshalJSON(b) }
	reportError := func(b []byte) (any, error) { e := new(ReportError); return e, e.UnmarshalJSON(b) }
	geolocation := func(b []byte) (any, error) { g := new(Geolocation); return g, g.UnmarshalJSON(b) }
	hydrated := func(b []byte) (any, error) { return HydratedDoc{ID: "h", Doc: b}.Contact() }
	pushed := func(b []byte) (any, error) {
		p, err := parsePush(b, "doc")
		return []string{p.ID, p.Rev}, err
	}
	tests := []struct {
		name   string
		decode decodeFn
		in     string
	}{
		{"contact members", contact, `{"_id":"c1","_rev":"1-a","type":"contact","contact_type":"c_person","name":"Amina",
			"short_name":"A","patient_id":"4093","place_id":"p","external_id":"E","phone":"+254","phone_alternate":"+255",
			"sex":"female","date_of_birth":"1994-07-12","date_of_death":"2024-01-01","role":"patient","notes":"n"}`},
		{"contact extra", contact, `{"_id":"c1","meta":{"created_by":"chw"},"muted":false,"tags":["a","b"]}`},
		{"hydrated lineage", contact, `{"_id":"c1","parent":{"_id":"p1","type":"clinic","name":"Clinic","x":"y",
			"contact":{"_id":"k1","name":"CHW"},"parent":{"_id":"p2","parent":"p3"}}}`},
		{"contact reference string", contact, `{"_id":"c1","type":"clinic","contact":"k1","parent":""}`},
		{"escaped strings", contact, `{"_id":"c\u00e91","name":"A\"mina","notes":"caf\u00e9"}`},
		{"report fields", report, `{"_id":"r1","type":"data_record","form":"f","content_type":"xml","from":"+254",
			"fields":{"a":"yes","n":12.5,"big":12345678901234567890,"l":["x",1,{"k":"v"}],"o":{"p":"q"}}}`},
		{"report errors", report, `{"_id":"r1","errors":[{"code":"sys.missing","message":"m","fields":["x"]}]}`},
		{"report subjects", report, `{"_id":"r1","patient":{"_id":"pt","name":"P"},"place":"pl","contact":{"_id":"k"}}`},
		{"geolocation", contact, `{"_id":"c1","geolocation":{"latitude":1.5,"code":3,"message":"ok","provider":"gps"}}`},
		{"lineage", lineage, `{"_id":"p1","type":"clinic","parent":{"_id":"p2"}}`},
		{"report error", reportError, `{"code":"c","message":"m","x":"y"}`},
		{"geolocation alone", geolocation, `{"latitude":1.5,"message":"m","x":"y"}`},
		{"hydrated doc", hydrated, `{"_id":"c1","type":"person","name":"Amina","meta":{"a":"b"}}`},
		{"push ids", pushed, `{"id":"c1","rev":"1-a","x":"y"}`},
		{"push document ids", pushed, `{"doc":{"_id":"c1","_rev":"1-a","type":"person"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			v, err := tt.decode(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) < 8 {
				t.Fatalf("decoded %s: nothing to compare", want)
			}
			for i := range in {
				in[i] = 'x'
			}
			if got, _ := json.Marshal(v); string(got) != string(want) {
				t.Errorf("the result changed with its input:\n got %s\nwant %s", got, want)
			}
			if strings.Contains(string(want), "xxx") {
				t.Errorf("the result %s holds overwritten bytes", want)
			}
		})
	}
}
