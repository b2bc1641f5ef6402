// Command backfill is a one-time bulk sync of every CHT document to a FHIR
// R4 server: it follows CHT's _changes feed from the beginning, converts
// reports and contacts with the cht-to-fhir mapping and writes them as
// transaction Bundles. Run it once before starting the cht-to-fhir mediator
// (whose outbound pushes then keep FHIR up to date); it can be stopped and
// restarted at any time and resumes from its checkpoint.
//
// Usage:
//
//	backfill [--config config.yaml] [--dry-run DIR] [--log-level LEVEL] [--version]
//
// Settings come from the config file and from MEDIATOR_* environment
// variables (see config.yaml). On a terminal, progress is a bar with rate
// and ETA; otherwise one log line per log_interval. A JSON summary is
// printed at the end. The exit status is 1 when the sync stopped (run it
// again to resume) or when documents failed: they could not be converted or
// the FHIR server rejected them, and the summary lists them ("failed",
// "failures", counted over all runs). The checkpoint moves past failed
// documents, so fix them in CHT (a new revision re-enters the feed) or in
// the mapping and sync again from a fresh checkpoint. A dry run (--dry-run DIR) keeps its checkpoint in
// DIR/checkpoint.json and leaves the real one untouched.
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
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

// Settings is everything backfill reads from its config file and the
// environment (MEDIATOR_ + the key upper-cased, "." as "_").
type Settings struct {
	// CHT is the CHT instance (MEDIATOR_CHT_URL, _USERNAME, _PASSWORD); the
	// user must be an online user (hydrate and _changes).
	CHT Endpoint `mapstructure:"cht"`
	// FHIR is the FHIR server (MEDIATOR_FHIR_URL, _USERNAME, _PASSWORD).
	FHIR Endpoint `mapstructure:"fhir"`
	// MappingFile is the form field mapping (MEDIATOR_MAPPING_FILE); ""
	// uses the cht-to-fhir example's mapping, built into the binary.
	MappingFile string `mapstructure:"mapping_file"`
	// CheckpointFile keeps the progress (MEDIATOR_CHECKPOINT_FILE).
	CheckpointFile string `mapstructure:"checkpoint_file"`
	// BatchSize is the number of documents per transaction Bundle
	// (MEDIATOR_BATCH_SIZE).
	BatchSize int `mapstructure:"batch_size"`
	// Workers is the number of Bundles written concurrently
	// (MEDIATOR_WORKERS).
	Workers int `mapstructure:"workers"`
	// PageSize is the number of changes read per request
	// (MEDIATOR_PAGE_SIZE).
	PageSize int `mapstructure:"page_size"`
	// MaxAttempts bounds the attempts per Bundle on transient failures
	// (MEDIATOR_MAX_ATTEMPTS).
	MaxAttempts int `mapstructure:"max_attempts"`
	// Timeout is the deadline of each request to CHT and FHIR
	// (MEDIATOR_TIMEOUT).
	Timeout time.Duration `mapstructure:"timeout"`
	// LogInterval is the period of progress lines when stdout is not a
	// terminal (MEDIATOR_LOG_INTERVAL).
	LogInterval time.Duration `mapstructure:"log_interval"`
	// LogLevel is debug, info, warn or error (MEDIATOR_LOG_LEVEL).
	LogLevel slog.Level `mapstructure:"log_level"`
}

// Endpoint is a server and its credentials.
type Endpoint struct {
	URL      string          `mapstructure:"url"`
	Username string          `mapstructure:"username"`
	Password settings.Secret `mapstructure:"password"`
}

