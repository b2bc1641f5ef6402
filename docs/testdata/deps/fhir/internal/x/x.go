// Package x is fhir's internal package.
package x

import _ "example.com/m/cht"
