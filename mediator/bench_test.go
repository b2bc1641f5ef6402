package mediator

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeUpstream answers every call in-process, so that the benchmarks
// measure the library, not the network.
type fakeUpstream struct{ body []byte }

func (f fakeUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Date": {"Sun, 22 Nov 2026 03:00:00 GMT"}},
		Body:          io.NopCloser(bytes.NewReader(f.body)),
		ContentLength: int64(len(f.body)),
		Request:       r,
	}, nil
}

const (
	benchRequestBody  = `{"patient_id":"p-123","form":"pregnancy","fields":{"lmp":"2026-01-01","edd":"2026-10-08"}}`
	benchUpstreamBody = `{"resourceType":"Patient","id":"p-123","name":[{"family":"Doe","given":["Jane"]}]}`
)

// doWork is the handler's work, identical in both benchmarks: read the
// request, make one outbound call, return its body.
func doWork(client *http.Client, r *http.Request) ([]byte, error) {
	in, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, "http://fhir:8080/fhir/Patient", bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func benchRequest() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/patients", strings.NewReader(benchRequestBody))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(HeaderTransactionID, "6b0259ff85b6eb16ee709004")
	return r
}

// BenchmarkBareHandler is the baseline: a plain net/http handler doing the
// same work, without envelope or capture.
func BenchmarkBareHandler(b *testing.B) {
	client := &http.Client{Transport: fakeUpstream{body: []byte(benchUpstreamBody)}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := doWork(client, r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, benchRequest())
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkMediatorHandler is the same work through a Mediator: body limit,
// recorder, one captured orchestration, envelope, metrics and logging
// (discarded).
func BenchmarkMediatorHandler(b *testing.B) {
	client := &http.Client{Transport: Transport(fakeUpstream{body: []byte(benchUpstreamBody)})}
	h := HandlerFunc(func(r *Request) (*Result, error) {
		out, err := doWork(client, r.Request)
		if err != nil {
			return nil, err
		}
		return &Result{Header: http.Header{"Content-Type": {"application/json"}}, Body: out}, nil
	})
	m, err := New(Config{Auth: InboundAuth{Open: true}, Handler: h, Definition: testDefinition("urn:mediator:bench")})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, benchRequest())
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkWriteEnvelope is the encoder alone, for one orchestration.
func BenchmarkWriteEnvelope(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		env := &Envelope{MediatorURN: "urn:mediator:bench", Response: Response{Status: 200, Body: benchUpstreamBody},
			Orchestrations: []Orchestration{{Name: "fhir", Request: OrchestrationRequest{Method: "POST", Host: "fhir", Port: "8080",
				Path: "/fhir/Patient", Headers: map[string]string{"Content-Type": "application/json"}, Body: benchRequestBody},
				Response: &Response{Status: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: benchUpstreamBody}}}}
		if err := WriteEnvelope(discardWriter{}, env); err != nil {
			b.Fatal(err)
		}
	}
}

type discardWriter struct{}

var discardHeader = http.Header{}

func (discardWriter) Header() http.Header         { return discardHeader }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
