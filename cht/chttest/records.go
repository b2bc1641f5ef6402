package chttest

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/phone"
)

func (s *Server) handleRecordsV1(c *reqCtx, _ []string) { s.handleRecords(c) }
func (s *Server) handleRecordsV2(c *reqCtx, _ []string) { s.handleRecords(c) }

// publicError is CHT's PublicError: it becomes a 500 "Server error".
type publicError string

func (e publicError) Error() string { return string(e) }

func (s *Server) handleRecords(c *reqCtx) {
	if !c.user.can(PermCreateRecords) {
		s.forbidden(c)
		return
	}
	var doc map[string]any
	var err error
	switch {
	case mediaType(c.r) == "application/x-www-form-urlencoded" && hasBody(c.r):
		doc, err = s.recordFromSMS(c)
	case isJSON(c.r) && hasBody(c.r):
		if !s.bodyParserJSON(c) { // [jsonParser, formParser]
			return
		}
		doc, err = s.recordFromJSON(c)
	default:
		// controllers/records.js generate throws a plain Error('Content
		// type not supported.'): serverError answers without details.
		s.apiError(c, http.StatusInternalServerError, "Server error", nil)
		return
	}
	if err != nil {
		s.serverError(c, err.Error())
		return
	}
	s.apiMarkForOutbound(c.r.Context(), doc)
	if _, err := s.store.put(doc, false); err != nil {
		s.serverError(c, err.Error())
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"success": true, "id": doc["_id"]})
}

// recordFromJSON is records.js createRecordByJSON.
func (s *Server) recordFromJSON(c *reqCtx) (map[string]any, error) {
	var body any = map[string]any{} // body-parser's {} for an empty body
	if len(c.body) > 0 {
		var err error
		if body, err = decodeJS(c.body); err != nil {
			return nil, err // bodyParserJSON has answered malformed bodies
		}
	}
	obj, _ := body.(map[string]any)
	metaV, present := obj["_meta"]
	if !present || metaV == nil || metaV == "" {
		return nil, publicError("Missing _meta property.")
	}
	meta, _ := metaV.(map[string]any)
	if f, ok := meta["form"]; !ok || f == nil || f == "" {
		return nil, publicError("Missing required field: form")
	}
	code, ok := meta["form"].(string)
	if !ok {
		return nil, publicError("options.form.toUpperCase is not a function")
	}
	code = strings.ToUpper(code)
	form, ok := s.form(code)
	if !ok {
		return nil, publicError("Form not found: " + code)
	}
	options := make(map[string]any, len(meta))
	for k, v := range meta {
		options[k] = v
	}
	options["form"] = code
	data := make(map[string]any, len(obj))
	for k, v := range obj {
		if k == "_meta" {
			continue
		}
		if fd, ok := form.Fields[k]; ok {
			switch {
			case fd.Type == "date":
				v = momentMillis(v)
			case fd.Type == "boolean" && (jsonNumberIs(v, 1) || jsonNumberIs(v, 0)):
				v = jsonNumberIs(v, 1)
			}
		}
		data[strings.ToLower(k)] = v
	}
	return s.dataRecord(code, &form, data, options), nil
}

// hasBody is type-is hasBody, which req.is asks first: a request with a
// Transfer-Encoding or a Content-Length (0 included) has a body.
func hasBody(r *http.Request) bool {
	return len(r.TransferEncoding) > 0 || r.Header.Get("Content-Length") != ""
}

// momentMillis is moment(v).valueOf() as JSON: a number stays, a date
// string becomes milliseconds, anything else NaN (null).
func momentMillis(v any) any {
	switch t := v.(type) {
	case json.Number:
		return t
	case string:
		if ms, ok := parseDateMillis(t); ok {
			return json.Number(strconv.FormatInt(ms, 10))
		}
	}
	return nil
}

func jsonNumberIs(v any, n float64) bool {
	num, ok := v.(json.Number)
	if !ok {
		return false
	}
	f, err := num.Float64()
	return err == nil && f == n
}

