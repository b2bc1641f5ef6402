// Package openhimtest provides a fake OpenHIM core for tests: an API server
// and a router, each an [net/http/httptest] server on loopback, that behave
// like the real core as its source (jembi/openhim-core-js, tags v4.0.5,
// v7.0.1, v7.1.0 and v8.5.0) shows - each test names the core file and
// function it follows - and as checked against a real openhim-core 4.0.5
// by this package's differential e2e test.
//
// It mirrors net/http/httptest: [NewServer] returns a running server,
// [Server.URL] and [Server.RouterURL] have no trailing slash, [Server.Close]
// blocks until outstanding requests finish, and [Server.Client] returns a
// client configured for the API (it trusts the TLS certificate when
// [Config.TLS] is set).
//
//	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version8})
//	defer srv.Close()
//	// point the mediator's OpenHIM URL at srv.URL, user openhimtest.RootUser,
//	// password openhimtest.RootPassword, HTTP client srv.Client()
//
// # Version profiles
//
// [Version4] is openhim-core 4.0.5 (the only version on npm, and the one the
// project's CI runs): token authentication only (basic auth is answered
// 401). [Version7] (7.1) adds basic auth; with [Config.Release] 7.2.0 or
// later it authenticates as Version8 does, its session cookie always
// Secure (7.2 had no api.secureCookie). [Version8] (the default) uses
// core 8's dispatch (src/api/authentication.js, authenticateRequest and
// requestType): a session cookie from POST /authenticate/local wins, then
// token auth when one of auth-username, auth-ts, auth-salt or auth-token
// is non-empty, then basic auth, whose e-mail is matched case-sensitively
// (src/protocols/local.js); GET /logout needs authentication; GET /me
// (public) answers the session's user, or 404 "Not authenticated".
// As core (api.secureCookie: true by default, given to koa-session in
// src/koaApi.js), it marks its session cookie Secure, so over plain http
// whatever writes the session answers 500 "Internal Server Error": a
// session login, a token-authenticated request (after its handler ran:
// passport 0.6 logs the token user into a session) and GET /logout. Use
// [Config.TLS], or [Config.InsecureSessionCookie] for a core configured
// with secureCookie: false.
// Route validation follows the version: up to 7, host and port are
// required and type is http, tcp or mllp; on 8, type is http or kafka.
//
// # What the API does
//
//   - Token auth as core checks it: auth-ts within ±[Config.AuthWindow]
//     (10 s by default) of the server clock (an auth-ts that JavaScript's
//     Date.parse cannot read is not rejected by the window, as in core),
//     auth-token = hex(sha512(passwordHash + auth-salt + auth-ts)).
//   - /mediators* need the admin group (403 with core's text otherwise).
//   - POST /mediators validates with core's exact 400 texts; a same or
//     lower version is a 201 no-op; a higher version updates the
//     definition while existing config values win and _configModifiedTS
//     is not bumped.
//   - POST /mediators/:urn/heartbeat: 404 before 400 (no uptime); returns
//     the config when config:true or when _configModifiedTS is later than
//     the previous heartbeat (so a change is pushed once, to whichever
//     replica beats first); "OK" when there is no stored config (core's
//     src/api/mediators.js heartbeat sets the body to the undefined
//     config, and Koa answers a 200 without a body with its status
//     message), "" otherwise.
//   - GET /mediators/:urn masks password values; GET /mediators does not
//     (a core bug). PUT /mediators/:urn/config restores masked values,
//     validates and replaces the config.
//   - POST /mediators/:urn/channels installs default channels (500 on a
//     duplicate name); POST /channels (400 on a duplicate); POST /clients;
//     GET /transactions (filterRepresentation, filterLimit, filterPage,
//     filters) and PUT /transactions/:id (a Mongo-style update).
//
// # Router
//
// The router matches the first enabled channel (by priority) whose
// urlPattern, matchContentTypes and content match (matchContentRegex, or
// matchContentJson with matchContentValue; a matchContentXpath channel
// matches nothing) (and, on [Version7] and
// [Version8], whose methods include the request's: a channel without
// methods matches nothing there), then authorises the client (basic auth
// against a [RouterClient], or an authType "public" channel); otherwise
// 401, or 404 on Version7 and Version8 when no channel
// matched (the answer carries the request's own body, as core's does);
// neither stores a transaction. It stores a transaction, on
// Version4 enforces the channel's methods (405, the transaction stays
// Processing as in core),
// forwards to the primary route with X-OpenHIM-TransactionID and
// X-OpenHIM-ClientID (other enabled routes are called too and recorded in
// the transaction's routes), and parses application/json+openhim answers
// as core does: the envelope's response is what the client gets, its status
// overrides the computed one, its orchestrations come before core's own
// orchestration of the route, an object body is stored as
// "[object Object]" and a missing one makes the answer a 204. It stores
// at most 15 MiB of bodies per transaction (core's default
// api.maxBodiesSizeMB; the body that goes over is cut and ends with
// "\n[truncated ...]"), and no request or response bodies for a channel
// whose requestBody or responseBody is false. PUT /transactions/:id (an
// asynchronous mediator's final update) cuts the update's bodies to the
// same budget, less the stored request and response bodies, which is what
// core counts there (not the stored orchestrations or routes). [Transaction.MetricsSkipped],
// [Transaction.MetadataError] and [Transaction.Core4Crash] expose what
// core would silently lose or where it would fail.
// Channels are routable at once (the real core needs about a second to
// refresh its cache).
//
// # Inspection and faults
//
// [Server.Mediators], [Server.Mediator], [Server.Heartbeats],
// [Server.ConfigPushes], [Server.Channels], [Server.Clients],
// [Server.Transactions] and [Server.Transaction] return plain copies.
// [Server.Register], [Server.SetConfig], [Server.AddChannel],
// [Server.UpdateTransaction] and [Server.Deregister] apply API operations
// directly and return an [*Error] carrying core's status and text.
// [Server.Stop], [Server.Start] and [Server.Restart] close and reopen the
// listeners on the same addresses while keeping the state (core down at
// start, core restarted mid-run); [Server.SetDown] drops API connections;
// [Server.FailNext] answers the next n API requests with a status.
//
// # Known differences from the real core
//
// The fake keeps everything in memory, runs no auditing, alerts, metrics,
// polling, TCP channels, auto-retry or reruns, calls secondary routes one
// after the other (core runs them in parallel), and does not reproduce a
// crash seen on the real 4.0.5 (with FerretDB): when core computes a
// transaction's status itself, or sets autoRetry (an envelope error), its
// metrics update races the response update and kills the worker; the
// router is then refused for seconds. [Transaction.Core4Crash] flags such
// transactions. Mediators avoid the path by always sending a status and
// reporting failures without the error object on 4.0.5.
package openhimtest
