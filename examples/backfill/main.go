// Command backfill is a one-time bulk sync of every CHT document to a FHIR
// R4 server: it follows CHT's _changes feed from the beginning, converts
// reports and contacts with the default (or mapping_file's) mapping and
// writes them as transaction Bundles. Run it once after CHT's outbound
// push to the cht-to-fhir mediator is configured: CHT pushes only the
// documents that change after that, and the backfill brings over those
// that changed before. Stopped, it resumes from its checkpoint when run
// again. --help lists its flags and settings.
//
// Progress is a bar on a terminal, else a log line per log_interval; a JSON
// summary is printed at the end. The exit status is 1 when the sync stopped
// or when documents failed in this run (could not be converted, or the FHIR
// server rejected them): the summary lists them, and its counts include
// earlier runs'. The checkpoint moves past failed documents, and the file
// beside it (checkpoint_file + ".failures") lists every one with its
// reason: after a fix (in CHT, in the mapping or on the FHIR server),
// --retry-failed syncs only those again. A dry run (--dry-run DIR)
// keeps its checkpoint in DIR and leaves the real one untouched.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

// Settings come from the config file and MEDIATOR_* variables (the key
// upper-cased, "_" for "."): see config.yaml.
type Settings struct {
	CHT            settings.Endpoint `mapstructure:"cht"`  // an online user (hydrate and _changes)
	FHIR           settings.Endpoint `mapstructure:"fhir"` // the FHIR server
	MappingFile    string            `mapstructure:"mapping_file"`
	CheckpointFile string            `mapstructure:"checkpoint_file"`
	BatchSize      int               `mapstructure:"batch_size"`   // documents per transaction Bundle
	Workers        int               `mapstructure:"workers"`      // Bundles written concurrently
	PageSize       int               `mapstructure:"page_size"`    // changes read per request
	MaxAttempts    int               `mapstructure:"max_attempts"` // per Bundle, on transient failures
	Timeout        time.Duration     `mapstructure:"timeout"`      // of each request to CHT and FHIR
	LogInterval    time.Duration     `mapstructure:"log_interval"` // of progress lines off a terminal
	LogLevel       slog.Level        `mapstructure:"log_level"`
}

// Validate checks the settings; errors name the key.
func (s Settings) Validate() error {
	errs := settings.Errors{s.CHT.Validate("cht", true), s.FHIR.Validate("fhir", true)}
	if s.CheckpointFile == "" {
		errs = append(errs, errors.New("checkpoint_file (MEDIATOR_CHECKPOINT_FILE) is required"))
	}
	for _, v := range []struct {
		key string
		n   int64
	}{{"batch_size", int64(s.BatchSize)}, {"workers", int64(s.Workers)}, {"page_size", int64(s.PageSize)},
		{"max_attempts", int64(s.MaxAttempts)}, {"timeout", int64(s.Timeout)}, {"log_interval", int64(s.LogInterval)}} {
		if v.n <= 0 {
			errs = append(errs, fmt.Errorf("%s (%s) must be positive", v.key, settings.EnvName(settings.DefaultEnvPrefix, v.key)))
		}
	}
	return errs.Err()
}

func defaultSettings() Settings {
	return Settings{
		CheckpointFile: "backfill-checkpoint.json",
		BatchSize:      backfill.DefaultBatchSize,
		Workers:        backfill.DefaultWorkers,
		PageSize:       backfill.DefaultPageSize,
		MaxAttempts:    backfill.DefaultMaxAttempts,
		Timeout:        60 * time.Second,
		LogInterval:    10 * time.Second,
	}
}

func main() {
	tuneGC()
	settings.Main("backfill", logLevel, run)
}

var logLevel = new(slog.LevelVar) // log_level, or --log-level

var errFailed = errors.New("backfill: documents failed") // the sync completed, not all written

// run is main without the process.
func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	s := defaultSettings()
	cli := settings.NewCLI("backfill", "1.0.0", &s)
	cli.Level = logLevel
	dryRun := cli.Flags.String("dry-run", "", "write the transaction Bundles (and a checkpoint of their own) to this directory instead of the FHIR server")
	retry := cli.Flags.Bool("retry-failed", false, "sync again only the documents earlier runs failed on (listed beside the checkpoint), after a fix")
	if done, err := cli.Parse(args, stdout, logger); done || err != nil {
		return err
	}
	mapping, err := fhir.LoadMapping(s.MappingFile)
	if err != nil {
		return fmt.Errorf("mapping_file (MEDIATOR_MAPPING_FILE): %w", err)
	}
	chtClient, err := cht.New(cht.Config{URL: s.CHT.URL, Username: s.CHT.Username,
		Password: string(s.CHT.Password), Timeout: s.Timeout, Logger: logger})
	if err != nil {
		return err
	}
	// The app's contact hierarchy (app_settings.contact_types) tells people from places.
	types, err := chtClient.ContactTypes(ctx)
	if err != nil {
		return fmt.Errorf("read the app's contact types from CHT: %w", err)
	}
	conv, err := fhir.New(fhir.Config{InstanceURL: s.CHT.URL, Mapping: mapping, ContactTypes: types})
	if err != nil {
		return err
	}
	// Run retries failed bundles itself (MaxAttempts), so the client does
	// not; one idle connection per worker.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = s.Workers
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: s.FHIR.URL, Username: s.FHIR.Username,
		Password: string(s.FHIR.Password), HTTPClient: &http.Client{Transport: tr}, Timeout: s.Timeout, MaxRetries: -1, Logger: logger})
	if err != nil {
		return err
	}
	cfg := backfill.Config{CHT: chtClient, Converter: conv, FHIR: fhirClient, CheckpointFile: s.CheckpointFile,
		BatchSize: s.BatchSize, Workers: s.Workers, PageSize: s.PageSize, MaxAttempts: s.MaxAttempts, Logger: logger}
	if *dryRun != "" {
		// A dry run keeps its own checkpoint beside its bundles: moving the
		// real one would make the next real run skip what was only dry-run.
		cfg.Writer = backfill.DirWriter{Dir: *dryRun}
		cfg.CheckpointFile = filepath.Join(*dryRun, "checkpoint.json")
		logger.Info("dry run: the bundles go to files", "dir", *dryRun, "checkpoint", cfg.CheckpointFile)
	}
	var sum *backfill.Summary
	if *retry {
		if sum, err = backfill.Retry(ctx, cfg); err != nil {
			err = fmt.Errorf("%w (the failure list is unchanged: run backfill --retry-failed again)", err)
		}
	} else {
		var finish func()
		cfg.OnProgress, finish = progress(stdout, logger, s.LogInterval)
		defer finish()
		if sum, err = backfill.Run(ctx, cfg); err != nil {
			// The sync started: the checkpoint holds what was written.
			err = fmt.Errorf("%w (run backfill again to resume from its checkpoint %s)", err, cfg.CheckpointFile)
		}
	}
	if sum != nil {
		if perr := printSummary(stdout, sum); perr != nil && err == nil {
			err = perr
		}
		if err == nil && sum.FailedNow > 0 {
			// This run's: one after a fix in CHT succeeds, whatever
			// earlier runs left in the checkpoint's count.
			err = fmt.Errorf("%w: %d not written by this run (the summary lists the first %d, %s.failures every one; "+
				"after a fix, backfill --retry-failed writes them)", errFailed, sum.FailedNow, backfill.MaxFailures, cfg.CheckpointFile)
		}
	}
	return err
}
