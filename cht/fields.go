package cht

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Fields is a report's form data: decoded JSON where objects are
// map[string]any, arrays []any, strings string, booleans bool and numbers
// json.Number (so that large integers are not rounded). Use [Fields.Field]
// and the typed helpers rather than type-switching by hand; for a date,
// [ParseMillis] reads what [Fields.String] returns (milliseconds, or an
// ISO 8601 date or date-time).
type Fields map[string]any

// Field returns the value at a dotted path such as "danger_signs.fever"
// or "inputs.contact._id". Numeric segments index arrays
// ("observations.0.code"). ok is false when any segment is missing.
func (f Fields) Field(path string) (any, bool) {
	if f == nil || path == "" {
		return nil, false
	}
	var cur any = map[string]any(f)
	for seg := range strings.SplitSeq(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case Fields:
			next, ok := v[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// String returns the value at path as a string. Strings are returned as
// is; numbers and booleans as their JSON text. ok is false for a missing
// path, null, objects and arrays.
func (f Fields) String(path string) (string, bool) {
	v, ok := f.Field(path)
	if !ok {
		return "", false
	}
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// Float returns the value at path as a number. Numeric strings (XForms
// store most answers as strings) are parsed; ok is false otherwise.
func (f Fields) Float(path string) (float64, bool) {
	v, ok := f.Field(path)
	if !ok {
		return 0, false
	}
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case string:
		s = strings.TrimSpace(v)
	default:
		return 0, false
	}
	x, err := strconv.ParseFloat(s, 64)
	return x, err == nil
}

// Bool returns the value at path as a boolean. Booleans, "true"/"false"
// and the XForm answers "yes"/"no" are recognised; ok is false otherwise.
func (f Fields) Bool(path string) (bool, bool) {
	v, ok := f.Field(path)
	if !ok {
		return false, false
	}
	switch v := v.(type) {
	case bool:
		return v, true
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "yes":
			return true, true
		case "false", "no":
			return false, true
		}
	}
	return false, false
}
