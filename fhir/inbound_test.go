package fhir

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

func TestParseResource(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		exprs []string // expected issue expressions; nil = valid
		code  models.IssueType
	}{
		{"valid observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a"}`, nil, 0},
		{"valid patient", `{"resourceType":"Patient","name":[{"text":"A B"}],"gender":"female"}`, nil, 0},
		{"not an object", `[1,2]`, []string{""}, models.IssueTypeStructure},
		{"garbage", `{"resourceType":`, []string{""}, models.IssueTypeStructure},
		{"no resourceType", `{"status":"final"}`, []string{"resourceType"}, models.IssueTypeRequired},
		{"unsupported", `{"resourceType":"Medication"}`, []string{"resourceType"}, models.IssueTypeNotSupported},
		{"missing status", `{"resourceType":"Observation","code":{"text":"x"}}`, []string{"Observation.status"}, models.IssueTypeRequired},
		{"null code", `{"resourceType":"Observation","status":"final","code":null}`, []string{"Observation.code"}, models.IssueTypeRequired},
		{"bad status code", `{"resourceType":"Observation","status":"done","code":{"text":"x"}}`, []string{"Observation.status"}, models.IssueTypeCodeInvalid},
		{"bad gender", `{"resourceType":"Patient","gender":"femal"}`, []string{"Patient.gender"}, models.IssueTypeCodeInvalid},
		{"two values", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueBoolean":true}`, []string{"Observation.value[x]"}, models.IssueTypeStructure},
		{"two deceased", `{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020-01-01"}`, []string{"Patient.deceased[x]"}, models.IssueTypeStructure},
		{"empty name", `{"resourceType":"Patient","name":[{}]}`, []string{"Patient.name[0]"}, models.IssueTypeStructure},
		{"empty string", `{"resourceType":"Patient","name":[{"given":["a",""]}]}`, []string{"Patient.name[0].given[1]"}, models.IssueTypeValue},
		{"encounter class missing", `{"resourceType":"Encounter","status":"finished"}`, []string{"Encounter.class"}, models.IssueTypeRequired},
		{"service request", `{"resourceType":"ServiceRequest","status":"active","intent":"order"}`, []string{"ServiceRequest.subject"}, models.IssueTypeRequired},
		{"task intent", `{"resourceType":"Task","status":"requested"}`, []string{"Task.intent"}, models.IssueTypeRequired},
		{"wrong type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueInteger":"6"}`, []string{"Observation.valueInteger"}, models.IssueTypeStructure},
		{"primitive extension", `{"resourceType":"Patient","birthDate":"1970","_birthDate":{"extension":[{"url":"u","valueString":"x"}]}}`, []string{"Patient._birthDate"}, models.IssueTypeNotSupported},
		{"contained", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o"}]}`, []string{"Patient.contained"}, models.IssueTypeNotSupported},
		{"unknown element", `{"resourceType":"Patient","name":[{"text":"A","nickname":"B"}]}`, []string{"Patient.name[0].nickname"}, models.IssueTypeNotSupported},
		{"server meta kept", `{"resourceType":"Patient","meta":{"versionId":"1","author":{"reference":"Practitioner/1"}},"name":[{"text":"A"}]}`, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ParseResource([]byte(tt.in))
			if tt.exprs == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if res == nil {
					t.Fatal("no resource")
				}
				return
			}
			var ire *InvalidResourceError
			if !errors.As(err, &ire) {
				t.Fatalf("err = %v, want *InvalidResourceError", err)
			}
			var got []string
			for _, is := range ire.Issues {
				got = append(got, is.Expression)
			}
			if !reflect.DeepEqual(got, tt.exprs) {
				t.Errorf("expressions %q, want %q (%v)", got, tt.exprs, err)
			}
			if ire.Issues[0].Code != tt.code {
				t.Errorf("code %v, want %v", ire.Issues[0].Code, tt.code)
			}
			oo := OutcomeFromError(err)
			if len(oo.Issue) != len(tt.exprs) || oo.Issue[0].Severity != models.IssueSeverityError {
				t.Errorf("outcome %+v", oo)
			}
			if tt.exprs[0] != "" && (len(oo.Issue[0].Expression) != 1 || oo.Issue[0].Expression[0] != tt.exprs[0]) {
				t.Errorf("outcome expression %v, want %s", oo.Issue[0].Expression, tt.exprs[0])
			}
		})
	}
	_, err := ParseResource([]byte(`{"resourceType":"Medication"}`))
	if !errors.Is(err, ErrUnsupportedResource) {
		t.Errorf("unsupported: %v", err)
	}
	res, err := ParseResource([]byte(`{"resourceType":"Task","status":"ready","intent":"order","for":{"reference":"Patient/1"}}`))
	if task, ok := res.(*models.Task); err != nil || !ok || task.Status != models.TaskStatusReady {
		t.Errorf("task: %v %#v", err, res)
	}
}

