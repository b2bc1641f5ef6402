package chttest

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/phone"
)

// This file reads SMS messages as CHT's records API does
// (api/src/services/report/smsparser.js and textforms-parser.js): the form
// code from the message header, then either the compact format (values in
// field order) or textforms (tiny label and value pairs separated by #),
// each value converted by its field's type. JavaScript values are modelled
// as float64 numbers (NaN is nil, as JSON.stringify writes it), strings,
// bools, []any and map[string]any. Muvuku and JavaRosa messages
// ("1!FORM!..." and "J1!FORM!...") and Bikram Sambat dates are not
// modelled.

// zeroWidth matches the invisible characters CHT strips (U+200B-U+200D,
// U+FEFF).
var zeroWidth = regexp.MustCompile("[\u200B-\u200D\uFEFF]")

var (
	muvukuRE    = regexp.MustCompile(`^\s*([A-Za-z]?\d)!.+!.+`)
	formCodeRE  = regexp.MustCompile(`^\s*([^\s!\-,:#]+)[\s!\-,:#]*.*`)
	boundaryRE  = regexp.MustCompile(`\s*#\s*`)
	fieldRE     = regexp.MustCompile(`\s*([A-Za-z_\.\*.]+)[\s\-!]*([\d]{4}[-/][\d]{1,2}[-/][\d]{1,2})?[\s\-!]*([1-9][0-9]*(?:\.(?:\d+)?)?)?[\s\-!]*(.+?)?\s*$`)
	numericRE   = regexp.MustCompile(`^\s*[1-9][0-9]*(?:\.(?:\d+)?)?\s*$`)
	compactRE   = regexp.MustCompile(`"[^"]+"|[^"\s]+`)
	compactRE2  = regexp.MustCompile(`".+"|[^"\s]+`)
	devanagariR = strings.NewReplacer("०", "0", "१", "1", "२", "2", "३", "3", "४", "4", "५", "5", "६", "6", "७", "7", "८", "8", "९", "9")
)

// smsFormCode is smsparser.getFormCode: the upper-cased code of a muvuku
// ("x!CODE!...") or textforms ("CODE ...") header.
func smsFormCode(msg string) (string, bool) {
	if parts := strings.Split(msg, "!"); len(parts) >= 3 {
		return strings.ToUpper(parts[1]), true
	}
	if m := formCodeRE.FindStringSubmatch(msg); m != nil {
		return strings.ToUpper(m[1]), true
	}
	return "", false
}

// stripFormCode removes the form code and its separators from the start
// of a message (case-insensitively).
func stripFormCode(code, msg string) string {
	if code == "" {
		return msg
	}
	re, err := regexp.Compile(`(?i)^\s*` + regexp.QuoteMeta(code) + `[\s!\-,:#]*`)
	if err != nil {
		return msg
	}
	return re.ReplaceAllString(msg, "")
}

// isCompact is textforms-parser isCompact: a message without # whose start
// is no field's tiny or short label.
func isCompact(f *Form, msg, locale string) bool {
	if msg == "" || f.Fields == nil {
		return false
	}
	fields := boundaryRE.Split(msg, -1)
	if len(fields) != 1 {
		return false
	}
	for _, k := range f.keys() {
		fd := f.Fields[k]
		for _, l := range []string{label(fd.Labels.Tiny, locale), label(fd.Labels.Short, locale)} {
			if l == "" {
				continue
			}
			if strings.EqualFold(fields[0], l) {
				return false
			}
			// CHT builds this regular expression from the label unescaped.
			if re, err := regexp.Compile(`(?i)^` + l + `[\s0-9]`); err == nil && re.MatchString(fields[0]) {
				return false
			}
		}
	}
	return true
}

