package docs_test

import (
	"go/ast"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// docSymbols are the names a doc link may name in one package: its
// package-level identifiers ("Name") and the methods and struct fields of
// its types ("Type.Name"), exported or not.
type docSymbols map[string]bool

// packageDocs is one library package: its import path relative to the
// module, its symbols and the comments of its non-test files.
type packageDocs struct {
	rel      string
	syms     docSymbols
	comments []docComment
}

// docComment is the text of one comment group and where it is.
type docComment struct {
	pos  token.Position
	text string
}

// parsePackageDocs reads the non-test Go files of dir.
func parsePackageDocs(t *testing.T, root, dir string) *packageDocs {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, dir)
	pd := &packageDocs{rel: filepath.ToSlash(rel), syms: docSymbols{}}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, cg := range f.Comments {
				pd.comments = append(pd.comments, docComment{fset.Position(cg.Pos()), cg.Text()})
			}
			for _, d := range f.Decls {
				pd.syms.add(d)
			}
		}
	}
	return pd
}

func (s docSymbols) add(d ast.Decl) {
	switch d := d.(type) {
	case *ast.FuncDecl:
		if d.Recv == nil {
			s[d.Name.Name] = true
		} else {
			s[receiverName(d.Recv.List[0].Type)+"."+d.Name.Name] = true
		}
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch spec := spec.(type) {
			case *ast.TypeSpec:
				s[spec.Name.Name] = true
				var fields *ast.FieldList
				switch t := spec.Type.(type) {
				case *ast.StructType:
					fields = t.Fields
				case *ast.InterfaceType:
					fields = t.Methods
				}
				if fields == nil {
					continue
				}
				for _, f := range fields.List {
					for _, n := range f.Names {
						s[spec.Name.Name+"."+n.Name] = true
					}
					if len(f.Names) == 0 { // embedded: its name is its type's
						s[spec.Name.Name+"."+receiverName(f.Type)] = true
					}
				}
			case *ast.ValueSpec:
				for _, n := range spec.Names {
					s[n.Name] = true
				}
			}
		}
	}
}

// receiverName is the type name of a receiver or embedded field.
func receiverName(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.SelectorExpr:
			return t.Sel.Name
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// docLinks returns the doc links of text ([Name], [Type.Name],
// [pkg.Name], [pkg.Type.Name]) that go/doc/comment would make if every
// name existed, with the package name of a link to another package.
func docLinks(text string) []*comment.DocLink {
	p := comment.Parser{
		LookupPackage: func(name string) (string, bool) { return name, true },
		LookupSym:     func(recv, name string) bool { return true },
	}
	var links []*comment.DocLink
	var walk func(ts []comment.Text)
	walk = func(ts []comment.Text) {
		for _, t := range ts {
			switch t := t.(type) {
			case *comment.DocLink:
				links = append(links, t)
			case *comment.Link:
				walk(t.Text)
			}
		}
	}
	for _, b := range p.Parse(text).Content {
		switch b := b.(type) {
		case *comment.Paragraph:
			walk(b.Text)
		case *comment.Heading:
			walk(b.Text)
		case *comment.List:
			for _, item := range b.Items {
				for _, c := range item.Content {
					if para, ok := c.(*comment.Paragraph); ok {
						walk(para.Text)
					}
				}
			}
		}
	}
	return links
}

// TestDocLinksResolve: every doc link in the library's comments names a
// symbol that exists, in its own package or in another package of the
// module, so that go doc and pkg.go.dev render it as a link (a link to a
// removed or renamed name is shown as plain text in brackets and leads
// nowhere). Links to other modules (net/http, samply's models) are not
// checked. Bracketed text that only looks like a link — all capitals, or
// one letter — is skipped.
func TestDocLinksResolve(t *testing.T) {
	root := repoRoot(t)
	byName := map[string][]*packageDocs{} // package name (last path element) → packages
	var all []*packageDocs
	for _, top := range []string{"mediator", "cht", "fhir"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			entries, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
					pd := parsePackageDocs(t, root, p)
					all = append(all, pd)
					byName[path.Base(pd.rel)] = append(byName[path.Base(pd.rel)], pd)
					break
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(all) < 10 {
		t.Fatalf("found %d packages: the walk lost its way", len(all))
	}
	checked := 0
	for _, pd := range all {
		for _, c := range pd.comments {
			for _, l := range docLinks(c.text) {
				name := l.Name
				if l.Recv != "" {
					name = l.Recv + "." + l.Name
				}
				if l.ImportPath == "" && l.Recv == "" && (len(name) == 1 || strings.ToUpper(name) == name) {
					continue
				}
				targets := []*packageDocs{pd}
				if l.ImportPath != "" {
					targets = byName[l.ImportPath]
					if len(targets) == 0 {
						continue // another module
					}
				}
				checked++
				found := false
				for _, tp := range targets {
					found = found || tp.syms[name]
				}
				if !found {
					shown := name
					if l.ImportPath != "" {
						shown = l.ImportPath + "." + name
					}
					t.Errorf("comment at %s:%d: doc link [%s] names nothing in %s", relPos(root, c.pos), c.pos.Line, shown, targets[0].rel)
				}
			}
		}
	}
	if checked < 100 {
		t.Errorf("checked %d doc links: the parser lost them", checked)
	}
	t.Logf("%d doc links checked in %d packages", checked, len(all))
}

func relPos(root string, p token.Position) string {
	rel, err := filepath.Rel(root, p.Filename)
	if err != nil {
		return p.Filename
	}
	return filepath.ToSlash(rel)
}
