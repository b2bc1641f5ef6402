package cht

import (
	"bytes"
	"encoding/json"
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

	// Fields is the form data; see [Fields.Field] and its typed helpers.
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

// UnmarshalJSON decodes an entry.
func (e *ReportError) UnmarshalJSON(b []byte) error {
	d := newBytesDecoder(b, nil)
	*e = ReportError{}
	if d.peek() != '{' {
		d.fail("want object")
	} else {
		d.reportError(e, kindAll)
	}
	d.end()
	err := d.result(kindAll, 0, len(d.soft))
	d.release()
	return err
}

// Error implements error.
func (e ReportError) Error() string { return "cht: report error " + e.Code + ": " + e.Message }

// subjectPaths is the order in which [Report.Subject] looks for the
// report's subject: cht-core's (shared-libs/registration-utils
// getSubjectId: patient_id, patient_uuid, place_id, place_uuid, each at
// the top level then under fields), then fields.inputs.contact._id, the
// contact an XForm was opened on, which cht-core does not read. Paths
// starting with "fields." are form fields.
var subjectPaths = [...]string{
	"patient_id",
	"fields.patient_id",
	"patient_uuid",
	"fields.patient_uuid",
	"place_id",
	"fields.place_id",
	"place_uuid",
	"fields.place_uuid",
	"fields.inputs.contact._id",
}

// Subject returns the id of the person or place the report is about and
// the path it came from: the first non-empty one of patient_id,
// fields.patient_id, patient_uuid, fields.patient_uuid, place_id,
// fields.place_id, place_uuid, fields.place_uuid (cht-core's order,
// shared-libs/registration-utils getSubjectId) and, when none is set,
// fields.inputs.contact._id. The value may be a shortcode (patient_id,
// place_id) or a document uuid; the hydrated Patient/Place, when present,
// tell which. ok is false when no path holds a non-empty value.
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
		case "patient_uuid", "place_uuid":
			if raw, ok := r.Extra[p]; ok {
				// As a form field: numbers and booleans as their
				// JSON text (as Fields.String), other values no
				// subject.
				d := json.NewDecoder(bytes.NewReader(raw))
				d.UseNumber()
				var x any
				if d.Decode(&x) == nil {
					v, _ = Fields{p: x}.String(p)
				}
			}
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

// UnmarshalJSON decodes a report in one pass. Errors are *DecodeError
// values naming the JSON path (see [DecodeError] for which errors still
// fill r).
func (r *Report) UnmarshalJSON(b []byte) error {
	return decodeReport(b, r)
}
