package fhirtocht

import (
	_ "embed"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// mappingYAML is the example's form field mapping (mapping.yaml beside this
// file; format in docs/mappings.md), the same as cht-to-fhir's, so that what
// one mediator writes to FHIR the other turns back into the same fields.
//
//go:embed mapping.yaml
var mappingYAML []byte

// DefaultMapping returns the mapping shipped with the example. Each call
// returns a new value.
func DefaultMapping() (*fhir.Mapping, error) {
	return fhir.ParseMapping(mappingYAML)
}

// DefaultMappingYAML returns the YAML source of DefaultMapping.
func DefaultMappingYAML() []byte {
	return append([]byte(nil), mappingYAML...)
}
