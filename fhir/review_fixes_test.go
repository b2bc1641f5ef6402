package fhir

import (
	"strings"
	"testing"

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
