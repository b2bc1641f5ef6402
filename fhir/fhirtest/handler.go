package fhirtest

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const contentTypeFHIR = "application/fhir+json; charset=utf-8"

// result is the outcome of one interaction, before it is written as an HTTP response or a Bundle
// response entry.
type result struct {
	status   int
	rec      *record // the resource to return (create, update, read)
	body     []byte  // a ready body (searchset Bundle, OperationOutcome) when rec is nil
	location bool    // answer a Location header
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lw := &loggingWriter{ResponseWriter: w, h: h,
		req: Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Time: start}}
	logged := &lw.req
	defer lw.log(0) // a request answered without a write (none today) is still logged

	h.sleep(r, h.faults.latency())

	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(lw, r.Body, h.maxBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeError(lw, &opError{status: http.StatusRequestEntityTooLarge, code: "too-costly",
				msg: "request body larger than " + strconv.FormatInt(h.maxBody, 10) + " bytes"})
			return
		case err != nil:
			writeError(lw, errInvalid("", "reading request body: %v", err))
			return
		}
	}
	logged.Body = body

	rest, ok := strings.CutPrefix(r.URL.Path, h.basePath)
	if !ok || (rest != "" && rest[0] != '/') {
		writeError(lw, &opError{status: http.StatusNotFound, code: "not-found",
			msg: "unknown path " + r.URL.Path + "; the FHIR base is " + h.basePath})
		return
	}
	var segs []string
	if rest = strings.Trim(rest, "/"); rest != "" {
		segs = strings.Split(rest, "/")
	}
	search := len(segs) == 2 && segs[1] == "_search"
	write := (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodDelete ||
		r.Method == http.MethodPatch) && !search

	kind, status, hang := h.faults.decide(write)
	logged.Fault = kind
	switch kind {
	case FaultFail:
		writeError(lw, &opError{status: status, code: "transient", msg: "fhirtest: injected failure"})
		return
	case FaultTimeout:
		h.hang(r, hang)
		writeError(lw, &opError{status: http.StatusGatewayTimeout, code: "timeout", msg: "fhirtest: injected timeout"})
		return
	case FaultDrop:
		lw.log(0) // before the connection closes, so the client cannot see the drop first
		drop(w)
		return
	case FaultLostResponse:
		h.route(&discardWriter{header: http.Header{}}, r, segs, body, write)
		h.drainChanges()
		h.hang(r, hang)
		writeError(lw, &opError{status: http.StatusGatewayTimeout, code: "timeout", msg: "fhirtest: injected timeout after the write was applied"})
		return
	}
	h.route(lw, r, segs, body, write)
	h.drainChanges()
}

// route dispatches one request to its interaction.
func (h *Handler) route(w http.ResponseWriter, r *http.Request, segs []string, body []byte, write bool) {
	if write && len(body) > 0 {
		if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
			writeError(w, err)
			return
		}
	}
	base := h.baseURL(r)
	prefer := preferReturn(r.Header.Get("Prefer"))
	var res result
	var err *opError
	switch {
	case len(segs) == 0:
		switch r.Method {
		case http.MethodPost:
			res, err = h.bundle(body, base)
		default:
			err = methodNotAllowed(w, "POST")
		}
	case len(segs) == 1 && segs[0] == "metadata":
		if r.Method != http.MethodGet {
			err = methodNotAllowed(w, "GET")
			break
		}
		res = result{status: http.StatusOK, body: capabilityStatement}
	case !resourceTypes[segs[0]]:
		err = &opError{status: http.StatusNotFound, code: "not-supported", msg: "unknown resource type " + segs[0], expression: segs[0]}
	case len(segs) == 1:
		typ := segs[0]
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			res, err = h.search(typ, r.URL.Query(), base, r.URL)
		case http.MethodPost:
			res, err = h.createRequest(typ, body, r.Header.Get("If-None-Exist"))
		case http.MethodPut:
			res, err = h.conditionalUpdateRequest(typ, r.URL.Query(), body, r.Header.Get("If-Match"))
		default:
			err = methodNotAllowed(w, "GET, POST, PUT")
		}
	case len(segs) == 2 && segs[1] == "_search":
		if r.Method != http.MethodPost {
			err = methodNotAllowed(w, "POST")
			break
		}
		vals := r.URL.Query()
		form, perr := url.ParseQuery(string(body))
		if perr != nil {
			err = errInvalid("", "invalid form body of _search: %v", perr)
			break
		}
		for k, v := range form {
			vals[k] = append(vals[k], v...)
		}
		res, err = h.search(segs[0], vals, base, r.URL)
	case len(segs) == 2:
		typ, id := segs[0], segs[1]
		if !validID(id) {
			err = errInvalid(typ+".id", "invalid id %q: want 1-64 characters of [A-Za-z0-9-.]", id)
			break
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			res, err = h.read(typ, id, "")
		case http.MethodPut:
			res, err = h.updateRequest(typ, id, body, r.Header.Get("If-Match"))
		case http.MethodDelete:
			h.mu.Lock()
			res, err = h.delete(nil, typ, id, r.Header.Get("If-Match"))
			h.mu.Unlock()
		default:
			err = methodNotAllowed(w, "GET, PUT, DELETE")
		}
	case len(segs) == 4 && segs[2] == "_history":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			err = methodNotAllowed(w, "GET")
			break
		}
		res, err = h.read(segs[0], segs[1], segs[3])
	default:
		err = &opError{status: http.StatusNotFound, code: "not-found", msg: "unsupported path " + r.URL.Path}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	h.writeResult(w, res, base, prefer)
}

