// Command fhir-to-cht is an OpenHIM mediator that writes FHIR resources from
// an EMR or HIE to CHT: a Patient becomes a CHT person, a ServiceRequest or
// Task (lost to follow-up, referral) a report that raises a CHW task, and
// Observations a report of the mapped form. Copy this directory to start
// your own mediator; --help lists its flags and settings.
// --print-cht-outbound, which cht-to-fhir has, explains why there is none:
// CHT pushes nothing to this mediator.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

// Settings come from the config file and MEDIATOR_* variables (the key
// upper-cased, "_" for "."): see config.yaml.
type Settings struct {
	settings.Mediator `mapstructure:",squash"`
	RouterURL         string            `mapstructure:"router_url"` // OpenHIM's router the EMR sends to (logged)
	CHT               settings.Endpoint `mapstructure:"cht"`        // written to; its URL names the instance, as cht-to-fhir's
	// FHIR is the EMR's FHIR server, optional: Patients that resources
	// refer to as Patient/<id> are read from it.
	FHIR             settings.Endpoint `mapstructure:"fhir"`
	MappingFile      string            `mapstructure:"mapping_file"`
	ParentPlace      string            `mapstructure:"parent_place"`       // _id of the place new people are created under
	PersonType       string            `mapstructure:"person_type"`        // contact type of new people; "" is person
	TaskForm         string            `mapstructure:"task_form"`          // form of reports from ServiceRequests and Tasks
	PatientField     string            `mapstructure:"patient_field"`      // report field with the patient's _id
	ObservationForm  string            `mapstructure:"observation_form"`   // form of Observations without a mapped Encounter
	ExternalIDSystem string            `mapstructure:"external_id_system"` // Patient identifier system of external_id
	AcceptCHTOrigin  bool              `mapstructure:"accept_cht_origin"`  // also write resources from CHT (loops)
	// NotifyEMR, when notify_emr.endpoint is set, gives every Task written to CHT an R4 rest-hook
	// Subscription on fhir.url that tells the EMR when the follow-up closes it
	// (docs/referral-loop.md).
	NotifyEMR struct {
		Endpoint      string          `mapstructure:"endpoint"`
		Authorization settings.Secret `mapstructure:"authorization"` // sent as the Authorization header
		Payload       string          `mapstructure:"payload"`       // "" or application/fhir+json
		Criteria      string          `mapstructure:"criteria"`      // "" means fhir.DefaultTaskCriteria
		// RemoveClosedAfter is how long after its Task closes a Subscription is deleted; 0 keeps them.
		RemoveClosedAfter time.Duration `mapstructure:"remove_closed_after"`
	} `mapstructure:"notify_emr"`
}

// Validate checks the settings; errors name the key.
func (s Settings) Validate() error {
	errs := settings.Errors{s.Mediator.Validate(), s.CHT.Validate("cht", true), s.FHIR.Validate("fhir", false)}
	if s.CHT.Username == "" {
		errs = append(errs, errors.New("cht.username (MEDIATOR_CHT_USERNAME) is required: the mediator writes to CHT"))
	}
	if s.ParentPlace == "" {
		errs = append(errs, errors.New("parent_place (MEDIATOR_PARENT_PLACE) is required: new people are created under it"))
	}
	return append(errs, s.validateNotifyEMR()...).Err()
}

// validateNotifyEMR checks notify_emr at startup, rather than failing every
// Task the EMR sends. The endpoint is not repeated: its query may hold a
// token.
func (s Settings) validateNotifyEMR() settings.Errors {
	var errs settings.Errors
	n := s.NotifyEMR
	if n.Endpoint == "" {
		if n.Authorization != "" || n.Payload != "" || n.Criteria != "" {
			errs = append(errs, errors.New("notify_emr.authorization, notify_emr.payload and notify_emr.criteria "+
				"need notify_emr.endpoint (MEDIATOR_NOTIFY_EMR_ENDPOINT): without it no Subscription is made"))
		}
		return errs
	}
	if u, err := url.Parse(n.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("notify_emr.endpoint (MEDIATOR_NOTIFY_EMR_ENDPOINT) must be an absolute http(s) URL, "+
			"such as https://emr.example.org/referral-events: the FHIR server posts the notifications to it"))
	}
	if s.FHIR.URL == "" {
		errs = append(errs, errors.New("notify_emr.endpoint (MEDIATOR_NOTIFY_EMR_ENDPOINT) needs fhir.url (MEDIATOR_FHIR_URL): "+
			"the Subscription is created on that FHIR server"))
	}
	if n.RemoveClosedAfter < 0 {
		errs = append(errs, fmt.Errorf("notify_emr.remove_closed_after (MEDIATOR_NOTIFY_EMR_REMOVE_CLOSED_AFTER) %s is negative: "+
			"want a duration such as 24h, or 0 to keep the Subscriptions", n.RemoveClosedAfter))
	}
	if strings.ContainsAny(string(n.Authorization), "\r\n") {
		errs = append(errs, errors.New("notify_emr.authorization (MEDIATOR_NOTIFY_EMR_AUTHORIZATION) must be one line: it is an HTTP header value"))
	}
	if n.Payload != "" && !strings.Contains(n.Payload, "/") {
		errs = append(errs, fmt.Errorf("notify_emr.payload (MEDIATOR_NOTIFY_EMR_PAYLOAD) %q: want \"\" (an empty notification) "+
			"or a MIME type such as application/fhir+json", n.Payload))
	}
	return errs
}

func main() { settings.Main("fhir-to-cht", logLevel, run) }

var logLevel = new(slog.LevelVar) // log_level, or --log-level

