// An example importing its own subpackage and the library: allowed.
package main

import (
	_ "example.com/m/examples/b/lib"
	_ "example.com/m/fhir/push"
)

func main() {}
