package tocht

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// unit is one CHT write planned, without I/O, from one resource or from a
// group of Bundle entries (an Encounter and its Observations).
type unit struct {
	resourceType string // of the primary resource
	resource     any    // the primary resource, answered back
	docID        string // CHT _id written
	// requestKey is, for the report of a Task that carries out a
	// ServiceRequest (carryOut), the _id of the ServiceRequest's report,
	// where the Task's report is written unless it has one of its own
	// (see reportHome). requestAlt is the key the report had when the
	// Task, sent before, could not read the ServiceRequest (carryOutByID).
	requestKey, requestAlt string
	// requestUnread is set when the bridge could not read that
	// ServiceRequest (carryOutByID): its reason and due date, which its
	// report holds, are kept where the Task gives none.
	requestUnread bool

	person *cht.Contact // a person to create or update, or
	report *cht.Record  // a report to write

	// named is set for a person the Patient names by its CHT _id (a
	// Systems.DocumentID identifier): it must exist, and is never created.
	named bool

	// subject is the CHT person a report is about when it was not written
	// in the same Bundle: it must exist before the report is written.
	// subjectHint is added to the 422 when it does not.
	subject, subjectExpr, subjectHint string
	// subjectRef is the reference (fullUrl or Patient/<id>, without a
	// version) of the Patient of the same Bundle the report is about, if
	// any: a batch does not write the report when that Patient failed.
	subjectRef string
	// subjectID is the _id of the CHT person a report made from a
	// ServiceRequest or Task is about, "" when unknown: a Task and the
	// ServiceRequest it carries out must be about the same person.
	subjectID string

	// mergeFields merges the report's fields into those of the stored
	// report instead of replacing them (see upsertReport): set for a
	// report made from Observations.
	mergeFields bool
	// xform writes the report as CHT's web app saves an XForm's (see
	// reportDoc): set for a report made from Observations of an XForm.
	xform bool
	// keepTask is set for the report of a ServiceRequest: when the
	// stored report was raised by the Task that carries it out (it names
	// a Task in fhir_task, see taskOf), the Task's values are kept (see
	// upsertReport).
	keepTask bool

	// create is the person document a transaction's check built for a
	// person CHT did not have (see checkPersonDoc), nil otherwise. doc is
	// the report document the check built, nil when it built none.
	create *cht.Contact
	doc    map[string]any
	// stored is the report under storedKey as a request of this one
	// resource read it while planning (joinStoredTask): the first attempt
	// of upsertReport uses it instead of reading it again. A Bundle's
	// units read anew: an earlier entry may have written the report.
	stored    map[string]json.RawMessage
	storedKey string

	// skip acknowledges the resource without writing (message says why).
	skip    bool
	message string
}

// PersonID returns the CHT _id of the person made from a Patient whose key
// (see the package documentation) is key: a name-based UUID in the name
// space of the converter's CHT instance.
func (b *Bridge) PersonID(key string) string {
	return b.conv.ID("fhir-to-cht/person", key)
}

// ReportID returns the CHT _id of the report made from a resource of type
// resourceType whose identity is identity ("system|value" of an identifier,
// "id:" + the logical id, or "content:" + a hash).
func (b *Bridge) ReportID(resourceType, identity string) string {
	return b.conv.ID("fhir-to-cht/report", resourceType+"|"+identity)
}

// identity returns the identity of a resource: its first identifier with a
// value, else its logical id.
func identity(ids []models.Identifier, id *string) string {
	for _, i := range ids {
		if i.Value != nil && *i.Value != "" {
			sys := ""
			if i.System != nil {
				sys = *i.System
			}
			return sys + "|" + *i.Value
		}
	}
	if id != nil && *id != "" {
		return "id:" + *id
	}
	return ""
}

// bundleRef is the CHT person a Patient of a Bundle is: written by the
// Bundle, or, for a Patient that came from CHT and is not written back,
// the person it names, which must exist. version is the Patient's
// meta.versionId, which a version-specific reference must name.
type bundleRef struct {
	id      string
	written bool
	version string
}