func methodNotAllowed(w http.ResponseWriter, allow string) *opError {
	w.Header().Set("Allow", allow)
	return &opError{status: http.StatusMethodNotAllowed, code: "not-supported", msg: "method not allowed; allowed: " + allow}
}

// checkContentType accepts the FHIR JSON media types and application/json.
func checkContentType(ct string) *opError {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		switch mt {
		case "application/fhir+json", "application/json", "application/json+fhir":
			return nil
		}
	}
	return &opError{status: http.StatusUnsupportedMediaType, code: "not-supported",
		msg: "unsupported Content-Type " + strconv.Quote(ct) + "; use application/fhir+json or application/json"}
}

// preferReturn returns the return= preference of a Prefer header: "minimal", "representation" or
// "OperationOutcome".
func preferReturn(h string) string {
	for part := range strings.SplitSeq(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(strings.TrimSpace(k), "return") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return "representation"
}

func (h *Handler) baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + h.basePath
}

// writeResult writes res with the headers of its resource.
func (h *Handler) writeResult(w http.ResponseWriter, res result, base, prefer string) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentTypeFHIR)
	body := res.body
	if rec := res.rec; rec != nil {
		body = rec.raw
		v := strconv.Itoa(rec.version)
		hdr.Set("ETag", `W/"`+v+`"`)
		hdr.Set("Last-Modified", rec.updated.UTC().Format(http.TimeFormat))
		if res.location {
			hdr.Set("Location", base+"/"+rec.typ+"/"+rec.id+"/_history/"+v)
		}
		switch prefer {
		case "minimal":
			body = nil
		case "OperationOutcome":
			body = outcomeJSON("information", "informational", http.StatusText(res.status), "")
		}
	}
	if body == nil {
		hdr.Del("Content-Type")
	}
	w.WriteHeader(res.status)
	if body != nil {
		_, _ = w.Write(body)
	}
}

// writeError writes err as an OperationOutcome.
func writeError(w http.ResponseWriter, err *opError) {
	w.Header().Set("Content-Type", contentTypeFHIR)
	w.WriteHeader(err.status)
	_, _ = w.Write(outcomeJSON("error", err.code, err.msg, err.expression))
}

