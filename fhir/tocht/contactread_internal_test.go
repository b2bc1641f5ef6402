package tocht

import (
	"encoding/json"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
)

// TestWriteBackKeepsWhatCouldNotBeRead: a contact with members that could
// not be decoded is written back as stored, but for the members changed
// since it was read; one without is written as cht.Contact encodes it.
func TestWriteBackKeepsWhatCouldNotBeRead(t *testing.T) {
	tests := []struct {
		name, stored string
		want         string
	}{
		{"a number phone", `{"_id":"a","_rev":"1-x","type":"person","name":"A","phone":254712345678,"parent":"hh"}`,
			`{"_id":"a","_rev":"1-x","type":"person","name":"B","phone":254712345678,"parent":"hh"}`},
		{"a number below the parent", `{"_id":"a","_rev":"1-x","type":"person","name":"A","parent":{"_id":"hh","parent":{"_id":5}}}`,
			`{"_id":"a","_rev":"1-x","type":"person","name":"B","parent":{"_id":"hh","parent":{"_id":5}}}`},
		{"nothing unread", `{"_id":"a","_rev":"1-x","type":"person","name":"A","parent":"hh"}`,
			`{"_id":"a","_rev":"1-x","type":"person","name":"B","parent":{"_id":"hh"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c cht.Contact
			s := storedContact{raw: json.RawMessage(tt.stored)}
			if err := c.UnmarshalJSON(s.raw); err != nil {
				var ok bool
				if s.faults, ok = direct.MemberErrors(err); !ok {
					t.Fatal(err)
				}
			}
			before, err := c.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			c.Name = "B"
			doc, err := s.writeBack(&c, before)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(got, json.RawMessage(tt.want)) {
				t.Errorf("written %s\nwant %s", got, tt.want)
			}
		})
	}
}
