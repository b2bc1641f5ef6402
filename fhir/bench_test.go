package fhir

import (
	"encoding/json"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

func benchConverter(b *testing.B) *Converter { return testConverter(b, Config{}) }

// personConverter knows the person types of ../cht/testdata/person_hydrated.json
// (app_settings_configurable.json).
func personConverter(b *testing.B) *Converter {
	types, err := cht.ParseContactTypes(readFile(b, "../cht/testdata/app_settings_configurable.json"))
	if err != nil {
		b.Fatal(err)
	}
	return testConverter(b, Config{ContactTypes: types})
}

// cpuMeter reports process CPU time per operation ("cpu-ns/op"): on a
// shared machine wall time includes time the benchmark waited for a core.
type cpuMeter struct{ start int64 }

func startCPU(b *testing.B) cpuMeter {
	b.Helper()
	return cpuMeter{start: processCPU()}
}

func (m cpuMeter) report(b *testing.B) {
	if m.start == 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkPayloadResources is the work the Node mapper does: outbound
// payload JSON → Encounter + 20 Observations JSON.
func BenchmarkPayloadResources(b *testing.B) {
	c := benchConverter(b)
	data := readFile(b, "testdata/encounter-20obs.json")
	buf := make([]byte, 0, 32<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := startCPU(b)
	for b.Loop() {
		p, err := DecodeEncounterPayload(data)
		if err != nil {
			b.Fatal(err)
		}
		t, err := c.ConvertPayload(p)
		if err != nil {
			b.Fatal(err)
		}
		buf = buf[:0]
		for i := range t.Entries {
			if buf, err = appendJSON(buf, t.Entries[i].Resource); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(len(buf)), "out-bytes")
}

// BenchmarkPayloadBundle is the same work producing a transaction Bundle,
// into a reused buffer: PayloadBundleJSON as the push handler's encounter
// endpoint calls it (with a buffer from its pool).
func BenchmarkPayloadBundle(b *testing.B) {
	c := benchConverter(b)
	data := readFile(b, "testdata/encounter-20obs.json")
	buf := make([]byte, 0, 32<<10)
	b.ReportAllocs()
	var err error
	cpu := startCPU(b)
	for b.Loop() {
		if buf, err = c.PayloadBundleJSON(buf[:0], data); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(len(buf)), "out-bytes")
}

// BenchmarkPayloadSamply is the straightforward version: encoding/json
// decode, samply types, json.Marshal per resource.
func BenchmarkPayloadSamply(b *testing.B) {
	c := benchConverter(b)
	data := readFile(b, "testdata/encounter-20obs.json")
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		var p EncounterPayload
		if err := json.Unmarshal(data, &p); err != nil {
			b.Fatal(err)
		}
		t, err := c.ConvertPayload(&p)
		if err != nil {
			b.Fatal(err)
		}
		for i := range t.Entries {
			if _, err := json.Marshal(t.Entries[i].Resource); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu.report(b)
}

// BenchmarkPayloadEncodingJSON is the reference: bare encoding/json decode
// and encode of the same input.
func BenchmarkPayloadEncodingJSON(b *testing.B) {
	data := readFile(b, "testdata/encounter-20obs.json")
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkReportBundle: a decoded hydrated report with 20 mapped fields →
// transaction Bundle JSON (Patient, Practitioner, 3 Locations, 2
// Organizations, Encounter, 20 Observations) into a reused buffer.
func BenchmarkReportBundle(b *testing.B) {
	c := benchConverter(b)
	r := loadReport(b, "testdata/report_assessment_hydrated.json")
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		t, err := c.ReportBundle(r)
		if err != nil {
			b.Fatal(err)
		}
		if buf, err = appendJSON(buf[:0], t); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkReportBundleSamply is the same with the samply Bundle and
// encoding/json.
func BenchmarkReportBundleSamply(b *testing.B) {
	c := benchConverter(b)
	r := loadReport(b, "testdata/report_assessment_hydrated.json")
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		t, err := c.ReportBundle(r)
		if err != nil {
			b.Fatal(err)
		}
		bd := &models.Bundle{Type: models.BundleTypeTransaction}
		for _, e := range t.Entries {
			raw, err := json.Marshal(e.Resource)
			if err != nil {
				b.Fatal(err)
			}
			rq := e.Request
			bd.Entry = append(bd.Entry, models.BundleEntry{FullUrl: &e.FullURL, Resource: raw, Request: &rq})
		}
		if _, err := json.Marshal(bd); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// The benchmarks below start from the bytes a mediator receives and end
// with the bytes it sends, through the calls the push handler makes
// (decode with package cht, convert, write into a reused buffer; the
// *Fresh and PayloadBytes variants write into a new slice), each beside
// encoding/json decoding the same bytes into any and encoding them again
// (the *EncodingJSON reference).

// BenchmarkReportBytes: hydrated report JSON (3 KB, 20 mapped fields) →
// transaction Bundle JSON (31 KB), as fhir/push does it: ReportBundle with
// every resource written directly (reportTransaction), then appended to
// the buffer of the previous bundle (push takes it from a pool).
// BenchmarkReportBytesFresh writes each Bundle into a new slice
// (MarshalJSON), as a program that keeps no buffer does.
func BenchmarkReportBytes(b *testing.B) { benchReportBytes(b, true) }

// BenchmarkReportBytesFresh is BenchmarkReportBytes with MarshalJSON.
func BenchmarkReportBytesFresh(b *testing.B) { benchReportBytes(b, false) }

func benchReportBytes(b *testing.B, reuse bool) {
	c := benchConverter(b)
	data := readFile(b, "testdata/report_assessment_hydrated.json")
	var out []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := startCPU(b)
	for b.Loop() {
		var r cht.Report
		if err := r.UnmarshalJSON(data); err != nil {
			b.Fatal(err)
		}
		tx, err := c.reportTransaction(&r)
		if err != nil {
			b.Fatal(err)
		}
		if out, err = writeTransaction(out, tx, reuse); err != nil {
			b.Fatal(err)
		}
		if reuse {
			tx.release() // as fhir/push does once the bundle is written
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(len(out)), "out-bytes")
}

// BenchmarkReportBytesEncodingJSON is the reference for BenchmarkReportBytes.
func BenchmarkReportBytesEncodingJSON(b *testing.B) {
	benchEncodingJSON(b, "testdata/report_assessment_hydrated.json")
}

// BenchmarkPersonPatient: hydrated person JSON (2.2 KB: the person, its
// household, CHW area and health center with their contacts) → Patient JSON,
// built as a samply value (as ContactBundle builds it) and encoded with
// Marshal.
func BenchmarkPersonPatient(b *testing.B) {
	benchPersonPatient(b, func(out []byte, c *Converter, ct *cht.Contact) ([]byte, error) {
		pt, err := c.Patient(ct)
		if err != nil {
			return out, err
		}
		return Marshal(pt)
	})
}

// BenchmarkPersonPatientDirect: the same Patient JSON written as the push
// handler writes a Patient (no samply value; appendPatientJSON), into a
// reused buffer.
func BenchmarkPersonPatientDirect(b *testing.B) {
	benchPersonPatient(b, func(out []byte, c *Converter, ct *cht.Contact) ([]byte, error) {
		return appendPatientJSON(out[:0], c, ct)
	})
}

// benchPersonPatient decodes the hydrated person and writes its Patient
// with write, which is given the previous output.
func benchPersonPatient(b *testing.B, write func(out []byte, c *Converter, ct *cht.Contact) ([]byte, error)) {
	c := personConverter(b)
	data := readFile(b, "../cht/testdata/person_hydrated.json")
	var out []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := startCPU(b)
	for b.Loop() {
		var ct cht.Contact
		if err := ct.UnmarshalJSON(data); err != nil {
			b.Fatal(err)
		}
		var err error
		if out, err = write(out, c, &ct); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(len(out)), "out-bytes")
}

// BenchmarkPersonBundle: the same person → its contact transaction Bundle
// (Patient, Locations and Organizations of its lineage, Practitioners of
// their contacts), as fhir/push does it: ContactBundle with the resources
// written directly (contactTransaction), then appended to the buffer of
// the previous bundle. BenchmarkPersonBundleFresh uses MarshalJSON.
func BenchmarkPersonBundle(b *testing.B) { benchPersonBundle(b, true) }

// BenchmarkPersonBundleFresh is BenchmarkPersonBundle with MarshalJSON.
func BenchmarkPersonBundleFresh(b *testing.B) { benchPersonBundle(b, false) }

func benchPersonBundle(b *testing.B, reuse bool) {
	c := personConverter(b)
	data := readFile(b, "../cht/testdata/person_hydrated.json")
	var out []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := startCPU(b)
	for b.Loop() {
		var ct cht.Contact
		if err := ct.UnmarshalJSON(data); err != nil {
			b.Fatal(err)
		}
		tx, err := c.contactTransaction(&ct, nil)
		if err != nil {
			b.Fatal(err)
		}
		if out, err = writeTransaction(out, tx, reuse); err != nil {
			b.Fatal(err)
		}
		if reuse {
			tx.release() // as fhir/push does once the bundle is written
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(len(out)), "out-bytes")
}

// BenchmarkPersonEncodingJSON is the reference for the person benchmarks.
func BenchmarkPersonEncodingJSON(b *testing.B) {
	benchEncodingJSON(b, "../cht/testdata/person_hydrated.json")
}

// BenchmarkPayloadBytes: the outbound payload (1.5 KB, 20 observations) →
// transaction Bundle JSON (18 KB) with PayloadBundleJSON(nil, payload), as
// a program that keeps no buffer calls it.
func BenchmarkPayloadBytes(b *testing.B) {
	c := benchConverter(b)
	data := readFile(b, "testdata/encounter-20obs.json")
	var out []byte
	var err error
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := startCPU(b)
	for b.Loop() {
		if out, err = c.PayloadBundleJSON(nil, data); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(len(out)), "out-bytes")
}

// writeTransaction writes tx's Bundle: appended to out[:0] when reuse
// (what fhir/push does through direct.AppendTransaction), else with
// MarshalJSON.
func writeTransaction(out []byte, tx *Transaction, reuse bool) ([]byte, error) {
	if reuse {
		return appendJSON(out[:0], tx)
	}
	return tx.MarshalJSON()
}

func benchEncodingJSON(b *testing.B, name string) {
	data := readFile(b, name)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := startCPU(b)
	for b.Loop() {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}
