package cht

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameJSON reports whether a and b encode the same JSON value.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestContactFixtures(t *testing.T) {
	tests := []struct {
		file        string
		id, typeID  string
		person      bool
		lineage     []string
		hydrated    bool
		contactID   string
		reported    time.Time
		extraKeys   []string
		geolocation bool
	}{
		{
			file: "person_with_lineage.json", id: "f512e1d8-841b-4bc1-8154-b6794755f45b", typeID: "person", person: true,
			lineage:  []string{"d9153705-4574-43c3-b945-71aa2164d1d6", "b935ef10-0339-4263-99fc-34d4f8d72891"},
			hydrated: true, reported: time.UnixMilli(1708453778059).UTC(),
		},
		{
			file: "person_configurable.json", id: "4dcd842e813fd1bcabec03f98f002a98", typeID: "person", person: true,
			lineage:  []string{"01992f01-f155-4386-8538-5080c3155585", "35a2f31e-705c-4833-b385-efd069b1ce3f", "29368c93-d267-4e80-8fbe-6543f702ff30"},
			reported: time.UnixMilli(1755519112122).UTC(),
		},
		{
			file: "place_clinic.json", id: "be9eb905-1dd3-4957-89ed-b74d080a8246", typeID: "clinic",
			lineage:   []string{"b132829c-6267-4d4f-aa8e-11862828e65f", "a7922ef9-ea7a-47d9-b3eb-b78b13d31460"},
			contactID: "99ea9cf6-8bef-475c-a769-3db0d1888f22", reported: time.UnixMilli(1722004087809).UTC(),
			extraKeys: []string{"external_id", "form_version", "geolocation", "is_name_generated", "meta", "notes"},
		},
		{
			file: "place_health_center.json", id: "d9153705-4574-43c3-b945-71aa2164d1d6", typeID: "health_center",
			lineage:   []string{"b935ef10-0339-4263-99fc-34d4f8d72891"},
			contactID: "f512e1d8-841b-4bc1-8154-b6794755f45b", reported: time.UnixMilli(1708453778059).UTC(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := readFixture(t, tt.file)
			var c Contact
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			if c.ID != tt.id || c.TypeID() != tt.typeID {
				t.Errorf("id, type = %q, %q; want %q, %q", c.ID, c.TypeID(), tt.id, tt.typeID)
			}
			if c.IsPerson() != tt.person || c.IsPlace() == tt.person {
				t.Errorf("IsPerson = %v, IsPlace = %v; want person %v", c.IsPerson(), c.IsPlace(), tt.person)
			}
			if got := c.Parent.IDs(); !reflect.DeepEqual(got, tt.lineage) {
				t.Errorf("lineage = %v, want %v", got, tt.lineage)
			}
			if (c.Parent.Doc != nil) != tt.hydrated {
				t.Errorf("parent hydrated = %v, want %v", c.Parent.Doc != nil, tt.hydrated)
			}
			if got := c.Contact; (got == nil) != (tt.contactID == "") || (got != nil && got.ID != tt.contactID) {
				t.Errorf("contact = %+v, want id %q", got, tt.contactID)
			}
			if !c.ReportedDate.Time().Equal(tt.reported) {
				t.Errorf("reported = %v, want %v", c.ReportedDate.Time(), tt.reported)
			}
			var keys []string
			for k := range c.Extra {
				keys = append(keys, k)
			}
			if len(keys) != len(tt.extraKeys) {
				t.Errorf("extra keys = %v, want %v", keys, tt.extraKeys)
			}
			for _, k := range tt.extraKeys {
				if _, ok := c.Extra[k]; !ok {
					t.Errorf("extra missing %q (have %v)", k, keys)
				}
			}
			out, err := json.Marshal(&c)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, raw, out) {
				t.Errorf("round trip differs:\n in: %s\nout: %s", raw, out)
			}
		})
	}
}

