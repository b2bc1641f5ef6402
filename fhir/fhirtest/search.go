package fhirtest

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	defaultCount = 100
	maxCount     = 1000
)

// query is a parsed search: all filters must match (AND); alternatives inside a filter are ORed.
type query struct {
	filters     []filter
	count       int
	offset      int
	sortDesc    bool // by meta.lastUpdated descending (_sort=-_lastUpdated)
	sortBy      string
	summaryOnly bool // _summary=count
}

type filter interface {
	match(r *record) bool
	// candidates returns the ids that can possibly match from the type's indexes; ok=false means the
	// filter cannot use an index and every record must be scanned.
	candidates(ts *typeStore) (ids []string, ok bool)
}

// parseQuery parses the search parameters of a search on resourceType typ.
func parseQuery(typ string, vals url.Values) (*query, *opError) {
	q := &query{count: defaultCount}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic error messages
	for _, key := range keys {
		name, modifier, _ := strings.Cut(key, ":")
		for _, v := range vals[key] {
			if v == "" && !strings.HasPrefix(name, "_") {
				return nil, errInvalid(key, "empty value for search parameter %s", key)
			}
			var f filter
			var err *opError
			switch name {
			case "_id":
				if modifier != "" {
					return nil, unsupportedModifier(key)
				}
				f = idFilter(strings.Split(v, ","))
			case "identifier":
				if modifier != "" {
					return nil, unsupportedModifier(key)
				}
				f = parseTokenFilter(v)
			case "subject", "patient", "encounter":
				f, err = parseRefFilter(name, modifier, v)
			case "status":
				if modifier != "" {
					return nil, unsupportedModifier(key)
				}
				f = statusFilter(splitComma(v))
			case "_lastUpdated":
				if modifier != "" {
					return nil, unsupportedModifier(key)
				}
				f, err = parseDateFilter(v)
			case "_count", "_offset":
				n, convErr := strconv.Atoi(v)
				if convErr != nil || n < 0 {
					return nil, errInvalid(key, "%s must be a non-negative integer, got %q", key, v)
				}
				if name == "_count" {
					q.count = min(n, maxCount)
				} else {
					q.offset = n
				}
			case "_sort":
				switch v {
				case "_lastUpdated", "-_lastUpdated", "_id", "-_id":
					q.sortDesc = strings.HasPrefix(v, "-")
					q.sortBy = strings.TrimPrefix(v, "-")
				default:
					return nil, errInvalid(key, "unsupported _sort %q (supported: _lastUpdated, _id, with optional -)", v)
				}
			case "_summary":
				if v != "count" {
					return nil, errInvalid(key, "unsupported _summary %q (supported: count)", v)
				}
				q.summaryOnly = true
			case "_total", "_format", "_pretty":
				// Accepted and ignored: the total is always given and the format is always JSON.
			default:
				return nil, &opError{status: http.StatusBadRequest, code: "not-supported",
					msg:        "unsupported search parameter " + key + " on " + typ + " (fhirtest supports _id, identifier, status, subject, patient, encounter, _lastUpdated, _count, _offset, _sort, _summary=count)",
					expression: key}
			}
			if err != nil {
				return nil, err
			}
			if f != nil {
				q.filters = append(q.filters, f)
			}
		}
	}
	return q, nil
}

func unsupportedModifier(key string) *opError {
	return &opError{status: http.StatusBadRequest, code: "not-supported", msg: "unsupported search modifier in " + key, expression: key}
}

