// Package push writes CHT outbound pushes to a FHIR server: each pushed
// document becomes one FHIR transaction Bundle (converted by a
// [fhir.Converter]) posted with a [fhir.Client].
//
// [Handler] serves two routes:
//
//	POST /cht/outbound    a CHT outbound push carrying the document ({"doc": doc})
//	                      or naming it ({"id": ..., "rev": ...}; needs Config.CHT)
//	POST /cht/encounter   the pre-mapped encounter payload of the
//	                      cht-interoperability mediators ([fhir.EncounterPayload])
//
// A push is answered 2xx only after the FHIR server committed its
// transaction, so CHT retries every push whose data did not arrive; the
// converter's bundles are idempotent, so a retried push creates no
// duplicates. Failures are answered by CHT's outbound rules: 400 for a
// malformed push, 422 for a document that cannot be converted (an unmapped
// form, unless Config.SkipUnmappedForms), 502 when the FHIR server or CHT
// failed and 504 when they did not answer in time.
//
// A value of a field the mapping marks lenient that cannot be converted
// is left out and the rest written. So is, in a follow-up report
// (fhir.FollowUp), the Task or ServiceRequest the FHIR server answers 404
// or 410 for: the visit is written without closing or referring to it
// (fhir.Converter.CloseReferral), rather than failed for ever. Each such
// warning (fhir.Transaction.Warnings) is logged as a WARN line naming the
// document and field, and added to the push's answer:
// {"ok":true,"warnings":[{"doc":...,"field":...,"reason":...}]}. Other
// failures to read them (5xx, 401, 403, no answer) fail the push, which
// CHT sends again.
//
// Pushes of one document are converted and written one at a time, in the
// order they arrive. A transaction still in flight at a push's deadline
// (answered 503) runs on to the FHIR server's answer, within the FHIR
// client's timeout of an attempt and without retries, before the next push
// of that document is converted: a server that commits it late could
// otherwise put it over a newer version, which CHT would not send again
// (its retry drops a payload equal to the last one that succeeded). A push
// still waiting at its own deadline writes nothing. Encounter payloads are
// written one at a time per payload id (the report's) in the same way; as
// that route answers when the write is done, a payload whose transaction
// is in flight at its deadline is answered once the server answers it.
//
// CHT pushes every version of a document. For a report after its first
// version (_rev 2 and later) with mapped fields it does not convert (empty,
// absent, or a lenient value left out), the handler first searches the
// FHIR server for the Observations earlier versions wrote for those fields
// ("FHIR search Observation", one search per 10 fields) and withdraws them
// in the report's transaction (status entered-in-error, If-Match their
// version, their values kept). A failed search fails the push (502).
//
// Documents that arrive without their lineage, patient or place are
// hydrated through CHT's API when Config.CHT is set. Run inside an OpenHIM
// mediator, give the CHT and FHIR clients an HTTPClient whose transport
// records orchestrations and set Config.Orchestrate, and every call shows up
// by name in the OpenHIM transaction.
package push