func TestHydratedLineage(t *testing.T) {
	var c Contact
	if err := json.Unmarshal(readFixture(t, "person_with_lineage.json"), &c); err != nil {
		t.Fatal(err)
	}
	hc := c.Parent.Doc
	if hc == nil || hc.Name != "Example Health Center" || hc.PlaceID != "17437" || hc.TypeID() != "health_center" {
		t.Fatalf("health center = %+v", hc)
	}
	if hc.Parent != c.Parent.Parent {
		t.Error("Doc.Parent and Parent differ")
	}
	dh := c.Parent.Parent.Doc
	if dh == nil || dh.Contact == nil || dh.Contact.Name != "Example Supervisor" || dh.Contact.ParentID() != "b935ef10-0339-4263-99fc-34d4f8d72891" {
		t.Fatalf("district hospital = %+v", dh)
	}
	if got := c.Parent.Parent.Parent; got != nil {
		t.Errorf("third ancestor = %+v, want nil", got)
	}
	min, err := json.Marshal(c.Parent.Minify())
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"_id":"d9153705-4574-43c3-b945-71aa2164d1d6","parent":{"_id":"b935ef10-0339-4263-99fc-34d4f8d72891"}}`; string(min) != want {
		t.Errorf("minified = %s, want %s", min, want)
	}
}

func TestContactParentVariants(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		parentID []string
		out      string // expected re-encoding; "" means same as in
	}{
		{"empty string parent", `{"_id":"a","type":"district_hospital","parent":""}`, nil, ""},
		{"null parent", `{"_id":"a","type":"clinic","parent":null}`, nil, ""},
		{"no parent", `{"_id":"a","type":"clinic"}`, nil, ""},
		{"bare id parent", `{"_id":"a","type":"clinic","parent":"p1"}`, []string{"p1"}, `{"_id":"a","type":"clinic","parent":{"_id":"p1"}}`},
		{"minified chain with empty top", `{"_id":"a","type":"person","parent":{"_id":"p1","parent":""}}`, []string{"p1"}, ""},
		{"iso reported_date", `{"_id":"a","type":"person","reported_date":"2024-10-31T06:25:50.419Z"}`, nil, `{"_id":"a","type":"person","reported_date":1730355950419}`},
		{"digit string reported_date", `{"_id":"a","type":"person","reported_date":"1730355950419"}`, nil, `{"_id":"a","type":"person","reported_date":1730355950419}`},
		{"empty contact", `{"_id":"a","type":"clinic","contact":""}`, nil, ""},
		// cht-core's test factories end a lineage with {"_id": ""}
		// (tests/factories/cht/contacts/place.js linkPlaces).
		{"minified chain ending in an empty id", `{"_id":"a","type":"clinic","parent":{"_id":"p1","parent":{"_id":""}}}`, []string{"p1", ""}, ""},
		{"empty-id parent", `{"_id":"a","type":"clinic","parent":{"_id":""}}`, []string{""}, ""},
		{"parent without an id", `{"_id":"a","type":"clinic","parent":{}}`, []string{""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Contact
			if err := json.Unmarshal([]byte(tt.in), &c); err != nil {
				t.Fatal(err)
			}
			if got := c.Parent.IDs(); !reflect.DeepEqual(got, tt.parentID) {
				t.Errorf("parent ids = %v, want %v", got, tt.parentID)
			}
			out, err := json.Marshal(&c)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.out
			if want == "" {
				want = tt.in
			}
			if !sameJSON(t, []byte(want), out) {
				t.Errorf("encoded %s, want %s", out, want)
			}
		})
	}
}

func TestDecodeErrorsNamePath(t *testing.T) {
	tests := []struct {
		name, in, path string
		report         bool
		member         bool // only that member is wrong (DecodeError.Member)
	}{
		{"not an object", `[1,2]`, "", false, false},
		{"id is object", `{"_id":{"x":1}}`, "_id", false, true},
		{"deep parent id", `{"_id":"a","parent":{"_id":"p","parent":{"_id":["x"]}}}`, "parent.parent._id", false, true},
		{"hydrated parent bad name", `{"_id":"a","parent":{"_id":"p","type":"clinic","name":{}}}`, "parent.name", false, true},
		{"parent is number", `{"_id":"a","parent":5}`, "parent", false, true},
		{"bad reported_date", `{"_id":"a","reported_date":"yesterday"}`, "reported_date", false, true},
		{"primary contact parent", `{"_id":"a","contact":{"_id":"c","parent":true}}`, "contact.parent", false, true},
		{"report fields array", `{"_id":"r","fields":[1]}`, "fields", true, true},
		{"report contact number", `{"_id":"r","contact":12}`, "contact", true, true},
		{"report patient deep", `{"_id":"r","patient":{"_id":"p","parent":{"_id":"q","parent":[]}}}`, "patient.parent.parent", true, true},
		{"report error entry", `{"_id":"r","errors":[{"code":"x"},{"code":{}}]}`, "errors.1.code", true, true},
		{"malformed", `{"_id":"a","parent":{"_id":`, "parent._id", false, false},
		{"invalid UTF-8", "{\"_id\":\"a\",\"name\":\"\xff\"}", "name", false, false},
		{"malformed after a bad member", `{"_id":5,"name":}`, "name", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			// UnmarshalJSON: json.Unmarshal would refuse malformed
			// JSON before it.
			if tt.report {
				err = new(Report).UnmarshalJSON([]byte(tt.in))
			} else {
				err = new(Contact).UnmarshalJSON([]byte(tt.in))
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DecodeError", err)
			}
			if de.Path != tt.path {
				t.Errorf("path = %q, want %q (err %v)", de.Path, tt.path, err)
			}
			if de.Member != tt.member {
				t.Errorf("Member = %v, want %v (err %v)", de.Member, tt.member, err)
			}
			if j, ok := err.(interface{ Unwrap() []error }); ok && !tt.member {
				t.Errorf("a document error is joined with %d others: %v", len(j.Unwrap())-1, err)
			}
		})
	}
}

func TestDecodeTooDeep(t *testing.T) {
	in := `{"_id":"a","parent":`
	for range 200 {
		in += `{"_id":"x","parent":`
	}
	in += `""`
	for range 201 {
		in += `}`
	}
	err := json.Unmarshal([]byte(in), new(Contact))
	if !errors.Is(err, errTooDeep) {
		t.Fatalf("err = %v, want errTooDeep", err)
	}
}

func TestReportFixtures(t *testing.T) {
	tests := []struct {
		file                 string
		form                 string
		subject, subjectPath string
		contactLineage       []string
		field, fieldWant     string
		nErrors              int
		reported             Millis
	}{
		{
			file: "report_xform.json", form: "pregnancy_danger_sign",
			subject: "1f605fc1-ec99-44e3-af38-055d47b72991", subjectPath: "fields.patient_uuid",
			contactLineage: []string{"637756e8-6f4d-4f96-8971-23e930fb0562", "9246ada7-85c6-427a-8a48-7790f56b8c44", "e795199a-924d-4901-8bff-46cb7db2fc34"},
			field:          "danger_signs.fever", fieldWant: "yes", reported: 1742380956176,
		},
		{
			file: "report_ltfu.json", form: "interop_follow_up",
			subject: "{{patient}}", subjectPath: "fields.inputs.contact._id",
			contactLineage: []string{"{{place}}"},
			field:          "vaccination_details.interop_follow_up", fieldWant: "yes",
		},
		{
			file: "report_records_api.json", form: "HEIGHT_WEIGHT",
			subject: "75905106a4bc2a9046ed28df070016ce", subjectPath: "fields.patient_uuid",
			field: "height", fieldWant: "172", nErrors: 1, reported: 1730355950419,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := readFixture(t, tt.file)
			var r Report
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			if r.Form != tt.form || r.Type != "data_record" {
				t.Errorf("form, type = %q, %q", r.Form, r.Type)
			}
			id, path, ok := r.Subject()
			if !ok || id != tt.subject || path != tt.subjectPath {
				t.Errorf("Subject() = %q, %q, %v; want %q, %q", id, path, ok, tt.subject, tt.subjectPath)
			}
			var lineage *Lineage
			if r.Contact != nil {
				lineage = r.Contact.Parent
			}
			if got := lineage.IDs(); !reflect.DeepEqual(got, tt.contactLineage) {
				t.Errorf("contact lineage = %v, want %v", got, tt.contactLineage)
			}
			if got, ok := r.Fields.String(tt.field); !ok || got != tt.fieldWant {
				t.Errorf("FieldString(%q) = %q, %v; want %q", tt.field, got, ok, tt.fieldWant)
			}
			if len(r.Errors) != tt.nErrors {
				t.Errorf("errors = %v, want %d", r.Errors, tt.nErrors)
			}
			if r.ReportedDate != tt.reported {
				t.Errorf("reported = %d, want %d", r.ReportedDate, tt.reported)
			}
			out, err := json.Marshal(&r)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, raw, out) {
				t.Errorf("round trip differs:\n in: %s\nout: %s", raw, out)
			}
		})
	}
}

func TestReportErrorsExtraKept(t *testing.T) {
	var r Report
	if err := json.Unmarshal(readFixture(t, "report_records_api.json"), &r); err != nil {
		t.Fatal(err)
	}
	e := r.Errors[0]
	if e.Code != "sys.missing_fields" || e.Message != "Missing or invalid fields: some_data." {
		t.Errorf("error = %+v", e)
	}
	if string(e.Extra["fields"]) != `["some_data"]` {
		t.Errorf("extra fields = %s", e.Extra["fields"])
	}
}

// TestSubjectOrder pins Report.Subject to cht-core's
// shared-libs/registration-utils getSubjectId: for patient_id,
// patient_uuid, place_id and place_uuid in that order, the first truthy
// of the top-level member and the one under fields. fields.inputs.contact._id,
// which cht-core does not read, comes only after them.
func TestSubjectOrder(t *testing.T) {
	tests := []struct {
		name, in, id, path string
	}{
		{"top patient_id before fields.patient_uuid", `{"fields":{"patient_uuid":"u","patient_id":"s"},"patient_id":"t","place_id":"pl"}`, "t", "patient_id"},
		{"fields.patient_id before patient_uuid", `{"fields":{"patient_id":"s","patient_uuid":"u"},"patient_uuid":"tu"}`, "s", "fields.patient_id"},
		{"top patient_uuid", `{"fields":{"patient_uuid":"u"},"patient_uuid":"tu","place_id":"pl"}`, "tu", "patient_uuid"},
		{"fields.patient_uuid before place_id", `{"fields":{"patient_uuid":"u"},"place_id":"pl"}`, "u", "fields.patient_uuid"},
		{"empty patient_id skipped", `{"fields":{"patient_id":""},"patient_id":"","place_id":"pl"}`, "pl", "place_id"},
		{"fields.place_id", `{"fields":{"place_id":"fp"},"place_uuid":"pu"}`, "fp", "fields.place_id"},
		{"top place_uuid", `{"fields":{"place_uuid":"fu"},"place_uuid":"pu"}`, "pu", "place_uuid"},
		{"fields.place_uuid", `{"fields":{"place_uuid":"fu","inputs":{"contact":{"_id":"c"}}}}`, "fu", "fields.place_uuid"},
		{"place_id before inputs contact", `{"fields":{"inputs":{"contact":{"_id":"c"}}},"place_id":"pl"}`, "pl", "place_id"},
		{"inputs contact last", `{"fields":{"patient_uuid":"","inputs":{"contact":{"_id":"c"}}}}`, "c", "fields.inputs.contact._id"},
		{"numeric shortcode", `{"fields":{"patient_id":12345}}`, "12345", "fields.patient_id"},
		{"numeric top patient_uuid", `{"patient_uuid":12345}`, "12345", "patient_uuid"},
		{"object place_uuid is no subject", `{"place_uuid":{"a":1}}`, "", ""},
		{"none", `{"fields":{"x":1}}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Report
			if err := json.Unmarshal([]byte(tt.in), &r); err != nil {
				t.Fatal(err)
			}
			id, path, ok := r.Subject()
			if id != tt.id || path != tt.path || ok != (tt.id != "") {
				t.Errorf("Subject() = %q, %q, %v; want %q, %q", id, path, ok, tt.id, tt.path)
			}
		})
	}
}

