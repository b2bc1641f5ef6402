package fhir_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// After posting, check that the server applied every entry before
// acknowledging the CHT push.
func ExampleCheckTransactionResponse() {
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
	srv.FailNextWrites(1, http.StatusServiceUnavailable) // the first attempt fails
	for attempt := 1; attempt <= 2; attempt++ {
		resp, err := srv.Client().Post(srv.URL, "application/fhir+json", bytes.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			log.Fatal(err)
		}
		var te *fhir.TransactionError
		if err := fhir.CheckTransactionResponse(resp.StatusCode, answer, tx.Len()); errors.As(err, &te) {
			fmt.Println("attempt", attempt, "failed with HTTP", te.StatusCode)
			continue
		}
		fmt.Println("attempt", attempt, "stored", tx.Len(), "resources")
	}
	// Output:
	// attempt 1 failed with HTTP 503
	// attempt 2 stored 3 resources
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
	// {"_meta":{"form":"interop_follow_up"},"patient_uuid":"75905106a4bc2a9046ed28df070016ce"}
}

// A CHT person becomes a Patient with real identifier systems.
func ExampleConverter_Patient() {
	c := exampleConverter()
	p, err := c.Patient(&cht.Contact{ID: "75905106a4bc2a9046ed28df070016ce", Type: "person", Name: "John Test",
		Sex: "male", DateOfBirth: "1980-06-06", Phone: "+2548277217095", PatientID: "13985"})
	if err != nil {
		log.Fatal(err)
	}
	out, err := fhir.Marshal(p)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(out))
	// Output:
	// {"id":"858c31a6-35fb-568e-8245-e4233bb4a890","meta":{"tag":[{"system":"https://cht.example.org/source","code":"cht","display":"Community Health Toolkit"}]},"identifier":[{"type":{"text":"CHT document ID"},"system":"https://cht.example.org/medic","value":"75905106a4bc2a9046ed28df070016ce"},{"use":"official","type":{"text":"CHT patient ID"},"system":"https://cht.example.org/patient_id","value":"13985"}],"name":[{"text":"John Test","family":"Test","given":["John"]}],"telecom":[{"system":"phone","value":"+2548277217095"}],"gender":"male","birthDate":"1980-06-06","resourceType":"Patient"}
}

func ptr[T any](v T) *T { return &v }
