// Package fhir converts Community Health Toolkit (CHT) documents to FHIR R4
// resources and back.
//
// Resources are the types of github.com/samply/golang-fhir-models (imported
// in this documentation as models). A [Converter], configured once with
// [New] (no I/O), turns
//
//   - a CHT person into a Patient and/or a Practitioner and a place into a
//     Location and/or an Organization, with the places of its lineage
//     ([Converter.ContactBundle]);
//   - a report into an Encounter and Observations through a declarative
//     [Mapping] of form fields to codes, with its subject and the contacts
//     it refers to ([Converter.ReportBundle]); the mapping file format is
//     described in docs/mappings.md;
//   - the outbound payload of the cht-interoperability mediators into an
//     Encounter and Observations ([DecodeEncounterPayload],
//     [Converter.ConvertPayload], [Converter.PayloadBundleJSON]);
//
// and FHIR back into CHT: a Patient into a person document
// ([Converter.PersonFromPatient]), a Location into a place document
// ([Converter.PlaceFromLocation]), Observations (with their Encounter and
// the Location the report was filled in) into a [cht.Record] through the
// same mapping reversed ([Converter.SubmissionFromObservations]), and a
// ServiceRequest or Task into a record that makes CHT raise a task for the
// CHW ([Converter.SubmissionFromServiceRequest],
// [Converter.SubmissionFromTask]).
// The converter's own output converts back with nothing else, for every
// write strategy; docs/mappings.md lists what is lost by design.
//
// A Converter is immutable and safe for concurrent use. The resources it
// returns are fresh values the caller may modify, except that the resources
// of one conversion may share identical sub-elements (meta, the subject and
// encounter references of Observations).
//
// # Transactions and idempotency
//
// Each CHT document becomes one [Transaction] whose entries refer to each
// other by urn:uuid. With the default [WritePut] strategy every resource has
// a deterministic id, a name-based (version 5) UUID of the CHT instance URL,
// the resource type, the CHT _id and, for Observations, the field path (see
// [Converter.ID]), and is written with PUT: posting the same document twice
// yields one set of resources, and a later edit in CHT updates them.
// [WriteConditionalUpdate] (PUT Type?identifier=...) and
// [WriteConditionalCreate] (POST with ifNoneExist) key the writes on the CHT
// identifier instead and let the server assign ids. References to documents
// that are not in the transaction use Type/<id> with WritePut and a logical
// reference by identifier otherwise. [Client.Transaction] posts a
// transaction and checks the answer: it fails with a *[ServerError] unless
// the server applied every entry, so a mediator never acknowledges data
// that was not stored.
//
// Every resource carries identifiers with real system URIs derived from
// Config.InstanceURL (see [Systems]) and a meta.tag marking CHT as its
// source, which [Converter.IsFromCHT] recognises so flows can avoid loops.
//
// # Errors
//
// Conversion errors are *[ConversionError] values naming the CHT field and
// the reason:
//
//	var ce *fhir.ConversionError
//	if errors.As(err, &ce) { log.Printf("field %s: %s", ce.Field, ce.Reason) }
//
// A report whose form is not in the mapping gives an error matching
// [ErrUnmappedForm], which callers that forward only some forms can ignore.
// Incoming FHIR is checked by [ParseResource] (resourceType, required
// elements, codes, choice types, ele-1); failures are an
// *[InvalidResourceError] whose issues name the elements, and
// [OutcomeFromError] turns any error into an OperationOutcome to answer with.
// [NewOperationOutcome] builds one directly.
//
// # Encoding
//
// [Marshal] and [Transaction.MarshalJSON] write the JSON of
// the resources this package produces without reflection and without
// re-scanning nested output, and produce exactly the bytes encoding/json
// produces for the same samply values (other values fall back to
// encoding/json). Bundle bytes come from one place: a [Transaction]'s
// [Transaction.MarshalJSON] (json.Marshal of a Transaction gives the same
// bytes), and for the outbound payload, bytes in and bytes out,
// [Converter.PayloadBundleJSON], which writes the Encounter and its
// Observations directly and equals ConvertPayload followed by MarshalJSON.
// Outputs are allocated once (a payload bundle at its exact size, a
// transaction at the size recent ones needed), so a caller passing nil pays
// no growth copies.
// The tests prove the equivalences over generated values and fuzz targets;
// the figures are in docs/performance.md.
//
// # The samply model quirks
//
// The samply types marshal zero-valued required enums as their first code
// (an empty Observation says "status":"registered", an empty Encounter
// "class":{}), an OperationOutcome without issues as "issue":null, do not
// enforce choice-type exclusivity and silently drop unknown elements,
// contained resources and primitive extensions. Every builder in this
// package therefore sets all required elements explicitly and sets at most
// one variant of a choice, [NewOperationOutcome] never yields a nil issue
// list, and [ParseResource] checks required elements and choices in the raw
// JSON before decoding and rejects elements the samply types would drop. Every resource the converters produce in the tests
// is validated with google/fhir's R4 validator, an ele-1 check and the
// invariants obs-6 and qty-3 (module fhir/internal/validation).
package fhir
