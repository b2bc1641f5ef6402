// Package docs_test checks the code blocks of the guides in docs/ and of
// README.md: every block is either compiled by this test or copied from a file
// that a test compiles or loads, so the documentation cannot drift from the
// code.
//
// A block's annotation is an HTML comment on the line right before its opening
// fence:
//
//	<!-- from: examples/cht-to-fhir/main.go -->  the block is copied from the file
//	<!-- compile -->                             a complete Go file, built in the module
//	<!-- output: go run ./examples/X --flag -->  the block is (part of) the command's output
//	<!-- shell -->                               commands the reader runs
//
// The rules per block language are in rulesHelp.
package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// rulesHelp is appended to failure reports.
const rulesHelp = `rules (docs/docs_test.go):
  - every fence names its language; ` + "```text" + ` and ` + "```mermaid" + ` need no annotation
  - go: <!-- from: path/file.go --> (lines copied, in order; "// ..." skips ahead; the package has tests)
        or <!-- compile --> (a complete Go file, built inside the module)
  - yaml/json: <!-- from: path -->, <!-- output: go run ./examples/X --flag -->, or valid without annotation
  - sh/bash/shell/console: <!-- shell --> (go run/test/build/vet paths must exist; go run flags must be defined)`

// compileDir is where compile blocks are placed in the module, through a
// go build overlay: nothing is written into the work tree.
const compileDir = "docs/zz_doccompile"

// block is one fenced code block.
type block struct {
	doc   string // path relative to the repository root
	line  int    // line of the opening fence (1-based)
	lang  string
	annot string // "from", "compile", "output", "shell" or ""
	arg   string // the annotation's argument
	lines []string
}

// problem is one rule violation.
type problem struct {
	doc    string
	line   int
	reason string
}

func (p problem) String() string { return fmt.Sprintf("%s:%d: %s", p.doc, p.line, p.reason) }

var (
	// fenceRE matches an opening fence at any indentation (fences in list
	// items are indented), so that no block escapes the checks.
	fenceRE = regexp.MustCompile("^( *)(`{3,}|~{3,})(.*)$")
	annotRE = regexp.MustCompile(`^<!--\s*(from|compile|output|shell)\s*(?::\s*(.*?))?\s*-->$`)
)

// parseBlocks returns the fenced code blocks of a Markdown document, and
// problems for unterminated fences.
func parseBlocks(doc string, src []byte) ([]block, []problem) {
	lines := strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")
	var blocks []block
	var probs []problem
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent, fence, info := len(m[1]), m[2], strings.TrimSpace(m[3])
		if fence[0] == '`' && strings.Contains(info, "`") {
			continue // inline code, not a fence
		}
		b := block{doc: doc, line: i + 1}
		if f := strings.Fields(info); len(f) > 0 {
			b.lang = strings.ToLower(f[0])
		}
		if i > 0 {
			if a := annotRE.FindStringSubmatch(strings.TrimSpace(lines[i-1])); a != nil {
				b.annot, b.arg = a[1], strings.TrimSpace(a[2])
			}
		}
		closed := false
		for i++; i < len(lines); i++ {
			t := strings.TrimLeft(lines[i], " ")
			if strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]+" \t") == "" {
				closed = true
				break
			}
			l := lines[i]
			for k := 0; k < indent && strings.HasPrefix(l, " "); k++ {
				l = l[1:]
			}
			b.lines = append(b.lines, l)
		}
		if !closed {
			probs = append(probs, problem{doc, b.line, "code fence is never closed"})
		}
		blocks = append(blocks, b)
	}
	return blocks, probs
}

// checker checks blocks against the repository at root.
type checker struct {
	root string
	// output runs an output annotation's command and returns its stdout;
	// nil runs "go run" for real.
	output func(cmd string) (string, error)

	goOnce   sync.Once
	goFiles  map[string]string // path (slash, relative) -> source of every .go file
	tested   map[string]bool   // directories holding a _test.go file
	walkErr  error
	outCache map[string]outResult
	compile  []block
}

type outResult struct {
	out string
	err error
}

func newChecker(root string) *checker {
	return &checker{root: root, outCache: map[string]outResult{}}
}

func (c *checker) loadGoFiles() {
	c.goOnce.Do(func() {
		c.goFiles, c.tested = map[string]string{}, map[string]bool{}
		c.walkErr = filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); p != c.root && (strings.HasPrefix(n, ".") || n == "vendor" || n == "node_modules") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") {
				return nil
			}
			rel, err := filepath.Rel(c.root, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			c.goFiles[rel] = string(src)
			if strings.HasSuffix(rel, "_test.go") {
				c.tested[pathDir(rel)] = true
			}
			return nil
		})
	})
}

func pathDir(rel string) string {
	if i := strings.LastIndex(rel, "/"); i >= 0 {
		return rel[:i]
	}
	return "."
}

