package tocht

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/mediator"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// attempts bounds the read-modify-write cycles of one document: a 409
// (another writer got there first) is re-read and retried once.
const attempts = 2

// execute writes a planned unit; created reports whether a new CHT
// document was made.
func (b *Bridge) execute(ctx context.Context, u *unit) (created bool, err error) {
	if u.skip {
		return false, nil
	}
	if u.subject != "" {
		if err := b.checkSubject(ctx, u.subject, u.subjectExpr, u.subjectHint); err != nil {
			return false, err
		}
	}
	if u.person != nil {
		return b.upsertPerson(ctx, u.person, u.create, u.named)
	}
	doc := u.doc
	if doc == nil {
		var err error
		if doc, err = b.reportDoc(u.docID, u.report, u.xform); err != nil {
			return false, err
		}
	}
	return b.upsertReport(ctx, u, doc)
}

// readPerson reads the CHT document of the person p into cur, reporting
// whether it exists; stored is the document as read, for writeBack. A
// member the bridge neither reads nor writes may have any value
// (getContact); one it needs (its type, its revision) that cannot be read
// refuses the Patient (422 naming Patient.identifier), as retrying would
// not help.
func (b *Bridge) readPerson(ctx context.Context, p, cur *cht.Contact) (found bool, stored storedContact, err error) {
	stored, err = b.getContact(ctx, "CHT read person", p.ID, cur)
	switch {
	case errors.Is(err, cht.ErrNotFound):
		return false, storedContact{}, nil
	case err != nil:
		return false, storedContact{}, chtFailure("read person "+p.ID, err)
	}
	if f := stored.neededBy(personMembers); f != nil {
		return false, storedContact{}, &Error{Status: http.StatusUnprocessableEntity,
			Err: invalid("Patient.identifier", unreadable(p.ID, f), models.IssueTypeValue)}
	}
	return true, stored, nil
}

// checkSubject verifies that the person a report is about exists in CHT
// and is a person (Config.ContactTypes, Config.PersonTypes): a report about nobody would raise
// no task and fail silently. hint is added to the 422 of a person CHT
// does not have.
func (b *Bridge) checkSubject(ctx context.Context, id, expr, hint string) error {
	d, err := b.subjectDoc(ctx, "CHT read subject", id, expr)
	switch {
	case err != nil:
		return err
	case !d.exists:
		return noPerson(expr, id, "", hint)
	case !d.person:
		return &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr,
			fmt.Sprintf("CHT document %s is a %q, not a person", id, d.typeID), models.IssueTypeValue)}
	}
	return nil
}

// upsertPerson creates the person under its deterministic _id, or updates
// the fields the Patient gives. create, when not nil, is the document
// checkPersonDoc built for a person CHT did not have: the first attempt
// creates it without reading again, since a stale "not found" fails to
// create with a conflict, which reads anew. A person CHT had is always
// read here: a copy read earlier could equal the Patient while the stored
// person (changed by an earlier entry of the same Bundle, or in CHT
// meanwhile) does not, and the update would be skipped without a write
// that could conflict.
func (b *Bridge) upsertPerson(ctx context.Context, p, create *cht.Contact, named bool) (created bool, err error) {
	if create != nil {
		if created, err := b.createPerson(ctx, p, create); created || err != nil {
			return created, err
		}
	}
	for range attempts {
		var cur cht.Contact
		found, stored, err := b.readPerson(ctx, p, &cur)
		if err != nil {
			return false, err
		}
		if found {
			if done, err := b.updatePerson(ctx, p, &cur, stored); done || err != nil {
				return false, err
			}
			continue // updated meanwhile: read it again
		}
		if named {
			return false, notNamed(p.ID)
		}
		doc, err := b.newPerson(ctx, p)
		if err != nil {
			return false, err
		}
		if created, err := b.createPerson(ctx, p, doc); created || err != nil {
			return created, err
		}
	}
	return false, &Error{Status: http.StatusServiceUnavailable,
		Err: fmt.Errorf("person %s: concurrent updates in CHT kept conflicting", p.ID)}
}

