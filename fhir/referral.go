package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// Record keys the FHIR → CHT conversion writes into the cht.Record it makes from
// a Task or ServiceRequest, so that a CHT task can hand the request's ids to its follow-up form
// (see docs/referral-loop.md).
const (
	taskField           = "fhir_task"
	serviceRequestField = "fhir_service_request"
)

// FollowUp declares a form as the follow-up of a FHIR request: a CHW's report of this form closes
// the Task the CHT task was raised for. It is the followUp entry of a [FormMapping].
type FollowUp struct {
	// Task is the dotted path below the report's fields holding the id of the FHIR Task (a bare
	// id or "Task/<id>"), usually a form input filled by the CHT task, e.g. "inputs.fhir_task".
	// A report whose Task id is empty but whose ServiceRequest id is not (the CHT task of a
	// ServiceRequest sent without a Task) closes the request only; one with neither closes
	// nothing, with a warning (see [Converter.CloseReferral]).
	Task string `json:"task" yaml:"task"`
	// ServiceRequest is the path of the ServiceRequest id. When empty or absent in a report, the
	// Task's basedOn (or focus) ServiceRequest is used.
	ServiceRequest string `json:"serviceRequest,omitempty" yaml:"serviceRequest,omitempty"`
	// Outcome is the path of the visit's outcome. When empty, every report means done.
	Outcome string `json:"outcome,omitempty" yaml:"outcome,omitempty"`
	// Done, NotFound and Refused list the outcome values that move the Task to completed, failed
	// and rejected. Any other value is a conversion error naming the field.
	Done     []string `json:"done,omitempty" yaml:"done,omitempty"`
	NotFound []string `json:"notFound,omitempty" yaml:"notFound,omitempty"`
	Refused  []string `json:"refused,omitempty" yaml:"refused,omitempty"`
	// CompleteRequest sets the ServiceRequest's status to completed when a report's outcome is done.
	CompleteRequest bool `json:"completeRequest,omitempty" yaml:"completeRequest,omitempty"`
}

// validate checks a follow-up declaration; it returns "" when valid.
func (f *FollowUp) validate() string {
	for _, p := range []struct{ name, path string }{{"task", f.Task}, {"serviceRequest", f.ServiceRequest}, {"outcome", f.Outcome}} {
		if p.path == "" {
			if p.name == "task" {
				return "followUp.task is required (the field holding the Task id)"
			}
			continue
		}
		if slices.Contains(strings.Split(p.path, "."), "") {
			return "followUp." + p.name + " has an empty path segment"
		}
	}
	seen := map[string]string{}
	for _, l := range []struct {
		name   string
		values []string
	}{{"done", f.Done}, {"notFound", f.NotFound}, {"refused", f.Refused}} {
		if len(l.values) > 0 && f.Outcome == "" {
			return "followUp." + l.name + " needs followUp.outcome"
		}
		for _, v := range l.values {
			if other, ok := seen[v]; ok {
				return fmt.Sprintf("followUp outcome %q is listed in both %s and %s", v, other, l.name)
			}
			seen[v] = l.name
		}
	}
	if f.Outcome != "" && len(f.Done) == 0 {
		return "followUp.done needs at least one value when followUp.outcome is set"
	}
	return ""
}

// requestFields adds the ids of the request a CHT task is raised for to its submission.
func requestFields(sub *cht.Record, taskID *string, serviceRequest string) {
	if taskID != nil && *taskID != "" {
		sub.Fields[taskField] = *taskID
	}
	if serviceRequest != "" {
		sub.Fields[serviceRequestField] = serviceRequest
	}
}

// referenceID returns the id of a reference to typ ("typ/id", absolute or versioned), or "".
func referenceID(r *models.Reference, typ string) string {
	if r == nil || r.Reference == nil {
		return ""
	}
	s := *r.Reference
	i := strings.LastIndex(s, typ+"/")
	if i < 0 || (i > 0 && s[i-1] != '/') {
		return ""
	}
	id, _, _ := strings.Cut(s[i+len(typ)+1:], "/")
	if !validID(id) {
		return ""
	}
	return id
}

// followUpOf returns the follow-up declaration of form, if any.
func (c *Converter) followUpOf(form string) *FollowUp {
	if fi, ok := c.forms[strings.ToLower(form)]; ok {
		return fi.fm.FollowUp
	}
	return nil
}

