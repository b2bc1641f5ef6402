// Command passthrough is the smallest useful OpenHIM mediator, a template:
// it registers with core, heartbeats, and forwards every request it is routed
// to MEDIATOR_UPSTREAM_URL, recording the call as an orchestration.
//
//	MEDIATOR_UPSTREAM_URL=http://upstream:8080 passthrough [--config config.yaml]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

// Settings are read from the config file and MEDIATOR_* variables.
type Settings struct {
	settings.Mediator `mapstructure:",squash"`
	PublicHost        string `mapstructure:"public_host"`  // host core reaches us at, port of listen (MEDIATOR_PUBLIC_HOST)
	UpstreamURL       string `mapstructure:"upstream_url"` // where requests go (MEDIATOR_UPSTREAM_URL)
	// UpstreamTimeout bounds each forwarded call, body included
	// (MEDIATOR_UPSTREAM_TIMEOUT); below core's 60 s route timeout so the
	// mediator answers first.
	UpstreamTimeout time.Duration `mapstructure:"upstream_timeout"`
	// ForwardHeaders lists the caller's credential headers (Authorization,
	// Cookie, Proxy-Authorization) sent upstream (MEDIATOR_FORWARD_HEADERS,
	// comma-separated); empty by default: the caller's credentials stay here.
	ForwardHeaders []string `mapstructure:"forward_headers"`
}

// defaultUpstreamTimeout is the default of Settings.UpstreamTimeout.
const defaultUpstreamTimeout = 50 * time.Second

// Validate checks the settings; errors name the key.
func (s Settings) Validate() error {
	errs := []error{s.Mediator.Validate()}
	u, err := url.Parse(s.UpstreamURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("upstream_url (MEDIATOR_UPSTREAM_URL) must be an http(s) URL"))
	}
	if s.UpstreamTimeout <= 0 {
		errs = append(errs, errors.New("upstream_timeout (MEDIATOR_UPSTREAM_TIMEOUT) must be positive"))
	}
	for _, h := range s.ForwardHeaders {
		if !slices.Contains(credentialHeaders, http.CanonicalHeaderKey(h)) {
			errs = append(errs, fmt.Errorf("forward_headers (MEDIATOR_FORWARD_HEADERS): %q is not one of %v", h, credentialHeaders))
		}
	}
	return errors.Join(errs...)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], logger); err != nil {
		logger.Error("passthrough stopped", "err", err)
		os.Exit(1)
	}
}

// run loads the settings and serves until ctx is done.
func run(ctx context.Context, args []string, logger *slog.Logger) error {
	fs := flag.NewFlagSet("passthrough", flag.ContinueOnError)
	configFile := fs.String("config", "", "config file (YAML or JSON); MEDIATOR_* variables override it")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s [flags]\n\nFlags:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintln(w, "\nEvery setting of config.yaml can also be set with a MEDIATOR_* environment variable:")
		fmt.Fprintln(w, "MEDIATOR_ and the key upper-cased, with _ for . (upstream_url is MEDIATOR_UPSTREAM_URL).")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // --help printed the usage
		}
		return err
	}
	s := Settings{Mediator: settings.Default(), PublicHost: "localhost", UpstreamTimeout: defaultUpstreamTimeout}
	if err := settings.Load(*configFile, &s); err != nil {
		return err
	}
	upstream, _ := url.Parse(s.UpstreamURL) // checked by Validate
	port, err := s.ListenPort()
	if err != nil {
		return err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = 30 * time.Second
	proxy := &httputil.ReverseProxy{
		// ReverseProxy drops hop-by-hop headers; rewrite drops credentials.
		Rewrite:      func(r *httputil.ProxyRequest) { rewrite(r, upstream, s.ForwardHeaders) },
		Transport:    mediator.Transport(base), // records each call as an orchestration
		ErrorHandler: proxyError(logger),
	}
	route := openhim.Route{Name: "Passthrough", Type: "http", Host: s.PublicHost, Port: port, Primary: true}
	cfg := mediator.Config{
		Definition: openhim.Definition{URN: "urn:mediator:passthrough", Version: "1.0.0", Name: "Passthrough",
			Description: "Forwards requests to " + upstream.Redacted(), Endpoints: []openhim.Route{route},
			DefaultChannelConfig: []openhim.Channel{{Name: "Passthrough", URLPattern: "^/passthrough(/.*)?$",
				Type: "http", Methods: []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, Allow: []string{"passthrough"}, AuthType: "private", Routes: []openhim.Route{route}}}},
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
		Logger: logger,
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
