package chttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Form is a JSON (SMS) form definition as in app_settings.forms; it decodes
// from that JSON and keeps the order of its fields, which compact SMS
// messages are read in.
type Form struct {
	Meta struct {
		Code string `json:"code"`
	} `json:"meta"`
	Fields map[string]FormField `json:"fields"`
	// PublicForm accepts reports from unknown senders (update_clinics
	// adds no sys.facility_not_found error).
	PublicForm bool `json:"public_form"`
	// FacilityReference names the field whose value (upper-cased) becomes
	// the report's refid.
	FacilityReference string `json:"facility_reference"`

	order []string // field keys in definition order
}

// FormField is one declared field of a JSON form.
type FormField struct {
	// Type is "string", "integer", "date", "boolean", "month",
	// "phone_number" or "complex" (JSON only).
	Type string `json:"type"`
	// Required adds sys.missing_fields to the doc's errors when absent.
	Required bool `json:"required"`
	// Labels are the field's labels; textforms messages name fields by
	// their tiny label.
	Labels struct {
		Tiny  any `json:"tiny"`
		Short any `json:"short"`
	} `json:"labels"`
	// List maps SMS values to stored values ([[value, label], ...]).
	List [][]any `json:"list"`
}

// UnmarshalJSON decodes a form and records its field order.
func (f *Form) UnmarshalJSON(b []byte) error {
	type plain Form
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*f = Form(p)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	if raw, ok := top["fields"]; ok && len(bytes.TrimSpace(raw)) > 0 && bytes.TrimSpace(raw)[0] == '{' {
		keys, err := objectKeys(top, "fields")
		if err != nil {
			return fmt.Errorf("form fields: %w", err)
		}
		f.order = keys
	}
	return nil
}

// MarshalJSON encodes the form with its fields in definition order.
func (f Form) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"meta":`)
	meta, _ := json.Marshal(f.Meta)
	b.Write(meta)
	b.WriteString(`,"fields":{`)
	for i, k := range f.keys() {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(f.Fields[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteString(`}`)
	if f.PublicForm {
		b.WriteString(`,"public_form":true`)
	}
	if f.FacilityReference != "" {
		r, _ := json.Marshal(f.FacilityReference)
		b.WriteString(`,"facility_reference":`)
		b.Write(r)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// keys returns the field keys in the order Object.keys gives them: the
// definition order when the form was decoded from JSON, sorted otherwise
// (array-index keys first in both cases).
func (f *Form) keys() []string {
	keys := make([]string, 0, len(f.Fields))
	for k := range f.Fields {
		keys = append(keys, k)
	}
	if len(f.order) == 0 {
		slices.Sort(keys)
	}
	return jsKeyOrder(keys, f.order)
}

// label returns a field label as CHT's config.translate resolves it for
// the English locale: a string as is, {"en": ...} or {"translations":
// [{"locale", "content"}]} by locale, "" when absent.
func label(v any, locale string) string {
	if locale == "" {
		locale = "en"
	}
	switch t := v.(type) {
	case string:
		return t
	case map[string]any:
		if tr, ok := t["translations"].([]any); ok {
			for _, x := range tr {
				if m, ok := x.(map[string]any); ok && m["locale"] == locale {
					return str(m["content"])
				}
			}
			return ""
		}
		return str(t[locale])
	}
	return ""
}

// objectKeys returns the keys of the object member name of top, in
// document order.
func objectKeys(top map[string]json.RawMessage, name string) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(top[name]))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("%s: want an object", name)
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
