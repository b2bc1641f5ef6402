package chttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file holds a tiny interpreter for the JavaScript subset that
// outbound relevant_to and mapping expr strings typically use: literals,
// doc member access (dot and bracket), array literals, ! && || ?:,
// comparisons (=== !== == != < <= > >=), + and the .includes() method.
// Anything else is a parse error, so a config that needs real JavaScript
// fails loudly instead of being evaluated wrongly.

type undefinedT struct{}

// undefined is JavaScript's undefined.
var undefined = undefinedT{}

type jsNode func(doc map[string]any) (any, error)

type jsParser struct {
	toks []string
	pos  int
}

// compileJS compiles an expression over the variable doc.
func compileJS(src string) (jsNode, error) {
	toks, err := jsTokenize(src)
	if err != nil {
		return nil, err
	}
	p := &jsParser{toks: toks}
	n, err := p.ternary()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("unsupported JavaScript near %q", p.toks[p.pos])
	}
	return n, nil
}

func jsTokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			j := i + 1
			var b strings.Builder
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
				j++
			}
			if j >= len(s) {
				return nil, errors.New("unterminated string")
			}
			toks = append(toks, "'"+b.String())
			i = j + 1
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		case c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '$' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			op := ""
			for _, o := range []string{"===", "!==", "==", "!=", "<=", ">=", "&&", "||", "!", "<", ">", "(", ")", "[", "]", ".", ",", "?", ":", "+"} {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("unsupported character %q", c)
			}
			toks = append(toks, op)
			i += len(op)
		}
	}
	return toks, nil
}

func (p *jsParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *jsParser) accept(t string) bool {
	if p.peek() == t {
		p.pos++
		return true
	}
	return false
}

func (p *jsParser) expect(t string) error {
	if !p.accept(t) {
		return fmt.Errorf("expected %q, found %q", t, p.peek())
	}
	return nil
}

func (p *jsParser) ternary() (jsNode, error) {
	cond, err := p.or()
	if err != nil || !p.accept("?") {
		return cond, err
	}
	a, err := p.ternary()
	if err != nil {
		return nil, err
	}
	if err := p.expect(":"); err != nil {
		return nil, err
	}
	b, err := p.ternary()
	if err != nil {
		return nil, err
	}
	return func(d map[string]any) (any, error) {
		c, err := cond(d)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return a(d)
		}
		return b(d)
	}, nil
}

func (p *jsParser) or() (jsNode, error) { return p.logical("||", p.and, false) }

func (p *jsParser) and() (jsNode, error) { return p.logical("&&", p.compare, true) }

// logical parses a left-associative chain of op (|| or &&) over operands
// parsed by next. As in JavaScript it yields an operand, not a boolean: the
// right operand is evaluated only when the left one's truthiness equals
// evalRight (false for ||, true for &&).
func (p *jsParser) logical(op string, next func() (jsNode, error), evalRight bool) (jsNode, error) {
	l, err := next()
	for err == nil && p.accept(op) {
		var r jsNode
		if r, err = next(); err != nil {
			break
		}
		ll := l
		l = func(d map[string]any) (any, error) {
			v, err := ll(d)
			if err != nil || truthy(v) != evalRight {
				return v, err
			}
			return r(d)
		}
	}
	return l, err
}

func (p *jsParser) compare() (jsNode, error) {
	l, err := p.additive()
	for err == nil {
		op := p.peek()
		switch op {
		case "===", "!==", "==", "!=", "<", "<=", ">", ">=":
		default:
			return l, nil
		}
		p.pos++
		var r jsNode
		if r, err = p.additive(); err != nil {
			break
		}
		ll := l
		l = func(d map[string]any) (any, error) {
			a, err := ll(d)
			if err != nil {
				return nil, err
			}
			b, err := r(d)
			if err != nil {
				return nil, err
			}
			switch op {
			case "===":
				return strictEq(a, b), nil
			case "!==":
				return !strictEq(a, b), nil
			case "==":
				return looseEq(a, b), nil
			case "!=":
				return !looseEq(a, b), nil
			}
			x, y := toNum(a), toNum(b)
			if sa, ok := a.(string); ok {
				if sb, ok := b.(string); ok {
					x, y = 0, float64(strings.Compare(sa, sb))
				}
			}
			switch op {
			case "<":
				return x < y, nil
			case "<=":
				return x <= y, nil
			case ">":
				return x > y, nil
			default:
				return x >= y, nil
			}
		}
	}
	return l, err
}

func (p *jsParser) additive() (jsNode, error) {
	l, err := p.unary()
	for err == nil && p.accept("+") {
		var r jsNode
		if r, err = p.unary(); err != nil {
			break
		}
		ll := l
		l = func(d map[string]any) (any, error) {
			a, err := ll(d)
			if err != nil {
				return nil, err
			}
			b, err := r(d)
			if err != nil {
				return nil, err
			}
			_, as := a.(string)
			_, bs := b.(string)
			if as || bs {
				return jsString(a) + jsString(b), nil
			}
			return toNum(a) + toNum(b), nil
		}
	}
	return l, err
}

func (p *jsParser) unary() (jsNode, error) {
	if p.accept("!") {
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(d map[string]any) (any, error) {
			v, err := n(d)
			return !truthy(v), err
		}, nil
	}
	return p.postfix()
}

