// Package validation holds no library code. Its tests, in a module of their
// own so that github.com/google/fhir stays out of the library's dependency
// graph, validate every resource the fhir converters produce from the test
// fixtures with google/fhir's R4 unmarshaller (validation on), the ele-1
// rule and the invariants obs-6 and qty-3.
//
// Run them with:
//
//	cd fhir/internal/validation && go test ./...
package validation
