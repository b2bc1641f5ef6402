// Package search holds what the fhir package and its sub-packages share
// to build FHIR search parameters.
package search

import "strings"

// Escape escapes the characters that separate a token search parameter's
// parts and alternatives (FHIR R4 search.html#escaping): \ , | and $.
func Escape(s string) string {
	if !strings.ContainsAny(s, `\,|$`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == '\\' || r == ',' || r == '|' || r == '$' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
