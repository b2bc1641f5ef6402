// Package mediator builds OpenHIM mediators: services that OpenHIM core
// routes requests to, that register themselves with core, heartbeat, follow
// their configuration from core's console, and answer in core's
// application/json+openhim format so that core stores what they did.
//
// A mediator is a [Config] passed to [New] and started with [Mediator.Run]:
//
//	m, err := mediator.New(mediator.Config{
//		Definition: openhim.Definition{URN: "urn:mediator:cht-fhir", Version: "1.0.0", Name: "CHT to FHIR", ...},
//		OpenHIM:    openhim.Config{URL: "https://openhim-core:8080", Username: user, Password: pw},
//		Handler:    mediator.HandlerFunc(handle),
//		Auth:       mediator.InboundAuth{Username: routeUser, Password: routePassword}, // what core's route sends
//		Logger:     logger,
//	})
//	if err != nil {
//		return err
//	}
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	return m.Run(ctx)
//
// With an empty OpenHIM.URL the mediator runs standalone: it serves but
// does not register, for local development. Package settings loads the
// configuration from a file and MEDIATOR_* environment variables.
//
// # Handlers
//
// A [HandlerFunc] receives a [Request]: the routed *http.Request with core's
// transaction ID (X-OpenHIM-TransactionID), client ID and forwarded headers.
// It returns a [Result] (status code, headers, body, properties, optionally
// a transaction [Status]) or an error. An error answers "Failed" with the
// error's message in the envelope's error.message (core auto-retries such
// transactions where the channel allows); a [*StatusError] with a 4xx code,
// made with [Errorf], answers that code without an envelope error. Panics are
// answered as failures with their stack.
//
// Any other http.Handler works too: what it writes is wrapped in an
// envelope. An envelope carries text: a body that is not UTF-8 (binary, or
// compressed because Accept-Encoding was forwarded upstream) is answered
// 502 Failed rather than corrupted, and so is a body over the transaction
// body budget ([CaptureConfig.BodyBudget]); a HEAD answer's body is
// dropped, as net/http drops it. Config.Handler may be an http.ServeMux whose patterns also label
// the metrics.
//
// # Orchestrations
//
// Outbound calls made through [Transport] with the handler's request context
// are recorded as orchestrations: name (set with [WithOrchestration]),
// group, method, host, port, path, query, headers (Authorization, cookies and
// Config.Capture.RedactHeaders redacted), bodies (capped: the caller always
// gets the full body), timestamps, status and transport errors (their text
// cut to 8 KiB, as a handler error's is; the caller gets the error whole).
// When a downstream mediator answers application/json+openhim, its
// orchestrations are merged into ours. Transport works with a plain http.Client and with
// resty (client.SetTransport(mediator.Transport(nil))).
//
// # Envelope
//
// [Envelope] is the application/json+openhim response. [WriteEnvelope]
// fills what core needs and otherwise silently loses: x-mediator-urn,
// a status from core's list (computed by core's own rule, see [Envelope.Status],
// when the handler sets none), response.body as a string, headers never
// null, every timestamp, orchestration names and request timestamps, header
// keys without '.' or '$'. Orchestration bodies are cut so that one
// transaction's bodies stay within core's 15 MiB budget
// ([CaptureConfig.BodyBudget]). [ParseEnvelope] reads envelopes, leniently.
//
// # Runtime
//
// [Mediator.Run] serves with read, write and idle timeouts and a request
// body limit (413 with a JSON error), on these paths besides the handler's:
//
//	/healthz   liveness
//	/readyz    ready when registered with core, or standalone
//	/metrics   Prometheus metrics
//
// When its context is done, Run stops accepting requests, drains in-flight
// and asynchronous ones, and stops the heartbeats. [Mediator.ListenAndServe]
// and [Mediator.Shutdown] do the same in two steps, like http.Server.
// Request logs go to Config.Logger with the transaction ID; secrets are never
// logged.
//
// # Asynchronous requests
//
// [Request.Async] answers 202 at once, with status Processing (Pending
// Async on core 8.3 and later, whose release the mediator reads from core
// after registering), runs the work
// in the background, and then updates the transaction in core
// (openhim.Client.UpdateTransaction) with the final status, response and
// orchestrations.
//
// # Metrics
//
// The request side exports openhim_mediator_requests_total{route,code,status},
// openhim_mediator_request_duration_seconds{route},
// openhim_mediator_requests_in_flight,
// openhim_mediator_orchestration_duration_seconds{name} and
// openhim_mediator_async_updates_total{result}; the lifecycle adds its
// registration and heartbeat metrics. Name orchestrations with
// [WithOrchestration] to keep the name label bounded.
//
// # Registration, heartbeats and config
//
// Package openhim, which this package imports (never the other way), holds
// the core API side: the registration document (openhim.Definition), the
// API client and the lifecycle that registers the Definition, optionally
// installs its default channels, heartbeats and delivers config changes to
// Config.OnConfig and Config.ConsoleConfig. [Mediator.Client] gives access
// to the API client.
package mediator
