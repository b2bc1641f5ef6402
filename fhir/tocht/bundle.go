package tocht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// plannedBundle is a Bundle turned into units: Patients first (so that the
// other entries can refer to them), then ServiceRequests and Tasks, then
// each Encounter with its Observations.
type plannedBundle struct {
	units   []*unit
	entries [][]int // entries of each unit
	errs    []error // planning error of each unit (nil if planned)
	unitOf  []int   // unit of each entry; -1 for none
	notes   []string
	// patientUnit is the unit of each Patient by its references (fullUrl,
	// Patient/<id>).
	patientUnit map[string]int
	// through lists, for the unit of a ServiceRequest whose CHW task a
	// Task of the same Bundle raises (see raiseThrough), the units of
	// those Tasks: a batch fails the ServiceRequest when they all fail.
	through map[int][]int
}

// serveBundle processes a transaction, batch or collection Bundle.
//
// A transaction or collection is checked and converted as a whole before
// anything is written; a failure then writes nothing. If a CHT write fails
// halfway, the answer is an error and the sender retries the whole Bundle,
// which is safe because every write is idempotent. A batch processes each
// entry on its own (except that a report about a Patient of the Bundle
// that failed fails too) and answers a batch-response with a status per entry;
// its HTTP status is 200 unless an entry failed because of CHT (502), so
// that OpenHIM and the sender retry.
func (b *Bridge) serveBundle(ctx context.Context, bundle *models.Bundle) (*mediator.Result, error) {
	batch := false
	switch bundle.Type {
	case models.BundleTypeTransaction, models.BundleTypeCollection:
	case models.BundleTypeBatch:
		batch = true
	default:
		return nil, &Error{Status: http.StatusBadRequest, Err: invalid("Bundle.type",
			fmt.Sprintf("type %q is not accepted: send a transaction, batch or collection", bundle.Type.Code()), models.IssueTypeNotSupported)}
	}
	if len(bundle.Entry) == 0 {
		return nil, &Error{Status: http.StatusBadRequest, Err: invalid("Bundle.entry", "the Bundle has no entries", models.IssueTypeRequired)}
	}
	if err := b.checkEntryCount(len(bundle.Entry)); err != nil {
		return nil, err
	}
	pe := parseEntries(bundle)
	if err := pe.refusal(batch); err != nil {
		return nil, err
	}
	// The Bundle's own backbone elements (Bundle.link); those of each
	// entry are checked with it.
	top := *bundle
	top.Entry = nil
	if err := refuseModifiers("Bundle", top, "Bundle"); err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Err: err}
	}
	pb := b.planBundle(ctx, bundle, pe)

	results := make([]*entryResult, len(pb.units))
	if !batch {
		var issues []fhir.Issue
		for i, err := range pb.errs {
			if err != nil && statusOf(err) >= 500 {
				// CHT or the FHIR server failed while an entry was
				// planned (a subject looked up): nothing is written, and
				// the transaction is answered that failure (502, 503,
				// 504), which the sender retries, not 422, which it
				// would not.
				return nil, err
			}
			if err != nil {
				issues = append(issues, entryIssues(err, pb.entries[i][0])...)
			}
		}
		if len(issues) > 0 {
			return nil, &Error{Status: http.StatusUnprocessableEntity,
				Err: &fhir.InvalidResourceError{ResourceType: "Bundle", Issues: issues}}
		}
		// Run every check that can refuse an entry (4xx) before the first
		// write, so that a transaction is refused whole or written whole.
		if err := b.checkTransaction(ctx, pb); err != nil {
			return nil, err
		}
		for i, u := range pb.units {
			created, err := b.executeWithSubscription(ctx, u)
			if err != nil {
				if statusOf(err) < 500 {
					err = &Error{Status: statusOf(err), Err: &fhir.InvalidResourceError{ResourceType: "Bundle",
						Issues: entryIssues(err, pb.entries[i][0])}}
				}
				return nil, err
			}
			results[i] = &entryResult{created: created, unit: u}
		}
	} else {
		for i, u := range pb.units {
			if pb.errs[i] != nil {
				results[i] = &entryResult{err: pb.errs[i], status: statusOf(pb.errs[i]), unit: u}
				continue
			}
			// A report about a Patient of the Bundle that was not written
			// is not written either: its subject would be missing or a
			// place (the Patient's own checks failed).
			if p, ok := pb.patientUnit[u.subjectRef]; ok && results[p].err != nil {
				err := subjectFailed(u, pb.entries[p][0], results[p].err)
				results[i] = &entryResult{err: err, status: statusOf(err), unit: u}
				continue
			}
			created, err := b.executeWithSubscription(ctx, u)
			results[i] = &entryResult{created: created, err: err, unit: u}
			if err != nil {
				results[i].status = statusOf(err)
			}
		}
		// A ServiceRequest whose CHW task Tasks of the Bundle raise
		// fails when they all failed, so that the sender re-sends it
		// with them; one written holds it.
		for su, tus := range pb.through {
			if !slices.ContainsFunc(tus, func(tu int) bool { return results[tu].err == nil }) {
				tu := tus[0]
				err := throughFailed(pb.entries[tu][0], results[tu].err)
				results[su] = &entryResult{err: err, status: statusOf(err), unit: pb.units[su]}
			}
		}
	}
	return b.bundleAnswer(ctx, batch, pb, results)
}

