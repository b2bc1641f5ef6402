package openhimtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// routerFixture is a fake core, a mediator behind a channel and a client.
type routerFixture struct {
	srv      *Server
	mediator *httptest.Server
	mu       sync.Mutex
	lastReq  *http.Request
	lastBody string
}

func newRouterFixture(t testing.TB, v Version, handler http.HandlerFunc, mutate func(*openhim.Channel)) *routerFixture {
	t.Helper()
	return newRouterFixtureOf(t, Config{Version: v}, handler, mutate)
}

// newRouterFixtureOf is newRouterFixture for a core configured by cfg.
func newRouterFixtureOf(t testing.TB, cfg Config, handler http.HandlerFunc, mutate func(*openhim.Channel)) *routerFixture {
	t.Helper()
	f := &routerFixture{}
	f.srv = NewServer(cfg)
	t.Cleanup(f.srv.Close)
	f.mediator = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.lastReq, f.lastBody = r.Clone(r.Context()), string(b)
		f.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(f.mediator.Close)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(f.mediator.URL, "http://"))
	p, _ := strconv.Atoi(port)
	ch := openhim.Channel{
		Name: "test channel", URLPattern: "^/api/.*$", Allow: []string{"tester"},
		Methods: []string{"GET", "POST", "PUT", "PATCH", "DELETE"},
		Routes:  []openhim.Route{{Name: "mediator route", Host: host, Port: p, Primary: true}},
	}
	if mutate != nil {
		mutate(&ch)
	}
	if _, err := f.srv.AddChannel(ch); err != nil {
		t.Fatal(err)
	}
	f.srv.AddClient("client-1", "pw", "tester")
	return f
}

func (f *routerFixture) call(t *testing.T, method, path, user, pw, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.RouterURL+path, rd)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := routerTestClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var routerTestClient = &http.Client{Timeout: 20 * time.Second}

func envelope(mut func(m map[string]any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UTC().Format(time.RFC3339Nano)
		m := map[string]any{
			"x-mediator-urn": "urn:mediator:test",
			"status":         "Successful",
			"response": map[string]any{
				"status": 200, "headers": map[string]any{"content-type": "application/json"},
				"body": `{"ok":true}`, "timestamp": now,
			},
			"orchestrations": []any{map[string]any{
				"name": "fhir", "request": map[string]any{"method": "POST", "path": "/fhir", "timestamp": now},
				"response": map[string]any{"status": 201, "timestamp": now},
			}},
			"properties": map[string]any{"k": "v"},
		}
		if mut != nil {
			mut(m)
		}
		w.Header().Set("Content-Type", "application/json+openhim; charset=utf-8")
		json.NewEncoder(w).Encode(m)
	}
}

// §5.1–§5.2: the envelope's response is what the client gets; status,
// orchestrations (mediator's first, then core's own), properties stored
// (core's src/middleware/router.js, sendRequestToRoutes and
// setKoaResponse; src/middleware/messageStore.js, storeResponse).
func TestRouterMediatorResponse_S5(t *testing.T) {
	f := newRouterFixture(t, Version4, envelope(nil), nil)
	resp, body := f.call(t, http.MethodPost, "/api/patients?x=1", "client-1", "pw", `{"in":1}`)
	txID := resp.Header.Get(transactionIDHeader)
	// The envelope's content-type goes through Koa's type setter, which
	// adds mime-db's charset (see TestRouterKoaResponseHeaders).
	if resp.StatusCode != 200 || body != `{"ok":true}` || txID == "" || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("client got %d %q headers %v", resp.StatusCode, body, resp.Header)
	}
	f.mu.Lock()
	got := f.lastReq
	gotBody := f.lastBody
	f.mu.Unlock()
	if got.Header.Get(transactionIDHeader) != txID || got.Header.Get(clientIDHeader) != "client-1" ||
		got.Header.Get("Authorization") != "" || got.URL.Path != "/api/patients" || got.URL.RawQuery != "x=1" || gotBody != `{"in":1}` {
		t.Fatalf("mediator got %v %v body %q", got.URL, got.Header, gotBody)
	}
	txs := f.srv.Transactions()
	if len(txs) != 1 {
		t.Fatalf("transactions: %d", len(txs))
	}
	tx := txs[0]
	if tx.ID != txID || tx.Status != "Successful" || tx.Response.Status != 200 || tx.Response.Body != `{"ok":true}` ||
		tx.Properties["k"] != "v" || tx.MediatorURN != "urn:mediator:test" || tx.Request.Body != `{"in":1}` || tx.Request.Querystring != "x=1" {
		t.Fatalf("transaction %+v", tx)
	}
	if len(tx.Orchestrations) != 2 || tx.Orchestrations[0].Name != "fhir" || tx.Orchestrations[1].Name != "mediator route" ||
		tx.Orchestrations[1].Request.Path != "/api/patients?x=1" || tx.Orchestrations[1].Response.Status != 200 {
		t.Fatalf("orchestrations %+v", tx.Orchestrations)
	}
}

