package fhirtest

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// entry is one parsed request of a transaction or batch Bundle.
type entry struct {
	index   int
	where   string // "Bundle.entry[3]"
	method  string
	typ     string
	id      string // Type/id interactions; the assigned id for creates
	vid     string // GET Type/id/_history/vid
	search  url.Values
	cond    *query // conditional PUT or If-None-Exist search
	fullURL string
	ifMatch string
	p       *prepared
	err     *opError // a parse error (batch only; a transaction fails as a whole)
	res     result
	matched *record // If-None-Exist resolved to an existing resource
}

// order is the processing order of the FHIR spec (and the real server): DELETE, POST, PUT, GET.
func (e *entry) order() int {
	switch e.method {
	case http.MethodDelete:
		return 0
	case http.MethodPost:
		return 1
	case http.MethodPut:
		return 2
	}
	return 3
}

// bundle processes a transaction (atomically) or batch Bundle.
func (h *Handler) bundle(body []byte, base string) (result, *opError) {
	m, err := decodeObject(body, "Bundle")
	if err != nil {
		return result{}, err
	}
	if rt, _ := m["resourceType"].(string); rt != "Bundle" {
		return result{}, errInvalid("resourceType", "POST to the base URL needs a transaction or batch Bundle, got resourceType %q", rt)
	}
	kind, _ := m["type"].(string)
	if kind != "transaction" && kind != "batch" {
		return result{}, errInvalid("Bundle.type", "unrecognized bundle type %q: want transaction or batch", kind)
	}
	tx := kind == "transaction"
	rawEntries, _ := m["entry"].([]any)
	if len(rawEntries) == 0 {
		return result{}, errInvalid("Bundle.entry", "missing bundle entries")
	}
	entries := make([]*entry, len(rawEntries))
	for i, raw := range rawEntries {
		e, err := h.parseEntry(i, raw)
		if err != nil {
			// Invalid resources fail the whole request, for batches too, as on the real server.
			if tx || err.code == "structure" || e == nil {
				return result{}, err
			}
			e.err = err
		}
		entries[i] = e
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	var undo *undoLog
	if tx {
		undo = h.st.begin()
	}
	if err := h.resolve(entries, tx); err != nil {
		return result{}, err
	}
	ordered := slices.Clone(entries)
	slices.SortStableFunc(ordered, func(a, b *entry) int { return a.order() - b.order() })
	for _, e := range ordered {
		if e.err != nil {
			continue
		}
		e.res, e.err = h.process(undo, e, base)
		if e.err != nil && tx {
			h.st.rollback(undo)
			fail := *e.err
			fail.msg = e.where + ": " + fail.msg
			return result{}, &fail
		}
	}
	if tx && h.refInteg {
		if err := h.danglingRef(ordered); err != nil {
			h.st.rollback(undo)
			return result{}, err
		}
	}
	return result{status: http.StatusOK, body: bundleResponse(kind+"-response", entries, base)}, nil
}

// literalRefRE is a relative literal reference, Type/id, with an optional
// version.
var literalRefRE = regexp.MustCompile(`^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$`)

// danglingRef returns the 400 of the first resource written by entries
// whose literal reference names a resource the store does not hold (see
// Config.ReferentialIntegrity), nil when there is none.
func (h *Handler) danglingRef(entries []*entry) *opError {
	for _, e := range entries {
		// A write's resource as stored: its prepared members, the
		// fullUrls already resolved (an If-None-Exist match writes none).
		if e.err != nil || e.p == nil || e.matched != nil {
			continue
		}
		var missing string
		walkRefs(e.p.m, "", func(path, ref string) bool {
			if g := literalRefRE.FindStringSubmatch(ref); g != nil && h.st.live(g[1], g[2]) == nil {
				missing = fmt.Sprintf("Resource %s/%s not found, specified in path: %s.%s", g[1], g[2], e.typ, path)
				return false
			}
			return true
		})
		if missing != "" {
			return errInvalid(e.where, "%s", missing)
		}
	}
	return nil
}

// walkRefs calls fn with the path and value of each reference member of
// v, a decoded resource (contained resources excepted), until fn returns
// false.
func walkRefs(v any, path string, fn func(path, ref string) bool) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if k == "contained" {
				continue
			}
			p := k
			if path != "" {
				p = path + "." + k
			}
			if s, ok := x.(string); ok && k == "reference" {
				if !fn(path, s) {
					return false
				}
				continue
			}
			if !walkRefs(x, p, fn) {
				return false
			}
		}
	case []any:
		for _, x := range t {
			if !walkRefs(x, path, fn) {
				return false
			}
		}
	}
	return true
}