// outcomeJSON encodes a single-issue OperationOutcome.
func outcomeJSON(severity, code, text, expression string) []byte {
	b := make([]byte, 0, 160+len(text)+len(expression))
	b = append(b, `{"resourceType":"OperationOutcome","issue":[{"severity":`...)
	b = strconv.AppendQuote(b, severity)
	b = append(b, `,"code":`...)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"details":{"text":`...)
	b = appendJSONString(b, text)
	b = append(b, '}')
	if expression != "" {
		b = append(b, `,"expression":[`...)
		b = appendJSONString(b, expression)
		b = append(b, ']')
	}
	return append(b, "}]}"...)
}

func appendJSONString(b []byte, s string) []byte { return appendString(b, s) }

var capabilityStatement = []byte(`{"resourceType":"CapabilityStatement","status":"active","date":"2026-01-01",` +
	`"kind":"instance","software":{"name":"fhirtest (github.com/cht-interop/openhim-mediator-go/fhir/fhirtest)"},` +
	`"fhirVersion":"4.0.1","format":["json"],"rest":[{"mode":"server"}]}`)

// loggingWriter commits its request just before the first byte of the answer is handed to the
// connection: it queues the notifications of the writes made and logs the request with the status
// answered. A client that has an answer (or a dropped connection) therefore always finds its
// request in [Handler.Requests], and the notifications it caused already queued.
type loggingWriter struct {
	http.ResponseWriter
	h      *Handler
	req    Request
	logged bool
}

// log records the request once, with status (0: no answer) and the time taken so far.
func (w *loggingWriter) log(status int) {
	if w.logged {
		return
	}
	w.logged = true
	w.h.drainChanges()
	w.req.Status = status
	w.req.Duration = time.Since(w.req.Time)
	w.h.logRequest(w.req)
}

func (w *loggingWriter) WriteHeader(code int) {
	w.log(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggingWriter) Write(b []byte) (int, error) {
	w.log(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// discardWriter swallows the response of a lost-response fault.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// --- interactions ---

// parseConditional parses the search of an If-None-Exist header or conditional URL.
func parseConditional(typ, raw, where string) (*query, *opError) {
	raw = strings.TrimPrefix(raw, typ+"?")
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errInvalid(where, "invalid search %q: %v", raw, err)
	}
	if len(vals) == 0 {
		return nil, errInvalid(where, "conditional %s needs search parameters", where)
	}
	return parseQuery(typ, vals)
}

func (h *Handler) createRequest(typ string, body []byte, ifNoneExist string) (result, *opError) {
	m, err := decodeObject(body, typ)
	if err != nil {
		return result{}, err
	}
	p, err := prepare(m, typ, h.strict)
	if err != nil {
		return result{}, err
	}
	var cond *query
	if ifNoneExist != "" {
		if cond, err = parseConditional(typ, ifNoneExist, "If-None-Exist"); err != nil {
			return result{}, err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if cond != nil {
		switch matches := h.st.search(typ, cond); len(matches) {
		case 0:
		case 1:
			return result{status: http.StatusOK, rec: matches[0]}, nil
		default:
			return result{}, errMultiple("If-None-Exist")
		}
	}
	id, _ := p.m["id"].(string) // the real server keeps a client-supplied id on POST
	if id == "" {
		id = newID()
	} else if h.st.live(typ, id) != nil {
		return result{}, errInvalid(typ+".id", "assigned id %s is already in use", id)
	}
	rec, err := h.store(nil, p, id)
	if err != nil {
		return result{}, err
	}
	return result{status: http.StatusCreated, rec: rec, location: true}, nil
}

// store writes p as the next version of typ/id. The caller holds h.mu.
func (h *Handler) store(u *undoLog, p *prepared, id string) (*record, *opError) {
	version, seq := 1, uint64(0)
	if prev := h.st.get(p.typ, id); prev != nil {
		version = prev.version + 1
		if !prev.deleted() {
			seq = prev.seq
		}
	}
	if seq == 0 {
		h.st.seq++
		seq = h.st.seq
	}
	rec, err := p.finish(id, version, seq, h.now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return nil, &opError{status: http.StatusInternalServerError, code: "exception", msg: "encoding resource: " + err.Error()}
	}
	h.st.put(u, rec)
	return rec, nil
}

func (h *Handler) updateRequest(typ, id string, body []byte, ifMatch string) (result, *opError) {
	m, err := decodeObject(body, typ)
	if err != nil {
		return result{}, err
	}
	p, err := prepare(m, typ, h.strict)
	if err != nil {
		return result{}, err
	}
	if bodyID, _ := m["id"].(string); bodyID != id {
		return result{}, errInvalid(typ+".id", "incorrect resource id: the body has %q, the URL %q", bodyID, id)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.update(nil, p, id, ifMatch)
}

// update stores p as typ/id, creating it when absent. The real server answers 200 in both cases.
func (h *Handler) update(u *undoLog, p *prepared, id, ifMatch string) (result, *opError) {
	if err := checkIfMatch(h.st.live(p.typ, id), ifMatch); err != nil {
		return result{}, err
	}
	rec, err := h.store(u, p, id)
	if err != nil {
		return result{}, err
	}
	return result{status: http.StatusOK, rec: rec, location: true}, nil
}

func (h *Handler) conditionalUpdateRequest(typ string, vals url.Values, body []byte, ifMatch string) (result, *opError) {
	if len(vals) == 0 {
		return result{}, errInvalid("", "PUT to %s needs an id in the URL or search parameters (conditional update)", typ)
	}
	q, err := parseQuery(typ, vals)
	if err != nil {
		return result{}, err
	}
	m, err := decodeObject(body, typ)
	if err != nil {
		return result{}, err
	}
	p, err := prepare(m, typ, h.strict)
	if err != nil {
		return result{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	bodyID, _ := m["id"].(string)
	switch matches := h.st.search(typ, q); len(matches) {
	case 0:
		if bodyID != "" {
			return result{}, errInvalid(typ+".id", "cannot perform create as update with client-assigned id")
		}
		rec, err := h.store(nil, p, newID())
		if err != nil {
			return result{}, err
		}
		return result{status: http.StatusCreated, rec: rec, location: true}, nil
	case 1:
		if bodyID != "" && bodyID != matches[0].id {
			return result{}, errInvalid(typ+".id", "resource id %q did not match the resolved id %q", bodyID, matches[0].id)
		}
		return h.update(nil, p, matches[0].id, ifMatch)
	default:
		return result{}, errMultiple("url")
	}
}

// delete removes typ/id. Like the real server it answers 200 with an OperationOutcome, and 404 when
// the resource does not exist (or was already deleted); a stale If-Match is 412. The caller holds
// h.mu.
func (h *Handler) delete(u *undoLog, typ, id, ifMatch string) (result, *opError) {
	cur := h.st.live(typ, id)
	if cur == nil {
		return result{}, errNotFound(typ + "/" + id)
	}
	if err := checkIfMatch(cur, ifMatch); err != nil {
		return result{}, err
	}
	tomb := &record{typ: typ, id: id, version: cur.version + 1, seq: cur.seq, updated: h.now().UTC().Truncate(time.Millisecond)}
	h.st.put(u, tomb)
	return result{status: http.StatusOK, body: outcomeJSON("information", "informational", "All OK", "")}, nil
}

// read returns typ/id, or one version of it when vid is set (only the current version is kept).
func (h *Handler) read(typ, id, vid string) (result, *opError) {
	h.mu.RLock()
	cur := h.st.get(typ, id)
	h.mu.RUnlock()
	return h.readResult(cur, typ, id, vid)
}

// readResult answers the read of typ/id (of its version vid when set) whose stored record,
// possibly a tombstone, is cur (nil when the server never had it): 410 for a deleted resource with
// Config.Gone, else 404 for anything but the current version.
func (h *Handler) readResult(cur *record, typ, id, vid string) (result, *opError) {
	if cur != nil && cur.deleted() && h.gone && (vid == "" || strconv.Itoa(cur.version) == vid) {
		return result{}, &opError{status: http.StatusGone, code: "deleted", msg: typ + "/" + id + " was deleted"}
	}
	if cur != nil && cur.deleted() {
		cur = nil
	}
	if cur == nil || (vid != "" && strconv.Itoa(cur.version) != vid) {
		what := typ + "/" + id
		if vid != "" {
			what += "/_history/" + vid
		}
		return result{}, errNotFound(what)
	}
	return result{status: http.StatusOK, rec: cur}, nil
}

func (h *Handler) search(typ string, vals url.Values, base string, u *url.URL) (result, *opError) {
	q, err := parseQuery(typ, vals)
	if err != nil {
		return result{}, err
	}
	h.mu.RLock()
	matches := h.st.search(typ, q)
	h.mu.RUnlock()
	return result{status: http.StatusOK, body: searchBundle(matches, q, base, typ, vals)}, nil
}

// searchBundle encodes a searchset Bundle with total, self/next links and the page of matches.
func searchBundle(matches []*record, q *query, base, typ string, vals url.Values) []byte {
	page := matches
	if q.summaryOnly {
		page = nil
	} else {
		page = page[min(q.offset, len(page)):]
		page = page[:min(q.count, len(page))]
	}
	size := 160
	for _, r := range page {
		size += len(r.raw) + len(base) + len(r.typ) + len(r.id) + 64
	}
	b := make([]byte, 0, size)
	b = append(b, `{"resourceType":"Bundle","type":"searchset","total":`...)
	b = strconv.AppendInt(b, int64(len(matches)), 10)
	b = append(b, `,"link":[{"relation":"self","url":`...)
	b = appendJSONString(b, base+"/"+typ+encodeQuery(vals))
	b = append(b, '}')
	if !q.summaryOnly && q.offset+len(page) < len(matches) && q.count > 0 {
		next := url.Values{}
		for k, v := range vals {
			next[k] = v
		}
		next.Set("_offset", strconv.Itoa(q.offset+len(page)))
		next.Set("_count", strconv.Itoa(q.count))
		b = append(b, `,{"relation":"next","url":`...)
		b = appendJSONString(b, base+"/"+typ+encodeQuery(next))
		b = append(b, '}')
	}
	b = append(b, ']')
	if len(page) > 0 {
		b = append(b, `,"entry":[`...)
		for i, r := range page {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"fullUrl":`...)
			b = appendJSONString(b, base+"/"+r.typ+"/"+r.id)
			b = append(b, `,"resource":`...)
			b = append(b, r.raw...)
			b = append(b, `,"search":{"mode":"match"}}`...)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func encodeQuery(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// checkIfMatch is the 412 of a write whose If-Match names another version than cur's (or a
// resource that does not exist), nil when it names cur's or holds no entity tag. As on the e2e
// server (medplum's parseIfMatchHeader), the version is the first quoted string, W/"3" or "3"; a
// value without one, such as 3, is ignored, so the write goes ahead unconditionally.
func checkIfMatch(cur *record, ifMatch string) *opError {
	_, rest, ok := strings.Cut(ifMatch, `"`)
	want, _, closed := strings.Cut(rest, `"`)
	if !ok || !closed || want == "" {
		return nil
	}
	if cur == nil || strconv.Itoa(cur.version) != want {
		return &opError{status: http.StatusPreconditionFailed, code: "conflict",
			msg: "If-Match " + ifMatch + " does not match the current version"}
	}
	return nil
}
