package cht

import (
	"encoding/json"
	"strconv"
	"time"
)

// Report is a CHT report document (type "data_record"), created by an
// XForm in the app, by SMS, or through the records API.
//
// Hydration (the hydrate endpoint, with_lineage=true, outbound push)
// replaces Contact by the full submitter with lineage and adds Patient and
// Place; stored reports have a minified Contact and neither Patient nor
// Place.
//
// Members without a field here (tasks, sms_message, hidden_fields,
// _attachments, geolocation_log, ...) are kept in Extra and written back by
// MarshalJSON.
type Report struct {
	ID          string `json:"_id"`
	Rev         string `json:"_rev,omitempty"`
	Type        string `json:"type"`                   // "data_record"
	Form        string `json:"form"`                   // xform id, or UPPER-CASE code for JSON/SMS forms
	ContentType string `json:"content_type,omitempty"` // "xml" for XForm reports
	From        string `json:"from,omitempty"`         // submitter's phone number

	// Fields is the form data; see [Report.Field].
	Fields Fields `json:"fields,omitempty"`

	// Contact is the submitter: {_id, parent} as stored, or the full
	// person with lineage after hydration.
	Contact *Contact `json:"contact,omitempty"`
	// Patient and Place are the subjects resolved by hydration; nil in
	// stored reports.
	Patient *Contact `json:"patient,omitempty"`
	Place   *Contact `json:"place,omitempty"`

	PatientID string `json:"patient_id,omitempty"` // top-level subject shortcode or uuid
	PlaceID   string `json:"place_id,omitempty"`

	ReportedDate Millis       `json:"reported_date,omitempty"`
	Geolocation  *Geolocation `json:"geolocation,omitempty"`

	// Errors holds the validation errors CHT stored on the report (for
	// example sys.missing_fields); the records API answers 200 even then.
	Errors []ReportError `json:"errors,omitempty"`

	// Extra holds every other member verbatim.
	Extra map[string]json.RawMessage `json:"-"`
}

