package mediator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestComputeStatus(t *testing.T) {
	ok := Orchestration{Response: &Response{Status: 200}}
	notFound := Orchestration{Response: &Response{Status: 404}}
	broken := Orchestration{Response: &Response{Status: 503}}
	transportErr := Orchestration{Error: &ErrorDetails{Message: "dial tcp: refused"}}
	tests := []struct {
		name  string
		code  int
		orchs []Orchestration
		want  Status
	}{
		{"2xx no orchestrations", 200, nil, StatusSuccessful},
		{"2xx all orchestrations 2xx", 201, []Orchestration{ok, ok}, StatusSuccessful},
		{"5xx", 500, []Orchestration{ok}, StatusFailed},
		{"5xx wins over orchestration 5xx", 502, []Orchestration{broken}, StatusFailed},
		{"2xx with orchestration 5xx", 200, []Orchestration{ok, broken}, StatusCompletedWithErrors},
		{"4xx with orchestration 5xx", 404, []Orchestration{broken}, StatusCompletedWithErrors},
		{"2xx with transport error", 200, []Orchestration{transportErr}, StatusCompletedWithErrors},
		{"4xx", 400, nil, StatusCompleted},
		{"2xx with orchestration 4xx", 200, []Orchestration{notFound}, StatusCompleted},
		{"3xx", 302, nil, StatusCompleted},
		{"orchestration without response or error ignored", 200, []Orchestration{{Name: "queue"}}, StatusSuccessful},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, computeStatus(tt.code, tt.orchs))
		})
	}
}

func TestStatusValid(t *testing.T) {
	for _, s := range []Status{StatusProcessing, StatusPendingAsync, StatusSuccessful, StatusCompleted, StatusCompletedWithErrors, StatusFailed} {
		assert.True(t, s.valid(), s)
	}
	for _, s := range []Status{"", "successful", "Completed with errors", "OK"} {
		assert.False(t, s.valid(), s)
	}
}

func TestNormalize(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC)
	reqAt := now.Add(-time.Second)
	tests := []struct {
		name  string
		in    Envelope
		check func(t *testing.T, e *Envelope)
	}{
		{"empty envelope gets everything core needs", Envelope{}, func(t *testing.T, e *Envelope) {
			assert.Equal(t, "urn:mediator:test", e.MediatorURN)
			assert.Equal(t, 200, e.Response.Status)
			assert.NotNil(t, e.Response.Headers)
			assert.Equal(t, now, e.Response.Timestamp)
			assert.Equal(t, StatusSuccessful, e.Status)
		}},
		{"explicit values are kept", Envelope{MediatorURN: "urn:other", Status: StatusCompleted,
			Response: Response{Status: 500, Headers: map[string]string{"A": "b"}, Timestamp: reqAt}},
			func(t *testing.T, e *Envelope) {
				assert.Equal(t, "urn:other", e.MediatorURN)
				assert.Equal(t, StatusCompleted, e.Status)
				assert.Equal(t, reqAt, e.Response.Timestamp)
				assert.Equal(t, map[string]string{"A": "b"}, e.Response.Headers)
			}},
		{"status computed from orchestrations", Envelope{Orchestrations: []Orchestration{{Name: "x", Response: &Response{Status: 502}}}},
			func(t *testing.T, e *Envelope) { assert.Equal(t, StatusCompletedWithErrors, e.Status) }},
		{"orchestration gets name and timestamps", Envelope{Orchestrations: []Orchestration{
			{Request: OrchestrationRequest{Method: "POST", Host: "fhir", Port: "8080"}, Response: &Response{Status: 201}},
			{Name: "n", Response: &Response{Status: 200, Timestamp: reqAt}},
		}}, func(t *testing.T, e *Envelope) {
			o := e.Orchestrations[0]
			assert.Equal(t, "POST fhir:8080", o.Name)
			assert.Equal(t, now, o.Request.Timestamp)
			assert.Equal(t, now, o.Response.Timestamp)
			assert.Equal(t, reqAt, e.Orchestrations[1].Request.Timestamp, "request timestamp falls back to the response's")
		}},
		{"header and property keys are sanitised", Envelope{
			Properties: map[string]any{"a.b": 1, "$c": 2, "plain": 3},
			Orchestrations: []Orchestration{{Name: "n",
				Request:  OrchestrationRequest{Headers: map[string]string{"X.Dotted": "1", "$Dollar": "2", "Plain": "3"}},
				Response: &Response{Status: 200, Headers: map[string]string{"a.b.c": "x"}}}},
		}, func(t *testing.T, e *Envelope) {
			assert.Equal(t, map[string]string{"X\uff0eDotted": "1", "\uff04Dollar": "2", "Plain": "3"}, e.Orchestrations[0].Request.Headers)
			assert.Equal(t, map[string]string{"a\uff0eb\uff0ec": "x"}, e.Orchestrations[0].Response.Headers)
			assert.Equal(t, map[string]any{"a\uff0eb": 1, "\uff04c": 2, "plain": 3}, e.Properties)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.in
			require.NoError(t, e.Normalize("urn:mediator:test", now))
			tt.check(t, &e)
		})
	}
}

