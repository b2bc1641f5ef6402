package main

import (
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// chtRole is the OpenHIM client role of CHT's outbound push.
const chtRole = "cht"

// chtToFHIRDefinition registers the CHT → FHIR mediator, as
// examples/cht-to-fhir does.
func chtToFHIRDefinition(host string, port int) openhim.Definition {
	route := openhim.Route{Name: "CHT to FHIR mediator", Type: "http", Host: host, Port: port, Primary: true}
	return openhim.Definition{
		URN: "urn:mediator:cht-to-fhir", Version: "1.0.0", Name: "CHT to FHIR",
		Description: "Converts CHT outbound pushes to FHIR R4 transaction Bundles",
		Endpoints:   []openhim.Route{route},
		DefaultChannelConfig: []openhim.Channel{{
			Name: "CHT to FHIR", URLPattern: "^/cht/(outbound|encounter)$", Type: "http", AuthType: "private",
			Methods: []string{"POST"}, Allow: []string{chtRole}, Routes: []openhim.Route{route},
		}},
	}
}