// run evaluates q against the resources of typ and returns the matches in result order plus the total.
func (s *store) search(typ string, q *query) []*record {
	ts := s.types[typ]
	if ts == nil {
		return nil
	}
	var recs []*record
	var ids []string
	indexed := false
	for _, f := range q.filters {
		if c, ok := f.candidates(ts); ok {
			if !indexed || len(c) < len(ids) {
				ids = c
			}
			indexed = true
		}
	}
	if indexed {
		recs = make([]*record, 0, len(ids))
		for _, id := range ids {
			if r := ts.byID[id]; r != nil && !r.deleted() {
				recs = append(recs, r)
			}
		}
	} else {
		recs = s.liveRecords(typ)
	}
	out := recs[:0]
	for _, r := range recs {
		if matchAll(r, q.filters) {
			out = append(out, r)
		}
	}
	switch q.sortBy {
	case "_lastUpdated":
		slices.SortStableFunc(out, func(a, b *record) int { return a.updated.Compare(b.updated) })
	case "_id":
		slices.SortStableFunc(out, func(a, b *record) int { return strings.Compare(a.id, b.id) })
	default:
		sortBySeq(out)
	}
	if q.sortDesc {
		slices.Reverse(out)
	}
	return out
}

func matchAll(r *record, fs []filter) bool {
	for _, f := range fs {
		if !f.match(r) {
			return false
		}
	}
	return true
}

// idFilter matches _id.
type idFilter []string

func (f idFilter) match(r *record) bool { return slices.Contains(f, r.id) }

func (f idFilter) candidates(*typeStore) ([]string, bool) {
	ids := slices.Clone(f)
	slices.Sort(ids)
	return slices.Compact(ids), true
}

// statusFilter matches the top-level status code (Task, ServiceRequest, Encounter, ...).
type statusFilter []string

func (f statusFilter) match(r *record) bool { return r.status != "" && slices.Contains(f, r.status) }

func (f statusFilter) candidates(*typeStore) ([]string, bool) { return nil, false }

// tokenAlt is one alternative of an identifier search: "system|value", "|value" (no system),
// "value" (any system) or "system|" (any value).
type tokenAlt struct {
	system, value       string
	anySystem, anyValue bool
}

type tokenFilter []tokenAlt

func parseTokenFilter(v string) tokenFilter {
	var f tokenFilter
	for _, alt := range splitComma(v) {
		sys, val, hasBar := strings.Cut(alt, "|")
		switch {
		case !hasBar:
			f = append(f, tokenAlt{value: unescape(sys), anySystem: true})
		case val == "":
			f = append(f, tokenAlt{system: unescape(sys), anyValue: true})
		default:
			f = append(f, tokenAlt{system: unescape(sys), value: unescape(val)})
		}
	}
	return f
}

func (f tokenFilter) match(r *record) bool {
	for _, a := range f {
		for _, in := range r.idents {
			if (a.anySystem || in.system == a.system) && (a.anyValue || in.value == a.value) {
				return true
			}
		}
	}
	return false
}