// TestNormalizeStatusCore4CannotAnswer: core 4.0.5 answers its client with
// koa 2.3.0, whose status setter (lib/response.js, set status) asserts
// statuses[code] of the statuses module 1.3.1; an unlisted code makes core
// answer 500 "An internal server error occurred" in place of the
// mediator's answer (seen against the CI's core, installed from the lock
// of openhim-core-js v4.0.5, in TestE2EServingThroughRouter).
func TestNormalizeStatusCore4CannotAnswer(t *testing.T) {
	tests := []struct {
		code, want int
		moved      bool
	}{
		{520, 500, true}, // Cloudflare's "unknown error", relayed from an upstream
		{599, 500, true},
		{499, 400, true}, // nginx's "client closed request"
		{299, 200, true},
		{399, 300, true},
		{509, 509, false}, // listed by statuses 1.3.1, unknown to Go
		{306, 306, false},
		{418, 418, false},
		{422, 422, false},
		{511, 511, false},
		{0, 200, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			props := map[string]any{"run": "x"}
			e := Envelope{Response: Response{Status: tt.code}, Properties: props}
			require.NoError(t, e.Normalize("urn:x", time.Now()))
			assert.Equal(t, tt.want, e.Response.Status)
			if !tt.moved {
				assert.Equal(t, map[string]any{"run": "x"}, e.Properties)
				return
			}
			assert.Equal(t, map[string]any{"run": "x", "original status": tt.code}, e.Properties)
			assert.Equal(t, map[string]any{"run": "x"}, props, "the caller's map is not changed")
			assert.Equal(t, computeStatus(tt.code, nil), e.Status, "the transaction status is the original code's")
		})
	}
	e := Envelope{Response: Response{Status: 520}}
	require.NoError(t, e.Normalize("urn:x", time.Now()))
	assert.Equal(t, map[string]any{"original status": 520}, e.Properties, "no properties before")
}

// TestCore4StatusList pins core4Status to the codes of the statuses module
// 1.3.1 (codes.json), which koa 2.3.0 checks in core 4.0.5.
func TestCore4StatusList(t *testing.T) {
	listed := []int{200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
		400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423,
		424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 510, 511}
	for code := 200; code <= 599; code++ {
		assert.Equal(t, slices.Contains(listed, code), core4Status(code), "%d", code)
	}
}