func (p *jsParser) postfix() (jsNode, error) {
	n, err := p.primary()
	for err == nil {
		switch {
		case p.accept("."):
			name := p.peek()
			if name == "" || !isIdent(name) {
				return nil, fmt.Errorf("expected a property name, found %q", name)
			}
			p.pos++
			if name == "includes" && p.accept("(") {
				arg, err := p.ternary()
				if err != nil {
					return nil, err
				}
				if err := p.expect(")"); err != nil {
					return nil, err
				}
				obj := n
				n = func(d map[string]any) (any, error) {
					o, err := obj(d)
					if err != nil {
						return nil, err
					}
					a, err := arg(d)
					if err != nil {
						return nil, err
					}
					switch t := o.(type) {
					case []any:
						for _, x := range t {
							if strictEq(x, a) {
								return true, nil
							}
						}
						return false, nil
					case string:
						return strings.Contains(t, jsString(a)), nil
					}
					return nil, fmt.Errorf("TypeError: %s.includes is not a function", jsString(o))
				}
				continue
			}
			n = member(n, func(map[string]any) (any, error) { return name, nil })
		case p.accept("["):
			idx, err := p.ternary()
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			n = member(n, idx)
		default:
			return n, nil
		}
	}
	return n, err
}

func isIdent(s string) bool {
	c := s[0]
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// member is obj[key]; reading a property of undefined or null throws, as
// in JavaScript.
func member(obj, key jsNode) jsNode {
	return func(d map[string]any) (any, error) {
		o, err := obj(d)
		if err != nil {
			return nil, err
		}
		k, err := key(d)
		if err != nil {
			return nil, err
		}
		ks := jsString(k)
		switch t := o.(type) {
		case map[string]any:
			if v, ok := t[ks]; ok {
				return v, nil
			}
			return undefined, nil
		case []any:
			if ks == "length" {
				return float64(len(t)), nil
			}
			i, err := strconv.Atoi(ks)
			if err != nil || i < 0 || i >= len(t) {
				return undefined, nil
			}
			return t[i], nil
		case string:
			if ks == "length" {
				return float64(len([]rune(t))), nil
			}
			return undefined, nil
		case nil, undefinedT:
			return nil, fmt.Errorf("TypeError: Cannot read properties of %s (reading '%s')", jsString(o), ks)
		}
		return undefined, nil
	}
}

func (p *jsParser) primary() (jsNode, error) {
	t := p.peek()
	if t == "" {
		return nil, errors.New("unexpected end of expression")
	}
	p.pos++
	switch {
	case t == "(":
		n, err := p.ternary()
		if err != nil {
			return nil, err
		}
		return n, p.expect(")")
	case t == "[":
		var elems []jsNode
		for !p.accept("]") {
			if len(elems) > 0 {
				if err := p.expect(","); err != nil {
					return nil, err
				}
			}
			e, err := p.ternary()
			if err != nil {
				return nil, err
			}
			elems = append(elems, e)
		}
		return func(d map[string]any) (any, error) {
			out := make([]any, len(elems))
			for i, e := range elems {
				v, err := e(d)
				if err != nil {
					return nil, err
				}
				out[i] = v
			}
			return out, nil
		}, nil
	case strings.HasPrefix(t, "'"):
		s := t[1:]
		return func(map[string]any) (any, error) { return s, nil }, nil
	case t[0] >= '0' && t[0] <= '9':
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return nil, err
		}
		return func(map[string]any) (any, error) { return f, nil }, nil
	case t == "true" || t == "false":
		b := t == "true"
		return func(map[string]any) (any, error) { return b, nil }, nil
	case t == "null":
		return func(map[string]any) (any, error) { return nil, nil }, nil
	case t == "undefined":
		return func(map[string]any) (any, error) { return undefined, nil }, nil
	case t == "doc":
		return func(d map[string]any) (any, error) { return d, nil }, nil
	}
	return nil, fmt.Errorf("unsupported JavaScript token %q (only doc, literals and simple operators)", t)
}

func toNum(v any) float64 {
	switch t := v.(type) {
	case float64:
		return t
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return math.NaN()
		}
		return f
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case bool:
		if t {
			return 1
		}
		return 0
	case nil:
		return 0
	case string:
		if strings.TrimSpace(t) == "" {
			return 0
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return math.NaN()
		}
		return f
	}
	return math.NaN()
}

func isNum(v any) bool {
	switch v.(type) {
	case float64, json.Number, int, int64:
		return true
	}
	return false
}

func strictEq(a, b any) bool {
	if isNum(a) && isNum(b) {
		return toNum(a) == toNum(b)
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	case undefinedT:
		_, ok := b.(undefinedT)
		return ok
	}
	return false // objects compare by identity; never equal here
}

func looseEq(a, b any) bool {
	_, au := a.(undefinedT)
	_, bu := b.(undefinedT)
	if (a == nil || au) && (b == nil || bu) {
		return true
	}
	if a == nil || au || b == nil || bu {
		return false
	}
	if strictEq(a, b) {
		return true
	}
	_, as := a.(string)
	_, bs := b.(string)
	if (isNum(a) || as || isBool(a)) && (isNum(b) || bs || isBool(b)) && !(as && bs) {
		return toNum(a) == toNum(b)
	}
	return false
}

func isBool(v any) bool { _, ok := v.(bool); return ok }

func truthy(v any) bool {
	switch t := v.(type) {
	case nil, undefinedT:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case float64, json.Number, int, int64:
		f := toNum(t)
		return f != 0 && !math.IsNaN(f)
	}
	return true
}

func jsString(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case undefinedT:
		return "undefined"
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case json.Number:
		return strconv.FormatFloat(toNum(t), 'f', -1, 64)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			if x != nil {
				parts[i] = jsString(x)
			}
		}
		return strings.Join(parts, ",")
	}
	return "[object Object]"
}
