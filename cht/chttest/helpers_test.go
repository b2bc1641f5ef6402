package chttest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// call describes one request in table-driven tests.
type call struct {
	method string
	path   string // relative to srv.URL
	body   string
	ct     string // Content-Type; "" = none
	accept string // Accept; "" = application/json, "-" = none
	user   string // "" = admin; "-" = no credentials
	pass   string
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) json(t *testing.T) any {
	t.Helper()
	v, err := decodeAny(r.body)
	if err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, r.body)
	}
	return v
}

func (r result) obj(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("response is not a JSON object: %s", r.body)
	}
	return m
}

func do(t *testing.T, srv *Server, c call) result {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, srv.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.ct != "" {
		req.Header.Set("Content-Type", c.ct)
	}
	switch c.accept {
	case "":
		req.Header.Set("Accept", "application/json")
	case "-":
	default:
		req.Header.Set("Accept", c.accept)
	}
	switch c.user {
	case "":
		req.SetBasicAuth(AdminUsername, AdminPassword)
	case "-":
	default:
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// jsonEqual compares two JSON documents semantically.
func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	g, err := decodeAny(got)
	if err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	w, err := decodeAny(want)
	if err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		gi, _ := json.MarshalIndent(g, "", " ")
		wi, _ := json.MarshalIndent(w, "", " ")
		t.Fatalf("JSON differs\n got: %s\nwant: %s", gi, wi)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedFile(t *testing.T, srv *Server, path string) {
	t.Helper()
	if err := srv.Seed(bytes.NewReader(readFile(t, path))); err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newTestServer starts a server under a base path and registers cleanup.
func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.BasePath == "" {
		cfg.BasePath = "/cht"
	}
	srv := NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv
}

// get walks a decoded JSON value by dotted path (numeric segments index
// arrays); a missing step is nil.
func get(v any, path string) any {
	cur := v
	for seg := range strings.SplitSeq(path, ".") {
		switch t := cur.(type) {
		case map[string]any:
			cur = t[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(t) {
				return nil
			}
			cur = t[i]
		default:
			return nil
		}
	}
	return cur
}
