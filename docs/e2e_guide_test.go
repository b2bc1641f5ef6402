//go:build unix

package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// guideDocs are the pages whose `<!-- shell: run -->` blocks TestE2EGuide
// runs, in this order, as one reader would: each page's blocks in order, the
// shell's variables, functions and working directory kept from block to
// block. The other pages start in the clone.
var guideDocs = []string{"docs/getting-started.md", "docs/openhim-channels.md", "docs/cht-outbound.md"}

// runArg marks a shell block that TestE2EGuide runs: <!-- shell: run -->.
const runArg = "run"

// guideVars are the only variables whose values the run replaces: those
// that name the reader's systems and their passwords. The guide sets each
// of them on an `export NAME=value` line of a run block; the run replaces
// the value of that line and nothing else.
var guideVars = []string{
	"MEDIATOR_CHT_URL", "MEDIATOR_CHT_PASSWORD", "MEDIATOR_FHIR_URL",
	"MEDIATOR_OPENHIM_URL", "MEDIATOR_OPENHIM_USERNAME", "MEDIATOR_OPENHIM_PASSWORD",
	"MEDIATOR_OPENHIM_CORE_VERSION", "MEDIATOR_OPENHIM_INSECURE_SKIP_VERIFY",
	"MEDIATOR_PUBLIC_HOST", "MEDIATOR_ROUTER_URL", "CHT_ADMIN_PASSWORD", "MEDIATOR_AUTH_USERNAME", "MEDIATOR_AUTH_PASSWORD",
}

// guidePort is the mediator's port in the guide (listen in the example's
// config.yaml).
const guidePort = 8601

var exportRE = regexp.MustCompile(`^(\s*)export\s+([A-Za-z_][A-Za-z0-9_]*)=`)

// substitute returns the block's lines with the value of every `export NAME=`
// line whose NAME is in vals replaced (the rest of such a line, a comment
// included, is dropped), and records the names it replaced in used.
// The identity of examples/cht-to-fhir that the guide sets up in core (its
// main.go: clientID, clientRole and the channel of definition).
const (
	guideClientID    = "cht-outbound"
	guideClientRole  = "cht"
	guideChannelName = "CHT to FHIR"
	guideRouteUser   = "openhim-route" // what the channel's route sends to the mediator
	// guideRoutePassword is fixed: a channel left by an earlier run on a
	// long-lived core keeps the password it was installed with.
	guideRoutePassword = "guide-route-secret"
)

func substitute(lines []string, vals map[string]string, used map[string]bool) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l
		m := exportRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if v, ok := vals[m[2]]; ok {
			out[i] = m[1] + "export " + m[2] + "=" + shellQuote(v)
			used[m[2]] = true
		}
	}
	return out
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// runBlocks returns the run blocks of the guide pages, in order.
func runBlocks(t *testing.T, root string) [][]block {
	t.Helper()
	var pages [][]block
	for _, doc := range guideDocs {
		src, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		blocks, probs := parseBlocks(doc, src)
		if len(probs) > 0 {
			t.Fatalf("%s: %v", doc, probs)
		}
		var run []block
		for _, b := range blocks {
			if b.annot == "shell" && b.arg == runArg {
				run = append(run, b)
			}
		}
		pages = append(pages, run)
	}
	return pages
}

// TestGuideRunBlocks checks, without the real components, what TestE2EGuide
// relies on: every page has run blocks, every variable the run replaces is
// set by an export line of a run block, and a run block does not set a
// variable of the real components' environment that the run would not
// replace.
func TestGuideRunBlocks(t *testing.T) {
	root := repoRoot(t)
	vals := map[string]string{}
	for _, v := range guideVars {
		vals[v] = "x"
	}
	used := map[string]bool{}
	for i, page := range runBlocks(t, root) {
		if len(page) == 0 {
			t.Errorf("%s has no <!-- shell: run --> block", guideDocs[i])
		}
		for _, b := range page {
			for _, l := range b.lines {
				if m := exportRE.FindStringSubmatch(l); m != nil && strings.HasPrefix(m[2], "MEDIATOR_") && !slices.Contains(guideVars, m[2]) {
					t.Errorf("%s:%d: export %s: a MEDIATOR_ variable CI would not set to its own value; add it to guideVars or set it inline", b.doc, b.line, m[2])
				}
			}
			substitute(b.lines, vals, used)
		}
	}
	for _, v := range guideVars {
		if !used[v] {
			t.Errorf("no run block sets %s with an export line, so CI would run the guide with the value of the reader's environment", v)
		}
	}
}

