package settings

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"syscall"
	"text/tabwriter"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// CLI is the command line every example mediator shares, so that each
// behaves the same:
//
//	--config FILE           settings file (YAML or JSON); MEDIATOR_* variables win over it
//	--log-level LEVEL       debug, info, warn or error; wins over log_level
//	--version               prints "NAME VERSION" and exits
//	--print-openhim-config  the registration for OpenHIM's console import ([CLI.PrintOpenHIMConfig])
//	--print-NAME            each printer the program adds with [CLI.Print]
//	--help                  prints the flags and every MEDIATOR_* variable, and exits 0
//
// Add the program's own flags to Flags before [CLI.Parse]:
//
//	cli := settings.NewCLI("my-mediator", "1.0.0", &s) // s holds the defaults
//	cli.Level = logLevel                              // the LevelVar of main's slog handler
//	cli.PrintOpenHIMConfig(func() (openhim.Definition, error) { return definition(s) })
//	cli.Print("cht-outbound", "print CHT's outbound block, and exit", printOutbound)
//	if done, err := cli.Parse(args, stdout, logger); done || err != nil {
//		return err
//	}
type CLI struct {
	// Flags holds the flags. Add the program's own before Parse.
	Flags *flag.FlagSet
	// Level, when set, is set by Parse to the effective log level
	// (log_level, or --log-level when given): hand the same LevelVar to
	// the program's slog handler.
	Level *slog.LevelVar

	name, version string
	settings      any
	configFile    string
	logLevel      string
	showVersion   bool
	prints        []printer
}

type printer struct {
	name  string
	on    *bool
	write func(io.Writer) error
}

// NewCLI returns the command line of the program name at version. Parse
// loads the settings into dst, a pointer to the program's settings struct
// holding the defaults (as for [Load]); nil for a program without settings,
// which then has no --config flag.
func NewCLI(name, version string, dst any) *CLI {
	c := &CLI{Flags: flag.NewFlagSet(name, flag.ContinueOnError), name: name, version: version, settings: dst}
	levelUsage := "log level: debug, info, warn or error"
	if dst != nil {
		c.Flags.StringVar(&c.configFile, "config", "", "settings file (YAML or JSON); MEDIATOR_* variables win over it")
		levelUsage += "; wins over log_level (MEDIATOR_LOG_LEVEL)"
	}
	c.Flags.StringVar(&c.logLevel, "log-level", "", levelUsage)
	c.Flags.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	return c
}

// Print adds the flag --print-NAME. When it is given, Parse loads the
// settings and calls write with stdout, and the program exits. The settings
// are checked only as far as the embedded [Mediator] goes (listen, auth,
// openhim), without requiring inbound credentials: what write prints needs
// no URL of the servers the mediator talks to, and write reports what else
// it needs, naming the key.
func (c *CLI) Print(name, usage string, write func(w io.Writer) error) {
	on := c.Flags.Bool("print-"+name, false, usage)
	c.prints = append(c.prints, printer{name: name, on: on, write: write})
}

// PrintOpenHIMConfig adds --print-openhim-config: it prints the
// registration that definition returns, with its default channels, as
// OpenHIM console's Export/Import page takes it ([openhim.MetadataFor]).
// The routes carry the basic-auth credentials the mediator requires of its
// callers (auth.username and auth.password of the embedded [Mediator];
// [openhim.Definition.WithCredentials]).
func (c *CLI) PrintOpenHIMConfig(definition func() (openhim.Definition, error)) {
	c.Print("openhim-config", "print the mediator and its channels for OpenHIM's console import, and exit", func(w io.Writer) error {
		def, err := definition()
		if err != nil {
			return err
		}
		if m, ok := c.mediator(); ok {
			if err := m.checkPublicHost(true); err != nil {
				return err // the printed routes would have no host
			}
			def = def.WithCredentials(m.Auth.Username, string(m.Auth.Password))
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(openhim.MetadataFor(def))
	})
}

// mediator returns the settings' embedded Mediator.
func (c *CLI) mediator() (Mediator, bool) {
	if c.settings == nil {
		return Mediator{}, false
	}
	rv := reflect.ValueOf(c.settings).Elem()
	for i := range rv.NumField() {
		if f := rv.Type().Field(i); f.Anonymous && f.Type == mediatorType {
			return rv.Field(i).Interface().(Mediator), true
		}
	}
	return Mediator{}, false
}

// Parse parses args (without the program name), then:
//   - --help: prints the usage to stdout; done, no error (exit status 0);
//   - --version: prints "NAME VERSION"; done;
//   - loads the settings (file, then MEDIATOR_* variables, an empty one
//     included) and applies --log-level over log_level, setting Level;
//   - --print-NAME: calls the printer; done;
//   - otherwise logs "NAME starting" with the effective configuration,
//     secrets redacted ([Effective]), on logger (when not nil): not done,
//     the program goes on to run.
//
// An error names the flag, the key or the variable at fault; done is true
// with any error.
func (c *CLI) Parse(args []string, stdout io.Writer, logger *slog.Logger) (done bool, err error) {
	c.Flags.SetOutput(io.Discard) // usage goes to stdout on --help only
	if err := c.Flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, c.usage(stdout)
		}
		return true, fmt.Errorf("%w (see --help)", err)
	}
	if c.Flags.NArg() > 0 {
		return true, fmt.Errorf("unexpected argument %q (see --help)", c.Flags.Arg(0))
	}
	if c.showVersion {
		_, err := fmt.Fprintf(stdout, "%s %s\n", c.name, c.version)
		return true, err
	}
	var print *printer
	for i, p := range c.prints {
		if !*p.on {
			continue
		}
		if print != nil {
			return true, fmt.Errorf("--print-%s and --print-%s: give one", print.name, p.name)
		}
		print = &c.prints[i]
	}
	if err := parseLevel(new(slog.Level), c.logLevel); err != nil {
		return true, err // before the settings: the flag is wrong whatever they hold
	}
	level, err := c.load(print != nil)
	if err != nil {
		return true, err
	}
	if c.Level != nil {
		c.Level.Set(level)
	}
	if print != nil {
		return true, print.write(stdout)
	}
	if logger != nil {
		if c.settings != nil {
			logger.Info(c.name+" starting", "version", c.version, "config", Effective(c.settings))
		} else {
			logger.Info(c.name+" starting", "version", c.version)
		}
	}
	return false, nil
}

