package mediator_test

// Smoke e2e test against the real OpenHIM core started by .ci/stack.sh (openhim-core 4.0.5 on FerretDB).
// It uses plain net/http on purpose: it checks the harness and the wire protocol, not the library.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type e2eCore struct {
	api, router        string
	username, password string
	client             *http.Client
}

// e2eCoreFromEnv reads the core's endpoints from the environment, or skips the test when they are not set.
func e2eCoreFromEnv(t *testing.T) *e2eCore {
	t.Helper()
	api := strings.TrimRight(os.Getenv("OPENHIM_API_URL"), "/")
	router := strings.TrimRight(os.Getenv("OPENHIM_ROUTER_URL"), "/")
	if api == "" || router == "" {
		t.Skip("OPENHIM_API_URL / OPENHIM_ROUTER_URL not set; run the stack with `bash .ci/stack.sh start` (see .ci/README.md)")
	}
	c := &e2eCore{
		api:      api,
		router:   router,
		username: os.Getenv("OPENHIM_USERNAME"),
		password: os.Getenv("OPENHIM_PASSWORD"),
		client: &http.Client{
			Timeout: 15 * time.Second,
			Transport: &http.Transport{
				// openhim-core's default certificate has CN=localhost and no SAN: Go cannot verify it at all.
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			},
		},
	}
	if c.username == "" {
		c.username = "root@openhim.org"
	}
	if c.password == "" {
		c.password = "openhim-password"
	}
	t.Cleanup(c.client.CloseIdleConnections)
	return c
}