func TestNormalizeRejectsUnknownStatus(t *testing.T) {
	e := Envelope{Status: "Done"}
	err := e.Normalize("urn:x", time.Now())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"Done"`)
}

func TestWriteEnvelope(t *testing.T) {
	w := httptest.NewRecorder()
	env := &Envelope{
		MediatorURN: "urn:mediator:test",
		Response:    Response{Status: 404, Body: `{"error":"not found"}`},
		Orchestrations: []Orchestration{{Name: "lookup", Group: "cht",
			Request:  OrchestrationRequest{Method: "GET", Host: "cht", Port: "5988", Path: "/api/v1/person/1", Querystring: "a=1"},
			Response: &Response{Status: 404, Body: "missing"}}},
		Properties: map[string]any{"patient": "p1"},
		Error:      &ErrorDetails{Message: "boom", Stack: "at main"},
	}
	require.NoError(t, WriteEnvelope(w, env))
	assert.Equal(t, 404, w.Code)
	assert.Equal(t, ContentType, w.Header().Get("Content-Type"))

	var got map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	assert.Equal(t, "urn:mediator:test", got["x-mediator-urn"])
	assert.Equal(t, "Completed", got["status"])
	resp := got["response"].(map[string]any)
	assert.Equal(t, `{"error":"not found"}`, resp["body"], "body is a string")
	assert.Equal(t, map[string]any{}, resp["headers"], "headers are {} not null")
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, resp["timestamp"])
	o := got["orchestrations"].([]any)[0].(map[string]any)
	assert.Equal(t, "lookup", o["name"])
	assert.Equal(t, "cht", o["group"])
	req := o["request"].(map[string]any)
	assert.Equal(t, "a=1", req["querystring"])
	assert.NotEmpty(t, req["timestamp"])
	assert.Equal(t, map[string]any{"message": "boom", "stack": "at main"}, got["error"])
	assert.Equal(t, map[string]any{"patient": "p1"}, got["properties"])

	// Our fast encoder and encoding/json agree on the decoded result.
	back, err := ParseEnvelope(w.Body.Bytes())
	require.NoError(t, err)
	assert.Equal(t, env.Orchestrations[0].Request.Path, back.Orchestrations[0].Request.Path)
	assert.True(t, env.Response.Timestamp.Truncate(time.Millisecond).Equal(back.Response.Timestamp))
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " backslash \`, "ctl \x00\x01\x1f\x7f", "nl\n cr\r tab\t",
		"<html>&amp;</html>", "unicode é ü 日本", "emoji 🙂", "bad utf8 \xff\xfe end",
		"truncated \xe6\x97", "line sep \u2028 para \u2029", "backspace \b formfeed \f",
	} {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendString(nil, s)), "%q", s)
	}
}

// FuzzAppendString requires appendString to write exactly what
// encoding/json writes for any string.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\xff\u2028\b", `"\\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("appendString(%q) = %s, encoding/json writes %s", s, got[1:], want)
		}
	})
}

