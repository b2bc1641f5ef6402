package fhir

import (
	"bytes"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// appendPatientJSON writes the Patient of the person ct the way the push
// handler writes it inside a contact Bundle (the direct writer of
// contactwrite.go), as a resource of its own: the bytes Marshal writes for
// the Patient ContactBundle builds (TestPatientDirectEqualsMarshal). It
// is what BenchmarkPersonPatientDirect measures.
func appendPatientJSON(b []byte, c *Converter, ct *cht.Contact) ([]byte, error) {
	p := newPlan(c)
	defer p.st.release() // as the push handler once the bundle is written
	d, _, err := p.check(ct)
	if err != nil {
		return b, err
	}
	dr := directRes{kind: dPatient, c: c, x: p.x, doc: d}
	b = append(b, '{')
	if id := c.id(p.x, "Patient", d.ID); id != nil {
		b = append(b, `"id":`...)
		b = appendString(b, *id)
		b = append(b, ',')
	}
	b = dr.appendContact(b)
	return append(b, `,"resourceType":"Patient"}`...), nil
}

// TestPatientDirectEqualsMarshal: the benchmark's direct Patient equals
// Marshal of the samply Patient for the person fixtures, with the
// configurable hierarchy of their app and the legacy one, under every
// write strategy; references to the lineage's organization and CHW are
// among them.
func TestPatientDirectEqualsMarshal(t *testing.T) {
	types, err := cht.ParseContactTypes(readFile(t, "../cht/testdata/app_settings_configurable.json"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"../cht/testdata/person_hydrated.json", "../cht/testdata/person_configurable.json",
		"../cht/testdata/person_with_lineage.json", "testdata/person_configurable.json",
		"testdata/person_openmrs_example.json", "testdata/person_with_lineage.json", "testdata/person_in_household.json"}
	converted := map[string]bool{}
	var refs int
	for _, cfg := range []Config{{ContactTypes: types}, {}} {
		for _, strategy := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
			cfg.Strategy = strategy
			c := testConverter(t, cfg)
			for _, file := range files {
				var ct cht.Contact
				if err := ct.UnmarshalJSON(readFile(t, file)); err != nil {
					t.Fatal(err)
				}
				pt, err := c.Patient(&ct)
				if err != nil {
					continue // a contact type this hierarchy does not declare
				}
				want, err := Marshal(pt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := appendPatientJSON(nil, c, &ct)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("strategy %v, %s:\n got %s\nwant %s", strategy, file, got, want)
				}
				converted[file] = true
				if bytes.Contains(got, []byte(`"managingOrganization"`)) && bytes.Contains(got, []byte(`"generalPractitioner"`)) {
					refs++
				}
			}
		}
	}
	if len(converted) != len(files) || refs == 0 {
		t.Errorf("converted %d of %d fixtures, %d with lineage references: the test lost its inputs", len(converted), len(files), refs)
	}
}
