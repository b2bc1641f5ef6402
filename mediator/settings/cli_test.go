package settings

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// cliSettings is a program's settings as the examples have them.
type cliSettings struct {
	Mediator `mapstructure:",squash"`
	CHT      struct {
		URL      string `mapstructure:"url"`
		Username string `mapstructure:"username"`
		Password Secret `mapstructure:"password"`
	} `mapstructure:"cht"`
}

func (s cliSettings) Validate() error {
	errs := Errors{s.Mediator.Validate()}
	if s.CHT.URL == "" {
		errs = append(errs, errors.New("cht.url (MEDIATOR_CHT_URL) is required"))
	}
	return errs.Err()
}

// TestCLI pins each point of the shared command line.
func TestCLI(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		done    bool
		wantErr string   // "" for none
		stdout  []string // substrings of stdout
		logs    []string // substrings of the log
		notLogs []string
		check   func(t *testing.T, s *cliSettings, level *slog.LevelVar)
	}{
		{name: "help exits 0 and lists every variable", args: []string{"--help"}, done: true,
			stdout: []string{"Usage: prog [flags]", "-config", "-log-level", "-version", "-print-registration",
				"MEDIATOR_CHT_URL", "cht.url", "MEDIATOR_OPENHIM_PASSWORD", "MEDIATOR_HEARTBEAT_INTERVAL", "heartbeat_interval", "10s",
				"even when set but empty"}},
		{name: "version needs no settings", args: []string{"--version"}, done: true, stdout: []string{"prog 1.2.3\n"}},
		{name: "unknown flag", args: []string{"--nope"}, done: true, wantErr: "-nope (see --help)"},
		{name: "stray argument", args: []string{"config.yaml"}, done: true, wantErr: `unexpected argument "config.yaml"`},
		{name: "printing needs no CHT URL nor inbound credentials", args: []string{"--print-registration"}, done: true, stdout: []string{"registered on :8080"}},
		{name: "printing checks the mediator settings", args: []string{"--print-registration"}, done: true,
			env: map[string]string{"MEDIATOR_AUTH_USERNAME": "route"}, wantErr: "auth.username (MEDIATOR_AUTH_USERNAME) and auth.password"},
		{name: "one printer at a time", args: []string{"--print-registration", "--print-other"}, done: true, wantErr: "give one"},
		{name: "running validates everything", args: nil, done: false, wantErr: "cht.url (MEDIATOR_CHT_URL) is required"},
		{name: "running requires inbound credentials", args: nil, env: map[string]string{"MEDIATOR_CHT_URL": "https://c"}, done: false,
			wantErr: "settings: the mediator's routes would be open to anyone who reaches listen"},
		{name: "validation errors on one line", args: nil, env: map[string]string{"MEDIATOR_LISTEN": "", "MEDIATOR_AUTH_DISABLED": "true"}, done: false,
			wantErr: "settings: listen (MEDIATOR_LISTEN) must not be empty; cht.url (MEDIATOR_CHT_URL) is required"},
		{name: "file, and an empty variable overrides it", args: []string{"--config", "testdata/cli.yaml"},
			env:     map[string]string{"MEDIATOR_CHT_USERNAME": "", "MEDIATOR_CHT_PASSWORD": "pw-in-env"},
			logs:    []string{`"msg":"prog starting"`, `"version":"1.2.3"`, `"cht.url":"https://cht.example.org"`, `"listen":":8700"`, `"cht.password":"REDACTED"`},
			notLogs: []string{"pw-in-env", `"cht.username":"openhim"`},
			check: func(t *testing.T, s *cliSettings, _ *slog.LevelVar) {
				assert.Equal(t, "", s.CHT.Username, "MEDIATOR_CHT_USERNAME= clears the file's value")
				assert.Equal(t, ":8700", s.Listen)
			}},
		{name: "--log-level wins over log_level", args: []string{"--config", "testdata/cli.yaml", "--log-level", "debug"},
			env: map[string]string{"MEDIATOR_LOG_LEVEL": "warn"}, logs: []string{`"log_level":"DEBUG"`},
			check: func(t *testing.T, s *cliSettings, level *slog.LevelVar) {
				assert.Equal(t, slog.LevelDebug, level.Level())
				assert.Equal(t, slog.LevelDebug, s.LogLevel)
			}},
		{name: "log_level without the flag", args: []string{"--config", "testdata/cli.yaml"},
			env: map[string]string{"MEDIATOR_LOG_LEVEL": "error"},
			check: func(t *testing.T, _ *cliSettings, level *slog.LevelVar) {
				assert.Equal(t, slog.LevelError, level.Level())
			}},
		{name: "unknown level", args: []string{"--print-registration", "--log-level", "loud"}, done: true,
			wantErr: `--log-level "loud": want debug, info, warn or error`},
		{name: "bad value names the key and variable", args: []string{"--print-registration"}, done: true,
			env: map[string]string{"MEDIATOR_HEARTBEAT_INTERVAL": "often"}, wantErr: "MEDIATOR_HEARTBEAT_INTERVAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			s := cliSettings{Mediator: Default()}
			level := new(slog.LevelVar)
			cli := NewCLI("prog", "1.2.3", &s)
			cli.Level = level
			cli.Print("registration", "print the registration, and exit", func(w io.Writer) error {
				_, err := io.WriteString(w, "registered on "+s.Listen+"\n")
				return err
			})
			cli.Print("other", "print something else, and exit", func(io.Writer) error { return nil })
			var stdout, logs bytes.Buffer
			done, err := cli.Parse(tt.args, &stdout, slog.New(slog.NewJSONHandler(&logs, nil)))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "\n", "one line")
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.done || tt.wantErr != "", done, "done on any error")
			for _, want := range tt.stdout {
				assert.Contains(t, stdout.String(), want)
			}
			for _, want := range tt.logs {
				assert.Contains(t, logs.String(), want)
			}
			for _, not := range tt.notLogs {
				assert.NotContains(t, logs.String(), not)
			}
			if tt.done || tt.wantErr != "" {
				assert.Empty(t, logs.String(), "no start-up line when the program does not run")
			}
			if tt.check != nil {
				tt.check(t, &s, level)
			}
		})
	}
}