// §5.2 / §5.3: table of envelope variations and what core stores (core's
// src/middleware/router.js, setKoaResponse and handleServerError;
// src/middleware/messageStore.js, storeResponse and setFinalStatus).
func TestRouterEnvelopeRules_S5_2(t *testing.T) {
	tests := []struct {
		name          string
		version       Version
		mut           func(m map[string]any)
		clientStatus  int
		clientBody    string
		status        string
		storedBody    string
		metadataError bool
		metricsSkip   bool
		autoRetry     bool
	}{
		{"status overrides computed", Version4, func(m map[string]any) { m["status"] = "Completed with error(s)" }, 200, `{"ok":true}`, "Completed with error(s)", `{"ok":true}`, false, false, false},
		{"no status, 404 -> Completed", Version4, func(m map[string]any) {
			delete(m, "status")
			m["response"].(map[string]any)["status"] = 404
		}, 404, `{"ok":true}`, "Completed", `{"ok":true}`, false, false, false},
		{"no status, 503 -> Failed", Version4, func(m map[string]any) {
			delete(m, "status")
			m["response"].(map[string]any)["status"] = 503
		}, 503, `{"ok":true}`, "Failed", `{"ok":true}`, false, false, false},
		{"string status is parseInt-ed", Version4, func(m map[string]any) { m["response"].(map[string]any)["status"] = "201" }, 201, `{"ok":true}`, "Successful", `{"ok":true}`, false, false, false},
		{"object body stored as [object Object]", Version4, func(m map[string]any) { m["response"].(map[string]any)["body"] = map[string]any{"a": 1} }, 200, `{"a":1}`, "Successful", "[object Object]", false, false, false},
		{"no response.timestamp: no metrics", Version4, func(m map[string]any) { delete(m["response"].(map[string]any), "timestamp") }, 200, `{"ok":true}`, "Successful", `{"ok":true}`, false, true, false},
		{"error sets autoRetry", Version4, func(m map[string]any) { m["error"] = map[string]any{"message": "boom"} }, 200, `{"ok":true}`, "Successful", `{"ok":true}`, false, false, true},
		{"v4 stores orchestration without timestamp", Version4, func(m map[string]any) {
			m["orchestrations"] = []any{map[string]any{"name": "x", "request": map[string]any{}}}
		}, 200, `{"ok":true}`, "Successful", `{"ok":true}`, false, false, false},
		{"v8 drops metadata for orchestration without timestamp", Version8, func(m map[string]any) {
			m["orchestrations"] = []any{map[string]any{"name": "x", "request": map[string]any{}}}
		}, 200, `{"ok":true}`, "Successful", "", true, false, false},
		{"v8 drops metadata for orchestration without name", Version8, func(m map[string]any) {
			m["orchestrations"] = []any{map[string]any{"request": map[string]any{"timestamp": "2025-01-01T00:00:00Z"}}}
		}, 200, `{"ok":true}`, "Successful", "", true, false, false},
		{"unknown status code -> 500", Version4, func(m map[string]any) { m["response"].(map[string]any)["status"] = 42 }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		{"1xx status -> 500", Version4, func(m map[string]any) { m["response"].(map[string]any)["status"] = 101 }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		// core's setKoaResponse (src/middleware/router.js) assigns
		// response.status to ctx.response.status, parseInt-ing a string
		// only when !isNaN(status); Koa's status setter (lib/response.js:
		// koa 2.3.0 on 4.0.5 wants a code the statuses module lists, koa
		// 2.13/2.15 on 7.1/8.x an integer 100..999) throws otherwise, and
		// sendRequestToRoutes' catch calls handleServerError: 500 and an
		// error (so autoRetry) on the transaction.
		{"missing status -> 500", Version8, func(m map[string]any) { delete(m["response"].(map[string]any), "status") }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		{"null status -> 500", Version8, func(m map[string]any) { m["response"].(map[string]any)["status"] = nil }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		{"boolean status -> 500", Version4, func(m map[string]any) { m["response"].(map[string]any)["status"] = true }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		{"fractional status -> 500", Version8, func(m map[string]any) { m["response"].(map[string]any)["status"] = 200.5 }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		{"status \"200abc\" -> 500", Version8, func(m map[string]any) { m["response"].(map[string]any)["status"] = "200abc" }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		{"status \"\" -> 500", Version4, func(m map[string]any) { m["response"].(map[string]any)["status"] = "" }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		{"status \" 201 \" is parseInt-ed", Version8, func(m map[string]any) { m["response"].(map[string]any)["status"] = " 201 " }, 201, `{"ok":true}`, "Successful", `{"ok":true}`, false, false, false},
		{"status \"201.7\" is parseInt-ed", Version8, func(m map[string]any) { m["response"].(map[string]any)["status"] = "201.7" }, 201, `{"ok":true}`, "Successful", `{"ok":true}`, false, false, false},
		{"unlisted status 299 on 4.0.5 -> 500", Version4, func(m map[string]any) { m["response"].(map[string]any)["status"] = 299 }, 500, internalErrorBody, "Successful", internalErrorBody, false, false, true},
		{"status 509, listed by statuses 1.3.1, on 4.0.5 passes", Version4, func(m map[string]any) { m["response"].(map[string]any)["status"] = 509 }, 509, `{"ok":true}`, "Successful", `{"ok":true}`, false, false, false},
		{"unlisted status 299 on 8.x passes", Version8, func(m map[string]any) { m["response"].(map[string]any)["status"] = 299 }, 299, `{"ok":true}`, "Successful", `{"ok":true}`, false, false, false},
		{"unlisted status 299 on 7.1 passes", Version7, func(m map[string]any) { m["response"].(map[string]any)["status"] = 299 }, 299, `{"ok":true}`, "Successful", `{"ok":true}`, false, false, false},
		{"missing response -> 500 Failed", Version4, func(m map[string]any) { delete(m, "response"); delete(m, "status") }, 500, internalErrorBody, "Failed", internalErrorBody, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, envelope(tt.mut), nil)
			resp, body := f.call(t, http.MethodGet, "/api/x", "client-1", "pw", "")
			if resp.StatusCode != tt.clientStatus || body != tt.clientBody {
				t.Fatalf("client got %d %q, want %d %q", resp.StatusCode, body, tt.clientStatus, tt.clientBody)
			}
			tx := f.srv.Transactions()[0]
			stored := ""
			if tx.Response != nil {
				stored = tx.Response.Body
			}
			if tx.Status != tt.status || stored != tt.storedBody || (tx.MetadataError != "") != tt.metadataError ||
				tx.MetricsSkipped != tt.metricsSkip || tx.AutoRetry != tt.autoRetry {
				t.Fatalf("tx status %q body %q metadataError %q metricsSkipped %v autoRetry %v",
					tx.Status, stored, tx.MetadataError, tx.MetricsSkipped, tx.AutoRetry)
			}
		})
	}
}

// §5.5 and core's router: client auth, channel selection, 401/405, plain
// responses, path/pathTransform, body only for POST/PUT on 4.0.5 (core's
// src/middleware/basicAuthentication.js, authenticateUser;
// src/middleware/requestMatching.js; src/middleware/authorisation.js,
// authorise; src/middleware/router.js, isMethodAllowed, transformPath and
// sendHttpRequest).
func TestRouterRequestHandling_S5_5(t *testing.T) {
	plain := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Upstream", "1")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "plain "+r.URL.Path)
	}
	tests := []struct {
		name       string
		version    Version
		mutate     func(*openhim.Channel)
		method     string
		path       string
		user, pw   string
		body       string
		wantStatus int
		wantBody   string
		wantPath   string // path the mediator saw
		wantTx     string // stored status, "" = no transaction
		wantSent   string // body the mediator saw
	}{
		{"plain route", Version4, nil, "GET", "/api/a", "client-1", "pw", "", 202, "plain /api/a", "/api/a", "Successful", ""},
		{"bad password", Version4, nil, "GET", "/api/a", "client-1", "nope", "", 401, "", "", "", ""},
		{"no credentials", Version4, nil, "GET", "/api/a", "", "", "", 401, "", "", "", ""},
		{"no channel", Version4, nil, "GET", "/other", "client-1", "pw", "", 401, "", "", "", ""},
		{"public channel", Version4, func(c *openhim.Channel) { c.AuthType = "public"; c.Allow = nil }, "GET", "/api/a", "", "", "", 202, "plain /api/a", "/api/a", "Successful", ""},
		{"allowed by clientID", Version4, func(c *openhim.Channel) { c.Allow = []string{"client-1"} }, "GET", "/api/a", "client-1", "pw", "", 202, "plain /api/a", "/api/a", "Successful", ""},
		{"method not allowed", Version4, func(c *openhim.Channel) { c.Methods = []string{"POST"} }, "GET", "/api/a", "client-1", "pw", "", 405,
			"Request with method GET is not allowed. Only POST methods are allowed", "", "Processing", ""},
		{"route path", Version4, func(c *openhim.Channel) { c.Routes[0].Path = "/fixed" }, "GET", "/api/a", "client-1", "pw", "", 202, "plain /fixed", "/fixed", "Successful", ""},
		{"pathTransform", Version4, func(c *openhim.Channel) { c.Routes[0].PathTransform = "s/api/v2/g" }, "GET", "/api/a", "client-1", "pw", "", 202, "plain /v2/a", "/v2/a", "Successful", ""},
		{"v4 PATCH body not sent", Version4, nil, "PATCH", "/api/a", "client-1", "pw", "data", 202, "plain /api/a", "/api/a", "Successful", ""},
		{"v7 PATCH body not sent", Version7, nil, "PATCH", "/api/a", "client-1", "pw", "data", 202, "plain /api/a", "/api/a", "Successful", ""},
		{"v8 PATCH body sent", Version8, nil, "PATCH", "/api/a", "client-1", "pw", "data", 202, "plain /api/a", "/api/a", "Successful", "data"},
		{"PUT body sent", Version4, nil, "PUT", "/api/a", "client-1", "pw", "data", 202, "plain /api/a", "/api/a", "Successful", "data"},
		{"disabled channel", Version4, func(c *openhim.Channel) { c.Status = "disabled" }, "GET", "/api/a", "client-1", "pw", "", 401, "", "", "", ""},
		{"v8 async channel", Version8, func(c *openhim.Channel) { c.IsAsynchronousProcess = true }, "GET", "/api/a", "client-1", "pw", "", 202, "plain /api/a", "/api/a", "Pending Async", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, plain, tt.mutate)
			resp, body := f.call(t, tt.method, tt.path, tt.user, tt.pw, tt.body)
			if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
				t.Fatalf("client got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantStatus == 401 && resp.Header.Get("WWW-Authenticate") != "Basic" {
				t.Fatalf("401 without WWW-Authenticate: Basic")
			}
			f.mu.Lock()
			seen, sentBody := f.lastReq, f.lastBody
			f.mu.Unlock()
			if tt.wantPath == "" && seen != nil || tt.wantPath != "" && (seen == nil || seen.URL.Path != tt.wantPath || sentBody != tt.wantSent) {
				t.Fatalf("mediator saw %v body %q, want path %q body %q", seen, sentBody, tt.wantPath, tt.wantSent)
			}
			txs := f.srv.Transactions()
			if tt.wantTx == "" {
				if len(txs) != 0 {
					t.Fatalf("transaction recorded for a rejected request: %+v", txs)
				}
				return
			}
			if len(txs) != 1 || txs[0].Status != tt.wantTx {
				t.Fatalf("transactions %+v, want one with status %q", txs, tt.wantTx)
			}
			if tt.wantStatus == 202 && (resp.Header.Get("X-Upstream") != "1" || resp.Header.Get(transactionIDHeader) != txs[0].ID) {
				t.Fatalf("plain response headers not passed through: %v", resp.Header)
			}
		})
	}
}

// TestRouterReleases: in the Version8 profile, Config.Release routes as
// that release did: router.js sendHttpRequest writes a PATCH body from
// 8.4.2 only, and isAsynchronousProcess channels (src/model/channels.js)
// exist from 8.3.0.
func TestRouterReleases(t *testing.T) {
	tests := []struct {
		release, method string
		async           bool
		wantBody        string
		wantTx          string
	}{
		{"8.4.0", "PATCH", false, "", "Successful"},
		{"8.4.2", "PATCH", false, "data", "Successful"},
		{"8.2.0", "POST", true, "data", "Successful"},
		{"8.3.0", "POST", true, "data", "Pending Async"},
	}
	for _, tt := range tests {
		t.Run(tt.release+" "+tt.method, func(t *testing.T) {
			f := newRouterFixtureOf(t, Config{Version: Version8, Release: tt.release}, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, "ok")
			}, func(c *openhim.Channel) { c.IsAsynchronousProcess = tt.async })
			resp, body := f.call(t, tt.method, "/api/a", "client-1", "pw", "data")
			if resp.StatusCode >= 300 {
				t.Fatalf("client got %d %q", resp.StatusCode, body)
			}
			f.mu.Lock()
			sent := f.lastBody
			f.mu.Unlock()
			if sent != tt.wantBody {
				t.Errorf("mediator got body %q, want %q", sent, tt.wantBody)
			}
			if txs := f.srv.Transactions(); len(txs) != 1 || txs[0].Status != tt.wantTx {
				t.Errorf("transactions %+v, want one %s", txs, tt.wantTx)
			}
		})
	}
}

// TestRouterRouteCredentials: the Authorization header a mediator gets.
// router.js (constructOptionsObject, 4.0.5 to 8.5.0) drops the client's
// header unless the route forwards it, and sets options.auth only when
// the route has both a username and a password; node's http client sends
// options.auth only when the request carries no Authorization header, so
// a forwarded header wins.
func TestRouterRouteCredentials(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string
		forward    bool
		want       string // user:password the mediator got; "" for none
	}{
		{"route credentials", "med", "secret", false, "med:secret"},
		{"forwarded header wins", "med", "secret", true, "client-1:pw"},
		{"forwarded header", "", "", true, "client-1:pw"},
		{"username alone", "med", "", false, ""},
		{"password alone", "", "secret", false, ""},
		{"nothing", "", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, Version8, envelope(nil), func(c *openhim.Channel) {
				c.Routes[0].Username, c.Routes[0].Password, c.Routes[0].ForwardAuthHeader = tt.user, tt.pass, tt.forward
			})
			if resp, body := f.call(t, http.MethodGet, "/api/a", "client-1", "pw", ""); resp.StatusCode != http.StatusOK {
				t.Fatalf("client got %d %q", resp.StatusCode, body)
			}
			f.mu.Lock()
			seen := f.lastReq
			f.mu.Unlock()
			var got string
			if u, p, ok := seen.BasicAuth(); ok {
				got = u + ":" + p
			} else if h := seen.Header.Get("Authorization"); h != "" {
				t.Fatalf("Authorization %q is not basic", h)
			}
			if got != tt.want {
				t.Errorf("mediator got credentials %q, want %q", got, tt.want)
			}
		})
	}
}

