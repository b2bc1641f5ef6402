package chttest

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
	"time"
)

// FuzzServer sends arbitrary bodies and query values to the JSON routes:
// the fake must answer every request with a valid status and never panic
// or hang.
func FuzzServer(f *testing.F) {
	f.Add(uint8(0), `{"doc_ids":["a","b"]}`, "")
	f.Add(uint8(1), `{"_meta":{"form":"HEIGHT_WEIGHT"},"patient_uuid":"p","height":"1"}`, "")
	f.Add(uint8(1), `{"_meta":{"form":"x","reported_date":"9999999999999999999999"}}`, "")
	f.Add(uint8(2), `{"name":"A","place":{"name":"B","type":"clinic","parent":{"name":"C"}}}`, "")
	f.Add(uint8(3), `{"docs":[{"_id":"a","parent":{"_id":"a"}},{"_id":"r","type":"data_record","contact":{"_id":"a"}}]}`, "")
	f.Add(uint8(4), `{"_id":"x","parent":{"_id":"x","parent":{"_id":"x"}}}`, "")
	f.Add(uint8(5), ``, "3-abc")
	f.Add(uint8(6), ``, `["a",{"b":1}]`)
	f.Add(uint8(7), `{"phone":"+2547"}`, "%2B254712345679")
	f.Add(uint8(8), ``, "zz")
	f.Add(uint8(9), ``, `["shortcode","13985"]`)
	f.Fuzz(func(t *testing.T, route uint8, body, q string) {
		s, err := newServer(Config{Forms: DemoForms(), ContactTypes: DemoContactTypes, MaxLongpoll: time.Millisecond,
			LoginRateLimit: -1, MaxBodyBytes: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Seed(strings.NewReader(string(demoFixture)))
		type rt struct{ method, path string }
		routes := []rt{
			{"POST", "/api/v1/hydrate"}, {"POST", "/api/v2/records"}, {"POST", "/api/v1/people"},
			{"POST", "/medic/_bulk_docs"}, {"PUT", "/medic/x"}, {"GET", "/medic/_changes?limit=3&since="},
			{"GET", "/api/v1/hydrate?doc_ids="}, {"POST", "/api/v1/contacts-by-phone?phone="},
			{"GET", "/api/v1/person?type=person&limit=2&cursor="},
			{"GET", "/medic/_design/medic-client/_view/contacts_by_reference?include_docs=true&key="},
		}
		r := routes[int(route)%len(routes)]
		req := httptest.NewRequest(r.method, "/x", strings.NewReader(body))
		req.URL.Path, req.URL.RawQuery, _ = strings.Cut(r.path, "?")
		if req.URL.RawQuery != "" {
			req.URL.RawQuery += urlQueryEscape(q)
		}
		req.SetBasicAuth(AdminUsername, AdminPassword)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code < 200 || w.Code > 599 {
			t.Fatalf("status %d", w.Code)
		}
		if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("invalid JSON answer %q", w.Body.String())
		}
		// Everything stored must still hydrate.
		for _, id := range s.store.ids(nil) {
			if _, ok := s.HydratedDoc(id); !ok {
				t.Fatalf("stored doc %q does not hydrate", id)
			}
		}
	})
}

func urlQueryEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return b.String()
}

// FuzzOutboundJS: any relevant_to or expr source either fails to compile
// or evaluates (possibly throwing) without a panic or a hang.
func FuzzOutboundJS(f *testing.F) {
	for _, s := range []string{"doc.type === 'person' && doc.patient_id", "['a','b'].includes(doc.form)",
		"doc.a ? doc.b : 'x' + 1", "!(doc.n >= 3)", "doc['x'][0].y", "((((", "'unterminated", "doc.a.b.c",
		"[{ \"system\": \"cht\", \"value\": doc._id }]", "'cht/'.concat(doc._id)", "doc.n - 1"} {
		f.Add(s)
	}
	doc := map[string]any{"_id": "x", "type": "person", "n": json.Number("3"), "a": map[string]any{"b": []any{"x", nil}}}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := compileJS(src)
		if err != nil {
			return
		}
		js, err := newJSDoc(doc)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = js.truthy(p)
		_, _ = js.mapPayload("fuzz", []mapSource{{dest: "v", expr: p}})
	})
}

// FuzzApplyMapping: arbitrary destination and source paths never panic.
func FuzzApplyMapping(f *testing.F) {
	f.Add("observations.0.code", "doc.fields.list.1")
	f.Add("a.b", "doc")
	f.Add("a..b", "doc..x")
	f.Add("0.1.2", "doc.fields.length")
	doc := map[string]any{"_id": "x", "fields": map[string]any{"list": []any{"a", "b"}}}
	f.Fuzz(func(t *testing.T, dest, src string) {
		m := map[string]any{dest: src, dest + ".z": outbound.MapOptional(src)}
		if src == "" {
			return
		}
		out, err := ApplyMapping(m, doc)
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON payload %s", out)
		}
	})
}
