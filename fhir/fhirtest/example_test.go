package fhirtest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// post sends a FHIR JSON body and returns the status and decoded answer.
func post(c *http.Client, url, body string, header ...string) (int, map[string]any) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func ExampleNewServer() {
	srv := fhirtest.NewServer(fhirtest.Config{})
	defer srv.Close()

	patient := `{"resourceType":"Patient","identifier":[{"system":"https://cht.example.org/contact","value":"c-1"}]}`
	cond := "identifier=https://cht.example.org/contact|c-1"
	first, _ := post(srv.Client(), srv.URL+"/Patient", patient, "If-None-Exist", cond)
	second, _ := post(srv.Client(), srv.URL+"/Patient", patient, "If-None-Exist", cond)

	fmt.Println("base URL ends with /fhir/R4:", strings.HasSuffix(srv.URL, "/fhir/R4"))
	fmt.Println("conditional create:", first, second)
	fmt.Println("patients:", srv.Count("Patient"))
	// Output:
	// base URL ends with /fhir/R4: true
	// conditional create: 201 200
	// patients: 1
}

func ExampleServer_transaction() {
	srv := fhirtest.NewServer(fhirtest.Config{})
	defer srv.Close()

	// A Patient created if absent and an Observation updated by identifier, linked by urn:uuid.
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:0d0c4a47-5b2a-4f4e-8a51-2f3f5f0a0001",
	  "resource":{"resourceType":"Patient","identifier":[{"system":"urn:cht","value":"p1"}]},
	  "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:cht|p1"}},
	 {"resource":{"resourceType":"Observation","status":"final","code":{"text":"weight"},
	   "identifier":[{"system":"urn:cht","value":"r1-weight"}],
	   "subject":{"reference":"urn:uuid:0d0c4a47-5b2a-4f4e-8a51-2f3f5f0a0001"},
	   "valueQuantity":{"value":62.40,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}},
	  "request":{"method":"PUT","url":"Observation?identifier=urn:cht|r1-weight"}}]}`

	for range 2 { // posting twice creates nothing new
		status, resp := post(srv.Client(), srv.URL, bundle)
		var statuses []any
		for _, e := range resp["entry"].([]any) {
			statuses = append(statuses, e.(map[string]any)["response"].(map[string]any)["status"])
		}
		fmt.Println(status, resp["type"], statuses)
	}

	var obs struct {
		Subject       struct{ Reference string }
		ValueQuantity json.RawMessage
	}
	_ = json.Unmarshal(srv.Resources("Observation")[0], &obs)
	var pat struct{ ID string }
	_ = json.Unmarshal(srv.Resources("Patient")[0], &pat)
	fmt.Println("subject rewritten:", obs.Subject.Reference == "Patient/"+pat.ID)
	fmt.Println("decimal kept:", string(obs.ValueQuantity))
	fmt.Println(srv.Counts())
	// Output:
	// 200 transaction-response [201 Created 201 Created]
	// 200 transaction-response [200 OK 200 OK]
	// subject rewritten: true
	// decimal kept: {"code":"kg","system":"http://unitsofmeasure.org","unit":"kg","value":62.40}
	// map[Observation:1 Patient:1]
}

func ExampleHandler_FailNextWrites() {
	srv := fhirtest.NewServer(fhirtest.Config{})
	defer srv.Close()

	srv.FailNextWrites(2, http.StatusServiceUnavailable)
	for range 3 {
		status, body := post(srv.Client(), srv.URL+"/Patient", `{"resourceType":"Patient"}`)
		fmt.Println(status, body["resourceType"])
	}
	for _, r := range srv.Requests() {
		fmt.Printf("%s %s -> %d fault=%q\n", r.Method, r.Path, r.Status, r.Fault)
	}
	fmt.Println("stored:", srv.Count("Patient"))
	// Output:
	// 503 OperationOutcome
	// 503 OperationOutcome
	// 201 Patient
	// POST /fhir/R4/Patient -> 503 fault="fail"
	// POST /fhir/R4/Patient -> 503 fault="fail"
	// POST /fhir/R4/Patient -> 201 fault=""
	// stored: 1
}

func ExampleHandler_SetFaults() {
	srv := fhirtest.NewServer(fhirtest.Config{})
	defer srv.Close()

	// 30 % of writes fail with 503, reproducibly for seed 1.
	if err := srv.SetFaults(fhirtest.Faults{FailRate: 0.3, Seed: 1}); err != nil {
		fmt.Println(err)
		return
	}
	failed := 0
	for range 100 {
		if status, _ := post(srv.Client(), srv.URL+"/Patient", `{"resourceType":"Patient"}`); status != http.StatusCreated {
			failed++
		}
	}
	fmt.Println("failed:", failed, "stored:", srv.Count("Patient"))

	err := srv.SetFaults(fhirtest.Faults{FailRate: 1.5})
	fmt.Println(err)
	// Output:
	// failed: 36 stored: 64
	// fhirtest: Faults.FailRate 1.5 outside [0, 1]
}

func ExampleHandler_Load() {
	srv := fhirtest.NewServer(fhirtest.Config{
		Now: func() time.Time { return time.Date(2024, 10, 31, 6, 25, 50, 0, time.UTC) },
	})
	defer srv.Close()

	// Seed with the FHIR model types the library builds with, or with raw JSON.
	id, name := "p1", "Grace Achieng"
	err := srv.Load(
		models.Patient{Id: &id, Name: []models.HumanName{{Text: &name}}},
		json.RawMessage(`{"resourceType":"Practitioner","id":"chw1"}`),
	)
	fmt.Println(err)
	raw, ok := srv.Resource("Patient", "p1")
	fmt.Println(ok, string(raw))
	// Output:
	// <nil>
	// true {"id":"p1","meta":{"lastUpdated":"2024-10-31T06:25:50.000Z","versionId":"1"},"name":[{"text":"Grace Achieng"}],"resourceType":"Patient"}
}

// A Handler can be mounted under a mux next to other fakes, for example in a demo.
func ExampleNewHandler() {
	h, err := fhirtest.NewHandler(fhirtest.Config{BasePath: "/fhir"})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/", h)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	ts := httptest.NewServer(mux)
	defer ts.Close()
	defer h.Close()

	status, body := post(ts.Client(), ts.URL+"/fhir/Observation", `{"resourceType":"Observation","status":"final"}`)
	issue := body["issue"].([]any)[0].(map[string]any)
	fmt.Println(status, issue["code"], issue["expression"])
	// Output:
	// 400 structure [Observation.code]
}
