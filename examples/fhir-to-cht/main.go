// Command fhir-to-cht is an OpenHIM mediator that writes FHIR resources from
// an EMR or HIE to CHT: a Patient becomes a CHT person, a ServiceRequest or
// Task (lost to follow-up, referral) a report that raises a CHW task, and
// Observations a report of the mapped form. Copy this directory to start
// your own mediator.
//
// Usage:
//
//	fhir-to-cht [--config config.yaml] [--print-openhim-config]
//
// Settings come from the config file and from MEDIATOR_* environment
// variables (see config.yaml). Without MEDIATOR_OPENHIM_URL the mediator runs
// standalone: it serves, but does not register with OpenHIM.
//
// --print-cht-outbound, which the other examples have, is refused with an
// explanation: this mediator receives from the EMR, and CHT pushes nothing to
// it.
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
	"syscall"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
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
	// RouterURL is OpenHIM's router URL the EMR sends to; it is only
	// printed in the startup log (MEDIATOR_ROUTER_URL).
	RouterURL string `mapstructure:"router_url"`
	// CHT is the CHT instance written to (MEDIATOR_CHT_URL, _USERNAME,
	// _PASSWORD). Its URL also names the instance in FHIR identifiers: use
	// the same as cht-to-fhir.
	CHT Endpoint `mapstructure:"cht"`
	// FHIR is the EMR's FHIR server, optional: Patients that ServiceRequests,
	// Tasks and Observations refer to as Patient/<id> are read from it
	// (MEDIATOR_FHIR_URL, _USERNAME, _PASSWORD).
	FHIR Endpoint `mapstructure:"fhir"`
	// MappingFile is the form field mapping (MEDIATOR_MAPPING_FILE); ""
	// uses fhir.DefaultMapping (the same as cht-to-fhir's).
	MappingFile string `mapstructure:"mapping_file"`
	// ParentPlace is the _id of the CHT place new people are created under
	// (MEDIATOR_PARENT_PLACE).
	ParentPlace string `mapstructure:"parent_place"`
	// PersonType is the contact type of new people; "" means "person"
	// (MEDIATOR_PERSON_TYPE).
	PersonType string `mapstructure:"person_type"`
	// TaskForm is the form of the reports made from ServiceRequests and
	// Tasks; "" means INTEROP_FOLLOW_UP (MEDIATOR_TASK_FORM).
	TaskForm string `mapstructure:"task_form"`
	// PatientField is the report field holding the patient's CHT _id; ""
	// means patient_uuid (MEDIATOR_PATIENT_FIELD).
	PatientField string `mapstructure:"patient_field"`
	// ObservationForm is the form of Observations sent without an
	// Encounter naming a mapped form (MEDIATOR_OBSERVATION_FORM).
	ObservationForm string `mapstructure:"observation_form"`
	// ExternalIDSystem is the Patient identifier system whose value becomes
	// the person's external_id and key; "" means <cht.url>/external_id,
	// and then the Patient's first identifier is used
	// (MEDIATOR_EXTERNAL_ID_SYSTEM).
	ExternalIDSystem string `mapstructure:"external_id_system"`
	// AcceptCHTOrigin also writes resources tagged as coming from CHT
	// (MEDIATOR_ACCEPT_CHT_ORIGIN); by default they are acknowledged and
	// skipped, to avoid loops.
	AcceptCHTOrigin bool `mapstructure:"accept_cht_origin"`
	// NotifyEMR, when notify_emr.endpoint is set, gives every Task written to CHT an R4 rest-hook
	// Subscription on fhir.url that tells the EMR when the follow-up closes it
	// (docs/referral-loop.md).
	NotifyEMR struct {
		Endpoint      string          `mapstructure:"endpoint"`
		Authorization settings.Secret `mapstructure:"authorization"` // sent as the Authorization header
		Payload       string          `mapstructure:"payload"`       // "" or application/fhir+json
		Criteria      string          `mapstructure:"criteria"`      // "" means fhir.DefaultTaskCriteria
	} `mapstructure:"notify_emr"`
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
		errs = append(errs, errors.New("cht.url (MEDIATOR_CHT_URL) is required"))
	}
	if s.CHT.Username == "" {
		errs = append(errs, errors.New("cht.username (MEDIATOR_CHT_USERNAME) is required: the mediator writes to CHT"))
	}
	if s.ParentPlace == "" {
		errs = append(errs, errors.New("parent_place (MEDIATOR_PARENT_PLACE) is required: new people are created under it"))
	}
	return errors.Join(errs...)
}

