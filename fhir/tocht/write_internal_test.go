package tocht

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// TestReportDocNestsDottedFieldKeys: the records API stores a field
// declared "a.b" at fields.a.b (cht-core api/src/services/records.js
// getDataRecord, api/src/services/report/smsparser.js merge), and
// cht.Record's MarshalJSON sends such a key both flat and nested. reportDoc
// must nest each field once, whatever the order of the body's map: each
// record is converted many times, since a map-order dependence fails only
// some of the time.
func TestReportDocNestsDottedFieldKeys(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]any
		want   string // the document's fields, as JSON
	}{
		{"plain key", map[string]any{"height": 1.5}, `{"height":1.5}`},
		{"dotted key", map[string]any{"group.height": 1.5}, `{"group":{"height":1.5}}`},
		{"two keys of one group", map[string]any{"group_fever.temperature": 38.5, "group_fever.fever": "yes", "patient_uuid": "p1"},
			`{"group_fever":{"fever":"yes","temperature":38.5},"patient_uuid":"p1"}`},
		{"three levels", map[string]any{"a.b.c": true, "a.d": 1}, `{"a":{"b":{"c":true},"d":1}}`},
		{"upper case, lower-cased as the records API does", map[string]any{"Group.Height": 2}, `{"group":{"height":2}}`},
	}
	b := &Bridge{now: func() time.Time { return time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC) }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 50 {
				doc, err := b.reportDoc("r1", &cht.Record{Form: "F", Fields: tt.fields}, false)
				if err != nil {
					t.Fatalf("conversion %d: %v", i, err)
				}
				got, err := json.Marshal(doc["fields"])
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tt.want {
					t.Fatalf("conversion %d: fields %s, want %s", i, got, tt.want)
				}
			}
		})
	}
}

// TestReportDocOfAnXForm: CHT's web app saves an XForm's report with the
// form id and the field names as the form has them (cht-core
// webapp/src/ts/services/enketo.service.ts initializeReportDoc; XForm
// element names are case-sensitive), content_type "xml" and no records API
// members; the records API's rules (upper-cased form, lower-cased keys)
// are not applied.
func TestReportDocOfAnXForm(t *testing.T) {
	b := &Bridge{now: func() time.Time { return time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC) }}
	doc, err := b.reportDoc("r1", &cht.Record{Form: "home_visit", From: "+254700000001",
		Fields: map[string]any{"Group.Height": 2, "patient_uuid": "p1"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"_id":"r1","content_type":"xml","fields":{"Group":{"Height":2},"patient_uuid":"p1"},"form":"home_visit",` +
		`"from":"+254700000001","reported_date":1795334400000,"type":"data_record"}`
	if !sameJSON(got, json.RawMessage(want)) {
		t.Errorf("doc %s\nwant %s", got, want)
	}
}

// TestMergeIntoKeepsWhatIsNotSent: merging the fields of a re-sent
// Encounter replaces the fields sent, at any depth, and keeps the others.
func TestMergeIntoKeepsWhatIsNotSent(t *testing.T) {
	tests := []struct {
		name         string
		stored, sent string
		want         string
	}{
		{"a corrected value", `{"height":168,"weight":61.5}`, `{"weight":62}`, `{"height":168,"weight":62}`},
		{"a new value", `{"height":168}`, `{"weight":62}`, `{"height":168,"weight":62}`},
		{"inside a group", `{"g":{"a":1,"b":2},"h":3}`, `{"g":{"b":5}}`, `{"g":{"a":1,"b":5},"h":3}`},
		{"a value becomes a group", `{"g":1}`, `{"g":{"a":1}}`, `{"g":{"a":1}}`},
		{"the subject is replaced whole", `{"patient_uuid":"p1","height":168}`, `{"patient_id":"12345","weight":62}`,
			`{"height":168,"patient_id":"12345","weight":62}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, ok := decodeObject(json.RawMessage(tt.stored))
			if !ok {
				t.Fatal("stored fields do not decode")
			}
			sent, _ := decodeObject(json.RawMessage(tt.sent))
			got, err := json.Marshal(mergeInto(withoutSubject(stored, sent), sent))
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(got, json.RawMessage(tt.want)) {
				t.Errorf("merged %s, want %s", got, tt.want)
			}
			if again, _ := json.Marshal(sent); !sameJSON(again, json.RawMessage(tt.sent)) {
				t.Errorf("the sent fields changed: %s", again)
			}
		})
	}
}

// TestSameJSONComparesNumbersByValue: CHT stores what JSON.stringify
// writes of the parsed body (cht-core api/src/routing.js
// writeParsedBody), so a stored report is compared with the one sent
// number by value, as JavaScript reads numbers (float64).
func TestSameJSONComparesNumbersByValue(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{`{"weight":61.50,"height":168.0}`, `{"height":168,"weight":61.5}`, true},
		{`{"g":{"t":3.80e1}}`, `{"g":{"t":38}}`, true},
		{`[1.0,-0]`, `[1,0]`, true},
		{`{"weight":61.5}`, `{"weight":61.6}`, false},
		{`{"weight":61.5}`, `{"weight":"61.5"}`, false},
		{`{"weight":61.5}`, `{"weight":61.5,"height":168}`, false},
		{`{"weight":61.5}`, `not json`, false},
	}
	for _, tt := range tests {
		if got := sameJSON(json.RawMessage(tt.a), json.RawMessage(tt.b)); got != tt.same {
			t.Errorf("sameJSON(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}
