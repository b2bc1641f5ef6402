package push

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// Outbound is the app_settings.outbound configuration that makes CHT push
// what a [Handler] converts: every report of a form of mapping, and every
// contact (people and places, of the legacy types or of the app's
// contact_types), as whole documents ({"doc": doc}) to channelURL, the URL
// the handler's [OutboundPath] is reached at (an OpenHIM channel). CHT
// authenticates as user, with the password it keeps under passwordKey
// (outbound.NewDestination).
//
// Forms are matched ignoring case, as the converter matches them (records
// API forms are stored upper-case, XForms lower-case). Contacts are
// matched by document type rather than by contact type, since a
// configurable hierarchy names its person types freely (c_chw, patient...).
func Outbound(channelURL, user, passwordKey string, mapping *fhir.Mapping) (outbound.Config, error) {
	dest, err := outbound.NewDestination(channelURL, user, passwordKey)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	forms := make([]string, 0, len(mapping.Forms))
	for _, f := range mapping.Forms {
		if q := strconv.Quote(strings.ToLower(f.Form)); !slices.Contains(forms, q) {
			forms = append(forms, q)
		}
	}
	return outbound.Config{
		"cht_to_fhir_reports": {
			RelevantTo: fmt.Sprintf("doc.type === 'data_record' && typeof doc.form === 'string' && [%s].includes(doc.form.toLowerCase())",
				strings.Join(forms, ", ")),
			Destination: dest,
			Mapping:     outbound.DocMapping(),
		},
		"cht_to_fhir_contacts": {
			RelevantTo:  contactDocTypes,
			Destination: dest,
			Mapping:     outbound.DocMapping(),
		},
	}, nil
}

// contactDocTypes is the relevant_to of contacts: the document types of
// contacts in cht-core (shared-libs/contact-types-utils: the legacy
// HARDCODED_TYPES, and "contact" for the types of contact_types).
const contactDocTypes = "['contact', 'person', 'clinic', 'health_center', 'district_hospital'].includes(doc.type)"
