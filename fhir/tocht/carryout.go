package tocht

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// One referral raises one CHW task however the EMR sends it: the
// ServiceRequest and the Task that carries it out in one Bundle
// (raiseThrough), or one after the other. A Task's report is its
// ServiceRequest's (reportHome), keyed by the ServiceRequest's identity;
// a Task sent without its ServiceRequest reads it from Config.FHIRURL
// (carryOutStored) for that identity, its reason, due date and checks,
// and a ServiceRequest sent after its Task reads the Task
// (joinStoredTask).

// fieldTask is the field of a Task's report that names the Task
// (fhir.Converter.SubmissionFromTask); fieldServiceRequest the one that
// names the ServiceRequest.
const (
	fieldTask           = "fhir_task"
	fieldServiceRequest = "fhir_service_request"
)

// requireRequestID refuses the unit u of a ServiceRequest or Task that
// would raise a CHW task whose report names neither the Task nor a
// ServiceRequest (fieldTask, fieldServiceRequest): its follow-up would
// have nothing to close the referral by (fhir.Converter.CloseReferral reads
// the Task and the ServiceRequest by these ids only), and the referral
// could never be closed. The error is a 422 naming the resource's id.
func requireRequestID(u *unit) error {
	if u == nil || u.skip || u.report == nil {
		return nil
	}
	if _, ok := u.report.Fields[fieldTask]; ok {
		return nil
	}
	if _, ok := u.report.Fields[fieldServiceRequest]; ok {
		return nil
	}
	reason := "an id is required: the follow-up report of the CHW task closes the referral by the ServiceRequest's id " +
		"(its Task's, when sent with one), which the FHIR server knows it by; send the ServiceRequest with its id, " +
		"or with the Task that carries it out"
	if u.resourceType == "Task" {
		reason = "an id is required unless the Task carries out a ServiceRequest that has one: the follow-up report of " +
			"the CHW task closes the referral by these ids, which the FHIR server knows them by"
	}
	return &Error{Status: http.StatusUnprocessableEntity, Err: invalid(u.resourceType+".id", reason, models.IssueTypeRequired)}
}

// carryOut makes the report of the Task unit t the CHW task of the
// ServiceRequest unit s, which the Task carries out: the report is the
// ServiceRequest's (see reportHome), and takes the request's reason and due
// date when the Task gives none. The first ServiceRequest a Task carries
// out keys it. The caller has checked that both are about the same person.
func (t *unit) carryOut(s *unit) {
	fillRequestFields(t.report.Fields, s.report.Fields)
	if t.requestKey == "" {
		t.requestKey = s.docID
	}
}

// otherPerson reports whether the units a and b, a ServiceRequest and a
// Task that carries it out, are known to be about different CHT persons:
// one referral is about one person.
func otherPerson(a, b *unit) bool {
	return a.subjectID != "" && b.subjectID != "" && a.subjectID != b.subjectID
}

// fillRequestFields copies the reason and due date of a ServiceRequest's
// report fields src into a Task's report fields dst that have none.
func fillRequestFields(dst, src map[string]any) {
	for _, f := range []string{FieldReason, FieldDueDate} {
		if _, ok := dst[f]; !ok {
			if v, ok := src[f]; ok {
				dst[f] = v
			}
		}
	}
}

// taskOf returns the Task a report's stored fields name (fieldTask: the
// Task's id), "" for none: a ServiceRequest's own report, or one of a Task
// without an id.
func taskOf(stored map[string]any) string {
	task, _ := stored[fieldTask].(string)
	return task
}

// carryOutByID keys the report of the Task unit t by the ServiceRequest
// whose id is id, which the bridge cannot read: the report that
// ServiceRequest makes when it is sent alone, provided it has no
// identifier (its identity is then its id).
func (b *Bridge) carryOutByID(t *unit, id string) {
	if t.requestKey == "" {
		t.requestKey, t.requestUnread = b.ReportID("ServiceRequest", "id:"+id), true
	}
}

// requestOf returns the id of the ServiceRequest a Task carries out, as
// its report names it (fhir_service_request: Task.focus, else the first
// Task.basedOn naming one by a literal reference), and the element naming
// it; "" when none does.
func requestOf(t *models.Task) (id, expr string) {
	if t.Focus != nil && t.Focus.Reference != nil {
		if id, ok := literalID(*t.Focus.Reference, "ServiceRequest"); ok && checkID(id) == nil {
			return id, "Task.focus"
		}
	}
	for i, r := range t.BasedOn {
		if r.Reference == nil {
			continue
		}
		if id, ok := literalID(*r.Reference, "ServiceRequest"); ok && checkID(id) == nil {
			return id, "Task.basedOn[" + strconv.Itoa(i) + "]"
		}
	}
	return "", ""
}

