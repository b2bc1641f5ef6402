package fhirtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

func newClient(t *testing.T, cfg fhirtest.Config) (*fhirtest.Server, *fhirClient) {
	t.Helper()
	srv := fhirtest.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv, &fhirClient{base: srv.URL, hc: srv.Client()}
}

func mustDo(t *testing.T, c *fhirClient, method, path string, body any, hdr ...string) *response {
	t.Helper()
	resp, err := c.do(context.Background(), method, path, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// outcomeExpr returns the expression and text of the first issue of an OperationOutcome.
func outcomeExpr(b map[string]any) (expr, text string) {
	return str(b, "issue", "0", "expression", "0"), str(b, "issue", "0", "details", "text")
}

func TestInteractions(t *testing.T) {
	_, c := newClient(t, fhirtest.Config{})
	created := mustDo(t, c, http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","id":"p1","birthDate":"2020-01-02","_birthDate":{"extension":[{"url":"urn:x","valueString":"approx"}]},"meta":{"tag":[{"system":"urn:src","code":"cht"}]},"extension":[{"url":"urn:w","valueDecimal":37.50}]}`))
	if created.status != http.StatusCreated {
		t.Fatalf("seed create: %d %s", created.status, created.raw)
	}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		hdr        []string
		wantStatus int
		wantHeader map[string]string // header -> regexp
		wantBody   []string          // substrings of the raw body
		wantExpr   string            // OperationOutcome issue expression
	}{
		{name: "read", method: "GET", path: "/Patient/p1", wantStatus: 200,
			wantHeader: map[string]string{"ETag": `^W/"1"$`, "Content-Type": `^application/fhir\+json`, "Last-Modified": `GMT$`},
			wantBody:   []string{`"id":"p1"`, `"versionId":"1"`, `"_birthDate":{"extension"`, `"valueDecimal":37.50`, `"tag":[{"code":"cht","system":"urn:src"}]`}},
		{name: "vread current", method: "GET", path: "/Patient/p1/_history/1", wantStatus: 200, wantBody: []string{`"id":"p1"`}},
		{name: "vread other", method: "GET", path: "/Patient/p1/_history/7", wantStatus: 404},
		{name: "read missing", method: "GET", path: "/Patient/nope", wantStatus: 404, wantBody: []string{`"code":"not-found"`}},
		{name: "read bad id", method: "GET", path: "/Patient/bad%20id", wantStatus: 400, wantExpr: "Patient.id"},
		{name: "unknown type", method: "GET", path: "/Foo/1", wantStatus: 404, wantExpr: "Foo"},
		{name: "outside base", method: "GET", path: "/../other", wantStatus: 404},
		{name: "metadata", method: "GET", path: "/metadata", wantStatus: 200, wantBody: []string{`"fhirVersion":"4.0.1"`}},
		{name: "create assigns uuid", method: "POST", path: "/Patient", body: `{"resourceType":"Patient"}`, wantStatus: 201,
			wantHeader: map[string]string{"Location": `/fhir/R4/Patient/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/_history/1$`, "ETag": `^W/"1"$`}},
		{name: "create duplicate client id", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","id":"p1"}`, wantStatus: 400, wantExpr: "Patient.id"},
		{name: "create with json content type", method: "POST", path: "/Patient", body: `{"resourceType":"Patient"}`,
			hdr: []string{"Content-Type", "application/json; charset=utf-8"}, wantStatus: 201},
		{name: "create wrong content type", method: "POST", path: "/Patient", body: `{"resourceType":"Patient"}`,
			hdr: []string{"Content-Type", "text/plain"}, wantStatus: 415},
		{name: "create prefer minimal", method: "POST", path: "/Patient", body: `{"resourceType":"Patient"}`,
			hdr: []string{"Prefer", "return=minimal"}, wantStatus: 201, wantHeader: map[string]string{"Location": `/Patient/`}},
		{name: "create prefer outcome", method: "POST", path: "/Patient", body: `{"resourceType":"Patient"}`,
			hdr: []string{"Prefer", "return=OperationOutcome"}, wantStatus: 201, wantBody: []string{`"resourceType":"OperationOutcome"`}},
		{name: "update", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","active":true}`, wantStatus: 200,
			wantHeader: map[string]string{"ETag": `^W/"2"$`, "Location": `/Patient/p1/_history/2$`}, wantBody: []string{`"active":true`, `"versionId":"2"`}},
		{name: "update if-match stale", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1"}`,
			hdr: []string{"If-Match", `W/"1"`}, wantStatus: 412},
		{name: "update if-match current", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","active":false}`,
			hdr: []string{"If-Match", `W/"2"`}, wantStatus: 200, wantHeader: map[string]string{"ETag": `^W/"3"$`}},
		{name: "update creates", method: "PUT", path: "/Patient/p2", body: `{"resourceType":"Patient","id":"p2"}`, wantStatus: 200,
			wantHeader: map[string]string{"ETag": `^W/"1"$`}},
		{name: "update id mismatch", method: "PUT", path: "/Patient/p2", body: `{"resourceType":"Patient","id":"p3"}`, wantStatus: 400, wantExpr: "Patient.id"},
		{name: "update type mismatch", method: "PUT", path: "/Patient/p2", body: `{"resourceType":"Observation","id":"p2"}`, wantStatus: 400, wantExpr: "resourceType"},
		{name: "conditional update without search", method: "PUT", path: "/Patient", body: `{"resourceType":"Patient"}`, wantStatus: 400},
		{name: "delete", method: "DELETE", path: "/Patient/p2", wantStatus: 200, wantBody: []string{`"All OK"`}},
		{name: "read deleted", method: "GET", path: "/Patient/p2", wantStatus: 404},
		{name: "delete again", method: "DELETE", path: "/Patient/p2", wantStatus: 404},
		{name: "recreate continues versions", method: "PUT", path: "/Patient/p2", body: `{"resourceType":"Patient","id":"p2"}`, wantStatus: 200,
			wantHeader: map[string]string{"ETag": `^W/"3"$`}},
		{name: "patch not allowed", method: "PATCH", path: "/Patient/p1", body: `[]`, wantStatus: 405, wantHeader: map[string]string{"Allow": "PUT"}},
		{name: "GET base not allowed", method: "GET", path: "", wantStatus: 405},
		{name: "post search", method: "POST", path: "/Patient/_search", body: `_id=p1`, hdr: []string{"Content-Type", "application/x-www-form-urlencoded"},
			wantStatus: 200, wantBody: []string{`"total":1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = []byte(tt.body)
			}
			resp := mustDo(t, c, tt.method, tt.path, body, tt.hdr...)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.status, tt.wantStatus, resp.raw)
			}
			for h, re := range tt.wantHeader {
				if got := resp.header.Get(h); !regexp.MustCompile(re).MatchString(got) {
					t.Errorf("header %s = %q, want match %q", h, got, re)
				}
			}
			for _, s := range tt.wantBody {
				if !strings.Contains(string(resp.raw), s) {
					t.Errorf("body %s\nlacks %s", resp.raw, s)
				}
			}
			if tt.wantStatus >= 400 {
				if rt := str(resp.body, "resourceType"); rt != "OperationOutcome" {
					t.Errorf("error body is %q, want an OperationOutcome: %s", rt, resp.raw)
				}
				if expr, _ := outcomeExpr(resp.body); tt.wantExpr != "" && expr != tt.wantExpr {
					t.Errorf("issue expression %q, want %q (%s)", expr, tt.wantExpr, resp.raw)
				}
			}
		})
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name       string
		strict     bool
		body       string
		wantStatus int
		wantExpr   string
	}{
		{"valid", false, `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, 201, ""},
		{"not json", false, `{"resourceType"`, 400, "Observation"},
		{"trailing data", false, `{"resourceType":"Observation"} {}`, 400, "Observation"},
		{"array", false, `[{"resourceType":"Observation"}]`, 400, "Observation"},
		{"empty body", false, ``, 400, "Observation"},
		{"no resourceType", false, `{"status":"final"}`, 400, "resourceType"},
		{"unknown resourceType", false, `{"resourceType":"Observaton"}`, 400, "resourceType"},
		{"other resourceType", false, `{"resourceType":"Patient"}`, 400, "resourceType"},
		{"bad id", false, `{"resourceType":"Observation","id":"a b","status":"final","code":{"text":"x"}}`, 400, "Observation.id"},
		{"long id", false, `{"resourceType":"Observation","id":"` + strings.Repeat("a", 65) + `","status":"final","code":{"text":"x"}}`, 400, "Observation.id"},
		{"numeric id", false, `{"resourceType":"Observation","id":12,"status":"final","code":{"text":"x"}}`, 400, "Observation.id"},
		{"meta not object", false, `{"resourceType":"Observation","meta":[],"status":"final","code":{"text":"x"}}`, 400, "Observation.meta"},
		{"null nested", false, `{"resourceType":"Observation","status":"final","code":{"coding":[{"code":null}]}}`, 400, "Observation.code.coding[0].code"},
		{"missing code", false, `{"resourceType":"Observation","status":"final"}`, 400, "Observation.code"},
		{"empty code object", false, `{"resourceType":"Observation","status":"final","code":{}}`, 400, "Observation.code"},
		{"empty code nested", false, `{"resourceType":"Observation","status":"final","code":{"coding":[{}]}}`, 400, "Observation.code.coding[0]"},
		{"emptied code", false, `{"resourceType":"Observation","status":"final","code":{"coding":[{"code":""}]}}`, 400, "Observation.code"},
		{"empty dropped", false, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[],"category":[{"text":""}]}`, 201, ""},
		{"strict empty array", true, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[]}`, 400, "Observation.note"},
		{"strict empty string", true, `{"resourceType":"Observation","status":"final","code":{"text":"x","coding":[{"code":""}]}}`, 400, "Observation.code.coding[0].code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newClient(t, fhirtest.Config{Strict: tt.strict})
			var body any
			if tt.body != "" {
				body = []byte(tt.body)
			}
			resp := mustDo(t, c, http.MethodPost, "/Observation", body)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.raw)
			}
			if tt.wantStatus == 201 {
				if _, has := resp.body["note"]; has {
					t.Errorf("empty note kept: %s", resp.raw)
				}
				if _, has := resp.body["category"]; has {
					t.Errorf("empty category kept: %s", resp.raw)
				}
				return
			}
			if expr, _ := outcomeExpr(resp.body); expr != tt.wantExpr {
				t.Errorf("expression %q, want %q: %s", expr, tt.wantExpr, resp.raw)
			}
			if n := srv.Count("Observation"); n != 0 {
				t.Errorf("%d Observations stored after a rejected write", n)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{MaxBodyBytes: 64})
	small := mustDo(t, c, http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient"}`))
	big := mustDo(t, c, http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","name":[{"text":"`+strings.Repeat("x", 100)+`"}]}`))
	if small.status != 201 || big.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("small %d (want 201), big %d (want 413): %s", small.status, big.status, big.raw)
	}
	if str(big.body, "resourceType") != "OperationOutcome" || srv.Count("Patient") != 1 {
		t.Errorf("413 body %s, count %d", big.raw, srv.Count("Patient"))
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  fhirtest.Config
		want string // substring of the error; "" = valid
	}{
		{"zero", fhirtest.Config{}, ""},
		{"custom base", fhirtest.Config{BasePath: "/fhir"}, ""},
		{"root base", fhirtest.Config{BasePath: "/"}, ""},
		{"relative base", fhirtest.Config{BasePath: "fhir"}, "BasePath"},
		{"trailing slash", fhirtest.Config{BasePath: "/fhir/"}, "BasePath"},
		{"negative body", fhirtest.Config{MaxBodyBytes: -1}, "MaxBodyBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := fhirtest.NewHandler(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			case tt.want == "" && h.BasePath() != strings.TrimSuffix(map[bool]string{true: "/fhir/R4", false: tt.cfg.BasePath}[tt.cfg.BasePath == ""], "/"):
				t.Errorf("BasePath %q", h.BasePath())
			}
		})
	}
}

func TestRootBasePath(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{BasePath: "/"})
	if strings.HasSuffix(srv.URL, "/") {
		t.Errorf("URL %q ends with /", srv.URL)
	}
	if resp := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:s", "v")); resp.status != 201 {
		t.Fatalf("create at root base: %d %s", resp.status, resp.raw)
	}
	if srv.Count("Patient") != 1 {
		t.Errorf("count %d", srv.Count("Patient"))
	}
}

