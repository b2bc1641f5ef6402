package openhim

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// Struct tags understood by [ConfigDefsOf], [DecodeConfig] and [TypedConfig]:
//
//	openhim:"param[,bigstring|password|option]"  the param name ("-" skips the field);
//	                                             default: the json tag name, else the
//	                                             field name with a lower-case first letter
//	values:"a,b,c"                               choices of an option parameter (implies option)
//	display:"Upstream URL"                       the displayName shown by the console
//	description:"..."                            the description shown by the console
//
// Go types map to core's configDef types:
//
//	string                     string (bigstring, password or option with the tag options)
//	time.Duration              string, parsed with time.ParseDuration ("1m30s")
//	bool                       bool
//	int*, uint*, float*        number (integers must be whole and in range)
//	map[string]string          map
//	struct                     struct, with a template of its fields (which may not be structs)
//	[]T                        T with array: true
var (
	durationType = reflect.TypeFor[time.Duration]()
)

// cfgField is a struct field mapped to a config param.
type cfgField struct {
	index []int
	def   ConfigDef
}

// ConfigDefsOf derives configDefs from the exported fields of a struct (or
// pointer to struct) v, following the struct tags described above.
func ConfigDefsOf(v any) ([]ConfigDef, error) {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("openhim: ConfigDefsOf needs a struct, got %T", v)
	}
	fields, err := cfgFields(t, false, "")
	if err != nil {
		return nil, err
	}
	defs := make([]ConfigDef, len(fields))
	for i, f := range fields {
		defs[i] = f.def
	}
	if err := validateConfigDefs(defs); err != nil {
		return nil, err
	}
	return defs, nil
}

func cfgFields(t reflect.Type, inTemplate bool, prefix string) ([]cfgField, error) {
	var out []cfgField
	seen := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag, hasTag := sf.Tag.Lookup("openhim")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			if j, ok := sf.Tag.Lookup("json"); ok {
				if jn, _, _ := strings.Cut(j, ","); jn != "" && jn != "-" {
					name = jn
				}
			}
		}
		if name == "" {
			r, n := utf8.DecodeRuneInString(sf.Name)
			name = string(unicode.ToLower(r)) + sf.Name[n:]
		}
		_ = hasTag
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("openhim: config fields %s and %s both use param %q", other, sf.Name, name)
		}
		seen[name] = sf.Name
		def, err := cfgDefFor(sf.Type, opts, sf.Tag.Get("values"), inTemplate, prefix+sf.Name)
		if err != nil {
			return nil, err
		}
		def.Param = name
		def.DisplayName = sf.Tag.Get("display")
		def.Description = sf.Tag.Get("description")
		out = append(out, cfgField{index: sf.Index, def: def})
	}
	return out, nil
}

func cfgDefFor(t reflect.Type, opts, values string, inTemplate bool, field string) (ConfigDef, error) {
	var def ConfigDef
	if t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8 {
		if t.Elem().Kind() == reflect.Slice {
			return def, fmt.Errorf("openhim: config field %s: nested slices are not supported", field)
		}
		def, err := cfgDefFor(t.Elem(), opts, values, inTemplate, field)
		def.Array = true
		return def, err
	}
	switch {
	case t == durationType:
		def.Type = ConfigString
	case t.Kind() == reflect.String:
		def.Type = ConfigString
		switch opts {
		case "":
		case "bigstring":
			def.Type = ConfigBigString
		case "password":
			def.Type = ConfigPassword
		case "option":
			def.Type = ConfigOption
		default:
			return def, fmt.Errorf("openhim: config field %s: unknown openhim tag option %q", field, opts)
		}
		if values != "" {
			def.Type = ConfigOption
			def.Values = strings.Split(values, ",")
		}
		if def.Type == ConfigOption && len(def.Values) == 0 {
			return def, fmt.Errorf("openhim: config field %s: option needs a values tag", field)
		}
		return def, nil
	case t.Kind() == reflect.Bool:
		def.Type = ConfigBool
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64 && t.Kind() != reflect.Uintptr:
		def.Type = ConfigNumber
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		def.Type = ConfigMap
	case t.Kind() == reflect.Struct:
		if inTemplate {
			return def, fmt.Errorf("openhim: config field %s: a struct may not contain a struct (core forbids nested struct)", field)
		}
		fields, err := cfgFields(t, true, field+".")
		if err != nil {
			return def, err
		}
		if len(fields) == 0 {
			return def, fmt.Errorf("openhim: config field %s: struct has no exported fields", field)
		}
		def.Type = ConfigStruct
		for _, f := range fields {
			def.Template = append(def.Template, f.def)
		}
	default:
		return def, fmt.Errorf("openhim: config field %s: unsupported type %s", field, t)
	}
	if opts != "" {
		return def, fmt.Errorf("openhim: config field %s: tag option %q needs a string field", field, opts)
	}
	if values != "" {
		return def, fmt.Errorf("openhim: config field %s: values tag needs a string field", field)
	}
	return def, nil
}

