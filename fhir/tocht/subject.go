package tocht

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// subject is the CHT person a report is about, as subjectPatient resolved
// it from the subject reference.
type subject struct {
	// id is the person's CHT _id; "" when the reference names no Patient,
	// which the converter then reports.
	id string
	// inBundle is the reference (fullUrl or Patient/<id>, without a
	// version) of the Patient of the same Bundle that writes the person,
	// if any: the person need not exist before the Bundle is written, and
	// a batch does not write the report when that Patient failed.
	inBundle string
	// hint is added to the 422 of a person CHT does not have.
	hint string
	// found is set when the person was read from CHT while resolving,
	// and is a person: it is not read again before the write.
	found bool
	// own is set when the reference carries the CHT _id itself: the
	// converter reads it from the reference (patient_uuid, or place_id
	// for a Location).
	own bool
}

// check is the _id to verify before writing: "" for a person written in
// the same Bundle, one found while resolving, or an unresolved reference.
func (s subject) check() string {
	if s.inBundle != "" || s.found {
		return ""
	}
	return s.id
}

// patientOf is the subject as a Patient carrying the CHT _id identifier,
// for the converter; nil when unresolved, or when the converter reads the
// reference itself.
func (b *Bridge) patientOf(s subject) *models.Patient {
	if s.id == "" || s.own {
		return nil
	}
	return b.patientWithID(s.id)
}

// lookupHint ends the 422 of a subject identifier that names no CHT
// person when the bridge has no FHIR server to look it up on.
const lookupHint = "the bridge has no FHIR server to look the identifier up on: set Config.FHIRURL " +
	"(fhir.url of the fhir-to-cht mediator) so that it finds the Patient carrying the identifier there, " +
	"when that Patient was sent keyed by another of its identifiers"

// sendFirst is the advice of the 422 of a subject CHT does not have.
const sendFirst = "send the Patient first, or refer to it by its CHT identifier"

// noPerson is the 422 of a subject whose CHT person id does not exist.
// more follows the person's _id, hint the usual advice.
func noPerson(expr, id, more, hint string) error {
	msg := fmt.Sprintf("no CHT person %s for this subject%s: %s", id, more, sendFirst)
	if hint != "" {
		msg += "; " + hint
	}
	return &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr, msg, models.IssueTypeNotFound)}
}

// identifierSubject resolves a subject identifier that is not a CHT _id.
// A patient_id shortcode is the contact CHT finds by it
// (personByShortcode). Another identifier is a person key (identifierKey):
// the person the Bundle writes under that key, else the one CHT has under
// it. When CHT has none and Config.FHIRURL is set, the identifier is
// looked up on the FHIR server (searchPatient): the one Patient that
// carries it is keyed as the bridge keys Patients (personIDOf), so that a
// subject named by another of the Patient's identifiers than its key (an
// EMR's national id, where the Patient was sent with its EMR id first)
// finds the person.
//
// miss is the 422 of an identifier that names no person: none, or more
// than one, is found. err is any other failure: CHT or the FHIR server
// failed, or the Patient found is refused. Without verify, the person of
// the key is not read from CHT when Config.FHIRURL is not set, nor is the
// person of the Patient found: the write checks them (the 422 of the
// former saying that Config.FHIRURL would look the identifier up). With
// verify the person must exist (one the Bundle writes does), else it is
// a miss.
func (b *Bridge) identifierSubject(ctx context.Context, ident *models.Identifier, expr string,
	refs map[string]bundleRef, verify bool) (s subject, miss, err error) {
	value := *ident.Value
	if ident.System != nil && *ident.System == b.sys.PatientID {
		id, err := b.personByShortcode(ctx, value, expr)
		if err != nil {
			if statusOf(err) == http.StatusUnprocessableEntity {
				return subject{}, err, nil
			}
			return subject{}, nil, err
		}
		return subject{id: id}, nil, nil
	}
	key := b.PersonID(identifierKey(ident.System, value, b.sys.ExternalID))
	if r, ok := refs[identifierRefKey(key)]; ok && r.written {
		// A Patient of the Bundle carries the identifier (maybe not as
		// the one that keys its person).
		return subject{id: r.id, inBundle: identifierRefKey(key)}, nil, nil
	}
	if ref, ok := writtenBy(refs, key); ok {
		return subject{id: key, inBundle: ref}, nil, nil
	}
	if b.cfg.FHIRURL == "" && !verify {
		return subject{id: key, hint: lookupHint}, nil, nil
	}
	s, err = b.findSubject(ctx, key, expr)
	if err != nil || s.id != "" {
		return s, nil, err
	}
	if b.cfg.FHIRURL == "" {
		return subject{}, noPerson(expr, key, "", lookupHint), nil
	}
	p, n, err := b.searchPatient(ctx, ident)
	if err != nil {
		return subject{}, nil, err
	}
	token := tokenOf(ident)
	switch n {
	case 0:
		return subject{}, noPerson(expr, key, ", and the FHIR server has no Patient with the identifier "+quote(token), ""), nil
	case 1:
	default:
		return subject{}, &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr, fmt.Sprintf(
			"the identifier %s is ambiguous: CHT has no person keyed by it, and the FHIR server has more than one Patient "+
				"with it: refer to the patient by its reference, or by its CHT identifier", quote(token)), models.IssueTypeMultipleMatches)}, nil
	}
	what := "the Patient with the identifier " + quote(token) + ", found on the FHIR server"
	if p.Id != nil && *p.Id != "" {
		what = "Patient/" + *p.Id + ", found on the FHIR server by the identifier " + quote(token)
	}
	id, err := b.subjectOfPatient(p, expr, what)
	if err != nil {
		return subject{}, nil, err
	}
	if ref, ok := writtenBy(refs, id); ok {
		return subject{id: id, inBundle: ref}, nil, nil
	}
	if verify {
		if id != key {
			if s, err = b.findSubject(ctx, id, expr); err != nil || s.id != "" {
				return s, nil, err
			}
		}
		// A miss, but the person the identifier names is known: a
		// reference beside it must not name another (bothSubject).
		return subject{id: id}, noPerson(expr, id, " ("+what+")", ""), nil
	}
	return subject{id: id, hint: "the subject is the person of " + what}, nil, nil
}

