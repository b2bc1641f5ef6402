package cht

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// maxDepth bounds how deeply parent/contact chains may nest when decoding.
// Real CHT hierarchies are a handful of levels deep; the bound keeps hostile
// input from making decoding quadratic.
const maxDepth = 64

// DecodeError reports a document that could not be decoded. Path names the
// offending JSON member in dotted form, e.g. "parent.parent._id" or
// "fields"; it is empty for the document itself.
//
// Use errors.As(err, new(*cht.DecodeError)) to detect it.
type DecodeError struct {
	Path string // dotted JSON path; "" for the document root
	Err  error  // what was wrong
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Path == "" {
		return "cht: decode document: " + e.Err.Error()
	}
	return "cht: decode " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(path, format string, args ...any) error {
	return &DecodeError{Path: path, Err: fmt.Errorf(format, args...)}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonKind names the kind of a JSON value from its first byte.
func jsonKind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

func isNull(raw []byte) bool { return jsonKind(raw) == "null" }

// decodeObject splits a JSON object into its members.
func decodeObject(raw []byte, path string) (map[string]json.RawMessage, error) {
	if k := jsonKind(raw); k != "object" {
		return nil, decodeErr(path, "want object, got %s", k)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &DecodeError{Path: path, Err: err}
	}
	return m, nil
}

// decodeString decodes a string member leniently: null is "", and a number
// or boolean is kept as its literal text (some deployments store ids or
// phone numbers as numbers). Objects and arrays are errors.
func decodeString(raw []byte, path string) (string, error) {
	switch k := jsonKind(raw); k {
	case "string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &DecodeError{Path: path, Err: err}
		}
		return s, nil
	case "null":
		return "", nil
	case "number", "boolean":
		return string(bytes.TrimSpace(raw)), nil
	default:
		return "", decodeErr(path, "want string, got %s", k)
	}
}

// decodeAny decodes arbitrary JSON keeping numbers as json.Number so that
// large integers survive a round trip.
func decodeAny(raw []byte, path string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &DecodeError{Path: path, Err: err}
	}
	return v, nil
}

// errTooDeep is returned for documents nested beyond maxDepth.
var errTooDeep = errors.New("nested too deeply")

// members collects marshalled members of a document; typed members override
// extra members of the same name.
type members map[string]any

func (m members) str(key, v string) {
	if v != "" {
		m[key] = v
	}
}

func marshalMembers(extra map[string]json.RawMessage, typed members) ([]byte, error) {
	out := make(map[string]any, len(extra)+len(typed))
	for k, v := range extra {
		out[k] = v
	}
	for k, v := range typed {
		out[k] = v
	}
	return json.Marshal(out)
}

// copyExtra returns a copy of extra with the given known keys removed.
func takeExtra(m map[string]json.RawMessage, known ...string) map[string]json.RawMessage {
	for _, k := range known {
		delete(m, k)
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
