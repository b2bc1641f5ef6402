// Package backfill is a one-time bulk sync of CHT to a FHIR server: it
// reads every document of CHT's _changes feed (hydrated, page by page),
// converts reports and contacts with a [fhir.Converter] and writes them to a
// FHIR server ([fhir.Client]) as transaction Bundles of up to
// Config.BatchSize documents, with Config.Workers writes in flight.
//
// # Resuming
//
// As batches commit, a [Checkpoint] (the feed sequence up to which every
// document is written, and the counts so far) is written to
// Config.CheckpointFile atomically: to a temporary file, fsynced, then
// renamed over the old one. It is written at most four times a second (a
// fast sync commits a hundred batches a second; each write costs two
// fsyncs), and when Run returns. Batches commit out of order, but the
// checkpoint only advances over a contiguous prefix of committed batches,
// so it never names a sequence whose documents are not all written. A
// process killed at any point restarts from the checkpoint and rewrites at
// most the batches committed in the last quarter of a second and those in
// flight; the converter's writes are idempotent (PUT to deterministic ids,
// or conditional writes keyed on the CHT identifier, which Run makes one
// at a time: see Config.Workers), so the overlap creates no duplicates,
// and the counts restart with the checkpoint's, so no document is counted
// twice.
//
// # Documents edited during the sync
//
// Each batch is hydrated when its page is read, so a document edited in CHT
// while Run reads the feed is in a batch read before the edit and again,
// newer, in a later one, and so are the resources it shares with other
// documents (a report's patient, the CHW and their places). A batch that
// carries a resource with other content than an older batch not yet done
// waits for that batch before it writes, so FHIR ends with the newest
// version whatever order the workers' writes and retries finish in.
// Batches that share resources with the same content are written in
// parallel. A batch that spans several pages can hold both copies: each
// resource is built from its last copy in the batch, the newest, and a
// document twice in one batch is converted from its last copy only (the
// older copy is counted as skipped, "older copy (its batch writes a newer
// one)").
//
// # Edited reports
//
// When an edit of a report empties a mapped field (Enketo empties the
// answers that are no longer relevant) or leaves a lenient value out, the
// Observation an earlier version wrote for it is withdrawn, as the push
// handler (fhir/push) withdraws it: for a report after its first version
// (_rev 2 and later) with mapped fields it does not convert, the batch
// searches the FHIR server (Config.FHIR) for their Observations by
// identifier ("<report _id>/<path>") and updates each one found, in the
// batch's transaction, to status entered-in-error, keeping its value,
// If-Match the version found. A later version that fills the field in
// again makes the Observation final. The reports of a batch are searched
// together, 10 identifiers per search; a batch whose reports are all first
// versions, or convert every mapped field, searches nothing. Nothing is
// withdrawn with fhir.WriteConditionalCreate, which propagates no edit,
// nor without Config.FHIR (a Writer alone; Run and Retry then log a WARN
// line saying so). A dry run with Config.FHIR set searches (reads only)
// and its bundles hold the withdrawals a real run would write, except
// those of a report edited between two of its batches: the older batch's
// write never reaches the server, so the younger batch's search cannot
// find it.
//
// Each attempt to write a batch searches first: a failed search fails the
// attempt, which writes nothing, and is retried (network errors, 408, 429,
// 5xx) or stops Run (any other 4xx: the FHIR user may not search
// Observations), the checkpoint before the batch. A retry, also after a
// version conflict (412, 409: the Observation changed since the search),
// searches again and withdraws the version it finds then; a run resumed
// from its checkpoint finds the Observations already withdrawn and
// withdraws nothing twice. With fhir.WriteConditionalUpdate, where a 412
// otherwise means an ambiguous match (see Failures), the first 412 of a
// bundle with withdrawals is retried that way while attempts are left;
// one after that is an ambiguous match. A batch written document by
// document searches for each report alone. A report edited during the
// sync, in two batches, ends with the state of its newest copy: a batch
// waits, as for a resource with other content, for the older batches that
// write an Observation it may withdraw before it searches, and a younger
// batch that writes that Observation waits for it.
//
// # What is converted
//
// Reports and contacts are. Other documents are counted as skipped with
// the reason (Checkpoint.Skipped): deleted ones, documents of other types,
// reports of forms the mapping does not map, and messages (data_record
// documents without a form: SMS that matched no form, messages sent from
// CHT). A value of a lenient field that cannot be converted is left out and
// logged as a warning naming the document and the field.
//
// # Failures
//
// A batch the server rejects for its content (400, 413, 422, or a 2xx
// transaction-response with a 4xx entry) is split and its documents written
// one by one, so one bad document fails alone (when what the server
// rejects is a resource several documents share, such as their CHW or
// place, each of them fails under its own id); documents whose hydrated
// copy cannot be read, that cannot be converted or that the server rejects
// are counted as failed with their reason and the sync moves on
// (Summary.Failed; the backfill command then exits non-zero). Network errors, 408, 409 and 412 (version conflicts
// between workers writing a shared resource), 429 and 5xx answers, and
// incomplete transaction-responses are retried with backoff; when a batch still
// fails after Config.MaxAttempts, Run stops with an error and the checkpoint
// stays before that batch. Other 4xx answers (401, 403, 404...) concern the
// configuration, not the documents: Run stops at once, before the batch.
// With a conditional write strategy, a 412 means the server holds several
// resources with the identifier a write is conditional on: the documents
// that carry that resource fail with that reason: merge the duplicates on
// the server, then sync those documents again.
//
// A document CHT fails to hydrate fails alone too. CHT's hydrate API
// answers 500 to any request that names it (its lineage hydration throws),
// so a page answered 500 is hydrated again in halves, down to the
// documents that fail on their own. As CHT also answers 500 when it cannot
// hydrate anything (its CouchDB down), a document is counted as failed only
// if CHT then hydrates an id no document has. Otherwise, and on CHT's
// other errors (network errors, 429, 502, 503, 504, after the retries of
// the CHT client), Run stops with the error and the checkpoint stays before
// the page; Retry stops and leaves the list as it was.
//
// Every failed document is listed, with its reason, in the file beside the
// checkpoint (CheckpointFile + ".failures"; [ReadFailures] reads it); the
// checkpoint names the first MaxFailures. After a fix in CHT, in the mapping
// or on the FHIR server, [Retry] writes only those documents, as CHT
// hydrates them then, and keeps listed the ones that fail again. A Run from
// the beginning (no checkpoint) starts a new list.
//
// A checkpoint that [WriteCheckpoint] could not have written (cut short,
// not a JSON object, without "seq" or "batches", a count below zero,
// batches without a seq) stops Run and Retry with an error naming the file
// and the field, rather than starting over or from elsewhere; delete it to
// start from the beginning. In the failure list, blank lines list nothing
// and a last line without its newline is a failure when it is one whole (a
// list edited by hand); a line cut by a crash is left out (no checkpoint
// counts it yet, and the resumed Run lists it again), and any other line
// that is not a failure is an error naming the line and the field.
//
// Memory is bounded by Config.PageSize, Config.BatchSize and
// Config.Workers, not by the size of the database.
package backfill
