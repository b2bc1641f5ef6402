package cht

import (
	"encoding/json"
	"testing"
)

func BenchmarkDecodeContactHydrated(b *testing.B) {
	raw := readFixture(b, "person_with_lineage.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var c Contact
		if err := json.Unmarshal(raw, &c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeReport(b *testing.B) {
	raw := readFixture(b, "report_xform.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var r Report
		if err := json.Unmarshal(raw, &r); err != nil {
			b.Fatal(err)
		}
	}
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
		if v, ok := r.FieldString("danger_signs.fever"); !ok || v != "yes" {
			b.Fatal(v)
		}
	}
}

// BenchmarkDecodeReportBaseline decodes the same report into a plain map,
// for comparison with BenchmarkDecodeReport on the same machine.
func BenchmarkDecodeReportBaseline(b *testing.B) {
	raw := readFixture(b, "report_xform.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			b.Fatal(err)
		}
	}
}
