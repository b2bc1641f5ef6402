// An example importing another example's package: refused.
package main

import (
	_ "example.com/m/examples/b/lib"
	_ "example.com/m/fhir"
	_ "example.com/m/mediator"
)

func main() {}
