package fhirtest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

func TestCompareJSON(t *testing.T) {
	tests := []struct {
		name, got, want, wantErr string
	}{
		{"equal, other key order", `{"b":1,"a":[true,"x"]}`, `{"a":[true,"x"],"b":1}`, ""},
		{"server fields ignored", `{"resourceType":"Patient","id":"x","meta":{"versionId":"2","lastUpdated":"2024-01-01T00:00:00.000Z"}}`,
			`{"resourceType":"Patient"}`, ""},
		{"meta tag kept", `{"resourceType":"Patient","meta":{"versionId":"2","tag":[{"code":"cht"}]}}`,
			`{"resourceType":"Patient"}`, "Patient.meta: unexpected element an object"},
		{"id compared when wanted", `{"resourceType":"Patient","id":"x"}`, `{"resourceType":"Patient","id":"y"}`, `Patient.id: got "x", want "y"`},
		{"decimal precision", `{"resourceType":"Observation","valueQuantity":{"value":62.4}}`,
			`{"resourceType":"Observation","valueQuantity":{"value":62.40}}`, "Observation.valueQuantity.value: got 62.4, want 62.40"},
		{"missing", `{"resourceType":"Patient"}`, `{"resourceType":"Patient","active":true}`, "Patient.active: missing, want true"},
		{"extra", `{"resourceType":"Patient","active":true}`, `{"resourceType":"Patient"}`, "Patient.active: unexpected element true"},
		{"array length", `{"a":[1]}`, `{"a":[1,2]}`, "$.a: got 1 elements, want 2"},
		{"array element", `{"a":[{"b":1}]}`, `{"a":[{"b":2}]}`, "$.a[0].b: got 1, want 2"},
		{"type", `{"a":"1"}`, `{"a":{}}`, `$.a: got "1", want an object`},
		{"invalid got", `{`, `{}`, "fhirtest: decoding got"},
		{"trailing want", `{}`, `{} 1`, "fhirtest: decoding want"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fhirtest.CompareJSON(strings.NewReader(tt.got), strings.NewReader(tt.want))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestSearchMethod(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	loadFixtures(t, srv, "testdata/search-fixtures.json")
	got, err := srv.Search("Observation", "patient=pa&_count=1")
	if err != nil || len(got) != 2 {
		t.Fatalf("Search = %d resources, %v; want 2 (ignoring _count)", len(got), err)
	}
	if err := fhirtest.CompareJSON(strings.NewReader(string(got[0])),
		strings.NewReader(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"w"},"subject":{"reference":"Patient/pa"},"encounter":{"reference":"Encounter/e1"}}`)); err != nil {
		t.Error(err)
	}
	if _, err := srv.Search("Patient", "name=x"); err == nil || !strings.Contains(err.Error(), "unsupported search parameter name") {
		t.Errorf("unsupported parameter: %v", err)
	}
	if _, err := srv.Search("Patient", "%zz"); err == nil {
		t.Error("malformed query accepted")
	}
	// The same store answers HTTP.
	if r := mustDo(t, c, http.MethodGet, "/Observation?patient=pa", nil); r.body["total"] != float64(2) {
		t.Errorf("HTTP total %v", r.body["total"])
	}
}