// dataRecord is records.js getDataRecord: the report doc for parsed form
// data (nil form: no definition) and the request's options (_meta, or the
// SMS content).
func (s *Server) dataRecord(code string, form *Form, data, options map[string]any) map[string]any {
	doc := map[string]any{
		"_id":           s.newUUID(),
		"type":          "data_record",
		"errors":        []any{},
		"tasks":         []any{},
		"fields":        map[string]any{},
		"reported_date": s.now().UnixMilli(),
		"sms_message":   options,
	}
	if code != "" {
		doc["form"] = code
	}
	if from, ok := options["from"]; ok && from != nil {
		doc["from"] = from
		if f, ok := from.(string); ok {
			if n, ok := phone.Normalize(s.phoneSettings(), f); ok {
				doc["from"] = n
			}
		}
	}
	if ts, ok := parseSentTimestamp(options["reported_date"]); ok {
		doc["reported_date"] = ts
	}
	locale := s.recordLocale(options)
	if form != nil {
		if form.FacilityReference != "" {
			if v, ok := data[form.FacilityReference]; ok {
				if sv, isStr := v.(string); isStr {
					v = strings.ToUpper(sv)
				}
				doc["refid"] = v
			}
		}
		fields := doc["fields"].(map[string]any)
		for _, k := range form.keys() {
			mergeField(strings.Split(k, "."), fields, data)
		}
		for _, e := range validateForm(form, data) {
			addError(doc, e, locale)
		}
	}
	if v, _ := data["_extra_fields"].(bool); v {
		addError(doc, recordError{code: "extra_fields"}, locale)
	}
	if msg, ok := options["message"].(string); ok && strings.TrimSpace(msg) == "" {
		addError(doc, recordError{code: "sys.empty"}, locale)
	}
	if form == nil {
		if s.settingTruthy("forms_only_mode") {
			addError(doc, recordError{code: "sys.form_not_found", ctx: map[string]string{"form": code}}, locale)
		} else {
			delete(doc, "form")
		}
	}
	s.runTransitions(doc)
	return doc
}

// mergeField is smsparser.merge: copies data's value at a (dot) key into
// the record's fields; a nested key is copied only when its parent is
// truthy.
func mergeField(key []string, fields, data map[string]any) {
	if len(key) > 1 {
		parent, ok := data[key[0]]
		if !ok || !jsonTruthy(parent) {
			return
		}
		sub, _ := fields[key[0]].(map[string]any)
		if sub == nil {
			sub = map[string]any{}
			fields[key[0]] = sub
		}
		pm, _ := parent.(map[string]any)
		mergeField(key[1:], sub, pm)
		return
	}
	if v, ok := data[key[0]]; ok {
		fields[key[0]] = v
	}
}

// recordError is a stored validation error before translation.
type recordError struct {
	code string
	ctx  map[string]string
}

// messages are the English texts of the errors records can carry
// (api/resources/translations/messages-en.properties).
var messages = map[string]string{
	"sys.missing_fields":     "Missing or invalid fields: {{fields}}.",
	"sys.incorrect_type":     "Incorrect type of field {{key}}, expected {{expectedType}}.",
	"sys.empty":              "Message appears empty.",
	"sys.form_not_found":     "Form '{{form}}' not found.",
	"sys.facility_not_found": "Facility not found.",
	"extra_fields":           "Extra fields.",
}

// addError appends {code, message} with the message translated (only
// English is modelled) and its {{placeholders}} filled.
func addError(doc map[string]any, e recordError, _ string) {
	msg, ok := messages[e.code]
	if !ok {
		msg = e.code
	}
	for k, v := range e.ctx {
		msg = strings.ReplaceAll(msg, "{{"+k+"}}", v)
	}
	errs, _ := doc["errors"].([]any)
	doc["errors"] = append(errs, map[string]any{"code": e.code, "message": msg})
}

