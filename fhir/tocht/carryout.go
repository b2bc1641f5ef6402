package tocht

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// One referral raises one CHW task however the EMR sends it: the
// ServiceRequest and the Task that carries it out in one Bundle
// (raiseThrough), or one after the other. The report is keyed by the
// ServiceRequest, so that the Task's report and the ServiceRequest's are
// one document; a Task sent without its ServiceRequest reads it from
// Config.FHIRURL (carryOutStored) to learn its key, reason and due date.

// fieldTask is the field of a Task's report that names the Task
// (fhir.Converter.SubmissionFromTask).
const fieldTask = "fhir_task"

// carryOut makes the report of the Task unit t the CHW task of the
// ServiceRequest unit s, which the Task carries out: the report is written
// under the ServiceRequest's id (t.ownID keeps the Task's, where earlier
// versions of the bridge wrote it), and takes the request's reason and due
// date when the Task gives none. The caller has checked that both are
// about the same person.
func (t *unit) carryOut(s *unit) {
	for _, f := range []string{FieldReason, FieldDueDate} {
		if _, ok := t.report.Fields[f]; !ok {
			if v, ok := s.report.Fields[f]; ok {
				t.report.Fields[f] = v
			}
		}
	}
	if t.ownID == "" && s.docID != t.docID {
		t.ownID, t.docID = t.docID, s.docID
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
// ServiceRequest it carries out in the same request, to that
// ServiceRequest as Config.FHIRURL holds it (requestOf names it), as
// raiseThrough joins the two in one Bundle: one report, keyed by the
// ServiceRequest, whether the ServiceRequest was sent to the bridge before
// the Task, after it, or never. Without Config.FHIRURL, or when the FHIR
// server does not have the ServiceRequest, the Task's report is keyed by
// the Task. A ServiceRequest that came from CHT is left alone, as in a
// Bundle. A refused ServiceRequest (revoked, about another person...)
// refuses the Task: 422 naming the element that refers to it.
func (b *Bridge) carryOutStored(ctx context.Context, t *models.Task, tu *unit, refs map[string]bundleRef) error {
	if b.cfg.FHIRURL == "" || tu.skip || tu.report == nil {
		return nil
	}
	id, expr := requestOf(t)
	if id == "" {
		return nil
	}
	sr, err := b.readRequest(ctx, id)
	if err != nil || sr == nil {
		return err
	}
	su, err := b.plan(ctx, sr, refs)
	if err != nil {
		if statusOf(err) >= 500 {
			return err
		}
		return &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr, fmt.Sprintf(
			"the ServiceRequest it carries out, ServiceRequest/%s on the FHIR server, is refused, so no CHW task is raised for it: %s",
			id, reasonOf(err)), models.IssueTypeValue)}
	}
	if su.skip {
		return nil
	}
	if su.subjectID != "" && tu.subjectID != "" && su.subjectID != tu.subjectID {
		return &Error{Status: http.StatusUnprocessableEntity, Err: invalid("Task.for", fmt.Sprintf(
			"CHT person %s, not the subject of the ServiceRequest it carries out (ServiceRequest/%s on the FHIR server, "+
				"CHT person %s): one referral is about one person", tu.subjectID, id, su.subjectID), models.IssueTypeValue)}
	}
	tu.carryOut(su)
	return nil
}

// readRequest reads ServiceRequest/id from Config.FHIRURL: nil when the
// server does not have it (404, 410).
func (b *Bridge) readRequest(ctx context.Context, id string) (*models.ServiceRequest, error) {
	what := "GET ServiceRequest/" + id
	status, data, err := b.fhirGet(ctx, "FHIR read ServiceRequest", "/ServiceRequest/"+url.PathEscape(id), nil, what, "")
	switch {
	case err != nil:
		return nil, err
	case status == http.StatusNotFound || status == http.StatusGone:
		return nil, nil
	case status/100 != 2:
		return nil, fhirFailure(fmt.Errorf("%s answered %d", what, status))
	}
	res, err := fhir.ParseResource(data)
	if err != nil {
		return nil, fhirFailure(fmt.Errorf("%s: %w", what, err))
	}
	sr, ok := res.(*models.ServiceRequest)
	if !ok {
		return nil, fhirFailure(fmt.Errorf("%s answered a %s", what, typeOf(res)))
	}
	return sr, nil
}
