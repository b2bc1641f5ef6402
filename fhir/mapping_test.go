package fhir

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadMappingExample(t *testing.T) {
	m, err := LoadMapping("testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Forms) != 4 {
		t.Fatalf("forms = %d, want 4", len(m.Forms))
	}
	f, ok := m.Form("Assessment") // case-insensitive
	if !ok || len(f.Fields) != 20 {
		t.Fatalf("assessment form: ok=%v fields=%d, want 20", ok, len(f.Fields))
	}
	kinds := map[ValueKind]bool{}
	for _, fm := range m.Forms {
		for _, fld := range fm.Fields {
			kinds[fld.Type] = true
		}
	}
	for k := range validKinds {
		if !kinds[k] {
			t.Errorf("example mapping does not use kind %q", k)
		}
	}
	// The JSON form of the same mapping loads to the same value.
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(p, js, 0o600); err != nil {
		t.Fatal(err)
	}
	m2, err := LoadMapping(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Error("JSON round trip changed the mapping")
	}
}

func TestLoadMappingMissingFile(t *testing.T) {
	_, err := LoadMapping("testdata/does-not-exist.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want os.ErrNotExist", err)
	}
}

func TestParseMappingInvalid(t *testing.T) {
	const okField = `{path: a, code: {system: "http://x", code: c}, type: string}`
	tests := []struct {
		name, in, want string
	}{
		{"empty", ``, "empty document"},
		{"bad version", "version: 2\nforms: []", "unsupported version 2"},
		{"unknown key", "forms: [{form: F, fields: [], colour: red}]", "colour"},
		{"unknown key json", `{"forms":[],"extra":1}`, "extra"},
		{"json trailing", `{"forms":[]} {}`, "trailing"},
		{"empty form", "forms: [{form: '', fields: []}]", "form code is empty"},
		{"duplicate form", "forms: [{form: F, fields: []}, {form: f, fields: []}]", `form "f": form listed twice`},
		{"empty path", `forms: [{form: F, fields: [{path: "", code: {system: s, code: c}, type: string}]}]`, "path is empty"},
		{"bad path", `forms: [{form: F, fields: [{path: "a..b", code: {system: s, code: c}, type: string}]}]`, `field "a..b": path has an empty segment`},
		{"no system", `forms: [{form: F, fields: [{path: a, code: {code: c}, type: string}]}]`, "code has no system"},
		{"no code", `forms: [{form: F, fields: [{path: a, code: {system: s}, type: string}]}]`, "code has no code"},
		{"no type", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}}]}]`, "type is missing"},
		{"bad type", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}, type: float}]}]`, `unknown type "float"`},
		{"quantity no unit", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}, type: quantity}]}]`, "quantity needs a UCUM unit"},
		{"codeable no table", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}, type: codeable}]}]`, "codeable needs values or valueSystem"},
		{"codeable dup", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}, type: codeable, values: {x: {system: s, code: k}, y: {system: s, code: k}}}]}]`, `values "x" and "y" map to the same code`},
		{"unit on string", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}, type: string, unit: kg}]}]`, "unit is only allowed"},
		{"half boolean", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}, type: boolean, trueValue: "yes"}]}]`, "must be set together"},
		{"dup path", "forms: [{form: F, fields: [" + okField + ", " + strings.Replace(okField, "code: c", "code: d", 1) + "]}]", "path listed twice"},
		{"dup code", "forms: [{form: F, fields: [" + okField + ", " + strings.Replace(okField, "path: a", "path: b", 1) + "]}]", "used by two fields"},
		{"bad encounter type", `forms: [{form: F, encounterType: {code: x}, fields: []}]`, "encounterType has no system"},
		{"yaml syntax", "forms: [", "not valid YAML: line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "fhir: ") {
				t.Errorf("err %q lacks the package prefix", err)
			}
		})
	}
}

// FuzzParseMapping: the loader never panics, and whatever it accepts is
// valid and survives a JSON round trip unchanged.
func FuzzParseMapping(f *testing.F) {
	// Small seeds: the fuzzer minimises every new input, which is slow for
	// large ones (the full example mapping is covered by TestLoadMappingExample).
	f.Add([]byte("forms:\n  - form: HW\n    category: [{system: s, code: c}]\n    fields:\n      - {path: a.b, code: {system: s, code: x, display: X}, type: codeable, values: {yes: {system: s, code: y}}}\n"))
	f.Add([]byte(`{"forms":[{"form":"F","fields":[{"path":"a.b","code":{"system":"s","code":"c"},"type":"boolean","trueValue":"yes","falseValue":"no"}]}]}`))
	f.Add([]byte("forms:\n  - form: X\n    fields:\n      - {path: p, code: {system: s, code: c}, type: quantity, unit: kg}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMapping(data)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted mapping does not validate: %v", err)
		}
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseMapping(js)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", js, err)
		}
		js2, _ := json.Marshal(m2)
		if string(js) != string(js2) {
			t.Fatalf("round trip changed the mapping:\n%s\n%s", js, js2)
		}
		if _, err := New(Config{InstanceURL: testInstance, Mapping: m}); err != nil {
			t.Fatalf("New rejected a valid mapping: %v", err)
		}
	})
}