func TestFieldsAccess(t *testing.T) {
	var r Report
	in := `{"fields":{"a":{"b":[{"c":"x"},{"c":2}]},"n":"34","big":12345678901234567890,
		"yes":"yes","t":true,"d":"2025-03-18T13:14:08.030Z","ms":1730355950419,"nul":null}}`
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if v, ok := r.Fields.String("a.b.0.c"); !ok || v != "x" {
		t.Errorf("a.b.0.c = %q %v", v, ok)
	}
	if v, ok := r.Fields.Float("a.b.1.c"); !ok || v != 2 {
		t.Errorf("a.b.1.c = %v %v", v, ok)
	}
	if v, ok := r.Fields.Float("n"); !ok || v != 34 {
		t.Errorf("n = %v %v", v, ok)
	}
	if v, ok := r.Fields.String("big"); !ok || v != "12345678901234567890" {
		t.Errorf("big = %q %v (precision lost?)", v, ok)
	}
	if v, ok := r.Fields.Bool("yes"); !ok || !v {
		t.Errorf("yes = %v %v", v, ok)
	}
	if v, ok := r.Fields.Bool("t"); !ok || !v {
		t.Errorf("t = %v %v", v, ok)
	}
	// A date: ParseMillis reads what String returns.
	for _, tt := range []struct {
		path string
		want time.Time
	}{
		{"d", time.Date(2025, 3, 18, 13, 14, 8, 30e6, time.UTC)},
		{"ms", time.UnixMilli(1730355950419)},
	} {
		s, _ := r.Fields.String(tt.path)
		if m, ok := ParseMillis(s); !ok || !m.Time().Equal(tt.want) {
			t.Errorf("%s = %v %v, want %v", tt.path, m.Time(), ok, tt.want)
		}
	}
	for _, p := range []string{"a.b.2.c", "a.b.x", "a.z", "", "n.x", "nul.x"} {
		if v, ok := r.Fields.Field(p); ok {
			t.Errorf("Field(%q) = %v, want missing", p, v)
		}
	}
	if _, ok := r.Fields.String("a"); ok {
		t.Error("FieldString on object should fail")
	}
	if v, ok := r.Fields.Field("nul"); !ok || v != nil {
		t.Errorf("nul = %v, %v; want nil, true", v, ok)
	}
}