func (f tokenFilter) candidates(ts *typeStore) ([]string, bool) {
	var ids []string
	for _, a := range f {
		switch {
		case a.anyValue:
			return nil, false
		case a.anySystem:
			ids = ts.byValue[a.value].appendTo(ids)
		default:
			ids = ts.byIdent[ident{a.system, a.value}].appendTo(ids)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), true
}

// refFilter matches a reference search parameter; an alternative with an empty type matches a
// reference to any type with that id.
type refFilter struct {
	param string
	alts  []ref
	bare  []string // ids given without a type
}

func parseRefFilter(name, modifier, v string) (filter, *opError) {
	f := &refFilter{param: name}
	if modifier != "" && !resourceTypes[modifier] {
		return nil, unsupportedModifier(name + ":" + modifier)
	}
	for _, alt := range splitComma(v) {
		target := normaliseReference(unescape(alt))
		typ, id, hasSlash := strings.Cut(target, "/")
		switch {
		case hasSlash && (!resourceTypes[typ] || id == ""):
			return nil, errInvalid(name, "invalid reference %q in search parameter %s", alt, name)
		case hasSlash && modifier != "" && typ != modifier:
			return nil, errInvalid(name, "reference %q does not match the type modifier %s", alt, modifier)
		case hasSlash:
			f.alts = append(f.alts, ref{name, target})
		case modifier != "":
			f.alts = append(f.alts, ref{name, modifier + "/" + target})
		case name == "patient":
			f.alts = append(f.alts, ref{name, "Patient/" + target})
		case name == "encounter":
			f.alts = append(f.alts, ref{name, "Encounter/" + target})
		default:
			f.bare = append(f.bare, target)
		}
	}
	return f, nil
}

func (f *refFilter) match(r *record) bool {
	for _, rf := range r.refs {
		if rf.param != f.param {
			continue
		}
		if slices.Contains(f.alts, rf) {
			return true
		}
		for _, id := range f.bare {
			if strings.HasSuffix(rf.target, "/"+id) {
				return true
			}
		}
	}
	return false
}

func (f *refFilter) candidates(ts *typeStore) ([]string, bool) {
	if len(f.bare) > 0 {
		return nil, false
	}
	var ids []string
	for _, a := range f.alts {
		ids = ts.byRef[a].appendTo(ids)
	}
	slices.Sort(ids)
	return slices.Compact(ids), true
}

// dateFilter matches meta.lastUpdated against one prefixed date value.
type dateFilter struct {
	prefix string
	lo, hi time.Time // the value's range at its precision: [lo, hi)
}

func parseDateFilter(v string) (filter, *opError) {
	prefix := "eq"
	if len(v) >= 2 {
		switch p := v[:2]; p {
		case "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb":
			prefix, v = p, v[2:]
		}
	}
	lo, hi, ok := parseDateRange(v)
	if !ok {
		return nil, errInvalid("_lastUpdated", "invalid date %q in _lastUpdated", v)
	}
	return &dateFilter{prefix: prefix, lo: lo, hi: hi}, nil
}

func (f *dateFilter) match(r *record) bool {
	t := r.updated
	switch f.prefix {
	case "ne":
		return t.Before(f.lo) || !t.Before(f.hi)
	case "gt", "sa":
		return !t.Before(f.hi)
	case "lt", "eb":
		return t.Before(f.lo)
	case "ge":
		return !t.Before(f.lo)
	case "le":
		return t.Before(f.hi)
	default: // eq
		return !t.Before(f.lo) && t.Before(f.hi)
	}
}

func (f *dateFilter) candidates(*typeStore) ([]string, bool) { return nil, false }

// parseDateRange parses a FHIR date, dateTime or instant and returns the interval it denotes at its
// precision; a dateTime without a zone is taken as UTC.
func parseDateRange(v string) (lo, hi time.Time, ok bool) {
	layouts := []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	}
	for _, l := range layouts {
		if t, err := time.Parse(l.layout, v); err == nil {
			return t, l.step(t), true
		}
	}
	s := v
	if len(s) >= len("2006-01-02T15:04") && !strings.ContainsAny(s[10:], "Z+") && strings.Count(s[10:], "-") == 0 {
		s += "Z"
	}
	for _, layout := range []string{"2006-01-02T15:04Z07:00", "2006-01-02T15:04:05Z07:00", time.RFC3339Nano} {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		step := time.Minute
		if layout != "2006-01-02T15:04Z07:00" {
			step = time.Second
			if dot := strings.IndexByte(s, '.'); dot >= 0 {
				digits := 0
				for _, c := range s[dot+1:] {
					if c < '0' || c > '9' {
						break
					}
					digits++
				}
				step = time.Second
				for range digits {
					step /= 10
				}
				if step == 0 {
					step = 1
				}
			}
		}
		return t.UTC(), t.UTC().Add(step), true
	}
	return time.Time{}, time.Time{}, false
}

// normaliseReference turns "http://host/base/Type/id/_history/2" and "Type/id/_history/2" into
// "Type/id"; other strings are returned unchanged.
func normaliseReference(s string) string {
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	if strings.Contains(s, "://") {
		parts := strings.Split(strings.TrimRight(s, "/"), "/")
		if n := len(parts); n >= 2 && resourceTypes[parts[n-2]] {
			return parts[n-2] + "/" + parts[n-1]
		}
	}
	return s
}

// splitComma splits a search value on commas that are not escaped with a backslash.
func splitComma(v string) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case ',':
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// unescape removes the backslash escapes of FHIR search values (\, \| \$).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