// parseCompact assigns the message's space-separated values (a quoted value
// may hold spaces) to the fields in definition order; a trailing string
// field takes the rest of the message. CHT throws on a message without any
// value; ok is false then.
func parseCompact(f *Form, msg string) (map[string]any, bool) {
	values := compactRE.FindAllString(msg, -1)
	if values == nil {
		return nil, false
	}
	keys := f.keys()
	if len(values) > len(keys) {
		values = compactRE2.FindAllString(msg, -1)
	}
	out := map[string]any{}
	for i, key := range keys {
		if len(values) == 0 {
			break
		}
		var v string
		if i == len(keys)-1 && f.Fields[key].Type == "string" {
			v = strings.Join(values, " ")
		} else {
			v, values = values[0], values[1:]
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if _, ok := out[key]; !ok {
			out[key] = v
		}
	}
	return out, true
}

// textformsPair is a "key number text" component kept as a pair when its
// key repeats.
type textformsPair struct {
	Type   string `json:"type"`
	Values []any  `json:"values"`
}

// parseTextforms is textforms-parser parse: "#"-separated components, each
// a key followed by a date, a number or text; keys are lower-cased and a
// repeated key collects its values in an array.
func parseTextforms(msg string) map[string]any {
	out := map[string]any{}
	if msg == "" {
		return out
	}
	set := func(key string, v any) {
		key = strings.ToLower(key)
		cur, ok := out[key]
		switch {
		case !ok:
			if p, isPair := v.(textformsPair); isPair {
				var b strings.Builder
				for _, x := range p.Values {
					b.WriteString(jsString(x))
				}
				v = b.String()
			}
			if v != nil {
				out[key] = v
			}
		case isArray(cur):
			out[key] = append(cur.([]any), v)
		default:
			out[key] = []any{cur, v}
		}
	}
	for _, field := range boundaryRE.Split(msg, -1) {
		m := fieldRE.FindStringSubmatch(field)
		if m == nil {
			continue
		}
		key, date, numeric, other := m[1], m[2], m[3], m[4]
		if strings.TrimSpace(other) == "" {
			other = ""
		}
		if other != "" && numeric != "" {
			set(key, textformsPair{Type: "pair", Values: []any{formatAs(typeOf(numeric), numeric), formatAs(typeOf(other), other)}})
			continue
		}
		if other != "" && typeOf(other) != "string" {
			numeric, other = other, ""
		}
		switch {
		case numeric != "":
			set(key, formatAs(typeOf(numeric), numeric))
		case date != "":
			set(key, formatAs("date", date))
		case other != "":
			set(key, other)
		default:
			set(key, nil)
		}
	}
	return out
}

func isArray(v any) bool { _, ok := v.([]any); return ok }

func typeOf(s string) string {
	if numericRE.MatchString(s) {
		if strings.Contains(s, ".") {
			return "numeric"
		}
		return "integer"
	}
	return "string"
}

func formatAs(typ, v string) any {
	switch typ {
	case "integer":
		return jsParseFloat(v, true)
	case "numeric":
		return jsParseFloat(v, false)
	case "date":
		if ms, ok := parseDateMillis(v); ok {
			return float64(ms)
		}
		return nil
	}
	return v
}

// jsParseFloat is parseInt(v, 10) or parseFloat(v) for the numeric strings
// typeOf accepts.
func jsParseFloat(v string, integer bool) any {
	v = strings.TrimSpace(v)
	if integer {
		if i := strings.IndexByte(v, '.'); i >= 0 {
			v = v[:i]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "."), 64)
	if err != nil {
		return nil
	}
	return f
}

// parseSMS is smsparser.parse for the compact and textforms formats: it
// returns the form data keyed by field (dot keys nested) with each value
// converted by its field type. ok is false where CHT throws.
func (s *Server) parseSMS(f *Form, message, locale string) (map[string]any, bool) {
	data := map[string]any{}
	if message == "" || f.Fields == nil || muvukuRE.MatchString(message) {
		return data, true
	}
	msg := stripFormCode(f.Meta.Code, message)
	var raw map[string]any
	if isCompact(f, msg, locale) {
		var ok bool
		if raw, ok = parseCompact(f, msg); !ok {
			return nil, false
		}
	} else {
		raw = parseTextforms(msg)
		for _, k := range f.keys() {
			l := strings.ToLower(label(f.Fields[k].Labels.Tiny, locale))
			if k != l && jsTruthy(raw[l]) {
				raw[k] = raw[l]
				delete(raw, l)
			}
		}
	}
	set := s.phoneSettings()
	for _, k := range f.keys() {
		if !jsTruthy(raw[k]) {
			continue
		}
		v := parseField(f.Fields[k], raw[k], k, set, locale)
		createDeepKey(data, strings.Split(k, "."), v)
	}
	return data, true
}

// createDeepKey sets obj[k0][k1]... = v, creating objects on the way;
// assigning into a non-object is silently ignored (sloppy-mode JavaScript).
func createDeepKey(obj map[string]any, keys []string, v any) {
	for len(keys) > 1 {
		next := obj[keys[0]]
		if !jsTruthy(next) {
			m := map[string]any{}
			obj[keys[0]] = m
			next = m
		}
		var ok bool
		if obj, ok = next.(map[string]any); !ok {
			return
		}
		keys = keys[1:]
	}
	obj[keys[0]] = v
}

// parseField is smsparser.parseField: the value of one field by its type.
func parseField(fd FormField, raw any, key string, ps phone.Settings, locale string) any {
	if s, ok := raw.(string); ok && s == "" {
		return nil
	}
	switch fd.Type {
	case "integer":
		cleaned := zeroWidth.ReplaceAllString(jsString(raw), "")
		if fd.List != nil {
			for _, item := range fd.List {
				if len(item) == 2 && jsString(item[0]) == cleaned {
					return label(item[1], locale)
				}
			}
			return nil
		}
		return parseNum(cleaned)
	case "string":
		if fd.List != nil {
			cleaned := raw
			if s, ok := raw.(string); ok {
				cleaned = zeroWidth.ReplaceAllString(s, "")
			}
			for _, item := range fd.List {
				if len(item) == 2 && item[0] == cleaned {
					return item[1]
				}
			}
		} else if key == "patient_id" || key == "place_id" {
			return standardiseDigits(raw)
		}
		return raw
	case "date":
		switch t := raw.(type) {
		case float64:
			return t
		case string:
			if ms, ok := parseDateMillis(zeroWidth.ReplaceAllString(t, "")); ok {
				return float64(ms)
			}
		}
		return nil
	case "boolean":
		switch parseNum(zeroWidth.ReplaceAllString(jsString(raw), "")) {
		case 1.0:
			return true
		case 0.0:
			return false
		}
		return nil
	case "month":
		return parseNum(zeroWidth.ReplaceAllString(jsString(raw), ""))
	case "phone_number":
		std := standardiseDigits(raw)
		if s, ok := std.(string); ok {
			if n, ok := phone.Normalize(ps, s); ok {
				return n
			}
		}
		return std
	case "bsYear", "bsMonth", "bsDay":
		return standardiseDigits(raw)
	}
	return raw
}

// standardiseDigits replaces Devanagari digits and strips invisible
// characters of a truthy value's string form.
func standardiseDigits(v any) any {
	if !jsTruthy(v) {
		return v
	}
	return zeroWidth.ReplaceAllString(devanagariR.Replace(jsString(v)), "")
}

// parseNum is smsparser parseNum: Number() of the standardised string, or
// null (nil) when that is not finite or the string is empty.
func parseNum(s string) any {
	str, _ := standardiseDigits(s).(string)
	if str == "" {
		return nil
	}
	f, ok := jsNumber(str)
	if !ok || math.IsInf(f, 0) {
		return nil
	}
	return f
}

// jsNumber is JavaScript's Number(string); ok is false for NaN.
func jsNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	for _, p := range []struct {
		prefix string
		base   int
	}{{"0x", 16}, {"0X", 16}, {"0o", 8}, {"0O", 8}, {"0b", 2}, {"0B", 2}} {
		if strings.HasPrefix(s, p.prefix) {
			n, err := strconv.ParseUint(s[2:], p.base, 64)
			return float64(n), err == nil
		}
	}
	switch strings.TrimLeft(s, "+-") {
	case "Infinity":
		return math.Inf(1), true
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-') {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// jsString is JavaScript's String(v) for parsed values.
func jsString(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case float64:
		return jsNumberString(t)
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = jsString(x)
		}
		return strings.Join(parts, ",")
	}
	return "[object Object]"
}

func jsTruthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case string:
		return t != ""
	case float64:
		return t != 0 && !math.IsNaN(t)
	case bool:
		return t
	}
	return true
}

// dateLayouts are the ISO 8601 forms moment parses, and the slash form
// Date parses; times without a zone are read as UTC (CHT servers run in
// UTC).
var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02", "2006-1-2", "2006/01/02", "2006/1/2", "2006-01", "20060102"}

func parseDateMillis(s string) (int64, bool) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, strings.TrimSpace(s)); err == nil {
			return t.UnixMilli(), true
		}
	}
	return 0, false
}
