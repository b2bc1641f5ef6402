package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// TestPayloadRepeatedCodes checks the numbering of repeated codes on both
// sides of the scan/map switch, for both conversion paths.
func TestPayloadRepeatedCodes(t *testing.T) {
	c := testConverter(t, Config{})
	for _, n := range []int{3, dupScanMax, dupScanMax + 1, 100} {
		p := &EncounterPayload{ID: "r"}
		var want []string
		seen := map[string]int{}
		for i := range n {
			code := []string{"a", "b", "c"}[i%3]
			if i%5 == 0 {
				code = "a"
			}
			seen[code]++
			id := "r/" + code
			if k := seen[code]; k > 1 {
				id += "#" + strconv.Itoa(k)
			}
			want = append(want, id)
			p.Observations = append(p.Observations, PayloadObservation{Code: code, ValueBoolean: ptr(true)})
		}
		tx, err := c.ConvertPayload(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range tx.Entries[1:] {
			o := e.Resource.(*models.Observation)
			if got := *o.Identifier[0].Value; got != want[i] {
				t.Fatalf("n=%d: observation %d identifier %s, want %s", n, i, got, want[i])
			}
		}
		checkBundleReferences(t, tx)
		slow, _ := tx.MarshalJSON()
		fast, err := c.appendPayloadBundle(nil, p)
		if err != nil || !bytes.Equal(fast, slow) {
			t.Errorf("n=%d: appendPayloadBundle differs from ConvertPayload (%v)", n, err)
		}
	}
}

// TestSubmissionMixedSubjects checks that Observations about different
// patients (or about another patient than the Encounter) are rejected
// instead of being merged under the first subject.
func TestSubmissionMixedSubjects(t *testing.T) {
	c := testConverter(t, Config{})
	sys := c.Systems().DocumentID
	ident := func(id string) *models.Reference {
		return &models.Reference{Identifier: &models.Identifier{System: ptr(sys), Value: ptr(id)}}
	}
	mk := func(subject *models.Reference, code, v, unit string) models.Observation {
		return models.Observation{Status: models.ObservationStatusFinal,
			Code:          models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://loinc.org"), Code: ptr(code)}}},
			Subject:       subject,
			ValueQuantity: &models.Quantity{Value: ptr(json.Number(v)), System: ptr(ucumSystem), Code: ptr(unit), Unit: ptr(unit)}}
	}
	tests := []struct {
		name string
		enc  *models.Encounter
		obs  []models.Observation
		expr string // "" = accepted
	}{
		{"same subject", nil, []models.Observation{mk(ident("A"), "8302-2", "170", "cm"), mk(ident("A"), "29463-7", "70", "kg")}, ""},
		{"one subject omitted", &models.Encounter{Subject: ident("A")}, []models.Observation{mk(nil, "8302-2", "170", "cm"), mk(ident("A"), "29463-7", "70", "kg")}, ""},
		{"two patients", nil, []models.Observation{mk(ident("A"), "8302-2", "170", "cm"), mk(ident("B"), "29463-7", "70", "kg")},
			"Bundle.entry.resource.where(resourceType='Observation')[1].subject"},
		{"other than encounter", &models.Encounter{Subject: ident("A")}, []models.Observation{mk(ident("B"), "8302-2", "170", "cm")}, "Observation.subject"},
		{"literal vs identifier", nil, []models.Observation{mk(ident("A"), "8302-2", "170", "cm"), mk(&models.Reference{Reference: ptr("Patient/B")}, "29463-7", "70", "kg")},
			"Bundle.entry.resource.where(resourceType='Observation')[1].subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := c.SubmissionFromObservations("HEIGHT_WEIGHT", tt.enc, tt.obs, nil)
			if tt.expr == "" {
				if err != nil || sub.Fields["patient_uuid"] != "A" {
					t.Errorf("sub = %+v, err = %v", sub, err)
				}
				return
			}
			var ire *InvalidResourceError
			if !errors.As(err, &ire) || ire.Issues[0].Expression != tt.expr {
				t.Errorf("err = %v, want issue at %s", err, tt.expr)
			}
		})
	}
}

// TestSubmissionQuantityUnitAccepted: quantities in the mapped unit are
// accepted with a UCUM code, or without code and system by unit text.
func TestSubmissionQuantityUnitAccepted(t *testing.T) {
	c := testConverter(t, Config{})
	subject := &models.Reference{Identifier: &models.Identifier{System: ptr(c.Systems().DocumentID), Value: ptr("A")}}
	for _, q := range []models.Quantity{
		{Value: ptr(json.Number("70")), System: ptr(ucumSystem), Code: ptr("kg")},
		{Value: ptr(json.Number("70")), System: ptr(ucumSystem), Code: ptr("kg"), Unit: ptr("kilogram")},
		{Value: ptr(json.Number("70")), Unit: ptr("kg")},
	} {
		o := models.Observation{Status: models.ObservationStatusFinal, Subject: subject, ValueQuantity: &q,
			Code: models.CodeableConcept{Coding: []models.Coding{{System: ptr("http://loinc.org"), Code: ptr("29463-7")}}}}
		sub, err := c.SubmissionFromObservations("HEIGHT_WEIGHT", nil, []models.Observation{o}, nil)
		if err != nil || sub.Fields["weight"] != json.Number("70") {
			t.Errorf("%+v: sub = %+v, err = %v", q, sub, err)
		}
	}
}