// plan converts one resource (not a Bundle) to a unit. refs maps the
// references of Patients of the same Bundle (fullUrl and Patient/<id>) to
// their CHT person.
func (b *Bridge) plan(ctx context.Context, res any, refs map[string]bundleRef) (*unit, error) {
	switch r := res.(type) {
	case *models.Patient:
		return b.planPatient(r)
	case *models.ServiceRequest:
		return b.planRequest(ctx, "ServiceRequest", r, r.Meta, &r.Subject, r.Identifier, r.Id, refs)
	case *models.Task:
		return b.planRequest(ctx, "Task", r, r.Meta, r.For, r.Identifier, r.Id, refs)
	case *models.Observation:
		return b.planObservations(ctx, nil, []models.Observation{*r}, r, refs)
	}
	return nil, &Error{Status: http.StatusBadRequest, Err: invalid("resourceType",
		fmt.Sprintf("%s is not accepted here", typeOf(res)), models.IssueTypeNotSupported)}
}

// fromCHT reports whether the resource must be skipped for loop prevention.
func (b *Bridge) fromCHT(meta *models.Meta) bool {
	return !b.cfg.AcceptCHTOrigin && b.conv.IsFromCHT(meta)
}

func skipped(resourceType string, res any) *unit {
	return &unit{resourceType: resourceType, resource: res, skip: true,
		message: resourceType + " originated in CHT (CHT source tag): not written back"}
}

// planPatient converts a Patient to the person it creates or updates. A
// conditional update (PUT Patient?identifier=..., see conditionalPatient)
// is keyed as any other send of the Patient (personKey): the identifier it
// names only has to be one the Patient carries, so that a POST or a PUT by
// id of the same Patient updates the same person.
func (b *Bridge) planPatient(p *models.Patient) (*unit, error) {
	if b.fromCHT(p.Meta) {
		return skipped("Patient", p), nil
	}
	if err := refuseModifiers("Patient", p, "Patient"); err != nil {
		return nil, err
	}
	person, err := b.conv.PersonFromPatient(p)
	if err != nil {
		return nil, err
	}
	if err := checkDocID(person.ID, "Patient.identifier"); err != nil {
		return nil, err
	}
	named := person.ID != ""
	if !named {
		key, externalID := personKey(p, b.sys.ExternalID)
		if key == "" {
			return nil, invalid("Patient.identifier",
				"an identifier or an id is required, so that a re-send updates the same CHT person", models.IssueTypeRequired)
		}
		person.ID, person.ExternalID = b.PersonID(key), externalID
	}
	return &unit{resourceType: "Patient", resource: p, docID: person.ID, person: person, named: named}, nil
}

// personKey is the key of a Patient without a CHT identifier: the value of
// its identifier with the external_id system, else "system|value" of its
// first identifier (see identifierKey), else its id. Identifiers come
// first: they are what the EMR keeps stable across its own systems, and a
// POST usually carries no id. externalID is the value to store as the
// person's external_id: the identifier's value, else the id.
func personKey(p *models.Patient, externalIDSystem string) (key, externalID string) {
	for _, i := range p.Identifier {
		if i.System != nil && *i.System == externalIDSystem && i.Value != nil && *i.Value != "" {
			return *i.Value, *i.Value
		}
	}
	for _, i := range p.Identifier {
		if i.Value != nil && *i.Value != "" {
			return identifierKey(i.System, *i.Value, externalIDSystem), *i.Value
		}
	}
	if p.Id != nil {
		return *p.Id, *p.Id
	}
	return "", ""
}

// identifierKey is the person key of an identifier: "system|value", so
// that equal values of different systems (urn:nid|1001, urn:mrn|1001) are
// different persons; the bare value when the system is the external_id
// system (the key of persons written before) or absent.
func identifierKey(system *string, value, externalIDSystem string) string {
	if system == nil || *system == "" || *system == externalIDSystem {
		return value
	}
	return *system + "|" + value
}

// personIDOf is the CHT _id of the person a Patient is (or becomes).
func (b *Bridge) personIDOf(p *models.Patient) string {
	for _, i := range p.Identifier {
		if i.System != nil && *i.System == b.sys.DocumentID && i.Value != nil && *i.Value != "" {
			return *i.Value
		}
	}
	if key, _ := personKey(p, b.sys.ExternalID); key != "" {
		return b.PersonID(key)
	}
	return ""
}