// A route that cannot be reached: 500 for the client, Failed + error (core's
// src/middleware/router.js, sendRequestToRoutes' catch calls
// handleServerError; src/middleware/messageStore.js, setFinalStatus).
func TestRouterUnreachableRoute_S5_1(t *testing.T) {
	f := newRouterFixture(t, Version4, envelope(nil), func(c *openhim.Channel) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		c.Routes[0].Port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	})
	resp, body := f.call(t, http.MethodGet, "/api/x", "client-1", "pw", "")
	if resp.StatusCode != 500 || body != internalErrorBody {
		t.Fatalf("client got %d %q", resp.StatusCode, body)
	}
	tx := f.srv.Transactions()[0]
	if tx.Status != "Failed" || tx.Error == nil || !tx.AutoRetry || len(tx.Orchestrations) != 1 || tx.Orchestrations[0].Error == nil {
		t.Fatalf("tx %+v", tx)
	}
}

// §5.6: PUT /transactions/:id ($set and $push) through the API and helper.
func TestUpdateTransaction_S5_6(t *testing.T) {
	f := newRouterFixture(t, Version4, envelope(func(m map[string]any) { m["status"] = "Processing" }), nil)
	resp, _ := f.call(t, http.MethodGet, "/api/x", "client-1", "pw", "")
	id := resp.Header.Get(transactionIDHeader)
	c := &apiClient{base: f.srv.URL, hc: f.srv.Client(), user: RootUser, pass: RootPassword}
	r := c.do(t, http.MethodPut, "/transactions/"+id, map[string]any{
		"status":   "Successful",
		"response": map[string]any{"status": 200, "body": "done", "timestamp": "2025-01-01T00:00:00.000Z"},
		"$push":    map[string]any{"orchestrations": map[string]any{"$each": []any{map[string]any{"name": "later", "request": map[string]any{"timestamp": "2025-01-01T00:00:00.000Z"}}}}},
	})
	if r.Status != 200 || r.Body != "Transaction with ID: "+id+" successfully updated" {
		t.Fatalf("PUT: %d %q", r.Status, r.Body)
	}
	tx, _ := f.srv.Transaction(id)
	if tx.Status != "Successful" || tx.Response.Body != "done" || len(tx.Orchestrations) != 3 || tx.Orchestrations[2].Name != "later" || tx.Updates != 1 {
		t.Fatalf("after PUT: %+v", tx)
	}
	if err := f.srv.UpdateTransaction(id, map[string]any{"error": map[string]any{"message": "x"}}); err != nil {
		t.Fatal(err)
	}
	if tx, _ := f.srv.Transaction(id); !tx.AutoRetry || tx.Error.Message != "x" {
		t.Fatalf("error update: %+v", tx)
	}
	if r := c.do(t, http.MethodPut, "/transactions/000000000000000000000000", map[string]any{"status": "Failed"}); r.Status != 500 {
		t.Fatalf("unknown id: %d, want 500 (as 4.0.5)", r.Status)
	}
	var full []Transaction
	c.do(t, http.MethodGet, "/transactions?filterRepresentation=full", nil).json(t, &full)
	if len(full) != 1 || len(full[0].Orchestrations) != 3 {
		t.Fatalf("GET full: %+v", full)
	}
	var simple []map[string]any
	c.do(t, http.MethodGet, "/transactions", nil).json(t, &simple)
	if _, ok := simple[0]["orchestrations"]; ok || len(simple) != 1 {
		t.Fatalf("GET simple kept orchestrations: %v", simple)
	}
}

// TestGetTransactionsFullTruncate: GET /transactions with
// filterRepresentation=fulltruncate (core's src/api/transactions.js,
// getTransactions and truncateTransactionDetails, v4.0.5 and v8.5.0) cuts
// every body longer than api.truncateSize (15000) JavaScript characters -
// the request's, the response's, each route's and each orchestration's -
// to that length and appends api.truncateAppend ("\n[truncated ...]").
// Length is in UTF-16 code units, not bytes.
func TestGetTransactionsFullTruncate(t *testing.T) {
	long := strings.Repeat("a", 20000)
	wide := strings.Repeat("é", 10000) // 20000 bytes, 10000 characters: kept
	cut := long[:15000] + "\n[truncated ...]"
	secondary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, long)
	}))
	defer secondary.Close()
	secPort := serverPort(secondary.URL)
	f := newRouterFixture(t, Version4, envelope(func(m map[string]any) {
		m["response"].(map[string]any)["body"] = wide
		o := m["orchestrations"].([]any)[0].(map[string]any)
		o["request"].(map[string]any)["body"] = long
		o["response"].(map[string]any)["body"] = "short"
	}), func(c *openhim.Channel) {
		c.Routes = append(c.Routes, openhim.Route{Name: "copy", Host: "127.0.0.1", Port: secPort})
	})
	f.call(t, http.MethodPost, "/api/x", "client-1", "pw", long)
	c := &apiClient{base: f.srv.URL, hc: f.srv.Client(), user: RootUser, pass: RootPassword}
	var got []Transaction
	c.do(t, http.MethodGet, "/transactions?filterRepresentation=fulltruncate", nil).json(t, &got)
	if len(got) != 1 {
		t.Fatalf("transactions: %d", len(got))
	}
	tx := got[0]
	for _, b := range []struct {
		name, got, want string
	}{
		{"request", tx.Request.Body, cut},
		{"response", tx.Response.Body, wide},
		{"route response", tx.Routes[0].Response.Body, cut},
		{"orchestration request", tx.Orchestrations[0].Request.Body, cut},
		{"orchestration response", tx.Orchestrations[0].Response.Body, "short"},
		{"core's orchestration request", tx.Orchestrations[1].Request.Body, cut},
	} {
		if b.got != b.want {
			t.Errorf("%s body: %d bytes ending %q, want %d bytes", b.name, len(b.got), b.got[max(0, len(b.got)-20):], len(b.want))
		}
	}
	var full []Transaction
	c.do(t, http.MethodGet, "/transactions?filterRepresentation=full", nil).json(t, &full)
	if full[0].Request.Body != long || full[0].Orchestrations[0].Request.Body != long {
		t.Fatal("full representation cut bodies")
	}
}

