package push

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// Outbound is the app_settings.outbound configuration that makes CHT push
// what a [Handler] converts: every report of a form of mapping, and every
// person, as whole documents ({"doc": doc}) to channelURL, the URL the
// handler's [OutboundPath] is reached at (an OpenHIM channel). CHT
// authenticates as user, with the password it keeps under passwordKey
// (outbound.NewDestination).
func Outbound(channelURL, user, passwordKey string, mapping *fhir.Mapping) (outbound.Config, error) {
	dest, err := outbound.NewDestination(channelURL, user, passwordKey)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	forms := make([]string, 0, len(mapping.Forms))
	for _, f := range mapping.Forms {
		forms = append(forms, strconv.Quote(f.Form))
	}
	return outbound.Config{
		"cht_to_fhir_reports": {
			RelevantTo:  fmt.Sprintf("doc.type === 'data_record' && [%s].includes(doc.form)", strings.Join(forms, ", ")),
			Destination: dest,
			Mapping:     outbound.DocMapping(),
		},
		"cht_to_fhir_people": {
			RelevantTo:  "doc.type === 'person' || (doc.type === 'contact' && doc.contact_type === 'person')",
			Destination: dest,
			Mapping:     outbound.DocMapping(),
		},
	}, nil
}
