package soak

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// The inbound credentials the example mediators of TestHostileExamples
// require: basic auth as an OpenHIM route sends it, or a bearer token as a
// CHT outbound destination can send it.
const (
	routeUser   = "openhim-route"
	routeSecret = "route-Secret-4e7a1c9d"
	routeToken  = "token-Secret-9b2f6d0a"
	chtPassword = "cht-Secret-71d3e8a5"
)

// hostileBody is the body limit of the examples in TestHostileExamples.
const hostileBody = 64 << 10

// buildExamples builds the example mediators that serve HTTP, as a user
// builds them (backfill serves nothing: it is a command that reads CHT and
// writes FHIR), and returns the binaries by name.
func buildExamples(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "../"+n)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	bins := map[string]string{}
	for _, n := range names {
		bins[n] = filepath.Join(dir, n)
	}
	return bins
}

// startExample runs bin standalone with env (MEDIATOR_* variables of the
// caller's environment are dropped) and waits until /healthz answers. It
// returns the base URL and the process's output.
func startExample(t *testing.T, bin string, env map[string]string) (string, *secretLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	cmd := exec.Command(bin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MEDIATOR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	env["MEDIATOR_LISTEN"] = addr
	env["MEDIATOR_OPENHIM_URL"] = ""
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs := new(secretLog)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, logs
			}
		}
		select {
		case <-done:
			t.Fatalf("%s exited: %s", filepath.Base(bin), logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer /healthz: %s", filepath.Base(bin), logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// padding is added to answers when a row asks for a huge one: JSON
// whitespace, so the answer stays valid, only larger than any cut.
var padding = bytes.Repeat([]byte(" "), 9<<20)

// padBefore returns data with padding before its last '}'.
func padBefore(data []byte) []byte {
	i := bytes.LastIndexByte(data, '}')
	if i < 0 {
		return data
	}
	return append(append(append([]byte(nil), data[:i]...), padding...), data[i:]...)
}

// upstream records what reaches passthrough's upstream.
type upstream struct {
	mu    sync.Mutex
	calls []*http.Request
	huge  atomic.Bool
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.calls = append(u.calls, r)
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if u.huge.Load() {
		_, _ = w.Write(padBefore([]byte(`{"ok":true}`)))
		return
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.calls)
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[len(u.calls)-1]
}

// endpoint is a route of an example and a request it answers 2xx.
type endpoint struct {
	example, method, path string
	contentType           string
	valid                 string // a body it accepts
	first, again          int    // the status of the first and of a repeated valid request
	json                  bool   // the route reads a JSON body
}

// hostileRow is one attack on one endpoint and the status it must get.
type hostileRow struct {
	name   string
	ep     endpoint
	target string // the request-target, sent as is (dot-segments kept); "" is ep.path
	auth   string // "basic" (the default), "bearer", "wrong" or "none"
	header http.Header
	body   string
	ctype  string // "" is ep.contentType
	chunk  bool   // send the body chunked, without Content-Length
	setup  func() // before the request (e.g. to make an answer huge)
	status int
	check  func(t *testing.T, resp *http.Response, body []byte)
}

// TestHostileExamples runs the example mediators that serve HTTP
// (cht-to-fhir, fhir-to-cht, passthrough), built from source and configured
// through MEDIATOR_* variables with inbound credentials and a 64 KiB body
// limit, and sends every endpoint every attack: no or wrong credentials,
// dot-segments, oversized bodies of each transfer encoding, malformed
// JSON, a wrong content type, invalid ids, NUL and control characters,
// invalid UTF-8, caller credential headers, and huge answers from the
// FHIR server or the upstream. Each row states the status the attack must
// get. The processes' logs must not hold the secrets.
func TestHostileExamples(t *testing.T) {
	bins := buildExamples(t, "cht-to-fhir", "fhir-to-cht", "passthrough")

	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1,
		Users: []chttest.User{{Name: chttest.AdminUsername, Password: chtPassword, Roles: []string{chttest.RoleDBAdmin}}}})
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	// The FHIR server as the examples reach it: answers padded past any
	// cut while hugeFHIR is set.
	var hugeFHIR atomic.Bool
	fhirURL, err := url.Parse(fhirSrv.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(fhirURL)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !hugeFHIR.Load() || resp.StatusCode/100 != 2 {
			return nil
		}
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		data = padBefore(data)
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(data)), int64(len(data))
		resp.Header.Set("Content-Length", fmt.Sprint(len(data)))
		return nil
	}
	fhirFront := httptest.NewServer(proxy)
	t.Cleanup(fhirFront.Close)
	up := new(upstream)
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)

	common := func(more map[string]string) map[string]string {
		env := map[string]string{
			"MEDIATOR_AUTH_USERNAME":    routeUser,
			"MEDIATOR_AUTH_PASSWORD":    routeSecret,
			"MEDIATOR_AUTH_TOKEN":       routeToken,
			"MEDIATOR_MAX_BODY_BYTES":   fmt.Sprint(hostileBody),
			"MEDIATOR_LOG_LEVEL":        "debug",
			"MEDIATOR_PUBLIC_HOST":      "127.0.0.1",
			"MEDIATOR_CHT_URL":          chtSrv.URL,
			"MEDIATOR_CHT_USERNAME":     chttest.AdminUsername,
			"MEDIATOR_CHT_PASSWORD":     chtPassword,
			"MEDIATOR_OBSERVATION_FORM": "HEIGHT_WEIGHT",
			"MEDIATOR_FHIR_URL":         fhirFront.URL,
			"MEDIATOR_UPSTREAM_URL":     upSrv.URL + "/base",
			"MEDIATOR_PARENT_PLACE":     chttest.DemoHouseholdID,
			"MEDIATOR_UPSTREAM_TIMEOUT": "20s",
		}
		for k, v := range more {
			env[k] = v
		}
		return env
	}
	bases, logs := map[string]string{}, map[string]*secretLog{}
	for name, bin := range bins {
		bases[name], logs[name] = startExample(t, bin, common(nil))
	}

	medic := chtSrv.URL + "/medic"
	subject := `{"identifier":{"system":"` + medic + `","value":"` + chttest.DemoPatientID + `"}}`
	patient := func(id, name string) string {
		idMember := ""
		if id != "" {
			idMember = `"id":"` + id + `",`
		}
		return `{"resourceType":"Patient",` + idMember + `"identifier":[{"system":"https://emr.example.org/patient-id","value":"H-` + id + `"}],"name":[{"text":` + name + `}]}`
	}
	fhirJSON := "application/fhir+json"
	eps := []endpoint{
		{"cht-to-fhir", "POST", "/cht/outbound", "application/json", `{"id":"` + chttest.DemoPatientID + `"}`, 200, 200, true},
		{"cht-to-fhir", "POST", "/cht/encounter", "application/json", `{"id":"hostile-enc-1","patient_uuid":"` + chttest.DemoPatientID +
			`","reported_date":1730355950419,"observations":[{"code":"malaria_rdt","valueCode":"positive"}]}`, 200, 200, true},
		{"fhir-to-cht", "POST", "/fhir/Patient", fhirJSON, patient("hp1", `"Ann Hostile"`), 201, 200, true},
		{"fhir-to-cht", "PUT", "/fhir/Patient/hp2", fhirJSON, patient("hp2", `"Bea Hostile"`), 201, 200, true},
		{"fhir-to-cht", "POST", "/fhir/ServiceRequest", fhirJSON, `{"resourceType":"ServiceRequest","id":"hsr1","status":"active","intent":"order","subject":` + subject + `}`, 201, 200, true},
		{"fhir-to-cht", "PUT", "/fhir/ServiceRequest/hsr2", fhirJSON, `{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":` + subject + `}`, 201, 200, true},
		{"fhir-to-cht", "POST", "/fhir/Task", fhirJSON, `{"resourceType":"Task","id":"ht1","status":"requested","intent":"order","for":` + subject + `}`, 201, 200, true},
		{"fhir-to-cht", "PUT", "/fhir/Task/ht2", fhirJSON, `{"resourceType":"Task","status":"requested","intent":"order","for":` + subject + `}`, 201, 200, true},
		{"fhir-to-cht", "POST", "/fhir/Observation", fhirJSON, `{"resourceType":"Observation","id":"ho1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},` +
			`"subject":` + subject + `,"effectiveDateTime":"2026-11-20T10:00:00Z","valueQuantity":{"value":61.5,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, 201, 200, true},
		{"fhir-to-cht", "PUT", "/fhir/Observation/ho2", fhirJSON, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},` +
			`"subject":` + subject + `,"effectiveDateTime":"2026-11-20T10:00:00Z","valueQuantity":{"value":168,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}`, 201, 200, true},
		{"fhir-to-cht", "POST", "/fhir", fhirJSON, `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patient("hp4", `"Dee Hostile"`) +
			`,"request":{"method":"POST","url":"Patient"}}]}`, 200, 200, true},
		{"fhir-to-cht", "POST", "/fhir/Bundle", fhirJSON, `{"resourceType":"Bundle","type":"batch","entry":[{"resource":` + patient("hp5", `"Eve Hostile"`) +
			`,"request":{"method":"POST","url":"Patient"}}]}`, 200, 200, true},
		{"passthrough", "POST", "/passthrough/records", "application/json", `{"any":"thing"}`, 200, 200, false},
		{"passthrough", "GET", "/passthrough/records?x=1", "", "", 200, 200, false},
	}

	big := `{"pad":"` + strings.Repeat("a", 2*hostileBody) + `"}`
	var rows []hostileRow
	for _, ep := range eps {
		withBody := ep.method != "GET"
		rows = append(rows,
			hostileRow{name: "no credentials", ep: ep, auth: "none", body: ep.valid, status: 401, check: challenged},
			hostileRow{name: "wrong password", ep: ep, auth: "wrong", body: ep.valid, status: 401, check: challenged},
			hostileRow{name: "basic credentials", ep: ep, body: ep.valid, status: ep.first},
			hostileRow{name: "bearer token", ep: ep, auth: "bearer", body: ep.valid, status: ep.again},
		)
		if withBody {
			rows = append(rows,
				hostileRow{name: "oversized body with Content-Length", ep: ep, body: big, status: 413, check: sizeNamed},
				hostileRow{name: "oversized chunked body", ep: ep, body: big, chunk: true, status: 413, check: sizeNamed},
			)
		}
		if ep.json {
			valid := ep.valid
			i := strings.LastIndex(valid, `"`)
			rows = append(rows,
				hostileRow{name: "malformed JSON", ep: ep, body: valid[:len(valid)/2], status: 400},
				hostileRow{name: "wrong content type", ep: ep, ctype: "text/plain", body: valid, status: 415},
				hostileRow{name: "NUL in a string", ep: ep, body: valid[:i] + `\u0000` + valid[i:], status: 400},
				hostileRow{name: "invalid UTF-8 in a string", ep: ep, body: valid[:i] + "\xff\xfe" + valid[i:], status: 400},
				// Bodies are not decoded: a compressed one is refused
				// naming the header, not answered as malformed JSON.
				hostileRow{name: "gzip-encoded body", ep: ep, header: http.Header{"Content-Encoding": {"gzip"}}, body: gzipped(t, valid),
					status: 415, check: names(`Content-Encoding \"gzip\"`)},
			)
		}
	}
	f2c := func(method, path string) endpoint {
		for _, ep := range eps {
			if ep.method == method && ep.path == path {
				return ep
			}
		}
		panic(path)
	}
	pt, ptGet := eps[len(eps)-2], eps[len(eps)-1]
	upBefore := 0
	rows = append(rows,
		// Dot-segments: passthrough refuses them before going upstream
		// (400); the other mediators' router (net/http's ServeMux) cleans
		// the path and redirects (307) without calling a handler: nothing
		// is written either way.
		hostileRow{name: "dot-segments", ep: ptGet, target: "/passthrough/../../etc/passwd", status: 400, setup: func() { upBefore = up.count() },
			check: func(t *testing.T, _ *http.Response, _ []byte) {
				assert.Equal(t, upBefore, up.count(), "nothing upstream")
			}},
		hostileRow{name: "encoded dot-segments", ep: ptGet, target: "/passthrough/%2e%2e/%2E%2E/etc/passwd", status: 400},
		hostileRow{name: "double-encoded dot-segments", ep: ptGet, target: "/passthrough/%252e%252e/etc", status: 400},
		hostileRow{name: "dot-segment behind an encoded slash", ep: ptGet, target: "/passthrough/..%2f..%2fetc", status: 400},
		hostileRow{name: "dot-segments", ep: f2c("POST", "/fhir/Patient"), target: "/fhir/Patient/../../cht/outbound", body: patient("hp3", `"C"`), status: 307},
		hostileRow{name: "dot-segments", ep: eps[0], target: "/cht/outbound/../../fhir/Patient", body: eps[0].valid, status: 307},
		// The passthrough forwards bodies as they come, encoded ones too.
		hostileRow{name: "gzip-encoded body is forwarded", ep: pt, header: http.Header{"Content-Encoding": {"gzip"}}, body: gzipped(t, pt.valid), status: 200},
		hostileRow{name: "oversized chunked body reaches nothing upstream", ep: pt, body: big, chunk: true, status: 413,
			setup: func() { upBefore = up.count() },
			check: func(t *testing.T, _ *http.Response, _ []byte) {
				assert.Equal(t, upBefore, up.count(), "nothing upstream")
			}},
		hostileRow{name: "caller credential headers", ep: pt, body: pt.valid, status: 200,
			header: http.Header{"Cookie": {"AuthSession=caller"}, "Proxy-Authorization": {"Basic Y2FsbGVyOnNlY3JldA=="}},
			check: func(t *testing.T, _ *http.Response, _ []byte) {
				r := up.last()
				assert.Equal(t, "/base/passthrough/records", r.URL.Path)
				for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
					assert.Empty(t, r.Header.Values(h), "%s forwarded upstream", h)
				}
			}},
		hostileRow{name: "huge upstream answer", ep: ptGet, status: 200, setup: func() { up.huge.Store(true) },
			check: func(t *testing.T, _ *http.Response, body []byte) {
				up.huge.Store(false)
				assert.Equal(t, len(padding)+len(`{"ok":true}`), len(body), "the answer passed whole")
			}},
		// A transaction stored by the FHIR server whose answer is past
		// any cut is a success, not a failure the sender retries forever.
		hostileRow{name: "huge FHIR answer to a stored transaction", ep: eps[1], body: strings.Replace(eps[1].valid, "hostile-enc-1", "hostile-enc-2", 1),
			status: 200, setup: func() { hugeFHIR.Store(true) },
			check: func(t *testing.T, _ *http.Response, _ []byte) { hugeFHIR.Store(false) }},
		// fhir-to-cht reads a referenced Patient; a huge answer is a FHIR
		// server failure (502, retried), said as such.
		hostileRow{name: "huge FHIR answer to a Patient read", ep: f2c("POST", "/fhir/ServiceRequest"), status: 502,
			body: `{"resourceType":"ServiceRequest","id":"hsr3","status":"active","intent":"order","subject":{"reference":"Patient/hostile-read"}}`,
			setup: func() {
				hugeFHIR.Store(true)
				req, _ := http.NewRequest(http.MethodPut, fhirSrv.URL+"/Patient/hostile-read", strings.NewReader(`{"resourceType":"Patient","id":"hostile-read"}`))
				req.Header.Set("Content-Type", fhirJSON)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
			},
			check: func(t *testing.T, _ *http.Response, body []byte) {
				hugeFHIR.Store(false)
				assert.Contains(t, string(body), "more than")
			}},
	)
	// Invalid ids on every fhir-to-cht route that takes one, in the URL
	// and in the body.
	for _, ep := range eps {
		if ep.example != "fhir-to-cht" || !strings.Contains(ep.valid, `"resourceType":"`) || ep.path == "/fhir" || ep.path == "/fhir/Bundle" {
			continue
		}
		rt := strings.TrimPrefix(ep.path, "/fhir/")
		if ep.method == "PUT" {
			rt, _, _ = strings.Cut(rt, "/")
			for _, id := range []string{"_design", strings.Repeat("a", 70), "a%00b", "..%2F..%2F_users"} {
				rows = append(rows, hostileRow{name: "URL id " + id, ep: ep, target: "/fhir/" + rt + "/" + id, body: ep.valid, status: 400, check: names(rt + ".id")})
			}
			continue
		}
		for _, id := range []string{"_design", strings.Repeat("a", 70), `a\u0000b`, "../../_users"} {
			body := strings.Replace(ep.valid, `"resourceType":"`+rt+`"`, `"resourceType":"`+rt+`","id":"`+id+`"`, 1)
			body = strings.Replace(body, `"id":"h`, `"x":"h`, 1) // the row's id only
			rows = append(rows, hostileRow{name: "body id " + id, ep: ep, body: body, status: 400, check: names(rt + ".id")})
		}
	}
	// /metrics wants the credentials; the probes stay open.
	for name := range bins {
		rows = append(rows,
			hostileRow{name: "metrics without credentials", ep: endpoint{example: name, method: "GET", path: "/metrics"}, auth: "none", status: 401, check: challenged},
			hostileRow{name: "metrics", ep: endpoint{example: name, method: "GET", path: "/metrics"}, status: 200},
			hostileRow{name: "healthz without credentials", ep: endpoint{example: name, method: "GET", path: "/healthz"}, auth: "none", status: 200},
		)
	}

	client := &http.Client{Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, row := range rows {
		target := row.target
		if target == "" {
			target = row.ep.path
		}
		t.Run(row.ep.example+" "+row.ep.method+" "+row.ep.path+" "+row.name, func(t *testing.T) {
			if row.setup != nil {
				row.setup()
			}
			var body io.Reader = strings.NewReader(row.body)
			if row.chunk {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, err := http.NewRequestWithContext(context.Background(), row.ep.method, bases[row.ep.example], body)
			require.NoError(t, err)
			req.URL.Opaque = target // sent as is: no cleaning of dot-segments
			ctype := row.ctype
			if ctype == "" {
				ctype = row.ep.contentType
			}
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			for k, v := range row.header {
				req.Header[k] = v
			}
			switch row.auth {
			case "", "basic":
				req.SetBasicAuth(routeUser, routeSecret)
			case "bearer":
				req.Header.Set("Authorization", "Bearer "+routeToken)
			case "wrong":
				req.SetBasicAuth(routeUser, routeSecret+"x")
			}
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			answer, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, row.status, resp.StatusCode, "%.400s", answer)
			ctype = resp.Header.Get("Content-Type")
			if strings.HasPrefix(ctype, mediator.ContentType) {
				// Called directly, the mediator answers with the envelope
				// core unwraps; the caller behind core gets its response.
				env, err := mediator.ParseEnvelope(answer)
				require.NoError(t, err)
				assert.Equal(t, resp.StatusCode, env.Response.Status)
				ctype, answer = env.Response.Headers["Content-Type"], []byte(env.Response.Body)
			}
			if resp.StatusCode >= 400 && row.ep.example == "fhir-to-cht" && row.status != 401 {
				assert.Equal(t, fhirJSON+"; charset=utf-8", ctype, "an OperationOutcome: %.300s", answer)
				assert.Contains(t, string(answer), `"resourceType":"OperationOutcome"`)
			}
			assert.NotContains(t, string(answer), "\ufffd", "nothing turned into U+FFFD")
			if row.check != nil {
				row.check(t, resp, answer)
			}
		})
	}
	for name, l := range logs {
		for _, secret := range []string{routeSecret, routeToken, chtPassword} {
			assert.NotContains(t, l.String(), secret, "%s logged a secret", name)
		}
	}
}

// challenged checks a 401 says how to authenticate.
func challenged(t *testing.T, resp *http.Response, _ []byte) {
	assert.NotEmpty(t, resp.Header.Get("WWW-Authenticate"), "401 without WWW-Authenticate")
}

// sizeNamed checks a 413 says what is too large.
func sizeNamed(t *testing.T, _ *http.Response, body []byte) {
	assert.True(t, mentionsAny(string(body), []string{"large", "limit", "bytes"}), "%s", body)
}

// gzipped returns s compressed with gzip.
func gzipped(t *testing.T, s string) string {
	var b strings.Builder
	zw := gzip.NewWriter(&b)
	_, err := io.WriteString(zw, s)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.String()
}

// names checks the answer names the element.
func names(expr string) func(*testing.T, *http.Response, []byte) {
	return func(t *testing.T, _ *http.Response, body []byte) {
		assert.Contains(t, string(body), expr)
	}
}