// followUpReport is what a follow-up report says about its request.
type followUpReport struct {
	task, serviceRequest string // ids
	status               models.TaskStatus
	outcome              string
	date                 string // reported_date as a FHIR instant; "" when unknown
}

// parseFollowUp reads the request ids and the outcome of a follow-up report.
func (c *Converter) parseFollowUp(f *FollowUp, r *cht.Report) (*followUpReport, error) {
	idAt := func(path, typ string) (string, error) {
		v, ok := r.Fields.Field(path)
		if !ok || isEmptyValue(v) {
			return "", nil
		}
		s, isString := v.(string)
		id := strings.TrimPrefix(strings.TrimSpace(s), typ+"/")
		if !isString || !validID(id) {
			return "", &ConversionError{DocID: r.ID, Field: "fields." + path, Value: v, Reason: "not a " + typ + " id"}
		}
		return id, nil
	}
	fu := &followUpReport{status: models.TaskStatusCompleted}
	var err error
	if f.ServiceRequest != "" {
		if fu.serviceRequest, err = idAt(f.ServiceRequest, "ServiceRequest"); err != nil {
			return nil, err
		}
	}
	// A CHW task raised by a ServiceRequest alone has no Task to close:
	// its follow-up names the request instead. One that names neither
	// (see CloseReferral) closes nothing.
	if fu.task, err = idAt(f.Task, "Task"); err != nil {
		return nil, err
	}
	if f.Outcome != "" {
		v, _ := r.Fields.Field(f.Outcome)
		s, _ := v.(string)
		fu.outcome = s
		switch {
		case slices.Contains(f.Done, s):
		case slices.Contains(f.NotFound, s):
			fu.status = models.TaskStatusFailed
		case slices.Contains(f.Refused, s):
			fu.status = models.TaskStatusRejected
		default:
			return nil, &ConversionError{DocID: r.ID, Field: "fields." + f.Outcome, Value: v,
				Reason: "not an outcome listed in the form's followUp (done, notFound, refused)"}
		}
	}
	if r.ReportedDate != 0 {
		fu.date = formatDateTime(r.ReportedDate.Time())
	}
	return fu, nil
}

