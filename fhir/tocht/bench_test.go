package tocht_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// BenchmarkResend measures a re-sent ServiceRequest and Patient (the
// idempotent path: the CHT reads, no write) through the mediator, with the
// fake CHT on loopback.
func BenchmarkResend(b *testing.B) {
	for _, bc := range []struct{ name, path, file string }{
		{"ServiceRequest", "/fhir/ServiceRequest", "service-request.json"},
		{"Patient", "/fhir/Patient", "patient.json"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRig(b)
			body := testdata(b, bc.file)
			send := func() int {
				req := httptest.NewRequest(http.MethodPost, bc.path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/fhir+json")
				rec := httptest.NewRecorder()
				r.m.ServeHTTP(rec, req)
				return rec.Code
			}
			if code := send(); code != http.StatusCreated {
				b.Fatalf("first send: %d", code)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if code := send(); code != http.StatusOK {
					b.Fatalf("re-send: %d", code)
				}
			}
		})
	}
}

// BenchmarkBundleEntry measures what an entry of a Bundle costs, the
// figures DefaultMaxBundleEntries is derived from: transactions and
// batches of new Patients (each entry a CHT person to create) through the
// mediator, against the fake CHT on loopback and with latency added to
// every CHT call. It reports the time and the CHT calls per entry.
func BenchmarkBundleEntry(b *testing.B) {
	const entries = 50
	patient := string(testdata(b, "patient.json"))
	for _, latency := range []time.Duration{0, 25 * time.Millisecond} {
		for _, typ := range []string{"transaction", "batch"} {
			b.Run(fmt.Sprintf("%s/latency=%v", typ, latency), func(b *testing.B) {
				r := newRig(b)
				if latency > 0 {
					r.cht.InjectFault(chttest.Fault{Latency: latency})
				}
				sent, calls := 0, 0
				for b.Loop() {
					list := make([]string, entries)
					for i := range list {
						list[i] = `{"resource":` + strings.Replace(patient, `"EMR-0001"`, fmt.Sprintf(`"EMR-B-%07d"`, sent+i), 1) + `}`
					}
					body := `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(list, ",") + `]}`
					r.cht.ResetRequests()
					req := httptest.NewRequest(http.MethodPost, "/fhir", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/fhir+json")
					rec := httptest.NewRecorder()
					r.m.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("%d: %.300s", rec.Code, rec.Body)
					}
					sent += entries
					calls += len(r.cht.Requests())
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(sent), "ms/entry")
				b.ReportMetric(float64(calls)/float64(sent), "CHT-calls/entry")
			})
		}
	}
}
