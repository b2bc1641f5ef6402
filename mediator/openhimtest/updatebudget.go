package openhimtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
)

// jsObject is a JSON object with its keys in the order JavaScript's
// for...in visits them after JSON.parse: integer-like keys first, in
// ascending order, then the others in the order they first appear.
type jsObject struct {
	keys []string
	vals map[string]any
}

// decodeOrdered parses one JSON value, its objects as *jsObject.
func decodeOrdered(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	v, err := decodeOrderedValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("openhimtest: data after the JSON value")
	}
	return v, nil
}

func decodeOrderedValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, float64, bool or nil, as json.Unmarshal into any
	}
	switch d {
	case '{':
		o := &jsObject{vals: map[string]any{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := decodeOrderedValue(dec)
			if err != nil {
				return nil, err
			}
			if _, dup := o.vals[k]; !dup {
				o.keys = append(o.keys, k) // JSON.parse keeps the first place, the last value
			}
			o.vals[k] = v
		}
		_, err := dec.Token()
		o.keys = forInOrder(o.keys)
		return o, err
	case '[':
		a := []any{}
		for dec.More() {
			v, err := decodeOrderedValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return nil, errors.New("openhimtest: unexpected JSON delimiter")
}

// forInOrder puts the integer-like keys (array indexes: "0", "17", not
// "01" or "-1") first in ascending order, as JavaScript's for...in does.
func forInOrder(keys []string) []string {
	index := func(k string) (uint64, bool) {
		n, err := strconv.ParseUint(k, 10, 32)
		return n, err == nil && n < 1<<32-1 && strconv.FormatUint(n, 10) == k
	}
	var ints, rest []string
	for _, k := range keys {
		if _, ok := index(k); ok {
			ints = append(ints, k)
		} else {
			rest = append(rest, k)
		}
	}
	if len(ints) == 0 {
		return keys
	}
	slices.SortStableFunc(ints, func(a, b string) int {
		x, _ := index(a)
		y, _ := index(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return append(ints, rest...)
}

// plainJSON turns the *jsObject values of v back into map[string]any.
func plainJSON(v any) any {
	switch x := v.(type) {
	case *jsObject:
		m := make(map[string]any, len(x.vals))
		for k, e := range x.vals {
			m[k] = plainJSON(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i := range x {
			a[i] = plainJSON(x[i])
		}
		return a
	}
	return v
}

// enforceUpdateBodies is the body budget of core's updateTransaction
// (src/api/transactions.js, v4.0.5 to v8.5.0): it starts the running total
// at the stored transaction's bodies, as calculateTransactionBodiesByteLength
// counts them, and then applies enforceMaxBodiesSize (the API's recursive
// one) to the update, cutting what goes over MAX_BODIES_SIZE.
//
// calculateTransactionBodiesByteLength walks the Mongoose document core
// read with findOne (not a plain object) through recursivelySearchObject,
// whose for...in returns from the whole object at the first value already
// in its WeakSet. It reaches the stored request and response through the
// document's _doc, but every array subdocument (an orchestration, a route)
// has as its first key __parentArray, the array the walk has just visited
// (Mongoose's EmbeddedDocument / ArraySubdocument constructor sets it
// first): so the stored orchestrations' and routes' bodies are not
// counted. Only the stored request and response bodies are, once each
// (checked on core's transaction schema, src/model/transactions.js, with
// the Mongoose versions core's lockfiles pin from 4.0.5 to 8.5.0, 4.12.0,
// 5.12.7, 5.13.9, 5.13.15, 6.11.1, 6.11.5 and 6.12.7, and 4.13.21, which
// npm installs for 4.0.5 today).
//
// The API's enforceMaxBodiesSize then visits the update: its
// request.body (a cut one sets the update's canRerun to false), its
// response.body, then every object and array in it, in for...in order,
// doing the same for each (an orchestration's request and response
// bodies; also a properties object's request.body or response.body).
func enforceUpdateBodies(stored *Transaction, upd *jsObject) {
	total := 0
	if stored.Request != nil {
		total += len(stored.Request.Body)
	}
	if stored.Response != nil {
		total += len(stored.Response.Body)
	}
	primary := true
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			primary = false
			for _, e := range x {
				switch e.(type) {
				case *jsObject, []any:
					walk(e)
				}
			}
		case *jsObject:
			if q, ok := x.vals["request"].(*jsObject); ok {
				if b, ok := q.vals["body"].(string); ok {
					if enforceMaxBodiesSize(&total, &b, false) && primary {
						x.vals["canRerun"] = false
					}
					q.vals["body"] = b
				}
			}
			primary = false
			if r, ok := x.vals["response"].(*jsObject); ok {
				if b, ok := r.vals["body"].(string); ok {
					enforceMaxBodiesSize(&total, &b, false)
					r.vals["body"] = b
				}
			}
			for _, k := range x.keys {
				switch e := x.vals[k].(type) {
				case *jsObject, []any:
					walk(e)
				}
			}
		}
	}
	walk(upd)
}