// check returns the problems of b. Compile blocks are queued for
// compileQueued.
func (c *checker) check(b block) []problem {
	at := func(format string, args ...any) []problem {
		return []problem{{b.doc, b.line, fmt.Sprintf(format, args...)}}
	}
	if b.lang == "" {
		return at("code block without a language: name it (```go, ```yaml, ```sh; ```text for plain text)")
	}
	switch b.annot {
	case "from":
		if b.arg == "" {
			return at("from: annotation without a file")
		}
		return c.checkFrom(b)
	case "output":
		return c.checkOutput(b)
	case "compile":
		if b.lang != "go" {
			return at("<!-- compile --> is for go blocks, not %q", b.lang)
		}
		return c.queueCompile(b)
	case "shell":
		if !isShell(b.lang) {
			return at("<!-- shell --> is for sh/bash/shell/console blocks, not %q", b.lang)
		}
		return c.checkShell(b)
	}
	switch {
	case b.lang == "text" || b.lang == "mermaid":
		return nil
	case b.lang == "go":
		return at("go block without <!-- from: file.go --> or <!-- compile -->")
	case isShell(b.lang):
		return at("%s block without <!-- shell --> or <!-- from: file -->", b.lang)
	case b.lang == "json":
		var v any
		if err := json.Unmarshal([]byte(strings.Join(b.lines, "\n")), &v); err != nil {
			return at("json block is not valid JSON (%v): fix it or annotate <!-- from: file -->", err)
		}
		return nil
	case b.lang == "yaml" || b.lang == "yml":
		var v any
		if err := yaml.Unmarshal([]byte(strings.Join(b.lines, "\n")), &v); err != nil {
			return at("yaml block is not valid YAML (%v): fix it or annotate <!-- from: file -->", err)
		}
		return nil
	}
	return at("%s block without <!-- from: file --> or <!-- output: command -->", b.lang)
}

func isShell(lang string) bool {
	switch lang {
	case "sh", "bash", "shell", "console", "zsh":
		return true
	}
	return false
}

// checkFrom checks that the block is copied from its file, and that a test
// compiles or loads that file.
func (c *checker) checkFrom(b block) []problem {
	at := func(format string, args ...any) []problem {
		return []problem{{b.doc, b.line, fmt.Sprintf(format, args...)}}
	}
	rel := filepath.ToSlash(filepath.Clean(b.arg))
	if filepath.IsAbs(b.arg) || strings.HasPrefix(rel, "../") {
		return at("from: %s must be a path relative to the repository root", b.arg)
	}
	src, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(rel)))
	if err != nil {
		return at("from: %s: file not found", rel)
	}
	c.loadGoFiles()
	if c.walkErr != nil {
		return at("listing Go files: %v", c.walkErr)
	}
	if b.lang == "go" {
		if !strings.HasSuffix(rel, ".go") {
			return at("go block from %s: the source must be a .go file", rel)
		}
		if !c.tested[pathDir(rel)] {
			return at("go block from %s: package %s has no tests, so nothing compiles the file in CI", rel, pathDir(rel))
		}
	} else if !c.referencedByTestedPackage(rel) {
		return at("%s block from %s: no Go file of a tested package names %q, so no test loads it", b.lang, rel, filepath.Base(rel))
	}
	if line, reason := matchLines(b.lines, string(src)); reason != "" {
		return []problem{{b.doc, b.line + line, fmt.Sprintf("not copied from %s: %s", rel, reason)}}
	}
	return nil
}

// referencedByTestedPackage reports whether the base name of rel appears in a
// .go file of a directory that has tests, at or above rel's directory or in a
// test file anywhere (go:embed, LoadMapping("testdata/x.yaml"), run with
// --config config.yaml...).
func (c *checker) referencedByTestedPackage(rel string) bool {
	base := filepath.Base(rel)
	dir := pathDir(rel)
	for p, src := range c.goFiles {
		if !strings.Contains(src, base) {
			continue
		}
		pd := pathDir(p)
		if strings.HasSuffix(p, "_test.go") && (strings.Contains(src, rel) || dir == pd || strings.HasPrefix(dir, pd+"/")) {
			return true
		}
		if c.tested[pd] && (dir == pd || strings.HasPrefix(dir, pd+"/")) {
			return true
		}
	}
	return false
}

// normalize collapses white space and drops a trailing comma (so that a
// JSON member or composite literal element may be shown as the last one).
func normalize(s string) string {
	return strings.TrimSuffix(strings.Join(strings.Fields(s), " "), ",")
}

// isElision reports whether a block line stands for omitted lines.
func isElision(l string) bool {
	switch normalize(l) {
	case "...", "…", "// ...", "# ...", "// …", "# …":
		return true
	}
	return false
}