// createPerson creates doc, the new person p. created is false when the
// write conflicted: the person was created meanwhile, and is to be updated.
func (b *Bridge) createPerson(ctx context.Context, p, doc *cht.Contact) (created bool, err error) {
	_, err = b.cht.Docs.Put(mediator.WithOrchestration(ctx, "CHT create person"), p.ID, doc)
	switch {
	case errors.Is(err, cht.ErrConflict):
		return false, nil
	case err != nil:
		return false, chtFailure("create person "+p.ID, err)
	}
	return true, nil
}

// updatePerson writes the fields of p into cur, the stored person read as
// stored, when they differ; the members of it that could not be read are
// written back as stored (writeBack). done is false when the write
// conflicted.
func (b *Bridge) updatePerson(ctx context.Context, p, cur *cht.Contact, stored storedContact) (done bool, err error) {
	if err := b.updatable(cur, p); err != nil {
		return false, err
	}
	var before []byte // cur as read, for writeBack
	if len(stored.faults) > 0 {
		if before, err = cur.MarshalJSON(); err != nil {
			return false, fmt.Errorf("person %s: encode: %w", p.ID, err)
		}
	}
	if !mergePerson(cur, p) {
		return true, nil
	}
	doc, err := stored.writeBack(cur, before)
	if err != nil {
		return false, fmt.Errorf("person %s: encode: %w", p.ID, err)
	}
	_, err = b.cht.Docs.Put(mediator.WithOrchestration(ctx, "CHT update person"), p.ID, doc)
	switch {
	case errors.Is(err, cht.ErrConflict):
		return false, nil
	case err != nil:
		return false, chtFailure("update person "+p.ID, err)
	}
	return true, nil
}

// checkPersonDoc verifies, before a transaction writes anything, that the
// CHT document a Patient becomes is a person if it exists already (as
// upsertPerson does when it writes), and, for a new person, builds the
// document to create (see newPerson), which it returns (nil for a person
// CHT has), for upsertPerson to create without reading again.
func (b *Bridge) checkPersonDoc(ctx context.Context, p *cht.Contact, named bool) (*cht.Contact, error) {
	var cur cht.Contact
	found, _, err := b.readPerson(ctx, p, &cur)
	if err != nil {
		return nil, err
	}
	if found {
		return nil, b.updatable(&cur, p)
	}
	if named {
		return nil, notNamed(p.ID)
	}
	// A new person: its parent place must be usable (a configuration
	// error otherwise, which must not stop a transaction halfway).
	return b.newPerson(ctx, p)
}

// notNamed refuses a Patient that names, by its CHT _id identifier, a
// document CHT does not have: it updates an existing person and creates
// none, which could take a deleted person's id or one of CHT's own
// documents (settings, branding, partners...).
func notNamed(id string) error {
	return &Error{Status: http.StatusUnprocessableEntity, Err: invalid("Patient.identifier",
		fmt.Sprintf("no CHT document has the _id %q: an identifier with the CHT document system updates that person; "+
			"leave it out to create a person", id), models.IssueTypeNotFound)}
}

// updatable refuses to update the existing document cur with the person p
// unless cur is a person.
func (b *Bridge) updatable(cur, p *cht.Contact) error {
	if !b.isPerson(cur, p.TypeID()) {
		return &Error{Status: http.StatusUnprocessableEntity, Err: invalid("Patient.identifier",
			fmt.Sprintf("CHT document %s is a %q, not a person", p.ID, cur.TypeID()), models.IssueTypeValue)}
	}
	return nil
}

