package fhirtest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonscan"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonstr"
)

// This file holds a small JSON codec for the generic values the server stores (map[string]any,
// []any, string, json.Number, bool, nil). It produces exactly what encoding/json does for these
// values (Decoder.UseNumber on input; sorted keys and SetEscapeHTML(false) on output), proven by
// FuzzJSONCodec, at a fraction of the cost: resources are decoded and re-encoded on every write.

const maxJSONDepth = 10000 // as encoding/json

// parseJSON parses exactly one JSON value (with surrounding whitespace) from b.
func parseJSON(b []byte) (any, error) {
	d := jsonscan.New(string(b), false)
	v := parseValue(&d, 0)
	d.End()
	if err := d.Err(); err != nil {
		return nil, err
	}
	return v, nil
}

// parseValue reads the next value of d into the generic form; strings
// with invalid UTF-8 or lone surrogates get U+FFFD, as encoding/json does.
func parseValue(d *jsonscan.Scanner, depth int) any {
	switch d.Peek() {
	case '{', '[':
		if depth >= maxJSONDepth {
			d.Fail("exceeded max depth")
			return nil
		}
		if d.Peek() == '[' {
			a := make([]any, 0, 4)
			d.Array(func() { a = append(a, parseValue(d, depth+1)) })
			return a
		}
		m := make(map[string]any)
		d.Object(func(k string) { m[k] = parseValue(d, depth+1) })
		return m
	case '"':
		return d.Str()
	case 't', 'f':
		return d.Boolean()
	case 'n':
		if !d.Null() {
			d.Fail("invalid literal")
		}
		return nil
	}
	return json.Number(d.Number())
}

// appendJSON appends the encoding of v: objects with sorted keys, no HTML escaping.
func appendJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case string:
		return appendString(b, x), nil
	case json.Number:
		if x == "" {
			return append(b, '0'), nil
		}
		if !jsonscan.ValidNumber(string(x)) {
			return nil, fmt.Errorf("invalid number literal %q", string(x))
		}
		return append(b, x...), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, x[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	default:
		enc, err := encodeJSON(x)
		if err != nil {
			return nil, err
		}
		return append(b, enc...), nil
	}
}

// appendString appends s as a JSON string the way encoding/json does with SetEscapeHTML(false).
func appendString(b []byte, s string) []byte { return jsonstr.Append(b, s, false) }