func TestIsPersonConfigured(t *testing.T) {
	tests := []struct {
		doc         Contact
		personTypes []string
		person      bool
		place       bool
	}{
		{Contact{Type: "person"}, nil, true, false},
		{Contact{Type: "contact", ContactType: "person"}, nil, true, false},
		{Contact{Type: "contact", ContactType: "patient"}, nil, false, true},
		{Contact{Type: "contact", ContactType: "patient"}, []string{"patient", "chw"}, true, false},
		{Contact{Type: "clinic"}, []string{"patient"}, false, true},
		{Contact{Type: "data_record"}, nil, false, false},
		{Contact{Type: "contact"}, nil, false, true},
	}
	for _, tt := range tests {
		if got := tt.doc.IsPerson(tt.personTypes...); got != tt.person {
			t.Errorf("%+v IsPerson(%v) = %v", tt.doc, tt.personTypes, got)
		}
		if got := tt.doc.IsPlace(tt.personTypes...); got != tt.place {
			t.Errorf("%+v IsPlace(%v) = %v", tt.doc, tt.personTypes, got)
		}
	}
}

func TestMillis(t *testing.T) {
	tests := []struct {
		in   string
		want Millis
		err  bool
	}{
		{`1730355950419`, 1730355950419, false},
		{`1.730355950419e12`, 1730355950419, false},
		{`"1730355950419"`, 1730355950419, false},
		{`"2024-10-31T06:25:50.419Z"`, 1730355950419, false},
		{`"2024-10-31"`, 1730332800000, false},
		{`null`, 0, false},
		{`""`, 0, false},
		{`"soon"`, 0, true},
		{`true`, 0, true},
		{`1e300`, 0, true},
	}
	for _, tt := range tests {
		var m Millis
		err := json.Unmarshal([]byte(tt.in), &m)
		if (err != nil) != tt.err || m != tt.want {
			t.Errorf("%s: got %d, %v; want %d, err %v", tt.in, m, err, tt.want, tt.err)
		}
	}
	m := Millis(time.Date(2024, 10, 31, 6, 25, 50, 419e6, time.UTC).UnixMilli())
	if m != 1730355950419 || m.String() != "2024-10-31T06:25:50.419Z" {
		t.Errorf("Millis = %d %s", m, m)
	}
	if b, _ := json.Marshal(m); string(b) != "1730355950419" {
		t.Errorf("marshal = %s", b)
	}
	if !Millis(0).Time().IsZero() {
		t.Error("zero Millis should give zero time")
	}
}

func TestGeolocation(t *testing.T) {
	in := `{"_id":"r","geolocation":{"latitude":-1.28,"longitude":36.81,"accuracy":20,"altitude":null}}`
	var r Report
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Geolocation.Valid() || *r.Geolocation.Latitude != -1.28 || *r.Geolocation.Accuracy != 20 || r.Geolocation.Altitude != nil {
		t.Errorf("geolocation = %+v", r.Geolocation)
	}
	denied := `{"_id":"r","geolocation":{"code":1,"message":"User denied Geolocation"}}`
	if err := json.Unmarshal([]byte(denied), &r); err != nil {
		t.Fatal(err)
	}
	if r.Geolocation.Valid() || r.Geolocation.Code != 1 {
		t.Errorf("denied geolocation = %+v", r.Geolocation)
	}
}

func TestNewLineage(t *testing.T) {
	l := NewLineage("a", "b", "c")
	b, err := json.Marshal(&Contact{ID: "x", Type: "person", Parent: l})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_id":"x","parent":{"_id":"a","parent":{"_id":"b","parent":{"_id":"c"}}},"type":"person"}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	if NewLineage() != nil || len(l.IDs()) != 3 {
		t.Error("NewLineage/Depth")
	}
}