// newPerson is the document CHT's people API would store: the parent
// lineage minified from the parent place, and reported_date set. The new
// people of one request read their place once (lookups).
func (b *Bridge) newPerson(ctx context.Context, p *cht.Contact) (*cht.Contact, error) {
	if p.Parent == nil || p.Parent.ID == "" {
		return nil, &Error{Status: http.StatusInternalServerError,
			Err: errors.New("mediator configuration: no parent place for new people (fhir.InboundConfig.ParentPlace, MEDIATOR_PARENT_PLACE)")}
	}
	parents := lookupsOf(ctx).parents
	lineage, ok := parents[p.Parent.ID]
	if !ok {
		var err error
		if lineage, err = b.parentLineage(ctx, p.Parent.ID); err != nil {
			return nil, err
		}
		parents[p.Parent.ID] = lineage
	}
	doc := *p
	doc.Parent = lineage.Minify() // a copy for each person
	doc.ReportedDate = cht.Millis(b.now().UnixMilli())
	return &doc, nil
}

// parentLineage reads the parent place id and returns the minified lineage
// of a person placed under it. A member of the place the bridge does not
// read may have any value (getContact); its type or lineage that cannot
// be read is a configuration error, as for a place that does not exist.
func (b *Bridge) parentLineage(ctx context.Context, id string) (*cht.Lineage, error) {
	var parent cht.Contact
	stored, err := b.getContact(ctx, "CHT read parent place", id, &parent)
	if errors.Is(err, cht.ErrNotFound) {
		return nil, &Error{Status: http.StatusInternalServerError,
			Err: fmt.Errorf("mediator configuration: parent place %s does not exist in CHT", id)}
	}
	if err != nil {
		return nil, chtFailure("read parent place "+id, err)
	}
	if f := stored.neededBy(placeMembers); f != nil {
		return nil, &Error{Status: http.StatusInternalServerError,
			Err: fmt.Errorf("mediator configuration: parent place: %s", unreadable(id, f))}
	}
	// A person of any type (Config.ContactTypes, Config.PersonTypes) is no
	// parent: CHT's person API refuses a parent whose type the person's
	// type does not list (cht-core shared-libs/cht-datasource
	// src/local/libs/lineage.ts assertHasValidParentType).
	if !parent.IsContact() || b.isPerson(&parent) {
		return nil, &Error{Status: http.StatusInternalServerError,
			Err: fmt.Errorf("mediator configuration: parent %s is a %q, not a place", id, parent.TypeID())}
	}
	return &cht.Lineage{ID: parent.ID, Parent: parent.Parent.Minify()}, nil
}

// mergePerson copies the fields the Patient gives into cur; it reports
// whether anything changed. The parent is kept: CHT users may have moved
// the person since.
func mergePerson(cur *cht.Contact, in *cht.Contact) bool {
	changed := false
	set := func(dst *string, v string) {
		if v != "" && *dst != v {
			*dst, changed = v, true
		}
	}
	set(&cur.Name, in.Name)
	set(&cur.Sex, in.Sex)
	set(&cur.DateOfBirth, in.DateOfBirth)
	set(&cur.DateOfDeath, in.DateOfDeath)
	set(&cur.Phone, in.Phone)
	set(&cur.PhoneAlternate, in.PhoneAlternate)
	set(&cur.ExternalID, in.ExternalID)
	return changed
}

