// Command cht-to-fhir is an OpenHIM mediator that writes CHT outbound pushes
// to a FHIR R4 server as transaction Bundles. Copy this directory to start
// your own mediator.
//
// Usage:
//
//	cht-to-fhir [--config config.yaml] [--print-openhim-config] [--print-cht-outbound] [--log-level LEVEL] [--version]
//
// Settings come from the config file and from MEDIATOR_* environment
// variables (see config.yaml). Without MEDIATOR_OPENHIM_URL the mediator runs
// standalone: it serves, but does not register with OpenHIM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

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

// Settings is everything the mediator reads from its config file and the
// environment (MEDIATOR_ + the key upper-cased, "." as "_").
type Settings struct {
	settings.Mediator `mapstructure:",squash"`
	// PublicHost is the host name core uses to reach this mediator
	// (MEDIATOR_PUBLIC_HOST); the port is the one of Listen.
	PublicHost string `mapstructure:"public_host"`
	// RouterURL is OpenHIM's router URL that CHT pushes to, used by
	// --print-cht-outbound (MEDIATOR_ROUTER_URL).
	RouterURL string `mapstructure:"router_url"`
	// CHT is the CHT instance (MEDIATOR_CHT_URL, _USERNAME, _PASSWORD).
	CHT Endpoint `mapstructure:"cht"`
	// FHIR is the FHIR server, or an OpenHIM channel in front of it
	// (MEDIATOR_FHIR_URL, _USERNAME, _PASSWORD).
	FHIR Endpoint `mapstructure:"fhir"`
	// MappingFile is the form field mapping (MEDIATOR_MAPPING_FILE); ""
	// uses fhir.DefaultMapping.
	MappingFile string `mapstructure:"mapping_file"`
	// SkipUnmappedForms answers 200 to reports of unmapped forms instead of
	// 422 (MEDIATOR_SKIP_UNMAPPED_FORMS).
	SkipUnmappedForms bool `mapstructure:"skip_unmapped_forms"`
	// OutboundWatch, when set, exports CHT's outbound queue at /metrics and makes /readyz fail
	// once a push has kept failing this long (MEDIATOR_OUTBOUND_WATCH, e.g. 30m); cht.username
	// must then be a CHT administrator, who may read the queue.
	OutboundWatch time.Duration `mapstructure:"outbound_watch"`
}

// Endpoint is a server and its credentials.
type Endpoint struct {
	URL      string          `mapstructure:"url"`
	Username string          `mapstructure:"username"`
	Password settings.Secret `mapstructure:"password"`
}

// Validate checks the settings; errors name the key.
func (s Settings) Validate() error {
	errs := []error{s.Mediator.Validate()}
	if s.CHT.URL == "" {
		errs = append(errs, errors.New("cht.url (MEDIATOR_CHT_URL) is required: it names the CHT instance in FHIR identifiers"))
	}
	if s.FHIR.URL == "" {
		errs = append(errs, errors.New("fhir.url (MEDIATOR_FHIR_URL) is required"))
	}
	return errors.Join(errs...)
}

func defaultSettings() Settings {
	s := Settings{Mediator: settings.Default(), PublicHost: "localhost", RouterURL: "https://openhim-core:5000"}
	s.Listen = ":8601"
	return s
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	if err := run(ctx, os.Args[1:], os.Stdout, logger); err != nil {
		logger.Error("cht-to-fhir stopped", "err", err)
		os.Exit(1)
	}
}

