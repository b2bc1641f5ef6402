package chttest

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"testing"
)

// TestJSNumberString pins ECMAScript's Number::toString (ECMA-262
// §6.1.6.1.20), which JSON.stringify uses for finite numbers: shortest
// round-trip digits, no fraction for integers, plain notation from 1e-6
// up to 1e21 and exponential notation ("e+"/"e-", no padding) outside.
func TestJSNumberString(t *testing.T) {
	a, b := 0.1, 0.2
	point3 := a + b // at run time: not the constant 0.3
	tests := []struct {
		f    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{61.5, "61.5"},
		{168, "168"},
		{-1.5, "-1.5"},
		{point3, "0.30000000000000004"},
		{100, "100"},
		{1e20, "100000000000000000000"},
		{1e21, "1e+21"},
		{1.5e21, "1.5e+21"},
		{123456789012345680000, "123456789012345680000"},
		{12345678901234567890, "12345678901234567000"},
		{9007199254740993, "9007199254740992"},
		{0.000001, "0.000001"},
		{0.0000012, "0.0000012"},
		{1e-7, "1e-7"},
		{-1.5e-7, "-1.5e-7"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{5e-324, "5e-324"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
		{math.NaN(), "NaN"},
	}
	for _, tt := range tests {
		if got := jsNumberString(tt.f); got != tt.want {
			t.Errorf("jsNumberString(%g) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

// TestAPIStoresJSNumbers pins that the documents CHT's API writes carry
// numbers as JavaScript writes them, not as the client sent them. The API
// parses JSON bodies with body-parser (JSON.parse, to float64) and then:
// for /medic writes api/src/routing.js sends CouchDB
// JSON.stringify(req.body) (app.put(docPath, jsonParser, ...), app.post
// on the database and _bulk_docs, writeParsedBody); the records API
// (api/src/services/records.js createRecordByJSON), the people API
// (shared-libs/contacts/src/people.js, through app.postJson) and from 5.2
// the person API (api/src/controllers/person.js create, through
// cht-datasource) build the doc from req.body and save it, which
// JSON.stringify's it. So 61.50 is
// stored as 61.5, 168.0 as 168, 1e2 as 100, 1e400 (Infinity) as null.
func TestAPIStoresJSNumbers(t *testing.T) {
	const sent = `{"a":61.50,"b":168.0,"c":1e2,"d":-0,"e":1e400,"f":12345678901234567890,` +
		`"g":0.00000010,"h":[1.10,{"i":2.50E3}],"j":1E21,"k":0.0000010,"l":-7}`
	const want = `{"a":61.5,"b":168,"c":100,"d":0,"e":null,"f":12345678901234567000,` +
		`"g":1e-7,"h":[1.1,{"i":2500}],"j":1e+21,"k":0.000001,"l":-7}`
	const ct = "application/json"
	tests := []struct {
		name string
		c    call
		id   func(t *testing.T, r result) string // the stored doc's id
		want map[string]string                   // path in the doc -> its JSON
	}{
		{"PUT /medic/{id}", call{method: "PUT", path: "/medic/n-put", ct: ct, body: `{"n":` + sent + `}`},
			func(*testing.T, result) string { return "n-put" }, map[string]string{"n": want}},
		{"POST /medic", call{method: "POST", path: "/medic", ct: ct, body: `{"_id":"n-post","n":` + sent + `}`},
			func(*testing.T, result) string { return "n-post" }, map[string]string{"n": want}},
		{"POST /medic/_bulk_docs", call{method: "POST", path: "/medic/_bulk_docs", ct: ct, body: `{"docs":[{"_id":"n-bulk","n":` + sent + `}]}`},
			func(*testing.T, result) string { return "n-bulk" }, map[string]string{"n": want}},
		{"POST /api/v2/records", call{method: "POST", path: "/api/v2/records", ct: ct,
			body: `{"_meta":{"form":"HEIGHT_WEIGHT","from":"+254712345679"},"patient_uuid":"` + DemoPatientID + `","height":168.0,"weight":61.50}`},
			func(t *testing.T, r result) string { return str(r.obj(t)["id"]) },
			map[string]string{"fields.height": "168", "fields.weight": "61.5"}},
		{"POST /api/v1/people", call{method: "POST", path: "/api/v1/people", ct: ct,
			body: `{"name":"N","place":"` + DemoCHWAreaID + `","n":` + sent + `}`},
			func(t *testing.T, r result) string { return str(r.obj(t)["id"]) }, map[string]string{"n": want}},
		{"POST /api/v1/person", call{method: "POST", path: "/api/v1/person", ct: ct,
			body: `{"name":"N","type":"person","parent":"` + DemoHouseholdID + `","n":` + sent + `}`},
			func(t *testing.T, r result) string { return str(r.obj(t)["_id"]) }, map[string]string{"n": want}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := NewDemoServer()
			t.Cleanup(srv.Close)
			r := do(t, srv, tt.c)
			if r.status >= http.StatusBadRequest {
				t.Fatalf("%d %s", r.status, r.body)
			}
			doc, err := decodeAny(mustDoc(t, srv, tt.id(t, r)))
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range tt.want {
				var got bytes.Buffer
				enc := json.NewEncoder(&got)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(get(doc, path)); err != nil {
					t.Fatal(err)
				}
				if g := bytes.TrimSpace(got.Bytes()); string(g) != want {
					t.Errorf("%s stored as %s\nwant %s", path, g, want)
				}
			}
		})
	}
}