// upsertReport writes the report doc (see reportDoc) of unit u under the
// deterministic _id reportHome gives (u.docID, or u.requestKey for a Task
// that carries out a ServiceRequest); an existing
// one is updated only when its fields differ. With u.mergeFields (a report made
// from Observations) the fields sent are merged into the stored report's
// fields of the same form (see mergeInto): each Observation is a FHIR
// resource of its own, and a Bundle that re-sends an Encounter with one
// corrected Observation does not delete the fields of the others.
// Without it (a ServiceRequest or Task, one resource that is the whole
// report), or when the form changed, the fields are replaced; but the
// report of a ServiceRequest (u.keepTask) whose stored report was raised
// by its Task (taskOf) keeps the Task's fields and time, and only
// gains fields it lacks (the bridge could not read the Task to write the
// two again, see joinStoredTask). A stored report of the other shape (see
// reshape) is rewritten in doc's. u.docID is set to where it was written
// once it was.
func (b *Bridge) upsertReport(ctx context.Context, u *unit, doc map[string]any) (created bool, err error) {
	sub := u.report
	var id string
	for range attempts {
		var cur map[string]json.RawMessage
		id, cur, err = b.reportHome(ctx, u)
		if err != nil {
			return false, err
		}
		if cur == nil {
			doc["_id"] = id
			_, err = b.cht.Docs.Put(mediator.WithOrchestration(ctx, "CHT create report"), id, doc)
			if errors.Is(err, cht.ErrConflict) {
				continue
			}
			if err != nil {
				return false, chtFailure("create report "+id, err)
			}
			u.docID = id
			return true, nil
		}
		form := mustJSON(doc["form"])
		// A copy: the merges below must not carry into another attempt.
		want := copyFields(doc["fields"].(map[string]any))
		reshaped := reshape(cur, doc)
		// At most one of the merges below runs: requestUnread is a
		// Task's, keepTask a ServiceRequest's, mergeFields Observations'.
		stored, decoded := decodeObject(cur["fields"])
		if u.requestUnread && id != u.docID && decoded && sameForm(cur["form"], doc["form"]) {
			// The ServiceRequest's report: its reason and due date stay
			// where the Task gives none.
			fillRequestFields(want, stored)
		}
		keptTask := false
		if u.keepTask && decoded && taskOf(stored) != "" {
			want, keptTask = mergeInto(want, stored), true
		}
		// The same form whatever its case: a report an earlier version
		// wrote as ASSESSMENT is the assessment XForm's (see reshape).
		if u.mergeFields && sameForm(cur["form"], doc["form"]) {
			if decoded {
				if _, xform := doc["content_type"]; xform && reshaped {
					// Stored in the records API shape, its keys
					// lower-cased: a sent key that differs only
					// in case replaces the stored one.
					dropFolded(stored, want)
				}
				want = mergeInto(withoutSubject(stored, want), want)
			}
		}
		fields, err := json.Marshal(want)
		if err != nil {
			return false, fmt.Errorf("report %s: encode fields: %w", id, err)
		}
		// The resource's date (authoredOn, the Encounter's start) is the
		// report's, unless the report stays the Task's (keptTask): a
		// corrected date alone moves the CHW task.
		var date json.RawMessage
		if !sub.ReportedDate.IsZero() && !keptTask {
			date = mustJSON(doc["reported_date"])
		}
		if sameJSON(cur["fields"], fields) && sameJSON(cur["form"], form) && !reshaped &&
			(date == nil || sameJSON(cur["reported_date"], date)) {
			u.docID = id
			return false, nil
		}
		cur["fields"], cur["form"] = fields, form
		if date != nil {
			cur["reported_date"] = date
		}
		_, err = b.cht.Docs.Put(mediator.WithOrchestration(ctx, "CHT update report"), id, cur)
		if errors.Is(err, cht.ErrConflict) {
			continue
		}
		if err != nil {
			return false, chtFailure("update report "+id, err)
		}
		u.docID = id
		return false, nil
	}
	return false, &Error{Status: http.StatusServiceUnavailable,
		Err: fmt.Errorf("report %s: concurrent updates in CHT kept conflicting", id)}
}

