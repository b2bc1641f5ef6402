package outbound_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

func ExampleHandler() {
	h, err := outbound.NewHandler(outbound.HandlerConfig{
		Handle: func(ctx context.Context, p *outbound.Payload) error {
			c, err := p.Contact()
			if err != nil {
				return err // CHT retries the push
			}
			fmt.Println("store", c.ID, c.Name) // write durably here, then return nil
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mediator := httptest.NewServer(h)
	defer mediator.Close()

	// What CHT sends for the mapping {"doc": "doc"}.
	body := `{"doc":{"_id":"75905106a4bc2a9046ed28df070016ce","type":"person","name":"John Test"}}`
	resp, err := http.Post(mediator.URL, "application/json", strings.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	// Output:
	// store 75905106a4bc2a9046ed28df070016ce John Test
	// 200 application/json
}

func ExampleConfig() {
	dest, err := outbound.NewDestination("https://openhim.example.org:5001/cht/person", "cht-outbound", "openhim_password")
	if err != nil {
		log.Fatal(err)
	}
	cfg := outbound.Config{
		"fhir_patient": {
			RelevantTo:  "doc.type === 'person' && doc.role === 'patient'",
			Destination: dest,
			Mapping:     outbound.DocMapping(),
		},
	}
	b, err := cfg.JSON()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	// Output:
	// {
	//   "fhir_patient": {
	//     "relevant_to": "doc.type === 'person' && doc.role === 'patient'",
	//     "destination": {
	//       "base_url": "https://openhim.example.org:5001",
	//       "path": "/cht/person",
	//       "auth": {
	//         "type": "basic",
	//         "username": "cht-outbound",
	//         "password_key": "openhim_password"
	//       }
	//     },
	//     "mapping": {
	//       "doc": "doc"
	//     }
	//   }
	// }
}
