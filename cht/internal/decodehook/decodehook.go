// Package decodehook lets the subpackages of cht use package cht's document
// decoder without widening cht's public API: package cht sets these
// functions when it is initialised, which is before any package importing
// cht runs.
package decodehook

// Push is an outbound push body as [ParsePush] finds it.
type Push struct {
	// Doc is the document the body carries (the body itself, or the
	// member named by the document key), or nil when it carries none.
	Doc []byte
	// ID and Rev identify the document, from "_id"/"_rev" of Doc or
	// "id"/"rev" of the body; "" when unknown.
	ID, Rev string
	// View is Doc decoded, or nil without Doc. Package cht sets it to a
	// value with the methods DocType() string, Contact() (*cht.Contact,
	// error) and Report() (*cht.Report, error).
	View any
}

var (
	// ParsePush checks a push body and finds the document in it, decoding
	// the document once. The error describes malformed JSON for the sender.
	ParsePush func(body []byte, docKey string) (Push, error)
	// DecodeDoc decodes a document of either kind into a View as in
	// [Push]; a syntax error is returned as is.
	DecodeDoc func(doc []byte) (any, error)
)
