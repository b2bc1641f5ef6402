package push

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// Outbound is the app_settings.outbound configuration that makes CHT push
// what a [Handler] converts: every report of a form of mapping, and every
// person, as whole documents ({"doc": doc}) to channelURL, the URL the
// handler's [OutboundPath] is reached at (an OpenHIM channel). CHT
// authenticates as user, with the password it keeps under passwordKey
// (cht.NewOutboundDestination).
func Outbound(channelURL, user, passwordKey string, mapping *fhir.Mapping) (cht.OutboundConfig, error) {
	dest, err := cht.NewOutboundDestination(channelURL, user, passwordKey)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	forms := make([]string, 0, len(mapping.Forms))
	for _, f := range mapping.Forms {
		forms = append(forms, strconv.Quote(f.Form))
	}
	return cht.OutboundConfig{
		"cht_to_fhir_reports": {
			RelevantTo:  fmt.Sprintf("doc.type === 'data_record' && [%s].includes(doc.form)", strings.Join(forms, ", ")),
			Destination: dest,
			Mapping:     cht.DocMapping(),
		},
		"cht_to_fhir_people": {
			RelevantTo:  "doc.type === 'person' || (doc.type === 'contact' && doc.contact_type === 'person')",
			Destination: dest,
			Mapping:     cht.DocMapping(),
		},
	}, nil
}