// run is main without the process: it parses args, loads the settings and
// serves until ctx is done.
func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := flag.NewFlagSet("cht-to-fhir", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: %s [flags]\n\nFlags:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintln(stdout, "\nEvery setting of config.yaml can also be set with a MEDIATOR_* environment variable:")
		fmt.Fprintln(stdout, "MEDIATOR_ and the key upper-cased, with _ for . (cht.url is MEDIATOR_CHT_URL).")
		fmt.Fprintln(stdout, "The environment wins over the file; an empty variable overrides the file too.")
	}
	configFile := fs.String("config", "", "config file (YAML or JSON); MEDIATOR_* variables override it")
	printOpenHIM := fs.Bool("print-openhim-config", false, "print the mediator and channel for OpenHIM's console import, and exit")
	printOutbound := fs.Bool("print-cht-outbound", false, "print the app_settings.outbound block for CHT, and exit")
	level := fs.String("log-level", "", "log level: debug, info, warn or error; overrides log_level (MEDIATOR_LOG_LEVEL)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // --help printed the usage
		}
		return err
	}
	if *showVersion {
		_, err := fmt.Fprintf(stdout, "%s %s\n", fs.Name(), version)
		return err
	}
	s := defaultSettings()
	if err := settings.Load(*configFile, &s); err != nil {
		return err
	}
	if err := setLogLevel(&s.LogLevel, *level); err != nil {
		return err
	}
	mapping, err := loadMapping(s.MappingFile)
	if err != nil {
		return err
	}
	def, err := definition(s)
	if err != nil {
		return err
	}
	switch {
	case *printOpenHIM:
		return writeJSON(stdout, openhim.MetadataFor(def.WithCredentials(s.Auth.Username, string(s.Auth.Password))))
	case *printOutbound:
		oc, err := outboundConfig(s, mapping)
		if err != nil {
			return err
		}
		out, err := oc.AppSettings()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	}

	m, err := newMediator(ctx, s, mapping, def, logger)
	if err != nil {
		return err
	}
	logger.Info("cht-to-fhir starting", "standalone", m.Standalone(), "config", settings.Effective(&s))
	return m.Run(ctx)
}

// newMediator builds the mediator from the settings.
func newMediator(ctx context.Context, s Settings, mapping *fhir.Mapping, def openhim.Definition, logger *slog.Logger) (*mediator.Mediator, error) {
	// Calls to CHT and FHIR are recorded as orchestrations of the transaction.
	recorded := &http.Client{Transport: mediator.Transport(nil)}
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: s.FHIR.URL, Username: s.FHIR.Username,
		Password: string(s.FHIR.Password), HTTPClient: recorded, Logger: logger})
	if err != nil {
		return nil, err
	}
	var chtClient *cht.Client
	var types cht.ContactTypes // without CHT credentials: the legacy hierarchy
	if s.CHT.Username != "" {
		var err error
		chtClient, err = cht.New(cht.Config{URL: s.CHT.URL, Username: s.CHT.Username,
			Password: cht.Password(s.CHT.Password), Logger: logger, HTTPClient: recorded})
		if err != nil {
			return nil, err
		}
		// The app's contact hierarchy (app_settings.contact_types) tells
		// people from places. Without it, contacts of configured types are
		// rejected (CHT resends them), never guessed.
		if types, err = chtClient.ContactTypes(ctx); err != nil {
			logger.Error("cannot read the CHT contact types; only the legacy hierarchy is known", "err", err)
		}
	}
	conv, err := fhir.New(fhir.Config{InstanceURL: s.CHT.URL, Mapping: mapping, ContactTypes: types})
	if err != nil {
		return nil, err
	}
	h, err := push.New(push.Config{Converter: conv, FHIR: fhirClient, CHT: chtClient,
		SkipUnmappedForms: s.SkipUnmappedForms, Orchestrate: mediator.WithOrchestration, Logger: logger})
	if err != nil {
		return nil, err
	}
	cfg := mediator.Config{Definition: def, Handler: h, Logger: logger}
	if err := s.Apply(&cfg); err != nil {
		return nil, err
	}
	watchOutbound(s, chtClient, &cfg)
	return mediator.New(cfg)
}

