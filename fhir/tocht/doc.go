// Package tocht writes FHIR R4 resources to CHT: it is the handler of a
// FHIR → CHT mediator, to which an EMR or HIE sends resources (through
// OpenHIM) and which writes them to CHT as people and reports.
// examples/fhir-to-cht wires it into a mediator; [Definition] is that
// mediator's registration and default channel. [Bridge.Handler] serves:
//
//	POST /fhir/Patient, PUT /fhir/Patient/{id}                 create or update a CHT person
//	POST /fhir/ServiceRequest, PUT /fhir/ServiceRequest/{id}   a report that raises a CHW task
//	POST /fhir/Task, PUT /fhir/Task/{id}                       a report that raises a CHW task
//	POST /fhir/Observation, PUT /fhir/Observation/{id}         a report of the mapped form
//	POST /fhir, POST /fhir/Bundle                              a transaction, batch or collection Bundle
//
// Bodies are FHIR JSON (application/fhir+json or application/json). A
// single resource is answered 201 (a CHT document was created) or 200
// (updated, or already up to date) with the resource; a Patient also gets the
// identifier of its CHT person. A transaction or collection Bundle is
// answered with a transaction-response Bundle, a batch with a
// batch-response, with one entry per entry received (see Bundles).
//
// Every error is answered with an OperationOutcome naming the element and
// the problem: 400 for malformed or invalid resources (among them an id,
// in the URL, the body, a Bundle entry's request or a literal reference,
// that is not of FHIR's id type [A-Za-z0-9\-\.]{1,64} or is a dot-segment; a
// string holding invalid UTF-8, a lone surrogate or a control character
// other than tab, CR and LF, which are refused rather than changed; a
// member name twice in one JSON object, of which one value would be lost),
// 404 and 405 for other paths and methods (and, for a batch entry, 405
// for a method other than POST and PUT), 413 for bodies over
// Config.MaxBodyBytes (set [ErrorBody] as the mediator's so that its own
// 413 is one too) and for Bundles of more than Config.MaxBundleEntries
// entries (see Bundles), 415 for other content types, for a charset other than UTF-8 (FHIR bodies are UTF-8), for a fhirVersion parameter other than 4.0 (R4) and for a Content-Encoding other than identity (bodies are not decompressed), 422 for resources that are valid FHIR but cannot become CHT
// data (an inactive ServiceRequest, a subject CHT does not know, an unmapped
// Observation code, and those of Refused resources below; and a document
// CHT itself refuses with 400, 413 or 422, such as one over CouchDB's
// max_document_size: sent again, it would be refused again), 500 without Retry-After for a mediator configuration
// error (a missing parent place, a NotifyEMR endpoint that is not an
// absolute http(s) URL, a 401 or 403 of CHT or of the FHIR server, which
// refused the mediator's own credentials), logged as an error, and 502 or
// 504 when CHT or the FHIR server failed: the
// work may be partly done (a CHT answer lost, a Bundle failed halfway), and
// the EMR (or OpenHIM) retries, which is safe (see Idempotency).
//
// # Refused resources
//
// Some valid FHIR must not become CHT data; each is refused with 422 naming
// the element, and a transaction or collection holding one is refused whole,
// before anything is written (a batch refuses that entry):
//
//   - An Observation whose status is entered-in-error or cancelled, and the
//     Observations of an Encounter with such a status (Observation.status,
//     Encounter.status): R4 makes these statuses modifiers meaning "not
//     valid data", and a retracted value is not written to CHT. The bridge
//     does not take back what an earlier version wrote: change or delete
//     that report in CHT.
//   - A resource with a modifierExtension, at the resource or in one of its
//     backbone elements (such as Task.restriction or Patient.contact), a
//     Bundle entry or entry request with one, and a Patient read from
//     Config.FHIRURL as a subject with one: a modifier extension changes the
//     meaning of what holds it (R4 extensibility.html#modifierExtension),
//     and the bridge understands none. The issue names the element and the
//     extension's url.
//   - A ServiceRequest with doNotPerform true (ServiceRequest.doNotPerform):
//     it asks that something not be done, and raises no CHW task.
//   - A ServiceRequest without an id that would raise a CHW task of its
//     own (sent alone, or in a Bundle where no Task carries it out; an
//     entry named by a urn:uuid fullUrl only has no id either), and a Task
//     without an id that names no ServiceRequest with one
//     (ServiceRequest.id, Task.id; issue code required): the CHW task's
//     report would name no request (fhir_task, fhir_service_request), and
//     its follow-up could close nothing, as fhir.Converter.CloseReferral
//     finds the Task and the ServiceRequest by these ids. Send the resource
//     with the id the FHIR server knows it by (a ServiceRequest of the
//     same Bundle as the Task that carries it out needs none of its own
//     when the Task has one).
//   - A Patient with a link of type replaced-by (Patient.link[i].type; a
//     link without a type, which R4 requires, too), in a Bundle too, and a
//     Patient read from Config.FHIRURL as a subject with one: Patient.link
//     is a modifier, and such a link says the record is replaced by the
//     Patient it names (an EMR's merge leaves the record it merged away
//     so). Send, or refer to, that Patient; the bridge does not merge the
//     CHT person an earlier version of the record became (merge the
//     people in CHT).
//
// # Bundles
//
// A Bundle's entries are POST or PUT entries (or entries without request)
// carrying a resource. A POST's request.url is the resource's type
// (relative to the base or absolute). A PUT's request.url names the resource,
// <type>/<id>, whose id the resource takes. For a Patient it may instead be
// a conditional update by identifier (R4 http.html#cond-update), PUT
// Patient?identifier=<system>|<value> (|<value> for an identifier without
// system, <value> for one of any system): the Patient must carry that
// identifier, and is keyed as when it is sent any other way (see
// Idempotency), so that every send of it updates one person. A
// conditional url with other search
// parameters, several identifiers or one the Patient does not carry, and
// one of another resource type, is refused (400 naming request.url).
//
// Beside the resources it writes (Patient, ServiceRequest, Task, and
// Observations with their Encounter), a Bundle may carry the resources
// they refer to as context: Practitioner, PractitionerRole, Organization
// and Location (OpenMRS's Encounter.participant and Encounter.location,
// a request's requester, a Task's owner). They hold no data of a CHT
// person or report: each is answered 200 with an outcome saying it was
// context, not written to CHT, and the other entries are written as
// without them. Every other resource type (Condition, MedicationRequest,
// Immunization, DiagnosticReport, ...) carries data the bridge cannot
// write, and is refused (400 naming the entry), as is a Location that is
// where a report was filled in (the Location with the identifier
// "<report _id>/geolocation" cht-to-fhir writes: 422), whose geolocation
// the bridge does not write from a Bundle.
//
// A conditional create (an entry's request.ifNoneExist, or an
// If-None-Exist header) is not run as a search: every write is keyed by
// the resource's id or identifier (see Idempotency), so a repeat updates
// the CHT document the first made rather than creating another. A version
// precondition (request.ifMatch, ifNoneMatch or ifModifiedSince, or the
// If-Match, If-None-Match or If-Modified-Since header) is refused (400
// naming it): the bridge keeps no FHIR versions of the CHT documents it
// writes, so it cannot tell whether the condition holds, and ignoring it
// would overwrite what the sender meant to protect.
//
// An entry the bridge cannot handle, a method other than POST and PUT
// (the bridge deletes, reads and patches no CHT data), a POST or PUT
// without a resource, a resource that is not valid or of a type refused
// above, or a request.url that does not name it, refuses a transaction or
// collection whole (400, naming the entry's element: request.method for a
// DELETE). In a batch, whose entries are processed independently (R4
// http.html#transaction), that entry alone is answered 405 (the method)
// or 400, and the others are processed; a batch with more than 50 such
// entries is refused whole (400), so that the answer stays small.
//
// A Bundle of any type holds at most Config.MaxBundleEntries entries
// ([DefaultMaxBundleEntries], 200, by default). The entries are written
// one after the other within the request's deadline (Config.Timeout, 20 s
// by default), at about two CHT calls each; a larger Bundle could outlast
// the deadline on every retry of the sender. One with more entries is
// refused whole before anything is written (413, an issue too-costly
// naming Bundle.entry with the cap): send it again split into Bundles of
// at most that many entries, keeping the entries that refer to one
// another (by fullUrl: a Patient and the resources about it, an Encounter
// and its Observations, a Task and its ServiceRequest) in one Bundle.
//
// # Times
//
// A report's reported_date is the Encounter's period.start, else the first
// Observation's effective time: effectiveDateTime, effectiveInstant, or
// effectivePeriod.start (else its end); a ServiceRequest's or Task's
// authoredOn; else the time of writing. A date that is not a FHIR date or
// dateTime (an instant: with seconds and zone) is refused, naming the
// element. Observations without an Encounter are grouped into one report
// per subject and effective time. A resource sent again with only its
// date corrected moves its report to that date (CHT schedules the CHW
// task by it), except the report of a ServiceRequest that its Task raised,
// which keeps the Task's time.
//
// # References in a Bundle
//
// A reference to a resource of the same Bundle (a Patient as a subject, an
// Encounter as Observation.encounter, a ServiceRequest as Task.basedOn or
// Task.focus) matches the entry's fullUrl (a urn:uuid, or an absolute URL)
// or <type>/<id>. A version-specific reference (Patient/p-1/_history/2,
// relative or absolute) matches without its version, which must then be the
// entry's meta.versionId when the resource has one (422 naming the
// reference otherwise), as R4 bundle.html#references resolves it. Read
// from Config.FHIRURL, a version-specific Patient reference reads the
// Patient's current version.
//
// # A Task with its ServiceRequest
//
// An EMR may send the ServiceRequest of a referral with the Task that asks
// for it to be done (Task.basedOn or Task.focus referring to it) in one
// Bundle. That is one referral, and one CHW task: the Task's report, which
// names the Task (fhir_task) and, when the ServiceRequest has an id, the
// ServiceRequest (fhir_service_request), and which takes the request's
// reason and due date when the Task gives none. The ServiceRequest's entry
// is answered 200 without a report of its own. The Task and the
// ServiceRequest must be about the same person; when either is refused, so
// is the other (in a batch too, also when the Task's write fails), except
// that a Task whose reference to it is refused (a version the entry does
// not have) leaves the ServiceRequest on its own, and that a
// ServiceRequest refused only for its status, which is not withdrawn
// (draft, on hold, completed, unknown: OpenMRS FHIR2 derives it from the
// order's Tasks), is still the request its Task carries out.
//
// The two may also arrive one after the other, in either order (a FHIR
// server's Subscriptions notify each resource on its own): the CHW task is
// still one. A Task's report is the report of the first ServiceRequest it
// names (Task.focus, else Task.basedOn in order: the one
// fhir_service_request names; one without an id, which the report cannot
// name, is passed over), keyed by that ServiceRequest's identity, unless
// that report is another Task's (it names another Task in fhir_task) or
// about another person: each Task is a CHW task of its own, and a second
// Task for one request (another attempt) raises a second, also when both
// arrive at once, under the Task's own key. A Task whose report CHT has
// under its own key (one that found the request's report taken, or one
// earlier versions of the bridge wrote, which keyed every Task's report
// by the Task) keeps it there while the request has no report of its own.
//
// The ServiceRequest's identity is known when it is in the same Bundle,
// or read from Config.FHIRURL: a Task whose ServiceRequest is not in the
// same request reads it from the FHIR server and takes its reason and due
// date as in one Bundle; one revoked, entered in error, or asking for the
// action not to be done refuses the Task (422 naming the element that
// refers to it), as does one about another person, while one the server
// holds with any other status (draft, on hold, completed, unknown) is
// still the request it carries out, and one the bridge would refuse for
// another reason (a subject CHT does not have, a date CHT cannot
// schedule) still keys the Task but gives it nothing else. The read
// failing is a 502 (504 on a timeout), which the sender retries; the
// server refusing the mediator's user is a 500: its user must be allowed
// to read ServiceRequests and Tasks. Without
// Config.FHIRURL, or when the server does not have it, the Task knows the
// ServiceRequest by the id it names, which is its identity only when it
// has no identifier; the Task then keeps the reason and due date the
// request's report holds where it gives none. A ServiceRequest sent after
// its Task reads the Task from Config.FHIRURL (the report names it,
// fhir_task) and is written with it, so that a corrected reason or due
// date reaches the CHW task where the Task gives none of its own; when the
// Task cannot be read, or no longer raises a task (completed, cancelled),
// the report keeps the Task's fields and time and gains only fields it
// lacks (also when the task form was renamed since). In a batch, the
// ServiceRequest's entry fails only when every Task that carries it out
// failed.
//
// What cannot be matched raises a CHW task of its own: without
// Config.FHIRURL, a ServiceRequest with an identifier and its Task sent
// apart; a ServiceRequest sent alone after a Task whose report is under
// the Task's own key; a ServiceRequest that a Task carries out after
// another it names first. A Task without an id names itself nowhere in
// its report (fhir_task holds the id, which the loop needs to close it):
// a second such Task for the request takes the first one's report over,
// a ServiceRequest sent after it replaces its reason and due date, and the
// same Task sent without its id after its report names it gets a second
// report. Give Tasks their ids (one that names no ServiceRequest with an
// id is refused, see Refused resources). A Task that arrives after the CHW's
// follow-up of its ServiceRequest's CHW task takes over that report, but
// the follow-up, which named no Task, does not close it.
//
// # Idempotency
//
// Every write goes to CHT's database (through the API's /medic proxy) under
// a deterministic document _id, a name-based UUID of the CHT instance and
// the FHIR resource's identity. A create is a PUT without _rev, which
// CouchDB accepts exactly once; a retry or re-send finds the document and
// updates it only if the content changed (PUT with the current _rev, one
// re-read and retry on 409). So retries, re-sends and concurrent duplicates
// never create a second person or report. Numbers are compared by value
// (61.50 is 61.5): CHT's API stores a document's numbers as JavaScript
// re-encodes them (cht-core api/src/routing.js writeParsedBody).
//
//   - A Patient becomes the person with _id [Bridge.PersonID] of its key:
//     the value of its identifier with the converter's ExternalID system,
//     else "system|value" of its first identifier (the bare value when it
//     has no system), else its id, however it is sent (a conditional
//     update too). That identifier's value (or the id) is stored as
//     external_id. A Patient that carries a CHT _id identifier (one
//     cht-to-fhir wrote) updates that person and never creates one: it must
//     exist (422 otherwise) and be a person (Config.ContactTypes,
//     Config.PersonTypes), not a place (422), and an _id starting with "_"
//     is rejected (400).
//   - A ServiceRequest, Task or group of Observations becomes the report with
//     _id [Bridge.ReportID] of its identity: the resource's first identifier,
//     else its id (for Observations: the Encounter's, else the
//     Observations'), else, for Observations with an effective time, a hash
//     of the report's content. A Task that carries out a ServiceRequest
//     writes the ServiceRequest's report (see above).
//
// A report made from Observations is updated by merging: the fields of the
// Observations sent replace those fields of the stored report (of the
// same form), and the fields that the Bundle does not send are kept. Each
// Observation is a FHIR resource of its own, so re-sending an Encounter
// with one corrected Observation does not delete the others' fields;
// leaving an Observation out does not remove its field either (change or
// delete it in CHT). A report's subject (patient_id, patient_uuid,
// place_id, place_uuid) is replaced as a whole. A report made from a
// ServiceRequest or Task, one resource, is replaced as a whole, but for a
// ServiceRequest whose report its Task raised (see above).
//
// Observations without an Encounter in the Bundle are keyed by the
// Observations of their group: one of them sent again in another group
// (alone, or with other siblings) makes another report. Send the
// Observations of one visit with their Encounter, whose identity keys the
// report whatever the grouping.
//
// # Subjects
//
// A ServiceRequest's subject, a Task's for, an Encounter's or Observation's
// subject is resolved to a CHT person in this order: an identifier with the
// CHT document system (the person's _id); a Patient of the same Bundle
// (by fullUrl or Patient/<id>; one that came from CHT, not written back, is
// the person it names, which must exist); then its other identifier and
// its literal Patient/<id> reference:
//
//   - An identifier with the CHT patient_id system (fhir.Systems.PatientID)
//     is the one contact CHT finds by that shortcode (none, or several, is
//     422).
//   - Another identifier is a person key (the same "system|value" or bare
//     ExternalID value as the Patient's key): the person of a Patient of
//     the same Bundle that carries the identifier (whichever of its
//     identifiers keys it), else the one CHT has under that key. When CHT
//     has none and Config.FHIRURL is set, the bridge looks the identifier
//     up on the FHIR server, Patient?identifier=<system>|<value> (for an
//     identifier without system, |<value> and the ExternalID system's,
//     the identifiers keyed alike; not the value in any system): the one
//     Patient found that carries it is keyed as a Patient sent to the
//     bridge is, so that a subject named by another identifier of the
//     Patient than its key (a national id, where the EMR sent the Patient
//     with its own id first) finds the person. No Patient is 422, several
//     are 422 saying that the identifier is ambiguous; a Patient found with
//     a modifier extension is refused as one read by reference. Without
//     Config.FHIRURL the identifier is a key only, and the 422 of a person
//     CHT does not have says that setting it lets the bridge look the
//     identifier up.
//   - A literal Patient/<id> reference is read from Config.FHIRURL when set
//     (so a Patient that cht-to-fhir wrote resolves by its CHT identifier),
//     else the id is the key.
//   - A conditional reference (R4 http.html#trules), a search
//     Patient?identifier=<system>|<value> (|<value> for an identifier
//     without system), is the identifier it names, resolved as above
//     whatever base it is written with. A search by any other parameter,
//     by a value of any system, or naming another identifier than the one
//     beside it, is refused (422 naming the element).
//
// A reference with both an identifier and a literal reference (R4
// references.html#logical: both name the same resource) is about the
// person its identifier names, else (the identifier names no person CHT
// has, or several) the one its literal reference names. When both name a
// person and these differ, it is refused (422 naming the element), also
// when the identifier names, on the FHIR server, a Patient CHT does not
// have yet: the bridge does not guess which one the sender meant. (An identifier with
// the CHT document system, and a reference to a Patient of the same
// Bundle, come first: they are the person whatever the other part says.)
// The person must exist
// in CHT and be a person, not a place (422 otherwise): a report about
// nobody would raise no task. CHT stores a contact's members as sent (its
// people API checks the name only), so a member may be of another JSON
// type than the bridge reads (a phone stored as a number): such a member
// does not stop the bridge reading the contact as a subject, as the
// person a Patient updates (the member is written back as stored unless
// the Patient gives it) or as the parent place of a new person; only its
// type (or a parent place's lineage) stored so refuses the request,
// naming the member (422; 500 for the parent place). The FHIR server
// failing while a subject is read or looked up is a 502 (504 on a
// timeout), which the sender retries, never a 422. In a transaction every check that can refuse an entry (the
// subject exists and is a person, the CHT document a Patient updates is a
// person, a new person's parent place exists and may hold people) runs
// for all entries before the first write, as do the subjects' reads and
// lookups on the FHIR server, so a transaction is refused whole (4xx) or
// written whole; a CHT or FHIR server failure (5xx) is retried whole. In a
// batch, a report about a Patient of the same Bundle that failed is not
// written: it fails too (422, or the Patient's 5xx so that both are
// retried). Each reference is read or looked up once per request, however
// many entries carry it (an EMR names the patient in every Observation of
// a visit): the Patient read, the identifier searched, the CHT person, the
// parent place of new people. A failed read is tried again by the next
// entry that needs it.
//
// CHT's own create endpoints cannot do this: the records API and the 5.2+
// person API generate the _id (and reject a given one), so a lost answer
// followed by a retry would create a duplicate. Writing the document itself
// is also what CHT's web app does for every form it submits; Sentinel then
// runs the transitions on the change, and the CHW's device computes the
// task from the report.
//
// A report is written in the shape CHT gives a report of its form. The
// Observations of an XForm, a mapped form whose id is not all upper case
// (assessment), make the document CHT's web app saves when the form is
// submitted (cht-core webapp/src/ts/services/enketo.service.ts
// initializeReportDoc): form as the mapping spells it, type data_record,
// content_type "xml", the field names as mapped, no sms_message. Those of
// a records API (JSON or SMS) form, whose code is upper case
// (HEIGHT_WEIGHT), and the report of a ServiceRequest or Task, whose task
// form (fhir.InboundConfig.TaskForm) is a records API form whatever the
// case it is configured in, make the document the records API would
// store: form upper-cased, field keys lower-cased, empty errors and tasks,
// the request's metadata as sms_message. A stored report of the other
// shape (an XForm's report an earlier version wrote as a records API
// report) is rewritten in its form's shape when it is sent again.
//
// Run inside a [mediator.Mediator], with a CHT client whose HTTPClient uses
// [mediator.Transport], every CHT call is an orchestration of the OpenHIM
// transaction.
package tocht
