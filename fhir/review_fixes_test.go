package fhir

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// TestReportSubjectWithPractitionerRole checks that a report about a person
// whose role is a practitioner role (a CHW reporting about themself or a
// nurse as patient) still creates the Patient its Encounter and Observations
// reference.
func TestReportSubjectWithPractitionerRole(t *testing.T) {
	for _, role := range []string{"chw", "nurse"} {
		t.Run(role, func(t *testing.T) {
			c := testConverter(t, Config{})
			r := loadReport(t, "testdata/report_assessment_hydrated.json")
			p := *r.Patient
			p.Role = role
			r.Patient = &p
			tx, err := c.ReportBundle(r)
			if err != nil {
				t.Fatal(err)
			}
			full := map[string]string{}
			for _, e := range tx.Entries {
				full[e.FullURL] = resourceType(t, e.Resource)
			}
			var enc *models.Encounter
			for _, e := range tx.Entries {
				if x, ok := e.Resource.(*models.Encounter); ok {
					enc = x
				}
			}
			if enc == nil || enc.Subject == nil || enc.Subject.Reference == nil {
				t.Fatal("no Encounter subject")
			}
			ref := *enc.Subject.Reference
			if !strings.HasPrefix(ref, "urn:uuid:") || full[ref] != "Patient" {
				t.Errorf("Encounter.subject %s does not resolve to a Patient in the bundle (%v)", ref, full)
			}
			checkBundleReferences(t, tx)
			fast, err := c.AppendReportBundle(nil, r)
			if err != nil {
				t.Fatal(err)
			}
			slow, _ := tx.MarshalJSON()
			if string(fast) != string(slow) {
				t.Error("AppendReportBundle differs from ReportBundle")
			}
		})
	}
}

// TestLocationWithoutContactType checks that a configurable-hierarchy place
// without contact_type gets no empty type element (ele-1).
func TestLocationWithoutContactType(t *testing.T) {
	c := testConverter(t, Config{})
	var p cht.Place
	if err := json.Unmarshal([]byte(`{"_id":"pl","type":"contact","name":"X"}`), &p); err != nil {
		t.Fatal(err)
	}
	l, err := c.Location(&p)
	if err != nil {
		t.Fatal(err)
	}
	if l.Type != nil {
		t.Errorf("Location.type = %+v, want none", l.Type)
	}
	b, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(`"type":[`)) || bytes.Contains(b, []byte(`""`)) {
		t.Errorf("Location JSON has an empty type: %s", b)
	}
}