// parseEntry parses and validates entry i. It returns a nil entry only when raw is not an object.
func (h *Handler) parseEntry(i int, raw any) (*entry, *opError) {
	where := "Bundle.entry[" + strconv.Itoa(i) + "]"
	em, ok := raw.(map[string]any)
	if !ok {
		return nil, &opError{status: http.StatusBadRequest, code: "structure", msg: "entry must be an object", expression: where}
	}
	e := &entry{index: i, where: where}
	e.fullURL, _ = em["fullUrl"].(string)
	req, _ := em["request"].(map[string]any)
	e.method, _ = req["method"].(string)
	rawURL, _ := req["url"].(string)
	e.ifMatch, _ = req["ifMatch"].(string)
	ifNoneExist, _ := req["ifNoneExist"].(string)
	switch {
	case e.method == "":
		return e, errInvalid(where+".request.method", "missing bundle entry request method")
	case rawURL == "":
		return e, errInvalid(where+".request.url", "missing bundle entry request url")
	}
	path, rawQuery, _ := strings.Cut(rawURL, "?")
	if i := strings.Index(path, "://"); i >= 0 { // absolute URL: keep the part after the FHIR base
		if j := strings.Index(path[i+3:], h.basePath+"/"); h.basePath != "" && j >= 0 {
			path = path[i+3+j+len(h.basePath)+1:]
		} else {
			return e, errInvalid(where+".request.url", "request url %q is not under the FHIR base", rawURL)
		}
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	e.typ = segs[0]
	if !resourceTypes[e.typ] {
		return e, errInvalid(where+".request.url", "unknown resource type in request url %q", rawURL)
	}
	vals, perr := url.ParseQuery(rawQuery)
	if perr != nil {
		return e, errInvalid(where+".request.url", "invalid query in %q: %v", rawURL, perr)
	}
	switch {
	case len(segs) == 1:
	case len(segs) == 2 && validID(segs[1]):
		e.id = segs[1]
	case len(segs) == 4 && validID(segs[1]) && segs[2] == "_history" && e.method == http.MethodGet:
		e.id, e.vid = segs[1], segs[3]
	default:
		return e, errInvalid(where+".request.url", "unsupported request url %q", rawURL)
	}

	var err *opError
	switch e.method {
	case http.MethodGet:
		if e.id == "" {
			e.search = vals
			_, err = parseQuery(e.typ, vals)
		}
	case http.MethodDelete:
		if e.id == "" {
			err = errInvalid(where+".request.url", "conditional delete is not supported")
		}
	case http.MethodPost:
		if e.id != "" || len(vals) > 0 {
			err = errInvalid(where+".request.url", "POST url must be a resource type, got %q", rawURL)
		} else if ifNoneExist != "" {
			e.cond, err = parseConditional(e.typ, ifNoneExist, where+".request.ifNoneExist")
		}
	case http.MethodPut:
		if e.id == "" {
			e.cond, err = parseConditional(e.typ, rawQuery, where+".request.url")
		}
	default:
		err = errInvalid(where+".request.method", "unsupported bundle entry method %q", e.method)
	}
	if err != nil {
		return e, err
	}
	if e.method == http.MethodPost || e.method == http.MethodPut {
		rm, ok := em["resource"].(map[string]any)
		if !ok {
			return e, &opError{status: http.StatusBadRequest, code: "structure", msg: "missing entry resource", expression: where + ".resource"}
		}
		p, err := prepare(rm, e.typ, h.strict)
		if err != nil {
			if rest, ok := strings.CutPrefix(err.expression, e.typ+"."); ok {
				err.expression = where + ".resource." + rest
			} else {
				err.expression = where + ".resource." + err.expression
			}
			return e, err
		}
		if bodyID, _ := rm["id"].(string); e.method == http.MethodPut && e.id != "" && bodyID != e.id {
			return e, errInvalid(where+".resource.id", "incorrect resource id: the resource has %q, the request url %q", bodyID, e.id)
		}
		e.p = p
	}
	return e, nil
}

// resolve assigns the ids of creates and conditional updates, maps urn:uuid fullUrls to the final
// references and rewrites them in every resource. The caller holds h.mu.
func (h *Handler) resolve(entries []*entry, tx bool) *opError {
	refs := make(map[string]string)
	seen := make(map[string]int)
	fullURLs := make(map[string]int)
	for _, e := range entries {
		if e.err != nil || e.method == http.MethodGet {
			continue
		}
		// HAPI refuses a transaction naming one fullUrl twice
		// (BaseTransactionProcessor, "Transaction bundle contains multiple
		// resources with ID"): the references to it would be ambiguous.
		if prev, dup := fullURLs[e.fullURL]; dup && tx && e.fullURL != "" {
			return errInvalid(e.where+".fullUrl", "transaction bundle contains multiple resources with ID: %s (also entry %d)", e.fullURL, prev)
		}
		fullURLs[e.fullURL] = e.index
		switch {
		case e.method == http.MethodPost:
			e.id = newID() // inside a Bundle the real server replaces a client id on POST
			if e.cond != nil {
				if matches := h.st.search(e.typ, e.cond); len(matches) == 1 {
					e.matched = matches[0]
					e.id = matches[0].id
				}
			}
		case e.method == http.MethodPut && e.cond != nil:
			bodyID, _ := e.p.m["id"].(string)
			switch matches := h.st.search(e.typ, e.cond); len(matches) {
			case 0:
				if bodyID != "" {
					e.err = errInvalid(e.where+".resource.id", "cannot provide an id for create by conditional update")
				}
				e.id = newID()
			case 1:
				e.id = matches[0].id
			default:
				e.err = errMultiple(e.where + ".request.url")
			}
		}
		if e.err != nil {
			if tx {
				return e.err
			}
			continue
		}
		key := e.typ + "/" + e.id
		// An If-None-Exist that matched writes nothing: two of them may name one resource (the e2e
		// server answers both with it, HAPI merges them).
		if e.matched == nil {
			if prev, dup := seen[key]; dup && tx {
				return errInvalid(e.where, "duplicate resource identity %s in the transaction (also entry %d)", key, prev)
			}
			seen[key] = e.index
		}
		if strings.HasPrefix(e.fullURL, "urn:uuid:") && e.method != http.MethodDelete {
			refs[e.fullURL] = key
		}
	}
	if len(refs) == 0 {
		return nil
	}
	for _, e := range entries {
		for k, vs := range e.search { // GET Type?subject=urn:uuid:... runs after the writes
			for i, v := range vs {
				if nv, changed := rewriteRefs(v, refs); changed {
					e.search[k][i] = nv.(string)
				}
			}
		}
		if e.p == nil || e.err != nil {
			continue
		}
		for k, v := range e.p.m {
			if nv, changed := rewriteRefs(v, refs); changed {
				e.p.m[k] = nv
			}
		}
		e.p.index()
	}
	return nil
}

// rewriteRefs replaces every urn:uuid in refs that occurs in a string of v (references, but also
// narrative and extensions, as the real server does) and reports whether v changed.
func rewriteRefs(v any, refs map[string]string) (any, bool) {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "urn:uuid:") {
			return x, false
		}
		if r, ok := refs[x]; ok {
			return r, true
		}
		var b strings.Builder
		changed := false
		rest := x
		for {
			i := strings.Index(rest, "urn:uuid:")
			if i < 0 {
				break
			}
			j := i + len("urn:uuid:")
			for j < len(rest) && isUUIDChar(rest[j]) {
				j++
			}
			b.WriteString(rest[:i])
			if r, ok := refs[rest[i:j]]; ok {
				b.WriteString(r)
				changed = true
			} else {
				b.WriteString(rest[i:j])
			}
			rest = rest[j:]
		}
		if !changed {
			return x, false
		}
		b.WriteString(rest)
		return b.String(), true
	case []any:
		changed := false
		for i, e := range x {
			if nv, c := rewriteRefs(e, refs); c {
				x[i], changed = nv, true
			}
		}
		return x, changed
	case map[string]any:
		changed := false
		for k, e := range x {
			if nv, c := rewriteRefs(e, refs); c {
				x[k], changed = nv, true
			}
		}
		return x, changed
	}
	return v, false
}

