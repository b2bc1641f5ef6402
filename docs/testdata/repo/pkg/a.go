package pkg

import _ "embed"

//go:embed conf.yaml
var conf []byte

// Add adds.
func Add(a, b int) int {
	sum := a + b
	return sum
}

// Sub subtracts.
func Sub(a, b int) int {
	return a - b
}