// matchLines checks that the non-blank lines of block appear in src in order:
// each run of lines between elision lines ("// ...") contiguously, ignoring
// blank lines and white space. It returns the offending block line (1-based,
// relative to the fence) and the reason, or "" when the block matches.
func matchLines(blockLines []string, src string) (int, string) {
	var file []string
	for _, l := range strings.Split(src, "\n") {
		if n := normalize(l); n != "" {
			file = append(file, n)
		}
	}
	type bl struct {
		text string
		line int
	}
	var chunks [][]bl
	var cur []bl
	for i, l := range blockLines {
		n := normalize(l)
		switch {
		case n == "":
		case isElision(l):
			if len(cur) > 0 {
				chunks = append(chunks, cur)
			}
			cur = nil
		default:
			cur = append(cur, bl{n, i + 1})
		}
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	if len(chunks) == 0 {
		return 0, "the block is empty"
	}
	pos := 0
	for _, ch := range chunks {
		found, bestLen := -1, -1
		for start := pos; start < len(file); start++ {
			k := 0
			for k < len(ch) && start+k < len(file) && file[start+k] == ch[k].text {
				k++
			}
			if k == len(ch) {
				found = start
				break
			}
			bestLen = max(bestLen, k)
		}
		if found < 0 {
			l := ch[0]
			if bestLen > 0 {
				l = ch[bestLen]
			}
			return l.line, fmt.Sprintf("line %q is not in the file (at this place, after the lines before it)", l.text)
		}
		pos = found + len(ch)
	}
	return 0, ""
}

// checkShell checks the go commands of a shell block: their package paths
// exist and flags given to go run ./examples/X are defined by the example.
func (c *checker) checkShell(b block) []problem {
	var probs []problem
	for _, cl := range shellCommands(b.lines) {
		toks := strings.Fields(cl.text)
		for i := 0; i+1 < len(toks); i++ {
			if toks[i] == "cd" {
				return probs // relative paths no longer start at the repository root
			}
			if toks[i] != "go" || !slices.Contains([]string{"run", "build", "test", "vet", "install", "generate"}, toks[i+1]) {
				continue
			}
			sub := toks[i+1]
			var runDir string
			for j := i + 2; j < len(toks); j++ {
				t := toks[j]
				if isShellOperator(t) {
					break
				}
				if strings.HasPrefix(t, "./") && !strings.ContainsAny(t, "$*{") {
					p := strings.TrimSuffix(strings.TrimSuffix(t, "/..."), "/")
					if fi, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(p))); err != nil {
						probs = append(probs, problem{b.doc, b.line + cl.line, fmt.Sprintf("go %s %s: no such path in the repository", sub, t)})
					} else if fi.IsDir() && sub == "run" && runDir == "" {
						runDir = cleanRel(p)
					}
					continue
				}
				if runDir != "" && strings.HasPrefix(t, "-") {
					name := strings.TrimLeft(t, "-")
					if k := strings.IndexByte(name, '='); k >= 0 {
						name = name[:k]
					}
					if !c.definesFlag(runDir, name) {
						probs = append(probs, problem{b.doc, b.line + cl.line, fmt.Sprintf("go run %s: flag -%s is not defined by the program", runDir, name)})
					}
				}
			}
		}
	}
	return probs
}

func cleanRel(p string) string { return strings.TrimPrefix(filepath.ToSlash(p), "./") }

func isShellOperator(t string) bool {
	switch t {
	case "|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1", "&":
		return true
	}
	return false
}

// definesFlag reports whether a non-test Go file in dir defines the flag:
// it contains its quoted name, or it is a flag of the shared command line
// (settings.NewCLI: --config, --log-level, --version, --help, and
// --print-NAME for PrintOpenHIMConfig or Print("NAME", ...)).
func (c *checker) definesFlag(dir, name string) bool {
	c.loadGoFiles()
	for p, src := range c.goFiles {
		if pathDir(p) != dir || strings.HasSuffix(p, "_test.go") {
			continue
		}
		if strings.Contains(src, strconv.Quote(name)) {
			return true
		}
		if strings.Contains(src, "settings.NewCLI(") {
			printName, printing := strings.CutPrefix(name, "print-")
			switch {
			case slices.Contains([]string{"config", "log-level", "version", "help", "h"}, name),
				name == "print-openhim-config" && strings.Contains(src, ".PrintOpenHIMConfig("),
				printing && strings.Contains(src, ".Print("+strconv.Quote(printName)):
				return true
			}
		}
	}
	return false
}

type cmdLine struct {
	text string
	line int // 1-based, relative to the fence
}

