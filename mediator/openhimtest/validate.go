package openhimtest

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// validationError is core's constructError(message, 'ValidationError'); its
// string form is what `${err}` gives in JavaScript.
type validationError struct{ msg string }

func (e *validationError) Error() string { return "ValidationError: " + e.msg }

func vErr(format string, args ...any) error {
	return &validationError{msg: fmt.Sprintf(format, args...)}
}

// jsTypeof mirrors JavaScript's typeof for decoded JSON values.
func jsTypeof(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "boolean"
	default: // nil, map, slice
		return "object"
	}
}

// jsString mirrors String(v) for the values used in messages.
func jsString(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e21 {
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			if e != nil {
				parts[i] = jsString(e)
			}
		}
		return strings.Join(parts, ",")
	default:
		return "[object Object]"
	}
}

// validateConfigDef mirrors core's validateConfigDef (src/api/mediators.js,
// reference §2.1).
func validateConfigDef(d configDef) error {
	switch d.Type {
	case "struct":
		if d.Template == nil {
			return vErr("Must specify a template for struct param '%s'", d.Param)
		}
		for _, t := range d.Template {
			if t.Param == "" {
				return vErr("Must specify field 'param' in template definition for param '%s'", d.Param)
			}
			if t.Type == "" {
				return vErr("Must specify field 'type' in template definition for param '%s'", d.Param)
			}
			if t.Type == "struct" {
				return vErr("May not recursively specify 'struct' in template definitions (param '%s')", d.Param)
			}
		}
	case "option":
		if d.Values == nil {
			return vErr("Expected field 'values' to be an array (option param '%s')", d.Param)
		}
		if len(d.Values) == 0 {
			return vErr("Must specify a values array for option param '%s'", d.Param)
		}
	}
	return nil
}