// checkEntryCount refuses, with 413, a Bundle of more than
// Config.MaxBundleEntries entries, before any of them is parsed: its entries
// would not all be written within the request's deadline, and the sender,
// retrying the whole Bundle, would time out every time. 413 is what HAPI
// FHIR answers a transaction over its maximum size (PayloadTooLargeException):
// the request is larger than the server will process, and the sender must
// split it rather than retry it.
func (b *Bridge) checkEntryCount(n int) error {
	limit := b.cfg.MaxBundleEntries
	if n <= limit {
		return nil
	}
	return &Error{Status: http.StatusRequestEntityTooLarge, Err: invalid("Bundle.entry", fmt.Sprintf(
		"the Bundle has %d entries, more than the %d this mediator writes in one request: nothing was written; "+
			"split it into Bundles of at most %d entries each, keeping entries that refer to one another "+
			"(a Patient and the resources about it, an Encounter and its Observations, a Task and its ServiceRequest) "+
			"in the same Bundle", n, limit, limit), models.IssueTypeTooCostly)}
}

// subjectFailed is the error of a report whose subject, the Patient of
// entry, failed with err: a CHT failure (5xx) keeps its status, so that
// the sender retries both; any other failure is a 422 naming the subject.
func subjectFailed(u *unit, entry int, err error) error {
	if st := statusOf(err); st >= 500 {
		return &Error{Status: st, Err: fmt.Errorf("the subject, Bundle.entry[%d], was not written: %w", entry, err)}
	}
	return &Error{Status: http.StatusUnprocessableEntity, Err: invalid(u.subjectExpr,
		fmt.Sprintf("the subject, Bundle.entry[%d], was not written: %v", entry, err), models.IssueTypeValue)}
}

// throughFailed is the error of a ServiceRequest whose CHW task the Task
// of entry raises, when that Task failed with err: a CHT failure (5xx)
// keeps its status, so that the sender retries both; any other is a 422.
func throughFailed(entry int, err error) error {
	if st := statusOf(err); st >= 500 {
		return &Error{Status: st, Err: fmt.Errorf("its CHW task is raised by the Task of Bundle.entry[%d], which was not written: %w", entry, err)}
	}
	return &Error{Status: http.StatusUnprocessableEntity, Err: &fhir.InvalidResourceError{ResourceType: "ServiceRequest",
		Issues: []fhir.Issue{{Expression: "ServiceRequest", Code: models.IssueTypeValue, Reason: fmt.Sprintf(
			"its CHW task is raised by the Task of Bundle.entry[%d], which carries it out and was not written: %v", entry, err)}}}}
}