// shellCommands joins backslash continuations, drops comments and a leading
// "$ " prompt.
func shellCommands(lines []string) []cmdLine {
	var out []cmdLine
	var cur strings.Builder
	start := 0
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if cur.Len() == 0 {
			start = i + 1
			if strings.HasPrefix(t, "#") {
				continue
			}
			t = strings.TrimPrefix(t, "$ ")
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		out = append(out, cmdLine{cur.String(), start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cmdLine{cur.String(), start})
	}
	return out
}

// checkOutput checks that the block appears in the output of its command.
func (c *checker) checkOutput(b block) []problem {
	at := func(format string, args ...any) []problem {
		return []problem{{b.doc, b.line, fmt.Sprintf(format, args...)}}
	}
	if _, _, _, err := parseRun(b.arg); err != nil {
		return at("output: %v", err)
	}
	r, ok := c.outCache[b.arg]
	if !ok {
		run := c.output
		if run == nil {
			run = c.goRun
		}
		out, err := run(b.arg)
		r = outResult{out, err}
		c.outCache[b.arg] = r
	}
	if r.err != nil {
		return at("output: %s: %v", b.arg, r.err)
	}
	if line, reason := matchLines(b.lines, r.out); reason != "" {
		return []problem{{b.doc, b.line + line, fmt.Sprintf("not in the output of %q: %s", b.arg, reason)}}
	}
	return nil
}

// parseRun parses "[VAR=value ...] go run ./dir [args...]".
func parseRun(cmd string) (env []string, dir string, args []string, err error) {
	toks := strings.Fields(cmd)
	for len(toks) > 0 && strings.Contains(toks[0], "=") && !strings.HasPrefix(toks[0], "-") {
		env, toks = append(env, toks[0]), toks[1:]
	}
	if len(toks) < 3 || toks[0] != "go" || toks[1] != "run" || !strings.HasPrefix(toks[2], "./") {
		return nil, "", nil, fmt.Errorf("%q: the command must be [VAR=value ...] go run ./dir [args]", cmd)
	}
	return env, toks[2], toks[3:], nil
}

// goRun builds the command's program and runs it from the repository root
// with MEDIATOR_* variables removed from the environment.
func (c *checker) goRun(cmd string) (string, error) {
	env, dir, args, err := parseRun(cmd)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(binDir(), strings.ReplaceAll(cleanRel(dir), "/", "_"))
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if _, err := os.Stat(bin); err != nil {
		build := exec.Command(goTool(), "build", "-o", bin, dir)
		build.Dir = c.root
		if out, err := build.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", dir, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, bin, args...)
	run.Dir = c.root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MEDIATOR_") {
			run.Env = append(run.Env, kv)
		}
	}
	run.Env = append(run.Env, env...)
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

var (
	binDirOnce sync.Once
	binDirPath string
)

// binDir is a temporary directory for built programs, shared by the tests of
// this process and removed by TestMain.
func binDir() string {
	binDirOnce.Do(func() {
		d, err := os.MkdirTemp("", "docs-test-bin-")
		if err != nil {
			panic(err)
		}
		binDirPath = d
	})
	return binDirPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDirPath != "" {
		os.RemoveAll(binDirPath)
	}
	os.Exit(code)
}

// goTool is the go command: $GOROOT/bin/go when go test set GOROOT (it
// does for the tests it runs), else the one in PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if runtime.GOOS == "windows" {
			p += ".exe"
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// queueCompile parses a compile block now and queues it for compileQueued.
func (c *checker) queueCompile(b block) []problem {
	src := strings.Join(b.lines, "\n") + "\n"
	if _, err := parser.ParseFile(token.NewFileSet(), "block.go", src, parser.PackageClauseOnly); err != nil {
		return []problem{{b.doc, b.line, "<!-- compile --> block must be a complete Go file starting with a package clause: " + err.Error()}}
	}
	if _, err := parser.ParseFile(token.NewFileSet(), "block.go", src, parser.AllErrors); err != nil {
		var probs []problem
		for _, l := range strings.Split(err.Error(), "\n") {
			if m := regexp.MustCompile(`^block\.go:(\d+):\d+: (.*)$`).FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				probs = append(probs, problem{b.doc, b.line + n, "does not parse: " + m[2]})
			}
		}
		if len(probs) == 0 {
			probs = append(probs, problem{b.doc, b.line, "does not parse: " + err.Error()})
		}
		return probs
	}
	c.compile = append(c.compile, b)
	return nil
}

// buildLineRE matches compiler messages about a block: the go command names the
// overlay's source file (tmp/bN.go) or its place in the module
// (zz_doccompile/bN/main.go).
var buildLineRE = regexp.MustCompile(`\bb(\d+)(?:/main)?\.go:(\d+)(?::\d+)?: (.*)$`)

// compileQueued compiles the queued compile blocks in one "go list -export"
// run, which type-checks and compiles without linking: each block is a
// package under compileDir, supplied through -overlay (go vet cannot be used:
// it changes into the package directory, which does not exist on disk).
func (c *checker) compileQueued(t *testing.T) []problem {
	if len(c.compile) == 0 {
		return nil
	}
	tmp := t.TempDir()
	replace := map[string]string{}
	var pkgs []string
	for i, b := range c.compile {
		f := filepath.Join(tmp, fmt.Sprintf("b%d.go", i))
		if err := os.WriteFile(f, []byte(strings.Join(b.lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		dir := fmt.Sprintf("%s/b%d", compileDir, i)
		replace[filepath.Join(c.root, filepath.FromSlash(dir), "main.go")] = f
		pkgs = append(pkgs, "./"+dir)
	}
	overlay, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), append([]string{"list", "-export", "-f", "{{.ImportPath}}", "-overlay", ov}, pkgs...)...)
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	var probs []problem
	for _, l := range strings.Split(string(out), "\n") {
		m := buildLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		if i < len(c.compile) {
			b := c.compile[i]
			probs = append(probs, problem{b.doc, b.line + n, "does not compile: " + m[3]})
		}
	}
	if len(probs) == 0 {
		probs = append(probs, problem{c.compile[0].doc, c.compile[0].line, fmt.Sprintf("compiling the compile blocks failed: %v\n%s", err, out)})
	}
	return probs
}

// repoRoot is the module root: the parent of this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// guides are the Markdown files whose code blocks are checked.
func guides(t *testing.T, root string) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	for _, d := range docs {
		files = append(files, "docs/"+filepath.Base(d))
	}
	return files
}

// TestCodeBlocks checks every fenced code block of docs/*.md and README.md.
func TestCodeBlocks(t *testing.T) {
	root := repoRoot(t)
	c := newChecker(root)
	var probs []problem
	total := 0
	for _, doc := range guides(t, root) {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(doc)))
		if err != nil {
			t.Fatal(err)
		}
		blocks, ps := parseBlocks(doc, src)
		probs = append(probs, ps...)
		for _, b := range blocks {
			total++
			probs = append(probs, c.check(b)...)
		}
	}
	probs = append(probs, c.compileQueued(t)...)
	if total == 0 {
		t.Fatal("no code blocks found in the guides: the parser or the paths are wrong")
	}
	for _, p := range probs {
		t.Error(p)
	}
	if len(probs) > 0 {
		t.Log(rulesHelp)
	}
}