// CloseReferral adds the referral loop to tx, the transaction [Converter.ReportBundle] made from a
// report whose form the mapping declares as a follow-up ([FollowUp]); for other forms it does
// nothing. It reads the request's Task (and its ServiceRequest) with rd, which [Client] satisfies,
// and then, in the same transaction:
//
//   - the report's Encounter gets basedOn the ServiceRequest;
//   - the Task is updated (If-Match its version) with an output referencing the Encounter, one per
//     follow-up report, and the status of the latest report (by reported_date): completed, failed
//     or rejected from the outcome, with lastModified its reported_date;
//   - with CompleteRequest, the ServiceRequest's status becomes completed when the outcome is done
//     and the request is active or on-hold.
//
// A report of a CHW task that a ServiceRequest raised alone names no Task: it gets the Encounter's
// basedOn and, with CompleteRequest, the request's completion, and no Task is read or updated.
//
// A Task closed before by someone else than a follow-up report (cancelled, entered-in-error, or
// completed, failed or rejected with no follow-up output) gets the output but keeps its status,
// statusReason and lastModified; the output's type text says the Task was already closed.
//
// The result depends only on the set of follow-up reports written, not on their order, and a
// replayed report adds no entry at all, so the Task and ServiceRequest get no new version and
// subscribers are not notified twice. A concurrent change of the Task makes the transaction fail
// with 412 (409 on HAPI); pushing the report again merges with the new version. A report with an
// outcome not listed, or with an id that is not one, is a *[ConversionError] naming the field. A
// report with neither the Task id nor the ServiceRequest id (of a CHT task raised without them)
// closes nothing: the transaction is left as it is, with a warning naming the Task's field added
// to tx.Warnings.
//
// A Task or ServiceRequest that rd answers is gone (a *[ServerError] with status 410, or 404: a
// server that keeps no record of deletions answers a deleted resource so) is left out: the
// transaction keeps the report's Encounter and Observations, the Encounter gets no basedOn to a
// gone ServiceRequest (a server that keeps references intact would refuse it), nothing gone is
// updated, and a warning naming the report's field and the gone resource is added to
// tx.Warnings. The ServiceRequest is read whenever the Encounter would refer to it. Any other
// error of rd (the server failing, refusing the credentials) is returned as it is.
func (c *Converter) CloseReferral(ctx context.Context, tx *Transaction, r *cht.Report,
	rd interface {
		Read(ctx context.Context, resourceType, id string, out any) error
	}) error {
	f := c.followUpOf(r.Form)
	if f == nil {
		return nil
	}
	fu, err := c.parseFollowUp(f, r)
	if err != nil {
		return err
	}
	if fu.task == "" && fu.serviceRequest == "" {
		// The CHT task was raised without an id to hand on (fhir-to-cht
		// refuses such a request now; CHT may hold tasks raised before):
		// the visit is written all the same, as no retry can name the
		// request.
		fields := "fields." + f.Task
		if f.ServiceRequest != "" {
			fields += " and fields." + f.ServiceRequest
		}
		tx.Warnings = append(tx.Warnings, &ConversionError{DocID: r.ID, Field: "fields." + f.Task, Reason: "the follow-up report " +
			"names no Task and no ServiceRequest (" + fields + " empty or absent): the visit is written and closes no referral"})
		return nil
	}
	var enc *models.Encounter
	var encURL string
	for i := range tx.Entries {
		if d, ok := tx.Entries[i].Resource.(*directRes); ok && d.kind == dEncounter {
			// An Encounter written when the transaction is encoded
			// (Converter.reportTransaction): built as a samply value, to
			// be extended.
			tx.Entries[i] = d.samplyEntry()
		}
		if e, ok := tx.Entries[i].Resource.(*models.Encounter); ok {
			enc, encURL = e, tx.Entries[i].FullURL
			break
		}
	}
	if enc == nil {
		return fmt.Errorf("fhir: close referral: the transaction of report %s has no Encounter", r.ID)
	}
	var task map[string]any
	if fu.task != "" {
		var err error
		task, err = readRaw(ctx, rd, "Task", fu.task)
		if notFound(err) {
			// Deleted, or never written: the visit is recorded all the
			// same; retrying the report cannot bring the Task back.
			tx.Warnings = append(tx.Warnings, goneWarning(r.ID, "fields."+f.Task, "Task", fu.task, "", err))
			task = nil
		} else if err != nil {
			return err
		}
	}
	srField, via := "", "" // the report's field the ServiceRequest id came from; the Task it came through
	if fu.serviceRequest == "" {
		fu.serviceRequest, srField, via = requestOf(task), "fields."+f.Task, "Task/"+fu.task
	} else {
		srField = "fields." + f.ServiceRequest
	}
	var sr map[string]any
	if fu.serviceRequest != "" {
		// Read before the Encounter refers to it: a basedOn to a
		// ServiceRequest the server no longer has would fail the whole
		// transaction on a server that keeps references intact (HAPI's
		// enforce_referential_integrity_on_write), for ever.
		var err error
		sr, err = readRaw(ctx, rd, "ServiceRequest", fu.serviceRequest)
		if notFound(err) {
			tx.Warnings = append(tx.Warnings, goneWarning(r.ID, srField, "ServiceRequest", fu.serviceRequest, via, err))
			fu.serviceRequest, sr = "", nil
		} else if err != nil {
			return err
		}
	}
	if fu.serviceRequest != "" {
		ref := "ServiceRequest/" + fu.serviceRequest
		if !slices.ContainsFunc(enc.BasedOn, func(b models.Reference) bool { return b.Reference != nil && *b.Reference == ref }) {
			enc.BasedOn = append(enc.BasedOn, models.Reference{Reference: ptr(ref)})
		}
	}
	output := map[string]any{
		"type": map[string]any{"coding": []any{map[string]any{"system": c.sys.Form, "code": r.Form}},
			"text": followUpText},
		"valueReference": map[string]any{"reference": encURL, "type": "Encounter",
			"identifier": map[string]any{"system": c.sys.DocumentID, "value": r.ID}},
	}
	if task != nil {
		if version, changed := mergeTask(task, output, r.ID, fu, c.sys.DocumentID); changed {
			tx.Entries = append(tx.Entries, updateEntry(c, "Task", fu.task, version, task, "referral"))
		}
	}
	if f.CompleteRequest && fu.status == models.TaskStatusCompleted && sr != nil {
		// Only an open request is completed: one the EMR revoked (or marked
		// entered-in-error, or completed) keeps its status, as a Task closed
		// before keeps its own (mergeTask).
		if st := sr["status"]; st == "active" || st == "on-hold" {
			version := versionOf(sr)
			keepClientMeta(sr)
			sr["status"] = "completed"
			tx.Entries = append(tx.Entries, updateEntry(c, "ServiceRequest", fu.serviceRequest, version, sr, "referral"))
		}
	}
	return nil
}