// TestGeneralPractitionerOnlyWhenIncluded checks that Patient.generalPractitioner
// references the place's CHW only when the CHW's contact doc is hydrated and
// therefore its Practitioner is in the bundle.
func TestGeneralPractitionerOnlyWhenIncluded(t *testing.T) {
	c := testConverter(t, Config{})
	for _, tt := range []struct {
		name, contact string
		want          bool
	}{
		{"shallow contact", `{"_id":"chw1"}`, false},
		{"hydrated contact", `{"_id":"chw1","type":"person","name":"C H W"}`, true},
		{"hydrated without type", `{"_id":"chw1","name":"C H W"}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p cht.Contact
			doc := `{"_id":"p1","type":"person","name":"A B","parent":{"_id":"hc","type":"health_center","name":"HC","contact":` + tt.contact + `}}`
			if err := json.Unmarshal([]byte(doc), &p); err != nil {
				t.Fatal(err)
			}
			tx, err := c.ContactBundle(&p)
			if err != nil {
				t.Fatal(err)
			}
			checkBundleReferences(t, tx)
			var pt *models.Patient
			practitioners := 0
			for _, e := range tx.Entries {
				switch r := e.Resource.(type) {
				case *models.Patient:
					pt = r
				case *models.Practitioner:
					practitioners++
				}
			}
			if pt == nil {
				t.Fatal("no Patient")
			}
			if got := len(pt.GeneralPractitioner) > 0; got != tt.want || practitioners != len(pt.GeneralPractitioner) {
				t.Errorf("generalPractitioner %+v with %d Practitioners in the bundle, want reference %v", pt.GeneralPractitioner, practitioners, tt.want)
			}
			if tt.want && !strings.HasPrefix(*pt.GeneralPractitioner[0].Reference, "urn:uuid:") {
				t.Errorf("generalPractitioner %s is not a bundle reference", *pt.GeneralPractitioner[0].Reference)
			}
		})
	}
}

// TestExactInt32 checks that integer fields are parsed exactly, not
// rounded through float64.
func TestExactInt32(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int32
		ok   bool
	}{
		{"12", 12, true},
		{"-12", -12, true},
		{"12.000", 12, true},
		{"1.2e1", 12, true},
		{"120e-1", 12, true},
		{"1E+2", 100, true},
		{"0.0", 0, true},
		{"-0", 0, true},
		{"0e999999999999", 0, true},
		{"2147483647", math.MaxInt32, true},
		{"-2147483648", math.MinInt32, true},
		{"2147483647.0", math.MaxInt32, true},
		{"2147483647.0000001", 0, false},
		{"2147483648", 0, false},
		{"-2147483649", 0, false},
		{"2.5", 0, false},
		{"1e-1", 0, false},
		{"1e10", 0, false},
		{"1e999999999999", 0, false},
		{"1e-999999999999", 0, false},
		{"100000000000000000000e-20", 1, true},
	} {
		got, ok := exactInt32(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("exactInt32(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestReportedDateRange checks that a reported_date that is no submission
// time (before 1970) or that no FHIR dateTime can hold (after year 9999) is
// a ConversionError naming reported_date on every path, and that the limits
// themselves convert.
func TestReportedDateRange(t *testing.T) {
	c := testConverter(t, Config{})
	for _, tt := range []struct {
		ms   int64
		want string // Encounter.period.start, "" = error
	}{
		{1, "1970-01-01T00:00:00.001Z"},
		{maxFHIRMillis, "9999-12-31T23:59:59.999Z"},
		{-1, ""},
		{minFHIRMillis, ""},
		{maxFHIRMillis + 1, ""},
		{math.MaxInt64, ""},
		{math.MinInt64, ""},
	} {
		r := loadReport(t, "testdata/report_assessment_hydrated.json")
		r.ReportedDate = cht.Millis(tt.ms)
		p := &EncounterPayload{ID: "r", ReportedDate: cht.Millis(tt.ms), Observations: []PayloadObservation{{Code: "a", ValueBoolean: ptr(true)}}}
		errs := map[string]error{}
		var enc *models.Encounter
		enc, errs["Encounter"] = c.Encounter(r)
		_, errs["Observations"] = c.Observations(r)
		_, errs["ReportBundle"] = c.ReportBundle(r)
		_, errs["appendReportBundle"] = c.appendReportBundle(nil, r)
		var ptx *Transaction
		ptx, errs["ConvertPayload"] = c.ConvertPayload(p)
		_, errs["appendPayloadBundle"] = c.appendPayloadBundle(nil, p)
		for name, err := range errs {
			if tt.want != "" {
				if err != nil {
					t.Errorf("%d: %s: %v", tt.ms, name, err)
				}
				continue
			}
			var ce *ConversionError
			if !errors.As(err, &ce) || ce.Field != "reported_date" {
				t.Errorf("%d: %s: err = %v, want a ConversionError naming reported_date", tt.ms, name, err)
			}
		}
		if tt.want != "" {
			if got := *enc.Period.Start; got != tt.want {
				t.Errorf("%d: period.start %s, want %s", tt.ms, got, tt.want)
			}
			if got := *ptx.Entries[0].Resource.(*models.Encounter).Period.Start; got != tt.want {
				t.Errorf("%d: payload period.start %s, want %s", tt.ms, got, tt.want)
			}
		}
	}
	// Date and dateTime fields given as milliseconds.
	for _, fld := range []cht.Fields{{"labour_onset": json.Number("253402300800000")}, {"delivery_date": json.Number("-62135596800001")}} {
		fld["patient_uuid"] = "p1"
		_, err := c.Observations(&cht.Report{ID: "r9", Form: "delivery", Fields: fld})
		var ce *ConversionError
		if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "outside the years 1 to 9999") {
			t.Errorf("%v: err = %v", fld, err)
		}
	}
}

// TestSubjectIDTextNamed: a hydrated subject whose _id is no valid text is
// a ConversionError naming patient._id or place._id on the report's paths.
func TestSubjectIDTextNamed(t *testing.T) {
	c := testConverter(t, Config{})
	for _, place := range []bool{false, true} {
		r := loadReport(t, "testdata/report_assessment_hydrated.json")
		want := "patient._id"
		if r.Patient == nil {
			t.Fatal("the fixture has no hydrated patient")
		}
		bad := *r.Patient
		bad.ID = "a\x01b"
		r.Patient = &bad
		if place {
			bad.Type, bad.ContactType = "clinic", ""
			r.Patient, r.Place, want = nil, &bad, "place._id"
		}
		errs := map[string]error{}
		_, errs["Encounter"] = c.Encounter(r)
		_, errs["ReportBundle"] = c.ReportBundle(r)
		_, errs["appendReportBundle"] = c.appendReportBundle(nil, r)
		for name, err := range errs {
			var ce *ConversionError
			if !errors.As(err, &ce) || ce.Field != want {
				t.Errorf("place %v: %s: %v, want a ConversionError naming %s", place, name, err, want)
			}
		}
	}
}

// TestSubjectPathDecidesItsType: a report subject known only by its id is
// a Location when the id came from a place path (place_id or place_uuid,
// top level or in fields, as cht-core's registration-utils getSubjectId
// reads them) and a Patient otherwise; a shortcode path (patient_id,
// place_id) with a shortcode value is referenced by shortcode.
func TestSubjectPathDecidesItsType(t *testing.T) {
	c := testConverter(t, Config{})
	for _, tt := range []struct {
		name    string
		r       cht.Report
		rt      string
		byCode  bool
		wantErr bool
	}{
		{name: "fields.patient_uuid", r: cht.Report{Fields: cht.Fields{"patient_uuid": "p-uuid"}}, rt: "Patient"},
		{name: "top-level patient_id", r: cht.Report{PatientID: "12345"}, rt: "Patient", byCode: true},
		{name: "fields.place_id shortcode", r: cht.Report{Fields: cht.Fields{"place_id": "54321"}}, rt: "Location", byCode: true},
		{name: "fields.place_uuid", r: cht.Report{Fields: cht.Fields{"place_uuid": "hh-uuid"}}, rt: "Location"},
		{name: "top-level place_uuid", r: cht.Report{Extra: map[string]json.RawMessage{"place_uuid": json.RawMessage(`"hh-uuid"`)}}, rt: "Location"},
		{name: "place_uuid of digits is no shortcode", r: cht.Report{Fields: cht.Fields{"place_uuid": "54321"}}, rt: "Location"},
		{name: "none", r: cht.Report{Fields: cht.Fields{}}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.ID = "r1"
			s, err := c.subject(&refs{}, &tt.r)
			if tt.wantErr {
				var ce *ConversionError
				if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "place_uuid") {
					t.Fatalf("err = %v, want a ConversionError listing the subject paths", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := deref(s.reference.Type); got != tt.rt {
				t.Errorf("reference type %q, want %s", got, tt.rt)
			}
			if s.byCode != tt.byCode {
				t.Errorf("by shortcode %v, want %v", s.byCode, tt.byCode)
			}
		})
	}
}

// deref is *p, or "" for nil.
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
