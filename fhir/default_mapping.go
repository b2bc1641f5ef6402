package fhir

import _ "embed"

// defaultMappingYAML is default_mapping.yaml beside this file.
//
//go:embed default_mapping.yaml
var defaultMappingYAML []byte

// DefaultMapping returns the mapping the example mediators use: the
// HEIGHT_WEIGHT records form of the cht-interoperability OpenMRS example,
// the under-5 assessment and pregnancy danger sign XForms, and the
// INTEROP_FOLLOW_UP task form (lost to follow-up). Its codes under https://cht.example.org/codes
// are placeholders for a programme's own terminology; start your mapping
// file from it (format in docs/mappings.md). Each call returns a new value.
func DefaultMapping() *Mapping {
	m, err := ParseMapping(defaultMappingYAML)
	if err != nil {
		// The file is embedded and TestDefaultMappingParses checks it.
		panic("fhir: default mapping: " + err.Error())
	}
	return m
}