// goneWarning is the warning of the follow-up report r whose field names typ/id (directly, or as
// the ServiceRequest the Task via is based on), which the FHIR server answered err for: gone, so
// left out of the report's transaction.
func goneWarning(r, field, typ, id, via string, err error) *ConversionError {
	status := 0
	var se *ServerError
	if errors.As(err, &se) {
		status = se.StatusCode
	}
	what := typ + "/" + id + " is"
	if via != "" {
		what = via + " is based on " + typ + "/" + id + ", which is"
	}
	return &ConversionError{DocID: r, Field: field, Value: id, Reason: fmt.Sprintf(
		"%s gone from the FHIR server (%d %s): the follow-up is written without it and does not close it",
		what, status, http.StatusText(status))}
}

// readRaw reads typ/id as a JSON object, keeping numbers exact.
func readRaw(ctx context.Context, rd interface {
	Read(ctx context.Context, resourceType, id string, out any) error
}, typ, id string) (map[string]any, error) {
	var raw json.RawMessage
	if err := rd.Read(ctx, typ, id, &raw); err != nil {
		return nil, fmt.Errorf("fhir: close referral: read %s/%s: %w", typ, id, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m["resourceType"] != typ {
		return nil, fmt.Errorf("fhir: close referral: %s/%s is not a %s resource", typ, id, typ)
	}
	return m, nil
}

// notFound reports whether err is the server's answer that the resource
// read was deleted (410) or does not exist (404), which is also how a server
// that keeps no record of deletions answers a deleted resource (R4
// http.html#read and #delete).
func notFound(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && (se.StatusCode == http.StatusNotFound || se.StatusCode == http.StatusGone)
}

// requestOf returns the id of the ServiceRequest a Task is based on (basedOn, else focus).
func requestOf(task map[string]any) string {
	refs, _ := task["basedOn"].([]any)
	if focus, ok := task["focus"]; ok {
		refs = append(refs, focus)
	}
	for _, r := range refs {
		m, _ := r.(map[string]any)
		s, _ := m["reference"].(string)
		if i := strings.LastIndex(s, "ServiceRequest/"); i >= 0 {
			if id, _, _ := strings.Cut(s[i+len("ServiceRequest/"):], "/"); validID(id) {
				return id
			}
		}
	}
	return ""
}

// mergeTask merges one follow-up report into task, returning the version read and whether
// anything besides meta changed (only the client's members of meta are kept, see keepClientMeta). Outputs
// are keyed by the report's document id (so a replay replaces its own output) and kept in that
// order; the status comes from the latest report by reported_date, ties broken by the status
// code, so the result does not depend on the order reports arrive in.
func mergeTask(task, output map[string]any, reportID string, fu *followUpReport, docSystem string) (version string, changed bool) {
	version = versionOf(task)
	keepClientMeta(task)
	before, _ := json.Marshal(task)
	outputs, _ := task["output"].([]any)
	reportOf := func(o any) string {
		m, _ := o.(map[string]any)
		vr, _ := m["valueReference"].(map[string]any)
		id, _ := vr["identifier"].(map[string]any)
		if id["system"] != docSystem {
			return ""
		}
		s, _ := id["value"].(string)
		return s
	}
	ours := false
	kept := outputs[:0:0]
	for _, o := range outputs {
		switch reportOf(o) {
		case reportID:
			// replaced below
		case "":
			kept = append(kept, o)
		default:
			if !closedBefore(o) {
				ours = true // closed before by another follow-up report
			}
			kept = append(kept, o)
		}
	}
	existing := slices.IndexFunc(outputs, func(o any) bool { return reportOf(o) == reportID })
	if existing >= 0 {
		// Keep the stored output of a replayed report (its reference is resolved already).
		output = outputs[existing].(map[string]any)
	}
	// Other outputs keep their place; follow-up outputs follow, ordered by report id.
	foreign := slices.DeleteFunc(slices.Clone(kept), func(o any) bool { return reportOf(o) != "" })
	follow := append(slices.DeleteFunc(kept, func(o any) bool { return reportOf(o) == "" }), output)
	slices.SortFunc(follow, func(a, b any) int { return strings.Compare(reportOf(a), reportOf(b)) })
	task["output"] = append(foreign, follow...)

	curStatus, _ := task["status"].(string)
	curDate, _ := task["lastModified"].(string)
	if closedElsewhere(curStatus, ours) {
		// Closed by the EMR (or whoever wrote the Task), not by an earlier
		// follow-up: a CHW's report arriving afterwards is recorded, but the
		// Task is not reopened nor its reason replaced. The output says so,
		// which also marks that this report did not set the status, so that
		// later follow-ups keep the status too, whatever their order.
		if existing < 0 {
			output["type"].(map[string]any)["text"] = closedBeforeText
		}
	} else if !ours || laterThan(fu.date, string(fu.status.Code()), curDate, curStatus) {
		if closedBefore(output) {
			// A replay after the Task was reopened: this report sets the
			// status now.
			output["type"].(map[string]any)["text"] = followUpText
		}
		task["status"] = fu.status.Code()
		if fu.date != "" {
			task["lastModified"] = fu.date
		}
		if fu.outcome != "" {
			task["statusReason"] = map[string]any{"text": fu.outcome}
		} else {
			delete(task, "statusReason")
		}
	}
	after, _ := json.Marshal(task)
	return version, !bytes.Equal(before, after)
}

// followUpText is the type text of a follow-up report's Task output.
const followUpText = "CHT follow-up report"

// closedBeforeText is the output type's text of a follow-up report that found its Task closed by
// someone else (see closedElsewhere); it also tells the EMR's users why the report did not change
// the Task.
const closedBeforeText = "CHT follow-up report; the Task was already closed"

// closedBefore reports whether output is that of a follow-up report that found its Task closed.
func closedBefore(output any) bool {
	m, _ := output.(map[string]any)
	typ, _ := m["type"].(map[string]any)
	return typ["text"] == closedBeforeText
}

// closedElsewhere reports whether a Task's status is one a follow-up report must keep: a terminal
// status of the R4 Task state machine (https://hl7.org/fhir/R4/task.html#statemachine) not set by
// an earlier follow-up report. followedUp tells whether an earlier report set the status; follow-ups
// never write cancelled or entered-in-error, so those are always someone else's.
func closedElsewhere(status string, followedUp bool) bool {
	switch status {
	case "cancelled", "entered-in-error":
		return true
	case "completed", "failed", "rejected":
		return !followedUp
	}
	return false
}

// laterThan orders (date, status) pairs: a later instant wins, equal instants go to the larger
// status code.
func laterThan(date, status, curDate, curStatus string) bool {
	a, errA := time.Parse(time.RFC3339Nano, date)
	b, errB := time.Parse(time.RFC3339Nano, curDate)
	switch {
	case errA != nil && errB != nil:
		return status > curStatus
	case errA != nil:
		return false
	case errB != nil:
		return true
	case !a.Equal(b):
		return a.After(b)
	}
	return status > curStatus
}

// updateEntry is a PUT of typ/id guarded by If-Match on the version read;
// why ("referral", "withdrawn") names the purpose in its fullUrl.
func updateEntry(c *Converter, typ, id, version string, res map[string]any, why string) Entry {
	u := c.uuid(typ, id, why)
	e := Entry{FullURL: "urn:uuid:" + string(appendUUID(nil, u)), Resource: res,
		Request: models.BundleEntryRequest{Method: models.HTTPVerbPUT, Url: typ + "/" + id}}
	if version != "" {
		e.Request.IfMatch = ptr(`W/"` + version + `"`)
	}
	return e
}

// keepClientMeta keeps of res's meta, before res is written back, the
// members the client owns (profile, security and tag: FHIR R4
// resource.html#Meta), so that the EMR's profiles, security labels and
// tags stay; the server sets the others (versionId, lastUpdated, and a
// server's own, such as medplum's author or project).
func keepClientMeta(res map[string]any) {
	meta, _ := res["meta"].(map[string]any)
	kept := map[string]any{}
	for _, k := range []string{"profile", "security", "tag"} {
		if v, ok := meta[k]; ok {
			kept[k] = v
		}
	}
	if len(kept) == 0 {
		delete(res, "meta")
		return
	}
	res["meta"] = kept
}

// versionOf returns meta.versionId of a resource read as JSON.
func versionOf(res map[string]any) string {
	meta, _ := res["meta"].(map[string]any)
	v, _ := meta["versionId"].(string)
	return v
}