// A program without settings (the demo) has no --config and lists no
// variables.
func TestCLIWithoutSettings(t *testing.T) {
	cli := NewCLI("demo", "1.0.0", nil)
	cli.Flags.Bool("serve", false, "keep running")
	var out bytes.Buffer
	done, err := cli.Parse([]string{"--help"}, &out, nil)
	require.NoError(t, err)
	require.True(t, done)
	assert.NotContains(t, out.String(), "-config")
	assert.NotContains(t, out.String(), "MEDIATOR_")
	assert.Contains(t, out.String(), "-serve")

	cli = NewCLI("demo", "1.0.0", nil)
	serve := cli.Flags.Bool("serve", false, "keep running")
	done, err = cli.Parse([]string{"--serve"}, &out, nil)
	require.NoError(t, err)
	assert.False(t, done)
	assert.True(t, *serve)
	assert.False(t, strings.Contains(out.String(), "starting"))
}

// --print-openhim-config prints the registration with the route
// credentials the mediator requires, and needs no CHT URL.
func TestCLIPrintOpenHIMConfig(t *testing.T) {
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret")
	t.Setenv("MEDIATOR_AUTH_DISABLED", "false") // over the file's
	t.Setenv("MEDIATOR_PUBLIC_HOST", "mediators.internal")
	s := cliSettings{Mediator: Default()}
	cli := NewCLI("prog", "1.2.3", &s)
	cli.PrintOpenHIMConfig(func() (openhim.Definition, error) {
		route, err := s.Route("Prog")
		return openhim.Definition{URN: "urn:mediator:prog", Version: "1.2.3", Name: "Prog", Endpoints: []openhim.Route{route},
			DefaultChannelConfig: []openhim.Channel{{Name: "Prog", URLPattern: "^/prog$", Routes: []openhim.Route{route}}}}, err
	})
	var out bytes.Buffer
	done, err := cli.Parse([]string{"--config", "testdata/cli.yaml", "--print-openhim-config"}, &out, nil)
	require.NoError(t, err)
	require.True(t, done)
	var doc struct {
		Mediators []openhim.Definition
		Channels  []openhim.Channel
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc), out.String())
	require.Len(t, doc.Mediators, 1)
	require.Len(t, doc.Channels, 1)
	route := doc.Channels[0].Routes[0]
	assert.Equal(t, "mediators.internal", route.Host)
	assert.Equal(t, 8700, route.Port, "the port of listen in the file")
	assert.False(t, route.Secured)
	assert.Contains(t, out.String(), `"username": "openhim-route"`)
	assert.Contains(t, out.String(), `"password": "route-secret"`)

	t.Setenv("MEDIATOR_LISTEN", ":0")
	s = cliSettings{Mediator: Default()}
	_, err = cli.Parse([]string{"--print-openhim-config"}, &out, nil)
	require.ErrorContains(t, err, "listen (MEDIATOR_LISTEN)")

	// A definition built from public_host without Route (as fhir-to-cht's
	// is) is not printed with routes that have no host.
	t.Setenv("MEDIATOR_LISTEN", ":8700")
	t.Setenv("MEDIATOR_PUBLIC_HOST", "")
	s = cliSettings{Mediator: Default()}
	cli = NewCLI("prog", "1.2.3", &s)
	cli.PrintOpenHIMConfig(func() (openhim.Definition, error) {
		route := openhim.Route{Name: "Prog", Type: "http", Host: s.PublicHost, Port: 8700, Primary: true}
		return openhim.Definition{URN: "urn:mediator:prog", Version: "1.2.3", Name: "Prog", Endpoints: []openhim.Route{route}}, nil
	})
	out.Reset()
	_, err = cli.Parse([]string{"--print-openhim-config"}, &out, nil)
	require.ErrorContains(t, err, "public_host (MEDIATOR_PUBLIC_HOST) must not be empty")
	assert.Empty(t, out.String())
}

