package mediator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ContentType is the media type core looks for (a case-sensitive substring
// match on Content-Type) to treat a route's answer as a mediator response.
const ContentType = "application/json+openhim"

// defaultBodyBudget is the default number of body bytes one transaction may
// carry: core's MAX_BODIES_SIZE (api.maxBodiesSizeMB, at most 15 MiB), shared
// by the request, the response and every orchestration body.
const defaultBodyBudget = 15 << 20

// truncateMarker is appended to a body cut to fit the budget; it is core's
// default api.truncateAppend.
const truncateMarker = "\n[truncated ...]"

// Envelope is an application/json+openhim response: what a mediator answers
// to core. Its JSON form is the wire format; [WriteEnvelope] fills what
// core needs and [ParseEnvelope] reads one from a nested mediator.
type Envelope struct {
	// MediatorURN is the "x-mediator-urn" field, filled from the mediator's
	// definition when empty.
	MediatorURN string `json:"x-mediator-urn"`
	// Status overrides the transaction status core computes. Empty means
	// computed by [Envelope.Normalize] with the rules of core's
	// setFinalStatus, applied to the mediator's orchestrations where core
	// looks at the channel's routes: a 5xx response is Failed; otherwise
	// an orchestration that answered 5xx or failed without a response
	// makes it "Completed with error(s)"; a 2xx response with every
	// orchestration 2xx is Successful; anything else is Completed. Core
	// then keeps this status: a failing secondary route of the channel
	// does not change it. The status is always sent, because core 4.0.5
	// computing one itself races the storing of the response.
	Status Status `json:"status,omitempty"`
	// Response is what core returns to its client and stores.
	Response Response `json:"response"`
	// Orchestrations are the outbound calls made while handling the request.
	Orchestrations []Orchestration `json:"orchestrations,omitempty"`
	// Properties are stored as the transaction's properties.
	Properties map[string]any `json:"properties,omitempty"`
	// Error, when set, is stored as the transaction error; core retries
	// the transaction if the channel enables auto-retry.
	Error *ErrorDetails `json:"error,omitempty"`
}

// Response is the "response" of an envelope or an orchestration. Headers
// holds one string per header; Set-Cookie holds one cookie per line and is
// written as a JSON array of them, the form core's router requires
// (openhim-core src/middleware/router.js setCookiesOnContext reads the
// value as an array: a string made core answer its client 500).
type Response struct {
	Status    int               `json:"status"`
	Headers   map[string]string `json:"headers"`
	Body      string            `json:"body"`
	Timestamp time.Time         `json:"timestamp"`
}

// Orchestration is one recorded call made while handling a request. Name and
// Request.Timestamp are required by core: a transaction whose orchestration
// lacks them loses all of its response metadata.
type Orchestration struct {
	Name     string               `json:"name"`
	Group    string               `json:"group,omitempty"`
	Request  OrchestrationRequest `json:"request"`
	Response *Response            `json:"response,omitempty"`
	Error    *ErrorDetails        `json:"error,omitempty"`
}

// OrchestrationRequest is the request half of an [Orchestration].
type OrchestrationRequest struct {
	Host        string            `json:"host,omitempty"`
	Port        string            `json:"port,omitempty"`
	Path        string            `json:"path,omitempty"`
	Querystring string            `json:"querystring,omitempty"`
	Method      string            `json:"method,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Body        string            `json:"body,omitempty"`
	Timestamp   time.Time         `json:"timestamp"`
}

// ErrorDetails is the "error" object of an envelope or an orchestration:
// what went wrong, for core to store.
type ErrorDetails struct {
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// Normalize fills what core requires and the library guarantees: the URN
// (from urn when empty), the response status (200 when 0), non-nil response
// headers, every timestamp (from now when zero), orchestration names, header
// keys without '.' or '$', and a status computed as [Envelope.Status] says when
// none is set. It returns an error if Status is not one of core's values.
//
// A response status from 200 to 599 that core 4 cannot answer with is sent
// as the first code of its class (520 as 500, 499 as 400), the code RFC 9110
// (section 15) tells a client to read an unknown status as; the code itself
// is kept in the property "original status". Core 4 (koa 2.3.0, whose status
// setter in lib/response.js accepts only the codes of the statuses module
// 1.3.1) otherwise answers its client 500 "An internal server error occurred"
// in place of the mediator's answer, and stores the transaction with an error.
func (e *Envelope) Normalize(urn string, now time.Time) error {
	if err := validateStatus(e.Status); err != nil {
		return err
	}
	if e.MediatorURN == "" {
		e.MediatorURN = urn
	}
	if e.Response.Status == 0 {
		e.Response.Status = http.StatusOK
	}
	if code := e.Response.Status; code >= 200 && code <= 599 && !core4Status(code) {
		e.Properties = maps.Clone(e.Properties) // the caller's map stays as it was
		if e.Properties == nil {
			e.Properties = map[string]any{}
		}
		e.Properties[originalStatusProperty] = code
		e.Response.Status = code / 100 * 100
	}
	if e.Response.Headers == nil {
		e.Response.Headers = map[string]string{}
	}
	if e.Response.Timestamp.IsZero() {
		e.Response.Timestamp = now
	}
	for i := range e.Orchestrations {
		normalizeOrchestration(&e.Orchestrations[i], now)
	}
	if e.Status == "" {
		e.Status = computeStatus(e.Response.Status, e.Orchestrations)
	}
	if len(e.Properties) > 0 {
		e.Properties = sanitizeKeys(e.Properties)
	}
	return nil
}

// originalStatusProperty is the property that keeps a response status
// Normalize replaced.
const originalStatusProperty = "original status"

// core4Status reports whether core 4.0.5 can answer its client with code:
// whether the statuses module 1.3.1 that its koa 2.3.0 checks lists it.
// Go's status texts name a subset of that list; it adds 306 and 509.
func core4Status(code int) bool {
	return http.StatusText(code) != "" || code == 306 || code == 509
}

func normalizeOrchestration(o *Orchestration, now time.Time) {
	if o.Request.Timestamp.IsZero() {
		if o.Response != nil && !o.Response.Timestamp.IsZero() {
			o.Request.Timestamp = o.Response.Timestamp
		} else {
			o.Request.Timestamp = now
		}
	}
	if o.Name == "" {
		o.Name = defaultName(o.Request.Method, o.Request.Host, o.Request.Port)
	}
	o.Request.Headers = sanitizeHeaderKeys(o.Request.Headers)
	if o.Response != nil {
		if o.Response.Timestamp.IsZero() {
			o.Response.Timestamp = now
		}
		o.Response.Headers = sanitizeHeaderKeys(o.Response.Headers)
	}
}

// defaultName names an orchestration with no name: "GET host:port".
func defaultName(method, host, port string) string {
	if method == "" {
		method = http.MethodGet
	}
	if host == "" {
		return method
	}
	if port == "" {
		return method + " " + host
	}
	return method + " " + host + ":" + port
}

// sanitizeKey replaces '.' and '$' in a key with U+FF0E and U+FF04, as core
// does for top-level headers: MongoDB rejects keys containing them, and core
// does not escape orchestration headers itself.
func sanitizeKey(k string) string {
	if !strings.ContainsAny(k, ".$") {
		return k
	}
	return keyReplacer.Replace(k)
}

var keyReplacer = strings.NewReplacer(".", "\uff0e", "$", "\uff04")

func sanitizeHeaderKeys(h map[string]string) map[string]string {
	for k := range h {
		if strings.ContainsAny(k, ".$") {
			out := make(map[string]string, len(h))
			for k, v := range h {
				out[sanitizeKey(k)] = v
			}
			return out
		}
	}
	return h
}

func sanitizeKeys(m map[string]any) map[string]any {
	for k := range m {
		if strings.ContainsAny(k, ".$") {
			out := make(map[string]any, len(m))
			for k, v := range m {
				out[sanitizeKey(k)] = v
			}
			return out
		}
	}
	return m
}

// fitBodies cuts orchestration bodies, last first, so that reserved bytes
// (request and response bodies, which are never cut here) plus every
// orchestration body fit in budget. A budget <= 0 disables the check.
func fitBodies(orchs []Orchestration, reserved, budget int64) {
	if budget <= 0 {
		return
	}
	total := reserved
	for i := range orchs {
		total += int64(len(orchs[i].Request.Body))
		if orchs[i].Response != nil {
			total += int64(len(orchs[i].Response.Body))
		}
	}
	for i := len(orchs) - 1; i >= 0 && total > budget; i-- {
		o := &orchs[i]
		if o.Response != nil {
			total -= cutBody(&o.Response.Body, total-budget)
		}
		if total > budget {
			total -= cutBody(&o.Request.Body, total-budget)
		}
	}
}

// cutBody shortens *s by at least excess bytes (appending the truncation
// marker) and returns by how much it shrank.
func cutBody(s *string, excess int64) int64 {
	n := int64(len(*s))
	if n == 0 || excess <= 0 {
		return 0
	}
	keep := n - excess - int64(len(truncateMarker))
	if keep <= 0 {
		*s = ""
		return n
	}
	*s = truncateUTF8((*s)[:keep]) + truncateMarker
	return n - int64(len(*s))
}

// truncateUTF8 drops a trailing partial UTF-8 sequence.
func truncateUTF8(s string) string {
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size != 1 {
			return s
		}
		s = s[:len(s)-1]
	}
	return s
}

// WriteEnvelope normalizes env (see [Envelope.Normalize]; env is modified)
// and writes it with Content-Type application/json+openhim and the HTTP
// status of env.Response.Status, except that 204 and 304, which can carry
// no body, are sent as 200 (see outerStatus). Core reads the status from
// the envelope and ignores the outer one; clients that call the mediator
// directly see the same status as core's clients otherwise.
// A Response.Status outside 200-599 is an error and nothing is written.
func WriteEnvelope(w http.ResponseWriter, env *Envelope) error {
	if err := env.Normalize("", time.Now()); err != nil {
		return err
	}
	if s := env.Response.Status; !validResponseStatus(s) {
		return fmt.Errorf("mediator: write envelope: invalid response status %d (want 200-599)", s)
	}
	bp := bufPool.Get().(*[]byte)
	b := env.appendJSON((*bp)[:0])
	w.Header()["Content-Type"] = contentTypeValue
	w.WriteHeader(outerStatus(env.Response.Status))
	_, err := w.Write(b)
	putBuf(bp, b)
	if err != nil {
		return fmt.Errorf("mediator: write envelope: %w", err)
	}
	return nil
}

// outerStatus is the HTTP status an envelope of response status code is
// sent with: code, except 204 and 304, after which net/http sends no body.
// Core would then parse an empty envelope, fail, and answer its client 500
// for work that was done, marking it for auto-retry (openhim-core
// src/middleware/router.js: JSON.parse(response.body), then
// handleServerError); it takes the status from the envelope.
func outerStatus(code int) int {
	if code == http.StatusNoContent || code == http.StatusNotModified {
		return http.StatusOK
	}
	return code
}

// contentTypeValue is shared by every response (net/http does not modify
// header values).
var contentTypeValue = []string{ContentType}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func putBuf(bp *[]byte, b []byte) {
	if cap(b) > 1<<20 { // don't keep huge buffers
		return
	}
	*bp = b[:0]
	bufPool.Put(bp)
}

// MarshalJSON encodes the envelope as it is, without normalizing it.
func (e Envelope) MarshalJSON() ([]byte, error) {
	return e.appendJSON(nil), nil
}

// appendJSON appends the JSON form of e to b. It is faster than
// encoding/json and, like it, writes valid UTF-8 (invalid bytes become
// U+FFFD) with map keys sorted.
func (e *Envelope) appendJSON(b []byte) []byte {
	b = append(b, `{"x-mediator-urn":`...)
	b = appendString(b, e.MediatorURN)
	if e.Status != "" {
		b = append(b, `,"status":`...)
		b = appendString(b, string(e.Status))
	}
	b = append(b, `,"response":`...)
	b = appendResponse(b, &e.Response)
	if len(e.Orchestrations) > 0 {
		b = append(b, `,"orchestrations":[`...)
		for i := range e.Orchestrations {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendOrchestration(b, &e.Orchestrations[i])
		}
		b = append(b, ']')
	}
	if len(e.Properties) > 0 {
		b = append(b, `,"properties":`...)
		p, err := json.Marshal(e.Properties)
		if err != nil {
			// A value JSON cannot encode: keep the envelope valid and say so.
			p = appendString(nil, "properties not encodable: "+err.Error())
			b = append(b, `{"error":`...)
			b = append(b, p...)
			b = append(b, '}')
		} else {
			b = append(b, p...)
		}
	}
	if e.Error != nil {
		b = append(b, `,"error":`...)
		b = appendError(b, e.Error)
	}
	return append(b, '}')
}

func appendResponse(b []byte, r *Response) []byte {
	b = append(b, `{"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"headers":`...)
	b = appendHeaders(b, r.Headers)
	b = append(b, `,"body":`...)
	b = appendString(b, r.Body)
	b = append(b, `,"timestamp":`...)
	b = appendTime(b, r.Timestamp)
	return append(b, '}')
}

func appendOrchestration(b []byte, o *Orchestration) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, o.Name)
	if o.Group != "" {
		b = append(b, `,"group":`...)
		b = appendString(b, o.Group)
	}
	q := &o.Request
	b = append(b, `,"request":{`...)
	for _, f := range [...]struct{ k, v string }{
		{`"host":`, q.Host}, {`"port":`, q.Port}, {`"path":`, q.Path},
		{`"querystring":`, q.Querystring}, {`"method":`, q.Method},
	} {
		if f.v != "" {
			b = append(b, f.k...)
			b = appendString(b, f.v)
			b = append(b, ',')
		}
	}
	if q.Headers != nil {
		b = append(b, `"headers":`...)
		b = appendHeaders(b, q.Headers)
		b = append(b, ',')
	}
	if q.Body != "" {
		b = append(b, `"body":`...)
		b = appendString(b, q.Body)
		b = append(b, ',')
	}
	b = append(b, `"timestamp":`...)
	b = appendTime(b, q.Timestamp)
	b = append(b, '}')
	if o.Response != nil {
		b = append(b, `,"response":`...)
		b = appendResponse(b, o.Response)
	}
	if o.Error != nil {
		b = append(b, `,"error":`...)
		b = appendError(b, o.Error)
	}
	return append(b, '}')
}

func appendError(b []byte, e *ErrorDetails) []byte {
	b = append(b, `{"message":`...)
	b = appendString(b, e.Message)
	if e.Stack != "" {
		b = append(b, `,"stack":`...)
		b = appendString(b, e.Stack)
	}
	return append(b, '}')
}

// appendHeaders writes h as a JSON object with sorted keys (nil as {}).
func appendHeaders(b []byte, h map[string]string) []byte {
	b = append(b, '{')
	var small [16]string
	keys := small[:0]
	for k := range h {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		if !isSetCookie(k) {
			b = appendString(b, h[k])
			continue
		}
		b = append(b, '[')
		for j, c := range splitHeader(k, h[k]) {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, c)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// sortStrings is an insertion sort: header sets are small, and it avoids
// the allocation of sort.Strings' interface conversion.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// appendTime writes t in UTC with millisecond precision, like JavaScript's
// Date.prototype.toISOString (core stores Dates).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return append(b, '"')
}

// stringEncoder is a reusable encoding/json encoder of one string.
type stringEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var stringEncoders = sync.Pool{New: func() any {
	e := &stringEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

// appendString writes s as a JSON string the way encoding/json does
// (escaping <, >, & and U+2028/U+2029, replacing invalid UTF-8). Plain
// printable ASCII, the common case, is copied as it is.
func appendString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	e := stringEncoders.Get().(*stringEncoder)
	e.buf.Reset()
	_ = e.enc.Encode(s) // a string always encodes
	out := e.buf.Bytes()
	b = append(b, out[:len(out)-1]...) // without Encode's newline
	if e.buf.Cap() <= 1<<20 {
		stringEncoders.Put(e)
	}
	return b
}

// ParseEnvelope decodes an application/json+openhim body, as core does for a
// route's answer, but tolerant of what other mediator libraries send:
// a numeric-string response status, a non-string body (kept as its JSON
// text), header values that are numbers or arrays, and timestamps given as
// RFC 3339 strings or epoch milliseconds. It fails, like core, when the JSON
// is malformed or "response" is missing, and when a status is not one of
// core's values.
func ParseEnvelope(data []byte) (*Envelope, error) {
	var w wireEnvelope
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("mediator: parse envelope: %w", err)
	}
	if w.Response == nil {
		return nil, errors.New(`mediator: parse envelope: missing "response"`)
	}
	e := &Envelope{MediatorURN: w.URN, Status: Status(w.Status), Properties: w.Properties}
	if err := validateStatus(e.Status); err != nil {
		return nil, fmt.Errorf("mediator: parse envelope: %w", err)
	}
	var err error
	if e.Response, err = w.Response.response("response"); err != nil {
		return nil, err
	}
	if len(w.Orchestrations) > 0 {
		e.Orchestrations = make([]Orchestration, len(w.Orchestrations))
	}
	for i := range w.Orchestrations {
		wo := &w.Orchestrations[i]
		field := "orchestrations[" + strconv.Itoa(i) + "]"
		o := &e.Orchestrations[i]
		o.Name, o.Group, o.Error = wo.Name, wo.Group, wo.Error
		if wo.Request != nil {
			q := wo.Request
			o.Request = OrchestrationRequest{Host: q.Host.s, Port: q.Port.s, Path: q.Path.s,
				Querystring: q.Querystring.s, Method: q.Method.s, Body: q.Body.s, Headers: q.Headers.m}
			if o.Request.Timestamp, err = q.Timestamp.time(field + ".request.timestamp"); err != nil {
				return nil, err
			}
		}
		if wo.Response != nil {
			r, err := wo.Response.response(field + ".response")
			if err != nil {
				return nil, err
			}
			o.Response = &r
		}
	}
	e.Error = w.Error
	return e, nil
}

// UnmarshalJSON decodes an envelope with [ParseEnvelope].
func (e *Envelope) UnmarshalJSON(data []byte) error {
	p, err := ParseEnvelope(data)
	if err != nil {
		return err
	}
	*e = *p
	return nil
}

type wireEnvelope struct {
	URN            string              `json:"x-mediator-urn"`
	Status         string              `json:"status"`
	Response       *wireResponse       `json:"response"`
	Orchestrations []wireOrchestration `json:"orchestrations"`
	Properties     map[string]any      `json:"properties"`
	Error          *ErrorDetails       `json:"error"`
}

type wireOrchestration struct {
	Name     string        `json:"name"`
	Group    string        `json:"group"`
	Request  *wireRequest  `json:"request"`
	Response *wireResponse `json:"response"`
	Error    *ErrorDetails `json:"error"`
}

type wireRequest struct {
	Host        lenientString  `json:"host"`
	Port        lenientString  `json:"port"`
	Path        lenientString  `json:"path"`
	Querystring lenientString  `json:"querystring"`
	Method      lenientString  `json:"method"`
	Headers     lenientHeaders `json:"headers"`
	Body        lenientString  `json:"body"`
	Timestamp   lenientTime    `json:"timestamp"`
}

type wireResponse struct {
	Status    json.RawMessage `json:"status"`
	Headers   lenientHeaders  `json:"headers"`
	Body      lenientString   `json:"body"`
	Timestamp lenientTime     `json:"timestamp"`
}

func (w *wireResponse) response(field string) (Response, error) {
	r := Response{Headers: w.Headers.m, Body: w.Body.s}
	if len(w.Status) > 0 && string(w.Status) != "null" {
		var raw any
		if err := json.Unmarshal(w.Status, &raw); err != nil {
			return r, fmt.Errorf("mediator: parse envelope: %s.status: %w", field, err)
		}
		var f float64
		switch v := raw.(type) {
		case float64:
			f = v
		case string:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return r, fmt.Errorf("mediator: parse envelope: %s.status: not a number: %q", field, v)
			}
			f = float64(n)
		default:
			return r, fmt.Errorf("mediator: parse envelope: %s.status: not a number", field)
		}
		if f != math.Trunc(f) || f < 0 || f > 999 {
			return r, fmt.Errorf("mediator: parse envelope: %s.status: %v is not an HTTP status", field, f)
		}
		r.Status = int(f)
	}
	var err error
	r.Timestamp, err = w.Timestamp.time(field + ".timestamp")
	return r, err
}

// lenientString accepts a JSON string, or keeps any other value's JSON text
// (core stores bodies with toString; a nested mediator may send an object).
type lenientString struct{ s string }

func (l *lenientString) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		l.s = ""
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &l.s)
	default:
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			return err
		}
		// Compact keeps invalid UTF-8 inside strings as it is; replace it as
		// json.Unmarshal does for a string body, so the body is valid text
		// and encodes the same way every time.
		l.s = strings.ToValidUTF8(c.String(), "\uFFFD")
	}
	return nil
}

