package tocht

import (
	"context"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// lookups is what one request has read while resolving and checking its
// entries, so that each is read once however many entries need it: an
// EMR's Bundle names its patient in every Observation (OpenMRS FHIR2
// writes Observation.subject on each obs), and a batch of new people
// shares their parent place. It lives in the request's context
// (withLookups) and is used by the request's one goroutine only; the next
// request reads everything again, since the Patient, the person or the
// place may have changed in between.
//
// A failure is not kept: the next entry that needs the answer asks again.
// A CHT document a subject names is kept when found and when not: a
// person the request itself writes is its Patient's, which a subject of
// the same request finds through the Bundle's references (bundleRef)
// without reading CHT, while planning or, in a batch, when a report's
// subject is checked before it is written.
type lookups struct {
	fhir       map[string]fhirAnswer   // by request URL
	docs       map[string]docFound     // CHT documents a subject named, by _id
	shortcodes map[string][]string     // contact _ids by patient_id
	parents    map[string]*cht.Lineage // lineage of a new person, by parent place
}

// fhirAnswer is the status and body of a FHIR server's answer.
type fhirAnswer struct {
	status int
	body   []byte
}

// docFound is what the checks need of a CHT document a subject names.
type docFound struct {
	exists bool   // CHT has it
	person bool   // it is a person (Bridge.isPerson)
	typeID string // its contact type, for the 422 of a document that is no person
}

type lookupsKey struct{}

// withLookups returns ctx carrying an empty lookups for one request.
func withLookups(ctx context.Context) context.Context {
	return context.WithValue(ctx, lookupsKey{}, newLookups())
}

func newLookups() *lookups {
	return &lookups{fhir: map[string]fhirAnswer{}, docs: map[string]docFound{},
		shortcodes: map[string][]string{}, parents: map[string]*cht.Lineage{}}
}

// lookupsOf returns the request's lookups, or an empty one when ctx has
// none (a caller outside a request): nothing is then kept between calls.
func lookupsOf(ctx context.Context) *lookups {
	if l, ok := ctx.Value(lookupsKey{}).(*lookups); ok {
		return l
	}
	return newLookups()
}