// checkTransaction runs, for every unit of a transaction, the checks that
// execute would otherwise run halfway through the writes and that can refuse
// a unit: the subject exists and is a person (each existing person once), a
// Patient's existing CHT document is a person, a new person's parent place
// is usable, a report's document can be built. It then clears the units'
// subject checks, so that execute does not repeat them, and keeps in each
// unit the documents it built (a new person's, a report's), which execute
// writes instead of building them again. The answer names every entry refused (4xx); a
// CHT failure or a configuration error (5xx) is answered as is.
func (b *Bridge) checkTransaction(ctx context.Context, pb *plannedBundle) error {
	var issues []fhir.Issue
	for i, u := range pb.units {
		if u.skip {
			continue
		}
		err := b.checkUnit(ctx, u)
		if err == nil {
			continue
		}
		if statusOf(err) >= 500 {
			return err
		}
		issues = append(issues, entryIssues(err, pb.entries[i][0])...)
	}
	if len(issues) > 0 {
		return &Error{Status: http.StatusUnprocessableEntity,
			Err: &fhir.InvalidResourceError{ResourceType: "Bundle", Issues: issues}}
	}
	for _, u := range pb.units {
		u.subject = ""
	}
	return nil
}

// checkUnit runs the checks of checkTransaction for one unit.
func (b *Bridge) checkUnit(ctx context.Context, u *unit) error {
	if u.person != nil {
		create, err := b.checkPersonDoc(ctx, u.person, u.named)
		u.create = create
		return err
	}
	if u.report != nil {
		doc, err := b.reportDoc(u.docID, u.report, u.xform)
		if err != nil {
			return err
		}
		u.doc = doc
	}
	if u.subject == "" {
		return nil
	}
	return b.checkSubject(ctx, u.subject, u.subjectExpr, u.subjectHint)
}

// entryResult is the outcome of one unit.
type entryResult struct {
	unit    *unit
	created bool
	err     error
	status  int
}

// entryIssues rewrites the issues of an entry's error to name the element
// inside the Bundle ("Patient.name" → "Bundle.entry[2].resource.name").
func entryIssues(err error, entry int) []fhir.Issue {
	prefix := "Bundle.entry[" + strconv.Itoa(entry) + "].resource"
	var ire *fhir.InvalidResourceError
	if !errors.As(err, &ire) {
		return []fhir.Issue{{Expression: prefix, Reason: err.Error(), Code: models.IssueTypeProcessing}}
	}
	out := make([]fhir.Issue, 0, len(ire.Issues))
	for _, is := range ire.Issues {
		expr := is.Expression
		switch {
		case strings.HasPrefix(expr, "Bundle."):
		case expr == "":
			expr = prefix
		case expr == ire.ResourceType:
			expr = prefix
		case ire.ResourceType != "" && strings.HasPrefix(expr, ire.ResourceType+"."):
			expr = prefix + expr[len(ire.ResourceType):]
		default:
			if dot := strings.IndexByte(expr, '.'); dot > 0 && isTypeName(expr[:dot]) {
				expr = prefix + expr[dot:]
			} else {
				expr = prefix + "." + expr
			}
		}
		is.Expression = expr
		out = append(out, is)
	}
	if len(out) == 0 {
		out = append(out, fhir.Issue{Expression: prefix, Reason: err.Error(), Code: models.IssueTypeInvalid})
	}
	return out
}

func isTypeName(s string) bool {
	switch s {
	case "Patient", "ServiceRequest", "Task", "Observation", "Encounter":
		return true
	}
	return false
}

