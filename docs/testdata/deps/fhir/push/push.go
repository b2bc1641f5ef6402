// Package push imports fhir and cht (allowed) and an example (refused).
package push

import (
	_ "example.com/m/cht"
	_ "example.com/m/examples/b/lib"
	_ "example.com/m/fhir"
)
