package tocht_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
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
