package chttofhir

import "github.com/cht-interop/openhim-mediator-go/mediator"

// URN is the mediator's URN in OpenHIM.
const URN = "urn:mediator:cht-to-fhir"

// Version is the mediator's version; bump it whenever Definition changes
// (core ignores a re-registration with the same version).
const Version = "1.0.0"

// ChannelName is the name of the default channel.
const ChannelName = "CHT to FHIR"

// ClientRole is the OpenHIM client role allowed to use the channel: give it
// to the client that CHT's outbound push authenticates as.
const ClientRole = "cht"

// ClientID is the OpenHIM client CHT's outbound push authenticates as (the
// basic auth user of --print-cht-outbound). It must differ from every role a
// channel allows: core refuses to create or update a client whose ID is such
// a role (409 "A role name conflicts with clientID", addClient and
// updateClient in openhim-core's src/api/clients.js).
const ClientID = "cht-outbound"

// Definition is the registration document of the mediator reachable by core
// at host:port: one endpoint and a default channel that routes CHT's
// outbound pushes (POST /cht/outbound and /cht/encounter) to it.
func Definition(host string, port int) mediator.Definition {
	route := mediator.Route{Name: "CHT to FHIR mediator", Type: "http", Host: host, Port: port, Primary: true}
	return mediator.Definition{
		URN:         URN,
		Version:     Version,
		Name:        "CHT to FHIR",
		Description: "Converts CHT outbound pushes to FHIR R4 transaction Bundles",
		Endpoints:   []mediator.Route{route},
		DefaultChannelConfig: []mediator.Channel{{
			Name:        ChannelName,
			URLPattern:  "^/cht/(outbound|encounter)$",
			Description: "CHT outbound pushes to the CHT to FHIR mediator",
			Type:        "http",
			Methods:     []string{"POST"},
			Allow:       []string{ClientRole},
			AuthType:    "private",
			Routes:      []mediator.Route{route},
		}},
	}
}
