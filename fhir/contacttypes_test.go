package fhir

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// configurableTypes is a configurable hierarchy as current CHT apps declare
// it in app_settings.contact_types (cht-core config/default/app_settings.json
// shape): area > household > person, with a CHW person type.
func configurableTypes(t *testing.T) cht.ContactTypes {
	t.Helper()
	types, err := cht.ParseContactTypes([]byte(`{"contact_types":[
		{"id":"c_area","parents":[]},
		{"id":"c_household","parents":["c_area"]},
		{"id":"c_person","person":true,"parents":["c_household","c_area"]},
		{"id":"c_chw","person":true,"parents":["c_area"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return types
}

// configurableConverter maps c_chw to Practitioner only and c_area to a
// Location and an Organization whose primary contact is the CHW.
func configurableConverter(t *testing.T, strategy WriteStrategy) *Converter {
	t.Helper()
	m, err := LoadMapping("testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m.Contacts = ContactsMapping{Types: []ContactTypeMapping{
		{Type: "c_chw", Resources: []string{"Practitioner"}},
		{Type: "c_area", Resources: []string{"Location", "Organization"}, PrimaryContact: "Practitioner"},
	}}
	return testConverter(t, Config{Mapping: m, ContactTypes: configurableTypes(t), Strategy: strategy})
}

func kinds(t *testing.T, tx *Transaction) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, e := range tx.Entries {
		rt := resourceType(t, e.Resource)
		var ids []models.Identifier
		switch r := e.Resource.(type) {
		case *models.Patient:
			ids = r.Identifier
		case *models.Practitioner:
			ids = r.Identifier
		case *models.Location:
			ids = r.Identifier
		case *models.Organization:
			ids = r.Identifier
		case *models.Encounter:
			ids = r.Identifier
		default:
			continue
		}
		id := identifierValue(ids, testInstance+"/medic")
		if id == "" {
			id = identifierValue(ids, testInstance+"/observation")
		}
		out[id] = append(out[id], rt)
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

func TestContactTypesResourceKinds(t *testing.T) {
	c := configurableConverter(t, WritePut)
	area := &cht.Contact{ID: "area1", Type: "contact", ContactType: "c_area", Name: "North",
		Contact: &cht.Contact{ID: "chw1", Type: "contact", ContactType: "c_chw", Name: "Chidi"}}
	hh := &cht.Contact{ID: "hh1", Type: "contact", ContactType: "c_household", Name: "Amina's household",
		Parent: &cht.Lineage{ID: "area1", Doc: area}}
	hhLineage := &cht.Lineage{ID: "hh1", Doc: hh, Parent: &cht.Lineage{ID: "area1", Doc: area}}
	tests := []struct {
		name string
		ct   *cht.Contact
		want map[string][]string
	}{
		{"person type is a Patient", &cht.Contact{ID: "p1", Type: "contact", ContactType: "c_person", Name: "Amina",
			Parent: hhLineage},
			map[string][]string{"p1": {"Patient"}, "hh1": {"Location"}, "area1": {"Location", "Organization"}, "chw1": {"Practitioner"}}},
		{"CHW type is a Practitioner only", &cht.Contact{ID: "chw1", Type: "contact", ContactType: "c_chw", Name: "Chidi"},
			map[string][]string{"chw1": {"Practitioner"}}},
		{"place type is a Location", hh,
			map[string][]string{"hh1": {"Location"}, "area1": {"Location", "Organization"}, "chw1": {"Practitioner"}}},
		// Without a mapping entry, a legacy person type is a Patient even with a CHW role.
		{"legacy person", &cht.Contact{ID: "p2", Type: "person", Name: "Old", Role: "chw"}, map[string][]string{"p2": {"Patient"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := c.ContactBundle(tt.ct)
			if err != nil {
				t.Fatal(err)
			}
			got := kinds(t, tx)
			if len(got) != len(tt.want) {
				t.Errorf("resources %v, want %v", got, tt.want)
			}
			for id, want := range tt.want {
				if !slices.Equal(got[id], want) {
					t.Errorf("%s became %v, want %v", id, got[id], want)
				}
			}
			checkBundleReferences(t, tx)
		})
	}
}

func TestContactTypeUnknown(t *testing.T) {
	c := configurableConverter(t, WritePut)
	for _, tt := range []struct {
		name  string
		ct    *cht.Contact
		field string
	}{
		{"configurable type not in settings", &cht.Contact{ID: "x", Type: "contact", ContactType: "c_clinic", Name: "X"}, "contact_type"},
		{"contact without contact_type", &cht.Contact{ID: "x", Type: "contact", Name: "X"}, "contact_type"},
		// The configurable hierarchy has no legacy types.
		{"legacy type", &cht.Contact{ID: "x", Type: "clinic", Name: "X"}, "type"},
		{"unknown ancestor", &cht.Contact{ID: "x", Type: "contact", ContactType: "c_person", Name: "X",
			Parent: &cht.Lineage{ID: "y", Doc: &cht.Contact{ID: "y", Type: "contact", ContactType: "c_region", Name: "R"}}}, "parent.contact_type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ContactBundle(tt.ct)
			var ce *ConversionError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("err = %v, want a ConversionError naming %s", err, tt.field)
			}
			if !errors.Is(err, cht.ErrUnknownContactType) {
				t.Errorf("err %v does not match cht.ErrUnknownContactType", err)
			}
		})
	}
	// The legacy hierarchy (zero Config.ContactTypes) does not guess either.
	legacy := testConverter(t, Config{})
	var p cht.Contact
	if err := json.Unmarshal([]byte(`{"_id":"p","type":"contact","contact_type":"c_person","name":"A"}`), &p); err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.ContactBundle(&p); err == nil || !strings.Contains(err.Error(), `"contact_type"`) {
		t.Errorf("c_person with the legacy hierarchy: err = %v, want one naming contact_type", err)
	}
}

func TestReportSubjectKinds(t *testing.T) {
	c := configurableConverter(t, WritePut)
	person := &cht.Contact{ID: "p1", Type: "contact", ContactType: "c_person", Name: "Amina"}
	chw := &cht.Contact{ID: "chw1", Type: "contact", ContactType: "c_chw", Name: "Chidi"}
	report := func(patient *cht.Contact, form string) *cht.Report {
		return &cht.Report{ID: "r1", Form: form, ReportedDate: 1730355950419, Contact: chw, Patient: patient,
			Fields: cht.Fields{"patient_uuid": "p1", "height": "120", "weight": "20", "delivery_date": "2024-10-30"}}
	}
	tx, err := c.ReportBundle(report(person, "HEIGHT_WEIGHT"))
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(t, tx)
	if !slices.Equal(got["p1"], []string{"Patient"}) || !slices.Equal(got["chw1"], []string{"Practitioner"}) {
		t.Errorf("resources %v", got)
	}
	checkBundleReferences(t, tx)
	for _, e := range tx.Entries {
		if o, ok := e.Resource.(*models.Observation); ok {
			if o.Subject == nil || o.Performer == nil {
				t.Fatalf("observation without subject or performer: %+v", o)
			}
		}
	}

	// A report about a contact mapped to Practitioner only is about her as
	// a Patient too.
	tx, err = c.ReportBundle(report(chw, "HEIGHT_WEIGHT"))
	if err != nil {
		t.Fatalf("report about a CHW: %v", err)
	}
	if got := slices.Sorted(slices.Values(kinds(t, tx)["chw1"])); !slices.Equal(got, []string{"Patient", "Practitioner"}) {
		t.Errorf("report about a CHW: she became %v", got)
	}
	checkBundleReferences(t, tx)
	var ce *ConversionError
	// No subject at all is an error too, unless the form is subjectless.
	r := report(nil, "HEIGHT_WEIGHT")
	delete(r.Fields, "patient_uuid")
	if _, err := c.ReportBundle(r); !errors.As(err, &ce) || ce.Field != "patient_id" {
		t.Fatalf("report without subject: err = %v, want a ConversionError naming patient_id", err)
	}
	m, _ := LoadMapping("testdata/mapping.yaml")
	for i := range m.Forms {
		m.Forms[i].Subjectless = m.Forms[i].Form == "HEIGHT_WEIGHT"
	}
	c2 := testConverter(t, Config{Mapping: m, ContactTypes: configurableTypes(t)})
	tx, err = c2.ReportBundle(r)
	if err != nil {
		t.Fatalf("subjectless form: %v", err)
	}
	for _, e := range tx.Entries {
		switch res := e.Resource.(type) {
		case *models.Observation:
			if res.Subject != nil {
				t.Errorf("subjectless Observation has subject %+v", res.Subject)
			}
		case *models.Encounter:
			if res.Subject != nil {
				t.Errorf("subjectless Encounter has subject %+v", res.Subject)
			}
		}
	}
}

// TestRolesMapping checks the legacy rule "persons with a CHW role are
// Practitioners" expressed in the mapping, and that a report about such a
// person makes her a Patient as well: the default mapping maps the roles
// the default person form offers (chw, chw_supervisor, nurse) to
// Practitioner only, and a report about one of them was refused, so CHT
// pushed it again for ever.
func TestRolesMapping(t *testing.T) {
	for _, tt := range []struct {
		name      string
		resources []string
	}{
		{"practitioner only", []string{"Practitioner"}},
		{"patient and practitioner", []string{"Patient", "Practitioner"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := LoadMapping("testdata/mapping.yaml")
			m.Contacts.Types = []ContactTypeMapping{{Type: "person", Roles: map[string][]string{"chw": tt.resources}}}
			c := testConverter(t, Config{Mapping: m})
			r := loadReport(t, "testdata/report_assessment_hydrated.json")
			p := *r.Patient
			p.Role = "chw"
			r.Patient = &p
			tx, err := c.ReportBundle(r)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(slices.Values(kinds(t, tx)[p.ID])); !slices.Equal(got, []string{"Patient", "Practitioner"}) {
				t.Errorf("subject became %v", got)
			}
			checkBundleReferences(t, tx)
			fast, err := c.appendReportBundle(nil, r)
			if err != nil {
				t.Fatal(err)
			}
			if slow, _ := tx.MarshalJSON(); string(fast) != string(slow) {
				t.Error("appendReportBundle differs from ReportBundle")
			}
		})
	}
}

func TestContactsMappingInvalid(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"unknown resource", `contacts: {types: [{type: a, resources: [Device]}]}` + "\nforms: []", `"Device" is not one of`},
		{"mixed", `contacts: {types: [{type: a, resources: [Patient, Location]}]}` + "\nforms: []", "mix person"},
		{"twice", `contacts: {types: [{type: a}, {type: a}]}` + "\nforms: []", "listed twice"},
		{"role to place", `contacts: {types: [{type: a, roles: {chw: [Location]}}]}` + "\nforms: []", "roles map persons"},
		{"bad primary contact", `contacts: {types: [{type: a, primaryContact: Patient}]}` + "\nforms: []", "want Practitioner"},
		{"bad lenient", `contacts: {lenient: [_id]}` + "\nforms: []", "not a contact field that can be lenient"},
		{"min on string", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}, type: string, min: 1}]}]`, "min and max are only allowed"},
		{"min above max", `forms: [{form: F, fields: [{path: a, code: {system: s, code: c}, type: integer, min: 5, max: 1}]}]`, "min is greater than max"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// A mapping that contradicts the app's hierarchy is rejected by New.
	m, _ := ParseMapping([]byte("contacts: {types: [{type: c_person, resources: [Location]}]}\nforms: []"))
	if _, err := New(Config{InstanceURL: testInstance, Mapping: m, ContactTypes: configurableTypes(t)}); err == nil ||
		!strings.Contains(err.Error(), "c_person is a person type of the app") {
		t.Errorf("New: err = %v, want a contradiction with the app's hierarchy", err)
	}
}

// TestCHWWithoutRole: CHT's demo data has CHWs with no role, the primary
// contacts of their areas (config/default/csv: person.health_center.csv
// has no role column, place.health_center.csv names them the contacts),
// and the users API creates such people too. The area's plan makes her a
// Practitioner; she is one however her document is reached, never also a
// Patient of her own, nor her own generalPractitioner.
func TestCHWWithoutRole(t *testing.T) {
	c := testConverter(t, Config{Mapping: DefaultMapping()})
	chw := loadContact(t, "testdata/person_with_lineage.json")
	chw.Role = ""
	mary := loadContact(t, "testdata/person_in_household.json")

	tx, err := c.ContactBundle(chw)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(t, tx)[chw.ID]; !slices.Equal(got, []string{"Practitioner"}) {
		t.Errorf("her own bundle: she became %v", got)
	}

	r := loadReport(t, "testdata/report_assessment_hydrated.json")
	r.Contact, r.Patient = chw, mary
	r.Fields["patient_uuid"] = mary.ID
	tx, err = c.ReportBundle(r)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(t, tx)
	if !slices.Equal(got[chw.ID], []string{"Practitioner"}) || !slices.Equal(got[mary.ID], []string{"Patient"}) {
		t.Errorf("report she submitted: resources %v", got)
	}
	checkBundleReferences(t, tx)
	practitioner := ""
	for _, e := range tx.Entries {
		if _, ok := e.Resource.(*models.Practitioner); ok && strings.Contains(string(mustJSON(t, e.Resource)), chw.ID) {
			practitioner = e.FullURL
		}
	}
	for _, e := range tx.Entries {
		switch res := e.Resource.(type) {
		case *models.Observation:
			if len(res.Performer) != 1 || res.Performer[0].Reference == nil || *res.Performer[0].Reference != practitioner {
				t.Fatalf("performer %+v, want her Practitioner %s", res.Performer, practitioner)
			}
		case *models.Encounter:
			if len(res.Participant) == 0 || res.Participant[0].Individual.Reference == nil || *res.Participant[0].Individual.Reference != practitioner {
				t.Errorf("participant %+v, want her Practitioner %s", res.Participant, practitioner)
			}
		case *models.Patient:
			if len(res.GeneralPractitioner) != 1 || *res.GeneralPractitioner[0].Reference != practitioner {
				t.Errorf("Mary's generalPractitioner %+v, want the CHW %s", res.GeneralPractitioner, practitioner)
			}
		}
	}

	// A report about her makes her a Patient too, with no
	// generalPractitioner: she is the CHW of her own area.
	r.Patient = chw
	r.Fields["patient_uuid"] = chw.ID
	tx, err = c.ReportBundle(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tx.Entries {
		if p, ok := e.Resource.(*models.Patient); ok && p.GeneralPractitioner != nil {
			t.Errorf("her Patient has generalPractitioner %+v", p.GeneralPractitioner)
		}
	}
	if got := slices.Sorted(slices.Values(kinds(t, tx)[chw.ID])); !slices.Equal(got, []string{"Patient", "Practitioner"}) {
		t.Errorf("report about her: she became %v", got)
	}
	// The push handler's direct path writes the same bytes.
	fast, err := c.appendReportBundle(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	if slow, _ := tx.MarshalJSON(); string(fast) != string(slow) {
		t.Error("appendReportBundle differs from ReportBundle")
	}
}
