package tocht

import (
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// URN is the mediator's URN in OpenHIM.
const URN = "urn:mediator:fhir-to-cht"

// Version is the mediator's version; bump it whenever Definition changes
// (core ignores a re-registration with the same version).
const Version = "1.0.0"

// ChannelName is the name of the default channel.
const ChannelName = "FHIR to CHT"

// ClientRole is the OpenHIM client role allowed to use the channel: give it
// to the client the EMR or HIE authenticates as.
const ClientRole = "emr"

// Definition is the registration document of the mediator reachable by core
// at host:port: one endpoint and a default channel that routes the EMR's
// FHIR writes (POST and PUT of /fhir and below) to it.
func Definition(host string, port int) openhim.Definition {
	route := openhim.Route{Name: "FHIR to CHT mediator", Type: "http", Host: host, Port: port, Primary: true}
	return openhim.Definition{
		URN:         URN,
		Version:     Version,
		Name:        "FHIR to CHT",
		Description: "Writes FHIR Patients, ServiceRequests, Tasks, Observations and Bundles from an EMR to CHT",
		Endpoints:   []openhim.Route{route},
		DefaultChannelConfig: []openhim.Channel{{
			Name:        ChannelName,
			URLPattern:  "^" + BasePath + "(/.*)?$",
			Description: "FHIR resources from the EMR to the FHIR to CHT mediator",
			Type:        "http",
			Methods:     []string{"POST", "PUT"},
			Allow:       []string{ClientRole},
			AuthType:    "private",
			Routes:      []openhim.Route{route},
		}},
	}
}
