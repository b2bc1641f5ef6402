package chttofhir

import (
	_ "embed"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// mappingYAML is the example's form field mapping (mapping.yaml beside this
// file; format in docs/mappings.md).
//
//go:embed mapping.yaml
var mappingYAML []byte

// DefaultMapping returns the mapping shipped with the example: the
// HEIGHT_WEIGHT records form, the assessment and pregnancy danger sign
// XForms, and the lost-to-follow-up form. Each call returns a new value.
func DefaultMapping() (*fhir.Mapping, error) {
	return fhir.ParseMapping(mappingYAML)
}

// DefaultMappingYAML returns the YAML source of DefaultMapping.
func DefaultMappingYAML() []byte {
	return append([]byte(nil), mappingYAML...)
}