// lenientHeaders accepts an object whose values are strings, numbers,
// booleans or arrays of those (Node keeps set-cookie as an array, read
// here one cookie per line; see [Response]).
type lenientHeaders struct{ m map[string]string }

func (l *lenientHeaders) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	l.m = make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case []any:
			parts := make([]string, 0, len(v))
			for _, p := range v {
				parts = append(parts, scalarString(p))
			}
			l.m[k] = joinHeader(k, parts)
		default:
			l.m[k] = scalarString(v)
		}
	}
	return nil
}

func scalarString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// lenientTime accepts an RFC 3339 string or epoch milliseconds.
type lenientTime struct{ raw json.RawMessage }

func (l *lenientTime) UnmarshalJSON(b []byte) error {
	l.raw = append(l.raw[:0], b...)
	return nil
}

func (l lenientTime) time(field string) (time.Time, error) {
	if len(l.raw) == 0 || string(l.raw) == "null" {
		return time.Time{}, nil
	}
	var t time.Time
	if l.raw[0] == '"' {
		var s string
		if err := json.Unmarshal(l.raw, &s); err != nil {
			return t, fmt.Errorf("mediator: parse envelope: %s: %w", field, err)
		}
		var err error
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return t, fmt.Errorf("mediator: parse envelope: %s: %w", field, err)
		}
	} else {
		ms, err := strconv.ParseFloat(string(l.raw), 64)
		if err != nil || ms != math.Trunc(ms) {
			return t, fmt.Errorf("mediator: parse envelope: %s: not a timestamp: %s", field, l.raw)
		}
		t = time.UnixMilli(int64(ms))
	}
	// JavaScript Dates span ±273,790 years; keep to what RFC 3339 can say.
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, fmt.Errorf("mediator: parse envelope: %s: year %d out of range", field, y)
	}
	return t.UTC(), nil
}
