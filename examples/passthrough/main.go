// Command passthrough is the smallest useful OpenHIM mediator, a template:
// it registers with core, heartbeats, and forwards every request it is routed
// to MEDIATOR_UPSTREAM_URL, recording the call as an orchestration.
//
//	export MEDIATOR_AUTH_USERNAME=openhim-route MEDIATOR_AUTH_PASSWORD=change-me   # what core's route sends
//	MEDIATOR_UPSTREAM_URL=http://upstream:8080 passthrough [--config config.yaml]
//
// It does not start without the credentials core's route sends (or another
// of the settings in docs/operations.md). Copy this directory (main.go and
// guard.go, which holds the request checks) to start your own mediator;
// --help lists its flags and settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

// Settings are read from the config file and MEDIATOR_* variables.
type Settings struct {
	settings.Mediator `mapstructure:",squash"`
	UpstreamURL       string `mapstructure:"upstream_url"` // where requests go (MEDIATOR_UPSTREAM_URL)
	// UpstreamTimeout bounds each forwarded call, body included
	// (MEDIATOR_UPSTREAM_TIMEOUT); below core's 60 s route timeout so the
	// mediator answers first.
	UpstreamTimeout time.Duration `mapstructure:"upstream_timeout"`
	// ForwardHeaders lists the caller's credential headers (Authorization,
	// Cookie, Proxy-Authorization) sent upstream (MEDIATOR_FORWARD_HEADERS,
	// comma-separated); empty by default: the caller's credentials stay here.
	// Authorization is refused with auth.username or auth.token, whose
	// credentials it carries.
	ForwardHeaders []string `mapstructure:"forward_headers"`
}

// defaultUpstreamTimeout is the default of Settings.UpstreamTimeout.
const defaultUpstreamTimeout = 50 * time.Second

// Validate checks the settings; errors name the key.
func (s Settings) Validate() error {
	errs := settings.Errors{s.Mediator.Validate()}
	u, err := url.Parse(s.UpstreamURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("upstream_url (MEDIATOR_UPSTREAM_URL) must be an http(s) URL"))
	} else if u.User != nil { // the URL, password and all, is not repeated here
		errs = append(errs, errors.New("upstream_url (MEDIATOR_UPSTREAM_URL) must not carry credentials (user:password@): "+
			"they would not be sent upstream; the passthrough has no upstream credentials of its own, "+
			"forward the caller's with forward_headers (MEDIATOR_FORWARD_HEADERS)"))
	}
	if s.UpstreamTimeout <= 0 {
		errs = append(errs, errors.New("upstream_timeout (MEDIATOR_UPSTREAM_TIMEOUT) must be positive"))
	}
	for _, h := range s.ForwardHeaders {
		h = http.CanonicalHeaderKey(h)
		if !slices.Contains(credentialHeaders, h) {
			errs = append(errs, fmt.Errorf("forward_headers (MEDIATOR_FORWARD_HEADERS): %q is not one of %v", h, credentialHeaders))
		}
		if h == "Authorization" && (s.Auth.Username != "" || s.Auth.Token != "") {
			// Core sends its route's credentials in Authorization, never
			// its client's: forwarding it would hand them to the upstream.
			errs = append(errs, errors.New("forward_headers (MEDIATOR_FORWARD_HEADERS): Authorization carries the credentials "+
				"the mediator requires (auth.username or auth.token), which would be sent upstream; "+
				"check callers with tls.client_ca_file instead, or do not forward it"))
		}
	}
	return errs.Err()
}

func main() { settings.Main("passthrough", logLevel, run) }

var logLevel = new(slog.LevelVar) // log_level, or --log-level

// version is the mediator's version: --version prints it, and it is the
// registration's Version, which must rise every time the definition
// changes (core keeps the stored definition otherwise).
const version = "1.0.0"

// run is main without the process: it parses args, loads the settings and
// serves until ctx is done.
func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	s := Settings{Mediator: settings.Default(), UpstreamTimeout: defaultUpstreamTimeout}
	s.Listen = ":8603"
	cli := settings.NewCLI("passthrough", version, &s)
	cli.Level = logLevel
	cli.PrintOpenHIMConfig(func() (openhim.Definition, error) { return definition(s) })
	if done, err := cli.Parse(args, stdout, logger); done || err != nil {
		return err
	}
	def, err := definition(s)
	if err != nil {
		return err
	}
	upstream, _ := url.Parse(s.UpstreamURL) // checked by Validate
	proxy := &httputil.ReverseProxy{
		// ReverseProxy drops hop-by-hop headers; rewrite drops credentials.
		Rewrite:      func(r *httputil.ProxyRequest) { rewrite(r, upstream, s.ForwardHeaders) },
		Transport:    mediator.Transport(upstreamTransport(s.UpstreamTimeout)), // records each call as an orchestration
		ErrorHandler: proxyError(logger),
	}
	cfg := mediator.Config{Definition: def, Logger: logger,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Bound the whole call: an upstream that sends its headers and
			// then stalls the body would otherwise hold the request.
			ctx, cancel := context.WithTimeout(r.Context(), s.UpstreamTimeout)
			defer cancel()
			if refuse(w, r, s.MaxBodyBytes, logger) {
				return // a hostile path or an oversized body: nothing goes upstream
			}
			proxy.ServeHTTP(w, r.WithContext(mediator.WithOrchestration(ctx, "Upstream")))
		}),
	}
	if err := s.Apply(&cfg); err != nil {
		return err
	}
	m, err := mediator.New(cfg)
	if err != nil {
		return err
	}
	return m.Run(ctx)
}

// upstreamTransport is the transport of the forwarded calls: it waits for
// the upstream's response headers up to timeout (upstream_timeout), which
// also bounds the whole call.
func upstreamTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = timeout
	return t
}

// definition is the registration: an endpoint at public_host and the port
// of listen, and the channel "Passthrough" routing /passthrough/... to it.
// Bump Version whenever it changes.
func definition(s Settings) (openhim.Definition, error) {
	route, err := s.Route("Passthrough")
	channel := openhim.Channel{Name: "Passthrough", URLPattern: "^/passthrough(/.*)?$", Type: "http",
		Methods: []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"},
		Allow:   []string{"passthrough"}, AuthType: "private", Routes: []openhim.Route{route}}
	return openhim.Definition{URN: "urn:mediator:passthrough", Version: version, Name: "Passthrough",
		Description: "Forwards requests to its upstream_url", Endpoints: []openhim.Route{route},
		DefaultChannelConfig: []openhim.Channel{channel}}, err
}
