package cht

import (
	"encoding/json"
)

// Lineage is one link of a contact's parent chain.
//
// CHT stores lineage minified, as nested {"_id": ..., "parent": {...}}
// objects; hydration (the hydrate endpoint, with_lineage=true, outbound
// push) replaces each link with the full parent document. Lineage accepts
// both: ID and Parent are always set, and Doc holds the full parent
// document when it was hydrated (Doc is nil for a minified link). When Doc
// is set, Doc.Parent is the same pointer as Parent.
//
// A top-level place stores "parent": "" or no parent at all; both decode to
// a nil *Lineage on the containing document (the original value is kept
// for re-encoding).
type Lineage struct {
	ID     string   // _id of this ancestor
	Parent *Lineage // next ancestor up, nil at the top of the hierarchy
	Doc    *Contact // full document when hydrated, nil when minified

	raw json.RawMessage // placeholder parent ("" or null) to re-encode
	// emptyID records a minified link decoded with "_id": "" (the top
	// link cht-core's test factories write), for MarshalJSON to keep.
	emptyID bool
}

// Minify returns a copy of the chain with only ids, the way CHT stores it.
func (l *Lineage) Minify() *Lineage {
	if l == nil {
		return nil
	}
	return &Lineage{ID: l.ID, Parent: l.Parent.Minify()}
}

// NewLineage builds a minified chain from ids, nearest ancestor first.
// It returns nil when ids is empty.
func NewLineage(ids ...string) *Lineage {
	var l *Lineage
	for i := len(ids) - 1; i >= 0; i-- {
		l = &Lineage{ID: ids[i], Parent: l}
	}
	return l
}

// MarshalJSON encodes the full document for a hydrated link and
// {"_id","parent"} for a minified one.
func (l *Lineage) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("null"), nil
	}
	if l.Doc != nil {
		d := *l.Doc
		d.ID = l.ID
		d.Parent = l.Parent
		return d.MarshalJSON()
	}
	m := members{}
	m.str("_id", l.ID)
	if l.ID == "" && l.emptyID {
		m["_id"] = json.RawMessage(`""`)
	}
	if l.Parent != nil {
		m["parent"] = l.Parent
	} else if l.raw != nil {
		m["parent"] = l.raw
	}
	return marshalMembers(nil, m)
}

// UnmarshalJSON decodes a minified or hydrated link. An empty string or
// null decodes to a Lineage with an empty ID.
func (l *Lineage) UnmarshalJSON(b []byte) error {
	d := newBytesDecoder(b, nil)
	v, _ := d.lineage(kindAll)
	d.end()
	if v == nil {
		v = new(Lineage)
	}
	*l = *v
	err := d.result(kindAll, 0, len(d.soft))
	d.release()
	return err
}
