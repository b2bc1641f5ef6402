package fhir

import (
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// outcomeText returns the server's reasons in an OperationOutcome: the
// diagnostics and details.text of each issue (servers put the reason in
// either: HAPI in diagnostics, Medplum in details.text), issues of severity
// fatal and error first, joined with "; ". Identical texts are given once.
// It returns "" for nil or an outcome without text.
func outcomeText(oo *models.OperationOutcome) string {
	if oo == nil {
		return ""
	}
	var parts []string
	seen := map[string]bool{}
	add := func(s *string) {
		if s == nil {
			return
		}
		t := strings.TrimSpace(*s)
		if t != "" && !seen[t] {
			seen[t] = true
			parts = append(parts, t)
		}
	}
	for _, pass := range []bool{true, false} {
		for _, is := range oo.Issue {
			serious := is.Severity == models.IssueSeverityFatal || is.Severity == models.IssueSeverityError
			if serious != pass {
				continue
			}
			add(is.Diagnostics)
			if is.Details != nil {
				add(is.Details.Text)
			}
		}
	}
	return strings.Join(parts, "; ")
}

// bodySnippet returns the start of a response body that is not an
// OperationOutcome (an HTML error page, plain text), as valid UTF-8 on one
// line, so an error still says what the server answered.
func bodySnippet(b []byte) string {
	const limit = 200
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b[:min(len(b), 4*limit)]), "\uFFFD")), " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "..."
	}
	return s
}

// parseOutcome decodes an OperationOutcome from a response body; it
// returns nil when the body is not one or has no issues. With outcomeText
// it gives every error from a FHIR server the server's reason the same way.
func parseOutcome(b []byte) *models.OperationOutcome {
	if len(b) == 0 {
		return nil
	}
	oo, err := models.UnmarshalOperationOutcome(b)
	if err != nil || len(oo.Issue) == 0 {
		return nil
	}
	return &oo
}
