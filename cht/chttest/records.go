package chttest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Server) handleRecordsV1(c *reqCtx, _ []string) { s.handleRecords(c) }
func (s *Server) handleRecordsV2(c *reqCtx, _ []string) { s.handleRecords(c) }

// publicError is CHT's PublicError: it becomes a 500 "Server error".
type publicError string

func (e publicError) Error() string { return string(e) }

// parseError is a body the JSON parser (body-parser) rejects: 400.
type parseError string

func (e parseError) Error() string { return string(e) }

func (s *Server) handleRecords(c *reqCtx) {
	if !c.user.can(PermCreateRecords) {
		s.forbidden(c)
		return
	}
	var doc map[string]any
	var err error
	switch {
	case mediaType(c.r) == "application/x-www-form-urlencoded":
		doc, err = s.recordFromSMS(c)
	case isJSON(c.r):
		doc, err = s.recordFromJSON(c)
	default:
		err = publicError("Content type not supported.")
	}
	var pe parseError
	if errors.As(err, &pe) {
		s.apiError(c, http.StatusBadRequest, pe.Error(), nil)
		return
	}
	if err != nil {
		s.serverError(c, err.Error())
		return
	}
	if _, err := s.store.put(doc, false); err != nil {
		s.serverError(c, err.Error())
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"success": true, "id": doc["_id"]})
}

func (s *Server) recordFromJSON(c *reqCtx) (map[string]any, error) {
	body, err := decodeAny(c.body)
	if err != nil {
		return nil, parseError("Invalid JSON: " + err.Error())
	}
	obj, _ := body.(map[string]any)
	meta, ok := obj["_meta"].(map[string]any)
	if !ok {
		return nil, publicError("Missing _meta property.")
	}
	code := strings.ToUpper(str(meta["form"]))
	if code == "" {
		return nil, publicError("Missing required field: form")
	}
	form, ok := s.cfg.Forms[code]
	if !ok {
		return nil, publicError("Form not found: " + code)
	}
	data := make(map[string]any, len(obj))
	for k, v := range obj {
		if k == "_meta" {
			continue
		}
		data[strings.ToLower(k)] = v
	}
	reported, err := s.parseSentTimestamp(meta["reported_date"])
	if err != nil {
		return nil, err
	}
	from := normalizePhone(str(meta["from"]))
	smsMessage := make(map[string]any, len(meta))
	for k, v := range meta {
		smsMessage[k] = v
	}
	smsMessage["form"] = code
	doc := map[string]any{
		"_id":           s.newUUID(),
		"type":          "data_record",
		"from":          from,
		"form":          code,
		"errors":        []any{},
		"tasks":         []any{},
		"fields":        map[string]any{},
		"reported_date": reported,
		"sms_message":   smsMessage,
	}
	fields, errs := applyForm(form, data)
	doc["fields"] = fields
	doc["errors"] = errs
	if loc := str(meta["locale"]); loc != "" {
		doc["locale"] = loc
	}
	s.attachSender(doc, from)
	return doc, nil
}

// applyForm copies the declared keys of data into fields (dot-notation keys
// create sub-objects), converting date and boolean values, and returns the
// validation errors CHT stores on the doc.
func applyForm(form Form, data map[string]any) (map[string]any, []any) {
	fields := map[string]any{}
	var missing, wrongType []string
	keys := make([]string, 0, len(form.Fields))
	for k := range form.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		def := form.Fields[key]
		v, ok := data[key]
		if !ok || v == nil || v == "" {
			if def.Required {
				missing = append(missing, key)
			}
			continue
		}
		cv, ok := convertField(def.Type, v)
		if !ok {
			wrongType = append(wrongType, key)
		}
		setDotted(fields, key, cv)
	}
	errs := []any{}
	if len(missing) > 0 {
		errs = append(errs, map[string]any{"code": "sys.missing_fields",
			"message": "Missing or invalid fields: " + strings.Join(missing, ", ") + "."})
	}
	for _, k := range wrongType {
		errs = append(errs, map[string]any{"code": "sys.incorrect_type",
			"message": "Incorrect type for field: " + k + "."})
	}
	return fields, errs
}

// convertField applies CHT's JSON conversions; ok is false for a value of
// the wrong type (it is still stored).
func convertField(typ string, v any) (any, bool) {
	switch typ {
	case "date":
		switch t := v.(type) {
		case json.Number:
			return t, true
		case string:
			if ms, ok := parseDateMillis(t); ok {
				return json.Number(strconv.FormatInt(ms, 10)), true
			}
			return v, false
		}
		return v, false
	case "boolean":
		switch t := v.(type) {
		case bool:
			return t, true
		case json.Number:
			switch t.String() {
			case "1":
				return true, true
			case "0":
				return false, true
			}
		case string:
			switch t {
			case "1", "true":
				return true, true
			case "0", "false":
				return false, true
			}
		}
		return v, false
	case "integer":
		switch t := v.(type) {
		case json.Number:
			_, err := t.Int64()
			return v, err == nil
		case string:
			_, err := strconv.ParseInt(t, 10, 64)
			return v, err == nil
		}
		return v, false
	case "", "string":
		switch v.(type) {
		case string, json.Number:
			return v, true
		}
		return v, false
	default:
		return v, true
	}
}