// validateForm is report/validate.js validate: per field in definition
// order, a type error for a present value of the wrong JSON type (a
// field with a list is not checked), then one sys.missing_fields for the
// required fields that are absent or null ("" is present).
func validateForm(form *Form, data map[string]any) []recordError {
	var errs []recordError
	var missing []string
	for _, k := range form.keys() {
		fd := form.Fields[k]
		v, ok := data[k]
		exists := ok && v != nil
		if fd.Required && !exists {
			missing = append(missing, k)
			continue
		}
		if !exists || fd.List != nil {
			continue
		}
		var bad bool
		switch fd.Type {
		case "integer":
			bad = !isJSInteger(v)
		case "string":
			_, isStr := v.(string)
			bad = !isStr
		case "boolean":
			_, isBool := v.(bool)
			bad = !isBool
		case "complex":
			switch v.(type) {
			case map[string]any, []any:
			default:
				bad = true
			}
		}
		if bad {
			errs = append(errs, recordError{code: "sys.incorrect_type", ctx: map[string]string{"expectedType": fd.Type, "key": k}})
		}
	}
	if len(missing) > 0 {
		errs = append(errs, recordError{code: "sys.missing_fields", ctx: map[string]string{"fields": strings.Join(missing, ",")}})
	}
	return errs
}

func isJSInteger(v any) bool {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		return err == nil && f == math.Trunc(f) && !math.IsInf(f, 0)
	case float64:
		return t == math.Trunc(t) && !math.IsInf(t, 0)
	}
	return false
}

func jsonTruthy(v any) bool {
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		return err == nil && f != 0
	}
	return jsTruthy(v)
}

// parseSentTimestamp is records.js parseSentTimestamp as getDataRecord
// uses it: a number is taken as is, a string holding 13 or more digits is
// Number(string), another string is read as a date; anything that gives 0
// or NaN leaves the report at "now" (ok false).
func parseSentTimestamp(v any) (any, bool) {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		return t, err == nil && f != 0
	case float64:
		return t, t != 0 && !math.IsNaN(t)
	case string:
		if digits13.MatchString(t) {
			f, ok := jsNumber(t)
			if !ok || f == 0 {
				return nil, false
			}
			return json.Number(jsNumberString(f)), true
		}
		if ms, ok := parseDateMillis(t); ok && ms != 0 {
			return ms, true
		}
	}
	return nil, false
}

var digits13 = regexp.MustCompile(`\d{13,}`)

// recordLocale is records.js getLocale for a new record.
func (s *Server) recordLocale(options map[string]any) string {
	if l, _ := options["locale"].(string); l != "" {
		return l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, _ := s.settings["locale"].(string); l != "" {
		return l
	}
	return "en"
}

// phoneSettings returns default_country_code and phone_validation.
func (s *Server) phoneSettings() phone.Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return phone.FromAppSettings(s.settings)
}

func (s *Server) settingTruthy(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return jsonTruthy(s.settings[key])
}

// transitionEnabled reports whether app_settings.transitions enables a
// transition (true, or an object without "disable": true).
func (s *Server) transitionEnabled(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, _ := s.settings["transitions"].(map[string]any)
	return transitionOn(t, name)
}

// transitionOn applies loadTransitions' test
// (shared-libs/transitions/src/transitions/index.js) to the
// app_settings.transitions object t: conf = t[name] is truthy and
// conf.disable is not.
func transitionOn(t map[string]any, name string) bool {
	conf, _ := t[name].(map[string]any)
	return jsonTruthy(t[name]) && !jsonTruthy(conf["disable"])
}

