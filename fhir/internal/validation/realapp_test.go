package validation

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// realAppKinds is what each hand-written document of testdata/realapp
// must become with the examples' default configuration (fhir.DefaultMapping,
// the app's contact types, WritePut): the resource types of its bundle, in
// order, counted. The rules: health facilities are Location and
// Organization; a configurable place type a Location; the c_chw type a
// Practitioner only; other person types a Patient; a report an Encounter,
// an Observation per mapped non-empty field, and a Location where it was
// filled in when it has a geolocation.
var realAppKinds = map[string]string{
	"rapp-dh-1":         "Location Organization",
	"rapp-hc-1":         "Location Organization",
	"rapp-hh-1":         "Location",
	"rapp-chw-1":        "Practitioner",
	"rapp-p-1":          "Patient",
	"rapp-p-2":          "Patient",
	"rapp-p-3":          "Patient",
	"rapp-r-assessment": "Location Encounter Observation*7",
	"rapp-r-danger":     "Encounter Observation*7",
	"rapp-r-hw":         "Encounter Observation*2",
}

// TestRealAppDocuments is the independent check: documents in the shapes
// real apps store (see testdata/README.md for the sources they follow),
// converted as the examples do by default, become the right resource
// kinds, pass R4 validation (google/fhir, ele-1 and the invariants above)
// and convert back to their mapped values.
func TestRealAppDocuments(t *testing.T) {
	settings, err := os.ReadFile(filepath.Join(testdata, "realapp", "app_settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	types, err := cht.ParseContactTypes(settings)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: fhir.DefaultMapping(), ContactTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	var docs []json.RawMessage
	load(t, filepath.Join("realapp", "docs.json"), &docs)
	if len(docs) != len(realAppKinds) {
		t.Fatalf("%d documents, %d expectations", len(docs), len(realAppKinds))
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range docs {
		var head struct {
			ID   string `json:"_id"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			t.Fatal(err)
		}
		t.Run(head.ID, func(t *testing.T) {
			var tx *fhir.Transaction
			var report *cht.Report
			var contact *cht.Contact
			if head.Type == "data_record" {
				report = new(cht.Report)
				if err := json.Unmarshal(raw, report); err != nil {
					t.Fatal(err)
				}
				tx, err = c.ReportBundle(report)
			} else {
				contact = new(cht.Contact)
				if err := json.Unmarshal(raw, contact); err != nil {
					t.Fatal(err)
				}
				tx, err = c.ContactBundle(contact)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tx.Warnings) > 0 {
				t.Errorf("warnings: %v", tx.Warnings)
			}
			b, err := tx.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			validate(t, u, "bundle", b)
			bundle, err := models.UnmarshalBundle(b)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			res := map[string][]json.RawMessage{}
			for i, e := range bundle.Entry {
				var rt struct{ ResourceType string }
				if err := json.Unmarshal(e.Resource, &rt); err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, rt.ResourceType)
				res[rt.ResourceType] = append(res[rt.ResourceType], e.Resource)
				validate(t, u, fmt.Sprintf("entry %d", i), e.Resource)
			}
			if got := countKinds(kinds); got != realAppKinds[head.ID] {
				t.Errorf("resources %q, want %q", got, realAppKinds[head.ID])
			}
			switch {
			case report != nil:
				checkReportBack(t, c, report, res)
			case len(res["Patient"]) == 1:
				checkPersonBack(t, c, contact, res["Patient"][0])
			case len(res["Location"]) == 1:
				checkPlaceBack(t, c, contact, res["Location"][0])
			}
		})
	}
}

// countKinds is "A B*2 C" for [A B B C].
func countKinds(kinds []string) string {
	var out []string
	for i := 0; i < len(kinds); {
		j := i
		for j < len(kinds) && kinds[j] == kinds[i] {
			j++
		}
		if j-i > 1 {
			out = append(out, kinds[i]+"*"+strconv.Itoa(j-i))
		} else {
			out = append(out, kinds[i])
		}
		i = j
	}
	return strings.Join(out, " ")
}

func validate(t *testing.T, u *jsonformat.Unmarshaller, name string, b []byte) {
	t.Helper()
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	rt, _ := tree["resourceType"].(string)
	if _, oo, err := u.UnmarshalWithOutcome(b); err != nil {
		t.Errorf("%s: google/fhir: %v\n%s", name, err, b)
	} else if oo != nil && len(oo.R4Outcome.GetIssue()) > 0 {
		t.Errorf("%s: google/fhir validation: %v\n%s", name, oo.R4Outcome.GetIssue(), b)
	}
	for _, msg := range invariants(tree, rt) {
		t.Errorf("%s: %s", name, msg)
	}
}

func checkPersonBack(t *testing.T, c *fhir.Converter, want *cht.Contact, raw json.RawMessage) {
	t.Helper()
	p, err := models.UnmarshalPatient(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.PersonFromPatient(&p)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, got, want string }{
		{"_id", got.ID, want.ID}, {"name", got.Name, want.Name}, {"sex", got.Sex, want.Sex},
		{"date_of_birth", got.DateOfBirth, want.DateOfBirth}, {"date_of_death", got.DateOfDeath, want.DateOfDeath},
		{"phone", got.Phone, want.Phone}, {"phone_alternate", got.PhoneAlternate, want.PhoneAlternate},
		{"patient_id", got.PatientID, want.PatientID}, {"external_id", got.ExternalID, want.ExternalID},
	} {
		if f.got != f.want {
			t.Errorf("%s back: %q, want %q", f.name, f.got, f.want)
		}
	}
}

func checkPlaceBack(t *testing.T, c *fhir.Converter, want *cht.Contact, raw json.RawMessage) {
	t.Helper()
	l, err := models.UnmarshalLocation(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.PlaceFromLocation(&l)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, got, want string }{
		{"_id", got.ID, want.ID}, {"type", got.TypeID(), want.TypeID()}, {"name", got.Name, want.Name},
		{"place_id", got.PlaceID, want.PlaceID}, {"external_id", got.ExternalID, want.ExternalID},
		{"parent", got.ParentID(), want.ParentID()}, {"geolocation", geo(got.Geolocation), geo(want.Geolocation)},
	} {
		if f.got != f.want {
			t.Errorf("%s back: %q, want %q", f.name, f.got, f.want)
		}
	}
}

// geo is the part of a geolocation FHIR keeps.
func geo(g *cht.Geolocation) string {
	if g == nil {
		return ""
	}
	s := fmt.Sprint(*g.Latitude, " ", *g.Longitude)
	if g.Altitude != nil {
		s += fmt.Sprint(" ", *g.Altitude)
	}
	return s
}

func checkReportBack(t *testing.T, c *fhir.Converter, r *cht.Report, res map[string][]json.RawMessage) {
	t.Helper()
	enc, err := models.UnmarshalEncounter(res["Encounter"][0])
	if err != nil {
		t.Fatal(err)
	}
	var obs []models.Observation
	for _, raw := range res["Observation"] {
		o, err := models.UnmarshalObservation(raw)
		if err != nil {
			t.Fatal(err)
		}
		obs = append(obs, o)
	}
	var locs []*models.Location
	for _, raw := range res["Location"] {
		l, err := models.UnmarshalLocation(raw)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, &l)
	}
	rec, err := c.SubmissionFromObservations("", &enc, obs, nil, locs...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(rec.Form, r.Form) || rec.From != r.From || rec.ReportedDate.UnixMilli() != int64(r.ReportedDate) {
		t.Errorf("form %q from %q reported %v, want %q %q %d", rec.Form, rec.From, rec.ReportedDate, r.Form, r.From, r.ReportedDate)
	}
	if geo(rec.Geolocation) != geo(r.Geolocation) {
		t.Errorf("geolocation %q, want %q", geo(rec.Geolocation), geo(r.Geolocation))
	}
	fm, ok := fhir.DefaultMapping().Form(r.Form)
	if !ok {
		t.Fatalf("form %s not mapped", r.Form)
	}
	var keys []string
	for _, f := range fm.Fields {
		v, ok := r.Fields.Field(f.Path)
		if !ok {
			continue
		}
		keys = append(keys, f.Path)
		if got, want := kept(f, rec.Fields[f.Path]), kept(f, v); got != want {
			t.Errorf("%s back: %v, want %v", f.Path, got, want)
		}
	}
	id, path, _ := r.Subject()
	key := "patient_uuid"
	if path == "fields.patient_id" {
		key = "patient_id"
	}
	if rec.Fields[key] != id {
		t.Errorf("subject back: %v, want %s = %s", rec.Fields, key, id)
	}
	keys = append(keys, key)
	var got []string
	for k := range rec.Fields {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("fields back %v, want %v", got, keys)
	}
}

// kept is a value as FHIR keeps it: numbers by value, XForm "yes"/"no" as
// booleans (see "Lost by design" in docs/mappings.md).
func kept(f fhir.FieldMapping, v any) string {
	s := fmt.Sprint(v)
	switch f.Type {
	case "quantity", "decimal", "integer":
		if x, err := strconv.ParseFloat(s, 64); err == nil {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	case "boolean":
		if f.TrueValue == "" {
			switch s {
			case "yes":
				return "true"
			case "no":
				return "false"
			}
		}
	}
	return s
}