// planBundle groups the entries into units without I/O. An entry pe
// refused (in a batch) is a unit of its own that fails; a context
// resource (see contextTypes) is one acknowledged without writing.
func (b *Bridge) planBundle(ctx context.Context, bundle *models.Bundle, pe *parsedEntries) *plannedBundle {
	parsed := pe.res
	pb := &plannedBundle{unitOf: make([]int, len(parsed))}
	for i := range pb.unitOf {
		pb.unitOf[i] = -1
	}
	add := func(u *unit, err error, entries ...int) {
		for _, e := range entries {
			pb.unitOf[e] = len(pb.units)
		}
		pb.units = append(pb.units, u)
		pb.errs = append(pb.errs, err)
		pb.entries = append(pb.entries, entries)
	}
	refsOf := func(i int, rt string, id *string) []string {
		var keys []string
		if fu := bundle.Entry[i].FullUrl; fu != nil && *fu != "" {
			keys = append(keys, *fu)
		}
		if id != nil && *id != "" {
			keys = append(keys, rt+"/"+*id)
		}
		return keys
	}

	// An entry, or its request, with a modifier extension is refused
	// with the unit it belongs to.
	entryErr := make([]error, len(parsed))
	for i := range parsed {
		entryErr[i] = entryModifiers(bundle, i)
	}

	for i, err := range pe.errs {
		if err != nil {
			add(nil, err, i)
		}
	}
	for i, res := range parsed {
		if c, ok := res.(*contextResource); ok {
			u, err := b.planContext(c)
			if entryErr[i] != nil {
				u, err = nil, entryErr[i]
			}
			add(u, err, i)
		}
	}

	refs := map[string]bundleRef{}
	pb.patientUnit = map[string]int{}
	for i, res := range parsed {
		if p, ok := res.(*models.Patient); ok {
			if entryErr[i] != nil {
				add(nil, entryErr[i], i)
				continue
			}
			u, err := b.planPatient(p)
			switch {
			case err != nil:
			case !u.skip:
				keys := append(refsOf(i, "Patient", p.Id), entryRefKey(i))
				for _, id := range p.Identifier {
					if id.Value != nil && *id.Value != "" {
						keys = append(keys, identifierRefKey(b.PersonID(identifierKey(id.System, *id.Value, b.sys.ExternalID))))
					}
				}
				for _, k := range keys {
					refs[k] = bundleRef{id: u.docID, written: true, version: metaVersion(p.Meta)}
					pb.patientUnit[k] = len(pb.units)
				}
			default:
				// From CHT, acknowledged without writing: the entries
				// about it are about the person it names.
				if id := b.personIDOf(p); id != "" {
					for _, k := range refsOf(i, "Patient", p.Id) {
						refs[k] = bundleRef{id: id, version: metaVersion(p.Meta)}
					}
				}
			}
			add(u, err, i)
		}
	}

	// ServiceRequests, then Tasks: a Task that carries out a
	// ServiceRequest of the same Bundle raises the one CHW task of both
	// (raiseThrough).
	requests := map[string]entryRef{} // ServiceRequest entries by fullUrl and ServiceRequest/<id>
	requestUnit := map[int]int{}      // unit of each ServiceRequest entry
	for i, res := range parsed {
		if sr, ok := res.(*models.ServiceRequest); ok {
			u, err := b.plan(ctx, sr, refs)
			if entryErr[i] != nil {
				u, err = nil, entryErr[i]
			}
			requestUnit[i] = len(pb.units)
			add(u, err, i)
			for _, k := range refsOf(i, "ServiceRequest", sr.Id) {
				requests[k] = entryRef{entry: i, version: metaVersion(sr.Meta)}
			}
		}
	}
	planned := map[int]plannedUnit{} // the ServiceRequest units as planned, before raiseThrough
	for _, ui := range requestUnit {
		planned[ui] = plannedUnit{pb.units[ui], pb.errs[ui]}
	}
	for i, res := range parsed {
		t, ok := res.(*models.Task)
		if !ok {
			continue
		}
		task, carried, err := taskRequests(t, requests, parsed)
		if err != nil {
			add(nil, err, i)
			continue
		}
		u, err := b.plan(ctx, task, refs)
		if err == nil && (len(carried) == 0 || externalFirst(t, requests, parsed)) {
			// The ServiceRequest that keys it is not in the Bundle: read it.
			if err = b.carryOutStored(ctx, t, u, refs); err != nil {
				u = nil
			}
		}
		if u != nil {
			u.resource = t // answered as received
		}
		if entryErr[i] != nil {
			u, err = nil, entryErr[i]
		}
		tu := len(pb.units)
		add(u, err, i)
		for _, c := range carried {
			b.openCarried(ctx, pb, planned, requestUnit[c.entry], parsed[c.entry].(*models.ServiceRequest), entryErr[c.entry], refs)
			pb.raiseThrough(planned, requestUnit[c.entry], c.entry, tu, i, c.expr)
		}
	}
	// A ServiceRequest no Task of the Bundle carries out raises a CHW
	// task its follow-up must be able to name (requireRequestID); it may
	// be carried out by a Task sent before.
	for i, ui := range requestUnit {
		if u := pb.units[ui]; u != nil && pb.errs[ui] == nil && !u.skip && len(pb.through[ui]) == 0 {
			if err := requireRequestID(u); err != nil {
				pb.units[ui], pb.errs[ui] = nil, err
				continue
			}
			if pb.units[ui], pb.errs[ui] = b.joinStoredTask(ctx, parsed[i].(*models.ServiceRequest), u, refs, false); pb.errs[ui] != nil {
				pb.units[ui] = nil
			}
		}
	}

	// Observations: with the Encounter they refer to (or the Bundle's only
	// Encounter when they refer to none), else grouped by subject and
	// effective time (one report per visit).
	encOf := map[string]entryRef{}
	var encs []int
	for i, res := range parsed {
		if e, ok := res.(*models.Encounter); ok {
			encs = append(encs, i)
			for _, k := range refsOf(i, "Encounter", e.Id) {
				encOf[k] = entryRef{entry: i, version: metaVersion(e.Meta)}
			}
		}
	}
	groups := map[string][]int{}
	var order []string
	for i, res := range parsed {
		o, ok := res.(*models.Observation)
		if !ok {
			continue
		}
		key := ""
		if o.Encounter != nil && o.Encounter.Reference != nil {
			e, found, err := resolveEntry(encOf, *o.Encounter.Reference, "Observation.encounter")
			if err != nil {
				add(nil, err, i)
				continue
			}
			if found {
				key = "enc:" + strconv.Itoa(e)
			}
		}
		// The Bundle's only Encounter takes the Observations that name
		// no encounter, not those of another one outside the Bundle.
		if key == "" && len(encs) == 1 && o.Encounter == nil {
			key = "enc:" + strconv.Itoa(encs[0])
		}
		if key == "" {
			subj := ""
			if o.Subject != nil {
				subj = string(mustJSON(o.Subject))
			}
			key = "obs:" + subj + "@" + effectiveKey(o)
		}
		if _, seen := groups[key]; !seen {
			order = append(order, key)
		}
		groups[key] = append(groups[key], i)
	}
	for _, key := range order {
		idx := groups[key]
		// An Observation that came from CHT is acknowledged on its own,
		// not written back (loop prevention); the others of its
		// Encounter, which the EMR added, are written. When every one
		// came from CHT the Encounter is acknowledged with them.
		var own, tagged []int
		for _, i := range idx {
			if b.fromCHT(parsed[i].(*models.Observation).Meta) {
				tagged = append(tagged, i)
			} else {
				own = append(own, i)
			}
		}
		if len(own) > 0 && len(tagged) > 0 {
			for _, i := range tagged {
				add(skipped("Observation", parsed[i]), nil, i)
			}
			idx = own
		}
		var enc *models.Encounter
		entries := idx
		if e, ok := strings.CutPrefix(key, "enc:"); ok {
			n, _ := strconv.Atoi(e)
			enc = parsed[n].(*models.Encounter)
			entries = append([]int{n}, idx...)
		}
		obs := make([]models.Observation, len(idx))
		for j, i := range idx {
			obs[j] = *parsed[i].(*models.Observation)
		}
		var primary any = parsed[idx[0]]
		if enc != nil {
			primary = enc
		}
		u, err := b.planObservations(ctx, enc, obs, primary, refs)
		for _, e := range entries {
			if err == nil && entryErr[e] != nil {
				u, err = nil, entryErr[e]
			}
		}
		if err != nil {
			encIdx := -1
			if enc != nil {
				encIdx = entries[0]
			}
			err = groupError(err, encIdx, idx)
		}
		add(u, err, entries...)
	}
	for _, i := range encs {
		if pb.unitOf[i] < 0 {
			pb.notes = append(pb.notes, fmt.Sprintf("Bundle.entry[%d]: Encounter without Observations: nothing written", i))
		}
	}
	return pb
}