// §5.3: secondary routes are recorded in routes[] and a secondary 5xx makes
// the computed status "Completed with error(s)" (core's
// src/middleware/router.js, sendRequestToRoutes and
// buildNonPrimarySendRequestPromise; src/middleware/messageStore.js,
// storeNonPrimaryResponse and setFinalStatus).
func TestRouterSecondaryRoutes_S5_3(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer failing.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(failing.URL, "http://"))
	p, _ := strconv.Atoi(port)
	f := newRouterFixture(t, Version4, envelope(func(m map[string]any) { delete(m, "status") }), func(c *openhim.Channel) {
		c.Routes = append(c.Routes, openhim.Route{Name: "audit copy", Host: host, Port: p})
	})
	resp, body := f.call(t, http.MethodPost, "/api/x?q=1", "client-1", "pw", "payload")
	if resp.StatusCode != 200 || body != `{"ok":true}` {
		t.Fatalf("client got %d %q", resp.StatusCode, body)
	}
	tx := f.srv.Transactions()[0]
	if tx.Status != "Completed with error(s)" || len(tx.Routes) != 1 || tx.Routes[0].Name != "audit copy" ||
		tx.Routes[0].Response.Status != 502 || tx.Routes[0].Request.Path != "/api/x" || tx.Routes[0].Request.Querystring != "q=1" {
		t.Fatalf("tx %+v routes %+v", tx, tx.Routes)
	}
	for _, tt := range []struct {
		code   int
		routes []RouteMetadata
		want   string
	}{
		{200, nil, "Successful"},
		{404, nil, "Completed"},
		{500, nil, "Failed"},
		{302, nil, "Completed"},
		{200, []RouteMetadata{{Response: &ResponseDef{Status: 500}}}, "Completed with error(s)"},
		{404, []RouteMetadata{{Response: &ResponseDef{Status: 201}}}, "Completed"},
		{200, []RouteMetadata{{Response: &ResponseDef{Status: 404}}}, "Completed"},
	} {
		if got := computeStatus(tt.code, tt.routes, "Processing"); got != tt.want {
			t.Errorf("computeStatus(%d, %v) = %q, want %q", tt.code, tt.routes, got, tt.want)
		}
	}
}

// TestRouterFailingSecondaryRoute: a secondary route that cannot be
// reached, or whose application/json+openhim answer does not parse, goes
// to the catch of core's buildNonPrimarySendRequestPromise
// (src/middleware/router.js): handleServerError(ctx, reason, routeObj)
// sets ctx.autoRetry on every version, and messageStore.js setFinalStatus
// stores it. Only from 7.1.0 does that catch push the route into
// ctx.routes, which setFinalStatus reads: on 4.0.5 the failed route is
// stored (storeNonPrimaryResponse, with status 500) but does not change
// the status core computes. An envelope without a response is parsed, in
// ctx.routes on every version, and stored with core's status 500.
func TestRouterFailingSecondaryRoute(t *testing.T) {
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", openhimContentType)
		io.WriteString(w, "{not json")
	}))
	defer notJSON.Close()
	noResponse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", openhimContentType)
		io.WriteString(w, `{"x-mediator-urn":"urn:mediator:other","status":"Successful"}`)
	}))
	defer noResponse.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	tests := []struct {
		name       string
		version    Version
		port       int
		wantStatus string
		wantRetry  bool
		wantError  bool
	}{
		{"unreachable on 4.0.5", Version4, closedPort, "Successful", true, true},
		{"unreachable on 7.1", Version7, closedPort, "Completed with error(s)", true, true},
		{"unreachable on 8.x", Version8, closedPort, "Completed with error(s)", true, true},
		{"envelope that does not parse on 4.0.5", Version4, serverPort(notJSON.URL), "Successful", true, true},
		{"envelope that does not parse on 8.x", Version8, serverPort(notJSON.URL), "Completed with error(s)", true, true},
		{"envelope without response on 4.0.5", Version4, serverPort(noResponse.URL), "Completed with error(s)", false, false},
		{"envelope without response on 8.x", Version8, serverPort(noResponse.URL), "Completed with error(s)", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, envelope(func(m map[string]any) { delete(m, "status") }), func(c *openhim.Channel) {
				c.Routes = append(c.Routes, openhim.Route{Name: "audit copy", Host: "127.0.0.1", Port: tt.port})
			})
			resp, body := f.call(t, http.MethodGet, "/api/x", "client-1", "pw", "")
			if resp.StatusCode != 200 || body != `{"ok":true}` {
				t.Fatalf("client got %d %q", resp.StatusCode, body)
			}
			tx := f.srv.Transactions()[0]
			if tx.Status != tt.wantStatus || tx.AutoRetry != tt.wantRetry {
				t.Fatalf("status %q autoRetry %v, want %q %v", tx.Status, tx.AutoRetry, tt.wantStatus, tt.wantRetry)
			}
			if len(tx.Routes) != 1 || tx.Routes[0].Response == nil || tx.Routes[0].Response.Status != 500 || (tx.Routes[0].Error != nil) != tt.wantError {
				t.Fatalf("routes %+v", tx.Routes)
			}
		})
	}
}

// TestRouterChannelBodiesNotStored: a channel with requestBody: false or
// responseBody: false keeps those bodies out of the transaction (core's
// src/middleware/messageStore.js, v4.0.5 and v8.5.0): storeTransaction
// stores the request body as ” and, for POST, PUT and PATCH, canRerun
// false; storeResponse stores the primary response body as ”;
// storeNonPrimaryResponse stores each secondary route's response body as
// ”. Orchestrations, the mediator's and core's own, keep their bodies,
// and the client still gets the whole answer.
func TestRouterChannelBodiesNotStored(t *testing.T) {
	secondary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "copy kept")
	}))
	defer secondary.Close()
	secPort := serverPort(secondary.URL)
	no, yes := false, true
	tests := []struct {
		name           string
		version        Version
		method         string
		reqBody, resp  *bool
		wantReq        string
		wantResp       string
		wantRouteResp  string
		wantCanRerun   bool
		wantOrchBodies bool
	}{
		{"defaults keep both", Version4, http.MethodPost, nil, nil, "payload", `{"ok":true}`, "copy kept", true, true},
		{"explicit true keeps both", Version8, http.MethodPost, &yes, &yes, "payload", `{"ok":true}`, "copy kept", true, true},
		{"requestBody false, POST", Version4, http.MethodPost, &no, nil, "", `{"ok":true}`, "copy kept", false, true},
		{"requestBody false, DELETE", Version8, http.MethodDelete, &no, nil, "", `{"ok":true}`, "copy kept", true, true},
		{"responseBody false", Version8, http.MethodPut, nil, &no, "payload", "", "", true, true},
		{"both false on 4.0.5", Version4, http.MethodPatch, &no, &no, "", "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, envelope(func(m map[string]any) {
				o := m["orchestrations"].([]any)[0].(map[string]any)
				o["request"].(map[string]any)["body"] = "orch in"
				o["response"].(map[string]any)["body"] = "orch out"
			}), func(c *openhim.Channel) {
				c.RequestBody, c.ResponseBody = tt.reqBody, tt.resp
				c.Routes = append(c.Routes, openhim.Route{Name: "copy", Host: "127.0.0.1", Port: secPort})
			})
			resp, body := f.call(t, tt.method, "/api/x", "client-1", "pw", "payload")
			if resp.StatusCode != 200 || body != `{"ok":true}` {
				t.Fatalf("client got %d %q", resp.StatusCode, body)
			}
			tx := f.srv.Transactions()[0]
			if tx.Request.Body != tt.wantReq || tx.Response.Body != tt.wantResp || tx.CanRerun != tt.wantCanRerun {
				t.Fatalf("stored request %q response %q canRerun %v, want %q %q %v",
					tx.Request.Body, tx.Response.Body, tx.CanRerun, tt.wantReq, tt.wantResp, tt.wantCanRerun)
			}
			if len(tx.Routes) != 1 || tx.Routes[0].Response.Body != tt.wantRouteResp {
				t.Fatalf("routes %+v, want response body %q", tx.Routes, tt.wantRouteResp)
			}
			if o := tx.Orchestrations[0]; o.Request.Body != "orch in" || o.Response.Body != "orch out" {
				t.Fatalf("mediator orchestration %+v", o)
			}
			// router.js sendRequest, buildOrchestration: core's own
			// orchestration of the primary route holds ctx.body (the
			// request's raw body, whatever the method) and the route's
			// whole answer, the envelope and its response body included.
			if o := tx.Orchestrations[1]; o.Request.Body != "payload" || !strings.Contains(o.Response.Body, `"body":"{\"ok\":true}"`) {
				t.Fatalf("core's orchestration request body %q response body %q", o.Request.Body, o.Response.Body)
			}
		})
	}
}