// reportHome returns where the report of u is written, and the stored
// report there (nil when there is none yet): under u.docID, unless
// u.requestKey is set (below).
//
// The report of a Task that carries out a ServiceRequest (u.requestKey,
// see carryOut) is the ServiceRequest's report, made by the
// ServiceRequest sent alone or by this Task before, so that the two are
// one CHW task, unless that report is another Task's (ownedBy): each Task
// is a CHW task of its own, under its own key, u.docID, then. A Task
// whose report CHT has under its own key (written so, or by earlier
// versions of the bridge, which keyed every Task's report by the Task)
// keeps it there when the request's key has none of its own, as does one
// it wrote under the request's id (u.requestAlt) before the bridge could
// read the request. A report none has is created under u.requestKey.
func (b *Bridge) reportHome(ctx context.Context, u *unit) (id string, cur map[string]json.RawMessage, err error) {
	if u.requestKey == "" || u.requestKey == u.docID {
		cur, err = b.readReportOf(ctx, u, u.docID)
		return u.docID, cur, err
	}
	if cur, err = b.readReportOf(ctx, u, u.requestKey); err != nil {
		return "", nil, err
	}
	if cur != nil && u.ownedBy(cur) {
		return u.requestKey, cur, nil
	}
	if cur == nil && u.requestAlt != "" && u.requestAlt != u.requestKey {
		// Written under the request's id when the request could not be
		// read: this Task's report if it names it.
		alt, err := b.readReport(ctx, u.requestAlt)
		if err != nil {
			return "", nil, err
		}
		if alt != nil {
			stored, _ := decodeObject(alt["fields"])
			if task := taskOf(stored); task != "" && task == u.report.Fields[fieldTask] {
				return u.requestAlt, alt, nil
			}
		}
	}
	own, err := b.readReport(ctx, u.docID)
	if err != nil || own != nil || cur != nil {
		return u.docID, own, err
	}
	return u.requestKey, nil, nil
}

// ownedBy reports whether the stored report cur, under the key of the
// ServiceRequest the Task unit u carries out, may be this Task's: it names
// this Task (fieldTask holds the Task's id), or no Task (the
// ServiceRequest's own report, or one of a Task without an id) and the
// same person: a Task about another person than its request's report
// leaves that report to the request, whose CHW task it is.
func (u *unit) ownedBy(cur map[string]json.RawMessage) bool {
	stored, _ := decodeObject(cur["fields"])
	if task := taskOf(stored); task != "" {
		return task == u.report.Fields[fieldTask]
	}
	for _, k := range subjectKeys {
		if v, ok := u.report.Fields[k]; ok {
			if sv, ok := stored[k]; ok && sv != v {
				return false
			}
		}
	}
	return true
}

// copyFields returns a copy of fields, its groups copied too.
func copyFields(fields map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		if g, ok := v.(map[string]any); ok {
			v = copyFields(g)
		}
		out[k] = v
	}
	return out
}

// readReportOf is readReport for unit u: the report planning read for it
// (u.stored), once, when that is the report id.
func (b *Bridge) readReportOf(ctx context.Context, u *unit, id string) (map[string]json.RawMessage, error) {
	if u.storedKey != "" && u.storedKey == id {
		cur := u.stored
		u.stored, u.storedKey = nil, ""
		return cur, nil
	}
	return b.readReport(ctx, id)
}

