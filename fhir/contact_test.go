package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

func TestPatientFromPersonWithLineage(t *testing.T) {
	c := testConverter(t, Config{})
	r := loadReport(t, "testdata/report_assessment_hydrated.json")
	p, err := c.Patient(r.Patient)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *p.Id, c.ID("Patient", "75905106a4bc2a9046ed28df070016ce"); got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
	wantIDs := map[string]string{
		testInstance + "/medic":       "75905106a4bc2a9046ed28df070016ce",
		testInstance + "/patient_id":  "13985",
		testInstance + "/external_id": "UPI-0042",
	}
	if len(p.Identifier) != len(wantIDs) {
		t.Errorf("identifiers = %d, want %d", len(p.Identifier), len(wantIDs))
	}
	for _, id := range p.Identifier {
		if wantIDs[*id.System] != *id.Value {
			t.Errorf("identifier %s|%s unexpected", *id.System, *id.Value)
		}
	}
	n := p.Name[0]
	if *n.Text != "John Test" || n.Family != nil || n.Given != nil {
		t.Errorf("name = %+v, want text only (the default NameTextOnly)", n)
	}
	if p.Gender == nil || *p.Gender != models.AdministrativeGenderMale {
		t.Errorf("gender = %v", p.Gender)
	}
	if *p.BirthDate != "1980-06-06" {
		t.Errorf("birthDate = %s", *p.BirthDate)
	}
	if *p.Telecom[0].System != models.ContactPointSystemPhone || *p.Telecom[0].Value != "+2548277217095" {
		t.Errorf("telecom = %+v", p.Telecom)
	}
	if got, want := *p.ManagingOrganization.Reference, "Organization/"+c.ID("Organization", "d9153705-4574-43c3-b945-71aa2164d1d6"); got != want {
		t.Errorf("managingOrganization = %s, want %s (nearest organization in the lineage)", got, want)
	}
	if got, want := *p.GeneralPractitioner[0].Reference, "Practitioner/"+c.ID("Practitioner", "f512e1d8-841b-4bc1-8154-b6794755f45b"); got != want {
		t.Errorf("generalPractitioner = %s, want %s (the health centre's CHW)", got, want)
	}
	if !c.IsFromCHT(p.Meta) {
		t.Error("meta.tag does not mark CHT as the source")
	}
	if p.DeceasedBoolean != nil || p.DeceasedDateTime != nil {
		t.Error("deceased set for a living person")
	}
}

