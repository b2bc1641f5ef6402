// Package fhir converts Community Health Toolkit (CHT) documents to FHIR R4
// resources and back.
//
// Resources are the types of github.com/samply/golang-fhir-models (imported
// here as models). A [Converter], configured once with [New], turns
//
//   - a CHT person into a Patient or Practitioner, a place into a Location
//     and Organization ([Converter.Patient], [Converter.Practitioner],
//     [Converter.Location], [Converter.Organization], [Converter.ContactBundle]);
//   - a report into an Encounter and Observations through a declarative
//     [Mapping] of form fields to codes ([Converter.Encounter],
//     [Converter.Observations], [Converter.ReportBundle]);
//   - the outbound payload of the cht-interoperability mediators into an
//     Encounter and Observations ([DecodeEncounterPayload],
//     [Converter.ConvertPayload], [Converter.PayloadBundleJSON]);
//
// and FHIR back into CHT: a Patient into a person payload, Observations into
// a records API submission through the same mapping reversed, and a
// ServiceRequest or Task into a submission that raises a CHW task.
//
// # Transactions and idempotency
//
// Each CHT document becomes one transaction [Transaction] whose entries refer
// to each other by urn:uuid. With the default [WritePut] strategy every
// resource has a deterministic id (a name-based UUID of the CHT instance, the
// resource type, the CHT _id and, for Observations, the field path) and is
// written with PUT, so posting the same document twice yields one set of
// resources. [WriteConditionalUpdate] and [WriteConditionalCreate] key the
// writes on the CHT identifier instead.
//
// # Errors
//
// Conversion errors are *[ConversionError] values naming the CHT field and
// the reason. A report whose form is not in the mapping gives an error
// matching [ErrUnmappedForm]. Incoming FHIR that fails the checks gives an
// *[InvalidResourceError]; [OutcomeFromError] turns any error into an
// OperationOutcome naming the offending element.
//
// # Encoding
//
// [AppendJSON], [Marshal] and [Transaction.MarshalJSON] write the JSON of the
// resources this package produces directly, without reflection, and produce
// exactly the bytes encoding/json produces for the same samply values.
//
// # The samply model quirks
//
// The samply types marshal zero-valued required enums as their first code
// (an empty Observation says "status":"registered"), an OperationOutcome
// without issues as "issue":null, do not enforce choice-type exclusivity and
// silently drop unknown elements. Every builder in this package therefore
// sets all required elements explicitly, [NewOperationOutcome] never yields
// a nil issue list, and [ParseResource] checks required elements in the raw
// JSON before decoding.
package fhir
