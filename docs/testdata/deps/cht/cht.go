// Package cht imports fhir: refused.
package cht

import _ "example.com/m/fhir"