// ReportError is one entry of a report's errors array.
type ReportError struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`

	// Extra holds other members of the entry verbatim.
	Extra map[string]json.RawMessage `json:"-"`
}

// MarshalJSON encodes the entry with its Extra members.
func (e ReportError) MarshalJSON() ([]byte, error) {
	m := members{"code": e.Code}
	m.str("message", e.Message)
	return marshalMembers(e.Extra, m)
}

// UnmarshalJSON decodes an entry; code and message are read leniently.
func (e *ReportError) UnmarshalJSON(b []byte) error { return e.decode(b, "") }

func (e *ReportError) decode(raw []byte, path string) error {
	m, err := decodeObject(raw, path)
	if err != nil {
		return err
	}
	*e = ReportError{}
	for _, f := range []struct {
		key string
		dst *string
	}{{"code", &e.Code}, {"message", &e.Message}} {
		if v, ok := m[f.key]; ok {
			if *f.dst, err = decodeString(v, joinPath(path, f.key)); err != nil {
				return err
			}
			if jsonKind(v) == "string" && (*f.dst != "" || f.key == "code") {
				delete(m, f.key)
			}
		}
	}
	e.Extra = takeExtra(m)
	return nil
}

// Error implements error.
func (e ReportError) Error() string { return "cht: report error " + e.Code + ": " + e.Message }

// Field returns the form field at a dotted path below fields, e.g.
// "danger_signs.fever"; see [Fields.Field].
func (r *Report) Field(path string) (any, bool) { return r.Fields.Field(path) }

// FieldString returns a form field as a string; see [Fields.String].
func (r *Report) FieldString(path string) (string, bool) { return r.Fields.String(path) }

// FieldFloat returns a form field as a number; see [Fields.Float].
func (r *Report) FieldFloat(path string) (float64, bool) { return r.Fields.Float(path) }

// FieldBool returns a form field as a boolean; see [Fields.Bool].
func (r *Report) FieldBool(path string) (bool, bool) { return r.Fields.Bool(path) }

// FieldTime returns a form field as a time; see [Fields.Time].
func (r *Report) FieldTime(path string) (time.Time, bool) { return r.Fields.Time(path) }

// subjectPaths is the order in which [Report.Subject] looks for the
// report's subject. Paths starting with "fields." are form fields.
var subjectPaths = [...]string{
	"fields.patient_uuid",
	"fields.patient_id",
	"patient_id",
	"fields.inputs.contact._id",
	"place_id",
}

// Subject returns the id of the person or place the report is about and
// the path it came from: the first non-empty one of fields.patient_uuid,
// fields.patient_id, patient_id, fields.inputs.contact._id and place_id,
// in that order. The value may be a
// shortcode (patient_id, place_id) or a document uuid; the hydrated
// Patient/Place, when present, tell which. ok is false when no path holds
// a non-empty value.
func (r *Report) Subject() (id, path string, ok bool) {
	if r == nil {
		return "", "", false
	}
	for _, p := range subjectPaths {
		var v string
		switch p {
		case "patient_id":
			v = r.PatientID
		case "place_id":
			v = r.PlaceID
		default:
			v, _ = r.Fields.String(p[len("fields."):])
		}
		if v != "" {
			return v, p, true
		}
	}
	return "", "", false
}

// MarshalJSON encodes the report with its Extra members.
func (r *Report) MarshalJSON() ([]byte, error) {
	m := members{}
	m.str("_id", r.ID)
	m.str("_rev", r.Rev)
	m.str("type", r.Type)
	m.str("form", r.Form)
	m.str("content_type", r.ContentType)
	m.str("from", r.From)
	m.str("patient_id", r.PatientID)
	m.str("place_id", r.PlaceID)
	if r.Fields != nil {
		m["fields"] = map[string]any(r.Fields)
	}
	if r.Contact != nil {
		m["contact"] = r.Contact
	}
	if r.Patient != nil {
		m["patient"] = r.Patient
	}
	if r.Place != nil {
		m["place"] = r.Place
	}
	if r.ReportedDate != 0 {
		m["reported_date"] = r.ReportedDate
	}
	if r.Geolocation != nil {
		m["geolocation"] = r.Geolocation
	}
	if r.Errors != nil {
		m["errors"] = r.Errors
	}
	return marshalMembers(r.Extra, m)
}

// UnmarshalJSON decodes a report. Errors are *DecodeError values naming the
// JSON path.
func (r *Report) UnmarshalJSON(b []byte) error {
	m, err := decodeObject(b, "")
	if err != nil {
		return err
	}
	return r.decodeMembers(m, "")
}

func (r *Report) decodeMembers(m map[string]json.RawMessage, path string) error {
	*r = Report{}
	strs := []struct {
		key string
		dst *string
	}{
		{"_id", &r.ID}, {"_rev", &r.Rev}, {"type", &r.Type}, {"form", &r.Form},
		{"content_type", &r.ContentType}, {"from", &r.From},
		{"patient_id", &r.PatientID}, {"place_id", &r.PlaceID},
	}
	for _, f := range strs {
		v, ok := m[f.key]
		if !ok {
			continue
		}
		s, err := decodeString(v, joinPath(path, f.key))
		if err != nil {
			return err
		}
		*f.dst = s
		if s != "" || isNull(v) {
			delete(m, f.key)
		}
	}
	if v, ok := m["fields"]; ok {
		f, err := decodeFields(v, joinPath(path, "fields"))
		if err != nil {
			return err
		}
		r.Fields = f
		if f != nil {
			delete(m, "fields")
		}
	}
	for _, ref := range []struct {
		key string
		dst **Contact
	}{{"contact", &r.Contact}, {"patient", &r.Patient}, {"place", &r.Place}} {
		v, ok := m[ref.key]
		if !ok {
			continue
		}
		c, keep, err := decodeContactRef(v, joinPath(path, ref.key), 1)
		if err != nil {
			return err
		}
		*ref.dst = c
		if !keep {
			delete(m, ref.key)
		}
	}
	if v, ok := m["reported_date"]; ok {
		d, err := decodeMillis(v, joinPath(path, "reported_date"))
		if err != nil {
			return err
		}
		r.ReportedDate = d
		if d != 0 {
			delete(m, "reported_date")
		}
	}
	if v, ok := m["geolocation"]; ok {
		if g := decodeGeolocation(v); g != nil {
			r.Geolocation = g
			delete(m, "geolocation")
		}
	}
	if v, ok := m["errors"]; ok && jsonKind(v) == "array" {
		var entries []json.RawMessage
		if err := json.Unmarshal(v, &entries); err != nil {
			return &DecodeError{Path: joinPath(path, "errors"), Err: err}
		}
		r.Errors = make([]ReportError, len(entries))
		for i, e := range entries {
			if err := r.Errors[i].decode(e, joinPath(path, "errors."+strconv.Itoa(i))); err != nil {
				return err
			}
		}
		delete(m, "errors")
	}
	r.Extra = takeExtra(m)
	return nil
}
