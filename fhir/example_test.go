package fhir_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

const exampleMapping = `
forms:
  - form: HEIGHT_WEIGHT
    category: [{system: "http://terminology.hl7.org/CodeSystem/observation-category", code: vital-signs}]
    fields:
      - path: height
        code: {system: "http://loinc.org", code: 8302-2, display: Body height}
        type: quantity
        unit: cm
      - path: weight
        code: {system: "http://loinc.org", code: 29463-7, display: Body weight}
        type: quantity
        unit: kg
`

// The HEIGHT_WEIGHT report of the cht-interoperability OpenMRS example, as
// the records API stores it.
const exampleReport = `{"_id":"442b0937-a32f-443e-8d28-7d9a7552fda2","type":"data_record","form":"HEIGHT_WEIGHT",
 "fields":{"patient_uuid":"75905106a4bc2a9046ed28df070016ce","height":172,"weight":65},"reported_date":1730355950419}`

func exampleConverter() *fhir.Converter {
	m, err := fhir.ParseMapping([]byte(exampleMapping))
	if err != nil {
		log.Fatal(err)
	}
	c, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: m})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// A report becomes one transaction: its Encounter and one Observation per
// mapped field, written with PUT and deterministic ids.
func ExampleConverter_ReportBundle() {
	c := exampleConverter()
	var r cht.Report
	if err := json.Unmarshal([]byte(exampleReport), &r); err != nil {
		log.Fatal(err)
	}
	tx, err := c.ReportBundle(&r)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range tx.Entries {
		switch res := e.Resource.(type) {
		case *models.Encounter:
			fmt.Println(e.Request.Method.Code(), e.Request.Url, res.Status.Code(), *res.Period.Start)
		case *models.Observation:
			q := res.ValueQuantity
			fmt.Println(e.Request.Method.Code(), e.Request.Url, *res.Code.Coding[0].Code, *q.Value, *q.Code)
		}
	}
	// Output:
	// PUT Encounter/b6c715f5-ec65-50e3-985d-ddc8f3c38949 finished 2024-10-31T06:25:50.419Z
	// PUT Observation/512473a9-02c0-5190-bc24-61b3f1018301 8302-2 172 cm
	// PUT Observation/aa7f584c-8f1c-550e-b6a1-862acac3a99d 29463-7 65 kg
}

// Posting the same transaction twice leaves one set of resources.
func ExampleTransaction_MarshalJSON() {
	srv := fhirtest.NewServer(fhirtest.Config{})
	defer srv.Close()

	c := exampleConverter()
	var r cht.Report
	if err := json.Unmarshal([]byte(exampleReport), &r); err != nil {
		log.Fatal(err)
	}
	tx, err := c.ReportBundle(&r)
	if err != nil {
		log.Fatal(err)
	}
	body, err := tx.MarshalJSON()
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		resp, err := srv.Client().Post(srv.URL, "application/fhir+json", bytes.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode == http.StatusOK)
	}
	fmt.Println(srv.Count("Encounter"), "Encounter,", srv.Count("Observation"), "Observations")
	// Output:
	// true
	// true
	// 1 Encounter, 2 Observations
}

// Incoming FHIR is checked before use; problems are answered with an
// OperationOutcome naming the element.
func ExampleParseResource() {
	_, err := fhir.ParseResource([]byte(`{"resourceType":"Observation","code":{"text":"weight"},"valueString":"60","valueBoolean":true}`))
	var ire *fhir.InvalidResourceError
	fmt.Println(errors.As(err, &ire))
	out, err := fhir.Marshal(fhir.OutcomeFromError(err))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(out))
	// Output:
	// true
	// {"issue":[{"severity":"error","code":"required","diagnostics":"Observation.status: required element is missing","expression":["Observation.status"]},{"severity":"error","code":"structure","diagnostics":"Observation.value[x]: only one of valueBoolean, valueString is allowed","expression":["Observation.value[x]"]}],"resourceType":"OperationOutcome"}
}

// Reports of forms the mapping does not know give an error the caller can
// choose to ignore.
func ExampleErrUnmappedForm() {
	c := exampleConverter()
	_, err := c.ReportBundle(&cht.Report{ID: "r1", Form: "pregnancy_danger_sign"})
	if errors.Is(err, fhir.ErrUnmappedForm) {
		fmt.Println("skipped:", err)
	}
	// Output:
	// skipped: fhir: form not mapped: "pregnancy_danger_sign"
}