func TestSubstitute(t *testing.T) {
	used := map[string]bool{}
	got := substitute([]string{
		"export MEDIATOR_CHT_URL=https://cht.example.org   # your CHT",
		"  export CHT_ADMIN_PASSWORD='...'",
		"export OTHER=1",
		"MEDIATOR_CHT_URL=inline go run .",
	}, map[string]string{"MEDIATOR_CHT_URL": "http://127.0.0.1:1", "CHT_ADMIN_PASSWORD": "it's"}, used)
	want := []string{
		"export MEDIATOR_CHT_URL='http://127.0.0.1:1'",
		`  export CHT_ADMIN_PASSWORD='it'\''s'`,
		"export OTHER=1",
		"MEDIATOR_CHT_URL=inline go run .",
	}
	if !slices.Equal(got, want) {
		t.Errorf("substitute:\n got %q\nwant %q", got, want)
	}
	if !used["MEDIATOR_CHT_URL"] || !used["CHT_ADMIN_PASSWORD"] || len(used) != 2 {
		t.Errorf("used = %v", used)
	}
}

// TestE2EGuide runs the command blocks of the guides marked
// <!-- shell: run --> against the real OpenHIM core and FHIR server (the
// e2e variables), with a fake CHT, and checks what the guide promises: the
// OpenHIM client exists, the credential is in CHT's store, the test push
// reached the FHIR server through core's router as a successful
// transaction, and the backfill wrote the CHT documents.
func TestE2EGuide(t *testing.T) {
	e2e := map[string]string{}
	for _, v := range []string{"OPENHIM_API_URL", "OPENHIM_ROUTER_URL", "OPENHIM_USERNAME", "OPENHIM_PASSWORD", "FHIR_BASE_URL"} {
		e2e[v] = os.Getenv(v)
		if e2e[v] == "" {
			t.Skipf("%s not set: the e2e tests need the real components (.ci/stack.sh)", v)
		}
	}
	coreVersion := os.Getenv("OPENHIM_CORE_VERSION")
	if coreVersion == "" {
		coreVersion = "4"
	}
	root := repoRoot(t)
	if l, err := net.Listen("tcp", fmt.Sprintf(":%d", guidePort)); err != nil {
		t.Fatalf("the guide's mediator listens on :%d, which is in use: %v", guidePort, err)
	} else {
		l.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	core, err := openhim.NewClient(openhim.Config{URL: e2e["OPENHIM_API_URL"], Username: e2e["OPENHIM_USERNAME"],
		Password: e2e["OPENHIM_PASSWORD"], Auth: "token", InsecureSkipVerify: true, CoreVersion: mustAtoi(t, coreVersion)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A client left by an interrupted run on a long-lived core would make
	// the guide's POST /clients fail; CI's core is fresh.
	deleteClient(ctx, t, core, guideClientID)
	t.Cleanup(func() { deleteClient(context.Background(), t, core, guideClientID) })

	const chtAdminPassword, chtUserPassword = "cht-admin-secret", "cht-openhim-secret"
	chtCfg := chttest.DemoConfig()
	chtCfg.Users = []chttest.User{
		{Name: "admin", Password: chtAdminPassword, Roles: []string{"_admin"}},
		{Name: "openhim", Password: chtUserPassword, Roles: []string{"admin"}},
	}
	cht := chttest.NewDemoServer(chtCfg)
	t.Cleanup(cht.Close)

	vals := map[string]string{
		"MEDIATOR_CHT_URL":                      cht.URL,
		"MEDIATOR_CHT_PASSWORD":                 chtUserPassword,
		"MEDIATOR_FHIR_URL":                     e2e["FHIR_BASE_URL"],
		"MEDIATOR_OPENHIM_URL":                  e2e["OPENHIM_API_URL"],
		"MEDIATOR_OPENHIM_USERNAME":             e2e["OPENHIM_USERNAME"],
		"MEDIATOR_OPENHIM_PASSWORD":             e2e["OPENHIM_PASSWORD"],
		"MEDIATOR_OPENHIM_CORE_VERSION":         coreVersion,
		"MEDIATOR_OPENHIM_INSECURE_SKIP_VERIFY": "true", // core's default certificate has no SAN
		"MEDIATOR_PUBLIC_HOST":                  "127.0.0.1",
		"MEDIATOR_ROUTER_URL":                   e2e["OPENHIM_ROUTER_URL"],
		"CHT_ADMIN_PASSWORD":                    chtAdminPassword,
		"MEDIATOR_AUTH_USERNAME":                guideRouteUser,
		"MEDIATOR_AUTH_PASSWORD":                guideRoutePassword,
	}

	// The reader's directory: the clone (a copy of the work tree) and, after
	// step 2, my-mediator next to it.
	work := t.TempDir()
	clone := filepath.Join(work, "openhim-mediator-go")
	copyWorkTree(t, root, clone)
	sh := newSession(t, work, clone)
	t.Cleanup(func() {
		sh.stop()
		if t.Failed() {
			sh.dumpLog(t, filepath.Join(work, "my-mediator", "mediator.log"))
		}
	})

	used := map[string]bool{}
	for i, page := range runBlocks(t, root) {
		sh.cwd = clone
		for _, b := range page {
			if !sh.run(ctx, b, substitute(b.lines, vals, used)) {
				t.FailNow()
			}
		}
		if i == 0 {
			checkGuideResults(ctx, t, sh, core, cht, e2e["FHIR_BASE_URL"])
		}
	}
	for _, v := range guideVars {
		if !used[v] {
			t.Errorf("no run block set %s", v)
		}
	}
}

// checkGuideResults checks the state the getting-started guide leaves.
func checkGuideResults(ctx context.Context, t *testing.T, sh *session, core *openhim.Client, cht *chttest.Server, fhirURL string) {
	t.Helper()
	clientPassword := sh.env["CLIENT_PASSWORD"]
	if clientPassword == "" {
		t.Error("the guide left CLIENT_PASSWORD empty")
	}
	if got, ok := cht.Credential("openhim_cht_to_fhir"); !ok || got != clientPassword {
		t.Errorf("CHT credential openhim_cht_to_fhir = %q, %v; want the OpenHIM client's password", got, ok)
	}

	var clients []struct {
		ID       string   `json:"_id"`
		ClientID string   `json:"clientID"`
		Roles    []string `json:"roles"`
	}
	if err := core.Do(ctx, http.MethodGet, "/clients", nil, &clients); err != nil {
		t.Fatal(err)
	}
	clientDBID := ""
	for _, c := range clients {
		if c.ClientID == guideClientID {
			clientDBID = c.ID
			if !slices.Contains(c.Roles, guideClientRole) {
				t.Errorf("client %s roles = %v, want %q", c.ClientID, c.Roles, guideClientRole)
			}
		}
	}
	if clientDBID == "" {
		t.Errorf("core has no client %q after the guide", guideClientID)
	}

	// The test push of step 8: a Patient identified by this run's CHT.
	for _, id := range []string{"p-123", chttest.DemoPatientID, chttest.DemoMotherID} {
		if n := fhirCount(ctx, t, fhirURL, "Patient?identifier="+url.QueryEscape(cht.URL+"/medic|"+id)); n != 1 {
			t.Errorf("FHIR Patients for CHT person %s of this run: %d, want 1 (p-123 by the push of step 8, the others by the backfill of step 10)", id, n)
		}
	}

	// The transaction of the push: on the guide's channel, from the guide's
	// client, successful, with the mediator's FHIR orchestration.
	var channels []struct {
		ID     string `json:"_id"`
		Name   string `json:"name"`
		Routes []struct {
			Username string `json:"username"`
		} `json:"routes"`
	}
	if err := core.Do(ctx, http.MethodGet, "/channels", nil, &channels); err != nil {
		t.Fatal(err)
	}
	channelID := ""
	for _, c := range channels {
		if c.Name == guideChannelName {
			channelID = c.ID
			// The mediator asks for credentials; the route it installed
			// sends them.
			if len(c.Routes) != 1 || c.Routes[0].Username != guideRouteUser {
				t.Errorf("channel %q routes = %+v, want one that sends the user %q", guideChannelName, c.Routes, guideRouteUser)
			}
		}
	}
	if channelID == "" {
		t.Fatalf("core has no channel %q after the guide", guideChannelName)
	}
	var txs []struct {
		ClientID       string `json:"clientID"`
		Status         string `json:"status"`
		Orchestrations []struct {
			Name string `json:"name"`
		} `json:"orchestrations"`
		Request struct {
			Path string `json:"path"`
		} `json:"request"`
	}
	filters, _ := json.Marshal(map[string]string{"channelID": channelID})
	// Core may answer before it stores the response and orchestrations
	// (src/middleware/messageStore.js, koaMiddleware, does not await
	// storeResponse), so look again for a while before failing.
	found := false
	for deadline := time.Now().Add(30 * time.Second); !found && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if err := core.Do(ctx, http.MethodGet, "/transactions?filterLimit=20&filterRepresentation=full&filters="+url.QueryEscape(string(filters)), nil, &txs); err != nil {
			t.Fatal(err)
		}
		for _, tx := range txs {
			if tx.ClientID == clientDBID && tx.Status == "Successful" && tx.Request.Path == push.OutboundPath &&
				slices.ContainsFunc(tx.Orchestrations, func(o struct {
					Name string `json:"name"`
				}) bool {
					return o.Name == "FHIR transaction"
				}) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no Successful transaction from client %s with a FHIR transaction orchestration on channel %q among %d: %+v",
			guideClientID, guideChannelName, len(txs), txs)
	}
}

func fhirCount(ctx context.Context, t *testing.T, base, query string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.NewDecoder(res.Body).Decode(&b); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", query, res.Status, err)
	}
	return len(b.Entry)
}

// deleteClient removes the OpenHIM client with this client ID, if any.
func deleteClient(ctx context.Context, t *testing.T, core *openhim.Client, clientID string) {
	var clients []struct {
		ID       string `json:"_id"`
		ClientID string `json:"clientID"`
	}
	if err := core.Do(ctx, http.MethodGet, "/clients", nil, &clients); err != nil {
		t.Errorf("listing core's clients: %v", err)
		return
	}
	for _, c := range clients {
		if c.ClientID == clientID {
			if err := core.Do(ctx, http.MethodDelete, "/clients/"+c.ID, nil, nil); err != nil {
				t.Errorf("deleting client %s: %v", clientID, err)
			}
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("OPENHIM_CORE_VERSION=%q: %v", s, err)
	}
	return n
}

// copyWorkTree copies the files git knows (tracked, and untracked but not
// ignored) of root to dst: the reader's clone, in which the guide may write.
func copyWorkTree(t *testing.T, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// session is the reader's shell: one bash per block, the variables,
// functions and working directory carried from one block to the next.
type session struct {
	t     *testing.T
	state string // directory of the saved shell state
	cwd   string
	base  []string          // environment of every block
	env   map[string]string // exported variables after the last block
	pgids []int             // process groups of the blocks (background jobs included)
}

func newSession(t *testing.T, work, cwd string) *session {
	state := filepath.Join(work, ".shell-state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &session{t: t, state: state, cwd: cwd}
	// The reader's environment: none of the CI variables, the go that runs
	// this test first in PATH.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "MEDIATOR_") || strings.HasPrefix(name, "OPENHIM_") || strings.HasPrefix(name, "CHT_") ||
			name == "FHIR_BASE_URL" || name == "PATH" {
			continue
		}
		s.base = append(s.base, kv)
	}
	s.base = append(s.base, "PATH="+filepath.Dir(goTool())+string(os.PathListSeparator)+os.Getenv("PATH"))
	return s
}

// run runs one block with `set -euo pipefail` and reports whether it
// succeeded; on failure it logs the block and its output.
func (s *session) run(ctx context.Context, b block, lines []string) bool {
	s.t.Helper()
	envFile := filepath.Join(s.state, "env.sh")
	script := fmt.Sprintf(`set -a
if [ -f %[1]s ]; then . %[1]s; fi
cd %[2]s
set -euo pipefail
%[3]s
{ export -p | grep -v '^declare -[a-zA-Z]*r'; declare -f; } > %[1]s.new
pwd > %[4]s
mv %[1]s.new %[1]s
env -0 > %[5]s
`, shellQuote(envFile), shellQuote(s.cwd), strings.Join(lines, "\n"),
		shellQuote(filepath.Join(s.state, "cwd")), shellQuote(filepath.Join(s.state, "env0")))
	out, err := os.CreateTemp(s.state, "out-")
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = s.base
	// A file, not a pipe: a background job keeps it open after the block.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	err = cmd.Start()
	if err == nil {
		s.pgids = append(s.pgids, cmd.Process.Pid)
		err = cmd.Wait()
	}
	output, _ := os.ReadFile(out.Name())
	if err != nil {
		s.t.Errorf("%s:%d: the block failed (%v) after %s:\n%s\n--- output ---\n%s", b.doc, b.line, err,
			time.Since(start).Round(time.Millisecond), strings.Join(lines, "\n"), tail(output, 60))
		return false
	}
	s.t.Logf("%s:%d: ok in %s", b.doc, b.line, time.Since(start).Round(time.Millisecond))
	cwd, err := os.ReadFile(filepath.Join(s.state, "cwd"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.cwd = strings.TrimSpace(string(cwd))
	env0, err := os.ReadFile(filepath.Join(s.state, "env0"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.env = map[string]string{}
	for _, kv := range bytes.Split(env0, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			s.env[k] = v
		}
	}
	return true
}

// stop ends what the blocks left running (the mediator started in the
// background): TERM to each block's process group, KILL after 10 s.
func (s *session) stop() {
	for _, g := range s.pgids {
		_ = syscall.Kill(-g, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, g := range s.pgids {
		for syscall.Kill(-g, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
}

func (s *session) dumpLog(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	t.Logf("--- last lines of %s ---\n%s", filepath.Base(path), tail(b, 40))
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