func FuzzParseResource(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.5}}`,
		`{"resourceType":"Patient","name":[{"text":"A"}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"}}]}`,
		`{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"}}`,
		`null`, `{}`, `{"resourceType":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseResource(data)
		if err != nil {
			var ire *InvalidResourceError
			if !errors.As(err, &ire) || len(ire.Issues) == 0 {
				t.Fatalf("error without issues: %v", err)
			}
			if oo := OutcomeFromError(err); len(oo.Issue) == 0 {
				t.Fatal("empty outcome")
			}
			return
		}
		if res == nil {
			t.Fatal("nil resource without error")
		}
		if _, err := Marshal(res); err != nil {
			t.Fatalf("accepted resource does not marshal: %v", err)
		}
	})
}

func TestOperationOutcome(t *testing.T) {
	oo := NewOperationOutcome()
	b, err := Marshal(oo)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"issue":[{"severity":"information","code":"informational","diagnostics":"All OK"}],"resourceType":"OperationOutcome"}` {
		t.Errorf("empty outcome: %s", b)
	}
	tests := []struct {
		err  error
		code models.IssueType
		diag string
	}{
		{&ConversionError{Field: "fields.x", Reason: "bad"}, models.IssueTypeValue, `field "fields.x": bad`},
		{ErrUnmappedForm, models.IssueTypeNotSupported, "form not mapped"},
		{errors.New("boom"), models.IssueTypeException, "boom"},
		{invalid("Patient", "Patient.name", "x"), models.IssueTypeInvalid, "Patient.name: x"},
	}
	for _, tt := range tests {
		oo := OutcomeFromError(tt.err)
		if len(oo.Issue) != 1 || oo.Issue[0].Code != tt.code || oo.Issue[0].Severity != models.IssueSeverityError ||
			oo.Issue[0].Diagnostics == nil || !strings.Contains(*oo.Issue[0].Diagnostics, tt.diag) {
			t.Errorf("%v: %+v", tt.err, oo.Issue)
		}
	}
}

func TestPersonFromPatient(t *testing.T) {
	c := testConverter(t, Config{Inbound: InboundConfig{ParentPlace: "hh-1", PersonType: "patient"}})
	p := &models.Patient{
		Id:         ptr("fhir-7"),
		Identifier: []models.Identifier{{System: ptr("urn:other"), Value: ptr("x")}},
		Name: []models.HumanName{
			{Use: ptr(models.NameUseOld), Text: ptr("Old Name")},
			{Given: []string{"Amina", "W."}, Family: ptr("Otieno")},
		},
		Gender:           ptr(models.AdministrativeGenderFemale),
		BirthDate:        ptr("1991-04-05"),
		Telecom:          []models.ContactPoint{{System: ptr(models.ContactPointSystemEmail), Value: ptr("a@b")}, {System: ptr(models.ContactPointSystemPhone), Value: ptr("+254700000001")}},
		DeceasedDateTime: ptr("2024-05-06"),
	}
	got, err := c.PersonFromPatient(p)
	if err != nil {
		t.Fatal(err)
	}
	want := &cht.Contact{Type: "contact", ContactType: "patient", Name: "Amina W. Otieno", Sex: "female",
		DateOfBirth: "1991-04-05", Phone: "+254700000001", DateOfDeath: "2024-05-06",
		Parent: cht.NewLineage("hh-1")} // the server's id fhir-7 is not an external_id
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// Errors name the element.
	for _, tt := range []struct {
		p    *models.Patient
		expr string
	}{
		{&models.Patient{}, "Patient.name"},
		{&models.Patient{Name: []models.HumanName{{Text: ptr("A")}}, BirthDate: ptr("1991-02-30")}, "Patient.birthDate"},
		{&models.Patient{Name: []models.HumanName{{Text: ptr("A")}}, DeceasedDateTime: ptr("yesterday at noon")}, "Patient.deceasedDateTime"},
	} {
		_, err := c.PersonFromPatient(tt.p)
		var ire *InvalidResourceError
		if !errors.As(err, &ire) || ire.Issues[0].Expression != tt.expr {
			t.Errorf("err = %v, want issue at %s", err, tt.expr)
		}
	}
}

// TestPersonPhoneWithoutSystem: OpenMRS's FHIR module sends a person
// attribute as a telecom without a system unless a contact point map
// names one (openmrs-module-fhir2 TelecomTranslatorImpl); its phone was
// dropped without a word.
func TestPersonPhoneWithoutSystem(t *testing.T) {
	c := testConverter(t, Config{Inbound: InboundConfig{ParentPlace: "hh-1"}})
	for _, tt := range []struct {
		telecom          []models.ContactPoint
		phone, alternate string
	}{
		{[]models.ContactPoint{{Value: ptr("+254 712 345-678")}}, "+254 712 345-678", ""},
		{[]models.ContactPoint{{Value: ptr("(020) 555 1234")}, {System: ptr(models.ContactPointSystemPhone), Value: ptr("+254700000001")}},
			"(020) 555 1234", "+254700000001"},
		{[]models.ContactPoint{{Value: ptr("amina@example.org")}}, "", ""},
		{[]models.ContactPoint{{Value: ptr("12345")}}, "", ""},            // too short for a phone number
		{[]models.ContactPoint{{Value: ptr("1234567890123456")}}, "", ""}, // longer than E.164 allows
		{[]models.ContactPoint{{Value: ptr("Nairobi 00100")}}, "", ""},
		{[]models.ContactPoint{{System: ptr(models.ContactPointSystemEmail), Value: ptr("254712345678")}}, "", ""},
	} {
		p := &models.Patient{Name: []models.HumanName{{Text: ptr("Amina")}}, Telecom: tt.telecom}
		got, err := c.PersonFromPatient(p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Phone != tt.phone || got.PhoneAlternate != tt.alternate {
			t.Errorf("%+v: phone %q alternate %q, want %q %q", tt.telecom, got.Phone, got.PhoneAlternate, tt.phone, tt.alternate)
		}
	}
}

func TestPatientRoundTrip(t *testing.T) {
	c := testConverter(t, Config{})
	for _, f := range []string{"testdata/person_openmrs_example.json", "testdata/person_with_lineage.json"} {
		orig := loadContact(t, f)
		p, err := c.Patient(orig)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.PersonFromPatient(p)
		if err != nil {
			t.Fatal(err)
		}
		if back.ID != orig.ID || back.Name != orig.Name || back.Sex != orig.Sex || back.DateOfBirth != orig.DateOfBirth ||
			back.Phone != orig.Phone || back.ExternalID != orig.ExternalID || back.PatientID != orig.PatientID {
			t.Errorf("%s: %+v", f, back)
		}
	}
}

func TestSubmissionRoundTrip(t *testing.T) {
	c := testConverter(t, Config{})
	r := loadReport(t, "testdata/report_assessment_hydrated.json")
	enc, err := c.Encounter(r)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := c.Observations(r)
	if err != nil {
		t.Fatal(err)
	}
	pat, err := c.Patient(r.Patient)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubmissionFromObservations("", enc, obs, pat)
	if err != nil {
		t.Fatal(err)
	}
	fm, _ := c.cfg.Mapping.Form(r.Form)
	if sub.Form != fm.Form || !sub.ReportedDate.Equal(r.ReportedDate.Time()) {
		t.Errorf("form %q date %v", sub.Form, sub.ReportedDate)
	}
	if len(sub.Fields) != 21 {
		t.Errorf("%d fields, want 20 + patient_uuid", len(sub.Fields))
	}
	for _, f := range fm.Fields {
		want, _ := r.Fields.Field(f.Path)
		if got := sub.Fields[f.Path]; !reflect.DeepEqual(got, want) {
			// numbers: json.Number vs int
			if g, ok := got.(int); !ok || json.Number(strings.TrimSpace(jsonString(g))) != want {
				t.Errorf("%s: got %#v, want %#v", f.Path, got, want)
			}
		}
	}
	if sub.Fields["patient_uuid"] != r.Patient.ID {
		t.Errorf("patient_uuid = %v", sub.Fields["patient_uuid"])
	}
	body, err := json.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	meta := m["_meta"].(map[string]any)
	// The records API upper-cases the form code (cht-core api/src/services/records.js createRecordByJSON).
	if meta["form"] != "ASSESSMENT" || meta["from"] != r.From || meta["reported_date"] != float64(1730355950419) || m["household.has_bednet"] != "yes" {
		t.Errorf("records API body: %s", body)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSubmissionFromObservationsErrors(t *testing.T) {
	c := testConverter(t, Config{})
	obs := func(code, sys string, mod func(o *models.Observation)) models.Observation {
		o := models.Observation{Status: models.ObservationStatusFinal, Code: models.CodeableConcept{Coding: []models.Coding{{System: ptr(sys), Code: ptr(code)}}},
			Subject: &models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p1")}}}
		mod(&o)
		return o
	}
	tests := []struct {
		name string
		form string
		obs  []models.Observation
		expr string
	}{
		{"unmapped code", "HEIGHT_WEIGHT", []models.Observation{obs("x", "http://loinc.org", func(*models.Observation) {})}, "Observation.code"},
		{"wrong value type", "HEIGHT_WEIGHT", []models.Observation{obs("8302-2", "http://loinc.org", func(o *models.Observation) { o.ValueString = ptr("a") })}, "Observation.value[x]"},
		{"wrong unit", "HEIGHT_WEIGHT", []models.Observation{obs("8302-2", "http://loinc.org", func(o *models.Observation) {
			o.ValueQuantity = &models.Quantity{Value: ptr(json.Number("70")), Code: ptr("[in_i]"), System: ptr(ucumSystem)}
		})}, "Observation.value[x]"},
		{"no subject", "HEIGHT_WEIGHT", []models.Observation{obs("8302-2", "http://loinc.org", func(o *models.Observation) {
			o.ValueQuantity = &models.Quantity{Value: ptr(json.Number("170")), System: ptr(ucumSystem), Code: ptr("cm")}
			o.Subject = &models.Reference{Reference: ptr("Patient/123")}
		})}, "Observation.subject"},
		{"unit text lb", "HEIGHT_WEIGHT", []models.Observation{obs("29463-7", "http://loinc.org", func(o *models.Observation) {
			o.ValueQuantity = &models.Quantity{Value: ptr(json.Number("150")), Unit: ptr("lb")}
		})}, "Observation.value[x]"},
		{"no unit", "HEIGHT_WEIGHT", []models.Observation{obs("29463-7", "http://loinc.org", func(o *models.Observation) {
			o.ValueQuantity = &models.Quantity{Value: ptr(json.Number("150"))}
		})}, "Observation.value[x]"},
		{"code without UCUM system", "HEIGHT_WEIGHT", []models.Observation{obs("29463-7", "http://loinc.org", func(o *models.Observation) {
			o.ValueQuantity = &models.Quantity{Value: ptr(json.Number("150")), System: ptr("http://example.org/units"), Code: ptr("kg")}
		})}, "Observation.value[x]"},
		{"comparator", "HEIGHT_WEIGHT", []models.Observation{obs("29463-7", "http://loinc.org", func(o *models.Observation) {
			gt := models.QuantityComparatorGreaterThan
			o.ValueQuantity = &models.Quantity{Value: ptr(json.Number("150")), Comparator: &gt, System: ptr(ucumSystem), Code: ptr("kg")}
		})}, "Observation.value[x]"},
		{"no form", "", nil, "Observation.code"},
		{"a dateTime that is none", "DELIVERY", []models.Observation{obs("labour-onset", "https://cht.example.org/codes", func(o *models.Observation) {
			o.ValueDateTime = ptr("yesterday at noon")
		})}, "Observation.value[x]"},
		{"a date that is none", "DELIVERY", []models.Observation{obs("93857-1", "http://loinc.org", func(o *models.Observation) {
			o.ValueDateTime = ptr("2024-02-30")
		})}, "Observation.value[x]"},
		{"a time that is none", "DELIVERY", []models.Observation{obs("birth-time", "https://cht.example.org/codes", func(o *models.Observation) {
			o.ValueTime = ptr("25:00:00")
		})}, "Observation.value[x]"},
		{"a time without seconds", "DELIVERY", []models.Observation{obs("birth-time", "https://cht.example.org/codes", func(o *models.Observation) {
			o.ValueTime = ptr("10:30")
		})}, "Observation.value[x]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.SubmissionFromObservations(tt.form, nil, tt.obs, nil)
			var ire *InvalidResourceError
			if !errors.As(err, &ire) || ire.Issues[0].Expression != tt.expr {
				t.Errorf("err = %v, want issue at %s", err, tt.expr)
			}
		})
	}
	if _, err := c.SubmissionFromObservations("nope", nil, nil, nil); !errors.Is(err, ErrUnmappedForm) {
		t.Errorf("unknown form: %v", err)
	}
}

func TestSubmissionFromServiceRequestAndTask(t *testing.T) {
	c := testConverter(t, Config{Inbound: InboundConfig{TaskForm: "referral_follow_up", PatientField: "patient_id"}})
	pat := &models.Patient{Identifier: []models.Identifier{{System: ptr(testInstance + "/medic"), Value: ptr("p-42")}}}
	sr := &models.ServiceRequest{Status: models.RequestStatusActive, Intent: models.RequestIntentOrder,
		Subject: models.Reference{Reference: ptr("Patient/abc")}, AuthoredOn: ptr("2024-11-01T10:00:00Z")}
	sub, err := c.SubmissionFromServiceRequest(sr, pat)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Form != "referral_follow_up" || sub.Fields["patient_id"] != "p-42" || !sub.ReportedDate.Equal(time.Date(2024, 11, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("submission %+v", sub)
	}
	sr.Status = models.RequestStatusCompleted
	if _, err := c.SubmissionFromServiceRequest(sr, pat); err == nil || !strings.Contains(err.Error(), "ServiceRequest.status") {
		t.Errorf("completed request: %v", err)
	}
	sr.Status = models.RequestStatusActive
	if _, err := c.SubmissionFromServiceRequest(sr, nil); err == nil || !strings.Contains(err.Error(), "ServiceRequest.subject") {
		t.Errorf("no identifier: %v", err)
	}
	task := &models.Task{Status: models.TaskStatusRequested, Intent: "order",
		For: &models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p-43")}}}
	sub, err = c.SubmissionFromTask(task, nil)
	if err != nil || sub.Fields["patient_id"] != "p-43" {
		t.Errorf("task: %+v %v", sub, err)
	}
	// Started, the Task still raises its CHW task (an EMR moves it to
	// in-progress while the CHW is on the way, R4 task.html#statemachine).
	task.Status = models.TaskStatusInProgress
	if _, err := c.SubmissionFromTask(task, nil); err != nil {
		t.Errorf("in-progress task: %v", err)
	}
	task.Status = models.TaskStatusCancelled
	if _, err := c.SubmissionFromTask(task, nil); err == nil || !strings.Contains(err.Error(), "Task.status") {
		t.Errorf("cancelled task: %v", err)
	}
	// Defaults.
	d := testConverter(t, Config{})
	sub, err = d.SubmissionFromTask(&models.Task{Status: models.TaskStatusReady, For: task.For}, nil)
	if err != nil || sub.Form != "interop_follow_up" || sub.Fields["patient_uuid"] != "p-43" {
		t.Errorf("defaults: %+v %v", sub, err)
	}
}

func TestIsFromCHT(t *testing.T) {
	c := testConverter(t, Config{})
	if c.IsFromCHT(nil) || c.IsFromCHT(&models.Meta{}) {
		t.Error("untagged resource reported as from CHT")
	}
	p, _ := c.Patient(&cht.Contact{ID: "a", Type: "person"})
	if !c.IsFromCHT(p.Meta) {
		t.Error("own resource not recognised")
	}
}

func TestSubmissionObservationFormFallback(t *testing.T) {
	c := testConverter(t, Config{Inbound: InboundConfig{ObservationForm: "HEIGHT_WEIGHT"}})
	o := models.Observation{Status: models.ObservationStatusFinal,
		Code:          models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://loinc.org"), Code: ptr("29463-7")}}},
		ValueQuantity: &models.Quantity{Value: ptr(json.Number("61.5")), Code: ptr("kg"), System: ptr(ucumSystem)},
		Subject:       &models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p1")}}}
	// An Encounter from another system: its type names no mapped form.
	enc := &models.Encounter{Type: []models.CodeableConcept{{Coding: []models.Coding{{System: ptr("http://snomed.info/sct"), Code: ptr("185349003")}}}}}
	sub, err := c.SubmissionFromObservations("", enc, []models.Observation{o}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Form != "HEIGHT_WEIGHT" || sub.Fields["weight"] != json.Number("61.5") || sub.Fields["patient_uuid"] != "p1" {
		t.Errorf("submission %+v", sub)
	}
	// Without the fallback the form cannot be determined; a shared type is ambiguous.
	d := testConverter(t, Config{})
	if _, err := d.SubmissionFromObservations("", enc, []models.Observation{o}, nil); err == nil || !strings.Contains(err.Error(), "Encounter.type") {
		t.Errorf("no fallback: %v", err)
	}
	shared := &models.Encounter{Type: []models.CodeableConcept{{Coding: []models.Coding{{System: ptr("http://snomed.info/sct"), Code: ptr("439708006")}}}}}
	if _, err := d.SubmissionFromObservations("", shared, []models.Observation{o}, nil); err == nil || !strings.Contains(err.Error(), "several forms") {
		t.Errorf("ambiguous type: %v", err)
	}
}

// TestSubmissionReportTimeAcceptsEveryFHIRDateForm: FHIR R4's dateTime
// (http://hl7.org/fhir/R4/datatypes.html#dateTime) is a year, a
// year-month, a date, or a date-time with seconds and a zone. Each
// element a report's time is read from takes every form (a partial date
// is the start of that period in UTC) and refuses anything else with an
// issue naming the element, instead of writing the time of writing.
func TestSubmissionReportTimeAcceptsEveryFHIRDateForm(t *testing.T) {
	c := testConverter(t, Config{Inbound: InboundConfig{ObservationForm: "HEIGHT_WEIGHT"}})
	medic := func() *models.Reference {
		return &models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p1")}}
	}
	height := func() models.Observation {
		return models.Observation{Status: models.ObservationStatusFinal,
			Code:          models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://loinc.org"), Code: ptr("8302-2")}}},
			ValueQuantity: &models.Quantity{Value: ptr(json.Number("168")), System: ptr(ucumSystem), Code: ptr("cm")}}
	}
	// Each element: convert a resource whose date is v.
	elements := []struct {
		expr    string
		convert func(v string) (*cht.Record, error)
	}{
		{"Encounter.period.start", func(v string) (*cht.Record, error) {
			return c.SubmissionFromObservations("", &models.Encounter{Subject: medic(), Period: &models.Period{Start: &v}},
				[]models.Observation{height()}, nil)
		}},
		{"Observation.effectiveDateTime", func(v string) (*cht.Record, error) {
			o := height()
			o.Subject, o.EffectiveDateTime = medic(), &v
			return c.SubmissionFromObservations("", nil, []models.Observation{o}, nil)
		}},
		{"ServiceRequest.authoredOn", func(v string) (*cht.Record, error) {
			return c.SubmissionFromServiceRequest(&models.ServiceRequest{Status: models.RequestStatusActive,
				Intent: models.RequestIntentOrder, Subject: *medic(), AuthoredOn: &v}, nil)
		}},
		{"Task.authoredOn", func(v string) (*cht.Record, error) {
			return c.SubmissionFromTask(&models.Task{Status: models.TaskStatusRequested, Intent: "order",
				For: medic(), AuthoredOn: &v}, nil)
		}},
	}
	values := []struct {
		name string
		in   string
		want time.Time // zero: refused
	}{
		{"year", "2026", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year and month", "2026-11", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"date", "2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"dateTime in UTC", "2026-11-20T10:00:00Z", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)},
		{"dateTime with an offset and a fraction", "2026-11-20T13:00:00.5+03:00", time.Date(2026, 11, 20, 10, 0, 0, 5e8, time.UTC)},
		{"garbage", "garbage", time.Time{}},
		{"no such day", "2026-02-30", time.Time{}},
		{"time without zone", "2026-11-20T10:00:00", time.Time{}},
		{"time without seconds", "2026-11-20T10:00Z", time.Time{}},
		{"day first", "20/11/2026", time.Time{}},
		{"empty", "", time.Time{}},
	}
	for _, el := range elements {
		for _, v := range values {
			t.Run(el.expr+"/"+v.name, func(t *testing.T) {
				sub, err := el.convert(v.in)
				if v.want.IsZero() {
					var ire *InvalidResourceError
					if !errors.As(err, &ire) || ire.Issues[0].Expression != el.expr || !strings.Contains(err.Error(), "not a FHIR dateTime") {
						t.Fatalf("%q: err = %v, want an issue at %s", v.in, err, el.expr)
					}
					return
				}
				if err != nil {
					t.Fatalf("%q refused: %v", v.in, err)
				}
				if !sub.ReportedDate.Equal(v.want) {
					t.Errorf("%q: ReportedDate %v, want %v", v.in, sub.ReportedDate, v.want)
				}
			})
		}
	}
}

// TestSubmissionFromObservationsHonoursMinMax: a mapping's min and max
// bound a field in the FHIR → CHT direction as in the CHT → FHIR one
// (fieldValue): a value outside is refused with an issue naming the
// Observation's value, bounds included as valid.
func TestSubmissionFromObservationsHonoursMinMax(t *testing.T) {
	m, err := ParseMapping([]byte(`version: 1
forms:
  - form: T
    fields:
      - {path: temp, code: {system: "http://loinc.org", code: 8310-5}, type: quantity, unit: Cel, min: 25, max: 45}
      - {path: weight, code: {system: "http://loinc.org", code: 29463-7}, type: decimal, min: 0}
      - {path: visits, code: {system: "http://example.org", code: visits}, type: integer, min: 1, max: 12, lenient: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := testConverter(t, Config{Mapping: m})
	quantity := func(code, v string, unit *string) models.Observation {
		o := models.Observation{Code: models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://loinc.org"), Code: ptr(code)}}},
			ValueQuantity: &models.Quantity{Value: ptr(json.Number(v))}}
		if unit != nil {
			o.ValueQuantity.System, o.ValueQuantity.Code = ptr(ucumSystem), unit
		}
		return o
	}
	integer := func(v int) models.Observation {
		return models.Observation{Code: models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://example.org"), Code: ptr("visits")}}},
			ValueInteger: &v}
	}
	tests := []struct {
		name   string
		obs    models.Observation
		reason string // "" when accepted
	}{
		{"quantity below min", quantity("8310-5", "-5000", ptr("Cel")), "below the minimum 25"},
		{"quantity above max", quantity("8310-5", "45.1", ptr("Cel")), "above the maximum 45"},
		{"quantity at min", quantity("8310-5", "25", ptr("Cel")), ""},
		{"quantity at max", quantity("8310-5", "45", ptr("Cel")), ""},
		{"decimal below min", quantity("29463-7", "-1", nil), "below the minimum 0"},
		{"decimal in range", quantity("29463-7", "61.5", nil), ""},
		{"integer below min (lenient does not apply)", integer(0), "below the minimum 1"},
		{"integer above max", integer(13), "above the maximum 12"},
		{"integer in range", integer(3), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.obs
			o.Subject = &models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p1")}}
			sub, err := c.SubmissionFromObservations("T", nil, []models.Observation{o}, nil)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ire *InvalidResourceError
			if !errors.As(err, &ire) || ire.Issues[0].Expression != "Observation.value[x]" || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v (fields %v), want an issue at Observation.value[x]: %s", err, sub, tt.reason)
			}
		})
	}
}

// TestSubmissionDueDatesAreFHIRDates: the dates a follow-up task is due
// by (ServiceRequest.occurrence[x], Task.restriction.period, which
// fhir/tocht copies to due_date) must be FHIR dates or dateTimes; anything
// else is an issue naming the element, not a due date CHT cannot read.
func TestSubmissionDueDatesAreFHIRDates(t *testing.T) {
	c := testConverter(t, Config{})
	medic := func() *models.Reference {
		return &models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p1")}}
	}
	sr := func(mod func(*models.ServiceRequest)) error {
		r := &models.ServiceRequest{Status: models.RequestStatusActive, Intent: models.RequestIntentOrder, Subject: *medic()}
		mod(r)
		_, err := c.SubmissionFromServiceRequest(r, nil)
		return err
	}
	task := func(p *models.Period) error {
		_, err := c.SubmissionFromTask(&models.Task{Status: models.TaskStatusRequested, Intent: "order", For: medic(),
			Restriction: &models.TaskRestriction{Period: p}}, nil)
		return err
	}
	for _, tc := range []struct {
		name    string
		convert func(v string) error
		expr    string
	}{
		{"occurrenceDateTime", func(v string) error {
			return sr(func(r *models.ServiceRequest) { r.OccurrenceDateTime = &v })
		}, "ServiceRequest.occurrenceDateTime"},
		{"occurrencePeriod.end", func(v string) error {
			return sr(func(r *models.ServiceRequest) { r.OccurrencePeriod = &models.Period{End: &v} })
		}, "ServiceRequest.occurrencePeriod.end"},
		{"restriction.period.start", func(v string) error { return task(&models.Period{Start: &v}) }, "Task.restriction.period.start"},
		{"restriction.period.end", func(v string) error { return task(&models.Period{End: &v}) }, "Task.restriction.period.end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ok := range []string{"2026-11-27", "2026-11-27T09:00:00+03:00"} {
				if err := tc.convert(ok); err != nil {
					t.Errorf("%q: %v", ok, err)
				}
			}
			for _, bad := range []string{"next week", "27/11/2026", "2026-11-27T09:00"} {
				var ire *InvalidResourceError
				if err := tc.convert(bad); !errors.As(err, &ire) || ire.Issues[0].Expression != tc.expr {
					t.Errorf("%q: err = %v, want an issue at %s", bad, err, tc.expr)
				}
			}
		})
	}
}

// TestSubmissionRefusesRetractedObservations: an Observation with status
// entered-in-error or cancelled, or the Observations of an Encounter with
// such a status, are no valid data (FHIR R4 observation.html#status, a
// modifier: "entered-in-error ... should not be treated as valid";
// valueset-observation-status, valueset-encounter-status). The conversion
// refuses them, naming the status, instead of making a report of them.
func TestSubmissionRefusesRetractedObservations(t *testing.T) {
	c := testConverter(t, Config{Inbound: InboundConfig{ObservationForm: "HEIGHT_WEIGHT"}})
	medic := &models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p1")}}
	obs := func(code, value string, status models.ObservationStatus) models.Observation {
		return models.Observation{Status: status, Subject: medic,
			Code:          models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://loinc.org"), Code: ptr(code)}}},
			ValueQuantity: &models.Quantity{Value: ptr(json.Number(value)), System: ptr(ucumSystem), Code: ptr(map[string]string{"8302-2": "cm", "29463-7": "kg"}[code])}}
	}
	enc := func(status models.EncounterStatus) *models.Encounter {
		return &models.Encounter{Status: status, Subject: medic, Period: &models.Period{Start: ptr("2024-05-02T10:00:00+03:00")}}
	}
	height, weight := obs("8302-2", "168", models.ObservationStatusFinal), obs("29463-7", "61.5", models.ObservationStatusFinal)
	tests := []struct {
		name string
		enc  *models.Encounter
		obs  []models.Observation
		expr string // "": converted
	}{
		{"final", nil, []models.Observation{height}, ""},
		{"amended", nil, []models.Observation{obs("8302-2", "168", models.ObservationStatusAmended)}, ""},
		{"entered-in-error", nil, []models.Observation{obs("8302-2", "168", models.ObservationStatusEnteredInError)}, "Observation.status"},
		{"cancelled", nil, []models.Observation{obs("8302-2", "168", models.ObservationStatusCancelled)}, "Observation.status"},
		{"the second of a group", enc(models.EncounterStatusFinished),
			[]models.Observation{height, obs("29463-7", "61.5", models.ObservationStatusEnteredInError)},
			"Bundle.entry.resource.where(resourceType='Observation')[1].status"},
		{"Encounter entered-in-error", enc(models.EncounterStatusEnteredInError), []models.Observation{height, weight}, "Encounter.status"},
		{"Encounter cancelled", enc(models.EncounterStatusCancelled), []models.Observation{height}, "Encounter.status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := c.SubmissionFromObservations("", tt.enc, tt.obs, nil)
			if tt.expr == "" {
				if err != nil || sub.Fields["height"] == nil {
					t.Fatalf("refused: %+v %v", sub, err)
				}
				return
			}
			var ire *InvalidResourceError
			if !errors.As(err, &ire) || ire.Issues[0].Expression != tt.expr || !strings.Contains(err.Error(), "a retracted value is not written to CHT") {
				t.Fatalf("err = %v, want an issue at %s", err, tt.expr)
			}
			if sub != nil {
				t.Errorf("a report made of a retracted value: %+v", sub)
			}
		})
	}
}

// TestSubmissionEffectiveTimeOfEveryChoice: Observation.effective[x] is a
// dateTime, Period, Timing or instant (FHIR R4 observation.html; the
// spec's observation-example-f001-glucose sends effectivePeriod.start). A
// dateTime, an instant and a period's start (else its end) are the
// report's time; a value that is not one is refused, naming the element.
func TestSubmissionEffectiveTimeOfEveryChoice(t *testing.T) {
	c := testConverter(t, Config{Inbound: InboundConfig{ObservationForm: "HEIGHT_WEIGHT"}})
	want := time.Date(2024, 5, 2, 7, 5, 0, 0, time.UTC)
	tests := []struct {
		name string
		set  func(o *models.Observation)
		expr string // of the refusal; "" converted at want
	}{
		{"effectiveDateTime", func(o *models.Observation) { o.EffectiveDateTime = ptr("2024-05-02T10:05:00+03:00") }, ""},
		{"effectiveInstant", func(o *models.Observation) { o.EffectiveInstant = ptr("2024-05-02T10:05:00.000+03:00") }, ""},
		{"effectivePeriod", func(o *models.Observation) {
			o.EffectivePeriod = &models.Period{Start: ptr("2024-05-02T10:05:00+03:00"), End: ptr("2024-05-02T10:30:00+03:00")}
		}, ""},
		{"effectivePeriod with an end only", func(o *models.Observation) {
			o.EffectivePeriod = &models.Period{End: ptr("2024-05-02T07:05:00Z")}
		}, ""},
		{"effectiveInstant without a time", func(o *models.Observation) { o.EffectiveInstant = ptr("2024-05-02") }, "Observation.effectiveInstant"},
		{"effectivePeriod.start that is no date", func(o *models.Observation) {
			o.EffectivePeriod = &models.Period{Start: ptr("yesterday")}
		}, "Observation.effectivePeriod.start"},
		{"effectivePeriod.end that is no date", func(o *models.Observation) {
			o.EffectivePeriod = &models.Period{Start: ptr("2024-05-02T10:05:00+03:00"), End: ptr("later")}
		}, "Observation.effectivePeriod.end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := models.Observation{Status: models.ObservationStatusFinal,
				Subject:       &models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p1")}},
				Code:          models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://loinc.org"), Code: ptr("8302-2")}}},
				ValueQuantity: &models.Quantity{Value: ptr(json.Number("168")), System: ptr(ucumSystem), Code: ptr("cm")}}
			tt.set(&o)
			sub, err := c.SubmissionFromObservations("", nil, []models.Observation{o}, nil)
			if tt.expr != "" {
				var ire *InvalidResourceError
				if !errors.As(err, &ire) || ire.Issues[0].Expression != tt.expr {
					t.Fatalf("err = %v, want an issue at %s", err, tt.expr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sub.ReportedDate.Equal(want) {
				t.Errorf("ReportedDate %v, want %v", sub.ReportedDate, want)
			}
		})
	}
}

// TestSubmissionFromServiceRequestDoNotPerform: doNotPerform true is a
// modifier (FHIR R4 servicerequest.html, ServiceRequest.doNotPerform: "the
// ServiceRequest is asking for the specified action to not occur"): no CHW
// task is raised for it, and the error names the element.
func TestSubmissionFromServiceRequestDoNotPerform(t *testing.T) {
	c := testConverter(t, Config{})
	for _, tt := range []struct {
		name string
		dnp  *bool
		ok   bool
	}{{"absent", nil, true}, {"false", ptr(false), true}, {"true", ptr(true), false}} {
		t.Run(tt.name, func(t *testing.T) {
			sr := &models.ServiceRequest{Status: models.RequestStatusActive, Intent: models.RequestIntentOrder, DoNotPerform: tt.dnp,
				Subject: models.Reference{Identifier: &models.Identifier{System: ptr(testInstance + "/medic"), Value: ptr("p1")}}}
			sub, err := c.SubmissionFromServiceRequest(sr, nil)
			if tt.ok {
				if err != nil || sub == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ire *InvalidResourceError
			if !errors.As(err, &ire) || ire.Issues[0].Expression != "ServiceRequest.doNotPerform" || !strings.Contains(err.Error(), "no CHW task") {
				t.Fatalf("err = %v, want an issue at ServiceRequest.doNotPerform", err)
			}
		})
	}
}