func TestNowAndLastUpdated(t *testing.T) {
	now := time.Date(2024, 10, 31, 6, 25, 50, 419_999_999, time.FixedZone("EAT", 3*3600))
	_, c := newClient(t, fhirtest.Config{Now: func() time.Time { return now }})
	resp := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:s", "v"))
	if got := str(resp.body, "meta", "lastUpdated"); got != "2024-10-31T03:25:50.419Z" {
		t.Errorf("lastUpdated %q, want UTC with milliseconds", got)
	}
	if got := resp.header.Get("Last-Modified"); got != "Thu, 31 Oct 2024 03:25:50 GMT" {
		t.Errorf("Last-Modified %q", got)
	}
}

func TestResourceJSONRoundTrip(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	in := `{"resourceType":"Observation","status":"final","code":{"text":"<b>&</b>"},"valueQuantity":{"value":37.50,"unit":"Cel"},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Zoë &amp; co</div>"}}`
	resp := mustDo(t, c, http.MethodPost, "/Observation", []byte(in))
	raw, ok := srv.Resource("Observation", str(resp.body, "id"))
	if !ok {
		t.Fatal("stored resource not found")
	}
	for _, want := range []string{`"value":37.50`, `"text":"<b>&</b>"`, `Zoë &amp; co</div>`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("stored %s lacks %s", raw, want)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("stored JSON invalid: %v", err)
	}
}

