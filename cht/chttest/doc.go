// Package chttest provides an in-memory fake of the Community Health
// Toolkit (CHT) API for tests, and OutboundPusher, which replays CHT's
// outbound push against a mediator.
//
// # Fake server
//
// NewServer starts an httptest-based server that is already running, like
// httptest.NewServer. Documents are stored as raw JSON, CouchDB-style, with
// revisions and a changes feed; the fake does not use the cht client
// package, so it can catch client bugs. It follows the behaviour described
// in the project's CHT reference:
//
//   - users with roles and permissions; basic auth and POST /_session
//     cookies; online users ("_admin", "admin", "mm-online") versus offline
//     users (403 on hydrate, contacts-by-phone, views and the
//     cht-datasource endpoints); 401 as JSON or text/plain depending on Accept; failed
//     logins rate limited from CHT 4.6 (after 10 failures in a window of
//     10 s, requests with Basic credentials get 429 until the window ends;
//     session cookies are never refused);
//   - the strict "Content-Type: application/json" check (a charset suffix
//     gives 400) on /api/v1/people, /api/v1/places and the 5.2 person,
//     place and report writes, while records and hydrate accept it;
//   - GET and POST /api/v1/hydrate: request order kept, not_found entries,
//     full parent chains with shallow primary contacts, and a report's
//     patient and place resolved by shortcode or UUID;
//   - POST /api/v1/records and /api/v2/records: JSON submissions checked
//     against Config.Forms with CHT's strict JSON types, and gateway SMS
//     messages parsed in the compact and textforms formats; validation
//     errors are stored on the doc's errors (English texts) while the
//     answer is still 200; forms_only_mode, and the update_clinics
//     transition when app settings enable it; hard errors are 500
//     {"code":500,"error":"Server error","details":...};
//   - /api/v1/people and /api/v1/places ({ok,id,rev}), the 5.2
//     /api/v1/person, /api/v1/place and /api/v1/report writes, the 4.9+
//     cht-datasource reads with with_lineage and cursor paging, and
//     /api/v1/contacts-by-phone;
//   - /medic/<id> GET, PUT and DELETE with 409 conflicts, _all_docs,
//     _bulk_docs and _changes (since, limit, include_docs, longpoll), with
//     opaque sequence strings as CouchDB 2+ returns them, and the
//     medic-client/contacts_by_reference view (key, include_docs), which
//     CHT resolves shortcodes with;
//   - /api/deploy-info with Config.Version, or the version SetVersion
//     gave since, as after an upgrade of CHT (/api/info answers "0.1.0",
//     as on every CHT); routes that do not exist in that
//     version answer 404, as the reference's version matrix says (under
//     /api/, CouchDB's "Database does not exist.", as CHT's proxy does).
//     GET /api/v1/contact and /api/v1/report and the summary routes,
//     which cht-core added after tag 5.2.0, are served from 5.3.
//
// Serve under Config.BasePath to catch clients that build absolute URLs.
// Seed with Seed, SeedFile, PutDoc or PutDocs; inspect with Doc, Docs,
// Reports and Requests. InjectFault adds latency, error statuses (429 with
// Retry-After), aborted connections, per route, by count or with a seeded
// probability, and hydrate failures of one document (Fault.DocID).
//
// NewDemoServer seeds a realistic hierarchy (district → health centre →
// CHW area → household → people) with three reports; the Demo* constants
// name its documents.
//
// # Outbound push
//
// OutboundPusher does what CHT's mark_for_outbound transition and
// Sentinel's outbound schedule do for one push configuration: it evaluates
// relevance, maps the hydrated doc with CHT's mapping semantics (or a Go
// function), POSTs the payload with basic auth and a 10 s timeout, counts
// only 2xx as success (also 3xx from CHT 4.17, when a JSON content type
// with an invalid body fails the push), queues failures for a retry every
// 5 minutes (configurable) without evaluating relevance again, pushes a
// configuration with a cron only near its ticks (never, for a cron with
// no tick, such as "0 0 31 2 *"), and re-sends a doc only
// when the payload's hash changes. relevant_to and mapping expressions are
// JavaScript, run in a JavaScript VM (goja) with doc in scope as CHT runs
// them in Node's vm module; OutboundFromSettings reads an app_settings
// outbound block. With PusherConfig.Server it follows the fake's changes,
// so a mediator can be tested end to end the way CHT drives it, and
// records failed pushes in the fake's medic-sentinel database as Sentinel
// does (task:outbound:<doc id> documents, readable by database admins
// through /medic-sentinel/_all_docs), so that a watch on CHT's outbound
// queue can be tested too.
//
// Phone numbers are normalised with libphonenumber and the settings'
// default_country_code, as CHT does. The fake is not CHT: of the
// transitions it runs only update_clinics, parses no Muvuku or JavaRosa
// SMS, converts no Bikram Sambat dates and reads dates without a zone as
// UTC. docs/fidelity.md lists what it models.
package chttest
