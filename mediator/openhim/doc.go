// Package openhim is the client side of the OpenHIM core API that a
// mediator needs: the registration document ([Definition], its [Route]s,
// [Channel]s and [ConfigDef]s), the API [Client] (authentication per core
// version, TLS, retries), the [Lifecycle] that keeps a mediator registered
// and follows its console config, typed console configuration
// ([TypedConfig]) and the console import document ([Metadata]).
//
// Package mediator serves the requests core routes to a mediator and uses
// this package to register it; most mediators only fill a [Definition]
// and a [Config] in their mediator.Config. The split follows what each
// side talks to: this package speaks to core's API and never imports
// package mediator, so tools that only manage core (install channels, read
// a registration back, check a definition in a unit test) need nothing
// of the request runtime. Package openhimtest, beside it, is a fake core
// to test against, as net/http/httptest is for net/http.
//
// # Client
//
// [NewClient] validates a [Config] and does no I/O. Every call carries the
// chosen authentication ([AuthScheme]: basic, core's token headers, or a
// session; auto picks what the core accepts), is bounded by a timeout and
// a response size limit, and retries network errors and 5xx answers with
// backoff. TLS certificates are verified unless
// [Config.InsecureSkipVerify] is set. Errors are [*APIError] (matching
// [ErrBadRequest], [ErrUnauthorized], [ErrForbidden], [ErrNotFound] and
// [ErrServer]), [*ValidationError] for a local check ([ErrInvalid]), or
// match [ErrConfig] when a setting must change; their text says which.
//
// # Lifecycle
//
// A [Lifecycle] registers the [Definition] (validated with the rules of
// the configured core version, see [Definition.Validate]), heartbeats,
// delivers config changes, re-registers when core forgets the mediator
// and optionally keeps its default channels installed. [Lifecycle.Problem]
// says why it is not registered.
//
// # Console configuration
//
// [ConfigDefsOf] derives configDefs from a Go struct, [DecodeConfig]
// validates and decodes a config core sends, and [TypedConfig] keeps a
// typed, live copy of it. A password parameter is a string field tagged
// `openhim:"name,password"` (settings.Secret works too, and stays
// redacted when formatted).
//
// Secrets never show in logs or formatted output: [Config] and [Route]
// redact their passwords in String, GoString and LogValue, while a
// Route still marshals its password to JSON, which core needs.
package openhim
