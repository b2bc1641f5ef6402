package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// resolvedIfRE finds a task's resolvedIf written as a function of its four
// arguments, and the name of the fourth.
var resolvedIfRE = regexp.MustCompile(`resolvedIf:\s*(?:function\s*)?\(\s*\w+\s*,\s*\w+\s*,\s*\w+\s*,\s*(\w+)\s*\)`)

// dueDateArithmetic reports the lines of the tasks.js examples in text that
// add to or subtract from the due date a resolvedIf gets. CHT passes it as
// a Date: the task emitter cht-conf compiles into the app's rules (cht-core
// 4.22.0 config/default/app_settings.json "rules": resolvedIf(o,i,d,l,a)
// with l=new Date(...)), and its own tasks (config/default/tasks.js
// checkTaskResolvedForHomeVisit) shift it with addDays(dueDate,
// ...).getTime(). dueDate + 7 is a string ("... GMT+0000 (...)7"), which
// no reported_date compares below, so the task is never resolved.
func dueDateArithmetic(text string) []string {
	var probs []string
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		m := resolvedIfRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		arith := regexp.MustCompile(`\b` + regexp.QuoteMeta(m[1]) + `\s*[-+]|[-+]\s*` + regexp.QuoteMeta(m[1]) + `\b`)
		// The function's body: up to the next action or the end of the
		// task object.
		for j := i; j < len(lines) && j < i+10; j++ {
			if j > i && regexp.MustCompile(`^\s*(\w+:|}\s*,?\s*$)`).MatchString(lines[j]) {
				break
			}
			if arith.MatchString(lines[j]) {
				probs = append(probs, lines[j])
			}
		}
	}
	return probs
}

func TestTasksJSDueDateIsADate(t *testing.T) {
	tests := []struct {
		name string
		text string
		bad  int
	}{
		{"plus days", "  resolvedIf: (contact, report, event, dueDate) =>\n    Utils.isFormSubmittedInWindow(r, 'f', s, dueDate + 7),\n", 1},
		{"minus, function", "resolvedIf: function (c, r, e, due) {\n  return x(due - 1);\n},\n", 1},
		{"addDate", "  resolvedIf: (contact, report, event, dueDate) =>\n    Utils.isFormSubmittedInWindow(r, 'f', s,\n      Utils.addDate(dueDate, event.end + 1).getTime()),\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dueDateArithmetic(tt.text); len(got) != tt.bad {
				t.Errorf("got %q, want %d problems", got, tt.bad)
			}
		})
	}
	root := repoRoot(t)
	for _, doc := range guides(t, root) {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(doc)))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range dueDateArithmetic(string(src)) {
			t.Errorf("%s: a resolvedIf's due date is a Date, not a number of milliseconds: %s", doc, strings.TrimSpace(l))
		}
	}
}
