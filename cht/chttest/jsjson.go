package chttest

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// jsNumberString formats f as JavaScript's Number.prototype.toString does
// (ECMAScript Number::toString), which is also how JSON.stringify writes a
// finite number: the shortest digits that read back as f, integers
// without a fraction, plain notation for 1e-6 <= |f| < 1e21 and
// exponential notation ("1e+21", "1.5e-7") outside; -0 is "0".
func jsNumberString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// Shortest round-trip digits d1.d2...dk and exponent x: f = 0.d1...dk × 10^n
	// with n = x+1, as the specification's s, k and n.
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	var b strings.Builder
	b.WriteString(sign)
	switch {
	case k <= n && n <= 21:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", n-k))
	case 0 < n && n <= 21:
		b.WriteString(digits[:n])
		b.WriteByte('.')
		b.WriteString(digits[n:])
	case -6 < n && n <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -n))
		b.WriteString(digits)
	default:
		b.WriteByte(digits[0])
		if k > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		if n-1 >= 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.Itoa(n - 1))
	}
	return b.String()
}

// jsJSONNumber is a JSON number as JSON.parse reads it and JSON.stringify
// writes it back: the nearest float64, in jsNumberString's form. A number
// too large for a float64 is Infinity, which JSON.stringify writes as
// null (nil).
func jsJSONNumber(n json.Number) any {
	f, err := strconv.ParseFloat(string(n), 64)
	if math.IsInf(f, 0) {
		return nil
	}
	if err != nil {
		return n // not produced by the JSON decoder
	}
	return json.Number(jsNumberString(f))
}

// jsReencode rewrites, in place, the numbers of a value decoded with
// UseNumber as CHT's API stores them: it parses request bodies with
// body-parser (JSON.parse) and writes the documents it builds from them
// with JSON.stringify, so 61.50 is stored as 61.5, 168.0 as 168 and 1e2
// as 100 (see jsJSONNumber). It returns the rewritten value.
func jsReencode(v any) any {
	switch t := v.(type) {
	case json.Number:
		return jsJSONNumber(t)
	case map[string]any:
		for k, x := range t {
			t[k] = jsReencode(x)
		}
	case []any:
		for i, x := range t {
			t[i] = jsReencode(x)
		}
	}
	return v
}

// decodeJS decodes a request body as CHT's API reads it (JSON.parse), with
// the numbers JSON.stringify writes back (jsReencode).
func decodeJS(raw []byte) (any, error) {
	v, err := decodeAny(raw)
	if err != nil {
		return nil, err
	}
	return jsReencode(v), nil
}

// decodeJSDoc is decodeJS for a body that must be a JSON object.
func decodeJSDoc(raw []byte) (map[string]any, error) {
	d, err := decodeDoc(raw)
	if err != nil {
		return nil, err
	}
	jsReencode(d)
	return d, nil
}
