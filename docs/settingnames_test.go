package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// settingsExamples are the examples with a settings file: their --help lists
// every MEDIATOR_* variable they read, with its key.
var settingsExamples = []string{"backfill", "cht-to-fhir", "fhir-to-cht", "passthrough"}

// notSettings are MEDIATOR_ names the documentation uses that are not
// settings.
var notSettings = map[string]string{
	"MEDIATOR_PID": "the getting-started guide's shell variable holding the mediator's process id",
	"MEDIATOR_X":   "any variable, in a comment of mediator/settings",
}

var (
	// settingVarRE finds a variable name.
	settingVarRE = regexp.MustCompile(`\bMEDIATOR_[A-Z0-9_]*[A-Z0-9]\b`)
	// inlinePairRE finds "`key` (`MEDIATOR_VAR`", the documentation's way
	// of naming a setting's variable after its key.
	inlinePairRE = regexp.MustCompile("`([a-z][a-z0-9_.]*)` \\(`(MEDIATOR_[A-Z0-9_]+)`")
	// tablePairRE finds a table row "| `key` | `MEDIATOR_VAR` |".
	tablePairRE = regexp.MustCompile("^\\| `([a-z][a-z0-9_.]*)` \\| `(MEDIATOR_[A-Z0-9_]+)` \\|")
	// helpVarRE is a row of --help's table: VARIABLE KEY [DEFAULT].
	helpVarRE = regexp.MustCompile(`^  (MEDIATOR_[A-Z0-9_]+)\s+(\S+)`)
)

// settingNameProblems returns what text (of the file doc) gets wrong about
// the settings vars (variable -> key): a MEDIATOR_ name no example reads, or
// a key followed by another key's variable.
func settingNameProblems(doc, text string, vars map[string]string) []string {
	var probs []string
	seen, keys := map[string]bool{}, map[string]bool{}
	for _, k := range vars {
		keys[k] = true
	}
	for _, name := range settingVarRE.FindAllString(text, -1) {
		if _, ok := vars[name]; ok || notSettings[name] != "" || seen[name] {
			continue
		}
		seen[name] = true
		probs = append(probs, doc+": "+name+" is not a variable any example reads (see their --help)")
	}
	pair := func(key, name string) {
		if want, ok := vars[name]; ok && keys[key] && want != key { // "`true` (`MEDIATOR_X`)" is a value
			probs = append(probs, doc+": `"+key+"` is followed by `"+name+"`, which is the variable of "+want)
		}
	}
	for _, m := range inlinePairRE.FindAllStringSubmatch(strings.Join(strings.Fields(text), " "), -1) {
		pair(m[1], m[2])
	}
	for _, l := range strings.Split(text, "\n") {
		if m := tablePairRE.FindStringSubmatch(l); m != nil {
			pair(m[1], m[2])
		}
	}
	return probs
}

// TestDocumentedSettingNames checks the MEDIATOR_* variables that the
// README, the guides and the examples (their comments, messages and
// config.yaml) name against what the examples read: a reader sets them.
func TestDocumentedSettingNames(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the examples")
	}
	root := repoRoot(t)
	c := newChecker(root)
	vars := map[string]string{}
	for _, ex := range settingsExamples {
		out, err := c.goRun("go run ./examples/" + ex + " --help")
		if err != nil {
			t.Fatalf("%s --help: %v", ex, err)
		}
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if m := helpVarRE.FindStringSubmatch(l); m != nil {
				vars[m[1]] = m[2]
				n++
			}
		}
		if n == 0 {
			t.Fatalf("%s --help lists no variable:\n%s", ex, out)
		}
	}
	files := []string{"README.md"}
	for _, pattern := range []string{"docs/*.md", "examples/*/*.go", "examples/*/*.yaml", "mediator/settings/*.go"} {
		m, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(pattern)))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(p, "_test.go") {
				files = append(files, filepath.ToSlash(rel))
			}
		}
	}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range settingNameProblems(f, string(raw), vars) {
			t.Error(p)
		}
	}
}

func TestSettingNameProblems(t *testing.T) {
	vars := map[string]string{"MEDIATOR_CHT_USERNAME": "cht.username", "MEDIATOR_CHT_PASSWORD": "cht.password", "MEDIATOR_LISTEN": "listen"}
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"a key and its variable", "as `cht.username` (`MEDIATOR_CHT_USERNAME`), with", nil},
		{"a table row", "| `listen` | `MEDIATOR_LISTEN` | address |", nil},
		{"not a setting", "MEDIATOR_PID=$!", nil},
		{"a key and another key's variable", "as `cht.username` (`MEDIATOR_CHT_PASSWORD`):",
			[]string{"f.md: `cht.username` is followed by `MEDIATOR_CHT_PASSWORD`, which is the variable of cht.password"}},
		{"across a line break", "as `cht.username`\n(`MEDIATOR_CHT_PASSWORD`):",
			[]string{"f.md: `cht.username` is followed by `MEDIATOR_CHT_PASSWORD`, which is the variable of cht.password"}},
		{"a table row with another key's variable", "| `listen` | `MEDIATOR_CHT_USERNAME` | address |",
			[]string{"f.md: `listen` is followed by `MEDIATOR_CHT_USERNAME`, which is the variable of cht.username"}},
		{"an unknown variable, once", "set MEDIATOR_CHT_USER and MEDIATOR_CHT_USER",
			[]string{"f.md: MEDIATOR_CHT_USER is not a variable any example reads (see their --help)"}},
		{"a prefix alone", "MEDIATOR_* and MEDIATOR_<KEY>", nil},
		{"a value and its variable", "when `listen` is `:8601` (`MEDIATOR_LISTEN`)", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := settingNameProblems("f.md", tc.text, vars); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}
