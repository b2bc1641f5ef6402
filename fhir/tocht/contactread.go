package tocht

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// CHT stores a contact's members as they were sent: its people API checks
// the name only (cht-core shared-libs/contacts/src/people.js
// validatePerson), and a document written to /medic is not checked at
// all. A contact may so hold a member of a type cht.Contact does not
// decode, such as a phone sent as a number. The cht package still decodes
// the rest of such a document, keeps the member verbatim (Contact.Extra)
// and reports it (cht.DecodeError with Member set). The bridge reads such
// a contact as any other (getContact) unless the member is one it needs
// (neededBy), and writes it back without changing the member
// (writeBack).

// storedContact is a CHT contact as getContact read it.
type storedContact struct {
	// raw is the document as CHT stores it.
	raw json.RawMessage
	// faults are the members that could not be decoded (see
	// direct.MemberErrors); the contact holds every other member.
	faults []*cht.DecodeError
}

// getContact reads the CHT document id into c, as the orchestration
// named. A document of which only some members could not be decoded is
// read (see direct.MemberErrors); one that could not be decoded at all is an
// error, as is a failed read (matching cht.ErrNotFound for a document CHT
// does not have).
func (b *Bridge) getContact(ctx context.Context, orchestration, id string, c *cht.Contact) (storedContact, error) {
	var raw json.RawMessage
	if err := b.cht.Docs.Get(mediator.WithOrchestration(ctx, orchestration), id, &raw); err != nil {
		return storedContact{}, err
	}
	err := c.UnmarshalJSON(raw)
	if err == nil {
		return storedContact{raw: raw}, nil
	}
	faults, ok := direct.MemberErrors(err)
	if !ok {
		return storedContact{}, fmt.Errorf("cht: get doc %q: %w", id, err)
	}
	return storedContact{raw: raw, faults: faults}, nil
}

// Members the bridge reads of a contact, by what it reads it for.
var (
	// subjectMembers tell a person from a place (Bridge.isPerson).
	subjectMembers = regexp.MustCompile(`^(_id|type|contact_type)$`)
	// personMembers are those of a person a Patient updates, which is
	// written back with its revision.
	personMembers = regexp.MustCompile(`^(_id|_rev|type|contact_type)$`)
	// placeMembers are those of a parent place: its type and the
	// lineage a new person copies (the parent's minified lineage:
	// parent, parent.parent, ... and their _ids).
	placeMembers = regexp.MustCompile(`^(_id|type|contact_type|parent(\.parent)*(\._id)?)$`)
)

// neededBy returns the first member of s that could not be decoded and
// that needed matches, nil when there is none.
func (s storedContact) neededBy(needed *regexp.Regexp) *cht.DecodeError {
	for _, f := range s.faults {
		if needed.MatchString(f.Path) {
			return f
		}
	}
	return nil
}

// unreadable is the message of a CHT document whose member f, which the
// bridge needs, could not be decoded.
func unreadable(id string, f *cht.DecodeError) string {
	return fmt.Sprintf("CHT document %s has a %q member the mediator cannot read (%v): correct it in CHT", id, f.Path, f.Err)
}

// writeBack returns the document to write for c, read as s and changed
// since: c itself, unless members of it could not be decoded. Those are
// kept as stored, wherever they are: the document written is then the
// stored one with only the members whose encoding changed from before
// (c's encoding before the change) replaced.
func (s storedContact) writeBack(c *cht.Contact, before []byte) (any, error) {
	if len(s.faults) == 0 {
		return c, nil
	}
	after, err := c.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var stored, was, now map[string]json.RawMessage
	for _, d := range []struct {
		raw []byte
		m   *map[string]json.RawMessage
	}{{s.raw, &stored}, {before, &was}, {after, &now}} {
		if err := json.Unmarshal(d.raw, d.m); err != nil {
			return nil, err
		}
	}
	if stored == nil {
		return nil, errors.New("the stored document is not an object")
	}
	for k := range was {
		if _, ok := now[k]; !ok {
			delete(stored, k)
		}
	}
	for k, v := range now {
		if !bytes.Equal(was[k], v) {
			stored[k] = v
		}
	}
	return stored, nil
}
