// Command cht-to-fhir is an OpenHIM mediator that writes CHT outbound pushes
// to a FHIR R4 server as transaction Bundles. Copy this directory to start
// your own mediator; --help lists its flags and settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

// Settings come from the config file and MEDIATOR_* variables (the key
// upper-cased, "_" for "."): see config.yaml.
type Settings struct {
	settings.Mediator `mapstructure:",squash"`
	RouterURL         string            `mapstructure:"router_url"` // OpenHIM's router as CHT reaches it
	CHT               settings.Endpoint `mapstructure:"cht"`        // its URL names the instance in FHIR identifiers
	FHIR              settings.Endpoint `mapstructure:"fhir"`       // the FHIR server, or a channel in front of it
	MappingFile       string            `mapstructure:"mapping_file"`
	SkipUnmappedForms bool              `mapstructure:"skip_unmapped_forms"` // 200 instead of 422
	// OutboundMetrics exports CHT's outbound queue at /metrics (alert on it); cht.username must
	// then be a CHT administrator. It is not part of /readyz: a mediator taken out of service
	// while pushes to it fail would never receive the retries that empty the queue.
	OutboundMetrics bool `mapstructure:"outbound_metrics"`
}

// Validate checks the settings; errors name the key.
func (s Settings) Validate() error {
	errs := settings.Errors{s.Mediator.Validate(), s.CHT.Validate("cht", true), s.FHIR.Validate("fhir", true)}
	if s.OutboundMetrics && s.CHT.Username == "" {
		// Without it nothing reads the queue: the metrics would be missing,
		// and an alert on cht_outbound_queue_up == 0 would never fire.
		errs = append(errs, errors.New("outbound_metrics (MEDIATOR_OUTBOUND_METRICS) needs cht.username (MEDIATOR_CHT_USERNAME), "+
			"a CHT administrator: the outbound queue is read from CHT as that user"))
	}
	return errs.Err()
}

func main() { settings.Main("cht-to-fhir", logLevel, run) }

var logLevel = new(slog.LevelVar) // log_level, or --log-level

// version is the mediator's version: --version prints it, and it is the
// registration's Version, which must rise every time the definition
// changes (core keeps the stored definition otherwise).
const version = "1.0.0"

// run is main without the process: it parses args, loads the settings and
// serves until ctx is done.
func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	s := Settings{Mediator: settings.Default(), RouterURL: "https://openhim-core:5000"}
	s.Listen = ":8601"
	cli := settings.NewCLI("cht-to-fhir", version, &s)
	cli.Level = logLevel
	cli.PrintOpenHIMConfig(func() (openhim.Definition, error) { return definition(s) })
	cli.Print("cht-outbound", "print the app_settings.outbound block for CHT, and exit", func(w io.Writer) error {
		mapping, err := fhir.LoadMapping(s.MappingFile)
		if err != nil {
			return fmt.Errorf("mapping_file (MEDIATOR_MAPPING_FILE): %w", err)
		}
		oc, err := push.Outbound(strings.TrimRight(s.RouterURL, "/")+push.OutboundPath, clientID, "openhim_cht_to_fhir", mapping)
		if err != nil {
			return fmt.Errorf("router_url (MEDIATOR_ROUTER_URL): %w", err)
		}
		out, err := oc.AppSettings()
		if err == nil {
			_, err = fmt.Fprintf(w, "%s\n", out)
		}
		return err
	})
	if done, err := cli.Parse(args, stdout, logger); done || err != nil {
		return err
	}
	m, err := newMediator(s, logger)
	if err != nil {
		return err
	}
	return m.Run(ctx)
}

// newMediator builds the mediator from the settings.
func newMediator(s Settings, logger *slog.Logger) (*mediator.Mediator, error) {
	def, err := definition(s)
	if err != nil {
		return nil, err
	}
	mapping, err := fhir.LoadMapping(s.MappingFile)
	if err != nil {
		return nil, fmt.Errorf("mapping_file (MEDIATOR_MAPPING_FILE): %w", err)
	}
	// Calls to CHT and FHIR are recorded as orchestrations of the transaction.
	recorded := &http.Client{Transport: mediator.Transport(nil)}
	pc := push.Config{SkipUnmappedForms: s.SkipUnmappedForms, Orchestrate: mediator.WithOrchestration, Logger: logger}
	if pc.FHIR, err = fhir.NewClient(fhir.ClientConfig{BaseURL: s.FHIR.URL, Username: s.FHIR.Username,
		Password: string(s.FHIR.Password), HTTPClient: recorded, Logger: logger}); err != nil {
		return nil, err
	}
	if s.CHT.Username != "" { // without CHT access, conversion knows only the legacy contact hierarchy
		if pc.CHT, err = cht.New(cht.Config{URL: s.CHT.URL, Username: s.CHT.Username,
			Password: string(s.CHT.Password), Logger: logger, HTTPClient: recorded}); err != nil {
			return nil, err
		}
	}
	// The app's contact types tell people from places: until they are read
	// from CHT, pushes are answered 503 (CHT retries) and /readyz fails.
	h, err := push.NewPending(fhir.Config{InstanceURL: s.CHT.URL, Mapping: mapping}, pc)
	if err != nil {
		return nil, err
	}
	cfg := mediator.Config{Definition: def, Handler: h, ReadyCheck: h.Ready, Logger: logger}
	watchOutbound(s, pc.CHT, &cfg)
	if err := s.Apply(&cfg); err != nil {
		return nil, err
	}
	return mediator.New(cfg)
}

// definition is the registration: an endpoint at public_host and the port
// of listen, and a channel routing CHT's pushes to it. Bump Version whenever
// it changes: core ignores a re-registration with the same version.
func definition(s Settings) (openhim.Definition, error) {
	route, err := s.Route("CHT to FHIR mediator")
	channel := openhim.Channel{Name: "CHT to FHIR", Description: "CHT outbound pushes to the CHT to FHIR mediator",
		URLPattern: "^/cht/(outbound|encounter)$", Type: "http", Methods: []string{"POST"},
		Allow: []string{clientRole}, AuthType: "private", Routes: []openhim.Route{route}}
	return openhim.Definition{URN: "urn:mediator:cht-to-fhir", Version: version, Name: "CHT to FHIR",
		Description: "Converts CHT outbound pushes to FHIR R4 transaction Bundles",
		Endpoints:   []openhim.Route{route}, DefaultChannelConfig: []openhim.Channel{channel}}, err
}

// clientRole is the OpenHIM client role the channel allows; clientID is the
// client CHT's pushes authenticate as (--print-cht-outbound). They differ:
// core refuses a client whose ID is a role a channel allows (409, addClient
// in openhim-core's src/api/clients.js).
const clientRole, clientID = "cht", "cht-outbound"

// watchOutbound exports CHT's outbound queue at /metrics (docs/referral-loop.md
// has the alert rule). The Watch reads the configured pushes, and those with
// a cron, from CHT's app settings, so that entries of removed pushes, and of
// pushes waiting for their cron window, do not count as failing.
func watchOutbound(s Settings, c *cht.Client, cfg *mediator.Config) {
	if s.OutboundMetrics && c != nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			outbound.NewWatch(c, outbound.WatchConfig{Logger: cfg.Logger}))
	}
}