func e2eSHA512Hex(parts ...string) string {
	h := sha512.New()
	for _, p := range parts {
		io.WriteString(h, p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// authHeaders performs OpenHIM token authentication (the only API scheme of core 4.0.5):
// GET /authenticate/:user gives the user's salt; auth-token = sha512(sha512(salt+password) + salt + ts).
func (c *e2eCore) authHeaders(t *testing.T) http.Header {
	t.Helper()
	status, body := c.do(t, http.MethodGet, c.api+"/authenticate/"+url.PathEscape(c.username), nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /authenticate/%s: status %d: %s", c.username, status, body)
	}
	var auth struct {
		Salt string `json:"salt"`
	}
	if err := json.Unmarshal(body, &auth); err != nil || auth.Salt == "" {
		t.Fatalf("GET /authenticate/%s: no salt in %s (%v)", c.username, body, err)
	}
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	passwordHash := e2eSHA512Hex(auth.Salt, c.password)
	return http.Header{
		"Auth-Username": {c.username},
		"Auth-Ts":       {ts},
		"Auth-Salt":     {auth.Salt},
		"Auth-Token":    {e2eSHA512Hex(passwordHash, auth.Salt, ts)},
	}
}

func (c *e2eCore) do(t *testing.T, method, u string, header http.Header, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("marshal body for %s %s: %v", method, u, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, u, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: OpenHIM core unreachable: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp.StatusCode, b
}

// apiCall makes one token-authenticated call to the core API and checks the status.
func (c *e2eCore) apiCall(t *testing.T, method, path string, body any, want int) []byte {
	t.Helper()
	status, b := c.do(t, method, c.api+path, c.authHeaders(t), body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	return b
}

func e2eUniqueSuffix(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	return name + "-" + strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(b[:])
}

// e2eMediatorSeen records what the test mediator received from the router.
type e2eMediatorSeen struct {
	mu            sync.Mutex
	paths         []string
	transactionID string
}

func TestE2ECoreRegisterHeartbeatRoute(t *testing.T) {
	core := e2eCoreFromEnv(t)

	suffix := e2eUniqueSuffix(t)
	urn := "urn:mediator:" + suffix
	channelName := "E2E channel " + suffix
	routeName := "E2E route " + suffix
	role := "role-" + suffix
	clientID := "client-" + suffix
	clientPassword := "pw-" + suffix
	path := "/" + suffix
	const orchestrationName = "e2e upstream call"
	const responseBody = `{"hello":"from the e2e mediator"}`

	// The mediator: answers application/json+openhim with one orchestration and properties.
	seen := &e2eMediatorSeen{}
	med := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.mu.Lock()
		seen.paths = append(seen.paths, r.URL.Path)
		seen.transactionID = r.Header.Get("X-OpenHIM-TransactionID")
		seen.mu.Unlock()
		now := time.Now().UTC().Format(time.RFC3339Nano)
		env := map[string]any{
			"x-mediator-urn": urn,
			"status":         "Successful",
			"response": map[string]any{
				"status":    http.StatusOK,
				"headers":   map[string]string{"content-type": "application/json"},
				"body":      responseBody,
				"timestamp": now,
			},
			"orchestrations": []any{map[string]any{
				"name":     orchestrationName,
				"request":  map[string]any{"path": "/upstream", "method": http.MethodGet, "timestamp": now},
				"response": map[string]any{"status": http.StatusOK, "body": "upstream ok", "timestamp": now},
			}},
			"properties": map[string]any{"e2e-run": suffix},
		}
		w.Header().Set("Content-Type", "application/json+openhim")
		if err := json.NewEncoder(w).Encode(env); err != nil {
			t.Errorf("mediator: encode response: %v", err)
		}
	}))
	defer med.Close()
	host, portStr, err := net.SplitHostPort(strings.TrimPrefix(med.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	// no "path": core then forwards the original request path to the mediator
	route := map[string]any{"name": routeName, "host": host, "port": port, "type": "http", "primary": true}

	// 1. register
	core.apiCall(t, http.MethodPost, "/mediators", map[string]any{
		"urn":         urn,
		"version":     "0.1.0",
		"name":        "E2E smoke mediator " + suffix,
		"description": "registered by " + t.Name(),
		"endpoints":   []any{route},
		"defaultChannelConfig": []any{map[string]any{
			"name":       channelName,
			"urlPattern": "^" + path + "$",
			"allow":      []string{role},
			"methods":    []string{http.MethodGet, http.MethodPost},
			"type":       "http",
			"routes":     []any{route},
		}},
		"configDefs": []any{map[string]any{"param": "greeting", "displayName": "Greeting", "type": "string"}},
		"config":     map[string]any{"greeting": "hello"},
	}, http.StatusCreated)

	// 2. heartbeat, and the core stores the uptime
	core.apiCall(t, http.MethodPost, "/mediators/"+url.PathEscape(urn)+"/heartbeat",
		map[string]any{"uptime": 12.5}, http.StatusOK)
	var stored struct {
		URN    string  `json:"urn"`
		Uptime float64 `json:"_uptime"`
	}
	b := core.apiCall(t, http.MethodGet, "/mediators/"+url.PathEscape(urn), nil, http.StatusOK)
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatalf("GET /mediators/%s: %v: %s", urn, err, b)
	}
	if stored.URN != urn || stored.Uptime != 12.5 {
		t.Fatalf("GET /mediators/%s: urn %q uptime %v, want %q 12.5", urn, stored.URN, stored.Uptime, urn)
	}

	// 3. install the default channel, and a client allowed to use it (sha512(password+salt), as core checks it)
	core.apiCall(t, http.MethodPost, "/mediators/"+url.PathEscape(urn)+"/channels", []string{channelName}, http.StatusCreated)
	salt := "salt-" + suffix
	core.apiCall(t, http.MethodPost, "/clients", map[string]any{
		"clientID":          clientID,
		"name":              "E2E client " + suffix,
		"roles":             []string{role},
		"passwordAlgorithm": "sha512",
		"passwordHash":      e2eSHA512Hex(clientPassword, salt),
		"passwordSalt":      salt,
	}, http.StatusCreated)

	// 4. route one request through the router; new channels and clients become routable after core's
	// cache refresh (about 1 s), so retry for a bounded time.
	var status int
	var got []byte
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(http.MethodGet, core.router+path+"?attempt="+strconv.Itoa(attempt), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(clientID, clientPassword)
		resp, err := core.client.Do(req)
		if err != nil {
			t.Fatalf("router GET %s: OpenHIM router unreachable: %v", path, err)
		}
		got, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			t.Fatalf("router GET %s: read body: %v", path, err)
		}
		status = resp.StatusCode
		if status == http.StatusOK || time.Now().After(deadline) {
			break
		}
		t.Logf("router attempt %d: status %d (channel cache not refreshed yet?): %s", attempt, status, got)
		time.Sleep(500 * time.Millisecond)
	}
	if status != http.StatusOK || string(got) != responseBody {
		t.Fatalf("router GET %s: status %d body %q, want 200 %q", path, status, got, responseBody)
	}
	seen.mu.Lock()
	txID, paths := seen.transactionID, append([]string(nil), seen.paths...)
	seen.mu.Unlock()
	if len(paths) != 1 || paths[0] != path {
		t.Errorf("mediator received paths %q, want exactly [%q]", paths, path)
	}
	if txID == "" {
		t.Errorf("mediator request had no X-OpenHIM-TransactionID header")
	}

	// 5. the transaction log holds the request with the mediator's status, orchestrations and properties
	filters, err := json.Marshal(map[string]string{"request.path": "^" + path + "$"})
	if err != nil {
		t.Fatal(err)
	}
	query := "/transactions?filterRepresentation=full&filterLimit=10&filterPage=0&filters=" + url.QueryEscape(string(filters))
	type transaction struct {
		ID      string `json:"_id"`
		Status  string `json:"status"`
		Request struct {
			Path string `json:"path"`
		} `json:"request"`
		Response struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		} `json:"response"`
		Orchestrations []struct {
			Name     string `json:"name"`
			Response struct {
				Status int `json:"status"`
			} `json:"response"`
		} `json:"orchestrations"`
		Properties map[string]any `json:"properties"`
	}
	var tx *transaction
	deadline = time.Now().Add(20 * time.Second)
	for tx == nil {
		var list []transaction
		b := core.apiCall(t, http.MethodGet, query, nil, http.StatusOK)
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatalf("GET /transactions: %v: %s", err, b)
		}
		for i := range list {
			if list[i].Request.Path == path && list[i].Status != "Processing" {
				if tx != nil {
					t.Fatalf("GET /transactions: more than one finished transaction for %s: %s", path, b)
				}
				tx = &list[i]
			}
		}
		if tx == nil {
			if time.Now().After(deadline) {
				t.Fatalf("GET /transactions: no finished transaction for %s within 20s; last answer: %s", path, b)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	if tx.Status != "Successful" {
		t.Errorf("transaction status %q, want Successful", tx.Status)
	}
	if tx.Response.Status != http.StatusOK || tx.Response.Body != responseBody {
		t.Errorf("transaction response %d %q, want 200 %q", tx.Response.Status, tx.Response.Body, responseBody)
	}
	if txID != "" && tx.ID != txID {
		t.Errorf("transaction id %q, but the mediator was told %q", tx.ID, txID)
	}
	var names []string
	found := false
	for _, o := range tx.Orchestrations {
		names = append(names, o.Name)
		if o.Name == orchestrationName && o.Response.Status == http.StatusOK {
			found = true
		}
	}
	if !found {
		t.Errorf("transaction orchestrations %q lack %q with status 200", names, orchestrationName)
	}
	if got := fmt.Sprint(tx.Properties["e2e-run"]); got != suffix {
		t.Errorf("transaction property e2e-run = %q, want %q (properties %v)", got, suffix, tx.Properties)
	}
}
