package cht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// RecordsService submits JSON reports through the records API.
type RecordsService service

// Record is a JSON report for POST /api/v2/records.
//
// CHT applies rules that silently change or drop data; [Record.MarshalJSON]
// applies them up front so what is sent is what is stored: the form code
// is upper-cased, field keys are lower-cased (two keys that differ only
// in case are an error), and values must be strings, numbers, booleans or
// time.Time (sent as milliseconds). CHT copies only keys declared in the
// form's definition (app_settings.forms.<FORM>.fields) into the report;
// set SubmitOptions.CheckForm to verify that before sending.
type Record struct {
	Form         string         // form code, e.g. "HEIGHT_WEIGHT"
	From         string         // sender's phone number; optional
	ReportedDate time.Time      // zero means the time CHT receives it
	Locale       string         // optional
	Fields       map[string]any // form data; dotted keys ("a.b") are stored as sub-objects

	// Geolocation is where the report was filled in, for writers of
	// data_record documents (the report's geolocation member). The
	// records API has no place for it (CHT would keep it only in
	// sms_message), so MarshalJSON and Submit refuse a Record that has one.
	Geolocation *Geolocation
}

// MarshalJSON encodes the records API body: form data at the top level
// and the metadata under _meta.
func (r Record) MarshalJSON() ([]byte, error) {
	body, err := r.body()
	if err != nil {
		return nil, err
	}
	return json.Marshal(body)
}

func (r Record) body() (map[string]any, error) {
	form := strings.ToUpper(strings.TrimSpace(r.Form))
	if form == "" {
		return nil, errors.New("cht: record: form is required")
	}
	if r.Geolocation != nil {
		return nil, errors.New("cht: record: geolocation cannot be sent through the records API (write the data_record document)")
	}
	meta := map[string]any{"form": form}
	if r.From != "" {
		meta["from"] = r.From
	}
	if !r.ReportedDate.IsZero() {
		meta["reported_date"] = r.ReportedDate.UnixMilli()
	}
	if r.Locale != "" {
		meta["locale"] = r.Locale
	}
	body := map[string]any{"_meta": meta}
	orig := map[string]string{}
	keys := make([]string, 0, len(r.Fields))
	for k := range r.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic error messages
	for _, k := range keys {
		v := r.Fields[k]
		lk := strings.ToLower(k)
		switch {
		case lk == "":
			return nil, errors.New("cht: record: empty field key")
		case lk == "_meta":
			return nil, fmt.Errorf("cht: record: field key %q is reserved", k)
		}
		if prev, dup := orig[lk]; dup {
			return nil, fmt.Errorf("cht: record: field keys %q and %q collide once lower-cased", prev, k)
		}
		orig[lk] = k
		switch x := v.(type) {
		case string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("cht: record: field %q: %v is not a JSON number", k, x)
			}
		case float32:
			if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("cht: record: field %q: %v is not a JSON number", k, x)
			}
		case json.Number:
			if _, err := json.Marshal(x); err != nil {
				return nil, fmt.Errorf("cht: record: field %q: %q is not a JSON number", k, string(x))
			}
		case time.Time:
			v = x.UnixMilli()
		default:
			return nil, fmt.Errorf("cht: record: field %q: unsupported value type %T (want string, number, bool or time.Time)", k, v)
		}
		if _, taken := body[lk]; taken {
			return nil, fmt.Errorf("cht: record: field %q collides with the sub-object of a dotted key", k)
		}
		body[lk] = v
		if strings.Contains(lk, ".") {
			if err := nest(body, k, strings.Split(lk, "."), v); err != nil {
				return nil, err
			}
		}
	}
	return body, nil
}

// nest also sends a dotted key's value as nested objects. CHT copies
// every top-level key of the body into the form data
// (api/src/services/records.js createRecordByJSON), then stores a field
// declared as "a.b" by looking up formData.a.b (getDataRecord calls
// smsparser.merge with the key split on dots,
// api/src/services/report/smsparser.js merge), while validation looks
// up formData["a.b"] (api/src/services/report/validate.js validate).
// So the value goes both ways: flat for the validation, nested to be
// stored.
func nest(body map[string]any, k string, segs []string, v any) error {
	if slices.Contains(segs, "") {
		return fmt.Errorf("cht: record: field %q has an empty segment", k)
	}
	if segs[0] == "_meta" {
		return fmt.Errorf("cht: record: field key %q is reserved", k)
	}
	m := body
	for i, seg := range segs {
		cur, taken := m[seg]
		if i == len(segs)-1 {
			if taken {
				return fmt.Errorf("cht: record: field %q collides with another field", k)
			}
			m[seg] = v
			return nil
		}
		if !taken {
			sub := map[string]any{}
			m[seg], m = sub, sub
			continue
		}
		sub, ok := cur.(map[string]any)
		if !ok {
			return fmt.Errorf("cht: record: field %q collides with field %q", k, strings.Join(segs[:i+1], "."))
		}
		m = sub
	}
	return nil
}

