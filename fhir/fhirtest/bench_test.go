package fhirtest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// BenchmarkTransaction posts the CHT-style transaction (Patient + Encounter + 20 Observations,
// 20 KB) with conditional entries. "repeat" posts the same Bundle (the idempotent retry path: 1
// conditional create that matches, 21 conditional updates); "new" gives every iteration a new report
// id (21 creates); "http" goes through the loopback listener, the others call ServeHTTP directly.
//
//	go test -run '^$' -bench Transaction -benchmem ./fhir/fhirtest/
func BenchmarkTransaction(b *testing.B) {
	body, err := os.ReadFile("testdata/transaction-encounter-20obs.json")
	if err != nil {
		b.Fatal(err)
	}
	reportID := []byte("442b0937-a32f-443e-8d28-7d9a7552fda2")
	run := func(b *testing.B, post func(body []byte) int, fresh bool) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for i := 0; b.Loop(); i++ {
			bb := body
			if fresh {
				bb = bytes.ReplaceAll(body, reportID, []byte(fmt.Sprintf("%036d", i)))
			}
			if code := post(bb); code != http.StatusOK {
				b.Fatalf("status %d", code)
			}
		}
	}
	direct := func(h http.Handler) func([]byte) int {
		return func(body []byte) int { return serve(h, http.MethodPost, "/fhir/R4", body).Code }
	}
	newHandler := func(b *testing.B) *fhirtest.Handler {
		h, err := fhirtest.NewHandler(fhirtest.Config{RequestLog: -1})
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	b.Run("repeat", func(b *testing.B) { run(b, direct(newHandler(b)), false) })
	b.Run("new", func(b *testing.B) { run(b, direct(newHandler(b)), true) })
	b.Run("http", func(b *testing.B) {
		srv := fhirtest.NewServer(fhirtest.Config{RequestLog: -1})
		defer srv.Close()
		hc := srv.Client()
		run(b, func(body []byte) int {
			resp, err := hc.Post(srv.URL, "application/fhir+json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}, false)
	})
}

// BenchmarkCreateParallel measures concurrent single-resource creates (the load-test path).
func BenchmarkCreateParallel(b *testing.B) {
	h, err := fhirtest.NewHandler(fhirtest.Config{RequestLog: -1})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:bench","value":"` + strconv.FormatInt(i, 10) + `"}],"name":[{"text":"Bench Patient"}]}`)
			if w := serve(h, http.MethodPost, "/fhir/R4/Patient", body); w.Code != http.StatusCreated {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// BenchmarkSearchIdentifier searches one identifier among 10,000 Patients (an index lookup).
func BenchmarkSearchIdentifier(b *testing.B) {
	h, err := fhirtest.NewHandler(fhirtest.Config{RequestLog: -1})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		body := []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:bench","value":"` + strconv.Itoa(i) + `"}]}`)
		if w := serve(h, http.MethodPost, "/fhir/R4/Patient", body); w.Code != http.StatusCreated {
			b.Fatalf("seed: %d", w.Code)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w := serve(h, http.MethodGet, "/fhir/R4/Patient?identifier=urn:bench|"+strconv.Itoa(i%10000), nil)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
