// Package examples_test checks that every example has the same command line
// (mediator/settings.CLI), by building each one and running it as a user
// would: exit status, stdout and the JSON log lines on stderr.
package examples_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// example is one program and what its command line has.
type example struct {
	name     string
	settings bool   // has a settings file (--config, MEDIATOR_* variables)
	mediator bool   // registers with OpenHIM (--print-openhim-config)
	outbound string // --print-cht-outbound: "prints", "refuses" or "" (no such flag)
	// emptied is a key that config.yaml sets and an empty variable clears,
	// and env what else the program needs to start.
	emptied string
	env     []string
}

// routeAuth is what a mediator requires of the requests core routes to it:
// serving without it is refused.
var routeAuth = []string{"MEDIATOR_AUTH_USERNAME=openhim-route", "MEDIATOR_AUTH_PASSWORD=s3cret-pw"}

var examples = []example{
	{name: "cht-to-fhir", settings: true, mediator: true, outbound: "prints", emptied: "cht.username", env: routeAuth},
	{name: "fhir-to-cht", settings: true, mediator: true, outbound: "refuses", emptied: "task_form",
		env: append([]string{"MEDIATOR_PARENT_PLACE=hc-1"}, routeAuth...)},
	{name: "passthrough", settings: true, mediator: true, emptied: "openhim.username", env: routeAuth},
	{name: "backfill", settings: true, emptied: "cht.username"},
	{name: "demo"},
}

var build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "examples-cli")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, ex := range examples {
		args = append(args, "./"+ex.name)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
})

// result is what a run of a program showed.
type result struct {
	code           int
	stdout, stderr string
}

// command is the program with a clean environment: no MEDIATOR_* variable
// but env.
func command(t *testing.T, ex example, env []string, args ...string) *exec.Cmd {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the examples and runs them")
	}
	dir, err := build()
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(dir, ex.name), args...)
	cmd.Dir = ex.name // config.yaml is the example's own
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MEDIATOR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func run(t *testing.T, ex example, env []string, args ...string) result {
	t.Helper()
	cmd := command(t, ex, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// stopped checks a failed run: status 1 and one JSON log line
// "NAME stopped" whose error contains want.
func stopped(t *testing.T, ex example, r result, want string) {
	t.Helper()
	assert.Equal(t, 1, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	var last struct{ Level, Msg, Err string }
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last), r.stderr)
	assert.Equal(t, "ERROR", last.Level)
	assert.Equal(t, ex.name+" stopped", last.Msg)
	assert.Contains(t, last.Err, want)
}

// --help exits 0 and prints the flags and, with settings, every MEDIATOR_*
// variable.
func TestHelp(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			r := run(t, ex, nil, "--help")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Empty(t, r.stderr)
			assert.Contains(t, r.stdout, "Usage: "+ex.name+" [flags]")
			assert.Contains(t, r.stdout, "-version")
			assert.Contains(t, r.stdout, "-log-level")
			assert.Equal(t, ex.settings, strings.Contains(r.stdout, "-config"))
			if ex.settings {
				assert.Contains(t, r.stdout, "MEDIATOR_LOG_LEVEL")
				assert.Contains(t, r.stdout, "MEDIATOR_"+strings.ToUpper(strings.ReplaceAll(ex.emptied, ".", "_")))
				assert.Contains(t, r.stdout, "even when set but empty")
			}
			assert.Equal(t, ex.mediator, strings.Contains(r.stdout, "-print-openhim-config"))
			assert.Equal(t, ex.outbound != "", strings.Contains(r.stdout, "-print-cht-outbound"))
		})
	}
}

// --version prints "NAME VERSION" and needs no settings.
func TestVersion(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			r := run(t, ex, nil, "--version")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, ex.name+" 1.0.0\n", r.stdout)
		})
	}
}