// DecodeConfig validates raw (a config as core sends it) against defs with
// core's rules (those of [Definition.Validate]) and decodes it into the struct pointed to
// by dst. If defs is nil, they are derived from dst with [ConfigDefsOf].
// Params missing from raw leave their fields untouched, and a param raw
// has but defs do not declare is an error ([TypedConfig.Update] ignores
// those instead, see there). On error dst is not modified; errors name the
// param but never contain a value.
//
// Null is accepted where core accepts it, and means "not set": a null map
// or struct param, or a null field of a struct param, leaves its field
// untouched, like a missing param; a null element of an array of maps or
// structs is the element's zero value (a nil map, a zero struct). Core
// treats such a null as unset too: when a greater version of the mediator
// registers, core replaces it with the new default. Null for any other
// param, or as a value in a map, is an error, as in core.
func DecodeConfig(raw map[string]any, defs []ConfigDef, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("openhim: DecodeConfig needs a non-nil pointer to a struct, got %T", dst)
	}
	fields, err := cfgFields(rv.Elem().Type(), false, "")
	if err != nil {
		return err
	}
	if defs == nil {
		defs = make([]ConfigDef, len(fields))
		for i, f := range fields {
			defs[i] = f.def
		}
	}
	if raw, err = plainConfig(raw); err != nil {
		return err
	}
	if err := validateConfig(defs, raw); err != nil {
		return err
	}
	tmp := reflect.New(rv.Elem().Type()).Elem()
	tmp.Set(rv.Elem())
	var errs []error
	for _, f := range fields {
		v, ok := raw[f.def.Param]
		if !ok {
			continue
		}
		errs = append(errs, cfgAssign(tmp.FieldByIndex(f.index), v, "config."+f.def.Param))
	}
	if err := joinErrors(errs...); err != nil {
		return err
	}
	rv.Elem().Set(tmp)
	return nil
}

