package cht

import (
	"encoding/json"
	"testing"
)

// The decode benchmarks read the document from bytes as the push handler,
// Hydrate and the backfill do; the *EncodingJSONAny benchmarks decode the
// same bytes with encoding/json into any, as the bare reference in the
// same run.

// benchDecode reports CPU time per operation ("cpu-ns/op") beside wall
// time, which on a shared machine includes time spent waiting for a core.
func benchDecode(b *testing.B, file string, decode func([]byte) error) {
	benchBytes(b, readFixture(b, file), decode)
}

func benchBytes(b *testing.B, raw []byte, decode func([]byte) error) {
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	start := processCPU()
	for b.Loop() {
		if err := decode(raw); err != nil {
			b.Fatal(err)
		}
	}
	if start != 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

func decodeAnyJSON(raw []byte) error {
	var v any
	return json.Unmarshal(raw, &v)
}

func BenchmarkDecodeContactHydrated(b *testing.B) {
	benchDecode(b, "person_hydrated.json", func(raw []byte) error { return new(Contact).UnmarshalJSON(raw) })
}

func BenchmarkDecodeContactHydratedEncodingJSONAny(b *testing.B) {
	benchDecode(b, "person_hydrated.json", decodeAnyJSON)
}

func BenchmarkDecodeReport(b *testing.B) {
	benchDecode(b, "report_xform.json", func(raw []byte) error { return new(Report).UnmarshalJSON(raw) })
}

func BenchmarkDecodeReportEncodingJSONAny(b *testing.B) {
	benchDecode(b, "report_xform.json", decodeAnyJSON)
}

// BenchmarkOutboundParse is what the push handler does with a body before
// Handle: check it and decode the hydrated person it carries ({"doc": ...}),
// then the contact view Handle asks for.
func BenchmarkOutboundParse(b *testing.B) {
	body := append(append([]byte(`{"doc":`), readFixture(b, "person_hydrated.json")...), '}')
	benchBytes(b, body, func(raw []byte) error {
		p, err := parsePush(raw, "doc")
		if err != nil {
			return err
		}
		_, err = p.View.(docView).Contact()
		return err
	})
}

func BenchmarkMarshalReport(b *testing.B) {
	var r Report
	if err := json.Unmarshal(readFixture(b, "report_xform.json"), &r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReportField(b *testing.B) {
	var r Report
	if err := json.Unmarshal(readFixture(b, "report_xform.json"), &r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v, ok := r.Fields.String("danger_signs.fever"); !ok || v != "yes" {
			b.Fatal(v)
		}
	}
}
