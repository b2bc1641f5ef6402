// A library test may import a test kit, never an example.
package fhir

import (
	_ "example.com/m/cht/chttest"
	_ "example.com/m/examples/b"
)
