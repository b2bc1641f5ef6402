// Package fhir imports cht (allowed), its own internal package (allowed) and a test kit (refused).
package fhir

import (
	_ "example.com/m/cht"
	_ "example.com/m/cht/chttest"
	_ "example.com/m/fhir/internal/x"
)
