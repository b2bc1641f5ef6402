package fhirtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
)

// CompareJSON compares two JSON documents, typically a stored resource and the expected one, and
// returns nil when they are equal or an error naming the first differing element (for example
// `fhirtest: Observation.valueQuantity.value: got 62.4, want 62.40`). Object key order does not
// matter; numbers compare by their literal text, since FHIR decimals keep their precision. The
// server-assigned top-level id, meta.versionId and meta.lastUpdated of got are ignored when want
// does not have them, so a test can write the expected resource as it was sent.
func CompareJSON(got, want io.Reader) error {
	g, err := decodeAny(got)
	if err != nil {
		return fmt.Errorf("fhirtest: decoding got: %w", err)
	}
	w, err := decodeAny(want)
	if err != nil {
		return fmt.Errorf("fhirtest: decoding want: %w", err)
	}
	root := "$"
	if wm, ok := w.(map[string]any); ok {
		if rt, ok := wm["resourceType"].(string); ok {
			root = rt
		}
		if gm, ok := g.(map[string]any); ok {
			ignoreServerFields(gm, wm)
		}
	}
	if path, msg := diff(g, w, root); path != "" {
		return fmt.Errorf("fhirtest: %s: %s", path, msg)
	}
	return nil
}

func decodeAny(r io.Reader) (any, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the top-level value")
	}
	return v, nil
}

// ignoreServerFields removes from g the id and meta elements the server assigns when w lacks them.
func ignoreServerFields(g, w map[string]any) {
	if _, ok := w["id"]; !ok {
		delete(g, "id")
	}
	gm, _ := g["meta"].(map[string]any)
	if gm == nil {
		return
	}
	wm, _ := w["meta"].(map[string]any)
	for _, k := range []string{"versionId", "lastUpdated"} {
		if _, ok := wm[k]; !ok {
			delete(gm, k)
		}
	}
	if len(gm) == 0 && wm == nil {
		delete(g, "meta")
	}
}

// diff returns the path and description of the first difference between g and w, or "" if equal.
func diff(g, w any, path string) (string, string) {
	switch wv := w.(type) {
	case map[string]any:
		gv, ok := g.(map[string]any)
		if !ok {
			return path, "got " + describe(g) + ", want an object"
		}
		keys := make([]string, 0, len(wv)+len(gv))
		for k := range wv {
			keys = append(keys, k)
		}
		for k := range gv {
			if _, ok := wv[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			ge, gok := gv[k]
			we, wok := wv[k]
			switch {
			case !gok:
				return path + "." + k, "missing, want " + describe(we)
			case !wok:
				return path + "." + k, "unexpected element " + describe(ge)
			}
			if p, m := diff(ge, we, path+"."+k); p != "" {
				return p, m
			}
		}
	case []any:
		gv, ok := g.([]any)
		if !ok {
			return path, "got " + describe(g) + ", want an array"
		}
		for i := range min(len(gv), len(wv)) {
			if p, m := diff(gv[i], wv[i], path+"["+strconv.Itoa(i)+"]"); p != "" {
				return p, m
			}
		}
		if len(gv) != len(wv) {
			return path, fmt.Sprintf("got %d elements, want %d", len(gv), len(wv))
		}
	default:
		if describe(g) != describe(w) {
			return path, "got " + describe(g) + ", want " + describe(w)
		}
	}
	return "", ""
}

func describe(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case json.Number:
		return x.String()
	default:
		return jsonString(v)
	}
}

// Search runs a search like GET [base]/resourceType?query and returns the matching resources
// (all of them; _count and _offset are ignored) in result order, or an error for an unsupported
// parameter. It is the in-process counterpart of the HTTP search, for assertions.
func (h *Handler) Search(resourceType, query string) ([]json.RawMessage, error) {
	vals, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("fhirtest: search %s?%s: %w", resourceType, query, err)
	}
	q, qerr := parseQuery(resourceType, vals)
	if qerr != nil {
		return nil, fmt.Errorf("fhirtest: search %s?%s: %w", resourceType, query, qerr)
	}
	h.mu.RLock()
	recs := h.st.search(resourceType, q)
	h.mu.RUnlock()
	out := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		out[i] = slices.Clone(r.raw)
	}
	return out, nil
}