// A bad flag, an unknown log level, and a bad variable stop the program
// with status 1 and one log line naming the flag or the variable.
func TestBadCommandLine(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			stopped(t, ex, run(t, ex, nil, "--nope"), "flag provided but not defined: -nope (see --help)")
			stopped(t, ex, run(t, ex, nil, "--log-level", "loud"), `--log-level "loud": want debug, info, warn or error`)
			if ex.settings {
				r := run(t, ex, []string{"MEDIATOR_LOG_LEVEL=loud"}, "--config", "config.yaml")
				stopped(t, ex, r, "MEDIATOR_LOG_LEVEL")
				assert.NotContains(t, r.stderr, "resume", "nothing to resume after a settings error")
			}
			if ex.name != "passthrough" && ex.settings { // the programs with a mapping
				env := append([]string{"MEDIATOR_MAPPING_FILE=/nonexistent/mapping.yaml", "MEDIATOR_OPENHIM_URL=",
					"MEDIATOR_LISTEN=" + freeAddr(t)}, ex.env...)
				stopped(t, ex, run(t, ex, env, "--config", "config.yaml"), "mapping_file (MEDIATOR_MAPPING_FILE)")
			}
			if ex.mediator { // serving with the example's config.yaml alone
				env := []string{"MEDIATOR_OPENHIM_URL=", "MEDIATOR_CHT_URL=https://cht.example.org", "MEDIATOR_FHIR_URL=http://fhir.example.org",
					"MEDIATOR_UPSTREAM_URL=http://upstream.example.org", "MEDIATOR_PARENT_PLACE=hc-1", "MEDIATOR_LISTEN=" + freeAddr(t)}
				stopped(t, ex, run(t, ex, env, "--config", "config.yaml"), "set auth.disabled (MEDIATOR_AUTH_DISABLED) to true")
			}
		})
	}
}

// --print-openhim-config prints the registration with the example's own
// config.yaml and without the URLs of CHT or the FHIR server (emptied here).
func TestPrintOpenHIMConfig(t *testing.T) {
	for _, ex := range examples {
		if !ex.mediator {
			continue
		}
		t.Run(ex.name, func(t *testing.T) {
			r := run(t, ex, []string{"MEDIATOR_CHT_URL=", "MEDIATOR_FHIR_URL=", "MEDIATOR_UPSTREAM_URL="},
				"--config", "config.yaml", "--print-openhim-config")
			require.Equal(t, 0, r.code, r.stderr)
			var doc struct {
				Mediators []struct{ URN string }
				Channels  []struct{ Name string }
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
			require.Len(t, doc.Mediators, 1)
			assert.Equal(t, "urn:mediator:"+ex.name, doc.Mediators[0].URN)
			assert.NotEmpty(t, doc.Channels)
		})
	}
}

// --print-cht-outbound prints CHT's outbound block where CHT pushes to the
// example, says why not where it does not, and is unknown elsewhere.
func TestPrintCHTOutbound(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			r := run(t, ex, []string{"MEDIATOR_CHT_URL=", "MEDIATOR_FHIR_URL="}, "--print-cht-outbound")
			switch ex.outbound {
			case "prints":
				require.Equal(t, 0, r.code, r.stderr)
				assert.Contains(t, r.stdout, `"outbound"`)
			case "refuses":
				stopped(t, ex, r, "receives from the EMR")
				assert.Empty(t, r.stdout)
			default:
				stopped(t, ex, r, "flag provided but not defined: -print-cht-outbound")
			}
		})
	}
}

