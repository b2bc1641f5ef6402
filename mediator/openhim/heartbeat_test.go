package openhim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

func TestClientHeartbeat(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        map[string]any
		wantErr     error
		wantAnyErr  bool
	}{
		{name: "empty body: no change", status: 200, contentType: "text/plain", body: ""},
		{name: "OK: no config", status: 200, contentType: "text/plain", body: "OK"},
		{name: "empty object", status: 200, contentType: "application/json", body: "{}", want: map[string]any{}},
		{name: "config", status: 200, contentType: "application/json; charset=utf-8", body: `{"a":"1","n":2,"m":{"k":"v"}}`,
			want: map[string]any{"a": "1", "n": 2.0, "m": map[string]any{"k": "v"}}},
		{name: "yo scaffold mock reply is an object", status: 200, body: `{"response":"Ok"}`, want: map[string]any{"response": "Ok"}},
		{name: "not JSON", status: 200, body: "<html>", wantAnyErr: true},
		{name: "array", status: 200, body: "[]", wantAnyErr: true},
		{name: "unknown urn", status: 404, wantErr: openhim.ErrNotFound},
		{name: "no uptime", status: 400, wantErr: openhim.ErrBadRequest},
		{name: "bad credentials", status: 401, wantErr: openhim.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				path string
				body map[string]any
				ct   string
				n    int
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.n++
				got.path, got.ct = r.URL.EscapedPath(), r.Header.Get("Content-Type")
				b, _ := io.ReadAll(r.Body)
				_ = json.Unmarshal(b, &got.body)
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c, err := openhim.NewClient(openhim.Config{URL: srv.URL, Username: "u", Auth: openhim.AuthBasic}, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := c.Heartbeat(context.Background(), "urn:mediator:hb/1", 12.25, true)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case tt.wantAnyErr:
				if err == nil {
					t.Fatalf("want an error, got config %v", cfg)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(cfg, tt.want) {
					t.Fatalf("config = %#v, want %#v", cfg, tt.want)
				}
			}
			if got.n != 1 {
				t.Errorf("requests = %d; heartbeats are not retried", got.n)
			}
			if got.path != "/mediators/urn:mediator:hb%2F1/heartbeat" || got.ct != "application/json" {
				t.Errorf("path %q content-type %q", got.path, got.ct)
			}
			if !reflect.DeepEqual(got.body, map[string]any{"uptime": 12.25, "config": true}) {
				t.Errorf("body = %v", got.body)
			}
		})
	}
}

// BenchmarkHeartbeat measures one heartbeat with a config answer over
// loopback HTTP (client side plus a trivial server).
func BenchmarkHeartbeat(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"upstreamUrl":"http://fhir:8080","apiKey":"k","retries":3,"headers":{"a":"b"}}`)
	}))
	defer srv.Close()
	c, err := openhim.NewClient(openhim.Config{URL: srv.URL, Username: "u", Password: "p", Auth: openhim.AuthBasic}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Heartbeat(context.Background(), "urn:mediator:bench", 1.5, true); err != nil {
			b.Fatal(err)
		}
	}
}