// Validate checks the settings; errors name the key.
func (s Settings) Validate() error {
	var errs []error
	if s.CHT.URL == "" {
		errs = append(errs, errors.New("cht.url (MEDIATOR_CHT_URL) is required"))
	}
	if s.FHIR.URL == "" {
		errs = append(errs, errors.New("fhir.url (MEDIATOR_FHIR_URL) is required"))
	}
	if s.CheckpointFile == "" {
		errs = append(errs, errors.New("checkpoint_file (MEDIATOR_CHECKPOINT_FILE) is required"))
	}
	for _, v := range []struct {
		key string
		n   int
	}{{"batch_size", s.BatchSize}, {"workers", s.Workers}, {"page_size", s.PageSize}, {"max_attempts", s.MaxAttempts}} {
		if v.n <= 0 {
			errs = append(errs, fmt.Errorf("%s (%s) must be positive, got %d", v.key, settings.EnvName(settings.DefaultEnvPrefix, v.key), v.n))
		}
	}
	if s.Timeout <= 0 {
		errs = append(errs, errors.New("timeout (MEDIATOR_TIMEOUT) must be positive"))
	}
	if s.LogInterval <= 0 {
		errs = append(errs, errors.New("log_interval (MEDIATOR_LOG_INTERVAL) must be positive"))
	}
	return errors.Join(errs...)
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	if err := run(ctx, os.Args[1:], os.Stdout, logger); err != nil {
		if errors.Is(err, errFailed) {
			logger.Error("backfill done, but some documents were not written; see the summary", "err", err)
		} else {
			logger.Error("backfill stopped; run it again to resume", "err", err)
		}
		os.Exit(1)
	}
}

// errFailed is the error of a sync that completed with failed documents.
var errFailed = errors.New("backfill: documents failed")

// dryRunCheckpoint is the checkpoint file of a dry run, inside the dry-run
// directory.
const dryRunCheckpoint = "checkpoint.json"

// run is main without the process.
func run(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: %s [flags]\n\nFlags:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintln(stdout, "\nEvery setting of config.yaml can also be set with a MEDIATOR_* environment variable:")
		fmt.Fprintln(stdout, "MEDIATOR_ and the key upper-cased, with _ for . (cht.url is MEDIATOR_CHT_URL).")
		fmt.Fprintln(stdout, "The environment wins over the file; an empty variable overrides the file too.")
	}
	configFile := fs.String("config", "", "config file (YAML or JSON); MEDIATOR_* variables override it")
	dryRun := fs.String("dry-run", "", "write the transaction Bundles (and a checkpoint of their own) to this directory instead of the FHIR server")
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
	var mapping *fhir.Mapping
	var err error
	if s.MappingFile == "" {
		mapping = fhir.DefaultMapping()
	} else {
		mapping, err = fhir.LoadMapping(s.MappingFile)
	}
	if err != nil {
		return err
	}
	chtClient, err := cht.New(cht.Config{URL: s.CHT.URL, Username: s.CHT.Username,
		Password: string(s.CHT.Password), Timeout: s.Timeout, Logger: logger})
	if err != nil {
		return err
	}
	// The app's contact hierarchy (app_settings.contact_types) tells people
	// from places.
	types, err := chtClient.ContactTypes(ctx)
	if err != nil {
		return err
	}
	conv, err := fhir.New(fhir.Config{InstanceURL: s.CHT.URL, Mapping: mapping, ContactTypes: types})
	if err != nil {
		return err
	}
	// Run retries failed bundles itself (MaxAttempts), so the client does not.
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: s.FHIR.URL, Username: s.FHIR.Username,
		Password: string(s.FHIR.Password), HTTPClient: httpClient(s), Timeout: s.Timeout, MaxRetries: -1, Logger: logger})
	if err != nil {
		return err
	}
	cfg := backfill.Config{CHT: chtClient, Converter: conv, FHIR: fhirClient, CheckpointFile: s.CheckpointFile,
		BatchSize: s.BatchSize, Workers: s.Workers, PageSize: s.PageSize, MaxAttempts: s.MaxAttempts, Logger: logger}
	if *dryRun != "" {
		// A dry run keeps its own checkpoint beside its bundles: moving the
		// real one would make the next real run skip what was only dry-run.
		cfg.Writer = backfill.DirWriter{Dir: *dryRun}
		cfg.CheckpointFile = filepath.Join(*dryRun, dryRunCheckpoint)
	}
	if isTerminal(stdout) {
		bar := newBar(stdout)
		defer bar.Finish()
		cfg.OnProgress = func(p backfill.Progress) {
			if p.Total > 0 && bar.GetMax64() != p.Total {
				bar.ChangeMax64(p.Total)
			}
			bar.Set64(p.Done)
		}
	} else {
		cfg.OnProgress = logProgress(logger, s.LogInterval)
	}
	logger.Info("backfill starting", "dry_run", *dryRun, "checkpoint", cfg.CheckpointFile, "config", settings.Effective(&s))
	sum, err := backfill.Run(ctx, cfg)
	if sum != nil {
		if perr := printSummary(stdout, sum); perr != nil && err == nil {
			err = perr
		}
		if err == nil && sum.Failed > 0 {
			err = fmt.Errorf("%w: %d not written (listed in the summary)", errFailed, sum.Failed)
		}
	}
	return err
}

