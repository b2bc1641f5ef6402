package fhir

import (
	"errors"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// OutcomeIssue is one issue for [NewOperationOutcome].
type OutcomeIssue struct {
	Severity    models.IssueSeverity // the zero value is "fatal"; set it explicitly
	Code        models.IssueType     // the zero value is models.IssueTypeInvalid
	Diagnostics string
	Expression  []string // FHIRPath expressions of the elements concerned
}

// NewOperationOutcome builds a valid OperationOutcome. Unlike a zero
// models.OperationOutcome (whose issue marshals as null), the result always has
// at least one issue: with no arguments it holds a single informational
// "All OK" issue.
func NewOperationOutcome(issues ...OutcomeIssue) *models.OperationOutcome {
	oo := &models.OperationOutcome{Issue: make([]models.OperationOutcomeIssue, 0, max(1, len(issues)))}
	if len(issues) == 0 {
		issues = []OutcomeIssue{{Severity: models.IssueSeverityInformation, Code: models.IssueTypeInformational, Diagnostics: "All OK"}}
	}
	for _, is := range issues {
		out := models.OperationOutcomeIssue{Severity: is.Severity, Code: is.Code}
		if is.Diagnostics != "" {
			out.Diagnostics = ptr(is.Diagnostics)
		}
		for _, e := range is.Expression {
			if e != "" {
				out.Expression = append(out.Expression, e)
			}
		}
		oo.Issue = append(oo.Issue, out)
	}
	return oo
}

// outcome returns the error as an OperationOutcome with one error issue
// per problem, each naming its element in expression.
func (e *InvalidResourceError) outcome() *models.OperationOutcome {
	issues := make([]OutcomeIssue, 0, len(e.Issues))
	for _, is := range e.Issues {
		oi := OutcomeIssue{Severity: models.IssueSeverityError, Code: is.Code, Diagnostics: is.Reason}
		if is.Expression != "" {
			oi.Expression = []string{is.Expression}
			oi.Diagnostics = is.Expression + ": " + is.Reason
		}
		issues = append(issues, oi)
	}
	if len(issues) == 0 {
		issues = append(issues, OutcomeIssue{Severity: models.IssueSeverityError, Code: models.IssueTypeInvalid, Diagnostics: e.Error()})
	}
	return NewOperationOutcome(issues...)
}

// OutcomeFromError converts any error into an OperationOutcome with severity
// error: an *[InvalidResourceError] keeps its per-element issues, an
// [ErrUnmappedForm] or [ErrUnsupportedResource] becomes "not-supported", a
// *[ConversionError] "value", anything else "exception". A nil error gives
// an informational "All OK" outcome.
func OutcomeFromError(err error) *models.OperationOutcome {
	if err == nil {
		return NewOperationOutcome()
	}
	var ire *InvalidResourceError
	if errors.As(err, &ire) {
		return ire.outcome()
	}
	is := OutcomeIssue{Severity: models.IssueSeverityError, Code: models.IssueTypeException, Diagnostics: err.Error()}
	var ce *ConversionError
	switch {
	case errors.Is(err, ErrUnmappedForm), errors.Is(err, ErrUnsupportedResource):
		is.Code = models.IssueTypeNotSupported
	case errors.As(err, &ce):
		is.Code = models.IssueTypeValue
	}
	return NewOperationOutcome(is)
}

func ptr[T any](v T) *T { return &v }