// TestChecker runs the rules on small documents against the fixture
// repository in testdata/repo, so that each rule is shown to fail.
func TestChecker(t *testing.T) {
	const fence = "```"
	tests := []struct {
		name string
		md   string
		want []string // "line: reason substring", in order; none means no problem
	}{
		{"no language", fence + "\nx\n" + fence + "\n", []string{"1: without a language"}},
		{"text", fence + "text\nanything\n" + fence + "\n", nil},
		{"mermaid", fence + "mermaid\ngraph LR\n" + fence + "\n", nil},
		{"go unannotated", "x\n\n" + fence + "go\npackage x\n" + fence + "\n", []string{"3: go block without"}},
		{"go from, elision", "<!-- from: pkg/a.go -->\n" + fence + "go\nfunc Add(a, b int) int {\n    sum := a + b\n// ...\nfunc Sub(a, b int) int {\n" + fence + "\n", nil},
		{"go from, changed line", "<!-- from: pkg/a.go -->\n" + fence + "go\nfunc Add(a, b int) int {\n\tsum := a - b\n" + fence + "\n", []string{`4: not copied from pkg/a.go: line "sum := a - b"`}},
		{"go from, not contiguous", "<!-- from: pkg/a.go -->\n" + fence + "go\nfunc Add(a, b int) int {\n\treturn sum\n" + fence + "\n", []string{`4: line "return sum"`}},
		{"go from, out of order", "<!-- from: pkg/a.go -->\n" + fence + "go\nfunc Sub(a, b int) int {\n// ...\nfunc Add(a, b int) int {\n" + fence + "\n", []string{`5: line "func Add(a, b int) int {"`}},
		{"go from untested package", "<!-- from: untested/b.go -->\n" + fence + "go\nfunc B() {}\n" + fence + "\n", []string{"2: go block from untested/b.go: package untested has no tests"}},
		{"go from non-go file", "<!-- from: pkg/conf.yaml -->\n" + fence + "go\nlisten: \":8080\"\n" + fence + "\n", []string{"2: the source must be a .go file"}},
		{"from missing file", "<!-- from: pkg/nope.go -->\n" + fence + "go\nx\n" + fence + "\n", []string{"2: from: pkg/nope.go: file not found"}},
		{"from outside", "<!-- from: ../etc/passwd -->\n" + fence + "text\nx\n" + fence + "\n", []string{"2: must be a path relative to the repository root"}},
		{"yaml from loaded file", "<!-- from: pkg/conf.yaml -->\n" + fence + "yaml\nopenhim:\n  url: \"\"\n" + fence + "\n", nil},
		{"yaml from unloaded file", "<!-- from: pkg/unused.yaml -->\n" + fence + "yaml\na: 1\n" + fence + "\n", []string{"2: yaml block from pkg/unused.yaml: no Go file of a tested package"}},
		{"yaml invalid", fence + "yaml\na: [1\n" + fence + "\n", []string{"1: yaml block is not valid YAML"}},
		{"yaml valid", fence + "yaml\na: [1]\n" + fence + "\n", nil},
		{"json invalid", fence + "json\n{\"a\": 1,}\n" + fence + "\n", []string{"1: json block is not valid JSON"}},
		{"json valid", fence + "json\n{\"a\": [1]}\n" + fence + "\n", nil},
		{"other language", fence + "js\nx()\n" + fence + "\n", []string{"1: js block without"}},
		{"shell unannotated", fence + "sh\nls\n" + fence + "\n", []string{"1: sh block without <!-- shell -->"}},
		{"shell ok", "<!-- shell -->\n" + fence + "sh\n# comment\n$ go run ./cmd/tool --print-config\ngo test ./pkg/... && go vet ./pkg\n" + fence + "\n", nil},
		{"shell unknown flag", "<!-- shell -->\n" + fence + "bash\ngo run ./cmd/tool \\\n  --print-config --nope=1 | jq .\n" + fence + "\n", []string{"3: go run cmd/tool: flag -nope is not defined"}},
		{"shell missing path", "<!-- shell -->\n" + fence + "sh\ngo test ./missing/...\n" + fence + "\n", []string{"3: go test ./missing/...: no such path"}},
		{"shell after cd", "<!-- shell -->\n" + fence + "sh\ncd elsewhere && go run ./x\n" + fence + "\n", nil},
		{"shell annotation on go", "<!-- shell -->\n" + fence + "go\nx\n" + fence + "\n", []string{"2: <!-- shell --> is for sh/bash/shell/console blocks"}},
		{"compile annotation on yaml", "<!-- compile -->\n" + fence + "yaml\na: 1\n" + fence + "\n", []string{"2: <!-- compile --> is for go blocks"}},
		{"compile without package", "<!-- compile -->\n" + fence + "go\nfunc main() {}\n" + fence + "\n", []string{"2: must be a complete Go file"}},
		{"compile syntax error", "<!-- compile -->\n" + fence + "go\npackage main\n\nfunc main() {\n" + fence + "\n", []string{"does not parse"}},
		{"output matches", "<!-- output: go run ./cmd/tool --print-config -->\n" + fence + "json\n{\n  \"listen\": \":8080\"\n" + fence + "\n", nil},
		{"output differs", "<!-- output: go run ./cmd/tool --print-config -->\n" + fence + "json\n{\n  \"listen\": \":9090\"\n" + fence + "\n", []string{`4: not in the output of "go run ./cmd/tool --print-config": line "\"listen\": \":9090\""`}},
		{"output bad command", "<!-- output: ./tool -->\n" + fence + "json\n{}\n" + fence + "\n", []string{"2: output: \"./tool\": the command must be"}},
		{"unclosed", "text\n" + fence + "text\nx\n", []string{"2: code fence is never closed"}},
		{"tilde fence and indent", "1. step\n\n   ~~~~yaml\n   a: [1\n   ~~~~\n", []string{"3: yaml block is not valid YAML"}},
		{"deeply indented fence", "- a\n  - b\n\n        " + fence + "go\n        x\n        " + fence + "\n", []string{"4: go block without"}},
	}
	root, err := filepath.Abs(filepath.Join("testdata", "repo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker(root)
			c.output = func(cmd string) (string, error) {
				if cmd != "go run ./cmd/tool --print-config" {
					return "", fmt.Errorf("unexpected command %q", cmd)
				}
				return "{\n  \"listen\": \":8080\",\n  \"url\": \"\"\n}\n", nil
			}
			blocks, probs := parseBlocks("t.md", []byte(tt.md))
			for _, b := range blocks {
				probs = append(probs, c.check(b)...)
			}
			if len(c.compile) != 0 {
				t.Fatalf("queued %d compile blocks; this test has none that parse", len(c.compile))
			}
			if len(probs) != len(tt.want) {
				t.Fatalf("got %d problems %v, want %d %q", len(probs), probs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				got := strings.TrimPrefix(probs[i].String(), "t.md:")
				if line, reason, ok := strings.Cut(w, ": "); ok && isDigits(line) {
					if !strings.HasPrefix(got, line+": ") || !strings.Contains(got, reason) {
						t.Errorf("problem %d = %q, want line %s and %q", i, got, line, reason)
					}
				} else if !strings.Contains(got, w) {
					t.Errorf("problem %d = %q, want %q", i, got, w)
				}
			}
		})
	}
}