// httpClient is the HTTP client of the FHIR writes: one idle connection per
// worker.
func httpClient(s Settings) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = s.Workers
	return &http.Client{Transport: tr}
}

func newBar(w io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("backfill"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("docs"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionFullWidth(),
	)
}

// logProgress returns a progress callback that logs at most one line per
// interval, with the rate and the estimated time left.
func logProgress(logger *slog.Logger, interval time.Duration) func(backfill.Progress) {
	var last time.Time
	return func(p backfill.Progress) {
		now := time.Now()
		if now.Sub(last) < interval {
			return
		}
		last = now
		rate := float64(p.Done) / p.Elapsed.Seconds()
		attrs := []any{"done", p.Done, "total", p.Total, "docs_per_s", int(rate),
			"converted", p.Checkpoint.Converted, "skipped", p.Checkpoint.SkippedTotal(), "failed", p.Checkpoint.Failed}
		if p.Total > 0 && rate > 0 {
			attrs = append(attrs, "eta", (time.Duration(float64(p.Total-p.Done)/rate) * time.Second).Round(time.Second).String())
		}
		logger.Info("backfill progress", attrs...)
	}
}

// summary is the JSON printed at the end.
type summary struct {
	Converted  int64              `json:"converted"`
	Skipped    map[string]int64   `json:"skipped"`
	Failed     int64              `json:"failed"`
	Failures   []backfill.Failure `json:"failures,omitempty"`
	Resources  int64              `json:"resources"`
	Docs       int64              `json:"docs"`
	ThisRun    int64              `json:"thisRun"`
	Seconds    float64            `json:"seconds"`
	DocsPerSec float64            `json:"docsPerSecond"`
	Checkpoint string             `json:"seq"`
	// PeakRSSMiB is the process's peak resident memory (Linux VmHWM; 0
	// elsewhere).
	PeakRSSMiB float64 `json:"peakRssMiB"`
}

func printSummary(w io.Writer, s *backfill.Summary) error {
	out := summary{Converted: s.Converted, Skipped: s.Skipped, Failed: s.Failed, Failures: s.Failures,
		Resources: s.Resources, Docs: s.Docs, ThisRun: s.Processed, Seconds: s.Elapsed.Seconds(),
		Checkpoint: s.Seq.String(), PeakRSSMiB: float64(peakRSS()) / (1 << 20)}
	if out.Skipped == nil {
		out.Skipped = map[string]int64{}
	}
	if s.Elapsed > 0 {
		out.DocsPerSec = float64(s.Processed) / s.Elapsed.Seconds()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// tuneGC trades memory for CPU unless GOGC or GOMEMLIMIT say otherwise:
// the live heap of a sync is small (tens of MB), so collecting at 3× it
// halves the GC's CPU, and a soft limit of 160 MiB keeps the peak RSS under
// 200 MB however far the GC falls behind on a busy machine.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(160 << 20)
	}
}

// peakRSS is the process's peak resident set size in bytes, from
// /proc/self/status; 0 where that is not available.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// isTerminal reports whether w is a terminal (character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// version is the example's version, printed by --version.
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