// carryOutStored joins the Task unit tu, planned from t without the
// ServiceRequest it carries out in the same request (requestOf names it),
// to that ServiceRequest, as raiseThrough joins the two in one Bundle: one
// report, the ServiceRequest's (see reportHome), whether the
// ServiceRequest was sent to the bridge before the Task, after it, or
// never. The ServiceRequest is read from Config.FHIRURL for its reason,
// its due date and its checks; without Config.FHIRURL, or when the FHIR
// server does not have it, the Task is keyed by its id alone
// (carryOutByID). One that came from CHT is left alone, as in a Bundle:
// the Task's report is its own. One withdrawn (revoked, entered in error)
// or that asks for the action not to be done (doNotPerform, a modifier
// extension) refuses the Task, 422 naming the element that refers to it,
// as does one about another person; one the server holds with any other
// status (draft, on hold, completed, unknown) is still the request the
// Task carries out. Any other
// refusal of the ServiceRequest (a subject CHT does not have, a date CHT
// cannot schedule) leaves the Task keyed by it but taking nothing else
// from it.
func (b *Bridge) carryOutStored(ctx context.Context, t *models.Task, tu *unit, refs map[string]bundleRef) error {
	if tu.skip || tu.report == nil {
		return nil
	}
	id, expr := requestOf(t)
	if id == "" {
		return nil
	}
	if b.cfg.FHIRURL == "" {
		b.carryOutByID(tu, id)
		return nil
	}
	res, _, err := b.readResource(ctx, "FHIR read ServiceRequest", "ServiceRequest", id)
	if err != nil {
		return err
	}
	if res == nil {
		b.carryOutByID(tu, id)
		return nil
	}
	sr := res.(*models.ServiceRequest)
	if b.fromCHT(sr.Meta) {
		return nil
	}
	if why := withdrawn(sr); why != "" {
		return &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr, fmt.Sprintf(
			"the ServiceRequest it carries out, ServiceRequest/%s on the FHIR server, %s, so no CHW task is raised for it",
			id, why), models.IssueTypeValue)}
	}
	open := *sr
	open.Status = models.RequestStatusActive
	su, err := b.plan(ctx, &open, refs)
	if err != nil {
		if statusOf(err) >= 500 {
			return err
		}
		if ident := identity(sr.Identifier, sr.Id); ident != "" && tu.requestKey == "" {
			tu.requestKey, tu.requestAlt = b.ReportID("ServiceRequest", ident), b.ReportID("ServiceRequest", "id:"+id)
		}
		return nil
	}
	if otherPerson(su, tu) {
		return &Error{Status: http.StatusUnprocessableEntity, Err: invalid("Task.for", fmt.Sprintf(
			"CHT person %s, not the subject of the ServiceRequest it carries out (ServiceRequest/%s on the FHIR server, "+
				"CHT person %s): one referral is about one person", tu.subjectID, id, su.subjectID), models.IssueTypeValue)}
	}
	tu.carryOut(su)
	tu.requestAlt = b.ReportID("ServiceRequest", "id:"+id)
	return nil
}

// withdrawn says why the ServiceRequest sr asks for no work, "" when it
// does: its status is revoked or entered-in-error, it asks for the action
// not to be done (doNotPerform), or it carries a modifier extension.
func withdrawn(sr *models.ServiceRequest) string {
	switch {
	case sr.Status == models.RequestStatusRevoked || sr.Status == models.RequestStatusEnteredInError:
		return fmt.Sprintf("is %s", sr.Status.Code())
	case sr.DoNotPerform != nil && *sr.DoNotPerform:
		return "asks for the action not to be done (doNotPerform)"
	case refuseModifiers("ServiceRequest", sr, "ServiceRequest") != nil:
		return "has a modifier extension"
	}
	return ""
}

// joinStoredTask returns the unit to write for the ServiceRequest unit su,
// planned from sr without the Task that carries it out in the same
// request. When CHT's report of the request names that Task (the Task came
// first and is keyed by the request, see reportHome) and Config.FHIRURL
// has the Task, the unit is the Task's, carrying out sr, as if both came
// in one Bundle: a corrected request reaches the CHW task wherever the
// Task gives no reason or due date of its own. Otherwise su is returned,
// which keeps the Task's fields (unit.keepTask): without the Task, or
// when the Task no longer raises a task (completed, cancelled), the
// report stays the Task's.
//
// alone is set when the request carries this ServiceRequest only: the
// unit returned then keeps the report read (unit.stored) for its write.
func (b *Bridge) joinStoredTask(ctx context.Context, sr *models.ServiceRequest, su *unit, refs map[string]bundleRef, alone bool) (*unit, error) {
	if b.cfg.FHIRURL == "" || su.skip || su.report == nil {
		return su, nil
	}
	cur, err := b.readReport(ctx, su.docID)
	if err != nil {
		return nil, err
	}
	u, err := b.joinTask(ctx, sr, su, cur, refs)
	if alone && u != nil {
		u.stored, u.storedKey = cur, su.docID
	}
	return u, err
}

// joinTask is joinStoredTask once the request's report cur is read.
func (b *Bridge) joinTask(ctx context.Context, sr *models.ServiceRequest, su *unit, cur map[string]json.RawMessage, refs map[string]bundleRef) (*unit, error) {
	if cur == nil {
		return su, nil
	}
	stored, _ := decodeObject(cur["fields"])
	taskID := taskOf(stored)
	if taskID == "" || checkID(taskID) != nil {
		return su, nil
	}
	res, _, err := b.readResource(ctx, "FHIR read Task", "Task", taskID)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return su, nil
	}
	t := res.(*models.Task)
	if b.fromCHT(t.Meta) {
		return su, nil
	}
	if id, _ := requestOf(t); sr.Id == nil || id != *sr.Id {
		// The Task now carries out another request first: its report
		// goes there; this one's stays as it is.
		return su, nil
	}
	tu, err := b.plan(ctx, t, refs)
	if err != nil {
		if statusOf(err) >= 500 {
			return nil, err
		}
		return su, nil
	}
	if otherPerson(su, tu) {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Err: invalid("ServiceRequest.subject", fmt.Sprintf(
			"CHT person %s, not the subject of the Task that carries it out (Task/%s on the FHIR server, CHT person %s): "+
				"one referral is about one person", su.subjectID, taskID, tu.subjectID), models.IssueTypeValue)}
	}
	tu.carryOut(su)
	tu.resourceType, tu.resource = su.resourceType, sr
	return tu, nil
}
