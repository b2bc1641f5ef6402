package tocht_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// FuzzBridge posts arbitrary bodies to every route and checks that the
// answer is never a server error while CHT is up, and always FHIR JSON: a
// resource, a response Bundle or an OperationOutcome.
func FuzzBridge(f *testing.F) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for route := range routes {
			f.Add(uint8(route), b)
		}
	}
	f.Add(uint8(0), []byte(`{"resourceType":"Patient","name":[{"text":"\u0000"}],"id":"a.b"}`))
	f.Add(uint8(4), []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}}}]}`))
	f.Add(uint8(2), []byte(`[]`))

	r := newRig(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := routes[int(route)%len(routes)]
		req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		rec := httptest.NewRecorder()
		r.m.ServeHTTP(rec, req)
		env, err := mediator.ParseEnvelope(rec.Body.Bytes())
		if err != nil {
			t.Fatalf("not an envelope: %v: %s", err, rec.Body)
		}
		if env.Response.Status >= 500 {
			t.Fatalf("%s %s: %d: %s", rt.method, rt.path, env.Response.Status, env.Response.Body)
		}
		var res struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal([]byte(env.Response.Body), &res); err != nil || res.ResourceType == "" {
			t.Fatalf("answer is not FHIR JSON: %s", env.Response.Body)
		}
		if env.Response.Status >= 400 && res.ResourceType != "OperationOutcome" {
			t.Fatalf("error %d without an OperationOutcome: %s", env.Response.Status, env.Response.Body)
		}
	})
}

var routes = []struct{ method, path string }{
	{http.MethodPost, "/fhir/Patient"},
	{http.MethodPut, "/fhir/Patient/p-1"},
	{http.MethodPost, "/fhir/ServiceRequest"},
	{http.MethodPost, "/fhir/Task"},
	{http.MethodPost, "/fhir"},
	{http.MethodPost, "/fhir/Observation"},
}
