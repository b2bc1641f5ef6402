// Command testreport reads `go test -json` output on stdin and prints it the way `go test` would
// (everything with -v; otherwise only package results, build errors and the output of failing tests).
// It counts top-level tests, appends "passed failed skipped" to -counts, can require passing tests
// per package and forbid skipped ones, and exits 1 when anything failed.
//
//	go test -json ./... | go run ./.ci/testreport -v -require mediator=^TestE2E -forbid-skip ^TestE2E
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type requirement struct {
	pkg  string // last element(s) of the import path, e.g. "mediator" or "fhir/fhirtest"
	test *regexp.Regexp
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	verbose := flag.Bool("v", false, "print all test output, as go test -v does")
	counts := flag.String("counts", "", "append `passed failed skipped` (top-level tests) to this file")
	forbidSkip := flag.String("forbid-skip", "", "fail when a top-level test matching this regexp is skipped")
	var requires multiFlag
	flag.Var(&requires, "require", "pkg=regexp: the package (import path suffix) must pass at least one top-level test matching regexp (repeatable)")
	flag.Parse()

	var reqs []requirement
	for _, r := range requires {
		pkg, expr, ok := strings.Cut(r, "=")
		if !ok {
			fatalf("-require %q: want pkg=regexp", r)
		}
		reqs = append(reqs, requirement{pkg: pkg, test: regexp.MustCompile(expr)})
	}
	var skipRE *regexp.Regexp
	if *forbidSkip != "" {
		skipRE = regexp.MustCompile(*forbidSkip)
	}

	out := os.Stdout                  // unbuffered: CI logs show progress as packages finish
	buffered := map[string][]string{} // package + "\x00" + test -> output, while not verbose
	passedBy := map[string][]string{} // package -> passed top-level tests
	var passed, failed, skipped int
	var failedPkgs, skippedForbidden []string

	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// not a test2json event (e.g. a message from go itself): show it as is
			fmt.Fprintln(out, string(line))
			continue
		}
		key := e.Package + "\x00" + e.Test
		topLevel := e.Test != "" && !strings.Contains(e.Test, "/")
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "output":
			switch {
			case *verbose:
				fmt.Fprint(out, e.Output)
			case e.Test != "":
				buffered[key] = append(buffered[key], e.Output)
			case e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== "):
				fmt.Fprint(out, e.Output)
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" {
					failedPkgs = append(failedPkgs, e.Package)
				}
				continue
			}
			if e.Action == "fail" && !*verbose {
				for _, o := range buffered[key] {
					fmt.Fprint(out, o)
				}
			}
			delete(buffered, key)
			if !topLevel {
				continue
			}
			switch e.Action {
			case "pass":
				passed++
				passedBy[e.Package] = append(passedBy[e.Package], e.Test)
			case "fail":
				failed++
			case "skip":
				skipped++
				if skipRE != nil && skipRE.MatchString(e.Test) {
					skippedForbidden = append(skippedForbidden, e.Package+"."+e.Test)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		fatalf("reading go test -json: %v", err)
	}

	ok := true
	if len(failedPkgs) > 0 {
		ok = false
		sort.Strings(failedPkgs)
		fmt.Fprintf(out, "testreport: failed packages: %s\n", strings.Join(failedPkgs, " "))
	}
	if len(skippedForbidden) > 0 {
		ok = false
		fmt.Fprintf(out, "testreport: these tests were skipped but must run: %s\n", strings.Join(skippedForbidden, " "))
	}
	for _, r := range reqs {
		n := 0
		for pkg, tests := range passedBy {
			if pkg != r.pkg && !strings.HasSuffix(pkg, "/"+r.pkg) {
				continue
			}
			for _, t := range tests {
				if r.test.MatchString(t) {
					n++
					fmt.Fprintf(out, "testreport: ran %s.%s: PASS\n", path.Base(pkg), t)
				}
			}
		}
		if n == 0 {
			ok = false
			fmt.Fprintf(out, "testreport: package %s passed no test matching %s (did it run at all?)\n", r.pkg, r.test)
		}
	}
	if *counts != "" {
		f, err := os.OpenFile(*counts, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fatalf("%v", err)
		}
		_, err = fmt.Fprintf(f, "%d %d %d\n", passed, failed, skipped)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fatalf("write %s: %v", *counts, err)
		}
	}
	fmt.Fprintf(out, "testreport: %d passed, %d failed, %d skipped (top-level tests)\n", passed, failed, skipped)
	if failed > 0 || !ok {
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "testreport: "+format+"\n", args...)
	os.Exit(2)
}