// entryRefKey is a key of the refs of planBundle (and of
// plannedBundle.patientUnit) for the Patient of entry i that the Bundle
// writes, besides its fullUrl and Patient/<id>: a subject that names the
// person it writes by identifier, rather than by reference, is about that
// Patient (see writtenBy), also when the Patient has neither fullUrl nor
// id. The key starts with a NUL, which no reference has (checkInput
// refuses control characters), so that no reference matches it.
func entryRefKey(i int) string {
	return "\x00Bundle.entry[" + strconv.Itoa(i) + "]"
}

// identifierRefKey is a key of the refs of planBundle (and of
// plannedBundle.patientUnit) for a Patient the Bundle writes, by each of
// its identifiers (the person key, see identifierKey and Bridge.PersonID,
// that the identifier would give): a subject named by any identifier of
// that Patient, not only the one that keys its person, is about it. NUL
// starts it, as entryRefKey.
func identifierRefKey(personID string) string { return "\x00identifier:" + personID }

// carried is a ServiceRequest of the Bundle that a Task carries out: its
// entry, and the Task's element that names it (Task.focus,
// Task.basedOn[n]).
type carried struct {
	entry int
	expr  string
}

// taskRequests finds the ServiceRequests of the Bundle (requests, by
// fullUrl and ServiceRequest/<id>) that the Task t carries out: those its
// focus and basedOn name (R4 Task.basedOn: "the request ... that this task
// is carrying out"; a urn:uuid, relative, absolute or version-specific
// reference, resolved as R4 bundle.html#references says). It returns a
// copy of t whose references to those with an id read ServiceRequest/<id>,
// so that the Task's report names the request (fhir_service_request) as
// for a request outside the Bundle.
func taskRequests(t *models.Task, requests map[string]entryRef, parsed []any) (*models.Task, []carried, error) {
	cp := *t
	var found []carried
	resolve := func(r *models.Reference, expr string) error {
		if r.Reference == nil {
			return nil
		}
		e, ok, err := resolveEntry(requests, *r.Reference, expr)
		if err != nil || !ok {
			return err
		}
		if !slices.ContainsFunc(found, func(c carried) bool { return c.entry == e }) {
			found = append(found, carried{entry: e, expr: expr})
		}
		if sr := parsed[e].(*models.ServiceRequest); sr.Id != nil && *sr.Id != "" {
			ref := "ServiceRequest/" + *sr.Id
			r.Reference = &ref
		}
		return nil
	}
	if t.Focus != nil {
		f := *t.Focus
		cp.Focus = &f
		if err := resolve(cp.Focus, "Task.focus"); err != nil {
			return nil, nil, err
		}
	}
	cp.BasedOn = slices.Clone(t.BasedOn)
	for j := range cp.BasedOn {
		if err := resolve(&cp.BasedOn[j], "Task.basedOn["+strconv.Itoa(j)+"]"); err != nil {
			return nil, nil, err
		}
	}
	return &cp, found, nil
}