// SubmitOptions controls [RecordsService.Submit].
type SubmitOptions struct {
	// CheckForm reads the app settings (GET /api/v1/settings) first and
	// fails without sending if the form is not configured or a field key
	// is not declared in its definition (CHT would drop it silently).
	CheckForm bool
	// ReadBack fetches the created report (GET /medic/<id>) because CHT
	// answers 200 even when it stored validation errors on the report.
	// Submit then returns them in SubmitResult.Errors together with an
	// error matching [ErrInvalidRecord]. It also fails, naming them, when
	// a sent field is missing from the stored report's fields. CHT also
	// answers success with an id when CouchDB refused the report: when
	// no document ever had that id (404 "missing"), Submit returns no
	// result and an error matching [ErrNotFound] saying the report was
	// not stored. When the report is saved but cannot be read back,
	// Submit returns the result (its ID) with an error that does not
	// match the read's cause ([ErrServer], a timeout): the write is done,
	// and submitting again would create a second report.
	ReadBack bool
}

// SubmitResult is the outcome of [RecordsService.Submit].
type SubmitResult struct {
	ID     string        // id of the created report
	Report *Report       // the stored report, with ReadBack
	Errors []ReportError // validation errors stored on it, with ReadBack
}

// Submit creates a report with POST /api/v2/records (JSON). It is not
// retried on server errors, since the records API is not idempotent. CHT
// answers 500 with details "Form not found: <FORM>" for an unknown form.
func (s *RecordsService) Submit(ctx context.Context, rec Record, opts *SubmitOptions) (*SubmitResult, error) {
	body, err := rec.body()
	if err != nil {
		return nil, err
	}
	form := body["_meta"].(map[string]any)["form"].(string)
	if opts != nil && opts.CheckForm {
		if err := s.checkForm(ctx, form, body); err != nil {
			return nil, err
		}
	}
	var res struct {
		Success bool   `json:"success"`
		ID      string `json:"id"`
	}
	if _, err := s.client.do(ctx, request{method: http.MethodPost, path: "/api/v2/records", body: body}, &res); err != nil {
		return nil, fmt.Errorf("cht: submit record %s: %w", form, err)
	}
	if !res.Success || res.ID == "" {
		return nil, fmt.Errorf("cht: submit record %s: CHT did not report success", form)
	}
	out := &SubmitResult{ID: res.ID}
	if opts == nil || !opts.ReadBack {
		return out, nil
	}
	r := new(Report)
	if err := s.client.Docs.Get(ctx, res.ID, r); err != nil {
		if neverStored(err) {
			// CHT answers success with the id of a document CouchDB
			// refused (api/src/controllers/records.js process takes
			// the id of shared-libs/transitions processDocs's
			// bulkDocs-like result, error or not).
			return nil, fmt.Errorf("cht: submit record %s: CHT answered success with id %s, but no such document exists: the report was not stored: %w",
				form, res.ID, err)
		}
		// The report is saved: the read's cause (a 5xx, a timeout) is not
		// wrapped, so that code retrying failed writes does not submit it
		// again and create a second report.
		return out, fmt.Errorf("cht: submit record %s: report %s saved, but reading it back failed (do not submit it again): %v",
			form, res.ID, err)
	}
	out.Report, out.Errors = r, r.Errors
	if len(r.Errors) > 0 {
		msgs := make([]string, len(r.Errors))
		for i, e := range r.Errors {
			msgs[i] = e.Code + ": " + e.Message
		}
		return out, fmt.Errorf("cht: submit record %s: report %s saved with %w: %s", form, res.ID, ErrInvalidRecord, strings.Join(msgs, "; "))
	}
	if missing := notStored(body, r.Fields); len(missing) > 0 {
		return out, fmt.Errorf("cht: submit record %s: report %s saved without fields %s (not declared in the form definition)", form, res.ID, strings.Join(missing, ", "))
	}
	return out, nil
}

// neverStored reports whether err is CouchDB's answer for an id that no
// document ever had: 404 with reason "missing" ("deleted" for a document
// that was stored, then deleted).
func neverStored(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound && ae.Reason == "missing"
}

// notStored lists the sent field keys that the stored report's fields
// lack, sorted.
func notStored(body map[string]any, stored Fields) []string {
	return slices.DeleteFunc(sentFields(body), func(k string) bool { _, ok := stored.Field(k); return ok })
}

// sentFields returns the field keys of a record body, sorted: every key
// but the map values, which are _meta or the sub-objects of dotted keys.
func sentFields(body map[string]any) []string {
	var keys []string
	for k, v := range body {
		if _, sub := v.(map[string]any); !sub {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func (s *RecordsService) checkForm(ctx context.Context, form string, body map[string]any) error {
	var settings struct {
		Forms map[string]struct {
			Fields map[string]json.RawMessage `json:"fields"`
		} `json:"forms"`
	}
	if _, err := s.client.do(ctx, request{method: http.MethodGet, path: "/api/v1/settings", retry: true}, &settings); err != nil {
		return fmt.Errorf("cht: submit record %s: read settings: %w", form, err)
	}
	def, ok := settings.Forms[form]
	if !ok {
		return fmt.Errorf("cht: submit record %s: form not found in app_settings.forms", form)
	}
	undeclared := slices.DeleteFunc(sentFields(body), func(k string) bool { _, ok := def.Fields[k]; return ok })
	if len(undeclared) > 0 {
		return fmt.Errorf("cht: submit record %s: fields not declared in the form definition would be dropped: %s", form, strings.Join(undeclared, ", "))
	}
	return nil
}
