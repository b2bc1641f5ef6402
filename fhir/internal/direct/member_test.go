package direct

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// TestMemberErrors: a contact's decoding error is read as member errors
// only when every cht.DecodeError in it has Member set (one member's value
// is wrong, the rest decoded), however it is wrapped or joined; a document
// that fails whole, or any other error, is a failure.
func TestMemberErrors(t *testing.T) {
	decode := func(doc string) error { return new(cht.Contact).UnmarshalJSON([]byte(doc)) }
	member := &cht.DecodeError{Path: "phone", Err: errors.New("want string"), Member: true}
	tests := []struct {
		name  string
		err   error
		ok    bool
		paths []string
	}{
		{"no error", nil, false, nil},
		{"a number phone", decode(`{"_id":"a","type":"person","phone":254712345678}`), true, []string{"phone"}},
		{"two members, joined", decode(`{"_id":"a","type":"person","phone":1,"sex":2}`), true, []string{"phone", "sex"}},
		{"below the parent", decode(`{"_id":"a","type":"person","parent":{"_id":"p","parent":{"_id":5}}}`), true,
			[]string{"parent.parent._id"}},
		{"wrapped as a CHT read wraps it", fmt.Errorf("cht: get doc %q: %w", "a", member), true, []string{"phone"}},
		{"malformed", decode(`{"_id":"a","parent":{"_id":`), false, nil},
		{"invalid UTF-8", decode("{\"_id\":\"a\",\"name\":\"\xff\"}"), false, nil},
		{"a member and another error", errors.Join(member, errors.New("connection reset")), false, nil},
		{"another error", cht.ErrNotFound, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults, ok := MemberErrors(tt.err)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (err %v)", ok, tt.ok, tt.err)
			}
			var paths []string
			for _, f := range faults {
				paths = append(paths, f.Path)
			}
			slices.Sort(paths)
			if !slices.Equal(paths, tt.paths) {
				t.Errorf("paths %q, want %q", paths, tt.paths)
			}
		})
	}
}

// TestUsable: a document is converted despite member errors only when each
// is one the conversion handles: a contact's text members (refused, or
// dropped with a warning when lenient, by fhir's cleanContact) and notes
// and short_name (never written), at the top of a contact or up its
// lineage, or under a report's hydrated contact, patient or place; and a
// report's form fields. Any other member refuses the document as before.
func TestUsable(t *testing.T) {
	member := func(path string) error {
		return &cht.DecodeError{Path: path, Err: errors.New("want string, got number"), Member: true}
	}
	tests := []struct {
		name   string
		err    error
		report bool
		usable bool
	}{
		{"nil", nil, false, true},
		{"phone", member("phone"), false, true},
		{"up the lineage", member("parent.parent.date_of_birth"), false, true},
		{"notes, never written", member("notes"), false, true},
		{"two, joined and wrapped", fmt.Errorf("doc: %w", errors.Join(member("sex"), member("parent.name"))), false, true},
		{"one of two not handled", errors.Join(member("sex"), member("role")), false, false},
		{"role", member("role"), false, false},
		{"reported_date", member("reported_date"), false, false},
		{"a parent's _id", member("parent._id"), false, false},
		{"a place's primary contact", member("parent.contact.phone"), false, false},
		{"a contact's fields", member("fields.a"), false, false},
		{"a report's form field", member("fields.group.temp"), true, true},
		{"a report's fields whole", member("fields"), true, false},
		{"a report's CHW", member("contact.phone"), true, true},
		{"a report's patient's household", member("patient.parent.name"), true, true},
		{"a report's sender", member("from"), true, false},
		{"a report's phone", member("phone"), true, false},
		{"a report's CHW reference", member("contact"), true, false},
		{"a document error", &cht.DecodeError{Path: "name", Err: errors.New("invalid UTF-8")}, false, false},
		{"another error", errors.New("connection reset"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Usable(tt.err, tt.report)
			switch {
			case tt.usable && got != nil:
				t.Errorf("Usable = %v, want nil", got)
			case !tt.usable && got != tt.err:
				t.Errorf("Usable = %v, want the error itself", got)
			}
		})
	}
}
