package direct

import "github.com/cht-interop/openhim-mediator-go/cht"

// MemberErrors returns the *cht.DecodeError values err, the error of
// decoding a document, holds (joined or wrapped), when each one is a
// member error (DecodeError.Member): the document was decoded, and only
// those members' typed fields are empty, their values kept verbatim. ok
// is false for nil and for any other error, such as a document that could
// not be decoded at all.
func MemberErrors(err error) (errs []*cht.DecodeError, ok bool) {
	var walk func(error) bool
	walk = func(err error) bool {
		switch e := err.(type) {
		case *cht.DecodeError:
			errs = append(errs, e)
			return e.Member
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				if !walk(x) {
					return false
				}
			}
			return len(e.Unwrap()) > 0
		case interface{ Unwrap() error }:
			return walk(e.Unwrap())
		}
		return false
	}
	if err == nil || !walk(err) {
		return nil, false
	}
	return errs, true
}

// Usable returns nil when err, the error of decoding a document, is nil or
// holds only member errors (see MemberErrors), and err otherwise.
//
// fhir/push and fhir/backfill convert such a document: the conversion
// refuses the members it writes to FHIR as it refuses any unusable value
// (or leaves out those of lenient fields), and never reads the others.
// Refused at decoding, one odd value anywhere (a number for a phone in
// the lineage, a NUL in a note) would keep the document, and every
// document hydrated with that contact, from FHIR for good.
func Usable(err error) error {
	if _, ok := MemberErrors(err); ok {
		return nil
	}
	return err
}