// Main exits 0 when run succeeds (--help included) and 1 after logging
// "NAME stopped" with the error on one line.
func TestMainStatus(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		code int
		log  string
	}{
		{"success", nil, 0, ""},
		{"failure", errors.New("cht.url (MEDIATOR_CHT_URL) is required"), 1,
			`"level":"ERROR","msg":"prog stopped","err":"cht.url (MEDIATOR_CHT_URL) is required"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			level := new(slog.LevelVar)
			code := mainStatus(context.Background(), "prog", []string{"--x"}, &stdout, &stderr, level,
				func(_ context.Context, args []string, w io.Writer, logger *slog.Logger) error {
					assert.Equal(t, []string{"--x"}, args)
					level.Set(slog.LevelWarn)
					logger.Info("hidden at warn")
					_, _ = io.WriteString(w, "out")
					return tt.err
				})
			assert.Equal(t, tt.code, code)
			assert.Equal(t, "out", stdout.String())
			assert.NotContains(t, stderr.String(), "hidden", "the logger follows level")
			if tt.log == "" {
				assert.Empty(t, stderr.String())
			} else {
				assert.Contains(t, stderr.String(), tt.log)
			}
		})
	}
}

// A second Ctrl-C (or SIGTERM) stops a program at once while its graceful
// shutdown waits for a request: the first signal cancels run's context, the
// second gets Go's default behaviour. The program is this test binary run
// again as TestMainHelperProcess, whose run never finishes shutting down.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("signals to a process")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SETTINGS_MAIN_HELPER=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	await := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				require.True(t, ok, "the helper exited before printing %q", want)
				if l == want {
					return
				}
			case <-timeout:
				t.Fatalf("the helper did not print %q", want)
			}
		}
	}
	await("serving")
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	await("shutting down")
	go func() {
		for range lines { // drain, so that Wait is reached
		}
	}()
	// The handler is reset by a goroutine right after the context is
	// cancelled: signal again until the process exits or 5 s pass.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-exited:
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			ws, ok := ee.Sys().(syscall.WaitStatus)
			require.True(t, ok)
			assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGINT, "killed by the second SIGINT: %v", err)
			return
		case <-tick.C:
			_ = cmd.Process.Signal(os.Interrupt) // fails only once the process has exited
		case <-timeout:
			t.Fatal("the second SIGINT was ignored: the process still runs its graceful shutdown 5 s later")
		}
	}
}

// TestMain runs the test binary as the program of
// TestSecondSignalStopsAtOnce when SETTINGS_MAIN_HELPER is set: a Main
// whose run never finishes shutting down.
func TestMain(m *testing.M) {
	if os.Getenv("SETTINGS_MAIN_HELPER") != "1" {
		os.Exit(m.Run())
	}
	Main("helper", nil, func(ctx context.Context, _ []string, stdout io.Writer, _ *slog.Logger) error {
		fmt.Fprintln(stdout, "serving")
		<-ctx.Done()
		fmt.Fprintln(stdout, "shutting down")
		time.Sleep(time.Minute) // a request the graceful shutdown waits for
		return nil
	})
}