// literalSubject resolves a literal reference to Patient/<id>, not to a
// Patient of the same Bundle: read from Config.FHIRURL when set, and keyed
// as the bridge keys Patients (personIDOf), else with the id as the key.
// The person the Bundle writes under that key is the Bundle's. With
// tolerant, a Patient the FHIR server does not have is a miss (its 422),
// not an error.
func (b *Bridge) literalSubject(ctx context.Context, id, expr string, refs map[string]bundleRef, tolerant bool) (s subject, miss, err error) {
	pid := b.PersonID(id)
	if b.cfg.FHIRURL != "" {
		p, err := b.readPatient(ctx, id, expr)
		if err != nil {
			if tolerant && notOnServer(err) {
				return subject{}, err, nil
			}
			return subject{}, nil, err
		}
		if pid, err = b.subjectOfPatient(p, expr, "the referenced Patient/"+id+", read from the FHIR server"); err != nil {
			return subject{}, nil, err
		}
	}
	if ref, ok := writtenBy(refs, pid); ok {
		return subject{id: pid, inBundle: ref}, nil, nil
	}
	return subject{id: pid}, nil, nil
}

// bothSubject resolves a subject reference with both an identifier (not a
// CHT _id) and a literal reference to Patient/<id> (not to a Patient of
// the same Bundle). The identifier is tried first (identifierSubject);
// the literal reference (literalSubject) is the person when the
// identifier names none. When both name a person and those differ, the
// reference is refused (422 naming expr): R4 references.html#logical has
// both name the same resource, and the bridge does not guess which one
// the sender meant. Either part naming no person is no error while the
// other names one.
func (b *Bridge) bothSubject(ctx context.Context, ident *models.Identifier, ref, id, expr string, refs map[string]bundleRef) (subject, error) {
	is, imiss, err := b.identifierSubject(ctx, ident, expr, refs, true)
	if err != nil {
		return subject{}, err
	}
	ls, lmiss, err := b.literalSubject(ctx, id, expr, refs, true)
	if err != nil {
		return subject{}, err
	}
	// The identifier named, through the FHIR server, a person CHT does
	// not have yet: a reference to another is not a fallback but another
	// patient, whatever CHT has.
	if imiss != nil && is.id != "" && lmiss == nil && ls.id != "" && is.id != ls.id {
		return subject{}, differ(expr, ident, ref, is.id, ls.id)
	}
	if lmiss == nil && ls.inBundle == "" && (imiss != nil || ls.id != is.id) {
		found, err := b.findSubject(ctx, ls.id, expr)
		if err != nil {
			return subject{}, err
		}
		if found.id == "" {
			lmiss = noPerson(expr, ls.id, "", "")
		}
		ls = found
	}
	switch {
	case imiss == nil && lmiss == nil:
		if is.id != ls.id {
			return subject{}, differ(expr, ident, ref, is.id, ls.id)
		}
		return is, nil
	case imiss == nil:
		return is, nil
	case lmiss == nil:
		return ls, nil
	}
	msg := fmt.Sprintf("neither its identifier nor its reference names a CHT person (identifier %s: %s; reference %s: %s): %s",
		quote(tokenOf(ident)), reasonOf(imiss), quote(ref), reasonOf(lmiss), sendFirst)
	if b.cfg.FHIRURL == "" {
		msg += "; " + lookupHint
	}
	return subject{}, &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr, msg, models.IssueTypeNotFound)}
}