// definition is the registration document, reachable at PublicHost and the
// port of Listen: one endpoint and a default channel that routes CHT's
// outbound pushes (POST /cht/outbound and /cht/encounter) to it. Bump
// Version whenever it changes: core ignores a re-registration with the same
// version.
func definition(s Settings) (openhim.Definition, error) {
	port, err := s.ListenPort()
	if err != nil {
		return openhim.Definition{}, err
	}
	route := openhim.Route{Name: "CHT to FHIR mediator", Type: "http", Host: s.PublicHost, Port: port, Primary: true}
	return openhim.Definition{
		URN:         "urn:mediator:cht-to-fhir",
		Version:     "1.0.0",
		Name:        "CHT to FHIR",
		Description: "Converts CHT outbound pushes to FHIR R4 transaction Bundles",
		Endpoints:   []openhim.Route{route},
		DefaultChannelConfig: []openhim.Channel{{
			Name:        "CHT to FHIR",
			URLPattern:  "^/cht/(outbound|encounter)$",
			Description: "CHT outbound pushes to the CHT to FHIR mediator",
			Type:        "http",
			Methods:     []string{"POST"},
			Allow:       []string{clientRole},
			AuthType:    "private",
			Routes:      []openhim.Route{route},
		}},
	}, nil
}

// clientRole is the OpenHIM client role allowed to use the channel: give it
// to the client that CHT's outbound push authenticates as.
const clientRole = "cht"

// clientID is the OpenHIM client CHT's outbound push authenticates as (the
// basic auth user of --print-cht-outbound). It must differ from every role a
// channel allows: core refuses to create or update a client whose ID is such
// a role (409 "A role name conflicts with clientID", addClient and
// updateClient in openhim-core's src/api/clients.js).
const clientID = "cht-outbound"

func loadMapping(path string) (*fhir.Mapping, error) {
	if path == "" {
		return fhir.DefaultMapping(), nil
	}
	return fhir.LoadMapping(path)
}

// outboundConfig is the CHT outbound configuration that pushes the mapped reports
// and every person to the mediator's channel.
func outboundConfig(s Settings, mapping *fhir.Mapping) (outbound.Config, error) {
	forms := make([]string, 0, len(mapping.Forms))
	for _, f := range mapping.Forms {
		forms = append(forms, strconv.Quote(f.Form))
	}
	channel := strings.TrimRight(s.RouterURL, "/") + push.OutboundPath
	dest, err := outbound.NewDestination(channel, clientID, "openhim_cht_to_fhir")
	if err != nil {
		return nil, fmt.Errorf("router_url: %w", err)
	}
	return outbound.Config{
		"cht_to_fhir_reports": {
			RelevantTo:  fmt.Sprintf("doc.type === 'data_record' && [%s].includes(doc.form)", strings.Join(forms, ", ")),
			Destination: dest,
			Mapping:     outbound.DocMapping(),
		},
		"cht_to_fhir_people": {
			RelevantTo:  "doc.type === 'person' || (doc.type === 'contact' && doc.contact_type === 'person')",
			Destination: dest,
			Mapping:     outbound.DocMapping(),
		},
	}, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// watchOutbound exports CHT's outbound queue (the pushes to this mediator that keep failing) at
// /metrics and as the /readyz check (docs/referral-loop.md has the alert rule).
func watchOutbound(s Settings, c *cht.Client, cfg *mediator.Config) {
	if s.OutboundWatch <= 0 || c == nil {
		return
	}
	w := outbound.NewWatch(c, outbound.WatchConfig{MaxAge: s.OutboundWatch})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), w)
	cfg.Registry = reg
	cfg.ReadyCheck = w.Ready
}

// version is the example's version, printed by --version; the same as the
// Version of its definition.
const version = "1.0.0"

// logLevel is the level of main's log handler: log_level
// (MEDIATOR_LOG_LEVEL), or --log-level when given.
var logLevel = new(slog.LevelVar)

// setLogLevel applies --log-level (when given) over the configured level and
// sets main's handler to it.
func setLogLevel(l *slog.Level, flagValue string) error {
	if flagValue != "" {
		if err := l.UnmarshalText([]byte(flagValue)); err != nil {
			return fmt.Errorf("--log-level %q: want debug, info, warn or error", flagValue)
		}
	}
	logLevel.Set(*l)
	return nil
}
