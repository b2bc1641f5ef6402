package subscription

import (
	"regexp"
	"strings"
	"testing"
)

// TestID pins the id: Subscriptions already on FHIR servers were made with
// it, and a changed id would add a second Subscription for a re-sent Task
// and leave the first one for ever.
func TestID(t *testing.T) {
	if got, want := ID("task-1", "https://emr.example.org/events"), "6103b22f-d096-583d-9883-c39acd40e54b"; got != want {
		t.Errorf("ID = %s, want %s", got, want)
	}
	if ID("task-1", "https://emr.example.org/other") == ID("task-1", "https://emr.example.org/events") {
		t.Error("two endpoints give one id")
	}
}

func TestTaskOf(t *testing.T) {
	const def = "Task?_id={id}&status=completed,failed,rejected"
	tests := []struct {
		name, criteria, template, want string
	}{
		{"default criteria", "Task?_id=abc-1&status=completed,failed,rejected", def, "abc-1"},
		{"id at the end", "Task?_id=abc.2", "Task?_id={id}", "abc.2"},
		{"id twice", "Task?_id=x1&_has:Task:part-of:_id=x1", "Task?_id={id}&_has:Task:part-of:_id={id}", "x1"},
		{"escaped id", "Task?_id=a%2Bb&status=completed", "Task?_id={id}&status=completed", "a+b"},
		{"other status list", "Task?_id=abc-1&status=completed", def, ""},
		{"other resource", "ServiceRequest?_id=abc-1&status=completed,failed,rejected", def, ""},
		{"ids differ", "Task?_id=x1&_has:Task:part-of:_id=x2", "Task?_id={id}&_has:Task:part-of:_id={id}", ""},
		{"empty id", "Task?_id=&status=completed,failed,rejected", def, ""},
		{"template without id", "Task?status=completed", "Task?status=completed", ""},
		{"bad escape", "Task?_id=%zz&status=completed,failed,rejected", def, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := TaskOf(tt.criteria, tt.template)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("TaskOf(%q, %q) = %q, %v; want %q", tt.criteria, tt.template, got, ok, tt.want)
			}
			if ok && Criteria(tt.template, got) != tt.criteria {
				t.Errorf("Criteria(%q, %q) = %q, want %q", tt.template, got, Criteria(tt.template, got), tt.criteria)
			}
		})
	}
}

// FuzzTaskOf: criteria come from the FHIR server. TaskOf never panics, a
// Task id it returns gives back the same criteria, and the id of a FHIR
// Task (letters, digits, "-" and ".") is found in the criteria made for it
// by a template where "&" or the end follows {id}, as in every criteria
// search.
func FuzzTaskOf(f *testing.F) {
	f.Add("Task?_id=abc-1&status=completed,failed,rejected", "Task?_id={id}&status=completed,failed,rejected")
	f.Add("Task?_id=x1&_has:Task:part-of:_id=x1", "Task?_id={id}&_has:Task:part-of:_id={id}")
	f.Add("Task?_id=a%2Bb", "Task?_id={id}")
	f.Add("Task?_id=%zz", "{id}")
	validID := regexp.MustCompile(`^[A-Za-z0-9.-]{1,64}$`)
	f.Fuzz(func(t *testing.T, criteria, template string) {
		if id, ok := TaskOf(criteria, template); ok && (id == "" || Criteria(template, id) != criteria) {
			t.Fatalf("TaskOf(%q, %q) = %q, whose criteria are %q", criteria, template, id, Criteria(template, id))
		}
		id := criteria // as a Task id
		_, after, found := strings.Cut(template, "{id}")
		if !found || !validID.MatchString(id) || after != "" && after[0] != '&' {
			return
		}
		if got, ok := TaskOf(Criteria(template, id), template); !ok || got != id {
			t.Fatalf("TaskOf(%q, %q) = %q, %v; want %q", Criteria(template, id), template, got, ok, id)
		}
	})
}
