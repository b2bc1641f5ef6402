package fhir

import (
	"errors"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// issueTypes maps our IssueCode values to the samply enum.
var issueTypes = map[IssueCode]models.IssueType{
	IssueInvalid: models.IssueTypeInvalid, IssueStructure: models.IssueTypeStructure,
	IssueRequired: models.IssueTypeRequired, IssueValue: models.IssueTypeValue,
	IssueCodeInvalid: models.IssueTypeCodeInvalid, IssueNotSupported: models.IssueTypeNotSupported,
	IssueNotFound: models.IssueTypeNotFound, IssueProcessing: models.IssueTypeProcessing,
	IssueException: models.IssueTypeException,
}

// OutcomeIssue is one issue for [NewOperationOutcome].
type OutcomeIssue struct {
	Severity    models.IssueSeverity // the zero value is "fatal"; set it explicitly
	Code        IssueCode            // "" means "invalid"
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
		issues = []OutcomeIssue{{Severity: models.IssueSeverityInformation, Code: "informational", Diagnostics: "All OK"}}
	}
	for _, is := range issues {
		code, ok := issueTypes[is.Code]
		switch {
		case is.Code == "informational":
			code = models.IssueTypeInformational
		case !ok:
			code = models.IssueTypeInvalid
		}
		out := models.OperationOutcomeIssue{Severity: is.Severity, Code: code}
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

// OperationOutcome returns the error as an OperationOutcome with one error
// issue per problem, each naming its element in expression.
func (e *InvalidResourceError) OperationOutcome() *models.OperationOutcome {
	issues := make([]OutcomeIssue, 0, len(e.Issues))
	for _, is := range e.Issues {
		oi := OutcomeIssue{Severity: models.IssueSeverityError, Code: is.Code, Diagnostics: is.Reason}
		if is.Code == "" {
			oi.Code = IssueInvalid
		}
		if is.Expression != "" {
			oi.Expression = []string{is.Expression}
			oi.Diagnostics = is.Expression + ": " + is.Reason
		}
		issues = append(issues, oi)
	}
	if len(issues) == 0 {
		issues = append(issues, OutcomeIssue{Severity: models.IssueSeverityError, Code: IssueInvalid, Diagnostics: e.Error()})
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
		return ire.OperationOutcome()
	}
	is := OutcomeIssue{Severity: models.IssueSeverityError, Code: IssueException, Diagnostics: err.Error()}
	var ce *ConversionError
	switch {
	case errors.Is(err, ErrUnmappedForm), errors.Is(err, ErrUnsupportedResource):
		is.Code = IssueNotSupported
	case errors.As(err, &ce):
		is.Code = IssueValue
	}
	return NewOperationOutcome(is)
}

func ptr[T any](v T) *T { return &v }
