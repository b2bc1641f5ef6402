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
			if usable := Usable(tt.err); (usable == nil) != (ok || tt.err == nil) {
				t.Errorf("Usable = %v with MemberErrors ok %v", usable, ok)
			}
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
