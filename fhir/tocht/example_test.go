package tocht_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// The EMR sends a lost-to-follow-up ServiceRequest for a CHT patient; CHT
// gets one report that raises the CHW's follow-up task, however often the
// EMR sends it.
func Example() {
	chtSrv := chttest.NewDemoServer()
	defer chtSrv.Close()

	conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org",
		Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID}})
	if err != nil {
		log.Fatal(err)
	}
	chtClient, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername,
		Password: chttest.AdminPassword,
		// CHT calls become orchestrations of the OpenHIM transaction.
		HTTPClient: &http.Client{Transport: mediator.Transport(nil)}})
	if err != nil {
		log.Fatal(err)
	}
	bridge, err := tocht.New(tocht.Config{Converter: conv, CHT: chtClient})
	if err != nil {
		log.Fatal(err)
	}
	m, err := mediator.New(mediator.Config{Definition: tocht.Definition("localhost", 8602), Handler: bridge.Handler(),
		// The credentials core's route sends.
		Auth: mediator.InboundAuth{Username: "openhim-route", Password: "change-me"}})
	if err != nil {
		log.Fatal(err)
	}

	sr := `{"resourceType": "ServiceRequest", "id": "ltfu-1", "status": "active", "intent": "order",
		"reasonCode": [{"text": "Missed clinic visit"}],
		"subject": {"identifier": {"system": "https://cht.example.org/medic", "value": "` + chttest.DemoPatientID + `"}}}`
	for range 2 {
		req := httptest.NewRequest(http.MethodPost, "/fhir/ServiceRequest", strings.NewReader(sr))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.SetBasicAuth("openhim-route", "change-me") // as core's route does
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, req)
		env, err := mediator.ParseEnvelope(rec.Body.Bytes())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(env.Response.Status, env.Status)
	}
	for _, raw := range chtSrv.Reports("INTEROP_FOLLOW_UP") {
		var report struct {
			Form   string
			Fields map[string]string
		}
		if err := json.Unmarshal(raw, &report); err != nil {
			log.Fatal(err)
		}
		fmt.Println(report.Form, report.Fields["patient_uuid"], report.Fields["reason"])
	}
	// Output:
	// 201 Successful
	// 200 Successful
	// INTEROP_FOLLOW_UP 75905106a4bc2a9046ed28df070016ce Missed clinic visit
}