func cfgAssign(dst reflect.Value, v any, field string) error {
	t := dst.Type()
	if v == nil && (t.Kind() == reflect.Map || t.Kind() == reflect.Struct) {
		return nil // null map or struct: not set, as core treats it
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8 {
		arr, ok := v.([]any)
		if !ok {
			return invalidf(field, "expected an array")
		}
		s := reflect.MakeSlice(t, len(arr), len(arr))
		var errs []error
		for i, el := range arr {
			errs = append(errs, cfgAssign(s.Index(i), el, fmt.Sprintf("%s[%d]", field, i)))
		}
		dst.Set(s)
		return joinErrors(errs...)
	}
	switch {
	case t == durationType:
		s, ok := v.(string)
		if !ok {
			return invalidf(field, "expected a duration string")
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return invalidf(field, "expected a duration like \"1m30s\"")
		}
		dst.SetInt(int64(d))
	case t.Kind() == reflect.String:
		s, ok := v.(string)
		if !ok {
			return invalidf(field, "expected a string")
		}
		dst.SetString(s)
	case t.Kind() == reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return invalidf(field, "expected a boolean")
		}
		dst.SetBool(b)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		f, ok := cfgFloat(v)
		if !ok || f != math.Trunc(f) || dst.OverflowInt(int64(f)) || f > math.MaxInt64 || f < math.MinInt64 {
			return invalidf(field, "expected a whole number that fits %s", t)
		}
		dst.SetInt(int64(f))
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		f, ok := cfgFloat(v)
		if !ok || f != math.Trunc(f) || f < 0 || f > math.MaxUint64 || dst.OverflowUint(uint64(f)) {
			return invalidf(field, "expected a whole non-negative number that fits %s", t)
		}
		dst.SetUint(uint64(f))
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		f, ok := cfgFloat(v)
		if !ok || dst.OverflowFloat(f) {
			return invalidf(field, "expected a number that fits %s", t)
		}
		dst.SetFloat(f)
	case t.Kind() == reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			if ms, ok := v.(map[string]string); ok {
				m = make(map[string]any, len(ms))
				for k, s := range ms {
					m[k] = s
				}
			} else {
				return invalidf(field, "expected an object")
			}
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for _, k := range cfgSortedKeys(m) {
			s, ok := m[k].(string)
			if !ok {
				return invalidf(field+"."+k, "expected a string value in map")
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), reflect.ValueOf(s).Convert(t.Elem()))
		}
		dst.Set(out)
	case t.Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return invalidf(field, "expected an object")
		}
		fields, err := cfgFields(t, true, "")
		if err != nil {
			return err
		}
		known := map[string]bool{}
		var errs []error
		for _, f := range fields {
			known[f.def.Param] = true
			fv, ok := m[f.def.Param]
			if !ok || fv == nil { // core does not check template values: null is not set
				continue
			}
			errs = append(errs, cfgAssign(dst.FieldByIndex(f.index), fv, field+"."+f.def.Param))
		}
		for _, k := range cfgSortedKeys(m) {
			if !known[k] {
				errs = append(errs, invalidf(field+"."+k, "not a template param of the struct"))
			}
		}
		return joinErrors(errs...)
	default:
		return invalidf(field, "unsupported field type %s", t)
	}
	return nil
}

// cfgFloat converts the numeric types a config value can have.
func cfgFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// configOf encodes the struct (or pointer to struct) v as a config map in
// the JSON shapes core stores (string, float64, bool, map[string]any,
// []any), for example to use as [Definition.Config] defaults. Password
// parameters are included with their real value.
func configOf(v any) (map[string]any, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, errors.New("openhim: configOf: nil pointer")
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("openhim: configOf needs a struct, got %T", v)
	}
	fields, err := cfgFields(rv.Type(), false, "")
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		out[f.def.Param] = cfgEncode(rv.FieldByIndex(f.index))
	}
	return out, nil
}

func cfgEncode(v reflect.Value) any {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		arr := make([]any, v.Len())
		for i := range arr {
			arr[i] = cfgEncode(v.Index(i))
		}
		return arr
	case t == durationType:
		return time.Duration(v.Int()).String()
	case t.Kind() == reflect.String:
		return v.String()
	case t.Kind() == reflect.Bool:
		return v.Bool()
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return float64(v.Int())
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return float64(v.Uint())
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return v.Float()
	case t.Kind() == reflect.Map:
		m := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			m[it.Key().String()] = it.Value().String()
		}
		return m
	case t.Kind() == reflect.Struct:
		fields, _ := cfgFields(t, true, "") // checked by the caller's cfgFields
		m := make(map[string]any, len(fields))
		for _, f := range fields {
			m[f.def.Param] = cfgEncode(v.FieldByIndex(f.index))
		}
		return m
	}
	return nil
}

// cfgDeepCopy copies a JSON-shaped value.
func cfgDeepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cfgDeepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = cfgDeepCopy(e)
		}
		return a
	}
	return v
}

func cfgCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return cfgDeepCopy(m).(map[string]any)
}

// ConsoleConfig is a mediator configuration edited in the OpenHIM console,
// as [*TypedConfig] implements it. Give it to a Mediator as its
// Config.ConsoleConfig: its parameters, their defaults, and
// what to do with a config core pushes.
type ConsoleConfig interface {
	Defs() []ConfigDef
	DefaultConfig() map[string]any
	OnConfig(old, new map[string]any)
}

