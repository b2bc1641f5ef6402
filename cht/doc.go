// Package cht is a client for the Community Health Toolkit (CHT) API and
// the CHT document types. Package cht/outbound receives CHT's outbound
// pushes and generates their configuration.
//
// It follows CHT's behaviour as documented in the project's reference
// (cht-api.md): every request sends Accept: application/json (so errors
// come back as JSON), JSON bodies are sent with exactly
// Content-Type: application/json (CHT answers 400 to "; charset=utf-8" on
// most JSON routes), and the rules that lose data silently (records API
// key handling, 200 answers for invalid records, "+" in phone numbers) are
// handled up front.
//
// # Client
//
// [New] takes a [Config] by value and does no I/O. Requests are grouped by
// resource, as in go-github:
//
//	c, err := cht.New(cht.Config{URL: "https://cht.example.org", Username: "mediator", Password: pw})
//	res, err := c.Hydrate(ctx, ids...)                   // POST /api/v1/hydrate, batched, order kept
//	p, err := c.Contacts.Get(ctx, id, &cht.GetOptions{WithLineage: true})
//	for place, err := range c.Contacts.All(ctx, cht.ListOptions{Type: "clinic"}) { ... }
//	out, err := c.Records.Submit(ctx, cht.Record{Form: "HEIGHT_WEIGHT", Fields: f}, &cht.SubmitOptions{ReadBack: true})
//	contacts, err := c.Contacts.ByPhone(ctx, "+254712345678")
//	page, err := c.Docs.Changes(ctx, cht.ChangesOptions{Since: checkpoint, IncludeDocs: true})
//
// Endpoints that appeared in later CHT versions are chosen by the server
// version (from GET /api/deploy-info, or Config.Version): on
// servers older than 4.9/4.10/4.18 the Get methods fall back to hydrate
// (with lineage) or the raw document, and person/place creation uses the
// legacy /api/v1/people and /api/v1/places below 5.2. Listings that have
// no fallback return an error matching [ErrUnsupported]. A detected
// version serves 10 minutes; the client then detects it again, so that it
// takes up the routes of an upgraded CHT without a restart, and keeps the
// version it had when that fails (a WARN line to Config.Logger says so).
// Config.Version is used as given, for good.
//
// A Client is safe for concurrent use and holds one http.Client.
//
// # Authentication
//
// Basic auth is sent with every request by default. With Config.Session
// the client logs in once with POST /_session and uses the AuthSession
// cookie, logging in again once when it expires. Credentials may also be
// embedded in Config.URL; they are removed from every URL the client
// reports. A [Config] redacts its password (and one in URL) when it is
// logged with slog or formatted with fmt.
//
// # Retries
//
// The client is built on resty and uses its retries: requests that only
// read (GET, and POST /api/v1/hydrate) are retried with exponential backoff
// and jitter after 5xx answers (but 501) and network errors or attempt
// timeouts; every request is retried after 429, honouring Retry-After.
// Nothing is ever retried after 401, because CHT rate-limits failed logins.
// Writes are not retried after 5xx: the records API is not idempotent.
//
// # Errors
//
// Non-2xx answers are *[APIError] values carrying CHT's "error", "reason"
// and "details" members; they match the sentinels [ErrNotFound],
// [ErrUnauthorized], [ErrForbidden], [ErrConflict] and [ErrServer] with
// errors.Is (other statuses: APIError.StatusCode):
//
//	var apiErr *cht.APIError
//	if errors.As(err, &apiErr) && apiErr.StatusCode == 403 { ... }
//	if errors.Is(err, cht.ErrNotFound) { ... }
//
// A cancelled context gives an error matching context.Canceled or
// context.DeadlineExceeded.
//
// # Documents
//
// [Contact] (a person or a place) and [Report] decode every shape CHT
// produces, in one pass over the bytes: minified and hydrated lineage
// ([Lineage]), "parent": "" on top-level places, reported_date in
// milliseconds or ISO 8601 ([Millis]). Members without a Go field are kept
// in Extra, so a document decoded and re-encoded loses nothing (but the
// _id of a minified lineage link it could not decode, see [DecodeError]). Decoding
// is strict and never panics: failures are *[DecodeError] values that name
// the JSON path, e.g. "contact.parent._id". Whether a contact is a person
// or a place depends on the app's hierarchy: read it with
// [Client.ContactTypes] or [ParseContactTypes] and ask [ContactTypes.IsPerson].
// Report form data is reached by dotted path:
//
//	fever, ok := r.Fields.String("danger_signs.fever")
//	subject, from, ok := r.Subject() // in cht-core's order (registration-utils getSubjectId)
//
// # Pagination
//
// Listings iterate over all pages (All,
// an iter.Seq2 that yields (nil, err) once on failure). The _changes feed
// is read page by page with [DocsService.Changes] or iterated with
// [DocsService.All]; each [Change] carries the [Seq] to checkpoint.
// [DocsService.AllHydrated] adds each document as hydrate returns it,
// one batched hydrate call per page: the building block of a pull-mode
// mediator or a backfill.
//
// The fake server in package chttest serves the same API in memory for
// tests, and chttest.OutboundPusher replays CHT's outbound push.
package cht