// readReport reads the report id: nil when CHT has none.
func (b *Bridge) readReport(ctx context.Context, id string) (map[string]json.RawMessage, error) {
	var cur map[string]json.RawMessage
	err := b.cht.Docs.Get(mediator.WithOrchestration(ctx, "CHT read report"), id, &cur)
	switch {
	case errors.Is(err, cht.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, chtFailure("read report "+id, err)
	}
	return cur, nil
}

// reportDoc is the data_record document of sub, in the shape CHT gives a
// report of its form. A records API (JSON or SMS) form gets what POST
// /api/v2/records would store: the form code upper-cased, field keys
// lower-cased, empty errors and tasks, and the _meta object as
// sms_message. With xform (see isXForm), an XForm's report gets what CHT's
// web app saves when the form is submitted (cht-core
// webapp/src/ts/services/enketo.service.ts initializeReportDoc): the form
// id as the mapping spells it, content_type "xml", field keys as the form
// names them, no sms_message; CHT tells the two apart by content_type
// (shared-libs/transitions utils isXFormReport). Both nest dotted keys
// below fields and give reported_date in milliseconds (now when the
// resource gives none). Unlike the records API they keep field keys the
// form definition does not declare.
func (b *Bridge) reportDoc(id string, sub *cht.Record, xform bool) (map[string]any, error) {
	rec := *sub
	rec.Geolocation = nil // not a records API member: set on the document below
	if rec.ReportedDate.IsZero() {
		rec.ReportedDate = b.now()
	}
	// The records API body checks the values and the keys (two keys that
	// differ only in case are refused for an XForm too).
	body, err := rec.MarshalJSON()
	if err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Err: invalid("", err.Error(), models.IssueTypeValue)}
	}
	var flat map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&flat); err != nil {
		return nil, err
	}
	meta, _ := flat["_meta"].(map[string]any)
	// The field keys as sent, by their lower-cased key in body.
	sent := make(map[string]string, len(sub.Fields))
	for k := range sub.Fields {
		sent[strings.ToLower(k)] = k
	}
	// The body carries a dotted key twice: flat ("a.b") and nested
	// ({"a":{"b":..}}, see cht.Record's MarshalJSON). Only the flat keys
	// are the fields sent (a field value is never an object), so the
	// nested copies are skipped; the keys go in sorted order, so that the
	// result and any error do not depend on map order.
	keys := make([]string, 0, len(flat))
	for k, v := range flat {
		if _, nested := v.(map[string]any); !nested {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	fields := map[string]any{}
	for _, k := range keys {
		key := k
		if orig, ok := sent[k]; ok && xform {
			key = orig
		}
		if err := setDotted(fields, key, flat[k]); err != nil {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Err: invalid("", err.Error(), models.IssueTypeValue)}
		}
	}
	doc := map[string]any{
		"_id":           id,
		"type":          "data_record",
		"form":          meta["form"],
		"fields":        fields,
		"reported_date": meta["reported_date"],
	}
	if xform {
		doc["form"] = strings.TrimSpace(sub.Form)
		doc["content_type"] = "xml"
	} else {
		doc["errors"], doc["tasks"], doc["sms_message"] = []any{}, []any{}, meta
	}
	if from, ok := meta["from"]; ok {
		doc["from"] = from
	}
	if sub.Geolocation != nil {
		doc["geolocation"] = sub.Geolocation
	}
	return doc, nil
}

// isXForm reports whether form, a mapped form of Observations, is the id
// of an XForm rather than the code of a records API (JSON or SMS) form:
// CHT stores the latter upper-case (the records API upper-cases it), an
// XForm's id as its file names it (assessment, pregnancy_danger_sign). The
// task form of ServiceRequests and Tasks (fhir.InboundConfig.TaskForm) is
// a records API form whatever its case (its default, interop_follow_up, is
// cht-interoperability's INTEROP_FOLLOW_UP, whose lower-case namesake is
// the XForm that closes the task), and is not judged by this.
func isXForm(form string) bool {
	form = strings.TrimSpace(form)
	return form != strings.ToUpper(form)
}

// sameForm reports whether the stored form (JSON) is form, ignoring case.
func sameForm(stored json.RawMessage, form any) bool {
	var s string
	f, ok := form.(string)
	return ok && json.Unmarshal(stored, &s) == nil && strings.EqualFold(s, f)
}

// reshape makes cur, a stored report, of the shape of doc (see reportDoc)
// when it was written in the other one (an XForm's report written by an
// earlier version of the bridge as a records API report): content_type
// "xml" and no sms_message for an XForm, no content_type and doc's
// sms_message otherwise. It reports whether cur changed.
func reshape(cur map[string]json.RawMessage, doc map[string]any) bool {
	changed := false
	if ct, xform := doc["content_type"]; xform {
		if want := mustJSON(ct); !sameJSON(cur["content_type"], want) {
			cur["content_type"], changed = want, true
		}
		if _, ok := cur["sms_message"]; ok {
			delete(cur, "sms_message")
			changed = true
		}
		return changed
	}
	if _, ok := cur["content_type"]; ok {
		delete(cur, "content_type")
		changed = true
	}
	if _, ok := cur["sms_message"]; !ok {
		cur["sms_message"], changed = mustJSON(doc["sms_message"]), true
	}
	return changed
}

