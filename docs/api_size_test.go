package docs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// apiBudget is the target size of the public API of the three core
// packages, mediator, cht and fhir, counted by exportedNames.
const apiBudget = 250

// apiCeiling is the size the core packages may not exceed: the figure when
// it was last lowered. Lower it as names are removed; never raise it.
const apiCeiling = 249

// exportedNames counts the public API of the package in dir: its exported
// package-level identifiers (functions, types, variables and constants) plus
// the exported methods of its exported types, in its non-test files.
// Struct fields and interface methods are not counted.
func exportedNames(dir string) (int, error) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.SkipObjectResolution)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if !d.Name.IsExported() {
						continue
					}
					if d.Recv == nil || exportedReceiver(d.Recv.List[0].Type) {
						n++
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							if s.Name.IsExported() {
								n++
							}
						case *ast.ValueSpec:
							for _, name := range s.Names {
								if name.IsExported() {
									n++
								}
							}
						}
					}
				}
			}
		}
	}
	return n, nil
}

// exportedReceiver reports whether a method's receiver type is exported.
func exportedReceiver(e ast.Expr) bool { return token.IsExported(receiverName(e)) }

// TestExportedNames prints the size of the public API: the three core
// packages against the budget, and every library package (test kits and
// pipelines included; examples and internal packages excluded).
func TestExportedNames(t *testing.T) {
	root := repoRoot(t)
	counts := map[string]int{}
	for _, top := range []string{"mediator", "cht", "fhir"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if strings.Contains("/"+rel+"/", "/internal/") || strings.Contains("/"+rel+"/", "/testdata/") {
				return filepath.SkipDir
			}
			if n, err := exportedNames(p); err != nil {
				return err
			} else if n > 0 {
				counts[rel] = n
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	core := counts["mediator"] + counts["cht"] + counts["fhir"]
	total := 0
	var names []string
	for p, n := range counts {
		total += n
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		t.Logf("%-24s %4d", p, counts[p])
	}
	t.Logf("exported names in mediator + cht + fhir: %d (budget %d)", core, apiBudget)
	t.Logf("exported names in all library packages: %d", total)
	if core > apiCeiling {
		t.Errorf("mediator + cht + fhir export %d names, more than the ceiling %d: unexport what users do not need", core, apiCeiling)
	}
}

// TestExportedNamesCounts checks the counter on a package written for it.
func TestExportedNamesCounts(t *testing.T) {
	dir := t.TempDir()
	src := `package p

// A, B, T, T.M, G, G.M, V, C and I: 9 names.
const A, b = 1, 2
var B int
type T struct{ Field int }
func (T) M() {}
func (*T) m() {}
type u struct{}
func (u) N() {}
type G[X any] struct{}
func (G[X]) M() {}
var V, w = 1, 2
func C() {}
func c() {}
type I interface{ Method() }
`
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p_test.go"), []byte("package p\nfunc Exported() {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := exportedNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != 9 {
		t.Errorf("counted %d names, want 9 (A B T T.M G G.M V C I)", n)
	}
}
