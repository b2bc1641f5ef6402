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
}

// Hydrated reports whether the link carries the full parent document.
func (l *Lineage) Hydrated() bool { return l != nil && l.Doc != nil }

// IDs returns the ancestor ids from this link upwards, nearest first.
// It returns nil for a nil Lineage.
func (l *Lineage) IDs() []string {
	var ids []string
	for p := l; p != nil; p = p.Parent {
		ids = append(ids, p.ID)
	}
	return ids
}

// Depth returns the number of links, 0 for nil.
func (l *Lineage) Depth() int {
	n := 0
	for p := l; p != nil; p = p.Parent {
		n++
	}
	return n
}

// At returns the ancestor i levels up (0 is this link), or nil.
func (l *Lineage) At(i int) *Lineage {
	p := l
	for ; p != nil && i > 0; i-- {
		p = p.Parent
	}
	return p
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
	if l.Parent != nil {
		m["parent"] = l.Parent
	} else if l.raw != nil {
		m["parent"] = l.raw
	}
	return marshalMembers(nil, m)
}

// UnmarshalJSON decodes a minified or hydrated link. An empty string or
// null decodes to a Lineage with an empty ID; documents use decodeLineage,
// which maps those to a nil *Lineage.
func (l *Lineage) UnmarshalJSON(b []byte) error {
	v, _, err := decodeLineage(b, "", 0)
	if err != nil {
		return err
	}
	if v == nil {
		*l = Lineage{}
		return nil
	}
	*l = *v
	return nil
}

// decodeLineage decodes a parent member. keepRaw reports that the value was
// a placeholder ("" or null) for no parent that should be re-encoded as is.
func decodeLineage(raw []byte, path string, depth int) (l *Lineage, keepRaw bool, err error) {
	if depth > maxDepth {
		return nil, false, &DecodeError{Path: path, Err: errTooDeep}
	}
	switch k := jsonKind(raw); k {
	case "null":
		return nil, true, nil
	case "string":
		s, err := decodeString(raw, path)
		if err != nil {
			return nil, false, err
		}
		if s == "" {
			return nil, true, nil
		}
		// A bare id, as accepted by CHT's create endpoints.
		return &Lineage{ID: s}, false, nil
	case "object":
	default:
		return nil, false, decodeErr(path, "want object or \"\", got %s", k)
	}
	m, err := decodeObject(raw, path)
	if err != nil {
		return nil, false, err
	}
	for k := range m {
		if k != "_id" && k != "parent" {
			// More than a minified link: a hydrated parent document.
			c := new(Contact)
			if err := c.decodeMembers(m, path, depth); err != nil {
				return nil, false, err
			}
			return &Lineage{ID: c.ID, Parent: c.Parent, Doc: c}, false, nil
		}
	}
	l = new(Lineage)
	if v, ok := m["_id"]; ok {
		if l.ID, err = decodeString(v, joinPath(path, "_id")); err != nil {
			return nil, false, err
		}
	}
	if v, ok := m["parent"]; ok {
		p, keep, err := decodeLineage(v, joinPath(path, "parent"), depth+1)
		if err != nil {
			return nil, false, err
		}
		l.Parent = p
		if keep {
			l.raw = v
		}
	}
	return l, false, nil
}