func isDigits(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// TestCompileBlocks builds a good and a bad compile block in the module and
// checks that only the bad one is reported, at the right document line.
func TestCompileBlocks(t *testing.T) {
	const fence = "```"
	md := "<!-- compile -->\n" + fence + "go\npackage main\n\nimport \"github.com/cht-interop/openhim-mediator-go/mediator/settings\"\n\nfunc main() { _ = settings.Default() }\n" + fence + "\n\n" +
		"<!-- compile -->\n" + fence + "go\npackage main\n\nimport \"github.com/cht-interop/openhim-mediator-go/mediator/settings\"\n\nfunc main() {\n\tvar n int = settings.Default()\n\t_ = n\n}\n" + fence + "\n"
	c := newChecker(repoRoot(t))
	blocks, probs := parseBlocks("t.md", []byte(md))
	for _, b := range blocks {
		probs = append(probs, c.check(b)...)
	}
	if len(probs) != 0 || len(c.compile) != 2 {
		t.Fatalf("before compiling: problems %v, %d queued; want none and 2", probs, len(c.compile))
	}
	probs = c.compileQueued(t)
	if len(probs) != 1 {
		t.Fatalf("got problems %v, want one for the second block", probs)
	}
	// The second fence is on line 11; the bad assignment is its 6th line.
	if got := probs[0].String(); !strings.HasPrefix(got, "t.md:17: does not compile: ") || !strings.Contains(got, "settings.Default()") {
		t.Errorf("problem = %q, want t.md:17 naming settings.Default()", got)
	}
}

// dependencyRules are the module packages each library package may import
// (besides the internal packages Go lets it import), as architecture.md states. A package
// follows the rule of the longest matching key.
var dependencyRules = map[string][]string{
	"mediator":             {"mediator/openhim"},
	"mediator/openhim":     nil,
	"mediator/settings":    {"mediator", "mediator/openhim"},
	"mediator/openhimtest": {"mediator", "mediator/openhim"},
	"cht":                  nil,
	"cht/chttest":          {"cht", "cht/outbound"},
	"cht/outbound":         {"cht"},
	"fhir":                 {"cht"},
	"fhir/fhirtest":        {"fhir", "cht"},
	"fhir/push":            {"fhir", "cht", "cht/outbound"},
	"fhir/backfill":        {"fhir", "cht"},
	"fhir/tocht":           {"fhir", "cht", "mediator", "mediator/openhim"},
}

// ruleOf returns the dependencyRules key that governs the package directory
// dir, or "" when none does (examples, docs).
func ruleOf(dir string) string {
	best := ""
	for k := range dependencyRules {
		if (dir == k || strings.HasPrefix(dir, k+"/")) && len(k) > len(best) {
			best = k
		}
	}
	return best
}

// allowedImport reports whether a package governed by rule may import the
// module package imp (a path relative to the module).
func allowedImport(rule, imp string) bool {
	isIn := func(root string) bool { return imp == root || strings.HasPrefix(imp, root+"/internal/") }
	for dir := rule; dir != "." && dir != ""; dir = path.Dir(dir) {
		if strings.HasPrefix(imp, dir+"/internal/") { // internal packages Go lets rule import
			return true
		}
	}
	for _, a := range dependencyRules[rule] {
		if isIn(a) {
			return true
		}
	}
	return false
}

// exampleOf returns the example a package directory belongs to
// ("examples/X"), or "" when it is not under examples/.
func exampleOf(dir string) string {
	parts := strings.SplitN(dir, "/", 3)
	if len(parts) < 2 || parts[0] != "examples" {
		return ""
	}
	return parts[0] + "/" + parts[1]
}

// dependencyProblems checks the imports of every Go file below root, a
// module with path modPath, against the rules architecture.md states:
//   - the non-test files of a library package import only the module
//     packages its dependencyRules entry allows (so never a test kit);
//   - no library file, test files included, imports an example;
//   - no example imports another example (an example's own subpackages are
//     its own).
//
// Files under testdata/ are skipped. It also returns the dependencyRules
// keys that govern at least one file.
func dependencyProblems(root, modPath string) (probs []string, seen map[string]bool, err error) {
	c := newChecker(root)
	c.loadGoFiles()
	if c.walkErr != nil {
		return nil, nil, c.walkErr
	}
	seen = map[string]bool{}
	for p, src := range c.goFiles {
		dir := pathDir(p)
		if strings.Contains("/"+dir+"/", "/testdata/") {
			continue
		}
		rule, example := ruleOf(dir), exampleOf(dir)
		isTest := strings.HasSuffix(p, "_test.go")
		if rule != "" && !isTest {
			seen[rule] = true
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, src, parser.ImportsOnly)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		for _, is := range f.Imports {
			imp, err := strconv.Unquote(is.Path.Value)
			if err != nil || (imp != modPath && !strings.HasPrefix(imp, modPath+"/")) {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(imp, modPath), "/")
			impExample := exampleOf(rel)
			switch {
			case rule != "" && impExample != "":
				probs = append(probs, fmt.Sprintf("%s imports %s: library code never imports an example (docs/architecture.md)", p, rel))
			case rule != "" && !isTest && !allowedImport(rule, rel):
				probs = append(probs, fmt.Sprintf("%s imports %s: package %s may only import %v of this module (docs/architecture.md)", p, rel, rule, dependencyRules[rule]))
			case example != "" && impExample != "" && impExample != example:
				probs = append(probs, fmt.Sprintf("%s imports %s: no example imports another example (docs/architecture.md)", p, rel))
			}
		}
	}
	slices.Sort(probs)
	return probs, seen, nil
}

// TestDependencyRules checks the dependency direction that architecture.md
// documents on the repository (dependencyProblems).
func TestDependencyRules(t *testing.T) {
	root := repoRoot(t)
	probs, seen, err := dependencyProblems(root, modulePath(t, root))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Error(p)
	}
	for rule := range dependencyRules {
		if !seen[rule] {
			t.Errorf("no Go file found for package %s: the rule table is stale", rule)
		}
	}
}