// openCarried plans again, as active, the ServiceRequest sr of unit su
// that a Task of the Bundle carries out, when it was refused for its
// status alone: a request that is not withdrawn (see withdrawn) but
// draft, on hold, completed or unknown (OpenMRS FHIR2 derives a request's
// status from its Tasks, BaseServiceRequestTranslatorImpl
// determineServiceRequestStatus: unknown unless it has exactly one open
// Task) is still the request its Task carries out, as one read from
// Config.FHIRURL is (carryOutStored). entryErr is the entry's own error.
func (b *Bridge) openCarried(ctx context.Context, pb *plannedBundle, planned map[int]plannedUnit, su int,
	sr *models.ServiceRequest, entryErr error, refs map[string]bundleRef) {
	p := planned[su]
	if p.err == nil || entryErr != nil || statusOf(p.err) >= 500 ||
		sr.Status == models.RequestStatusActive || withdrawn(sr) != "" {
		return
	}
	open := *sr
	open.Status = models.RequestStatusActive
	u, err := b.plan(ctx, &open, refs)
	if err != nil {
		return
	}
	u.resource = sr // answered as received
	planned[su] = plannedUnit{u, nil}
	pb.units[su], pb.errs[su] = u, nil
}

// externalFirst reports whether the first ServiceRequest the Task t names
// (Task.focus, then Task.basedOn in order: the one its report names in
// fhir_service_request, and is keyed by) is not an entry of the Bundle
// (requests; one without an id, which the report cannot name, is passed
// over) but a literal ServiceRequest/<id> reference, to read from
// Config.FHIRURL.
func externalFirst(t *models.Task, requests map[string]entryRef, parsed []any) bool {
	refs := t.BasedOn
	if t.Focus != nil {
		refs = append([]models.Reference{*t.Focus}, refs...)
	}
	for _, r := range refs {
		if r.Reference == nil {
			continue
		}
		if e, ok, _ := resolveEntry(requests, *r.Reference, ""); ok {
			if sr := parsed[e].(*models.ServiceRequest); sr.Id != nil && *sr.Id != "" {
				return false
			}
			continue
		}
		if id, ok := literalID(*r.Reference, "ServiceRequest"); ok && checkID(id) == nil {
			return true
		}
	}
	return false
}

