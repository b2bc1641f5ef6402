package chttest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/dop251/goja"
)

// Outbound JavaScript runs in goja, as CHT runs it in Node's vm module:
// relevant_to and every mapping "expr" are evaluated with a single global
// variable, doc (shared_libs/outbound/src/outbound.js mapDocumentToPayload
// and transitions/mark_for_outbound.js relevantTo call
// vm.runInNewContext(src, {doc})). The payload is assembled as JavaScript
// values with object-path semantics and serialised by JSON.stringify, so
// undefined members disappear, undefined array elements become null and
// numbers print as Node prints them.
//
// One runtime serves one evaluation of one doc (relevant_to plus the
// mapping), so the doc object is shared between expressions as in CHT; a
// global declared by one expression (var x = ...) is also visible to the
// next, which CHT's fresh contexts would not allow.

// jsTimeout bounds one evaluation; CHT has none (a loop would hang
// Sentinel), a test kit reports it instead.
const jsTimeout = 2 * time.Second

// jsProgram is compiled outbound JavaScript and its source.
type jsProgram struct {
	src  string
	prog *goja.Program
}

// compileJS compiles outbound JavaScript. A syntax error is reported when
// the configuration loads; CHT would throw it on every evaluation.
func compileJS(src string) (*jsProgram, error) {
	p, err := goja.Compile("", src, false)
	if err != nil {
		return nil, fmt.Errorf("JavaScript %q: %w", src, err)
	}
	return &jsProgram{src: src, prog: p}, nil
}

// jsDoc is one doc loaded into a fresh runtime.
type jsDoc struct {
	rt     *goja.Runtime
	root   *goja.Object // {doc}
	doc    goja.Value
	hasOwn goja.Callable
	str    goja.Callable // JSON.stringify
}

// newJSDoc parses the doc's JSON inside a new runtime (JSON.parse keeps
// the member order of the stored JSON).
func newJSDoc(doc map[string]any) (*jsDoc, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode doc: %w", err)
	}
	rt := goja.New()
	j := &jsDoc{rt: rt}
	jsonObj := rt.Get("JSON").ToObject(rt)
	parse, _ := goja.AssertFunction(jsonObj.Get("parse"))
	j.str, _ = goja.AssertFunction(jsonObj.Get("stringify"))
	j.hasOwn, _ = goja.AssertFunction(rt.Get("Object").ToObject(rt).Get("prototype").ToObject(rt).Get("hasOwnProperty"))
	if j.doc, err = parse(goja.Undefined(), rt.ToValue(string(raw))); err != nil {
		return nil, fmt.Errorf("load doc: %w", err)
	}
	if err := rt.Set("doc", j.doc); err != nil {
		return nil, err
	}
	j.root = rt.NewObject()
	_ = j.root.Set("doc", j.doc)
	return j, nil
}

// run evaluates a program and returns its completion value. A thrown
// exception is returned as an error carrying the JavaScript message.
func (j *jsDoc) run(p *jsProgram) (v goja.Value, err error) {
	t := time.AfterFunc(jsTimeout, func() { j.rt.Interrupt("timeout") })
	defer t.Stop()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("JavaScript %q: %v", p.src, r)
		}
	}()
	v, err = j.rt.RunProgram(p.prog)
	if err != nil {
		var ex *goja.Exception
		if errors.As(err, &ex) {
			return nil, fmt.Errorf("%s", ex.Value().String())
		}
		return nil, err
	}
	return v, nil
}

// truthy runs p and converts the result as JavaScript's `if` does.
func (j *jsDoc) truthy(p *jsProgram) (bool, error) {
	v, err := j.run(p)
	if err != nil {
		return false, err
	}
	return v.ToBoolean(), nil
}

// stringify is JSON.stringify(v); ok is false when the result is
// undefined (v undefined or a function).
func (j *jsDoc) stringify(v goja.Value) (string, bool, error) {
	r, err := j.str(goja.Undefined(), v)
	if err != nil {
		return "", false, err
	}
	if goja.IsUndefined(r) {
		return "", false, nil
	}
	return r.String(), true, nil
}

// pathKey is object-path's getKey: a segment that reads back as the same
// integer is a number (it indexes arrays, and set creates an array for
// it), anything else a property name.
func pathKey(seg string) (string, bool) {
	n, err := strconv.Atoi(seg)
	return seg, err == nil && strconv.Itoa(n) == seg
}

// get is objectPath.get({doc}, path): own properties only (and numeric
// segments on arrays); a missing step is undefined.
func (j *jsDoc) get(path string) goja.Value {
	var cur goja.Value = j.root
	for seg := range strings.SplitSeq(path, ".") {
		if cur == nil || goja.IsUndefined(cur) || goja.IsNull(cur) {
			return goja.Undefined()
		}
		obj := cur.ToObject(j.rt)
		key, num := pathKey(seg)
		own := num && obj.ClassName() == "Array"
		if !own {
			r, err := j.hasOwn(obj, j.rt.ToValue(key))
			own = err == nil && r.ToBoolean()
		}
		if !own {
			return goja.Undefined()
		}
		cur = obj.Get(key)
	}
	if cur == nil {
		return goja.Undefined()
	}
	return cur
}

// maxMappedIndex is the largest array index a mapping destination may set
// in the fake. CHT sets any index: JSON.stringify then writes a null for
// every element before it, which for a large index exhausts memory.
const maxMappedIndex = 1 << 16

