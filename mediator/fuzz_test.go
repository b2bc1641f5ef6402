package mediator

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseEnvelope checks the parser used to merge nested envelopes: it
// never panics, and whatever it accepts re-encodes to valid JSON that parses
// again to the same encoding (the encoder is stable on parsed input).
func FuzzParseEnvelope(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "serving", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"response":{}}`,
		`{"response":{"status":"404","body":null,"headers":null,"timestamp":null}}`,
		`{"status":"Failed","response":{"status":500,"body":"x"},"error":{"message":"m"}}`,
		`{"response":{"timestamp":0},"orchestrations":[{"name":"a","request":{"headers":{"a.b":["1",2,true,null]},"timestamp":"2026-01-01T00:00:00.123456789+02:00"}}]}`,
		`{"response":{"body":{"a":[1,2,{"b":"\u2028<>&"}]}},"properties":{"k":{"nested":[1.5e300,-0]}}}`,
		`{"response":{"body":"\ud800 lone surrogate \xff"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err != nil {
			return
		}
		out := env.appendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON from %q: %s", data, out)
		}
		env2, err := ParseEnvelope(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		out2 := env2.appendJSON(nil)
		if !bytes.Equal(out, out2) {
			t.Fatalf("unstable encoding:\n%s\n%s", out, out2)
		}
		if env2.MediatorURN != env.MediatorURN || env2.Status != env.Status ||
			env2.Response.Status != env.Response.Status || env2.Response.Body != env.Response.Body ||
			len(env2.Orchestrations) != len(env.Orchestrations) {
			t.Fatalf("fields lost: %+v vs %+v", env, env2)
		}
	})
}