// At start the program logs its effective configuration: the file's values,
// an empty variable clearing one of them, secrets redacted.
func TestStartupLine(t *testing.T) {
	for _, ex := range examples {
		if !ex.settings {
			continue
		}
		t.Run(ex.name, func(t *testing.T) {
			env := append([]string{"MEDIATOR_LISTEN=" + freeAddr(t), "MEDIATOR_OPENHIM_URL=",
				"MEDIATOR_OPENHIM_PASSWORD=s3cret-pw", "MEDIATOR_CHT_PASSWORD=s3cret-pw", "MEDIATOR_CHT_USERNAME=writer",
				"MEDIATOR_" + strings.ToUpper(strings.ReplaceAll(ex.emptied, ".", "_")) + "="}, ex.env...)
			cmd := command(t, ex, env, "--config", "config.yaml")
			stderr, err := cmd.StderrPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			lines := make(chan string)
			go func() {
				sc := bufio.NewScanner(stderr)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
				_, _ = io.Copy(io.Discard, stderr)
			}()
			var start string
			deadline := time.After(30 * time.Second)
			for start == "" {
				select {
				case l, ok := <-lines:
					require.True(t, ok, "no start-up line")
					if strings.Contains(l, `"msg":"`+ex.name+` starting"`) {
						start = l
					}
				case <-deadline:
					t.Fatal("no start-up line in 30 s")
				}
			}
			var line struct {
				Version string
				Config  map[string]string
			}
			require.NoError(t, json.Unmarshal([]byte(start), &line), start)
			assert.Equal(t, "1.0.0", line.Version)
			assert.Equal(t, "", line.Config[ex.emptied], "an empty variable clears the file's %s", ex.emptied)
			assert.Contains(t, line.Config, "log_level")
			if _, ok := line.Config["cht.url"]; ok {
				assert.Equal(t, "https://cht.example.org", line.Config["cht.url"], "from config.yaml")
			}
			assert.NotContains(t, start, "s3cret-pw")
			assert.Contains(t, start, "REDACTED")
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// docCommands returns the command lines of the package comment of the
// example's main.go that run the program by its name ("VAR=value NAME
// [args]", after any "export VAR=value" lines): the environment each sets,
// with the exports before it, and its arguments, optional ones ("[...]")
// included.
func docCommands(t *testing.T, ex example) (envs, args [][]string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(ex.name, "main.go"), nil, parser.ParseComments|parser.PackageClauseOnly)
	require.NoError(t, err)
	require.NotNil(t, f.Doc, "%s/main.go has no package comment", ex.name)
	var exported []string
	for _, l := range strings.Split(f.Doc.Text(), "\n") {
		if !strings.HasPrefix(l, "\t") {
			continue
		}
		l, _, _ = strings.Cut(l, "#")
		fields := strings.Fields(strings.NewReplacer("[", "", "]", "").Replace(l))
		if len(fields) > 0 && fields[0] == "export" {
			exported = append(exported, fields[1:]...)
			continue
		}
		var env []string
		for len(fields) > 0 && strings.Contains(fields[0], "=") {
			env, fields = append(env, fields[0]), fields[1:]
		}
		if len(fields) > 0 && fields[0] == ex.name {
			envs = append(envs, append(slices.Clone(exported), env...))
			args = append(args, fields[1:])
		}
	}
	return envs, args
}

// The command line that an example's package comment shows starts the
// mediator, as written: it sets every variable the mediator needs.
func TestDocCommandsStart(t *testing.T) {
	n := 0
	for _, ex := range examples {
		envs, args := docCommands(t, ex)
		for i := range envs {
			n++
			t.Run(ex.name+"/"+strings.Join(append(slices.Clone(envs[i]), args[i]...), " "), func(t *testing.T) {
				env := append([]string{"MEDIATOR_LISTEN=" + freeAddr(t)}, envs[i]...)
				cmd := command(t, ex, env, args[i]...)
				stderr := new(syncBuffer)
				cmd.Stderr = stderr
				require.NoError(t, cmd.Start())
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				t.Cleanup(func() {
					if cmd.ProcessState == nil {
						_ = cmd.Process.Kill()
						<-done
					}
				})
				deadline := time.Now().Add(30 * time.Second)
				for !strings.Contains(stderr.String(), `"msg":"mediator: serving"`) {
					select {
					case err := <-done:
						t.Fatalf("stopped (%v) before serving:\n%s", err, stderr.String())
					case <-time.After(50 * time.Millisecond):
					}
					if time.Now().After(deadline) {
						t.Fatalf("not serving after 30 s:\n%s", stderr.String())
					}
				}
			})
		}
	}
	if n == 0 {
		t.Error("no example's package comment shows a command line: the test checks nothing")
	}
}

// syncBuffer is a bytes.Buffer that a command writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A relative path in the settings file (mapping_file here) is taken from the
// directory the program runs in, not from the file's: the mapping beside a
// config.yaml given as --config elsewhere is not found.
func TestRelativePathsFromWorkingDirectory(t *testing.T) {
	ex := examples[0] // cht-to-fhir
	mapping, err := os.ReadFile("../fhir/default_mapping.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "my-mapping.yaml"), mapping, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("mapping_file: my-mapping.yaml\n"), 0o600))
	env := append([]string{"MEDIATOR_CHT_URL=https://cht.example.org", "MEDIATOR_FHIR_URL=http://fhir.example.org",
		"MEDIATOR_LISTEN=" + freeAddr(t)}, ex.env...)
	r := run(t, ex, env, "--config", filepath.Join(dir, "config.yaml"))
	stopped(t, ex, r, "mapping_file (MEDIATOR_MAPPING_FILE)")
	assert.Contains(t, r.stderr, "open my-mapping.yaml: ")
}