// set is objectPath.set(out, dest, v): missing containers are created,
// arrays when the next segment is numeric. Assigning through a primitive
// throws in object-path's strict mode. object-path 0.11.8's default
// export (factory() without includeInheritedProps, the one outbound.js
// requires) checks no magic names: "constructor" and "prototype" are
// ordinary own members, and "__proto__" assigns the prototype as
// JavaScript does, so it never reaches the payload.
func (j *jsDoc) set(out *goja.Object, dest string, v goja.Value) error {
	segs := strings.Split(dest, ".")
	cur := out
	for i, seg := range segs {
		if n, err := strconv.Atoi(seg); err == nil && n > maxMappedIndex && cur.ClassName() == "Array" {
			return fmt.Errorf("chttest: mapping destination %q: array index %d is above %d (CHT would write a payload of that many nulls)", dest, n, maxMappedIndex)
		}
		if i == len(segs)-1 {
			return cur.Set(seg, v)
		}
		next := cur.Get(seg)
		r, _ := j.hasOwn(cur, j.rt.ToValue(seg))
		own := r != nil && r.ToBoolean()
		if !own || next == nil || goja.IsUndefined(next) {
			var c *goja.Object
			if _, num := pathKey(segs[i+1]); num {
				c = j.rt.NewArray()
			} else {
				c = j.rt.NewObject()
			}
			if err := cur.Set(seg, c); err != nil {
				return err
			}
			cur = c
			continue
		}
		obj, ok := next.(*goja.Object)
		if !ok {
			return fmt.Errorf("TypeError: Cannot create property '%s' on %s '%s'", segs[i+1], jsTypeof(next), next.String())
		}
		cur = obj
	}
	return nil
}

func jsTypeof(v goja.Value) string {
	switch {
	case goja.IsNull(v):
		return "object"
	case goja.IsString(v):
		return "string"
	case goja.IsNumber(v):
		return "number"
	case v.ExportType() != nil && v.ExportType().Kind() == reflect.Bool:
		return "boolean"
	}
	return "value"
}

// mapSource is one normalised mapping entry (outbound.js
// normaliseSourceConfiguration): a path or an expression, required
// unless optional.
type mapSource struct {
	dest     string
	path     string
	expr     *jsProgram
	required bool
}

// mapPayload builds the payload of one doc as mapDocumentToPayload does
// and returns it as JSON.stringify writes it. push names the push in
// error messages.
func (j *jsDoc) mapPayload(push string, sources []mapSource) ([]byte, error) {
	id := ""
	if o, ok := j.doc.(*goja.Object); ok {
		if v := o.Get("_id"); v != nil && !goja.IsUndefined(v) {
			id = v.String()
		}
	}
	out := j.rt.NewObject()
	for _, s := range sources {
		var v goja.Value
		switch {
		case s.expr != nil:
			r, err := j.run(s.expr)
			if err != nil {
				return nil, fmt.Errorf("Mapping error for '%s/%s' JS error on source document: '%s': %w", push, s.dest, id, err)
			}
			v = r
		case s.path != "":
			v = j.get(s.path)
		default:
			return nil, fmt.Errorf("Mapping error for '%s/%s' either 'expr' or 'path' is required: '%s'", push, s.dest, id)
		}
		if goja.IsUndefined(v) {
			if s.required {
				problem := fmt.Sprintf("cannot find '%s' on source document", s.path)
				if s.expr != nil {
					problem = "expr evaluated to undefined"
				}
				return nil, fmt.Errorf("Mapping error for '%s/%s' on source document '%s': %s", push, s.dest, id, problem)
			}
			continue
		}
		if err := j.set(out, s.dest, v); err != nil {
			return nil, fmt.Errorf("Mapping error for '%s/%s': %w", push, s.dest, err)
		}
	}
	body, ok, err := j.stringify(out)
	if err != nil {
		return nil, fmt.Errorf("Mapping error for '%s': JSON.stringify: %w", push, err)
	}
	if !ok {
		return nil, fmt.Errorf("Mapping error for '%s': payload is not JSON", push)
	}
	return []byte(body), nil
}

// jsKeyOrder sorts mapping destinations as Object.keys orders a parsed
// JSON object: array-index keys ascending, then the others in document
// order (given by order, or sorted when order is nil).
func jsKeyOrder(keys []string, order []string) []string {
	pos := make(map[string]int, len(order))
	for i, k := range order {
		pos[k] = i
	}
	isIndex := func(k string) (uint64, bool) {
		n, err := strconv.ParseUint(k, 10, 32)
		return n, err == nil && strconv.FormatUint(n, 10) == k && n < 1<<32-1
	}
	out := slices.Clone(keys)
	slices.SortStableFunc(out, func(a, b string) int {
		na, ia := isIndex(a)
		nb, ib := isIndex(b)
		switch {
		case ia && ib:
			return int(na) - int(nb)
		case ia:
			return -1
		case ib:
			return 1
		}
		pa, oka := pos[a]
		pb, okb := pos[b]
		if oka && okb {
			return pa - pb
		}
		return strings.Compare(a, b)
	})
	return out
}

// payloadHash is outbound.js hash(): SHA-256 (hex) of orderedStringify of
// the payload after a JSON round trip. body is the payload as
// JSON.stringify wrote it. orderedStringify sorts the keys of objects
// (as JavaScript's default sort does, by UTF-16 code units) and writes
// each key between quotes without escaping it; arrays, and everything
// inside them, are written by JSON.stringify unchanged.
func payloadHash(body []byte) (string, error) {
	var b strings.Builder
	if err := orderedStringify(&b, json.RawMessage(body)); err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(h[:]), nil
}

func orderedStringify(b *strings.Builder, raw json.RawMessage) error {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	if len(raw) == 0 || raw[0] != '{' {
		b.Write(raw)
		return nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return err
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b))) })
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + k + `":`)
		if err := orderedStringify(b, members[k]); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}