// TestRouterMaxBodiesSize: core stores at most MAX_BODIES_SIZE (15 MiB,
// api.maxBodiesSizeMB) of bodies per transaction. utils.js
// enforceMaxBodiesSize (v4.0.5 and v8.5.0) keeps a running total over the
// bodies in the order messageStore.js stores them - the request
// (storeTransaction: a cut request makes canRerun false), the response
// (storeResponse), the mediator's orchestrations, then core's own
// (truncateOrchestrationBodies: only non-empty bodies), then the secondary
// routes' responses (storeNonPrimaryResponse) - and cuts the body that
// goes over to what is left less the length of api.truncateAppend
// ("\n[truncated ...]"), then appends it, or stores only that text when
// less is left. The client still gets the whole answer.
func TestRouterMaxBodiesSize(t *testing.T) {
	const maxBodies = 15 << 20
	const marker = "\n[truncated ...]"
	mib := func(n float64) string { return strings.Repeat("a", int(n*(1<<20))) }
	cut := func(keep int) string { return strings.Repeat("a", keep-len(marker)) + marker }
	tests := []struct {
		name              string
		method            string
		request, response string
		orchBody          string
		wantReq, wantResp string
		wantOrchResp      string
		wantCoreReq       string
		wantCanRerun      bool
	}{
		{"core's orchestration cut", http.MethodPost, mib(4), mib(4), mib(4), mib(4), mib(4), mib(4), cut(3 << 20), true},
		{"response cut to what the request left", http.MethodPost, mib(10), mib(6), "x", mib(10), cut(5 << 20), marker, marker, true},
		{"orchestration cut", http.MethodPost, mib(5), mib(5), mib(6), mib(5), mib(5), cut(5 << 20), marker, true},
		{"request cut, nothing left", http.MethodPut, mib(16), "ok", "x", cut(maxBodies), marker, marker, marker, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, Version8, envelope(func(m map[string]any) {
				m["response"].(map[string]any)["body"] = tt.response
				o := m["orchestrations"].([]any)[0].(map[string]any)
				o["response"].(map[string]any)["body"] = tt.orchBody
			}), nil)
			resp, body := f.call(t, tt.method, "/api/x", "client-1", "pw", tt.request)
			if resp.StatusCode != 200 || body != tt.response {
				t.Fatalf("client got %d and %d bytes, want 200 and %d", resp.StatusCode, len(body), len(tt.response))
			}
			tx := f.srv.Transactions()[0]
			if tx.Request.Body != tt.wantReq || tx.CanRerun != tt.wantCanRerun {
				t.Errorf("stored request %d bytes canRerun %v, want %d %v", len(tx.Request.Body), tx.CanRerun, len(tt.wantReq), tt.wantCanRerun)
			}
			if tx.Response.Body != tt.wantResp {
				t.Errorf("stored response %d bytes, want %d", len(tx.Response.Body), len(tt.wantResp))
			}
			if got := tx.Orchestrations[0].Response.Body; got != tt.wantOrchResp {
				t.Errorf("mediator orchestration response %d bytes (ends %q), want %d", len(got), got[max(0, len(got)-20):], len(tt.wantOrchResp))
			}
			if got := tx.Orchestrations[1].Request.Body; got != tt.wantCoreReq {
				t.Errorf("core orchestration request %d bytes, want %d", len(got), len(tt.wantCoreReq))
			}
		})
	}
}

// TestJSSlice: enforceMaxBodiesSize cuts a string body with JavaScript's
// slice, which counts UTF-16 code units, not the bytes it measured.
func TestJSSlice(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 2, "ab"},
		{"abc", 5, "abc"},
		{"héllo", 2, "hé"},
		{"a😀b", 2, "a\uFFFD"},
		{"a😀b", 3, "a😀"},
		{"a😀b", 1, "a"},
	} {
		if got := jsSlice(tt.s, tt.n); got != tt.want {
			t.Errorf("jsSlice(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

// TestRouterAsyncChannelStatus: on core 8.3 and later a channel with
// isAsynchronousProcess has its transaction stored as Pending Async
// (src/middleware/messageStore.js, storeTransaction), its primary answer
// below 400 turned into 202 (storeResponse), and, when no mediator sets a
// status, setFinalStatus computes it from that tx.status: a 2xx with
// every secondary route 2xx stays Pending Async, a secondary 5xx makes it
// Completed with error(s), and what no rule matches keeps the stored
// Pending Async (only Processing falls back to Completed).
func TestRouterAsyncChannelStatus(t *testing.T) {
	codeServer := func(code int) int {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		return serverPort(srv.URL)
	}
	tests := []struct {
		name         string
		release      string
		primary      int
		secondary    int // 0: none
		wantCode     int
		wantInFlight string
		wantStatus   string
	}{
		{"2xx", "", 200, 0, 202, "Pending Async", "Pending Async"},
		{"2xx, secondary 5xx", "", 200, codeServer(503), 202, "Pending Async", "Completed with error(s)"},
		{"2xx, secondary 4xx keeps Pending Async", "", 200, codeServer(404), 202, "Pending Async", "Pending Async"},
		{"4xx", "", 404, 0, 404, "Pending Async", "Completed"},
		{"4xx, secondary 4xx keeps Pending Async", "", 404, codeServer(404), 404, "Pending Async", "Pending Async"},
		{"5xx", "", 500, 0, 500, "Pending Async", "Failed"},
		{"before 8.3 the flag is ignored", "8.2.0", 200, 0, 200, "Processing", "Successful"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f *routerFixture
			var seen atomic.Value
			f = newRouterFixtureOf(t, Config{Version: Version8, Release: tt.release}, func(w http.ResponseWriter, r *http.Request) {
				seen.Store(f.srv.Transactions()[0].Status)
				w.WriteHeader(tt.primary)
			}, func(c *openhim.Channel) {
				c.IsAsynchronousProcess = true
				if tt.secondary != 0 {
					c.Routes = append(c.Routes, openhim.Route{Name: "copy", Host: "127.0.0.1", Port: tt.secondary})
				}
			})
			resp, _ := f.call(t, http.MethodGet, "/api/x", "client-1", "pw", "")
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("client got %d, want %d", resp.StatusCode, tt.wantCode)
			}
			inFlight, _ := seen.Load().(string)
			if got := f.srv.Transactions()[0].Status; inFlight != tt.wantInFlight || got != tt.wantStatus {
				t.Fatalf("status %q while routing, %q after, want %q %q", inFlight, got, tt.wantInFlight, tt.wantStatus)
			}
		})
	}
}

// Transaction.Core4Crash flags what crashed the real 4.0.5 worker in the
// e2e runs: a final-status update (computed status or autoRetry).
func TestCore4CrashFlag(t *testing.T) {
	tests := []struct {
		name    string
		version Version
		mut     func(m map[string]any)
		want    bool
	}{
		{"status, no error: safe", Version4, nil, false},
		{"no status: computed", Version4, func(m map[string]any) { delete(m, "status") }, true},
		{"error with status: autoRetry", Version4, func(m map[string]any) { m["error"] = map[string]any{"message": "x"} }, true},
		{"Failed without error object: safe", Version4, func(m map[string]any) {
			m["status"] = "Failed"
			m["response"].(map[string]any)["status"] = 500
		}, false},
		{"only flagged on Version4", Version8, func(m map[string]any) { delete(m, "status") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, envelope(tt.mut), nil)
			f.call(t, http.MethodGet, "/api/x", "client-1", "pw", "")
			if got := f.srv.Transactions()[0].Core4Crash; got != tt.want {
				t.Fatalf("Core4Crash = %v, want %v", got, tt.want)
			}
		})
	}
}

// PUT /channels/:id changes a channel; a disabled channel no longer routes
// (core's src/api/channels.js, updateChannel: validateMethod on the stored
// channel with the body set; src/middleware/requestMatching.js matches
// enabled channels only).
func TestUpdateChannel(t *testing.T) {
	f := newRouterFixture(t, Version4, envelope(nil), nil)
	c := &apiClient{base: f.srv.URL, hc: f.srv.Client(), user: RootUser, pass: RootPassword}
	id := f.srv.Channels()[0].ID
	if r := c.do(t, http.MethodPut, "/channels/"+id, map[string]any{"status": "disabled"}); r.Status != 200 || r.Body != "The channel was successfully updated" {
		t.Fatalf("PUT: %d %q", r.Status, r.Body)
	}
	if resp, _ := f.call(t, http.MethodGet, "/api/x", "client-1", "pw", ""); resp.StatusCode != 401 {
		t.Fatalf("disabled channel routed: %d", resp.StatusCode)
	}
	if r := c.do(t, http.MethodPut, "/channels/"+id, map[string]any{"status": "enabled", "methods": []any{"GET", "GET"}}); r.Status != 400 {
		t.Fatalf("repeated methods: %d %q", r.Status, r.Body)
	}
	if ch := f.srv.Channels()[0]; ch.Status != "disabled" || ch.Name != "test channel" || len(ch.Routes) != 1 {
		t.Fatalf("channel after rejected update: %+v", ch)
	}
}