var mediatorType = reflect.TypeFor[Mediator]()

// load reads the settings and returns the effective log level. For a
// printer only the embedded Mediator is validated.
func (c *CLI) load(printing bool) (slog.Level, error) {
	level := slog.LevelInfo
	if c.settings == nil {
		return level, parseLevel(&level, c.logLevel)
	}
	if err := loadWith(Options{File: c.configFile}, c.settings, !printing); err != nil {
		return level, err
	}
	if m, ok := c.mediator(); ok && printing {
		if err := m.validate(false); err != nil {
			return level, err
		}
	}
	rv := reflect.ValueOf(c.settings).Elem()
	leaves := map[string]reflect.Value{}
	collectLeaves(rv, "", leaves)
	lv, ok := leaves["log_level"]
	if ok && lv.Type() == levelType {
		level = slog.Level(lv.Int())
	}
	if err := parseLevel(&level, c.logLevel); err != nil {
		return level, err
	}
	if ok && lv.Type() == levelType && lv.CanSet() {
		lv.SetInt(int64(level)) // the logged configuration shows the level in force
	}
	return level, nil
}

func parseLevel(l *slog.Level, flagValue string) error {
	if flagValue == "" {
		return nil
	}
	if err := l.UnmarshalText([]byte(flagValue)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", flagValue)
	}
	return nil
}

// usage prints the flags and, for a program with settings, every key with
// its variable and default.
func (c *CLI) usage(w io.Writer) error {
	fmt.Fprintf(w, "Usage: %s [flags]\n\nFlags:\n", c.name)
	c.Flags.SetOutput(w)
	c.Flags.PrintDefaults()
	c.Flags.SetOutput(io.Discard)
	if c.settings == nil {
		return nil
	}
	fmt.Fprintf(w, "\nSettings come from the --config file and from %s_* environment variables.\n"+
		"A variable wins over the file, even when set but empty: an empty variable clears the file's value.\n\n",
		DefaultEnvPrefix)
	leaves := map[string]reflect.Value{}
	collectLeaves(reflect.ValueOf(c.settings).Elem(), "", leaves)
	keys := make([]string, 0, len(leaves))
	for k := range leaves {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tKEY\tDEFAULT")
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", EnvName(DefaultEnvPrefix, k), k, effectiveValue(k, leaves[k]))
	}
	return tw.Flush()
}

// Main is a program's main function around run, its main without the
// process (which a test calls): run gets a context cancelled on SIGINT and
// SIGTERM, the arguments, stdout, and a JSON logger on stderr at level
// (give the same LevelVar to [CLI.Level]; nil logs at info). An error is
// logged as "NAME stopped" and the process exits with status 1.
//
// The first signal starts the graceful shutdown (up to shutdown_timeout);
// a second one stops the process at once, as Go's default handling of the
// signal does.
func Main(name string, level *slog.LevelVar, run func(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error) {
	ctx, stop := notifyContext(context.Background())
	code := mainStatus(ctx, name, os.Args[1:], os.Stdout, os.Stderr, level, run)
	stop()
	os.Exit(code)
}

// notifyContext returns a context cancelled by the first SIGINT or SIGTERM;
// once it is, the signals are no longer caught, so that a second one gets
// Go's default behaviour (the process exits) instead of being ignored while
// the shutdown runs.
func notifyContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// mainStatus is Main without the process: it returns the exit status.
func mainStatus(ctx context.Context, name string, args []string, stdout, stderr io.Writer, level *slog.LevelVar,
	run func(context.Context, []string, io.Writer, *slog.Logger) error) int {
	opts := &slog.HandlerOptions{}
	if level != nil {
		opts.Level = level
	}
	logger := slog.New(slog.NewJSONHandler(stderr, opts))
	if err := run(ctx, args, stdout, logger); err != nil {
		logger.Error(name+" stopped", "err", err)
		return 1
	}
	return 0
}
