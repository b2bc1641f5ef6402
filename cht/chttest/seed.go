package chttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
)

// PutDoc stores a document as given, as a replication or a
// `_bulk_docs new_edits:false` write would: no revision check, a _rev the
// document carries is kept (one is generated otherwise). doc may be a
// struct (e.g. a cht.Contact), a map, or JSON bytes; it must have an _id.
// It returns the stored revision.
func (s *Server) PutDoc(doc any) (string, error) {
	m, err := toDocValue(doc)
	if err != nil {
		return "", fmt.Errorf("chttest: put doc: %w", err)
	}
	return s.store.put(m, true)
}

// PutDocs stores each document with PutDoc.
func (s *Server) PutDocs(docs ...any) error {
	for i, d := range docs {
		if _, err := s.PutDoc(d); err != nil {
			return fmt.Errorf("chttest: doc %d: %w", i, err)
		}
	}
	return nil
}

// DeleteDoc deletes a document (a CouchDB tombstone); it is then not_found
// for hydrate and appears as deleted in _changes.
func (s *Server) DeleteDoc(id string) error {
	if _, ok := s.store.get(id); !ok {
		return fmt.Errorf("chttest: delete %q: not found", id)
	}
	_, err := s.store.put(map[string]any{"_id": id, "_deleted": true}, true)
	return err
}

// Seed stores the documents of a JSON fixture: an array of documents or a
// CouchDB bulk body {"docs":[...]}.
func (s *Server) Seed(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("chttest: seed: %w", err)
	}
	var docs []json.RawMessage
	trimmed := bytes.TrimSpace(b)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		err = json.Unmarshal(trimmed, &docs)
	default:
		var bulk struct {
			Docs []json.RawMessage `json:"docs"`
		}
		err = json.Unmarshal(trimmed, &bulk)
		if err == nil && bulk.Docs == nil {
			err = errors.New(`expected a JSON array or {"docs":[...]}`)
		}
		docs = bulk.Docs
	}
	if err != nil {
		return fmt.Errorf("chttest: seed: %w", err)
	}
	for i, raw := range docs {
		if _, err := s.PutDoc(raw); err != nil {
			return fmt.Errorf("chttest: seed doc %d: %w", i, err)
		}
	}
	return nil
}

// SeedFile seeds from a JSON fixture file (see Seed).
func (s *Server) SeedFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("chttest: seed: %w", err)
	}
	defer f.Close()
	return s.Seed(f)
}

// Doc returns the stored JSON of a live document (with _id and _rev) and
// whether it exists.
func (s *Server) Doc(id string) (json.RawMessage, bool) {
	raw, ok := s.store.getRaw(id)
	if !ok {
		return nil, false
	}
	return bytes.Clone(raw), true
}

// Docs returns every live document, ordered by _id.
func (s *Server) Docs() []json.RawMessage {
	ids := s.store.ids(nil)
	out := make([]json.RawMessage, 0, len(ids))
	for _, id := range ids {
		if raw, ok := s.Doc(id); ok {
			out = append(out, raw)
		}
	}
	return out
}

// Reports returns the live reports (type data_record) whose form equals form
// ("" for all), ordered by _id.
func (s *Server) Reports(form string) []json.RawMessage {
	ids := s.store.ids(func(_ string, m docMeta) bool { return m.typ == "data_record" })
	var out []json.RawMessage
	for _, id := range ids {
		d, ok := s.store.get(id)
		if !ok || (form != "" && str(d["form"]) != form) {
			continue
		}
		raw, _ := s.Doc(id)
		out = append(out, raw)
	}
	return out
}

// toDocValue is toDoc, but marshals a struct value through a pointer so that
// pointer-receiver MarshalJSON methods (such as cht.Contact's) apply.
func toDocValue(v any) (map[string]any, error) {
	rv := reflect.ValueOf(v)
	if rv.IsValid() && rv.Kind() == reflect.Struct {
		p := reflect.New(rv.Type())
		p.Elem().Set(rv)
		v = p.Interface()
	}
	return toDoc(v)
}