// Observations come back to CHT as a records API submission through the
// same mapping, reversed.
func ExampleConverter_SubmissionFromObservations() {
	c := exampleConverter()
	var r cht.Report
	if err := json.Unmarshal([]byte(exampleReport), &r); err != nil {
		log.Fatal(err)
	}
	obs, err := c.Observations(&r)
	if err != nil {
		log.Fatal(err)
	}
	// The subject Patient carries the CHT document id as an identifier.
	patient, err := c.Patient(&cht.Contact{ID: "75905106a4bc2a9046ed28df070016ce", Type: "person", Name: "John Test"})
	if err != nil {
		log.Fatal(err)
	}
	sub, err := c.SubmissionFromObservations("HEIGHT_WEIGHT", nil, obs, patient)
	if err != nil {
		log.Fatal(err)
	}
	body, err := json.Marshal(sub)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(body))
	// Output:
	// {"_meta":{"form":"HEIGHT_WEIGHT","reported_date":1730355950419},"height":172,"patient_uuid":"75905106a4bc2a9046ed28df070016ce","weight":65}
}

// A referral ServiceRequest becomes a submission that makes CHT raise a task
// for the patient's CHW.
func ExampleConverter_SubmissionFromServiceRequest() {
	c := exampleConverter()
	sr := &models.ServiceRequest{
		Status: models.RequestStatusActive,
		Intent: models.RequestIntentOrder,
		Subject: models.Reference{Identifier: &models.Identifier{
			System: ptr(c.Systems().DocumentID), Value: ptr("75905106a4bc2a9046ed28df070016ce")}},
	}
	sub, err := c.SubmissionFromServiceRequest(sr, nil)
	if err != nil {
		log.Fatal(err)
	}
	body, err := json.Marshal(sub)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(body))
	// Output:
	// {"_meta":{"form":"INTEROP_FOLLOW_UP"},"patient_uuid":"75905106a4bc2a9046ed28df070016ce"}
}

// A CHT person becomes a Patient with real identifier systems.
// A converter set up from the app's settings: the contact hierarchy comes
// from app_settings.contact_types (a program reads it from the instance
// with cht.Client.ContactTypes), and the mapping declares that the CHW type
// becomes a Practitioner only.
func ExampleConverter_ContactBundle() {
	types, err := cht.ParseContactTypes([]byte(`{"contact_types":[
		{"id":"c_household","parents":[]},
		{"id":"c_person","person":true,"parents":["c_household"]},
		{"id":"c_chw","person":true,"parents":["c_household"]}]}`))
	if err != nil {
		log.Fatal(err)
	}
	mapping, err := fhir.ParseMapping([]byte(`
contacts:
  types:
    - {type: c_chw, resources: [Practitioner]}
  lenient: [date_of_birth]
forms: []
`))
	if err != nil {
		log.Fatal(err)
	}
	c, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", ContactTypes: types, Mapping: mapping})
	if err != nil {
		log.Fatal(err)
	}
	household := &cht.Contact{ID: "hh-1", Type: "contact", ContactType: "c_household", Name: "Kamau household"}
	for _, doc := range []*cht.Contact{
		{ID: "p-1", Type: "contact", ContactType: "c_person", Name: "Zoë Ngũgĩ wa Kamau", Sex: "female",
			DateOfBirth: "1990-13-45", Parent: &cht.Lineage{ID: "hh-1", Doc: household}},
		{ID: "chw-1", Type: "contact", ContactType: "c_chw", Name: "Baby of Amina"},
		{ID: "x-1", Type: "contact", ContactType: "c_clinic", Name: "Not in the settings"},
	} {
		tx, err := c.ContactBundle(doc)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		for _, e := range tx.Entries {
			switch r := e.Resource.(type) {
			case *models.Patient:
				fmt.Printf("Patient %q gender %s birthDate %v\n", *r.Name[0].Text, *r.Gender, r.BirthDate)
			case *models.Practitioner:
				fmt.Printf("Practitioner %q\n", *r.Name[0].Text)
			case *models.Location:
				fmt.Printf("Location %q\n", *r.Name)
			}
		}
		for _, w := range tx.Warnings {
			fmt.Println("warning:", w)
		}
	}
	// Output:
	// Patient "Zoë Ngũgĩ wa Kamau" gender female birthDate <nil>
	// Location "Kamau household"
	// warning: fhir: convert doc "p-1" field "date_of_birth": not a date (want YYYY-MM-DD, YYYY-MM or YYYY)
	// Practitioner "Baby of Amina"
	// error: fhir: convert doc "x-1" field "contact_type": not a contact type of the app (contact_types in the app settings): contact type not in the app's contact_types
}

func ptr[T any](v T) *T { return &v }