// differ is the 422 of a reference whose identifier and literal reference
// name different patients (the CHT persons is and ls).
func differ(expr string, ident *models.Identifier, ref, is, ls string) error {
	return &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr, fmt.Sprintf(
		"its identifier %s names CHT person %s, but its reference %s names CHT person %s: "+
			"an identifier and a reference must name the same patient", quote(tokenOf(ident)), is, quote(ref), ls),
		models.IssueTypeValue)}
}

// subjectOfPatient is the _id of the CHT person the Patient p, read from
// the FHIR server (what says how), is (personIDOf). A modifier extension
// may change what the Patient is (R4
// extensibility.html#modifierExtension): its identifiers do not name a
// CHT person then.
func (b *Bridge) subjectOfPatient(p *models.Patient, expr, what string) (string, error) {
	if issues := modifierIssues(p, "Patient"); len(issues) > 0 {
		return "", invalid(expr, fmt.Sprintf("%s: %s: %s", what, issues[0].Expression, issues[0].Reason), models.IssueTypeNotSupported)
	}
	pid := b.personIDOf(p)
	if pid == "" {
		return "", invalid(expr, what+" has neither identifier nor id", models.IssueTypeValue)
	}
	if err := checkDocID(pid, expr); err != nil {
		return "", err
	}
	return pid, nil
}

// findSubject reads the CHT document id, the person a subject names: the
// subject is that person (found when it is a person; another document is
// refused before the write, see checkSubject), or the zero subject when
// CHT has no document id. expr names the subject (see subjectDoc).
func (b *Bridge) findSubject(ctx context.Context, id, expr string) (subject, error) {
	d, err := b.subjectDoc(ctx, "CHT find subject", id, expr)
	if err != nil || !d.exists {
		return subject{}, err
	}
	return subject{id: id, found: d.person}, nil
}

// subjectDoc reads the CHT document id a subject names, once per request
// (lookups), as the orchestration name. A member of the document the
// bridge does not read (a phone stored as a number) may have any value
// (getContact); one it reads to tell a person from a place that cannot be
// read refuses the subject (422 naming expr), as retrying would not help.
func (b *Bridge) subjectDoc(ctx context.Context, orchestration, id, expr string) (docFound, error) {
	seen := lookupsOf(ctx)
	if d, ok := seen.docs[id]; ok {
		return d, nil
	}
	var c cht.Contact
	s, err := b.getContact(ctx, orchestration, id, &c)
	switch {
	case errors.Is(err, cht.ErrNotFound):
		seen.docs[id] = docFound{}
		return docFound{}, nil
	case err != nil:
		return docFound{}, chtFailure("read subject "+id, err)
	}
	if f := s.neededBy(subjectMembers); f != nil {
		return docFound{}, &Error{Status: http.StatusUnprocessableEntity,
			Err: invalid(expr, unreadable(id, f), models.IssueTypeValue)}
	}
	d := docFound{exists: true, person: b.isPerson(&c), typeID: c.TypeID()}
	seen.docs[id] = d
	return d, nil
}

// writtenBy returns a reference of the Patient of the same Bundle that
// writes the CHT person id, if any (the smallest of its keys, for a
// Patient with several: any of them finds its unit).
func writtenBy(refs map[string]bundleRef, id string) (string, bool) {
	var keys []string
	for k, r := range refs {
		if r.written && r.id == id {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "", false
	}
	return slices.Min(keys), true
}

// tokenOf is an identifier as a search token: system|value, or the value.
func tokenOf(ident *models.Identifier) string {
	if ident.System != nil && *ident.System != "" {
		return *ident.System + "|" + *ident.Value
	}
	return *ident.Value
}

// reasonOf is the reason of the first issue of a 422, without the advice
// of noPerson.
func reasonOf(err error) string {
	reason := err.Error()
	var ire *fhir.InvalidResourceError
	if errors.As(err, &ire) && len(ire.Issues) > 0 {
		reason = ire.Issues[0].Reason
	}
	reason, _, _ = strings.Cut(reason, ": "+sendFirst)
	return reason
}
