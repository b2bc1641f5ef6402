package fhir

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// ErrUnmappedForm is returned (wrapped) when a report's form has no entry in
// the mapping. Callers that only forward mapped forms can skip such reports:
//
//	if errors.Is(err, fhir.ErrUnmappedForm) { return nil }
var ErrUnmappedForm = errors.New("fhir: form not mapped")

// ErrUnsupportedResource is returned (wrapped) by [ParseResource] and the
// FHIR → CHT converters for a resourceType they do not handle.
var ErrUnsupportedResource = errors.New("fhir: unsupported resource type")

// ConversionError reports CHT data that cannot be converted to FHIR. Field is
// the CHT field (a document key such as "date_of_death" or a report path
// such as "fields.vitals.temperature"), Value the offending value, Reason
// what is wrong with it. Error names the document and the field but not the
// value, which may be personal data (a date of birth, a phone number): the
// message reaches logs, OpenHIM transactions and CHT's own logs of a
// refused push. Read Value where your code needs it.
type ConversionError struct {
	DocID  string // CHT document _id, if known
	Field  string
	Value  any
	Reason string
	Err    error // underlying error, if any
}

// Error returns "fhir: convert doc <id> field <field>: <reason>".
func (e *ConversionError) Error() string {
	var b strings.Builder
	b.WriteString("fhir: convert")
	if e.DocID != "" {
		fmt.Fprintf(&b, " doc %q", e.DocID)
	}
	fmt.Fprintf(&b, " field %q", e.Field)
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ConversionError) Unwrap() error { return e.Err }

// Issue is one problem found in incoming FHIR. Expression is the FHIRPath of
// the element (e.g. "Observation.code.coding[0].system").
type Issue struct {
	Expression string
	Reason     string
	// Code is the OperationOutcome issue type; the zero value is
	// models.IssueTypeInvalid.
	Code models.IssueType
}

// InvalidResourceError reports incoming FHIR that fails the checks of
// [ParseResource] or a FHIR → CHT converter. Use [OutcomeFromError] to
// answer the sender.
type InvalidResourceError struct {
	ResourceType string
	Issues       []Issue
	Err          error // optional sentinel, e.g. ErrUnsupportedResource
}

// Unwrap returns the sentinel error, if any.
func (e *InvalidResourceError) Unwrap() error { return e.Err }

// Error lists the issues as "<expression>: <reason>".
func (e *InvalidResourceError) Error() string {
	var b strings.Builder
	b.WriteString("fhir: invalid ")
	if e.ResourceType != "" {
		b.WriteString(e.ResourceType)
	} else {
		b.WriteString("resource")
	}
	for i, is := range e.Issues {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if is.Expression != "" {
			b.WriteString(is.Expression)
			b.WriteString(": ")
		}
		b.WriteString(is.Reason)
	}
	return b.String()
}

func invalid(rt, expr, reason string) *InvalidResourceError {
	return &InvalidResourceError{ResourceType: rt, Issues: []Issue{{Expression: expr, Reason: reason}}}
}

func required(rt, expr string) *InvalidResourceError {
	return &InvalidResourceError{ResourceType: rt, Issues: []Issue{{Expression: expr, Reason: "required element is missing", Code: models.IssueTypeRequired}}}
}

// textProblem says why s cannot be a FHIR string ("" when it can): it must
// be valid UTF-8 without NUL or other control characters except tab, line
// feed and carriage return.
func textProblem(s string) string {
	// Most values are printable ASCII: eight bytes at a time, then one
	// comparison per byte.
	i := 0
	for ; i+8 <= len(s); i += 8 {
		t := s[i : i+8]
		x := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		// A byte of x is below 0x20, 0x7f (a zero byte of d), or 0x80
		// and above: (v-lsb*n)&^v&msb is not zero exactly when a byte
		// of v is below n (n <= 0x80).
		d := x ^ 0x7f*lsb8
		if (x|(x-0x20*lsb8)&^x|(d-lsb8)&^d)&msb8 != 0 {
			return slowTextProblem(s)
		}
	}
	for ; i < len(s); i++ {
		if s[i]-0x20 >= 0x7f-0x20 {
			return slowTextProblem(s)
		}
	}
	return ""
}

const (
	lsb8 = 0x0101010101010101
	msb8 = 0x8080808080808080
)

// slowTextProblem is textProblem for a string that holds a byte other than
// printable ASCII.
func slowTextProblem(s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 && b != '\t' && b != '\n' && b != '\r' || b == 0x7f {
			if b == 0 {
				return "contains a NUL byte"
			}
			return fmt.Sprintf("contains the control character %#02x", b)
		}
	}
	return ""
}

// checkText returns a *ConversionError naming field when s is not a valid
// FHIR string (see textProblem).
func checkText(docID, field, s string) *ConversionError {
	if p := textProblem(s); p != "" {
		return &ConversionError{DocID: docID, Field: field, Value: s, Reason: p}
	}
	return nil
}