// validateConfig mirrors core's validateConfig: every key needs a def, arrays
// are checked element by element, missing params are fine.
func validateConfig(defs []configDef, config map[string]any) error {
	for _, param := range sortedKeys(config) {
		var matching []configDef
		for _, d := range defs {
			if d.Param == param {
				matching = append(matching, d)
			}
		}
		if len(matching) == 0 {
			return vErr("No config definition found for parameter %s", param)
		}
		for _, d := range matching {
			if d.Array {
				arr, ok := config[param].([]any)
				if !ok {
					return vErr("Expected config param %s to be an array of type %s", param, d.Type)
				}
				for i, f := range arr {
					if err := validateConfigField(fmt.Sprintf("%s[%d]", param, i), d, f); err != nil {
						return err
					}
				}
				continue
			}
			if err := validateConfigField(param, d, config[param]); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateConfigField mirrors core's validateConfigField, including its
// JavaScript typeof semantics (null is an "object").
func validateConfigField(param string, d configDef, field any) error {
	switch d.Type {
	case "string":
		if jsTypeof(field) != "string" {
			return vErr("Expected config param %s to be a string.", param)
		}
	case "bigstring":
		if jsTypeof(field) != "string" {
			return vErr("Expected config param %s to be a large string.", param)
		}
	case "number":
		if jsTypeof(field) != "number" {
			return vErr("Expected config param %s to be a number.", param)
		}
	case "bool":
		if jsTypeof(field) != "boolean" {
			return vErr("Expected config param %s to be a boolean.", param)
		}
	case "option":
		s, ok := field.(string)
		if !ok || !slices.Contains(d.Values, s) {
			return vErr("Expected config param %s to be one of %s", param, strings.Join(d.Values, ","))
		}
	case "map":
		if jsTypeof(field) != "object" {
			return vErr("Expected config param %s to be an object.", param)
		}
		for _, v := range jsValues(field) {
			if jsTypeof(v) != "string" {
				return vErr("Expected config param %s to only contain string values.", param)
			}
		}
	case "struct":
		if jsTypeof(field) != "object" {
			return vErr("Expected config param %s to be an object.", param)
		}
		for _, k := range jsKeys(field) {
			if !slices.ContainsFunc(d.Template, func(t configDef) bool { return t.Param == k }) {
				return vErr("Field %s is not defined in template definition for config param %s.", k, param)
			}
		}
	case "password":
		if jsTypeof(field) != "string" {
			return vErr("Expected config param %s to be a string representing a password.", param)
		}
	}
	return nil
}

// jsKeys mirrors `for (k in v)` over an object or array.
func jsKeys(v any) []string {
	switch x := v.(type) {
	case map[string]any:
		return sortedKeys(x)
	case []any:
		keys := make([]string, len(x))
		for i := range x {
			keys[i] = strconv.Itoa(i)
		}
		return keys
	}
	return nil
}

func jsValues(v any) []any {
	switch x := v.(type) {
	case map[string]any:
		out := make([]any, 0, len(x))
		for _, k := range sortedKeys(x) {
			out = append(out, x[k])
		}
		return out
	case []any:
		return x
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// schema validation (Mongoose) ----------------------------------------------

// schemaErrors collects Mongoose validator failures as "path: message".
type schemaErrors struct {
	model string
	errs  []string
}

func (s *schemaErrors) add(path, format string, args ...any) {
	s.errs = append(s.errs, path+": "+fmt.Sprintf(format, args...))
}

// err is the ValidationError as `${err}` prints it on core 4.0.5
// (mongoose 4.13's toString: the failures without the "<Model> validation
// failed" message), e.g. "ValidationError: name: Path `name` is required.".
func (s *schemaErrors) err() error {
	if len(s.errs) == 0 {
		return nil
	}
	return &validationError{msg: strings.Join(s.errs, ", ")}
}

// message is err.message: "<Model> validation failed: …" ("" when valid).
func (s *schemaErrors) message() string {
	if len(s.errs) == 0 {
		return ""
	}
	return s.model + " validation failed: " + strings.Join(s.errs, ", ")
}

// routeTypes returns the RouteDef type enum of a core version (§6).
func routeTypes(v Version) []string {
	if v >= Version8 {
		return []string{"http", "kafka"}
	}
	return []string{"http", "tcp", "mllp"}
}

var (
	channelTypes    = []string{"http", "tcp", "tls", "polling"}
	channelAuth     = []string{"private", "public"}
	channelStatuses = []string{"enabled", "disabled", "deleted"}
	routeStatuses   = []string{"enabled", "disabled"}
	httpMethods     = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
	configTypes     = []string{"string", "bool", "number", "option", "bigstring", "map", "struct", "password"}
)

// requiredString mirrors Mongoose's required validator for a String path:
// absent, null and "" fail.
func requiredString(s *schemaErrors, m map[string]any, prefix, key string) {
	v, ok := m[key]
	if !ok || v == nil || v == "" {
		s.add(prefix+key, "Path `%s` is required.", key)
	}
}

func enumString(s *schemaErrors, m map[string]any, prefix, key string, allowed []string) {
	v, ok := m[key]
	if !ok || v == nil {
		return
	}
	str := jsString(v)
	if !slices.Contains(allowed, str) {
		s.add(prefix+key, "`%s` is not a valid enum value for path `%s`.", str, key)
	}
}

// castNumber mirrors Mongoose's Number cast: numbers and numeric strings are
// accepted (and converted in place), anything else is a CastError.
func castNumber(s *schemaErrors, m map[string]any, prefix, key string) {
	v, ok := m[key]
	if !ok || v == nil {
		return
	}
	switch x := v.(type) {
	case float64:
		return
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && strings.TrimSpace(x) != "" {
			m[key] = f
			return
		}
	case bool:
		if x {
			m[key] = 1.0
		} else {
			m[key] = 0.0
		}
		return
	}
	s.add(prefix+key, "Cast to Number failed for value \"%s\" at path \"%s\"", jsString(v), key)
}

func objects(v any) []map[string]any {
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, e := range arr {
		m, _ := e.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		out = append(out, m)
	}
	return out
}

// appendReversed adds a document's own path errors to s in reverse schema
// order, as Mongoose 4.13 reports them (seen on the real 4.0.5:
// "endpoints.0.port: …, endpoints.0.host: …", "urlPattern: …, name: …");
// errors of embedded documents follow (see validateChannel).
func appendReversed(s, sub *schemaErrors) {
	for i := len(sub.errs) - 1; i >= 0; i-- {
		s.errs = append(s.errs, sub.errs[i])
	}
}

// validateRoute applies RouteDef's schema (an embedded document) to a
// decoded route, per version. Checks run in schema order: name, host,
// port, type, status.
func validateRoute(s *schemaErrors, r map[string]any, prefix string, v Version) {
	sub := &schemaErrors{}
	requiredString(sub, r, prefix, "name")
	if v < Version8 {
		requiredString(sub, r, prefix, "host")
	}
	castNumber(sub, r, prefix, "port")
	if p, ok := r["port"]; v < Version8 && (!ok || p == nil) {
		sub.add(prefix+"port", "Path `port` is required.")
	}
	if p, ok := r["port"].(float64); ok {
		if p < 0 {
			sub.add(prefix+"port", "Path `port` (%s) is less than minimum allowed value (0).", jsString(p))
		} else if p > 65536 {
			sub.add(prefix+"port", "Path `port` (%s) is more than maximum allowed value (65536).", jsString(p))
		}
	}
	enumString(sub, r, prefix, "type", routeTypes(v))
	castObjectID(sub, r, prefix, "cert")
	enumString(sub, r, prefix, "status", routeStatuses)
	appendReversed(s, sub)
	// RouteDef has no timeout (src/model/channels.js, every version):
	// Mongoose's strict mode drops it, so GET never returns it.
	delete(r, "timeout")
}

var objectIDRe = regexp.MustCompile(`^[0-9a-fA-F]{24}$`)

// castObjectID is Mongoose's ObjectId cast of a string path (RouteDef's
// cert: Schema.Types.ObjectId): 24 hex digits, or a cast error.
func castObjectID(s *schemaErrors, m map[string]any, prefix, key string) {
	v, ok := m[key]
	if !ok || v == nil {
		return
	}
	if str, isStr := v.(string); isStr && objectIDRe.MatchString(str) {
		return
	}
	s.add(prefix+key, "Cast to ObjectId failed for value \"%s\" at path \"%s\"", jsString(v), key)
}

// validateChannel applies ChannelDef's schema to a decoded channel: its own
// paths' errors in reverse schema order, then its routes' errors.
func validateChannel(s *schemaErrors, c map[string]any, prefix string, v Version) {
	sub := &schemaErrors{}
	requiredString(sub, c, prefix, "name")
	requiredString(sub, c, prefix, "urlPattern")
	castNumber(sub, c, prefix, "timeout")
	if ms, ok := c["methods"].([]any); ok {
		for i, m := range ms {
			if !slices.Contains(httpMethods, jsString(m)) {
				sub.add(fmt.Sprintf("%smethods.%d", prefix, i), "`%s` is not a valid enum value for path `methods`.", jsString(m))
			}
		}
	}
	enumString(sub, c, prefix, "type", channelTypes)
	castNumber(sub, c, prefix, "priority")
	if p, ok := c["priority"].(float64); ok && p < 1 {
		sub.add(prefix+"priority", "Path `priority` (%s) is less than minimum allowed value (1).", jsString(p))
	}
	enumString(sub, c, prefix, "authType", channelAuth)
	enumString(sub, c, prefix, "status", channelStatuses)
	appendReversed(s, sub)
	for i, r := range objects(c["routes"]) {
		validateRoute(s, r, fmt.Sprintf("%sroutes.%d.", prefix, i), v)
	}
	if rs, ok := c["routes"].([]any); ok {
		c["routes"] = mapsToAny(objects(rs))
	}
}

func mapsToAny(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// castMediator runs the Mongoose schema checks a new mediator's save() runs
// (§2.2 step 2) and normalises casts (numeric strings to numbers). It
// returns nil when the document is valid.
func castMediator(doc map[string]any, v Version, validate bool) error {
	s := &schemaErrors{model: "Mediator"}
	if validate {
		requiredString(s, doc, "", "name")
	}
	eps := objects(doc["endpoints"])
	for i, r := range eps {
		validateRoute(s, r, fmt.Sprintf("endpoints.%d.", i), v)
	}
	if _, ok := doc["endpoints"]; ok {
		doc["endpoints"] = mapsToAny(eps)
	}
	chs := objects(doc["defaultChannelConfig"])
	for i, c := range chs {
		validateChannel(s, c, fmt.Sprintf("defaultChannelConfig.%d.", i), v)
	}
	if _, ok := doc["defaultChannelConfig"]; ok {
		doc["defaultChannelConfig"] = mapsToAny(chs)
	}
	for i, d := range objects(doc["configDefs"]) {
		enumString(s, d, fmt.Sprintf("configDefs.%d.", i), "type", configTypes)
	}
	if !validate {
		// Updates (findByIdAndUpdate) run no validators; only casts fail.
		var casts []string
		for _, e := range s.errs {
			if strings.Contains(e, "Cast to") {
				casts = append(casts, e)
			}
		}
		s.errs = casts
	}
	return s.err()
}

// maskPasswords mirrors core's maskPasswords (GET /mediators/:urn).
func maskPasswords(defs []configDef, config map[string]any) {
	if config == nil {
		return
	}
	for _, d := range defs {
		v, ok := config[d.Param]
		if !ok || !jsTruthy(v) {
			continue
		}
		if d.Type == "password" {
			if d.Array {
				if arr, ok := v.([]any); ok {
					out := make([]any, len(arr))
					for i := range arr {
						out[i] = passwordMask
					}
					config[d.Param] = out
				}
			} else {
				config[d.Param] = passwordMask
			}
		}
		if d.Type == "struct" {
			if m, ok := v.(map[string]any); ok {
				maskPasswords(d.Template, m)
			}
		}
	}
}

// restoreMaskedPasswords mirrors core's restoreMaskedPasswords (PUT config).
func restoreMaskedPasswords(defs []configDef, masked, stored map[string]any) {
	if masked == nil || stored == nil {
		return
	}
	for _, d := range defs {
		mv, sv := masked[d.Param], stored[d.Param]
		if d.Type == "password" && jsTruthy(mv) && jsTruthy(sv) {
			if d.Array {
				ma, _ := mv.([]any)
				sa, _ := sv.([]any)
				for i, p := range ma {
					if p == passwordMask {
						if i < len(sa) {
							ma[i] = sa[i]
						} else {
							ma[i] = nil
						}
					}
				}
			} else if mv == passwordMask {
				masked[d.Param] = sv
			}
		}
		if d.Type == "struct" && jsTruthy(mv) && jsTruthy(sv) {
			mm, _ := mv.(map[string]any)
			sm, _ := sv.(map[string]any)
			restoreMaskedPasswords(d.Template, mm, sm)
		}
	}
}

const passwordMask = "**********"

func jsTruthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case float64:
		return x != 0 && !math.IsNaN(x)
	case bool:
		return x
	default:
		return true
	}
}