// runTransitions runs the configured transitions the records API runs
// synchronously (api/src/controllers/records.js processDocs). Only
// update_clinics is modelled: it sets the report's contact from the
// sender's phone (or refid), or records sys.facility_not_found for a
// private form.
func (s *Server) runTransitions(doc map[string]any) {
	if !s.transitionEnabled("update_clinics") {
		return
	}
	var id string
	if ref, ok := doc["refid"]; ok && jsonTruthy(ref) {
		// update_clinics.js getContactByRefid: the first row of
		// contacts_by_reference for the key ["external", doc.refid], which
		// the view emits from a contact's rc_code, upper-cased.
		ref, _ := ref.(string)
		if ids := s.store.ids(func(_ string, m docMeta) bool { return m.external != "" && m.external == ref }); len(ids) > 0 {
			id = ids[0]
		}
	} else if from := str(doc["from"]); from != "" {
		ids := s.store.ids(func(_ string, m docMeta) bool { return m.phone == from && s.phoneViewType(m) })
		if len(ids) > 0 {
			id = ids[0]
		}
	}
	if id != "" {
		doc["contact"] = s.minifyLineage(id)
		return
	}
	code, _ := doc["form"].(string)
	if f, ok := s.form(code); ok && f.PublicForm {
		return
	}
	addError(doc, recordError{code: "sys.facility_not_found"}, "")
}

// apiMarkForOutbound is mark_for_outbound as CHT's API runs it for a
// report created by the records API or by SMS: api/src/controllers/
// records.js runTransitions (and services/messaging.js createDocs) call
// shared-libs/transitions/src/transitions/index.js processDocs, which
// hydrates a copy of the new, unsaved report (hydrateDocs; no _rev) and
// applies the transitions the API loads (config-watcher loadTransitions(true):
// every enabled one that is not asynchronousOnly, mark_for_outbound
// included) before the report is saved. Each pusher following this server
// evaluates that copy: a mapping of doc._rev fails and queues the push, a
// whole-document mapping is sent before the report exists. Sentinel's
// later pass over the saved revision (Sync) pushes again when the payload
// differs. It runs concurrently with Sentinel's passes, as the API does,
// so it does not wait for a Sync or RunQueue in progress.
func (s *Server) apiMarkForOutbound(ctx context.Context, doc map[string]any) {
	if !s.transitionEnabled("mark_for_outbound") {
		return
	}
	s.mu.Lock()
	pushers := slices.Clone(s.pushers)
	s.mu.Unlock()
	if len(pushers) == 0 {
		return
	}
	d := deepCopy(doc).(map[string]any)
	s.hydrateDoc(d)
	for _, p := range pushers {
		_, _ = p.push(ctx, deepCopy(d).(map[string]any), false)
	}
}

// phoneViewType is the contacts_by_phone view's type filter.
func (s *Server) phoneViewType(m docMeta) bool {
	switch m.typ {
	case "contact", "district_hospital", "health_center", "clinic", "person":
		return true
	}
	return false
}

// recordFromSMS is records.js createByForm: the gateway's form-encoded
// message, parsed by its form when the code names one.
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
	raw := v.Get("message")
	msg := raw
	code, _ := smsFormCode(msg)
	form, found := s.form(code)
	if code != "" && !found {
		cleaned := zeroWidth.ReplaceAllString(code, "")
		if form, found = s.form(cleaned); found {
			msg = strings.Replace(msg, code, cleaned, 1)
			code = cleaned
		}
	}
	content := map[string]any{"type": "sms_message", "message": raw, "from": v.Get("from")}
	if code != "" {
		content["form"] = code
	}
	for _, k := range []string{"sent_timestamp", "locale", "gateway_ref"} {
		if _, ok := v[k]; ok {
			name := k
			if k == "sent_timestamp" {
				name = "reported_date"
			}
			content[name] = v.Get(k)
		}
	}
	data := map[string]any{}
	var fp *Form
	if found {
		fp = &form
		locale, _ := content["locale"].(string)
		var ok bool
		if data, ok = s.parseSMS(fp, msg, locale); !ok {
			return nil, publicError("TypeError: Cannot read properties of null (reading 'length')")
		}
	}
	return s.dataRecord(code, fp, data, content), nil
}

var phoneNormalize = phone.Normalize

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