// POST /channels casts numeric strings like Mongoose does (core's
// src/api/channels.js, addChannel: new ChannelModel(channelData) casts the
// route's port to a Number before save).
func TestAddChannelCastsPort(t *testing.T) {
	_, c := newFake(t, Config{Version: Version4})
	r := c.do(t, http.MethodPost, "/channels", map[string]any{"name": "cast", "urlPattern": "^/c$",
		"routes": []any{map[string]any{"name": "r", "host": "h", "port": "8080", "primary": true}}})
	if r.Status != 201 {
		t.Fatalf("numeric string port: %d %q", r.Status, r.Body)
	}
	r = c.do(t, http.MethodPost, "/channels", map[string]any{"name": "cast2", "urlPattern": "^/c$",
		"routes": []any{map[string]any{"name": "r", "host": "h", "port": "x", "primary": true}}})
	if r.Status != 400 || r.Body != `Could not add channel via the API: ValidationError: routes.0.port: Cast to Number failed for value "x" at path "port"` {
		t.Fatalf("bad port: %d %q", r.Status, r.Body)
	}
}

// FuzzRouterEnvelope feeds arbitrary application/json+openhim bodies to the
// router: it must answer (never panic or hang) and store the transaction.
func FuzzRouterEnvelope(f *testing.F) {
	f.Add(`{"status":"Successful","response":{"status":200,"body":"x","timestamp":"2025-01-01T00:00:00Z"}}`)
	f.Add(`{"response":{"status":"abc","headers":{"set-cookie":["a=1","b=2"],"location":"/x"},"body":{"a":[1,2]}}}`)
	f.Add(`{"response":{"status":302,"headers":null},"orchestrations":[null,{"name":1,"request":{"timestamp":5}}],"properties":[]}`)
	f.Add(`{"response":{"status":1e9},"error":"not an object"}`)
	f.Add(`not json`)
	f.Add(`{"status":"Successful","response":{"status":200,"timestamp":1e300},"orchestrations":[{"name":"a","request":{"timestamp":-1e300}}]}`)
	var mu sync.Mutex
	var payload string
	fx := newRouterFixture(f, Version8, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		p := payload
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json+openhim")
		io.WriteString(w, p)
	}, nil)
	f.Fuzz(func(t *testing.T, body string) {
		mu.Lock()
		payload = body
		mu.Unlock()
		fx.srv.mu.Lock()
		fx.srv.txs = nil // keep each execution O(1)
		fx.srv.mu.Unlock()
		resp, _ := fx.call(t, http.MethodGet, "/api/fuzz", "client-1", "pw", "")
		// Core 8's Koa (2.13+, lib/response.js set status) takes any
		// integer 100-999 and Node's writeHead sends it; the fake refuses
		// 1xx (TestRouterEnvelopeRules_S5_2).
		if resp.StatusCode < 200 || resp.StatusCode > 999 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		txs := fx.srv.Transactions() // also checks that it can be copied
		if len(txs) != 1 || txs[0].Status == "" || txs[0].Response == nil && txs[0].MetadataError == "" {
			t.Fatalf("transaction not stored: %+v", txs)
		}
		if _, err := json.Marshal(txs[0]); err != nil {
			t.Fatal(err)
		}
	})
}

// Channel fields the fake does not interpret survive POST and GET.
func TestChannelExtraFields(t *testing.T) {
	_, c := newFake(t, Config{Version: Version4})
	c.do(t, http.MethodPost, "/channels", map[string]any{"name": "extra", "urlPattern": "^/e$", "rewriteUrls": true,
		"alerts": []any{map[string]any{"condition": "status", "status": "500"}},
		"routes": []any{map[string]any{"name": "r", "host": "h", "port": 1, "primary": true}}})
	var got []map[string]any
	c.do(t, http.MethodGet, "/channels", nil).json(t, &got)
	if len(got) != 1 || got[0]["rewriteUrls"] != true || got[0]["alerts"] == nil || got[0]["updatedBy"] == nil {
		t.Fatalf("GET /channels = %v", got)
	}
}

