package docs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// quotedLogRE finds a log message the documentation quotes: a code span
// right after "the log says", "logged as", "logs", "(log: " and the like.
var quotedLogRE = regexp.MustCompile("(?i)\\b(?:logs?|logged(?: as)?|log says|log:|log line)\\s*:?\\s+`([^`]+)`")

// foreignLogs are messages of other systems the documentation quotes.
var foreignLogs = map[string]string{
	"Failed to push <id> to <name>": "CHT's sentinel (medic/cht-core shared-libs/outbound, outbound.js)",
}

// placeholderRE marks what a quoted message leaves out: "..." or <name>.
var placeholderRE = regexp.MustCompile(`\.\.\.|…|<[^<>]+>`)

// TestQuotedLogMessagesMatchTheCode checks that every log message the guides
// quote is one the code writes: each part of it between placeholders is
// found in a string literal of the module's non-test Go code. Readers grep
// their logs for these lines.
func TestQuotedLogMessagesMatchTheCode(t *testing.T) {
	root := filepath.Join("..")
	literals := goStringLiterals(t, root)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(root, "README.md"))
	found := 0
	for _, doc := range docs {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(raw)), " ") // a quote may span lines
		for _, m := range quotedLogRE.FindAllStringSubmatch(text, -1) {
			msg := m[1]
			if _, ok := foreignLogs[msg]; ok {
				continue
			}
			found++
			for _, part := range placeholderRE.Split(msg, -1) {
				if part = strings.TrimSpace(part); part != "" && !containsAny(literals, part) {
					t.Errorf("%s quotes the log message %q, but no string in the code contains %q: grep the code for the text it logs",
						filepath.ToSlash(doc), msg, part)
				}
			}
		}
	}
	if found == 0 {
		t.Error("no quoted log message found: has quotedLogRE stopped matching the guides?")
	}
}

// TestQuotedLogCheckerCatchesADifferentMessage keeps the check honest: a
// reworded message is not found.
func TestQuotedLogCheckerCatchesADifferentMessage(t *testing.T) {
	literals := goStringLiterals(t, "..")
	if !containsAny(literals, "openhim core refused basic auth; using token auth") {
		t.Error("the real message is not found")
	}
	if containsAny(literals, "openhim core rejected basic auth; using token auth") {
		t.Error("a reworded message is found")
	}
	m := quotedLogRE.FindStringSubmatch("after one refused attempt (logged as `openhim core refused basic auth`).")
	if m == nil || m[1] != "openhim core refused basic auth" {
		t.Errorf("quotedLogRE = %q", m)
	}
}

func containsAny(literals []string, part string) bool {
	for _, l := range literals {
		if strings.Contains(l, part) {
			return true
		}
	}
	return false
}

// goStringLiterals returns the string literals of the module's non-test Go
// files.
func goStringLiterals(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					out = append(out, s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
