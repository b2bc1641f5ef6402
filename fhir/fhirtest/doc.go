// Package fhirtest provides an in-memory FHIR R4 server for tests, in the manner of
// net/http/httptest.
//
// [NewServer] starts a server on a loopback port (a zero [Config] gives the defaults); [Server.URL] is its FHIR base URL (for example
// http://127.0.0.1:41234/fhir/R4, no trailing slash) and [Server.Client] an HTTP client for it.
// Resources are stored as raw JSON, so any R4 resource type can be written and read back unchanged
// apart from id and meta. Inspection helpers return plain values for assertions:
//
//	srv := fhirtest.NewServer(fhirtest.Config{})
//	t.Cleanup(srv.Close)
//	// ... point the code under test at srv.URL, then:
//	if n := srv.Count("Observation"); n != 20 { t.Errorf("got %d Observations", n) }
//	for _, raw := range srv.Resources("Patient") { ... } // []json.RawMessage, creation order
//	obs, err := srv.Search("Observation", "patient=Patient/p1") // same search as over HTTP
//	err = fhirtest.CompareJSON(bytes.NewReader(obs[0]), strings.NewReader(want)) // error names the element
//
// [Handler] is the same server as an http.Handler, for a mux or a real listener (the demo's --serve
// mode). A Handler is safe for concurrent use; reads run in parallel and writes are serialised by
// one lock held only for index lookups and encoding. A create costs a few tens of µs of CPU and a
// 22-entry transaction well under a millisecond (BenchmarkCreateParallel, BenchmarkTransaction),
// so one core serves thousands of writes per second; a stored resource takes about 1.5 KB of
// memory (set [Config.RequestLog] to -1 in load tests so request bodies are not kept).
//
// # Interactions
//
//   - create: POST [base]/Type. The server assigns a UUID id; a client-supplied id is kept (as on the
//     real server) and a second POST with the same id is answered 400. Answers 201 with Location
//     ([base]/Type/id/_history/n), ETag (W/"n") and Last-Modified.
//   - conditional create: If-None-Exist: 0 matches creates (201), 1 returns the existing resource
//     (200, unchanged), more than 1 is 412.
//   - read: GET [base]/Type/id (200 or 404); vread of the current version: GET .../_history/n.
//   - update: PUT [base]/Type/id with the same id in the body; creates the resource when absent.
//     If-Match W/"n" (or "n") is honoured: 412 when n is not the current version or the resource
//     does not exist. A value without a quoted entity tag (If-Match: n) is ignored, as the real
//     server ignores it: the update goes ahead.
//   - conditional update: PUT [base]/Type?search: 0 matches creates with a server id (201; a body id
//     is a 400), 1 updates it (200; a different body id is a 400; If-Match as for update), more
//     than 1 is 412.
//   - delete: DELETE [base]/Type/id answers 200 with an OperationOutcome; a later read or delete is
//     404. If-Match as for update.
//   - search: GET [base]/Type?params or POST [base]/Type/_search with identifier (system|value,
//     |value for no system, value for any system, system| for any value; comma for OR), _id,
//     status (the resource's top-level status code; comma for OR), subject, patient and encounter
//     (Type/id, bare id, absolute URL, :Type modifier), _lastUpdated
//     (eq, ne, gt, lt, ge, le, sa, eb at the value's precision; repeat for ranges), _count (default
//     100, max 1000), _offset, _sort (_lastUpdated, _id, optionally descending) and _summary=count.
//     The answer is a searchset Bundle with total, self and next links, and fullUrl per entry.
//     Unsupported parameters are answered 400 naming the parameter, so a test never passes on a
//     silently ignored filter.
//   - transaction and batch Bundles: POST [base]. Entries run in the FHIR order DELETE, POST, PUT,
//     GET. urn:uuid fullUrls of created and updated entries are replaced in every string of every
//     entry's resource, nested references and narrative included. POST entries get server ids;
//     request.ifNoneExist, conditional PUT urls and request.ifMatch work as for single requests
//     (see below for several conditional entries of one resource). A
//     transaction is atomic: the first failing entry undoes every change and its status (404, 412,
//     400...) answers the whole request with an OperationOutcome. A transaction naming one fullUrl
//     twice is refused (400), as HAPI FHIR refuses it; with Config.ReferentialIntegrity, so is one
//     that leaves a literal reference to a resource the server does not hold (HAPI's default). A
//     batch answers 200 with a status
//     per entry. Response entries carry fullUrl, the resource and response.status ("201 Created"),
//     location (Type/id/_history/n), etag and lastModified.
//   - GET [base]/metadata answers a minimal CapabilityStatement.
//
// # Subscriptions
//
// An R4 Subscription with channel.type rest-hook is stored with status active (a requested one is
// accepted at once) and notified after every write whose resource matches its criteria, a search
// such as Task?_id=123&status=completed,failed using the search parameters above. Writes inside a
// transaction notify once it commits; a rolled-back transaction notifies nobody. Notifications go
// out one at a time in the order of the writes, as R4 rest-hook sends them: without
// channel.payload a POST with no body to channel.endpoint; with a JSON payload the resource is PUT
// to [endpoint]/[type]/[id]. Every channel.header ("Name: value") is sent as an HTTP header. When
// the endpoint cannot be reached or answers other than 2xx, the Subscription's status becomes
// error with the reason in Subscription.error, and it is not notified again until updated to
// active. [Handler.Notifications] and [Handler.AwaitNotifications] return what was sent;
// [Config.NotifyClient] is the HTTP client used. A Subscription fhirtest cannot deliver (another
// channel type, an XML payload, criteria with an unsupported search parameter) is answered 400
// naming the element; status off and error are stored as sent. Deleting a Subscription stops its
// notifications. The real e2e server stores Subscriptions but sends no notifications; poll with
// _lastUpdated there.
//
// Every version gets meta.versionId ("1", "2", ... continuing after a delete) and
// meta.lastUpdated (UTC, milliseconds); other meta elements are kept. Answers are
// application/fhir+json; Prefer: return=minimal and return=OperationOutcome are honoured.
//
// # Validation
//
// Request bodies must be JSON objects (400), with a known R4 resourceType matching the URL (400), a
// valid id (1-64 of [A-Za-z0-9-.]), no null values and no empty objects (400). Required elements of
// common resource types are checked (Observation.status and code, Encounter.status and class, ...).
// Empty strings and arrays, and objects left empty without them, are dropped, as the real server
// does; [Config.Strict] rejects them instead (FHIR invariant ele-1). Unlike the real server,
// fhirtest knows no element definitions: unknown elements, wrong value types and codes are stored
// as sent, so validate converter output separately. Content-Type must be application/fhir+json or application/json (415 for
// others; a missing one is accepted), and bodies above [Config.MaxBodyBytes] are answered 413. Errors
// are OperationOutcomes whose issue names the offending element in expression.
//
// # Fault injection
//
// [Handler.FailNextWrites] and [Handler.TimeoutNextWrites] script the next writes; [Handler.SetFaults]
// fails a seeded random fraction of writes with an error status, a timeout (not applied, no timely
// answer), a lost response (applied, no timely answer) or a dropped connection, adds latency, or
// takes the whole server down (Faults.Down) and back up. Every request records the
// fault it got in [Request.Fault], so a soak test can reconcile what it sent with what was stored.
//
// # Matching the real server
//
// The e2e suite runs a real FHIR server, medplum's @medplum/fhir-router with its in-memory repository
// (.ci/fhir-server). TestE2EDifferential runs the same scenarios against both and requires identical
// outcomes. Where medplum differs from the FHIR specification, fhirtest follows medplum when a test
// written against one should pass against the other:
//
//   - PUT that creates a resource answers 200, not 201 (a conditional PUT that creates answers 201).
//   - A read or delete after a delete answers 404, not 410 Gone; deleting an unknown id is 404.
//     [Config.Gone] answers the read of a deleted resource 410, as HAPI FHIR and the
//     specification do.
//   - POST keeps a client-supplied id; POST entries inside a Bundle get a new id.
//   - Empty strings and arrays are dropped silently; null values and {} are rejected.
//   - Resource ids are UUIDs. Search results are in creation order by default.
//   - urn:uuid references are rewritten inside any string, not only in Reference.reference.
//   - A urn:uuid reference that names no entry of the Bundle is stored as it is (HAPI refuses the
//     transaction, 400): check that your bundles hold none (package fhir's tests check its own).
//   - A conditional PUT entry of a Bundle whose body id differs from the resource it matches updates
//     that resource under its own id.
//   - A conditional PUT entry whose search matched nothing when the Bundle was read is searched
//     again when it runs: when it now matches what an earlier entry wrote (the same conditional url
//     twice, or a POST of what it looks for) it fails, 400. A transaction fails whole; in a batch the
//     earlier entry stays.
//   - Two request.ifNoneExist entries that find one existing resource both answer 200 with it. When
//     none exists the first creates it and the second answers 200 with it, but references to the
//     second's fullUrl are rewritten to an id no resource has: give each resource one entry.
//
// fhirtest deliberately differs where medplum's behaviour would hide bugs or is a quirk of the test
// double:
//
//   - versionId is "1", "2", ... (medplum: a UUID per version). Bundle response status is
//     "201 Created" (medplum: "201") and location includes _history (medplum: "Type/id"); parse the
//     leading status code and the Type/id prefix to work with both.
//   - Ids are checked against the FHIR id syntax (medplum accepts "bad id!").
//   - Unknown search parameters are 400 (medplum returns an empty result); subject=<bare id> matches
//     any type (medplum: none).
//   - A reference search for Type/id also finds references written Type/id/_history/n or as an
//     absolute URL ending in Type/id (medplum compares the whole string and finds neither): write
//     references as Type/id.
//   - Without _count a page holds 100 resources with a next link, and _count above 1000 gives 1000
//     (medplum returns all in both cases).
//   - An unknown resource type in the URL is 404 (medplum: an empty search result or 400).
//   - Any urn:uuid fullUrl is mapped (medplum: only lower-case RFC 4122 syntax).
//   - Only the current version is kept; _history lists are not served.
//   - Two conditional PUT entries of a transaction that match one existing resource are refused,
//     400, as the FHIR transaction rules require (resolved identities must not overlap); the e2e
//     server, which does not run medplum's own transaction mode, applies both in turn.
//   - A conditional PUT entry matching more than one resource is 412, as the specification and
//     HAPI FHIR answer (the e2e server: 400). So is If-Match naming a version of a resource that
//     does not exist (the e2e server: 404).
//
// HAPI FHIR, which many EMR-side deployments run, differs from both (docs/fidelity.md):
//
//   - A stale If-Match, on a PUT or a transaction entry, is 409 Conflict, not 412; accept both.
//     HAPI ignores If-Match on a conditional update, and honours a value without quotes.
//   - Several conditional entries with the same conditional url (PUT) or request.ifNoneExist
//     (POST) are merged into the first: references to the others' fullUrls go to it, and the
//     transaction-response has one entry fewer for each entry merged away (fhir.Client.Transaction
//     counts such an answer as applied). Without fullUrls such a transaction is refused, 400.
package fhirtest
