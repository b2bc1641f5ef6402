package main

import "github.com/cht-interop/openhim-mediator-go/mediator"

// chtRole is the OpenHIM client role of CHT's outbound push.
const chtRole = "cht"

// chtToFHIRDefinition registers the CHT → FHIR mediator, as
// examples/cht-to-fhir does.
func chtToFHIRDefinition(host string, port int) mediator.Definition {
	route := mediator.Route{Name: "CHT to FHIR mediator", Type: "http", Host: host, Port: port, Primary: true}
	return mediator.Definition{
		URN: "urn:mediator:cht-to-fhir", Version: "1.0.0", Name: "CHT to FHIR",
		Description: "Converts CHT outbound pushes to FHIR R4 transaction Bundles",
		Endpoints:   []mediator.Route{route},
		DefaultChannelConfig: []mediator.Channel{{
			Name: "CHT to FHIR", URLPattern: "^/cht/(outbound|encounter)$", Type: "http", AuthType: "private",
			Methods: []string{"POST"}, Allow: []string{chtRole}, Routes: []mediator.Route{route},
		}},
	}
}