func defaultSettings() Settings {
	s := Settings{Mediator: settings.Default(), PublicHost: "localhost", RouterURL: "https://openhim-core:5000"}
	s.Listen = ":8602"
	return s
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	if err := run(ctx, os.Args[1:], os.Stdout, logger); err != nil {
		logger.Error("fhir-to-cht stopped", "err", err)
		os.Exit(1)
	}
}

// errNoOutbound answers --print-cht-outbound.
var errNoOutbound = errors.New("fhir-to-cht receives from the EMR, not from CHT: it needs no app_settings.outbound block " +
	"(CHT needs the task form, e.g. INTEROP_FOLLOW_UP, and a task in tasks.js that applies to its reports)")

// run is main without the process: it parses args, loads the settings and
// serves until ctx is done.
func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := flag.NewFlagSet("fhir-to-cht", flag.ContinueOnError)
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
	printOutbound := fs.Bool("print-cht-outbound", false, "not applicable: this mediator receives from the EMR, not from CHT")
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
	if *printOutbound {
		return errNoOutbound
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
	if *printOpenHIM {
		return writeJSON(stdout, openhim.MetadataFor(def.WithCredentials(s.Auth.Username, string(s.Auth.Password))))
	}

	m, err := newMediator(s, mapping, def, logger)
	if err != nil {
		return err
	}
	logger.Info("fhir-to-cht starting", "standalone", m.Standalone(),
		"emr_sends_to", s.RouterURL+tocht.BasePath, "config", settings.Effective(&s))
	return m.Run(ctx)
}

// newMediator builds the mediator from the settings.
func newMediator(s Settings, mapping *fhir.Mapping, def openhim.Definition, logger *slog.Logger) (*mediator.Mediator, error) {
	conv, err := fhir.New(fhir.Config{
		InstanceURL: s.CHT.URL,
		Mapping:     mapping,
		Systems:     fhir.Systems{ExternalID: s.ExternalIDSystem},
		Inbound: fhir.InboundConfig{
			ParentPlace:     s.ParentPlace,
			PersonType:      s.PersonType,
			TaskForm:        s.TaskForm,
			PatientField:    s.PatientField,
			ObservationForm: s.ObservationForm,
		},
	})
	if err != nil {
		return nil, err
	}
	chtClient, err := cht.New(cht.Config{URL: s.CHT.URL, Username: s.CHT.Username,
		Password: string(s.CHT.Password), Logger: logger,
		// Calls to CHT are recorded as orchestrations of the transaction.
		HTTPClient: &http.Client{Transport: mediator.Transport(nil)}})
	if err != nil {
		return nil, err
	}
	var notify *fhir.TaskSubscription
	if n := s.NotifyEMR; n.Endpoint != "" {
		notify = &fhir.TaskSubscription{Endpoint: n.Endpoint, Payload: n.Payload, Criteria: n.Criteria}
		if n.Authorization != "" {
			notify.Header = []string{"Authorization: " + string(n.Authorization)}
		}
	}
	bridge, err := tocht.New(tocht.Config{
		NotifyEMR:       notify,
		Converter:       conv,
		CHT:             chtClient,
		FHIRURL:         s.FHIR.URL,
		FHIRUsername:    s.FHIR.Username,
		FHIRPassword:    string(s.FHIR.Password),
		MaxBodyBytes:    max(s.MaxBodyBytes, 0),
		AcceptCHTOrigin: s.AcceptCHTOrigin,
		Logger:          logger,
	})
	if err != nil {
		return nil, err
	}
	// The mediator's own errors (such as 413 for a Content-Length over
	// max_body_bytes) are OperationOutcomes too.
	cfg := mediator.Config{Definition: def, Handler: bridge.Handler(), Logger: logger, ErrorBody: tocht.ErrorBody}
	if err := s.Apply(&cfg); err != nil {
		return nil, err
	}
	return mediator.New(cfg)
}

// definition is the registration document, reachable at PublicHost and the
// port of Listen.
func definition(s Settings) (openhim.Definition, error) {
	port, err := s.ListenPort()
	if err != nil {
		return openhim.Definition{}, err
	}
	return tocht.Definition(s.PublicHost, port), nil
}

func loadMapping(path string) (*fhir.Mapping, error) {
	if path == "" {
		return fhir.DefaultMapping(), nil
	}
	return fhir.LoadMapping(path)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
