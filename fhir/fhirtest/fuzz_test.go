package fhirtest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// serve runs one request against h without a network.
func serve(h http.Handler, method, target string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func checkAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if w.Body.Len() > 0 && !json.Valid(w.Body.Bytes()) {
		t.Fatalf("invalid JSON answer: %q", w.Body)
	}
}

// FuzzBundle posts arbitrary bodies as Bundles: never a 5xx, a panic or invalid JSON, and a
// rejected transaction changes nothing.
func FuzzBundle(f *testing.F) {
	for _, file := range []string{"testdata/transaction-encounter-20obs.json", "testdata/fuzz-bundle-seed.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?_id=a"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","link":[{"other":{"reference":"urn:uuid:1"}}]},"request":{"method":"POST","url":"Patient"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[null]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := fhirtest.NewHandler(fhirtest.Config{RequestLog: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Load([]byte(`{"resourceType":"Patient","id":"seed","identifier":[{"system":"s","value":"v"}]}`)); err != nil {
			t.Fatal(err)
		}
		w := serve(h, http.MethodPost, "/fhir/R4", body)
		checkAnswer(t, w)
		if w.Code >= 400 {
			if c := h.Counts(); len(c) != 1 || c["Patient"] != 1 {
				t.Fatalf("rejected Bundle changed the store: %v", c)
			}
			if raw, _ := h.Resource("Patient", "seed"); !bytes.Contains(raw, []byte(`"versionId":"1"`)) {
				t.Fatalf("rejected Bundle changed the seed: %s", raw)
			}
		}
	})
}

// FuzzRequest sends arbitrary method/path/query/body combinations.
func FuzzRequest(f *testing.F) {
	f.Add("GET", "Patient", "identifier=a|b,|c,d&_lastUpdated=ge2020-01-01T00:00:00.1234567890Z&_count=3", []byte(nil))
	f.Add("POST", "Patient", "", []byte(`{"resourceType":"Patient","name":[{"given":["",null]}]}`))
	f.Add("PUT", "Observation", "identifier=x", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"c"}}`))
	f.Add("PUT", "Patient/seed", "", []byte(`{"resourceType":"Patient","id":"seed","meta":{"versionId":7}}`))
	f.Add("DELETE", "Patient/seed", "", []byte(nil))
	f.Add("GET", "Observation", `subject=Patient/seed,\,x&subject:Patient=seed&_sort=-_id`, []byte(nil))
	f.Add("GET", "Patient/seed/_history/1", "", []byte(nil))
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		h, err := fhirtest.NewHandler(fhirtest.Config{RequestLog: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Load([]byte(`{"resourceType":"Patient","id":"seed"}`)); err != nil {
			t.Fatal(err)
		}
		r, err := http.NewRequest(method, "http://example.test/", bytes.NewReader(body))
		if err != nil {
			return // not a valid method token
		}
		r.URL.Path, r.URL.RawQuery = "/fhir/R4/"+path, query
		r.Header.Set("Content-Type", "application/fhir+json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		checkAnswer(t, w)
	})
}
