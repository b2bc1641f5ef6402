package cht

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
)

// TestHydrateBody checks the hand-written hydrate request body against
// encoding/json, escapes included.
func TestHydrateBody(t *testing.T) {
	tests := [][]string{
		{"a"},
		{"75905106a4bc2a9046ed28df070016ce", "2-x", ""},
		{`quote"d`, `back\slash`, "tab\there", "nl\n"},
		{"<script>&amp;", "é-ü", "\u2028\u2029", "bad\xffutf8", "del\x7f"},
	}
	for _, ids := range tests {
		want, err := json.Marshal(map[string][]string{"doc_ids": ids})
		if err != nil {
			t.Fatal(err)
		}
		if got := hydrateBody(ids); !bytes.Equal(got, want) {
			t.Errorf("hydrateBody(%q) = %s, want %s", ids, got, want)
		}
	}
}

// TestHydrateRequest checks what one Hydrate sends: the endpoint below the
// base path, the JSON content type CHT accepts and the body.
func TestHydrateRequest(t *testing.T) {
	var got *http.Request
	var body []byte
	c, err := New(Config{URL: "http://u:p@cht.invalid/prefix/", MaxRetries: -1,
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			got = r
			body, _ = io.ReadAll(r.Body)
			return jsonAnswer(r, []byte(`[{"id":"a b","doc":{"_id":"a b","type":"person"}}]`)), nil
		})}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Hydrate(context.Background(), "a b")
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.String() != "http://cht.invalid/prefix/api/v1/hydrate" {
		t.Errorf("request %s %s", got.Method, got.URL)
	}
	if ct := got.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if u, p, ok := got.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}
	if string(body) != `{"doc_ids":["a b"]}` {
		t.Errorf("body = %s", body)
	}
	if len(res.Docs) != 1 || res.Docs[0].ID != "a b" || res.Docs[0].Type() != "person" || res.NotFound != nil {
		t.Errorf("result = %+v", res)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func jsonAnswer(r *http.Request, body []byte) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}
}

// BenchmarkHydrate hydrates one report as the push handler does for a
// push that only names it, CHT answering in process: what is measured is
// the client (request, resty, response), not the network.
func BenchmarkHydrate(b *testing.B) {
	doc := readFixture(b, "report_xform.json")
	var d struct {
		ID string `json:"_id"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		b.Fatal(err)
	}
	answer := []byte(`[{"id":` + strconv.Quote(d.ID) + `,"doc":` + string(doc) + `}]`)
	c, err := New(Config{URL: "http://cht.invalid", Username: "u", Password: "p",
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
			return jsonAnswer(r, answer), nil
		})}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		res, err := c.Hydrate(ctx, d.ID)
		if err != nil || len(res.Docs) != 1 {
			b.Fatal(res, err)
		}
	}
	if start != 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// TestHydrateMalformedAnswer checks that a 2xx hydrate answer that is not
// the array of entries (api/src/controllers/hydration.js in cht-core
// answers only complete JSON, so these come from a proxy or a cut
// connection) is a decode error, never a panic.
func TestHydrateMalformedAnswer(t *testing.T) {
	for _, body := range []string{
		`[{"id":"a","doc":`,
		`[{"id":"a","doc": `,
		`[{"id":"a","doc":{`,
		`[{"id":"a","error":`,
		`[{"id":"a",`,
		`[`,
		``,
	} {
		t.Run(body, func(t *testing.T) {
			c, err := New(Config{URL: "http://cht.invalid/", Version: "4.10.0", MaxRetries: -1,
				HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					return jsonAnswer(r, []byte(body)), nil
				})}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Hydrate(context.Background(), "a"); err == nil {
				t.Fatalf("Hydrate on %q: no error", body)
			}
		})
	}
}

// FuzzParseHydrate feeds raw bytes to parseHydrate: it must never panic,
// and what it accepts must be what encoding/json reads as an array of
// objects.
func FuzzParseHydrate(f *testing.F) {
	addFixtureSeeds(f)
	for _, s := range []string{
		`[{"id":"a","doc":{"_id":"a","type":"person"}}]`,
		`[{"id":"a","error":"not_found"},{"id":"b","doc":{"_id":"b"}}]`,
		`[{"id":"a","doc":`, `[{"id":"a","doc":{`, `[{"id":"a","doc":null}]`, `[]`, `[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseHydrate(data, []string{"a", "b"})
		var ref []map[string]json.RawMessage
		refErr := json.Unmarshal(data, &ref)
		if err != nil {
			if entries != nil {
				t.Fatalf("error %v with entries %+v", err, entries)
			}
			return
		}
		if refErr != nil {
			t.Fatalf("parseHydrate accepted %q, encoding/json: %v", data, refErr)
		}
		if len(entries) != len(ref) {
			t.Fatalf("%d entries, encoding/json %d", len(entries), len(ref))
		}
		for i, e := range entries {
			if len(e.Doc) > 0 && !json.Valid(e.Doc) {
				t.Fatalf("entry %d: doc %q is not JSON", i, e.Doc)
			}
		}
	})
}