// TestMaxTransactions: with Config.MaxTransactions the server keeps only
// the most recent transactions, oldest forgotten first.
func TestMaxTransactions(t *testing.T) {
	f := newRouterFixture(t, Version8, envelope(nil), nil)
	f.srv.cfg.MaxTransactions = 4 // set before any request
	for i := range 9 {
		if resp, _ := f.call(t, http.MethodGet, "/api/"+strconv.Itoa(i), "client-1", "pw", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	txs := f.srv.Transactions()
	if len(txs) < 2 || len(txs) > 4 {
		t.Fatalf("kept %d transactions, want 2-4", len(txs))
	}
	for i, tx := range txs {
		if want := "/api/" + strconv.Itoa(9-len(txs)+i); tx.Request.Path != want {
			t.Errorf("transaction %d is %s, want %s (the most recent, in order)", i, tx.Request.Path, want)
		}
	}
}

// TestChannelMaxBodyAgeDays: core's isMaxBodyDaysValid (src/api/channels.js,
// v4.0.5 to v8.5.0) - maxBodyAgeDays needs requestBody or responseBody
// true and 0 < maxBodyAgeDays < 36500. addChannel checks the request body;
// updateChannel the stored channel with the body set on it, so a default
// channel POST /mediators/:urn/channels installed (that route does not
// check) cannot be PUT back. updateChannel's findById and set run outside
// its try: an unknown id is Koa's plain 500 "Internal Server Error".
func TestChannelMaxBodyAgeDays(t *testing.T) {
	const msg = "Channel property maxBodyAgeDays has to be a number that's valid and requestBody or responseBody must be true."
	channel := func(extra map[string]any) map[string]any {
		c := map[string]any{"name": "c", "urlPattern": "^/a$", "methods": []any{"GET"}, "allow": []any{"x"},
			"routes": []any{map[string]any{"name": "r", "type": "http", "host": "h", "port": 80, "primary": true}}}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	post := []struct {
		name  string
		extra map[string]any
		want  int
	}{
		{"no requestBody or responseBody", map[string]any{"maxBodyAgeDays": 30}, 400},
		{"requestBody false", map[string]any{"maxBodyAgeDays": 30, "requestBody": false}, 400},
		{"36500", map[string]any{"maxBodyAgeDays": 36500, "requestBody": true}, 400},
		{"0", map[string]any{"maxBodyAgeDays": 0, "requestBody": true}, 400},
		{"string (body is checked uncast)", map[string]any{"maxBodyAgeDays": "30", "requestBody": true}, 400},
		{"36499 with responseBody", map[string]any{"maxBodyAgeDays": 36499, "responseBody": true}, 201},
		{"null", map[string]any{"maxBodyAgeDays": nil}, 201},
	}
	for _, v := range []Version{Version4, Version8} {
		for _, tt := range post {
			t.Run(fmt.Sprintf("v%d/POST %s", v, tt.name), func(t *testing.T) {
				_, c := newFake(t, Config{Version: v})
				r := c.do(t, http.MethodPost, "/channels", channel(tt.extra))
				if r.Status != tt.want || (tt.want == 400 && r.Body != msg) {
					t.Fatalf("POST /channels: %d %q, want %d", r.Status, r.Body, tt.want)
				}
			})
		}
		t.Run(fmt.Sprintf("v%d/PUT of an installed default channel", v), func(t *testing.T) {
			srv, c := newFake(t, Config{Version: v})
			med := testMediator("urn:m", "1.0.0")
			med["defaultChannelConfig"].([]any)[0].(map[string]any)["maxBodyAgeDays"] = 30
			if r := c.do(t, http.MethodPost, "/mediators", med); r.Status != 201 {
				t.Fatalf("register: %d %q", r.Status, r.Body)
			}
			if r := c.do(t, http.MethodPost, "/mediators/urn:m/channels", []any{}); r.Status != 201 {
				t.Fatalf("install: %d %q", r.Status, r.Body)
			}
			id := srv.Channels()[0].ID
			if r := c.do(t, http.MethodPut, "/channels/"+id, map[string]any{"status": "enabled"}); r.Status != 400 || r.Body != msg {
				t.Fatalf("PUT: %d %q, want 400 %q", r.Status, r.Body, msg)
			}
			if r := c.do(t, http.MethodPut, "/channels/"+id, map[string]any{"requestBody": true, "maxBodyAgeDays": "30"}); r.Status != 200 {
				t.Fatalf("PUT with requestBody: %d %q, want 200 (the stored channel is cast)", r.Status, r.Body)
			}
		})
		t.Run(fmt.Sprintf("v%d/PUT of an unknown id", v), func(t *testing.T) {
			_, c := newFake(t, Config{Version: v})
			if r := c.do(t, http.MethodPut, "/channels/0123456789abcdef01234567", map[string]any{"name": "x"}); r.Status != 500 || r.Body != "Internal Server Error" {
				t.Fatalf("PUT: %d %q, want 500 \"Internal Server Error\"", r.Status, r.Body)
			}
		})
	}
}

// TestRouterKoaResponseHeaders: core's setKoaResponse (src/middleware/router.js)
// applies a content-type header with ctx.response.type = value - Koa's type
// setter (lib/response.js) runs mime-types' contentType, which adds the
// charset of mime-db (core 4.0.5 locks mime-db 1.30.0, which has no
// application/fhir+json; 7.1.0 locks 1.44.0, 8.5.0 1.52.0) or utf-8 for
// text/* - and a location header on a 3xx answer with
// ctx.response.redirect(value): Koa sets Location, turns a status that is
// not a redirect status (304) into 302 and replaces the body (HTML when
// the client accepts html, text otherwise); core stores that body.
func TestRouterKoaResponseHeaders(t *testing.T) {
	tests := []struct {
		name     string
		version  Version
		headers  map[string]any
		status   int
		accept   string
		wantCode int
		wantType string
		wantBody string
		wantLoc  string
	}{
		{name: "json gets a charset", version: Version4, headers: map[string]any{"content-type": "application/json"},
			wantCode: 200, wantType: "application/json; charset=utf-8"},
		{name: "fhir+json on 8.x", version: Version8, headers: map[string]any{"content-type": "application/fhir+json"},
			wantCode: 200, wantType: "application/fhir+json; charset=utf-8"},
		{name: "fhir+json on 7.1", version: Version7, headers: map[string]any{"content-type": "application/fhir+json"},
			wantCode: 200, wantType: "application/fhir+json; charset=utf-8"},
		{name: "fhir+json on 4.0.5 (mime-db 1.30 lacks it)", version: Version4, headers: map[string]any{"content-type": "application/fhir+json"},
			wantCode: 200, wantType: "application/fhir+json"},
		{name: "text/* gets utf-8", version: Version8, headers: map[string]any{"content-type": "text/csv"},
			wantCode: 200, wantType: "text/csv; charset=utf-8"},
		{name: "a charset given is kept", version: Version8, headers: map[string]any{"content-type": "application/json; charset=latin1"},
			wantCode: 200, wantType: "application/json; charset=latin1"},
		{name: "xml gets none", version: Version8, headers: map[string]any{"content-type": "application/xml"},
			wantCode: 200, wantType: "application/xml"},
		{name: "303 with location, no Accept: HTML body", version: Version8, headers: map[string]any{"location": "/next"}, status: 303,
			wantCode: 303, wantType: "text/html; charset=utf-8", wantBody: `Redirecting to <a href="/next">/next</a>.`, wantLoc: "/next"},
		{name: "301 with location, Accept json: text body", version: Version4, headers: map[string]any{"location": "/next"}, status: 301,
			accept: "application/json", wantCode: 301, wantType: "text/plain; charset=utf-8", wantBody: "Redirecting to /next.", wantLoc: "/next"},
		{name: "304 with location becomes 302", version: Version8, headers: map[string]any{"location": "/n"}, status: 304,
			wantCode: 302, wantType: "text/html; charset=utf-8", wantBody: `Redirecting to <a href="/n">/n</a>.`, wantLoc: "/n"},
		{name: "location on a 200 is a plain header", version: Version8, headers: map[string]any{"location": "/n"},
			wantCode: 200, wantBody: `{"ok":true}`, wantLoc: "/n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, envelope(func(m map[string]any) {
				r := m["response"].(map[string]any)
				r["headers"] = tt.headers
				if tt.status != 0 {
					r["status"] = tt.status
				}
			}), nil)
			req, _ := http.NewRequest(http.MethodGet, f.srv.RouterURL+"/api/x", nil)
			req.SetBasicAuth("client-1", "pw")
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tt.wantType)
			}
			if tt.wantBody != "" && string(b) != tt.wantBody {
				t.Errorf("body %q, want %q", b, tt.wantBody)
			}
			if resp.Header.Get("Location") != tt.wantLoc {
				t.Errorf("Location %q, want %q", resp.Header.Get("Location"), tt.wantLoc)
			}
			if tt.wantBody != "" {
				if tx := f.srv.Transactions()[0]; tx.Response == nil || tx.Response.Body != tt.wantBody || tx.Response.Status != tt.wantCode {
					t.Errorf("stored response %+v, want %d %q", tx.Response, tt.wantCode, tt.wantBody)
				}
			}
		})
	}
}

// TestRouterEnvelopeWithoutBody: core's setKoaResponse
// (src/middleware/router.js, v4.0.5 and v8.5.0) assigns response.body to
// ctx.response.body even when the envelope has none. Koa's body setter
// (lib/response.js, koa 2.3.0 on core 4.0.5 and 2.15.0 on 8.5.0) turns a
// null or undefined body into a 204 unless the status is already an empty
// one (204, 205, 304), and drops Content-Type; messageStore.js
// storeResponse then stores status 204 and an empty body, and Koa's
// respond sends no body. A location on a 3xx then goes through Koa's
// redirect with that 204, which is no redirect status: 302.
func TestRouterEnvelopeWithoutBody(t *testing.T) {
	tests := []struct {
		name     string
		version  Version
		mut      func(r map[string]any)
		wantCode int
		wantBody string
	}{
		{"missing body on 4.0.5", Version4, func(r map[string]any) { delete(r, "body") }, 204, ""},
		{"null body on 8.x", Version8, func(r map[string]any) { r["body"] = nil }, 204, ""},
		{"missing body with 201", Version8, func(r map[string]any) { delete(r, "body"); r["status"] = 201 }, 204, ""},
		{"missing body with 404", Version4, func(r map[string]any) { delete(r, "body"); r["status"] = 404 }, 204, ""},
		{"missing body with 304 stays 304", Version8, func(r map[string]any) { delete(r, "body"); r["status"] = 304 }, 304, ""},
		{"missing body, 301 with location: 302", Version8, func(r map[string]any) {
			delete(r, "body")
			r["status"] = 301
			r["headers"] = map[string]any{"location": "/next"}
		}, 302, `Redirecting to <a href="/next">/next</a>.`},
		{"empty string body keeps its status", Version8, func(r map[string]any) { r["body"] = ""; r["status"] = 201 }, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, envelope(func(m map[string]any) {
				delete(m, "status")
				tt.mut(m["response"].(map[string]any))
			}), nil)
			req, _ := http.NewRequest(http.MethodGet, f.srv.RouterURL+"/api/x", nil)
			req.SetBasicAuth("client-1", "pw")
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || string(b) != tt.wantBody {
				t.Fatalf("client got %d %q, want %d %q", resp.StatusCode, b, tt.wantCode, tt.wantBody)
			}
			if tt.wantCode == http.StatusNoContent && resp.Header.Get("Content-Type") != "" {
				t.Errorf("204 with Content-Type %q", resp.Header.Get("Content-Type"))
			}
			tx := f.srv.Transactions()[0]
			if tx.Response == nil || tx.Response.Status != tt.wantCode || tx.Response.Body != tt.wantBody {
				t.Fatalf("stored response %+v, want %d %q", tx.Response, tt.wantCode, tt.wantBody)
			}
			want := computeStatus(tt.wantCode, nil, "Processing")
			if tx.Status != want {
				t.Fatalf("status %q, want %q (computed from the %d core stores)", tx.Status, want, tt.wantCode)
			}
		})
	}
}