func TestServerConfigErrorAndConnections(t *testing.T) {
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "MaxBodyBytes") {
				t.Errorf("NewServer with a negative MaxBodyBytes: panic %v, want one naming MaxBodyBytes", r)
			}
		}()
		srv := fhirtest.NewServer(fhirtest.Config{MaxBodyBytes: -5})
		srv.Close()
	}()
	srv, c := newClient(t, fhirtest.Config{})
	mustDo(t, c, http.MethodGet, "/metadata", nil)
	srv.CloseClientConnections()
	if r := mustDo(t, c, http.MethodGet, "/metadata", nil); r.status != 200 {
		t.Errorf("request after CloseClientConnections: %d", r.status)
	}
}

// probeWriter is a ResponseWriter, hijackable like a server connection, that calls first once,
// just before the first byte of the answer is written or the connection is closed: there a client
// could first see the answer.
type probeWriter struct {
	*httptest.ResponseRecorder
	first func()
	once  sync.Once
}

func (p *probeWriter) WriteHeader(code int) {
	p.once.Do(p.first)
	p.ResponseRecorder.WriteHeader(code)
}

func (p *probeWriter) Write(b []byte) (int, error) {
	p.once.Do(p.first)
	return p.ResponseRecorder.Write(b)
}

func (p *probeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, peer := net.Pipe()
	_ = peer.Close()
	return &closeProbe{Conn: conn, onClose: func() { p.once.Do(p.first) }}, bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn)), nil
}