// TypedConfig holds a typed, live mediator configuration of struct type T.
// Give it to a Mediator as its Config.ConsoleConfig (or plug its OnConfig
// method into [LifecycleConfig.OnConfig]): every config
// core pushes is validated and decoded over the defaults, then swapped in
// atomically and passed to the subscribers. It is safe for concurrent use.
type TypedConfig[T any] struct {
	defaults T
	defs     []ConfigDef
	log      *slog.Logger
	cur      atomic.Pointer[T]
	version  atomic.Int64

	mu   sync.Mutex // guards subs, err and serialises updates
	subs []func(old, new T)
	err  error
}

// NewTypedConfig returns a TypedConfig holding defaults. T must be a struct
// type that [ConfigDefsOf] accepts. If logger is nil, nothing is logged.
func NewTypedConfig[T any](defaults T, logger *slog.Logger) (*TypedConfig[T], error) {
	defs, err := ConfigDefsOf(defaults)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tc := &TypedConfig[T]{defaults: defaults, defs: defs, log: logger}
	d := defaults
	tc.cur.Store(&d)
	return tc, nil
}

// Defs returns the configDefs of T, for [Definition.ConfigDefs].
func (tc *TypedConfig[T]) Defs() []ConfigDef { return append([]ConfigDef(nil), tc.defs...) }

// DefaultConfig returns the defaults as a config map, for [Definition.Config].
func (tc *TypedConfig[T]) DefaultConfig() map[string]any {
	m, _ := configOf(tc.defaults) // T was checked by NewTypedConfig
	return m
}

// Load returns the current configuration. Treat maps and slices in it as
// read-only: they are shared with other readers.
func (tc *TypedConfig[T]) Load() T { return *tc.cur.Load() }

// Version counts the configurations applied by Update (0: defaults only).
func (tc *TypedConfig[T]) Version() int64 { return tc.version.Load() }

// Subscribe registers fn to be called with the old and new configuration
// after every successful Update. fn runs on the updating goroutine.
func (tc *TypedConfig[T]) Subscribe(fn func(old, new T)) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.subs = append(tc.subs, fn)
}

// Update decodes raw (a config core sent) over the defaults with
// [DecodeConfig] (so a param removed in core, or one core holds as null,
// has its default), swaps it in and notifies the subscribers. On a
// validation error the current configuration is kept and the error (which
// never contains a value) is returned.
//
// Params in raw that T does not declare are ignored, with a warning naming
// them, and the others are applied: core validated the config against the
// configDefs it stores, and after a rollback to a lower version those are
// the newer version's (core keeps a registration only if its version is
// greater than the stored one).
func (tc *TypedConfig[T]) Update(raw map[string]any) error {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	known, unknown := cfgSplitDeclared(tc.defs, raw)
	next := tc.defaults
	if err := DecodeConfig(known, tc.defs, &next); err != nil {
		tc.err = err
		return err
	}
	tc.err = nil
	if len(unknown) > 0 {
		tc.log.Warn("openhim: config from core has parameters this mediator version does not declare; ignoring them",
			"params", unknown)
	}
	old := tc.cur.Swap(&next)
	tc.version.Add(1)
	for _, fn := range tc.subs {
		fn(*old, next)
	}
	return nil
}

// cfgSplitDeclared returns the params of raw that defs declare and the
// sorted names of those they do not. raw itself is not modified.
func cfgSplitDeclared(defs []ConfigDef, raw map[string]any) (known map[string]any, unknown []string) {
	declared := make(map[string]bool, len(defs))
	for _, d := range defs {
		declared[d.Param] = true
	}
	for _, k := range cfgSortedKeys(raw) {
		if !declared[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return raw, nil
	}
	known = make(map[string]any, len(raw)-len(unknown))
	for k, v := range raw {
		if declared[k] {
			known[k] = v
		}
	}
	return known, unknown
}

// OnConfig has the signature of [LifecycleConfig.OnConfig]: it calls
// Update with the new config and logs (and keeps, see Err) a decode error.
func (tc *TypedConfig[T]) OnConfig(_, next map[string]any) {
	if err := tc.Update(next); err != nil {
		tc.log.Error("openhim: config from core rejected; keeping the previous config", "error", err)
	}
}

// Err returns the error of the last Update, or nil if it succeeded.
func (tc *TypedConfig[T]) Err() error {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.err
}