// raiseThrough makes the Task of unit tu (entry te) raise the one CHW task
// of the ServiceRequest of unit su (entry se), which the Task carries out
// (its element expr names it): the EMR sends the order and the Task that
// asks for it to be done (R4 workflow: a fulfiller is asked with a Task
// basedOn the request), and one referral is one follow-up for the CHW.
// planned holds the ServiceRequest units as planned. The Task's report
// names the ServiceRequest (taskRequests) and gets its reason and due date
// when it has none; the ServiceRequest is acknowledged without a report of
// its own. A refused ServiceRequest refuses the Task and a refused Task the
// ServiceRequest, as does a Task about another person than its
// ServiceRequest; a batch also fails the ServiceRequest when the Task's
// write fails (serveBundle). A ServiceRequest or Task that came from CHT
// (acknowledged, not written) is left alone: the other one raises its own
// task, as when sent alone.
func (pb *plannedBundle) raiseThrough(planned map[int]plannedUnit, su, se, tu, te int, expr string) {
	s := planned[su]
	if s.err != nil {
		switch {
		case pb.errs[tu] != nil:
		case statusOf(s.err) >= 500:
			// Not refused: failed, as the Task then is (the sender
			// retries both).
			pb.errs[tu] = &Error{Status: statusOf(s.err), Err: fmt.Errorf(
				"the ServiceRequest it carries out, Bundle.entry[%d], could not be handled: %w", se, s.err)}
		default:
			pb.errs[tu] = invalid(expr, fmt.Sprintf("the ServiceRequest it carries out, Bundle.entry[%d], is refused, "+
				"so no CHW task is raised for it: %v", se, s.err), models.IssueTypeValue)
		}
		return
	}
	t := pb.units[tu]
	if s.u.skip || (pb.errs[tu] == nil && t.skip) {
		return
	}
	if pb.errs[tu] == nil && otherPerson(s.u, t) {
		pb.errs[tu] = invalid("Task.for", fmt.Sprintf("CHT person %s, not the subject of the ServiceRequest it carries out "+
			"(Bundle.entry[%d], CHT person %s): one referral is about one person", t.subjectID, se, s.u.subjectID), models.IssueTypeValue)
	}
	if pb.errs[tu] != nil {
		if len(pb.through[su]) > 0 {
			return // another Task of the Bundle carries it out
		}
		if st := statusOf(pb.errs[tu]); st >= 500 {
			pb.errs[su] = &Error{Status: st, Err: fmt.Errorf("its CHW task is raised by the Task of Bundle.entry[%d], "+
				"which could not be handled: %w", te, pb.errs[tu])}
		} else {
			pb.errs[su] = &fhir.InvalidResourceError{ResourceType: "ServiceRequest", Issues: []fhir.Issue{{Expression: "ServiceRequest",
				Code: models.IssueTypeValue, Reason: fmt.Sprintf("its CHW task is raised by the Task of Bundle.entry[%d], "+
					"which carries it out and is refused", te)}}}
		}
		pb.units[su] = nil
		return
	}
	t.carryOut(s.u)
	if pb.through == nil {
		pb.through = map[int][]int{}
	}
	pb.through[su] = append(pb.through[su], tu)
	// Planned without error (s.err is nil), the ServiceRequest can only
	// have been refused with an earlier Task that carries it out: this
	// one takes it.
	pb.errs[su] = nil
	pb.units[su] = &unit{resourceType: "ServiceRequest", resource: s.u.resource, skip: true, message: fmt.Sprintf(
		"ServiceRequest: its CHW task is the one the Task of Bundle.entry[%d] raises, which carries it out "+
			"(Task.focus or Task.basedOn): no report of its own", te)}
}

// plannedUnit is a unit as planned, with its planning error.
type plannedUnit struct {
	u   *unit
	err error
}