func (b *Bridge) planRequest(ctx context.Context, rt string, res any, meta *models.Meta, subject *models.Reference,
	ids []models.Identifier, id *string, refs map[string]bundleRef) (*unit, error) {
	if b.fromCHT(meta) {
		return skipped(rt, res), nil
	}
	if err := refuseModifiers(rt, res, rt); err != nil {
		return nil, err
	}
	subjectExpr := rt + ".subject"
	if rt == "Task" {
		subjectExpr = "Task.for"
		// NotifyEMR's Subscription selects the Task by its id, and the
		// follow-up report names the Task to close by it.
		if b.fhir != nil && (id == nil || *id == "") {
			return nil, invalid("Task.id", "an id is required with NotifyEMR: the Task's Subscription and "+
				"the follow-up report that closes it refer to the Task by its id", models.IssueTypeRequired)
		}
	}
	subj, err := b.subjectPatient(ctx, subject, subjectExpr, refs)
	if err != nil {
		return nil, err
	}
	patient := b.patientOf(subj)
	var sub *cht.Record
	switch r := res.(type) {
	case *models.ServiceRequest:
		sub, err = b.conv.SubmissionFromServiceRequest(r, patient)
	case *models.Task:
		sub, err = b.conv.SubmissionFromTask(r, patient)
	}
	if err != nil {
		return nil, err
	}
	ident := identity(ids, id)
	if ident == "" {
		return nil, invalid(rt+".identifier",
			"an identifier or an id is required, so that a re-send does not raise a second task", models.IssueTypeRequired)
	}
	if id != nil && *id != "" {
		sub.Fields[FieldRequestID] = *id
	} else if v := firstValue(ids); v != "" {
		sub.Fields[FieldRequestID] = v
	}
	switch r := res.(type) {
	case *models.ServiceRequest:
		for _, rc := range r.ReasonCode {
			if t := conceptText(rc); t != "" {
				sub.Fields[FieldReason] = t
				break
			}
		}
		switch {
		case r.OccurrenceDateTime != nil:
			sub.Fields[FieldDueDate] = *r.OccurrenceDateTime
		case r.OccurrencePeriod != nil && r.OccurrencePeriod.End != nil:
			sub.Fields[FieldDueDate] = *r.OccurrencePeriod.End
		}
	case *models.Task:
		if r.ReasonCode != nil {
			if t := conceptText(*r.ReasonCode); t != "" {
				sub.Fields[FieldReason] = t
			}
		}
		if r.Restriction != nil && r.Restriction.Period != nil && r.Restriction.Period.End != nil {
			sub.Fields[FieldDueDate] = *r.Restriction.Period.End
		}
	}
	u := &unit{resourceType: rt, resource: res, docID: b.ReportID(rt, ident), report: sub,
		subject: subj.check(), subjectExpr: subjectExpr, subjectHint: subj.hint, subjectRef: subj.inBundle, subjectID: subj.id}
	u.keepTask = rt == "ServiceRequest"
	if rt == "Task" {
		// A ServiceRequest's CHW task may be its Task's, which names it
		// (raiseThrough): it is checked once that is known.
		if err := requireRequestID(u); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// planObservations converts an optional Encounter and its Observations
// to one report. primary is the resource answered for a single
// Observation. The unit is skipped when every Observation came from CHT;
// planBundle sets those of a mixed group apart before.
func (b *Bridge) planObservations(ctx context.Context, enc *models.Encounter, obs []models.Observation, primary any, refs map[string]bundleRef) (*unit, error) {
	if len(obs) > 0 && !slices.ContainsFunc(obs, func(o models.Observation) bool { return !b.fromCHT(o.Meta) }) {
		return skipped("Observation", primary), nil
	}
	if enc != nil {
		if err := refuseModifiers("Encounter", enc, "Encounter"); err != nil {
			return nil, err
		}
	}
	for i := range obs {
		root := "Observation"
		if len(obs) > 1 {
			// As the converter names the Observations of a group
			// (groupError maps it to their entries).
			root = "Bundle.entry.resource.where(resourceType='Observation')[" + strconv.Itoa(i) + "]"
		}
		if err := refuseModifiers("Observation", &obs[i], root); err != nil {
			return nil, err
		}
	}
	var subject *models.Reference
	if enc != nil {
		subject = enc.Subject
	}
	for i := 0; subject == nil && i < len(obs); i++ {
		subject = obs[i].Subject
	}
	subjectExpr := "Observation.subject"
	if enc != nil && enc.Subject != nil {
		subjectExpr = "Encounter.subject"
	}
	subj, err := b.subjectPatient(ctx, subject, subjectExpr, refs)
	if err != nil {
		return nil, err
	}
	sub, err := b.conv.SubmissionFromObservations("", enc, obs, b.patientOf(subj))
	if err != nil {
		return nil, err
	}
	rt, ident := "Observation", ""
	if enc != nil {
		rt, ident = "Encounter", identity(enc.Identifier, enc.Id)
	}
	if ident == "" {
		idents := make([]string, 0, len(obs))
		for i := range obs {
			id := identity(obs[i].Identifier, obs[i].Id)
			if id == "" {
				idents = nil
				break
			}
			idents = append(idents, id)
		}
		slices.Sort(idents)
		ident = strings.Join(idents, ",")
	}
	if ident == "" {
		// Same content at the same time for the same patient is the
		// same report.
		if sub.ReportedDate.IsZero() {
			return nil, invalid("Observation.identifier",
				"an identifier, an id or an effective time is required, so that a re-send does not create a second report",
				models.IssueTypeRequired)
		}
		body, err := sub.MarshalJSON()
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		ident = "content:" + hex.EncodeToString(sum[:16])
	}
	return &unit{resourceType: "Observation", resource: primary, docID: b.ReportID(rt, ident), report: sub,
		subject: subj.check(), subjectExpr: subjectExpr, subjectHint: subj.hint, subjectRef: subj.inBundle,
		mergeFields: true, xform: isXForm(sub.Form)}, nil
}

// isPatientSearch reports whether ref is a search of Patients,
// [base]/Patient?<parameters>, rather than a reference to one.
func isPatientSearch(ref string) bool {
	path, _, search := strings.Cut(ref, "?")
	return search && (path == "Patient" || strings.HasSuffix(path, "/Patient"))
}

// conditionalReference reads ref, a conditional reference to a Patient
// (R4 http.html#trules: a search the server resolves, in a transaction),
// as the identifier it names: Patient?identifier=<system>|<value> is the
// Patient {"identifier": {"system", "value"}} names. Any other search, an
// identifier of any system (the bridge keys people by system and value),
// or one that differs from ident, the identifier beside it, is refused
// (422 naming expr).
func conditionalReference(ref string, ident *models.Identifier, expr string) (*models.Identifier, error) {
	refuse := func(reason string) error {
		return &Error{Status: http.StatusUnprocessableEntity,
			Err: invalid(expr, fmt.Sprintf("reference %s: %s", quote(ref), reason), models.IssueTypeNotSupported)}
	}
	system, value, hasSystem, reason := patientQuery(ref, "a conditional reference")
	switch {
	case reason != "":
		return nil, refuse(reason)
	case !hasSystem:
		return nil, refuse("name the identifier's system, Patient?identifier=<system>|<value> (|<value> for an identifier without one)")
	}
	ci := &models.Identifier{Value: &value}
	if system != "" {
		ci.System = &system
	}
	if ident != nil && tokenOf(ident) != tokenOf(ci) {
		return nil, refuse(fmt.Sprintf("it names another identifier than the one beside it, %s", quote(tokenOf(ident))))
	}
	return ci, nil
}

// subjectPatient resolves a subject reference to the CHT person (see
// subject). The rules, in order: an identifier with the CHT document
// system; a Patient of the same Bundle (one not written, as it came from
// CHT, is checked like a reference by identifier); then the identifier
// (a patient_id shortcode, see personByShortcode; another identifier as a
// key, see identifierKey, else the Patient carrying it on the FHIR server
// when Config.FHIRURL is set, see identifierSubject) and the literal
// Patient reference (read from the FHIR server when Config.FHIRURL is
// set, else with its id as the key, see literalSubject). A reference with
// both names the person either finds, and is refused when they find
// different ones (see bothSubject).
func (b *Bridge) subjectPatient(ctx context.Context, ref *models.Reference, expr string, refs map[string]bundleRef) (subject, error) {
	if ref == nil {
		return subject{}, nil
	}
	ident := ref.Identifier
	if ident != nil && (ident.Value == nil || *ident.Value == "") {
		ident = nil
	}
	if ref.Reference != nil && isPatientSearch(*ref.Reference) {
		ci, err := conditionalReference(*ref.Reference, ident, expr)
		if err != nil {
			return subject{}, err
		}
		ident, ref = ci, &models.Reference{Identifier: ci}
	}
	if ident != nil && ident.System != nil && *ident.System == b.sys.DocumentID {
		if err := checkDocID(*ident.Value, expr); err != nil {
			return subject{}, err
		}
		return subject{id: *ident.Value, own: true}, nil
	}
	if ref.Reference != nil {
		// A version-specific reference names the Patient of the Bundle
		// without its version (R4 bundle.html#references).
		key, version := unversioned(*ref.Reference)
		if r, ok := refs[key]; ok {
			if version != "" && r.version != "" && version != r.version {
				return subject{}, versionMismatch(expr, *ref.Reference, key, version, r.version)
			}
			if r.written {
				return subject{id: r.id, inBundle: key}, nil
			}
			if err := checkDocID(r.id, expr); err != nil {
				return subject{}, err
			}
			return subject{id: r.id}, nil
		}
	}
	id, literal := "", false
	if ref.Reference != nil {
		id, literal = literalID(*ref.Reference, "Patient")
	}
	if literal {
		if err := checkID(id); err != nil {
			return subject{}, badID(expr, fmt.Errorf("reference %s: %w", quote(*ref.Reference), err))
		}
	}
	switch {
	case ident == nil && !literal:
		return subject{}, nil
	case ident == nil:
		s, _, err := b.literalSubject(ctx, id, expr, refs, false)
		return s, err
	case !literal:
		s, miss, err := b.identifierSubject(ctx, ident, expr, refs, false)
		if err == nil {
			err = miss
		}
		return s, err
	}
	return b.bothSubject(ctx, ident, *ref.Reference, id, expr, refs)
}

// personByShortcode returns the _id of the CHT contact whose patient_id
// is code, found as CHT finds a report's patient_id (the
// contacts_by_reference view). No contact, or more than one, is a 422
// naming expr: a follow-up must reach exactly one person. CHT is asked
// once per request (lookups). A contact with a member
// cht.ContactsService.ByShortcode cannot decode (a phone stored as a
// number) is found all the same: the look-up needs its _id only, and the
// subject is then read as getContact reads it.
func (b *Bridge) personByShortcode(ctx context.Context, code, expr string) (string, error) {
	seen := lookupsOf(ctx)
	ids, ok := seen.shortcodes[code]
	if !ok {
		found, err := b.cht.Contacts.ByShortcode(mediator.WithOrchestration(ctx, "CHT find subject by patient_id"), code)
		if _, member := direct.MemberErrors(err); member {
			err = nil
		}
		if err != nil {
			return "", chtFailure("find the contact with patient_id "+quote(code), err)
		}
		for _, c := range found {
			if !slices.Contains(ids, c.ID) { // a contact whose place_id is also code is listed twice
				ids = append(ids, c.ID)
			}
		}
		if len(ids) > 0 {
			seen.shortcodes[code] = ids
		}
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return "", &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr,
			"no CHT contact has the patient_id "+quote(code), models.IssueTypeNotFound)}
	}
	return "", &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr, fmt.Sprintf(
		"%d CHT contacts have the patient_id %s (%s): refer to the person by its CHT identifier instead",
		len(ids), quote(code), strings.Join(ids, ", ")), models.IssueTypeMultipleMatches)}
}