type closeProbe struct {
	net.Conn
	onClose func()
}

func (c *closeProbe) Close() error {
	c.onClose()
	return c.Conn.Close()
}

// A request is in Requests before its client can see the answer or the dropped connection, so a
// test that checks Requests right after a call never misses it.
func TestRequestLoggedBeforeAnswer(t *testing.T) {
	tests := []struct {
		name       string
		faults     fhirtest.Faults
		failNext   int
		method     string
		path       string
		wantStatus int
		wantFault  string
	}{
		{"read", fhirtest.Faults{}, 0, http.MethodGet, "/fhir/R4/metadata", 200, ""},
		{"write", fhirtest.Faults{}, 0, http.MethodPost, "/fhir/R4/Patient", 201, ""},
		{"unknown path", fhirtest.Faults{}, 0, http.MethodGet, "/elsewhere", 404, ""},
		{"failed write", fhirtest.Faults{}, 1, http.MethodPost, "/fhir/R4/Patient", 503, fhirtest.FaultFail},
		{"dropped connection", fhirtest.Faults{DropRate: 1}, 0, http.MethodPost, "/fhir/R4/Patient", 0, fhirtest.FaultDrop},
		{"server down", fhirtest.Faults{Down: true}, 0, http.MethodGet, "/fhir/R4/Patient", 0, fhirtest.FaultDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := fhirtest.NewHandler(fhirtest.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if err := h.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			h.FailNextWrites(tt.failNext, 0)
			var seen []fhirtest.Request
			probed := false
			w := &probeWriter{ResponseRecorder: httptest.NewRecorder(), first: func() { probed, seen = true, h.Requests() }}
			body, _ := json.Marshal(patient("urn:probe", "1"))
			r := httptest.NewRequest(tt.method, tt.path, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/fhir+json")
			h.ServeHTTP(w, r)
			if !probed {
				t.Fatal("the handler neither answered nor closed the connection")
			}
			if len(seen) != 1 || seen[0].Status != tt.wantStatus || seen[0].Fault != tt.wantFault {
				t.Errorf("requests logged when the answer started: %+v, want one with status %d fault %q", seen, tt.wantStatus, tt.wantFault)
			}
		})
	}
}

// TestIfMatch pins If-Match as the e2e server (@medplum/fhir-router 5.2.13) answers it, observed
// there by the "version-aware writes" scenario: a stale version is 412 on update, conditional
// update (repo.ts conditionalUpdate passes ifMatch to updateResource) and delete (deleteResource),
// single or in a Bundle; a value that is no quoted entity tag is ignored (fhirrouter.ts
// parseIfMatchHeader reads the first quoted string only).
func TestIfMatch(t *testing.T) {
	const stale, current = `W/"1"`, `W/"2"`
	tests := []struct {
		name    string
		method  string
		path    string // "" for a transaction of one entry
		ifMatch string
		want    int
		version string // the Patient's version afterwards; "" when deleted
	}{
		{"update, current version", http.MethodPut, "/Patient/p", current, 200, "3"},
		{"update, stale version", http.MethodPut, "/Patient/p", stale, 412, "2"},
		{"update, strong entity tag", http.MethodPut, "/Patient/p", `"1"`, 412, "2"},
		{"update, no entity tag is ignored", http.MethodPut, "/Patient/p", "1", 200, "3"},
		{"update, empty entity tag is ignored", http.MethodPut, "/Patient/p", `W/""`, 200, "3"},
		{"conditional update, stale version", http.MethodPut, "/Patient?identifier=urn:s|v", stale, 412, "2"},
		{"conditional update, current version", http.MethodPut, "/Patient?identifier=urn:s|v", current, 200, "3"},
		{"delete, stale version", http.MethodDelete, "/Patient/p", stale, 412, "2"},
		{"delete, current version", http.MethodDelete, "/Patient/p", current, 200, ""},
		{"transaction update, no entity tag is ignored", http.MethodPut, "", "1", 200, "3"},
		{"transaction delete, stale version", http.MethodDelete, "", stale, 412, "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := newClient(t, fhirtest.Config{})
			p := map[string]any{"resourceType": "Patient", "id": "p", "identifier": []any{map[string]any{"system": "urn:s", "value": "v"}}}
			mustDo(t, c, http.MethodPut, "/Patient/p", p)
			mustDo(t, c, http.MethodPut, "/Patient/p", p) // version 2
			var body any = p
			if tc.method == http.MethodDelete {
				body = nil
			}
			var resp *response
			if tc.path == "" {
				e := req(tc.method, "Patient/p", "ifMatch", tc.ifMatch)
				if body != nil {
					e["resource"] = body
				}
				resp = mustDo(t, c, http.MethodPost, "", bundleOf("transaction", e))
			} else {
				resp = mustDo(t, c, tc.method, tc.path, body, "If-Match", tc.ifMatch)
			}
			if resp.status != tc.want {
				t.Errorf("status %d, want %d: %s", resp.status, tc.want, resp.raw)
			}
			got := ""
			if raw, ok := srv.Resource("Patient", "p"); ok {
				var m map[string]any
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				got = str(m, "meta", "versionId")
			}
			if got != tc.version {
				t.Errorf("version afterwards %q, want %q", got, tc.version)
			}
		})
	}
}