func isUUIDChar(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '.'
}

// process runs one resolved entry. The caller holds h.mu.
func (h *Handler) process(u *undoLog, e *entry, base string) (result, *opError) {
	switch e.method {
	case http.MethodDelete:
		return h.delete(u, e.typ, e.id, e.ifMatch)
	case http.MethodGet:
		if e.search != nil {
			q, err := parseQuery(e.typ, e.search)
			if err != nil {
				return result{}, err
			}
			matches := h.st.search(e.typ, q)
			return result{status: http.StatusOK, body: searchBundle(matches, q, base, e.typ, e.search)}, nil
		}
		return h.readResult(h.st.get(e.typ, e.id), e.typ, e.id, e.vid)
	case http.MethodPost:
		if e.cond != nil {
			switch matches := h.st.search(e.typ, e.cond); len(matches) {
			case 0:
			case 1:
				return result{status: http.StatusOK, rec: matches[0]}, nil
			default:
				return result{}, errMultiple(e.where + ".request.ifNoneExist")
			}
		}
		rec, err := h.store(u, e.p, e.id)
		if err != nil {
			return result{}, err
		}
		return result{status: http.StatusCreated, rec: rec, location: true}, nil
	case http.MethodPut:
		created := h.st.live(e.typ, e.id) == nil && e.cond != nil
		if created {
			// The condition matched nothing when the Bundle was read, and is searched again now, as
			// the e2e server does (medplum's conditionalUpdate): a match written by an earlier entry
			// (the same conditional update twice, or a POST of what it looks for) is not the id this
			// entry was given, and fails it.
			switch matches := h.st.search(e.typ, e.cond); len(matches) {
			case 0:
			case 1:
				return result{}, errInvalid(e.where+".request.url", "the conditional update matches %s/%s, written by an earlier entry of this Bundle",
					e.typ, matches[0].id)
			default:
				return result{}, errMultiple(e.where + ".request.url")
			}
		}
		res, err := h.update(u, e.p, e.id, e.ifMatch)
		if err == nil && created {
			res.status = http.StatusCreated
		}
		return res, err
	}
	return result{}, errInvalid(e.where+".request.method", "unsupported method %q", e.method)
}