// setDotted stores v at the dotted path k below m, creating objects.
func setDotted(m map[string]any, k string, v any) error {
	parts := strings.Split(k, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p]
		if !ok {
			child := map[string]any{}
			m[p] = child
			m = child
			continue
		}
		child, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("field %q: %q is both a value and an object", k, p)
		}
		m = child
	}
	last := parts[len(parts)-1]
	if _, ok := m[last].(map[string]any); ok {
		return fmt.Errorf("field %q is both a value and an object", k)
	}
	m[last] = v
	return nil
}

// mergeInto sets every value of src in dst, at any depth: an object of
// both is merged member by member, any other value of src replaces dst's.
// Members of dst that src lacks are kept. It returns dst, which it
// changes; src is not changed.
func mergeInto(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeInto(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// dropFolded renames, at every level of stored, the keys that equal a key
// of sent but for case to that key (the stored report's lower-cased keys,
// when sent keeps the form's): a group keeps its other fields, and a
// value is replaced by the one sent.
func dropFolded(stored, sent map[string]any) {
	for k, v := range sent {
		for sk, sv := range stored {
			if sk == k || !strings.EqualFold(sk, k) {
				continue
			}
			delete(stored, sk)
			if _, group := sv.(map[string]any); group {
				if _, taken := stored[k]; !taken {
					stored[k] = sv
				}
			}
		}
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := stored[k].(map[string]any); ok {
				dropFolded(dv, sv)
			}
		}
	}
}

// subjectKeys are the field keys that name a report's subject, as CHT
// reads them (cht-core shared-libs/registration-utils getSubjectIds).
var subjectKeys = []string{"patient_id", "patient_uuid", "place_id", "place_uuid"}

// withoutSubject drops the subject keys from stored when fields names a
// subject, so that a merged report names one subject, the one sent last.
func withoutSubject(stored, fields map[string]any) map[string]any {
	if slices.ContainsFunc(subjectKeys, func(k string) bool { _, ok := fields[k]; return ok }) {
		for _, k := range subjectKeys {
			delete(stored, k)
		}
	}
	return stored
}

// decodeObject decodes raw as a JSON object (numbers as json.Number); ok
// is false when raw is not one.
func decodeObject(raw json.RawMessage) (m map[string]any, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// sameJSON compares two JSON values semantically: member order aside, and
// numbers by their value as float64 ("61.50" is 61.5, "168.0" is 168).
// That is how CHT stores a document: its API parses the body and writes
// it to CouchDB with JSON.stringify (cht-core api/src/routing.js
// writeParsedBody), so the numbers a report is sent with come back
// re-encoded.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// chtFailure wraps a failed CHT call: the sender should retry (502, 504),
// unless CHT refused the mediator's credentials (see credentialsRefused)
// or the request itself (422).
func chtFailure(what string, err error) error {
	if refused := credentialsRefused(err); refused != nil {
		return refused
	}
	// CHT (or CouchDB, or a proxy before them) refusing a write itself
	// refuses it again on every retry: 400 (a document CHT's API or
	// CouchDB finds invalid), 413 (over CouchDB's max_document_size or a
	// proxy's body limit), 422. A refused read is the mediator's doing:
	// it stays a 502.
	var ce *cht.APIError
	if errors.As(err, &ce) && ce.Method != http.MethodGet {
		switch ce.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return &Error{Status: http.StatusUnprocessableEntity,
				Err: fmt.Errorf("cht refused to %s (HTTP %d); sending it again will not help: %w", what, ce.StatusCode, err)}
		}
	}
	status := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	return &Error{Status: status, Err: fmt.Errorf("cht: %s: %w", what, err)}
}