func setDotted(m map[string]any, key string, v any) {
	parts := strings.Split(key, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

func parseDateMillis(s string) (int64, bool) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMilli(), true
		}
	}
	return 0, false
}

var digits13 = regexp.MustCompile(`^[0-9]{13,}$`)

// parseSentTimestamp mirrors CHT: a number is used as-is, a string of 13 or
// more digits is a number, another string is parsed as a date; the default
// is now.
func (s *Server) parseSentTimestamp(v any) (any, error) {
	switch t := v.(type) {
	case nil:
		return s.now().UnixMilli(), nil
	case json.Number:
		return t, nil
	case string:
		if t == "" {
			return s.now().UnixMilli(), nil
		}
		if digits13.MatchString(t) {
			return json.Number(t), nil
		}
		if ms, ok := parseDateMillis(t); ok {
			return ms, nil
		}
		return nil, publicError("Invalid reported_date: " + t)
	}
	return s.now().UnixMilli(), nil
}

// attachSender sets the report's contact when from matches a contact's
// phone (the update_clinics transition).
func (s *Server) attachSender(doc map[string]any, from string) {
	if from == "" {
		return
	}
	ids := s.store.ids(func(_ string, m docMeta) bool { return m.phone == from && s.isPersonMeta(m) })
	if len(ids) > 0 {
		doc["contact"] = s.minifyLineage(ids[0])
	}
}

// recordFromSMS handles the form-urlencoded (SMS gateway) variant. The
// message text is not parsed into fields; the form code is its first word.
func (s *Server) recordFromSMS(c *reqCtx) (map[string]any, error) {
	v, err := url.ParseQuery(string(c.body))
	if err != nil {
		return nil, publicError("Invalid form body: " + err.Error())
	}
	if _, ok := v["from"]; !ok {
		return nil, publicError("Missing required value: from")
	}
	if _, ok := v["message"]; !ok {
		return nil, publicError("Missing required field: message")
	}
	msg := v.Get("message")
	from := normalizePhone(v.Get("from"))
	reported := any(s.now().UnixMilli())
	if ts := v.Get("sent_timestamp"); ts != "" {
		if reported, err = s.parseSentTimestamp(ts); err != nil {
			return nil, err
		}
	}
	var form any
	if word, _, _ := strings.Cut(strings.TrimSpace(msg), " "); word != "" {
		if _, ok := s.cfg.Forms[strings.ToUpper(word)]; ok {
			form = strings.ToUpper(word)
		}
	}
	sms := map[string]any{"message": msg, "from": from, "type": "sms_message", "form": form}
	if g := v.Get("gateway_ref"); g != "" {
		sms["gateway_ref"] = g
	}
	if l := v.Get("locale"); l != "" {
		sms["locale"] = l
	}
	doc := map[string]any{
		"_id": s.newUUID(), "type": "data_record", "from": from, "form": form,
		"errors": []any{}, "tasks": []any{}, "fields": map[string]any{},
		"reported_date": reported, "sms_message": sms,
	}
	s.attachSender(doc, from)
	return doc, nil
}

var phoneRE = regexp.MustCompile(`^\+?[0-9]{6,15}$`)

// normalizePhone strips spaces, dashes, dots and parentheses. It is far
// simpler than @medic/phone-number but keeps the property that matters to
// clients: a "+" sent unencoded in a query string (a space) loses the
// international prefix and no longer matches.
func normalizePhone(p string) string {
	var b strings.Builder
	for i, r := range strings.TrimSpace(p) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return strings.TrimSpace(p)
		}
	}
	return b.String()
}

func validPhone(p string) bool { return phoneRE.MatchString(p) }

func (s *Server) isPersonMeta(m docMeta) bool {
	t := m.typ
	if t == "contact" {
		t = m.contactType
	}
	return s.personTy[t]
}

func (s *Server) isContactMeta(m docMeta) bool {
	if m.typ == "contact" {
		return m.contactType != ""
	}
	_, ok := s.types[m.typ]
	return ok || m.typ == "person"
}

func (s *Server) isPlaceMeta(m docMeta) bool { return s.isContactMeta(m) && !s.isPersonMeta(m) }

func typeIDOf(d map[string]any) string {
	if t := str(d["type"]); t != "contact" {
		return t
	}
	return str(d["contact_type"])
}