// bundleResponse encodes the transaction-response or batch-response Bundle, entries in request order.
func bundleResponse(kind string, entries []*entry, base string) []byte {
	size := 96
	for _, e := range entries {
		size += 160 + len(e.res.body)
		if e.res.rec != nil {
			size += len(e.res.rec.raw) + len(base)
		}
	}
	b := make([]byte, 0, size)
	b = append(b, `{"resourceType":"Bundle","type":`...)
	b = strconv.AppendQuote(b, kind)
	b = append(b, `,"entry":[`...)
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		switch {
		case e.err != nil:
			b = append(b, `"response":{"status":`...)
			b = strconv.AppendQuote(b, statusLine(e.err.status))
			b = append(b, `,"outcome":`...)
			b = append(b, outcomeJSON("error", e.err.code, e.err.msg, e.err.expression)...)
			b = append(b, '}')
		case e.res.rec != nil:
			r := e.res.rec
			v := strconv.Itoa(r.version)
			b = append(b, `"fullUrl":`...)
			b = appendJSONString(b, base+"/"+r.typ+"/"+r.id)
			b = append(b, `,"resource":`...)
			b = append(b, r.raw...)
			b = append(b, `,"response":{"status":`...)
			b = strconv.AppendQuote(b, statusLine(e.res.status))
			b = append(b, `,"location":`...)
			b = strconv.AppendQuote(b, r.typ+"/"+r.id+"/_history/"+v)
			b = append(b, `,"etag":`...)
			b = strconv.AppendQuote(b, `W/"`+v+`"`)
			b = append(b, `,"lastModified":`...)
			b = strconv.AppendQuote(b, formatInstant(r.updated))
			b = append(b, '}')
		case e.method == http.MethodDelete:
			b = append(b, `"response":{"status":`...)
			b = strconv.AppendQuote(b, statusLine(e.res.status))
			b = append(b, `,"outcome":`...)
			b = append(b, e.res.body...)
			b = append(b, '}')
		default: // a search
			b = append(b, `"resource":`...)
			b = append(b, e.res.body...)
			b = append(b, `,"response":{"status":`...)
			b = strconv.AppendQuote(b, statusLine(e.res.status))
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func statusLine(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }
