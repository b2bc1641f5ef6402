package outbound_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

func post(t *testing.T, h http.Handler, method, ctype, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "/cht/push", strings.NewReader(body))
	req.SetBasicAuth("cht", "outbound-secret")
	req.Header.Set("X-Request-Id", "req-1")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkJSONBody fails unless the answer has a JSON content type and a body
// that parses (CHT 4.17+ fails pushes whose JSON body does not parse).
func checkJSONBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	return m
}

func TestHandlerRejects(t *testing.T) {
	var calls atomic.Int32
	h, err := outbound.NewHandler(outbound.HandlerConfig{
		MaxBodyBytes: 64,
		Handle:       func(context.Context, *outbound.Payload) error { calls.Add(1); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, ctype, body string
		status                    int
		errContains               string
	}{
		{"GET", "GET", "application/json", `{}`, 405, "POST"},
		{"text/plain", "POST", "text/plain", `{}`, 415, "text/plain"},
		{"no content type", "POST", "", `{}`, 415, "application/json"},
		{"too large", "POST", "application/json", `{"x":"` + strings.Repeat("a", 100) + `"}`, 413, "64 bytes"},
		{"empty", "POST", "application/json", ``, 400, "empty body"},
		{"malformed", "POST", "application/json", `{"id": "a",}`, 400, "byte 12"},
		{"doc not object", "POST", "application/json", `{"doc": "x"}`, 400, "doc: want the document object, got string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, h, tt.method, tt.ctype, tt.body)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			m := checkJSONBody(t, rec)
			if msg, _ := m["error"].(string); !strings.Contains(msg, tt.errContains) || m["ok"] != false {
				t.Errorf("body = %v, want error containing %q", m, tt.errContains)
			}
		})
	}
	if calls.Load() != 0 {
		t.Errorf("Handle called %d times for rejected requests", calls.Load())
	}
}

func TestHandlerPayloads(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name, body   string
		ctype        string
		id, rev      string
		docType      string
		hasDoc       bool
		field, value string
	}{
		{"whole doc under doc (§8.2)", read("outbound_patient.json"), "application/json", "75905106a4bc2a9046ed28df070016ce", "", "", true, "doc.patient_id", "13985"},
		{"mapped encounter (§8.3)", read("outbound_encounter.json"), "application/json; charset=utf-8", "442b0937-a32f-443e-8d28-7d9a7552fda2", "", "", false, "observations.0.valueQuantity.value", "175"},
		{"doc as body", read("report_xform.json"), "application/json", "232a3938-9b1c-4d88-bbd8-8ebd6a688b2d", "1-68ec4e77bbba238ef09dab5e8c8131e7", "data_record", true, "fields.danger_signs.fever", "yes"},
		{"reference", `{"id":"abc","rev":"3-x"}`, "application/json", "abc", "3-x", "", false, "rev", "3-x"},
		{"array payload", `[1,2]`, "application/json", "", "", "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *outbound.Payload
			h, _ := outbound.NewHandler(outbound.HandlerConfig{Handle: func(_ context.Context, p *outbound.Payload) error {
				got = p
				return nil
			}})
			rec := post(t, h, "POST", tt.ctype, tt.body)
			if rec.Code != 200 {
				t.Fatalf("status = %d %s", rec.Code, rec.Body)
			}
			if m := checkJSONBody(t, rec); m["ok"] != true {
				t.Errorf("body = %v", m)
			}
			if got.ID != tt.id || got.Rev != tt.rev || (len(got.Doc) > 0) != tt.hasDoc || got.DocType() != tt.docType {
				t.Errorf("payload id %q rev %q doc %v type %q", got.ID, got.Rev, len(got.Doc) > 0, got.DocType())
			}
			if tt.field != "" {
				var body map[string]any
				dec := json.NewDecoder(bytes.NewReader(got.Body))
				dec.UseNumber()
				if err := dec.Decode(&body); err != nil {
					t.Fatal(err)
				}
				v, ok := cht.Fields(body).Field(tt.field)
				if s, _ := v.(json.Number); !ok || (string(s) != tt.value && v != tt.value) {
					t.Errorf("Field(%q) = %v, %v", tt.field, v, ok)
				}
			}
			if string(got.Body) != tt.body {
				t.Error("Body differs from what was sent")
			}
			if got.RequestID != "req-1" || got.Header.Get("Authorization") != "" {
				t.Errorf("request id %q, authorization %q", got.RequestID, got.Header.Get("Authorization"))
			}
		})
	}
}

func TestHandlerFailures(t *testing.T) {
	tests := []struct {
		name   string
		handle func(context.Context, *outbound.Payload, <-chan struct{}) error
		status int
	}{
		{"error", func(context.Context, *outbound.Payload, <-chan struct{}) error { return errors.New("fhir down") }, 500},
		{"chosen status", func(context.Context, *outbound.Payload, <-chan struct{}) error {
			return &outbound.Error{StatusCode: 422, Err: errors.New("no patient")}
		}, 422},
		{"invalid chosen status", func(context.Context, *outbound.Payload, <-chan struct{}) error {
			return &outbound.Error{StatusCode: 200, Err: errors.New("x")}
		}, 500},
		{"panic", func(context.Context, *outbound.Payload, <-chan struct{}) error { panic("boom") }, 500},
		{"deadline", func(ctx context.Context, _ *outbound.Payload, _ <-chan struct{}) error {
			<-ctx.Done()
			return ctx.Err()
		}, 503},
		// Handle ignores its context: the answer must not wait for it.
		{"ignores deadline", func(_ context.Context, _ *outbound.Payload, release <-chan struct{}) error { <-release; return nil }, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			h, _ := outbound.NewHandler(outbound.HandlerConfig{
				Handle:  func(ctx context.Context, p *outbound.Payload) error { return tt.handle(ctx, p, release) },
				Timeout: 50 * time.Millisecond,
			})
			answered := make(chan *httptest.ResponseRecorder, 1)
			go func() { answered <- post(t, h, "POST", "application/json", `{"id":"a"}`) }()
			var rec *httptest.ResponseRecorder
			select {
			case rec = <-answered:
			case <-time.After(5 * time.Second):
				t.Fatal("no answer while Handle is still running")
			}
			close(release)
			h.Wait()
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			if m := checkJSONBody(t, rec); m["ok"] != false || m["error"] == "" {
				t.Errorf("body = %v", m)
			}
		})
	}
}

func TestHandlerFetch(t *testing.T) {
	srv := chttest.NewDemoServer(chttest.Config{})
	t.Cleanup(srv.Close)
	c, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	var got *cht.Report
	h, _ := outbound.NewHandler(outbound.HandlerConfig{
		Fetch: outbound.HydrateFetcher(c),
		Handle: func(_ context.Context, p *outbound.Payload) error {
			r, err := p.Report()
			got = r
			return err
		},
	})
	rec := post(t, h, "POST", "application/json", `{"id":"`+chttest.DemoDangerSignReportID+`","rev":"1-x"}`)
	if rec.Code != 200 {
		t.Fatalf("status = %d %s", rec.Code, rec.Body)
	}
	if got == nil || got.Patient == nil || got.Patient.ID != chttest.DemoMotherID {
		t.Errorf("report not hydrated: %+v", got)
	}
	srv.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: 503})
	if rec := post(t, h, "POST", "application/json", `{"id":"x"}`); rec.Code != 503 {
		t.Errorf("fetch failure status = %d, want 503", rec.Code)
	}
}

// TestHandlerWithPusher drives the handler the way CHT does: chttest's
// OutboundPusher maps hydrated docs and POSTs them, treats non-2xx as a
// failure and queues the doc for retry.
func TestHandlerWithPusher(t *testing.T) {
	srv := chttest.NewDemoServer()
	defer srv.Close()
	var fail atomic.Bool
	fail.Store(true)
	var received []*cht.Report
	h, _ := outbound.NewHandler(outbound.HandlerConfig{Handle: func(_ context.Context, p *outbound.Payload) error {
		if fail.Load() {
			return errors.New("downstream unavailable")
		}
		r, err := p.Report()
		if err != nil {
			return err
		}
		received = append(received, r)
		return nil
	}})
	mediator := httptest.NewServer(h)
	defer mediator.Close()
	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{
		Name: "fhir_reports", URL: mediator.URL + "/cht/report", Server: srv,
		RelevantTo: func(doc map[string]any) bool { return doc["type"] == "data_record" },
		Mapping:    map[string]any{"doc": "doc"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := pusher.PushID(ctx, chttest.DemoDangerSignReportID)
	if err == nil || a.Outcome != chttest.OutcomeFailed || a.StatusCode != 500 {
		t.Fatalf("first push: %+v, %v; want failed with 500", a, err)
	}
	if q := pusher.Queue(); len(q) != 1 {
		t.Fatalf("queue = %v", q)
	}
	fail.Store(false)
	if err := pusher.RunQueue(ctx); err != nil {
		t.Fatal(err)
	}
	if len(received) != 1 || received[0].Patient == nil || received[0].Patient.Name != "Della Otieno" {
		t.Fatalf("received = %+v", received)
	}
	if q := pusher.Queue(); len(q) != 0 {
		t.Errorf("queue after success = %v", q)
	}
	// The same payload is not sent twice.
	a, _ = pusher.PushID(ctx, chttest.DemoDangerSignReportID)
	if a.Outcome != chttest.OutcomeAlreadySent {
		for _, x := range pusher.Attempts() {
			t.Logf("%s %s %d %s", x.Outcome, x.Hash, x.StatusCode, x.Payload[:80])
		}
		t.Errorf("re-push outcome = %s", a.Outcome)
	}
}

func TestConfig(t *testing.T) {
	dest, err := outbound.NewDestination("http://openhim-core:5001/mediator/cht/encounter", "interop-client", "openhim1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := outbound.Config{
		"openmrs_height_weight": {
			RelevantTo:  "doc.type === 'data_record' && doc.form === 'HEIGHT_WEIGHT'",
			Destination: dest,
			Mapping: map[string]outbound.MapValue{
				"id":                                 outbound.MapPath("doc._id"),
				"patient_uuid":                       outbound.MapPath("doc.fields.patient_uuid"),
				"reported_date":                      outbound.MapPath("doc.reported_date"),
				"observations.0.valueQuantity.value": outbound.MapOptional("doc.fields.height"),
				"observations.0.valueQuantity.unit":  outbound.MapExpr("'cm'", false),
			},
		},
	}
	got, err := cfg.AppSettings()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "outbound": {
    "openmrs_height_weight": {
      "relevant_to": "doc.type === 'data_record' && doc.form === 'HEIGHT_WEIGHT'",
      "destination": {
        "base_url": "http://openhim-core:5001",
        "path": "/mediator/cht/encounter",
        "auth": {
          "type": "basic",
          "username": "interop-client",
          "password_key": "openhim1"
        }
      },
      "mapping": {
        "id": "doc._id",
        "observations.0.valueQuantity.unit": {
          "expr": "'cm'"
        },
        "observations.0.valueQuantity.value": {
          "optional": true,
          "path": "doc.fields.height"
        },
        "patient_uuid": "doc.fields.patient_uuid",
        "reported_date": "doc.reported_date"
      }
    }
  },
  "transitions": {
    "mark_for_outbound": true
  }
}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// It decodes back to the same configuration.
	var back struct {
		Outbound outbound.Config `json:"outbound"`
	}
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if v := back.Outbound["openmrs_height_weight"].Mapping["observations.0.valueQuantity.value"]; v != outbound.MapOptional("doc.fields.height") {
		t.Errorf("decoded mapping = %+v", v)
	}
}

func TestConfigValidate(t *testing.T) {
	good := outbound.Push{RelevantTo: "true", Destination: outbound.Destination{BaseURL: "https://h", Path: "/p"}, Mapping: outbound.DocMapping()}
	tests := []struct {
		name string
		mod  func(p *outbound.Push)
		want string
	}{
		{"ok", func(*outbound.Push) {}, ""},
		{"no relevant_to", func(p *outbound.Push) { p.RelevantTo = "" }, "relevant_to"},
		{"bad base_url", func(p *outbound.Push) { p.Destination.BaseURL = "h" }, "base_url"},
		{"creds in url", func(p *outbound.Push) { p.Destination.BaseURL = "https://u:p@h" }, "credentials"},
		{"bad auth type", func(p *outbound.Push) { p.Destination.Auth = &outbound.Auth{Type: "bearer"} }, "basic, header or muso-sih"},
		{"basic without key", func(p *outbound.Push) { p.Destination.Auth = &outbound.Auth{Type: "basic", Username: "u"} }, "password_key"},
		{"header name", func(p *outbound.Push) {
			p.Destination.Auth = &outbound.Auth{Type: "header", Name: "X-Token", ValueKey: "k"}
		}, "Authorization"},
		{"no mapping", func(p *outbound.Push) { p.Mapping = nil }, "mapping is required"},
		{"path and expr", func(p *outbound.Push) { p.Mapping = map[string]outbound.MapValue{"a": {Path: "doc.a", Expr: "1"}} }, "exactly one"},
		{"path not doc", func(p *outbound.Push) { p.Mapping = map[string]outbound.MapValue{"a": outbound.MapPath("fields.a")} }, "must start with doc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.mod(&p)
			err := outbound.Config{"push": p}.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := outbound.NewDestination("https://u:p@h/x", "", ""); err == nil {
		t.Error("credentials in destination URL accepted")
	}
}

// A destination URL that is refused is not repeated with its password,
// parsed or not: the error reaches logs and the terminal.
func TestDestinationURLPasswordNotShown(t *testing.T) {
	for _, raw := range []string{
		"https://u:s3cret@h/x",
		"https://u:s3cret%zz@h/x", // does not parse
		"https://u:s3cret@h:port/x",
		"ftp://u:s3cret@h/x",
		"//u:s3cret@h/x",
		"https://u:s3cret@",
	} {
		t.Run(raw, func(t *testing.T) {
			_, err := outbound.NewDestination(raw, "", "")
			if err == nil {
				t.Fatal("NewDestination accepted the URL")
			}
			u, _, _ := strings.Cut(raw, "/x")
			verr := outbound.Config{"push": {RelevantTo: "true", Destination: outbound.Destination{BaseURL: u, Path: "/x"},
				Mapping: outbound.DocMapping()}}.Validate()
			if verr == nil || !strings.Contains(verr.Error(), "base_url") {
				t.Fatalf("Validate = %v, want an error naming base_url", verr)
			}
			if out := err.Error() + " " + verr.Error(); strings.Contains(out, "s3cret") {
				t.Errorf("password shown: %s", out)
			}
		})
	}
}

// A body with a Content-Encoding other than identity is refused 415 before
// it is read, with an error naming the header and its value, instead of a
// 400 about malformed JSON; identity, in any case, is a plain body.
func TestHandlerRefusesEncodedBodies(t *testing.T) {
	const doc = `{"doc":{"_id":"a","type":"person"}}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, coding, body string
		status             int
		errContains        string
	}{
		{"gzip", "gzip", gz.String(), 415, `Content-Encoding "gzip"`},
		{"gzip in capitals", "GZIP", gz.String(), 415, `Content-Encoding "GZIP"`},
		{"br", "br", "\x1b\x00\x00", 415, `Content-Encoding "br"`},
		{"gzip listed after identity", "identity, gzip", gz.String(), 415, `"identity, gzip"`},
		{"identity", " Identity ", doc, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			h, err := outbound.NewHandler(outbound.HandlerConfig{
				Handle: func(context.Context, *outbound.Payload) error { calls.Add(1); return nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("POST", "/cht/push", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Encoding", tt.coding)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			m := checkJSONBody(t, rec)
			if tt.status != 200 {
				if msg, _ := m["error"].(string); !strings.Contains(msg, tt.errContains) || m["ok"] != false {
					t.Errorf("body = %v, want error containing %q", m, tt.errContains)
				}
				if calls.Load() != 0 {
					t.Errorf("Handle called for a refused body")
				}
			} else if calls.Load() != 1 {
				t.Errorf("Handle called %d times, want 1", calls.Load())
			}
		})
	}
}
