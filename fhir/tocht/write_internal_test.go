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
				doc, err := b.reportDoc("r1", &cht.Record{Form: "f", Fields: tt.fields})
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