// TestRouterSetCookie: core's setKoaResponse (src/middleware/router.js)
// hands a set-cookie header to setCookiesOnContext, which walks the value
// as an array (Node's form for a plain route's answer) and sets each
// cookie cookie 0.3.1 parses from it with koa's cookies module: path,
// domain and expires are options, pairs without "=" (HttpOnly) are
// dropped, and the header is rewritten ("; path=/"). A string is walked
// character by character: its "=" parses to a cookie without a name, and
// the module's TypeError ("argument name is invalid") reaches
// handleServerError, so the client gets 500 for a mediator's success.
func TestRouterSetCookie(t *testing.T) {
	tests := []struct {
		name     string
		cookie   any
		wantCode int
		want     []string
	}{
		{"array", []any{"a=1; Path=/; HttpOnly", "b=2"}, 200, []string{"a=1; path=/", "b=2"}},
		{"expires and domain", []any{"c=3; Expires=Wed, 09 Jun 2027 10:18:14 GMT; Domain=example.org"}, 200,
			[]string{"c=3; expires=Wed, 09 Jun 2027 10:18:14 GMT; domain=example.org"}},
		{"max-age and httponly are options", []any{"d=4; Max-Age=0; HttpOnly=1"}, 200, []string{"d=4; httponly"}},
		{"secure over the plain router", []any{"e=5; Secure=1"}, 500, nil},
		{"string", "AWSALB=abc; Path=/", 500, nil},
		{"string without =", "abc", 200, nil},
	}
	for _, v := range []Version{Version4, Version8} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("v%d/%s", v, tt.name), func(t *testing.T) {
				f := newRouterFixture(t, v, envelope(func(m map[string]any) {
					m["response"].(map[string]any)["headers"] = map[string]any{"set-cookie": tt.cookie}
				}), nil)
				req, _ := http.NewRequest(http.MethodGet, f.srv.RouterURL+"/api/x", nil)
				req.SetBasicAuth("client-1", "pw")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.wantCode {
					t.Fatalf("status %d %q, want %d", resp.StatusCode, b, tt.wantCode)
				}
				if tt.wantCode == 500 && string(b) != internalErrorBody {
					t.Errorf("body %q, want %q", b, internalErrorBody)
				}
				if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, tt.want) {
					t.Errorf("Set-Cookie %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// TestRouterRefusedEchoesBody: core's src/koaMiddleware.js rawBodyReader
// sets ctx.body to the request's raw body before requestMatching and
// authorisation (src/middleware/authorisation.js, authorise), which only
// set the status (404 "Channel not found" from 7.0.1, 401 otherwise): Koa
// sends the request's own body back as application/octet-stream. No
// transaction is stored.
func TestRouterRefusedEchoesBody(t *testing.T) {
	tests := []struct {
		name     string
		version  Version
		path, pw string
		body     string
		want     int
	}{
		{"no channel on 8.x", Version8, "/not-a-channel", "pw", "request body", 404},
		{"no channel on 4.0.5", Version4, "/not-a-channel", "pw", "request body", 401},
		{"wrong password", Version8, "/api/x", "wrong", "request body", 401},
		{"wrong password, no body", Version4, "/api/x", "wrong", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, envelope(nil), nil)
			resp, body := f.call(t, http.MethodPost, tt.path, "client-1", tt.pw, tt.body)
			if resp.StatusCode != tt.want || body != tt.body {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.want, tt.body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("Content-Type %q, want application/octet-stream (Koa's type for a Buffer body)", ct)
			}
			if n := len(f.srv.Transactions()); n != 0 {
				t.Errorf("%d transactions stored, want none", n)
			}
		})
	}
}

// TestRouterWaitPrimaryResponse: core 8's src/middleware/router.js,
// sendRequestToRoutes, runs a secondary route with waitPrimaryResponse after
// the primary one and only when matchCodeOfPrimaryResponse accepts the
// status of the answer: no statusCodesCheck accepts all; a listed number
// must equal it; the first code with a '*' decides alone by its first
// character. A skipped route leaves no routes[] entry. Core 4.0.5 has no
// such fields: the route runs like any other.
func TestRouterWaitPrimaryResponse(t *testing.T) {
	var calls atomic.Int32
	sec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer sec.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(sec.URL, "http://"))
	p, _ := strconv.Atoi(port)
	tests := []struct {
		name    string
		version Version
		primary int
		check   string
		runs    bool
	}{
		{"no check", Version8, 200, "", true},
		{"5** skips a 200", Version8, 200, "5**", false},
		{"5** runs on a 503", Version8, 503, "5**", true},
		{"listed code", Version8, 201, "404,201", true},
		{"code not listed", Version8, 200, "404,201", false},
		{"the first wildcard decides", Version8, 201, "4**,201", false},
		{"4.0.5 ignores the fields", Version4, 200, "5**", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			f := newRouterFixture(t, tt.version, envelope(func(m map[string]any) {
				m["response"].(map[string]any)["status"] = tt.primary
			}), func(c *openhim.Channel) {
				c.Routes = append(c.Routes, openhim.Route{Name: "gated", Type: "http", Host: host, Port: p,
					WaitPrimaryResponse: true, StatusCodesCheck: tt.check})
			})
			resp, _ := f.call(t, http.MethodGet, "/api/x", "client-1", "pw", "")
			if resp.StatusCode != tt.primary {
				t.Fatalf("client got %d, want %d", resp.StatusCode, tt.primary)
			}
			if ran := calls.Load() == 1; ran != tt.runs {
				t.Errorf("secondary called %d times, want it to run: %v", calls.Load(), tt.runs)
			}
			if n := len(f.srv.Transactions()[0].Routes); (n == 1) != tt.runs {
				t.Errorf("%d routes[] entries, want the route recorded: %v", n, tt.runs)
			}
		})
	}
}

// TestRouterMatchContent: core's src/middleware/requestMatching.js,
// matchContent (every version): a channel with matchContentRegex matches
// only a request whose raw body the regexp finds (unanchored); with
// matchContentJson and matchContentValue, only one whose JSON has that value
// at the path (getJSONValByString); with a match expression but no value,
// no request. An unmatched request is 404 from 7.0.1 (401 on 4.0.5).
func TestRouterMatchContent(t *testing.T) {
	tests := []struct {
		name    string
		version Version
		extra   map[string]any
		body    string
		want    int
	}{
		{"regex matches", Version8, map[string]any{"matchContentRegex": "Patient"}, `{"resourceType":"Patient"}`, 200},
		{"regex does not match", Version8, map[string]any{"matchContentRegex": "Patient"}, `{"resourceType":"Observation"}`, 404},
		{"regex does not match on 4.0.5", Version4, map[string]any{"matchContentRegex": "^Patient$"}, `{"resourceType":"Patient"}`, 401},
		{"json path matches", Version8, map[string]any{"matchContentJson": "subject.ids[1]", "matchContentValue": "b"}, `{"subject":{"ids":["a","b"]}}`, 200},
		{"json number as string", Version8, map[string]any{"matchContentJson": "n", "matchContentValue": "5"}, `{"n":5}`, 200},
		{"json path other value", Version8, map[string]any{"matchContentJson": "n", "matchContentValue": "6"}, `{"n":5}`, 404},
		{"json path, body not JSON", Version8, map[string]any{"matchContentJson": "n", "matchContentValue": "5"}, `n=5`, 404},
		{"expression without value", Version8, map[string]any{"matchContentJson": "n"}, `{"n":5}`, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, envelope(nil), func(c *openhim.Channel) {
				c.Methods = []string{"POST"}
				if v, ok := tt.extra["matchContentRegex"].(string); ok {
					c.MatchContentRegex = v
				}
				if v, ok := tt.extra["matchContentJson"].(string); ok {
					c.MatchContentJSON = v
				}
				if v, ok := tt.extra["matchContentValue"].(string); ok {
					c.MatchContentValue = v
				}
			})
			resp, _ := f.call(t, http.MethodPost, "/api/x", "client-1", "pw", tt.body)
			if resp.StatusCode != tt.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// serverPort is the port of an httptest server's URL.
func serverPort(rawURL string) int {
	n, _ := strconv.Atoi(portOf(strings.TrimPrefix(rawURL, "http://")))
	return n
}

// TestRouterForwardsChunkedBody: core's router (src/middleware/router.js,
// constructOptionsObject) forwards the client's headers, Content-Length or
// Transfer-Encoding: chunked, so a body the client sent chunked reaches the
// route chunked, without a Content-Length.
func TestRouterForwardsChunkedBody(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%t", chunked), func(t *testing.T) {
			f := newRouterFixture(t, Version8, envelope(nil), nil)
			var body io.Reader = strings.NewReader("payload")
			if chunked {
				body = io.MultiReader(body) // no length known: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, f.srv.RouterURL+"/api/x", body)
			req.SetBasicAuth("client-1", "pw")
			resp, err := routerTestClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			f.mu.Lock()
			got, gotBody := f.lastReq, f.lastBody
			f.mu.Unlock()
			wantLength, wantTE := int64(len("payload")), []string(nil)
			if chunked {
				wantLength, wantTE = -1, []string{"chunked"}
			}
			if got.ContentLength != wantLength || !slices.Equal(got.TransferEncoding, wantTE) || gotBody != "payload" {
				t.Errorf("route got Content-Length %d, Transfer-Encoding %v, body %q; want %d, %v, %q",
					got.ContentLength, got.TransferEncoding, gotBody, wantLength, wantTE, "payload")
			}
		})
	}
}