// errNoOutbound answers --print-cht-outbound.
var errNoOutbound = errors.New("fhir-to-cht receives from the EMR, not from CHT: it needs no app_settings.outbound block " +
	"(CHT needs the task form, e.g. INTEROP_FOLLOW_UP, and a task in tasks.js that applies to its reports)")

// run is main without the process: it parses args, loads the settings and
// serves until ctx is done.
func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	s := Settings{Mediator: settings.Default(), RouterURL: "https://openhim-core:5000"}
	s.Listen = ":8602"
	s.NotifyEMR.RemoveClosedAfter = 24 * time.Hour
	cli := settings.NewCLI("fhir-to-cht", "1.0.0", &s) // tocht.Definition's Version
	cli.Level = logLevel
	cli.PrintOpenHIMConfig(func() (openhim.Definition, error) { return definition(s) })
	cli.Print("cht-outbound", "not applicable: this mediator receives from the EMR, not from CHT", func(io.Writer) error { return errNoOutbound })
	if done, err := cli.Parse(args, stdout, logger); done || err != nil {
		return err
	}
	m, bridge, err := newMediator(ctx, s, logger)
	if err != nil {
		return err
	}
	logger.Info("the EMR sends to "+s.RouterURL+tocht.BasePath, "standalone", m.Standalone())
	if after := s.NotifyEMR.RemoveClosedAfter; s.NotifyEMR.Endpoint != "" && after > 0 {
		if after < time.Hour {
			logger.Warn("notify_emr.remove_closed_after is under an hour: a Subscription may be deleted "+
				"before the FHIR server has delivered its notification", "remove_closed_after", after)
		}
		ctx, stop := context.WithCancel(ctx) // the sweep ends with run
		defer stop()
		go removeClosedSubscriptions(ctx, bridge, after, logger)
	}
	return m.Run(ctx)
}

// removeClosedSubscriptions deletes the Subscriptions of the Tasks closed
// more than after ago, at startup and then every hour (every after when
// shorter), until ctx is done. A failure is logged, and the next round
// tries again.
func removeClosedSubscriptions(ctx context.Context, b *tocht.Bridge, after time.Duration, logger *slog.Logger) {
	every := min(after, time.Hour)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := b.RemoveClosedSubscriptions(ctx, time.Now().Add(-after)); err != nil && ctx.Err() == nil {
			logger.ErrorContext(ctx, "could not remove the Subscriptions of closed Tasks; trying again later", "err", err, "in", every)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// newMediator builds the mediator and the bridge it serves from the
// settings; it reads the app's contact hierarchy from CHT.
func newMediator(ctx context.Context, s Settings, logger *slog.Logger) (*mediator.Mediator, *tocht.Bridge, error) {
	def, err := definition(s)
	if err != nil {
		return nil, nil, err
	}
	mapping, err := fhir.LoadMapping(s.MappingFile)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping_file (MEDIATOR_MAPPING_FILE): %w", err)
	}
	chtClient, err := cht.New(cht.Config{URL: s.CHT.URL, Username: s.CHT.Username,
		Password: string(s.CHT.Password), Logger: logger,
		// Calls to CHT are recorded as orchestrations of the transaction.
		HTTPClient: &http.Client{Transport: mediator.Transport(nil)}})
	if err != nil {
		return nil, nil, err
	}
	// The app's contact hierarchy (app_settings.contact_types) tells people
	// (person, c_patient, c_chw ...) from places.
	types, err := chtClient.ContactTypes(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read the app's contact types from CHT: %w", err)
	}
	conv, err := fhir.New(fhir.Config{InstanceURL: s.CHT.URL, Mapping: mapping, ContactTypes: types,
		Systems: fhir.Systems{ExternalID: s.ExternalIDSystem},
		Inbound: fhir.InboundConfig{ParentPlace: s.ParentPlace, PersonType: s.PersonType, TaskForm: s.TaskForm,
			PatientField: s.PatientField, ObservationForm: s.ObservationForm}})
	if err != nil {
		return nil, nil, err
	}
	var notify *fhir.TaskSubscription
	if n := s.NotifyEMR; n.Endpoint != "" {
		notify = &fhir.TaskSubscription{Endpoint: n.Endpoint, Payload: n.Payload, Criteria: n.Criteria}
		if n.Authorization != "" {
			notify.Header = []string{"Authorization: " + string(n.Authorization)}
		}
	}
	bridge, err := tocht.New(tocht.Config{NotifyEMR: notify, Converter: conv, CHT: chtClient, ContactTypes: types,
		FHIRURL: s.FHIR.URL, FHIRUsername: s.FHIR.Username, FHIRPassword: string(s.FHIR.Password),
		MaxBodyBytes: bodyLimit(s.MaxBodyBytes), AcceptCHTOrigin: s.AcceptCHTOrigin, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	// The mediator's own errors (such as 413 for a Content-Length over
	// max_body_bytes) are OperationOutcomes too.
	cfg := mediator.Config{Definition: def, Handler: bridge.Handler(), Logger: logger, ErrorBody: tocht.ErrorBody}
	if err := s.Apply(&cfg); err != nil {
		return nil, nil, err
	}
	m, err := mediator.New(cfg)
	return m, bridge, err
}

// bodyLimit is tocht's body limit for max_body_bytes: negative means no
// limit, which tocht (where 0 means its 4 MiB default) takes as the
// largest limit there is.
func bodyLimit(maxBodyBytes int64) int64 {
	if maxBodyBytes < 0 {
		return math.MaxInt64
	}
	return maxBodyBytes
}

// definition is the registration, reachable at public_host and the port of
// listen.
func definition(s Settings) (openhim.Definition, error) {
	port, err := s.ListenPort()
	return tocht.Definition(s.PublicHost, port), err
}