func TestFitBodies(t *testing.T) {
	mk := func(req, resp int) Orchestration {
		return Orchestration{Name: "o",
			Request:  OrchestrationRequest{Body: strings.Repeat("q", req)},
			Response: &Response{Body: strings.Repeat("r", resp)}}
	}
	tests := []struct {
		name             string
		orchs            []Orchestration
		reserved, budget int64
		wantLens         [][2]int // request, response body lengths after
	}{
		{"fits", []Orchestration{mk(10, 10)}, 10, 100, [][2]int{{10, 10}}},
		{"no budget", []Orchestration{mk(1000, 1000)}, 10, -1, [][2]int{{1000, 1000}}},
		{"last response cut first", []Orchestration{mk(10, 10), mk(10, 100)}, 0, 100,
			[][2]int{{10, 10}, {10, 70}}},
		{"everything of the last one, then earlier", []Orchestration{mk(50, 50), mk(50, 50)}, 40, 100,
			[][2]int{{50, 0}, {0, 0}}},
		{"cut keeps the marker", []Orchestration{mk(50, 100)}, 0, 100, [][2]int{{50, 50}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fitBodies(tt.orchs, tt.reserved, tt.budget)
			total := tt.reserved
			for i, o := range tt.orchs {
				assert.Equal(t, tt.wantLens[i], [2]int{len(o.Request.Body), len(o.Response.Body)}, "orchestration %d", i)
				total += int64(len(o.Request.Body) + len(o.Response.Body))
				if strings.Contains(o.Response.Body, "r") && !strings.HasSuffix(o.Response.Body, "r") {
					assert.True(t, strings.HasSuffix(o.Response.Body, truncateMarker), "cut body ends with the marker")
				}
			}
			if tt.budget > 0 {
				assert.LessOrEqual(t, total, tt.budget)
			}
		})
	}
}

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		file    string
		wantErr string
		check   func(t *testing.T, e *Envelope)
	}{
		{file: "nested-envelope.json", check: func(t *testing.T, e *Envelope) {
			assert.Equal(t, "urn:mediator:downstream", e.MediatorURN)
			assert.Equal(t, StatusSuccessful, e.Status)
			assert.Equal(t, 201, e.Response.Status)
			assert.Equal(t, `{"id":"abc"}`, e.Response.Body)
			assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC), e.Response.Timestamp)
			require.Len(t, e.Orchestrations, 1)
			assert.Equal(t, "downstream lookup", e.Orchestrations[0].Name)
			assert.Equal(t, "8080", e.Orchestrations[0].Request.Port)
			assert.Equal(t, map[string]any{"patients": float64(1)}, e.Properties)
		}},
		{file: "lenient-envelope.json", check: func(t *testing.T, e *Envelope) {
			assert.Equal(t, Status(""), e.Status)
			assert.Equal(t, 202, e.Response.Status, "numeric string status")
			assert.Equal(t, `{"accepted":true}`, e.Response.Body, "object body kept as JSON text")
			assert.Equal(t, map[string]string{"set-cookie": "a=1\nb=2", "x-count": "3"}, e.Response.Headers, "one cookie per line")
			assert.Equal(t, time.UnixMilli(1767323045678).UTC(), e.Response.Timestamp, "epoch milliseconds")
			require.Len(t, e.Orchestrations, 1)
			assert.Nil(t, e.Orchestrations[0].Response)
			assert.Equal(t, `{"k":1}`, e.Orchestrations[0].Request.Body)
			assert.Equal(t, &ErrorDetails{Message: "partial failure", Stack: "at x"}, e.Error)
		}},
		{file: "missing-response.json", wantErr: `missing "response"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "serving", tt.file))
			require.NoError(t, err)
			e, err := ParseEnvelope(data)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, e)
		})
	}
}

func TestParseEnvelopeErrors(t *testing.T) {
	tests := []struct{ name, in, wantErr string }{
		{"malformed", `{"response":`, "parse envelope"},
		{"not an object", `[]`, "parse envelope"},
		{"bad status", `{"status":"Done","response":{}}`, `invalid status "Done"`},
		{"status not a number", `{"response":{"status":"abc"}}`, "response.status"},
		{"status fraction", `{"response":{"status":200.5}}`, "response.status"},
		{"bad timestamp", `{"response":{"timestamp":"yesterday"}}`, "response.timestamp"},
		{"orchestration bad timestamp", `{"response":{},"orchestrations":[{"name":"a","request":{"timestamp":true}}]}`, "orchestrations[0].request.timestamp"},
		{"year out of range", `{"response":{"timestamp":-99999999999999}}`, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEnvelope([]byte(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestEnvelopeJSONRoundTrip(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "serving", "nested-envelope.json"))
	require.NoError(t, err)
	var e Envelope
	require.NoError(t, json.Unmarshal(data, &e))
	out, err := json.Marshal(e)
	require.NoError(t, err)
	var again Envelope
	require.NoError(t, json.Unmarshal(out, &again))
	assert.Equal(t, e, again)
}

func TestWriteEnvelopeInvalidStatus(t *testing.T) {
	w := httptest.NewRecorder()
	err := WriteEnvelope(w, &Envelope{Status: "Nope"})
	require.Error(t, err)
	assert.Equal(t, 0, w.Body.Len(), "nothing written")
	_ = http.StatusOK
}