// bundleAnswer builds the transaction-response (transaction, collection) or
// batch-response Bundle with one entry per entry received.
func (b *Bridge) bundleAnswer(ctx context.Context, batch bool, pb *plannedBundle, results []*entryResult) (*mediator.Result, error) {
	typ := models.BundleTypeTransactionResponse
	if batch {
		typ = models.BundleTypeBatchResponse
	}
	out := models.Bundle{Type: typ, Entry: make([]models.BundleEntry, len(pb.unitOf))}
	status, txStatus := http.StatusOK, mediator.StatusSuccessful
	docs := []string{}
	for i, ui := range pb.unitOf {
		resp := &models.BundleEntryResponse{}
		var oo *models.OperationOutcome
		switch {
		case ui < 0:
			resp.Status = "200 OK"
			oo = informational("Encounter without Observations: nothing written")
		default:
			r := results[ui]
			switch {
			case r.err != nil:
				resp.Status = strconv.Itoa(r.status) + " " + http.StatusText(r.status)
				if r.status == http.StatusInternalServerError {
					// The mediator's error (configuration): not retried.
					oo = fhir.OutcomeFromError(r.err)
					if status != http.StatusBadGateway {
						status = http.StatusInternalServerError
					}
					b.log.ErrorContext(ctx, "fhir-to-cht: Bundle entry not written to CHT: mediator error, fix the mediator; retrying will not help until then",
						"entry", i, "status", r.status, "err", r.err)
				} else if r.status > 500 {
					oo = transientOutcome(r.err)
					status = http.StatusBadGateway
				} else {
					oo = fhir.OutcomeFromError(&fhir.InvalidResourceError{Issues: entryIssues(r.err, pb.entries[ui][0])})
				}
				txStatus = mediator.StatusCompletedWithErrors
			case r.unit.skip:
				resp.Status = "200 OK"
				oo = informational(r.unit.message)
			case r.created:
				resp.Status = "201 Created"
				oo = informational(fmt.Sprintf("CHT document %s created", r.unit.docID))
			default:
				resp.Status = "200 OK"
				oo = informational(fmt.Sprintf("CHT document %s up to date", r.unit.docID))
			}
			if r.err == nil && !r.unit.skip && pb.entries[ui][0] == i {
				docs = append(docs, r.unit.docID)
			}
		}
		raw, err := json.Marshal(oo)
		if err != nil {
			return nil, err
		}
		resp.Outcome = raw
		out.Entry[i] = models.BundleEntry{Response: resp}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if status >= 500 {
		txStatus = mediator.StatusFailed
	}
	res := &mediator.Result{StatusCode: status, Status: txStatus,
		Header: http.Header{"Content-Type": {FHIRContentType}}, Body: body,
		Properties: map[string]any{"cht_docs": docs}}
	if status == http.StatusBadGateway {
		res.Header.Set("Retry-After", "10")
	}
	return res, nil
}

// groupError rewrites the issues of a group's conversion error to name the
// Bundle entries: "Observation.code" (one Observation) and
// "Bundle.entry.resource.where(resourceType='Observation')[j].code" (several)
// become "Bundle.entry[n].resource.code", "Encounter.type" names the
// Encounter's entry.
func groupError(err error, encIdx int, obsIdx []int) error {
	var ire *fhir.InvalidResourceError
	if !errors.As(err, &ire) {
		return err
	}
	entry := func(n int) string { return "Bundle.entry[" + strconv.Itoa(n) + "].resource" }
	const many = "Bundle.entry.resource.where(resourceType='Observation')["
	out := &fhir.InvalidResourceError{ResourceType: "Bundle", Err: ire.Err, Issues: make([]fhir.Issue, 0, len(ire.Issues))}
	for _, is := range ire.Issues {
		switch e := is.Expression; {
		case strings.HasPrefix(e, many):
			if end := strings.IndexByte(e[len(many):], ']'); end >= 0 {
				if j, err := strconv.Atoi(e[len(many) : len(many)+end]); err == nil && j >= 0 && j < len(obsIdx) {
					is.Expression = entry(obsIdx[j]) + e[len(many)+end+1:]
				}
			}
		case strings.HasPrefix(e, "Observation") && len(obsIdx) > 0:
			is.Expression = entry(obsIdx[0]) + strings.TrimPrefix(e, "Observation")
		case strings.HasPrefix(e, "Encounter") && encIdx >= 0:
			is.Expression = entry(encIdx) + strings.TrimPrefix(e, "Encounter")
		}
		out.Issues = append(out.Issues, is)
	}
	return out
}