func (b *Bridge) patientWithID(id string) *models.Patient {
	sys := b.sys.DocumentID
	return &models.Patient{Identifier: []models.Identifier{{System: &sys, Value: &id}}}
}

// literalID extracts the id of a relative or absolute literal reference
// to resourceType ("Patient/123", "https://emr/fhir/Patient/123/_history/2").
func literalID(ref, resourceType string) (string, bool) {
	if h := strings.Index(ref, "/_history/"); h >= 0 {
		ref = ref[:h]
	}
	i := strings.LastIndex(ref, resourceType+"/")
	if i < 0 || (i > 0 && ref[i-1] != '/') {
		return "", false
	}
	id := ref[i+len(resourceType)+1:]
	if id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

func firstValue(ids []models.Identifier) string {
	for _, i := range ids {
		if i.Value != nil && *i.Value != "" {
			return *i.Value
		}
	}
	return ""
}

// conceptText is a CodeableConcept's text, else its first display, else
// its first code.
func conceptText(c models.CodeableConcept) string {
	if c.Text != nil && *c.Text != "" {
		return *c.Text
	}
	for _, cd := range c.Coding {
		if cd.Display != nil && *cd.Display != "" {
			return *cd.Display
		}
	}
	for _, cd := range c.Coding {
		if cd.Code != nil && *cd.Code != "" {
			return *cd.Code
		}
	}
	return ""
}

// answer is the body of a successful single-resource answer: the resource
// as received; a Patient also gets the identifier of its CHT person.
func (u *unit) answer(docSystem string) ([]byte, error) {
	if p, ok := u.resource.(*models.Patient); ok && u.docID != "" {
		cp := *p
		has := false
		for _, i := range cp.Identifier {
			if i.System != nil && *i.System == docSystem && i.Value != nil && *i.Value == u.docID {
				has = true
			}
		}
		if !has {
			id := u.docID
			cp.Identifier = append(slices.Clone(cp.Identifier), models.Identifier{System: &docSystem, Value: &id})
		}
		return json.Marshal(cp)
	}
	return json.Marshal(u.resource)
}