// TestDependencyProblems runs the dependency checker on the fixture module in
// testdata/deps, which breaks each rule once and keeps each allowed import,
// so that each rule is shown to fail.
func TestDependencyProblems(t *testing.T) {
	probs, seen, err := dependencyProblems(filepath.Join("testdata", "deps"), "example.com/m")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"cht/cht.go imports fhir: package cht may only import [] of this module (docs/architecture.md)",
		"examples/a/a_test.go imports examples/b: no example imports another example (docs/architecture.md)",
		"examples/a/main.go imports examples/b/lib: no example imports another example (docs/architecture.md)",
		"fhir/fhir.go imports cht/chttest: package fhir may only import [cht] of this module (docs/architecture.md)",
		"fhir/fhir_test.go imports examples/b: library code never imports an example (docs/architecture.md)",
		"fhir/push/push.go imports examples/b/lib: library code never imports an example (docs/architecture.md)",
		"mediator/mediator.go imports cht: package mediator may only import [mediator/openhim] of this module (docs/architecture.md)",
	}
	if !slices.Equal(probs, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(probs, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range []string{"mediator", "cht", "fhir", "fhir/push"} {
		if !seen[r] {
			t.Errorf("rule %s not seen in the fixture", r)
		}
	}
}

func modulePath(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "module" {
			return f[1]
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

func TestAllowedImport(t *testing.T) {
	tests := []struct {
		dir, imp string
		want     bool
	}{
		{"mediator", "cht", false},
		{"mediator", "fhir", false},
		{"mediator", "mediator/internal/x", true},
		{"mediator", "mediator/openhimtest", false},
		{"mediator/settings", "mediator", true},
		{"mediator/openhimtest", "mediator", true},
		{"mediator/openhim", "mediator", false},
		{"mediator", "mediator/openhim", true},
		{"mediator/openhim", "mediator/internal/semver", true},
		{"mediator/openhim", "cht/internal/x", false},
		{"mediator/openhimtest", "cht", false},
		{"cht", "fhir", false},
		{"cht", "mediator", false},
		{"cht/chttest", "cht", true},
		{"cht/chttest", "fhir", false},
		{"fhir", "cht", true},
		{"fhir", "cht/chttest", false},
		{"fhir", "mediator", false},
		{"fhir/internal/validation", "cht", true},
		{"fhir/internal/validation", "fhir/internal/other", true},
		{"fhir/fhirtest", "fhir", true},
		{"fhir/fhirtest", "examples/cht-to-fhir", false},
		{"fhir/push", "fhir", true},
		{"fhir/push", "fhir/fhirtest", false},
		{"fhir/push", "cht/chttest", false},
		{"fhir/push", "mediator", false},
		{"fhir/tocht", "mediator", true},
		{"fhir/tocht", "mediator/openhimtest", false},
		{"fhir/tocht", "fhir/fhirtest", false},
	}
	for _, tt := range tests {
		if got := allowedImport(ruleOf(tt.dir), tt.imp); got != tt.want {
			t.Errorf("%s importing %s: allowed = %v, want %v", tt.dir, tt.imp, got, tt.want)
		}
	}
	if r := ruleOf("examples/demo"); r != "" {
		t.Errorf("ruleOf(examples/demo) = %q, want none", r)
	}
	for dir, want := range map[string]string{"examples/demo": "examples/demo", "examples/fhir-to-cht/sub": "examples/fhir-to-cht", "examples": "", "fhir/tocht": ""} {
		if got := exampleOf(dir); got != want {
			t.Errorf("exampleOf(%s) = %q, want %q", dir, got, want)
		}
	}
}

var (
	linkRE       = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	inlineCodeRE = regexp.MustCompile("`[^`]*`")
	headingRE    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	slugDropRE   = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// slug is GitHub's anchor for a heading text.
func slug(heading string) string {
	h := strings.ToLower(inlineCodeRE.ReplaceAllStringFunc(heading, func(s string) string { return strings.Trim(s, "`") }))
	return strings.ReplaceAll(slugDropRE.ReplaceAllString(h, ""), " ", "-")
}

// proseLines returns the lines of a Markdown document with fenced code
// blocks blanked, so that links and headings are only read from prose.
func proseLines(src []byte) []string {
	lines := strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")
	fence := ""
	for i, l := range lines {
		t := strings.TrimLeft(l, " ")
		if fence == "" {
			if m := fenceRE.FindStringSubmatch(l); m != nil && !(m[2][0] == '`' && strings.Contains(m[3], "`")) {
				fence = m[2]
				lines[i] = ""
			}
			continue
		}
		if strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]+" \t") == "" {
			fence = ""
		}
		lines[i] = ""
	}
	return lines
}

// anchors returns the heading anchors of a Markdown document.
func anchors(src []byte) map[string]bool {
	out := map[string]bool{}
	for _, l := range proseLines(src) {
		if m := headingRE.FindStringSubmatch(l); m != nil {
			s := slug(m[1])
			a := s
			for n := 1; out[a]; n++ {
				a = fmt.Sprintf("%s-%d", s, n)
			}
			out[a] = true
		}
	}
	return out
}

// checkLinks returns the broken relative links of doc (a path relative to
// root): missing files and, for Markdown targets, missing anchors.
func checkLinks(root, doc string, src []byte) []problem {
	var probs []problem
	for i, l := range proseLines(src) {
		l = inlineCodeRE.ReplaceAllString(l, "")
		for _, m := range linkRE.FindAllStringSubmatch(l, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			p, data := doc, src
			if file != "" {
				p = filepath.ToSlash(filepath.Join(filepath.Dir(doc), file))
				var err error
				data, err = os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
				if err != nil {
					if fi, serr := os.Stat(filepath.Join(root, filepath.FromSlash(p))); serr == nil && fi.IsDir() && frag == "" {
						continue
					}
					probs = append(probs, problem{doc, i + 1, fmt.Sprintf("link %s: %s does not exist", target, p)})
					continue
				}
			}
			if frag != "" && strings.HasSuffix(p, ".md") && !anchors(data)[frag] {
				probs = append(probs, problem{doc, i + 1, fmt.Sprintf("link %s: %s has no heading with anchor #%s", target, p, frag)})
			}
		}
	}
	return probs
}

// TestLinks checks the relative links of docs/*.md and README.md.
func TestLinks(t *testing.T) {
	root := repoRoot(t)
	for _, doc := range guides(t, root) {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(doc)))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range checkLinks(root, doc, src) {
			t.Error(p)
		}
	}
}

func TestCheckLinks(t *testing.T) {
	md := "# Title\n\n## Run `go test` now!\n\n## Title\n\nSee [a](#run-go-test-now) and [b](#title-1),\n" +
		"[c](#nope), [d](pkg/a.go), [e](pkg/missing.go), [f](https://example.org/x#y), `[g](nope.md)`.\n\n" +
		"```text\n[h](nope.md)\n```\n[i](pkg)\n"
	root, err := filepath.Abs(filepath.Join("testdata", "repo"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range checkLinks(root, "t.md", []byte(md)) {
		got = append(got, p.String())
	}
	want := []string{
		"t.md:8: link #nope: t.md has no heading with anchor #nope",
		"t.md:8: link pkg/missing.go: pkg/missing.go does not exist",
	}
	if !slices.Equal(got, want) {
		t.Errorf("checkLinks =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