func TestPatientFields(t *testing.T) {
	c := testConverter(t, Config{})
	tests := []struct {
		name  string
		p     cht.Contact
		check func(t *testing.T, p *models.Patient)
	}{
		{"gender female", cht.Contact{Sex: "Female"}, func(t *testing.T, p *models.Patient) {
			if *p.Gender != models.AdministrativeGenderFemale {
				t.Errorf("gender %v", *p.Gender)
			}
		}},
		{"gender unknown", cht.Contact{Sex: "unknown"}, func(t *testing.T, p *models.Patient) {
			if *p.Gender != models.AdministrativeGenderUnknown {
				t.Errorf("gender %v", *p.Gender)
			}
		}},
		{"gender absent", cht.Contact{}, func(t *testing.T, p *models.Patient) {
			if p.Gender != nil {
				t.Errorf("gender %v", *p.Gender)
			}
		}},
		{"birthDate datetime", cht.Contact{DateOfBirth: "1990-02-03T00:00:00.000Z"}, func(t *testing.T, p *models.Patient) {
			if p.BirthDate == nil || *p.BirthDate != "1990-02-03" {
				t.Errorf("birthDate %v", p.BirthDate)
			}
		}},
		{"birthDate year", cht.Contact{DateOfBirth: "1990"}, func(t *testing.T, p *models.Patient) {
			if p.BirthDate == nil || *p.BirthDate != "1990" {
				t.Errorf("birthDate %v", p.BirthDate)
			}
		}},
		{"deceased date", cht.Contact{DateOfDeath: "2024-01-02"}, func(t *testing.T, p *models.Patient) {
			if p.DeceasedDateTime == nil || *p.DeceasedDateTime != "2024-01-02" || p.DeceasedBoolean != nil {
				t.Errorf("deceased %v %v", p.DeceasedDateTime, p.DeceasedBoolean)
			}
		}},
		{"single word name", cht.Contact{Name: "  Madonna "}, func(t *testing.T, p *models.Patient) {
			if *p.Name[0].Text != "  Madonna " || p.Name[0].Family != nil || p.Name[0].Given != nil {
				t.Errorf("name %+v", p.Name[0])
			}
		}},
		{"no name", cht.Contact{}, func(t *testing.T, p *models.Patient) {
			if p.Name != nil {
				t.Errorf("name %+v", p.Name)
			}
		}},
		{"two phones", cht.Contact{Phone: "+1", PhoneAlternate: "+2"}, func(t *testing.T, p *models.Patient) {
			if len(p.Telecom) != 2 || *p.Telecom[1].Value != "+2" || *p.Telecom[1].Rank != 2 {
				t.Errorf("telecom %+v", p.Telecom)
			}
		}},
		{"minified lineage", cht.Contact{Parent: cht.NewLineage("a", "b")}, func(t *testing.T, p *models.Patient) {
			if p.ManagingOrganization != nil || p.GeneralPractitioner != nil {
				t.Error("references invented from a minified lineage")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.ID, tt.p.Type = "p1", "person"
			p, err := c.Patient(&tt.p)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

func TestNameSplit(t *testing.T) {
	for _, tt := range []struct {
		split         NameSplit
		name          string
		family, given string // "" and "": text only
	}{
		{NameTextOnly, "Grace  Wanjiru Achieng", "", ""},
		{NameFamilyLast, "Grace  Wanjiru Achieng", "Achieng", "Grace Wanjiru"},
		{NameFamilyFirst, "Grace  Wanjiru Achieng", "Grace", "Wanjiru Achieng"},
		{NameFamilyLast, "Zoë Ngũgĩ", "Ngũgĩ", "Zoë"},
		// Names that a word split would mangle are kept in text only.
		{NameFamilyLast, "Zoë Ngũgĩ wa Kamau", "", ""},
		{NameFamilyFirst, "Zoë Ngũgĩ wa Kamau", "", ""},
		{NameFamilyLast, "Baby of Amina", "", ""},
		{NameFamilyLast, "Amina", "", ""},
		{NameFamilyLast, "  Ólafur  Ragnar ", "Ragnar", "Ólafur"},
	} {
		c := testConverter(t, Config{NameSplit: tt.split})
		p, err := c.Patient(&cht.Contact{ID: "x", Type: "person", Name: tt.name})
		if err != nil {
			t.Fatal(err)
		}
		n := p.Name[0]
		fam := ""
		if n.Family != nil {
			fam = *n.Family
		}
		// text is always the CHT name exactly as stored.
		if *n.Text != tt.name || fam != tt.family || strings.Join(n.Given, " ") != tt.given {
			t.Errorf("split %d of %q: text %q family %q given %q, want family %q given %q", tt.split, tt.name, *n.Text, fam, n.Given, tt.family, tt.given)
		}
	}
}

func TestContactErrors(t *testing.T) {
	c := testConverter(t, Config{})
	tests := []struct {
		name  string
		conv  func() error
		field string
	}{
		{"no id", func() error { _, err := c.Patient(&cht.Contact{Type: "person"}); return err }, "_id"},
		{"nil", func() error { _, err := c.Patient(nil); return err }, "_id"},
		{"place as patient", func() error { _, err := c.Patient(&cht.Contact{ID: "x", Type: "clinic"}); return err }, "type"},
		{"person as location", func() error { _, err := c.Location(&cht.Contact{ID: "x", Type: "person"}); return err }, "type"},
		{"not a contact", func() error { _, err := c.Organization(&cht.Contact{ID: "x", Type: "data_record"}); return err }, "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.conv()
			var ce *ConversionError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *ConversionError", err)
			}
			if ce.Field != tt.field || ce.Reason == "" {
				t.Errorf("field %q reason %q, want field %q", ce.Field, ce.Reason, tt.field)
			}
		})
	}
}

func TestConfigurablePersonType(t *testing.T) {
	c := testConverter(t, Config{})
	p := loadContact(t, "testdata/person_configurable.json")
	if _, err := c.Patient(p); err != nil {
		t.Fatalf("contact_type person: %v", err)
	}
	p.ContactType = "chw_person"
	_, err := c.Patient(p)
	var ce *ConversionError
	if !errors.As(err, &ce) || ce.Field != "contact_type" || !errors.Is(err, cht.ErrUnknownContactType) {
		t.Fatalf("chw_person with the legacy hierarchy: err = %v, want a ConversionError naming contact_type", err)
	}
	types, err := cht.ParseContactTypes([]byte(`{"contact_types": [{"id": "hh"}, {"id": "chw_person", "person": true, "parents": ["hh"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	c2 := testConverter(t, Config{ContactTypes: types})
	if _, err := c2.Patient(p); err != nil {
		t.Fatalf("with chw_person in the contact types: %v", err)
	}
}

func TestLocationAndOrganization(t *testing.T) {
	c := testConverter(t, Config{})
	hc := loadContact(t, "testdata/place_health_center.json")
	loc, err := c.Location(hc)
	if err != nil {
		t.Fatal(err)
	}
	if *loc.Name != "Example Health Center" || *loc.Status != models.LocationStatusActive {
		t.Errorf("location %+v", loc)
	}
	if got := *loc.Type[0].Coding[0].Code; got != "health_center" {
		t.Errorf("type = %s", got)
	}
	if got, want := *loc.PartOf.Reference, "Location/"+c.ID("Location", "b935ef10-0339-4263-99fc-34d4f8d72891"); got != want {
		t.Errorf("partOf = %s, want %s", got, want)
	}
	if got, want := *loc.ManagingOrganization.Reference, "Organization/"+c.ID("Organization", hc.ID); got != want {
		t.Errorf("managingOrganization = %s, want its own Organization %s", got, want)
	}
	if v := identifierValue(loc.Identifier, testInstance+"/place_id"); v != "17437" {
		t.Errorf("place_id identifier = %q", v)
	}
	org, err := c.Organization(hc)
	if err != nil {
		t.Fatal(err)
	}
	if *org.Name != "Example Health Center" || !*org.Active || org.PartOf != nil {
		t.Errorf("organization %+v (partOf needs a hydrated ancestor)", org)
	}
	clinic := loadContact(t, "testdata/place_clinic.json")
	cl, err := c.Location(clinic)
	if err != nil {
		t.Fatal(err)
	}
	if cl.ManagingOrganization != nil {
		t.Error("clinic with a minified lineage got a managingOrganization")
	}
	for _, id := range cl.Identifier {
		if *id.System == testInstance+"/external_id" {
			t.Error("empty external_id produced an identifier")
		}
	}
}

func TestContactBundle(t *testing.T) {
	c := testConverter(t, Config{})
	chw := loadContact(t, "testdata/person_with_lineage.json")
	tx, err := c.ContactBundle(chw)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range tx.Entries {
		got[resourceType(t, e.Resource)]++
	}
	// role chw -> Practitioner; health centre and district hospital ->
	// Location + Organization each; the supervisor is the district
	// hospital's contact, not a CHW place contact.
	want := map[string]int{"Practitioner": 1, "Location": 2, "Organization": 2}
	if len(got) != len(want) {
		t.Errorf("resources %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("resources %v, want %v", got, want)
		}
	}
	checkBundleReferences(t, tx)
}

func resourceType(t *testing.T, res any) string {
	t.Helper()
	b, err := Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ ResourceType string }
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v.ResourceType
}

// checkBundleReferences requires every urn:uuid reference to resolve to an
// entry of the bundle and every fullUrl to be unique.
func checkBundleReferences(t *testing.T, tx *Transaction) {
	t.Helper()
	b, err := tx.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	full := map[string]bool{}
	for _, e := range tx.Entries {
		if full[e.FullURL] {
			t.Errorf("duplicate fullUrl %s", e.FullURL)
		}
		full[e.FullURL] = true
	}
	for _, part := range strings.Split(string(b), `"reference":"`)[1:] {
		ref := part[:strings.IndexByte(part, '"')]
		if strings.HasPrefix(ref, "urn:uuid:") && !full[ref] {
			t.Errorf("reference %s does not resolve inside the bundle", ref)
		}
	}
}

// TestPlainDate: plainDate accepts exactly the dates time.Parse with
// layout 2006-01-02 accepts (from year 1000), for every month and day
// field of leap, common and century years, and for random strings of ten
// bytes, and refuses what is not a date.
func TestPlainDate(t *testing.T) {
	accepted := 0
	for _, year := range []string{"1000", "1600", "1900", "2000", "2023", "2024", "2100", "9999", "0999", "0000"} {
		for m := range 100 {
			for d := range 100 {
				s := fmt.Sprintf("%s-%02d-%02d", year, m, d)
				_, err := time.Parse("2006-01-02", s)
				want := err == nil && s[0] != '0'
				if got := plainDate(s); got != want {
					t.Fatalf("plainDate(%q) = %v, want %v", s, got, want)
				}
				if want {
					accepted++
				}
			}
		}
	}
	for _, s := range []string{"", "2024-01-1", "2024-01-011", "2024/01/01", "2024-0a-01", "+024-01-01", "2024-01-0 ", " 2024-01-01"[:10], "2024-1-01x"} {
		if plainDate(s) {
			t.Errorf("plainDate(%q) = true", s)
		}
	}
	// Any other string of ten bytes: the same answer as time.Parse.
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "0123456789-+ /a\x00\xff"
	b := make([]byte, 10)
	for range 200_000 {
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
			if r.IntN(3) > 0 { // mostly the shape of a date
				b[i] = "2024-02-29"[i]
			}
		}
		s := string(b)
		_, err := time.Parse("2006-01-02", s)
		if want := err == nil && s[0] != '0'; plainDate(s) != want {
			t.Fatalf("plainDate(%q) = %v, want %v", s, !want, want)
		}
	}
	if accepted != 8*365+3*1 {
		t.Errorf("%d dates accepted, want %d", accepted, 8*365+3)
	}
}

// A date_of_death in milliseconds, as CHT's death_reporting transition
// stores it (see cht.TestDateOfDeathInMilliseconds), becomes the Patient's
// deceasedDateTime in UTC, the same on the samply and the direct path.
// Fewer than 13 digits are no timestamp, as CHT reads timestamps
// (api/src/services/records.js parseSentTimestamp).
func TestDeceasedFromMilliseconds(t *testing.T) {
	c := testConverter(t, Config{})
	tests := []struct {
		dod  string
		want string // deceasedDateTime, "" for none
	}{
		{`1742380956176`, "2025-03-19T10:42:36.176Z"},
		{`"1742380956176"`, "2025-03-19T10:42:36.176Z"},
		{`"2025-03-19"`, "2025-03-19"},
		{`"20250319"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.dod, func(t *testing.T) {
			var ct cht.Contact
			if err := ct.UnmarshalJSON([]byte(`{"_id":"p1","type":"person","name":"P","date_of_death":` + tt.dod + `}`)); err != nil {
				t.Fatal(err)
			}
			p, err := c.Patient(&ct)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("no error for %s: %+v", tt.dod, p.DeceasedDateTime)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.DeceasedDateTime == nil || *p.DeceasedDateTime != tt.want {
				t.Errorf("deceasedDateTime %v, want %s", p.DeceasedDateTime, tt.want)
			}
			samply, err := Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			direct, err := appendPatientJSON(nil, c, &ct)
			if err != nil {
				t.Fatal(err)
			}
			if string(samply) != string(direct) {
				t.Errorf("direct path\n%s\nsamply\n%s", direct, samply)
			}
		})
	}
}

// TestUndecodedMembers: a string member package cht could not decode (a
// *cht.DecodeError with Member set: a number, object, array or boolean, or
// a string with a NUL or a lone surrogate) is kept verbatim in Extra with
// its typed field empty. The conversion treats it as any unusable value:
// an error naming it, or, in a lenient field, left out with a warning.
// null and "" are no values at all, and members the conversion never
// writes (notes) are not its concern.
func TestUndecodedMembers(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		lenient []string
		err     string // field of the *ConversionError
		warn    string // field of the warning
	}{
		{"phone a number", `{"name":"Amina","phone":254712345678}`, nil, "phone", ""},
		{"phone a number, lenient", `{"name":"Amina","phone":254712345678}`, []string{"phone"}, "", "phone"},
		{"phone an object", `{"name":"Amina","phone":{"n":1}}`, nil, "phone", ""},
		{"name with a NUL", `{"name":"A\u0000"}`, nil, "name", ""},
		{"sex a boolean, lenient", `{"name":"Amina","sex":true}`, []string{"sex"}, "", "sex"},
		{"external_id a lone surrogate", `{"name":"Amina","external_id":"\ud800"}`, nil, "external_id", ""},
		{"patient_id a number, always strict", `{"name":"Amina","patient_id":40932}`, []string{"phone"}, "patient_id", ""},
		{"phone null", `{"name":"Amina","phone":null}`, nil, "", ""},
		{"phone empty", `{"name":"Amina","phone":""}`, nil, "", ""},
		{"notes with a NUL", `{"name":"Amina","notes":"\u0000"}`, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := DefaultMapping()
			m.Contacts.Lenient = tt.lenient
			c := testConverter(t, Config{Mapping: m})
			var ct cht.Contact
			doc := `{"_id":"p-1","type":"person",` + tt.doc[1:]
			if err := ct.UnmarshalJSON([]byte(doc)); err != nil {
				var de *cht.DecodeError
				if !errors.As(err, &de) || !de.Member {
					t.Fatalf("decode: %v, want member errors only", err)
				}
			}
			tx, err := c.ContactBundle(&ct)
			var ce *ConversionError
			switch {
			case tt.err != "":
				if !errors.As(err, &ce) || ce.Field != tt.err {
					t.Fatalf("err = %v, want a *ConversionError of field %q", err, tt.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			var warned []string
			for _, w := range tx.Warnings {
				warned = append(warned, w.Field)
			}
			if want := []string{tt.warn}; tt.warn == "" && len(warned) != 0 || tt.warn != "" && !slices.Equal(warned, want) {
				t.Errorf("warnings %v, want %q", warned, tt.warn)
			}
		})
	}
}
