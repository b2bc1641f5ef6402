package validation

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

const testdata = "../../testdata"

// output is one resource produced by a converter.
type output struct {
	name string
	json []byte
}

func converter(t *testing.T, strategy fhir.WriteStrategy) *fhir.Converter {
	t.Helper()
	m, err := fhir.LoadMapping(filepath.Join(testdata, "mapping.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: m, Strategy: strategy})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func load(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func marshal(t *testing.T, name string, res any) output {
	t.Helper()
	b, err := fhir.Marshal(res)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return output{name: name, json: b}
}

// outputs converts every fixture with every converter and strategy.
func outputs(t *testing.T) []output {
	t.Helper()
	var out []output
	reports := []string{"report_assessment_hydrated.json", "report_records_api.json", "report_ltfu.json"}
	contacts := []string{"person_with_lineage.json", "person_configurable.json", "person_openmrs_example.json",
		"place_clinic.json", "place_health_center.json"}
	for _, strat := range []fhir.WriteStrategy{fhir.WritePut, fhir.WriteConditionalUpdate, fhir.WriteConditionalCreate} {
		c := converter(t, strat)
		add := func(name string, tx *fhir.Transaction, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out = append(out, marshal(t, name+" bundle", tx))
			for i, e := range tx.Entries {
				out = append(out, marshal(t, fmt.Sprintf("%s entry %d", name, i), e.Resource))
			}
		}
		for _, f := range reports {
			var r cht.Report
			load(t, f, &r)
			tx, err := c.ReportBundle(&r)
			add(strat.String()+" "+f, tx, err)
			// The same report filled in with a position and sent by SMS.
			lat, lon, alt := -1.2921, 36.8219, 1795.0
			r.Geolocation = &cht.Geolocation{Latitude: &lat, Longitude: &lon, Altitude: &alt}
			r.From = "+254700000001"
			tx, err = c.ReportBundle(&r)
			add(strat.String()+" "+f+" with geolocation and sender", tx, err)
		}
		for _, f := range contacts {
			var ct cht.Contact
			load(t, f, &ct)
			tx, err := c.ContactBundle(&ct)
			add(strat.String()+" "+f, tx, err)
		}
		for _, f := range []string{"encounter-20obs.json", "../../cht/testdata/outbound_encounter.json"} {
			b, err := os.ReadFile(filepath.Join(testdata, f))
			if err != nil {
				t.Fatal(err)
			}
			p, err := fhir.DecodeEncounterPayload(b)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := c.ConvertPayload(p)
			add(strat.String()+" "+f, tx, err)
		}
		// Every value kind, from a report of the DELIVERY form.
		r := &cht.Report{ID: "delivery-1", Form: "DELIVERY", ReportedDate: 1730355950419, PlaceID: "hh-1", Fields: cht.Fields{
			"patient_uuid": "p1", "delivery_date": "2024-10-30", "labour_onset": "2024-10-29T22:15:00.000+03:00",
			"birth_time": "04:30", "blood_loss_litres": json.Number("0.50"), "baby_weight": "3200"}}
		tx, err := c.ReportBundle(r)
		add(strat.String()+" delivery", tx, err)
	}
	// OperationOutcomes for errors.
	c := converter(t, fhir.WritePut)
	_, err := c.ReportBundle(&cht.Report{ID: "x", Form: "HEIGHT_WEIGHT", Fields: cht.Fields{"patient_uuid": "p", "height": "tall"}})
	out = append(out, marshal(t, "outcome conversion error", fhir.OutcomeFromError(err)))
	_, err = fhir.ParseResource([]byte(`{"resourceType":"Observation","code":{"text":""}}`))
	out = append(out, marshal(t, "outcome invalid resource", fhir.OutcomeFromError(err)))
	out = append(out, marshal(t, "outcome ok", fhir.NewOperationOutcome()))
	out = append(out, marshal(t, "outcome unmapped", fhir.OutcomeFromError(fmt.Errorf("x: %w", fhir.ErrUnmappedForm))))
	return out
}

func TestConverterOutputsValidate(t *testing.T) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	outs := outputs(t)
	if len(outs) < 250 {
		t.Fatalf("only %d outputs generated", len(outs))
	}
	kinds := map[string]int{}
	for _, o := range outs {
		var tree map[string]any
		if err := json.Unmarshal(o.json, &tree); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		rt, _ := tree["resourceType"].(string)
		kinds[rt]++
		if _, oo, err := u.UnmarshalWithOutcome(o.json); err != nil {
			t.Errorf("%s: google/fhir: %v\n%s", o.name, err, o.json)
		} else if oo != nil && len(oo.R4Outcome.GetIssue()) > 0 {
			t.Errorf("%s: google/fhir validation: %v\n%s", o.name, oo.R4Outcome.GetIssue(), o.json)
		}
		for _, msg := range invariants(tree, rt) {
			t.Errorf("%s: %s", o.name, msg)
		}
	}
	for _, rt := range []string{"Patient", "Practitioner", "Location", "Organization", "Encounter", "Observation", "Bundle", "OperationOutcome"} {
		if kinds[rt] == 0 {
			t.Errorf("no %s validated", rt)
		}
	}
	t.Logf("validated %d resources: %v", len(outs), kinds)
}

// invariants checks ele-1 (every element has a value or children: no
// null, empty string, object or array), obs-6 (dataAbsentReason only
// without value[x]) and qty-3 (a Quantity with a code has a system)
// everywhere in the tree, including resources inside Bundle entries, and
// value[x] exclusivity.
func invariants(v any, path string) []string {
	var out []string
	switch v := v.(type) {
	case nil:
		out = append(out, path+": ele-1 null")
	case string:
		if strings.TrimSpace(v) == "" {
			out = append(out, path+": ele-1 empty string")
		}
	case map[string]any:
		if len(v) == 0 {
			out = append(out, path+": ele-1 empty object")
		}
		if v["resourceType"] == "Observation" {
			values := 0
			for k := range v {
				if strings.HasPrefix(k, "value") {
					values++
				}
			}
			if _, ok := v["dataAbsentReason"]; ok && values > 0 {
				out = append(out, path+": obs-6 dataAbsentReason with a value")
			}
			if values > 1 {
				out = append(out, path+": more than one value[x]")
			}
			if values == 0 {
				if _, ok := v["dataAbsentReason"]; !ok {
					out = append(out, path+": Observation without value[x] or dataAbsentReason")
				}
			}
		}
		if _, isNum := v["value"].(float64); isNum {
			if _, hasCode := v["code"]; hasCode {
				if _, hasSys := v["system"]; !hasSys {
					out = append(out, path+": qty-3 Quantity code without system")
				}
			}
		}
		for k, c := range v {
			out = append(out, invariants(c, path+"."+k)...)
		}
	case []any:
		if len(v) == 0 {
			out = append(out, path+": ele-1 empty array")
		}
		for i, c := range v {
			out = append(out, invariants(c, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

// TestValidatorCatchesBadOutput makes sure the checks above can fail: each
// broken resource must be rejected by at least one of them.
func TestValidatorCatchesBadOutput(t *testing.T) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]any{
		"zero Observation (status registered, code {})": &models.Observation{},
		"zero Encounter (class {})":                     &models.Encounter{},
		"OperationOutcome with null issue":              &models.OperationOutcome{},
		"qty-3": &models.Observation{Status: models.ObservationStatusFinal, Code: models.CodeableConcept{Text: ptr("x")},
			ValueQuantity: &models.Quantity{Value: ptr(json.Number("1")), Code: ptr("kg")}},
		"obs-6": &models.Observation{Status: models.ObservationStatusFinal, Code: models.CodeableConcept{Text: ptr("x")},
			ValueString: ptr("a"), DataAbsentReason: &models.CodeableConcept{Text: ptr("unknown")}},
		"bad date":     &models.Patient{BirthDate: ptr("2020-13-45")},
		"two deceased": &models.Patient{DeceasedBoolean: ptr(true), DeceasedDateTime: ptr("2020-01-01")},
	}
	for name, res := range bad {
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		var tree map[string]any
		if err := json.Unmarshal(b, &tree); err != nil {
			t.Fatal(err)
		}
		rt, _ := tree["resourceType"].(string)
		caught := len(invariants(tree, rt)) > 0
		if _, oo, err := u.UnmarshalWithOutcome(b); err != nil || (oo != nil && len(oo.R4Outcome.GetIssue()) > 0) {
			caught = true
		}
		if !caught {
			t.Errorf("%s: not caught: %s", name, b)
		}
	}
	if !errors.Is(fmt.Errorf("w: %w", fhir.ErrUnmappedForm), fhir.ErrUnmappedForm) {
		t.Fatal("errors.Is broken")
	}
}

func ptr[T any](v T) *T { return &v }

// TestInvariantsEle1 pins the ele-1 half of invariants, which the
// validations above rely on for what google/fhir lets through.
func TestInvariantsEle1(t *testing.T) {
	tests := []struct{ json, want string }{
		{`{"resourceType":"Patient","gender":"male"}`, ""},
		{`{"resourceType":"Patient","gender":null}`, "Patient.gender: ele-1 null"},
		{`{"resourceType":"Patient","name":[{"text":" "}]}`, "Patient.name[0].text: ele-1 empty string"},
		{`{"resourceType":"Patient","name":[{}]}`, "Patient.name[0]: ele-1 empty object"},
		{`{"resourceType":"Patient","identifier":[]}`, "Patient.identifier: ele-1 empty array"},
	}
	for _, tt := range tests {
		var tree map[string]any
		if err := json.Unmarshal([]byte(tt.json), &tree); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(invariants(tree, "Patient"), "; ")
		if got != tt.want {
			t.Errorf("invariants(%s) = %q, want %q", tt.json, got, tt.want)
		}
	}
}
