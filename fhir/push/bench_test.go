package push_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// The benchmarks drive the push handler as a mediator serves it: a
// recorded CHT push in, the transaction Bundle posted to the FHIR client
// out. CHT and the FHIR server are answered in process (fixed answers, no
// network), so that what is measured is the handler: decoding, hydration,
// conversion, encoding and the HTTP client calls. Each has a reference
// beside it: encoding/json decoding the same request body into any and
// encoding it again (BenchmarkEncodingJSON/<same name>).
//
//	go test -run '^$' -bench . -benchmem ./fhir/push/

// Recorded pushes, from the fixtures of packages cht and fhir.
var benchPushes = []struct {
	name, path, file string
	idOnly           bool // push {"id", "rev"}: the handler hydrates the report
	bare             bool // the file is the request body
	// configurable: the document's app declares contact_types
	// (app_settings_configurable.json); the others use the legacy
	// hierarchy (person, clinic, health_center, district_hospital).
	configurable bool
}{
	{name: "Person", path: push.OutboundPath, file: "../../cht/testdata/person_hydrated.json", configurable: true},
	{name: "HydratedReport", path: push.OutboundPath, file: "../testdata/report_assessment_hydrated.json"},
	{name: "IDOnlyReport", path: push.OutboundPath, file: "../testdata/report_assessment_hydrated.json", idOnly: true},
	{name: "Payload", path: push.EncounterPath, file: "../testdata/encounter-20obs.json", bare: true},
}

// benchBody returns the request body of a recorded push and the document
// CHT's hydrate API returns for it.
func benchBody(b *testing.B, file string, idOnly, bare bool) (body, doc []byte) {
	b.Helper()
	doc, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	switch {
	case bare:
		return doc, nil
	case idOnly:
		var d struct {
			ID  string `json:"_id"`
			Rev string `json:"_rev"`
		}
		if err := json.Unmarshal(doc, &d); err != nil {
			b.Fatal(err)
		}
		body, _ = json.Marshal(map[string]string{"id": d.ID, "rev": d.Rev + "x"})
		return body, doc
	}
	return append(append([]byte(`{"doc":`), doc...), '}'), doc
}

func BenchmarkPush(b *testing.B) {
	for _, p := range benchPushes {
		b.Run(p.name, func(b *testing.B) {
			body, doc := benchBody(b, p.file, p.idOnly, p.bare)
			h := benchHandler(b, doc, p.configurable)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			cpu := startCPU()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, p.path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			cpu.report(b)
		})
	}
}

// BenchmarkEncodingJSON is the reference: encoding/json decodes each push
// body into any and encodes it again.
func BenchmarkEncodingJSON(b *testing.B) {
	for _, p := range benchPushes {
		b.Run(p.name, func(b *testing.B) {
			body, _ := benchBody(b, p.file, p.idOnly, p.bare)
			if p.idOnly { // what the handler decodes is the hydrated doc
				body, _ = benchBody(b, p.file, false, false)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			cpu := startCPU()
			for b.Loop() {
				var v any
				if err := json.Unmarshal(body, &v); err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// benchHandler is the push handler as examples/cht-to-fhir builds it, with
// CHT answering every hydrate with doc and the FHIR server accepting every
// transaction, both in process.
func benchHandler(b *testing.B, doc []byte, configurable bool) *push.Handler {
	b.Helper()
	m, err := fhir.LoadMapping("../testdata/mapping.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var types cht.ContactTypes
	if configurable {
		settings, err := os.ReadFile("../../cht/testdata/app_settings_configurable.json")
		if err != nil {
			b.Fatal(err)
		}
		if types, err = cht.ParseContactTypes(settings); err != nil {
			b.Fatal(err)
		}
	}
	conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: m, ContactTypes: types})
	if err != nil {
		b.Fatal(err)
	}
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: "http://fhir.invalid/fhir", HTTPClient: &http.Client{Transport: fastFHIR{}}})
	if err != nil {
		b.Fatal(err)
	}
	var hydrated []byte
	if doc != nil {
		var d struct {
			ID string `json:"_id"`
		}
		_ = json.Unmarshal(doc, &d)
		hydrated = []byte(`[{"id":` + strconv.Quote(d.ID) + `,"doc":` + string(doc) + `}]`)
	}
	cc, err := cht.New(cht.Config{URL: "http://cht.invalid", Username: "u", Password: "p",
		HTTPClient: &http.Client{Transport: fixedAnswer(hydrated)}})
	if err != nil {
		b.Fatal(err)
	}
	h, err := push.New(push.Config{Converter: conv, FHIR: fc, CHT: cc})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// cpuMeter reports process CPU time per operation ("cpu-ns/op") beside wall
// time, which on a shared machine includes waiting for a core.
type cpuMeter struct{ start int64 }

func startCPU() cpuMeter { return cpuMeter{start: processCPU()} }

func (m cpuMeter) report(b *testing.B) {
	if m.start != 0 && b.N > 0 {
		b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
	}
}

// fastFHIR answers a transaction with a transaction-response of as many
// 201 entries as the request has entries.
type fastFHIR struct{}

var (
	answers sync.Map // entries → answer
	bufs    = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

func (fastFHIR) RoundTrip(r *http.Request) (*http.Response, error) {
	buf := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(buf)
	buf.Reset()
	_, err := buf.ReadFrom(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	n := bytes.Count(buf.Bytes(), []byte(`"request":{`))
	a, ok := answers.Load(n)
	if !ok {
		entries := strings.Repeat(`{"response":{"status":"201 Created"}},`, n)
		a = []byte(`{"resourceType":"Bundle","type":"transaction-response","entry":[` + strings.TrimSuffix(entries, ",") + `]}`)
		answers.Store(n, a)
	}
	return answer(r, a.([]byte), "application/fhir+json"), nil
}

// fixedAnswer answers every request with body.
type fixedAnswer []byte

func (f fixedAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return answer(r, f, "application/json"), nil
}

func answer(r *http.Request, body []byte, ct string) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}
}
