package direct

import (
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

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

// Usable returns nil when err, the error of decoding a document (a report
// when report is set, else a contact), is nil or holds only member errors
// (see MemberErrors) of members whose value the conversion handles when
// it could not be decoded, and err otherwise. Those members are:
//
//   - of a contact the conversion checks (the document and its lineage;
//     a report's hydrated contact, patient and place and their lineage;
//     not a place's primary contact, which it does not check): its text
//     members name, external_id, phone, phone_alternate, sex,
//     date_of_birth and date_of_death, which the conversion refuses (a
//     *fhir.ConversionError naming the member) or, in a lenient field,
//     leaves out with a warning, as any unusable value; and notes and
//     short_name, which it never writes;
//   - of a report: its form fields (fields.…), converted or refused by
//     their mapping, or never written when unmapped.
//
// fhir/push and fhir/backfill convert such a document. Refused at
// decoding, one odd value (a phone stored as a number, a NUL in a note)
// would keep the document, and every document hydrated with that contact,
// from FHIR for good. Any other member (a reported_date, a parent's _id, a
// role, the report's fields as a whole) still refuses the document: left
// out, it would change what is written without a word.
func Usable(err error, report bool) error {
	members, ok := MemberErrors(err)
	if !ok {
		return err
	}
	for _, m := range members {
		if !handled(m.Path, report) {
			return err
		}
	}
	return nil
}

// contactMembers are the members of a contact Usable lets through.
var contactMembers = map[string]bool{
	"name": true, "external_id": true, "phone": true, "phone_alternate": true, "sex": true,
	"date_of_birth": true, "date_of_death": true, "notes": true, "short_name": true,
}

// handled reports whether the member at path (a cht.DecodeError's Path)
// is one Usable lets through.
func handled(path string, report bool) bool {
	seg := strings.Split(path, ".")
	if report {
		switch seg[0] {
		case "fields":
			return len(seg) > 1
		case "contact", "patient", "place":
			seg = seg[1:]
		default:
			return false
		}
	}
	for _, s := range seg[:max(len(seg)-1, 0)] {
		if s != "parent" {
			return false
		}
	}
	return len(seg) > 0 && contactMembers[seg[len(seg)-1]]
}
