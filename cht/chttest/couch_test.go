package chttest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMedicDocs pins document reads and writes of an online user through
// /medic: api/src/routing.js proxies them to CouchDB (onlineUserProxy,
// then proxy.web; db-doc.js handles only offline users), so CouchDB's
// answers apply: 404 {"error":"not_found","reason":"missing"}, 201 with
// the new rev, 409 {"error":"conflict","reason":"Document update
// conflict."} for a missing or stale _rev.
func TestMedicDocs(t *testing.T) {
	srv := newTestServer(t, Config{})
	steps := []struct {
		name   string
		c      call
		status int
		check  func(t *testing.T, r result)
	}{
		{"missing", call{method: "GET", path: "/medic/p1"}, 404, func(t *testing.T, r result) {
			jsonEqual(t, r.body, []byte(`{"error":"not_found","reason":"missing"}`))
		}},
		{"create", call{method: "PUT", path: "/medic/p1", ct: "application/json", body: `{"type":"person","name":"A"}`}, 201,
			func(t *testing.T, r result) {
				if o := r.obj(t); o["ok"] != true || o["id"] != "p1" || !strings.HasPrefix(str(o["rev"]), "1-") {
					t.Errorf("answer %s", r.body)
				}
			}},
		{"create again without _rev", call{method: "PUT", path: "/medic/p1", ct: "application/json", body: `{"type":"person","name":"B"}`}, 409,
			func(t *testing.T, r result) {
				jsonEqual(t, r.body, []byte(`{"error":"conflict","reason":"Document update conflict."}`))
			}},
		{"read", call{method: "GET", path: "/medic/p1"}, 200, func(t *testing.T, r result) {
			if o := r.obj(t); o["name"] != "A" || o["_id"] != "p1" {
				t.Errorf("doc %s", r.body)
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := do(t, srv, s.c)
			if r.status != s.status {
				t.Fatalf("status %d, want %d: %s", r.status, s.status, r.body)
			}
			s.check(t, r)
		})
	}
	// Update with the current rev, then a stale one.
	raw := mustDoc(t, srv, "p1")
	doc, _ := decodeDoc(raw)
	rev1 := str(doc["_rev"])
	doc["name"] = "C"
	r := do(t, srv, call{method: "PUT", path: "/medic/p1", ct: "application/json", body: mustMarshal(t, doc)})
	if r.status != 201 || !strings.HasPrefix(str(r.obj(t)["rev"]), "2-") {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	r = do(t, srv, call{method: "PUT", path: "/medic/p1", ct: "application/json", body: mustMarshal(t, doc)})
	if r.status != 409 {
		t.Fatalf("stale update: %d %s", r.status, r.body)
	}
	r = do(t, srv, call{method: "DELETE", path: "/medic/p1?rev=" + rev1})
	if r.status != 409 {
		t.Fatalf("stale delete: %d %s", r.status, r.body)
	}
	r = do(t, srv, call{method: "DELETE", path: "/medic/p1?rev=" + srv.store.currentRev("p1")})
	if r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	r = do(t, srv, call{method: "GET", path: "/medic/p1"})
	if r.status != 404 || r.obj(t)["reason"] != "deleted" {
		t.Fatalf("after delete: %d %s", r.status, r.body)
	}
	// Re-create after delete needs no rev.
	r = do(t, srv, call{method: "PUT", path: "/medic/p1", ct: "application/json", body: `{"type":"person","name":"D"}`})
	if r.status != 201 || !strings.HasPrefix(str(r.obj(t)["rev"]), "4-") {
		t.Fatalf("re-create: %d %s", r.status, r.body)
	}
}

// TestChanges pins an online user's changes feed: api/src/routing.js sends
// /medic/_changes of online users straight to CouchDB
// (onlineUserChangesProxy, proxyForChanges), so CouchDB's feed applies:
// each doc once at its latest seq, deleted docs with deleted: true, opaque
// string sequences, since/limit paging and longpoll.
func TestChanges(t *testing.T) {
	srv := newTestServer(t, Config{MaxLongpoll: 2 * time.Second})
	for i := range 5 {
		if _, err := srv.PutDoc(map[string]any{"_id": "d" + strconv.Itoa(i), "n": i}); err != nil {
			t.Fatal(err)
		}
	}
	// d1 updated: it appears once, at its latest seq.
	if _, err := srv.PutDoc(map[string]any{"_id": "d1", "n": 10}); err != nil {
		t.Fatal(err)
	}
	if err := srv.DeleteDoc("d3"); err != nil {
		t.Fatal(err)
	}
	r := do(t, srv, call{method: "GET", path: "/medic/_changes?include_docs=true"})
	body := r.obj(t)
	results := body["results"].([]any)
	var ids []string
	for _, x := range results {
		ids = append(ids, str(get(x, "id")))
	}
	if strings.Join(ids, ",") != "d0,d2,d4,d1,d3" {
		t.Fatalf("ids %v, want d0,d2,d4,d1,d3", ids)
	}
	if get(results[3], "doc.n") != mustNumber("10") || get(results[4], "deleted") != true {
		t.Errorf("results %s", r.body)
	}
	if last := str(body["last_seq"]); !strings.HasPrefix(last, "7-") {
		t.Errorf("last_seq %q, want an opaque \"7-...\"", last)
	}
	// Paging with limit and the opaque seq.
	var got []string
	since := "0"
	for range 10 {
		r := do(t, srv, call{method: "GET", path: "/medic/_changes?limit=2&since=" + since})
		b := r.obj(t)
		rs := b["results"].([]any)
		if len(rs) == 0 {
			break
		}
		for _, x := range rs {
			got = append(got, str(get(x, "id")))
			if get(x, "doc") != nil {
				t.Fatal("doc without include_docs")
			}
		}
		since = str(b["last_seq"])
	}
	if strings.Join(got, ",") != "d0,d2,d4,d1,d3" {
		t.Fatalf("paged ids %v", got)
	}
	if r := do(t, srv, call{method: "GET", path: "/medic/_changes?since=garbage"}); r.status != 400 {
		t.Errorf("bad since: %d", r.status)
	}

	// Longpoll waits for the next change. It asks from the last change
	// paged above rather than since=now: the handler reads "now" when it
	// gets to run, which under load can be after the PutDoc below.
	var wg sync.WaitGroup
	wg.Add(1)
	var lp result
	go func() {
		defer wg.Done()
		lp = do(t, srv, call{method: "GET", path: "/medic/_changes?feed=longpoll&since=" + since})
	}()
	// Requests are recorded when answered, so nothing tells that the
	// longpoll waits: this usually lets it, and either order passes.
	time.Sleep(20 * time.Millisecond)
	if _, err := srv.PutDoc(map[string]any{"_id": "late"}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if rs := lp.obj(t)["results"].([]any); len(rs) != 1 || get(rs[0], "id") != "late" {
		t.Fatalf("longpoll got %s", lp.body)
	}
	// Longpoll with a timeout and no change returns empty.
	r = do(t, srv, call{method: "GET", path: "/medic/_changes?feed=longpoll&since=now&timeout=50"})
	if rs := r.obj(t)["results"].([]any); len(rs) != 0 {
		t.Fatalf("timeout longpoll got %s", r.body)
	}
}

// TestSessionAndRateLimit pins logins: api/src/routing.js proxies /_session
// to CouchDB, which sets the AuthSession cookie that the API then accepts;
// api/src/middleware/rate-limiter.js counts every 401 or 429 answer
// against the client (api/src/services/rate-limit.js: RateLimiterMemory,
// 10 points per 10 s, keyed by IP, user name and password), and once
// limited answers serverUtils.rateLimited (429) to Basic credentials, the
// right password included (TestRateLimitFollowsCHT: which requests, and
// for how long).
func TestSessionAndRateLimit(t *testing.T) {
	srv := newTestServer(t, Config{})
	jar, _ := cookiejar.New(nil)
	client := srv.Client()
	client.Jar = jar
	post := func(body string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/_session", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(`{"name":"medic","password":"wrong"}`); resp.StatusCode != 401 {
		t.Fatalf("bad login: %d", resp.StatusCode)
	}
	resp := post(`{"name":"medic","password":"password"}`)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Set-Cookie"), "AuthSession=") {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/hydrate?doc_ids=[]", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("cookie auth: %d", resp.StatusCode)
	}
	if reqs := srv.Requests(); reqs[len(reqs)-1].User != "medic" {
		t.Errorf("recorded user %q", reqs[len(reqs)-1].User)
	}

	// Failed logins are rate limited: more than 10 in 10 s → 429, even
	// with the right password afterwards.
	srv2 := newTestServer(t, Config{})
	var codes []int
	for range 12 {
		codes = append(codes, do(t, srv2, call{method: "GET", path: "/api/v1/hydrate?doc_ids=[]", user: "medic", pass: "bad"}).status)
	}
	if codes[0] != 401 || codes[9] != 401 || codes[10] != 429 || codes[11] != 429 {
		t.Fatalf("codes %v, want 10×401 then 429", codes)
	}
	if r := do(t, srv2, call{method: "GET", path: "/api/v1/hydrate?doc_ids=[]"}); r.status != 429 {
		t.Fatalf("good credentials while limited: %d", r.status)
	}
}

// TestRateLimitFollowsCHT pins which requests CHT's rate limiter refuses
// and for how long. api/src/middleware/rate-limiter.js (cht-core 4.6.0 to
// 5.2.0; none before) limits only a request that logs in, isLoggingIn:
// req.body.user or Basic credentials, and runs before any body parser, so
// only Basic credentials count: a request with a session cookie, and the
// session login POST /_session (proxied to CouchDB unparsed), are never
// refused. Every 401 or 429 answer consumes a point of each key
// (services/rate-limit.js getKeys: the IP, the Basic user name and
// password). RateLimiterMemory's window of a key (10 points, 10 s) starts
// with its first point and is not extended by later ones. The refusal is
// server-utils.js rateLimited: respond(429, 'Too Many Requests'), JSON
// {"code":429,"error":"Too Many Requests"} for a client that accepts
// JSON.
func TestRateLimitFollowsCHT(t *testing.T) {
	type step struct {
		at     time.Duration // after the failed logins
		c      call
		cookie bool // send the session cookie instead of credentials
		times  int  // 0 means once
		status int
		body   string // the last answer's body, if set
	}
	hydrate := call{method: "GET", path: "/api/v1/hydrate?doc_ids=[]"}
	tests := []struct {
		name    string
		version string
		steps   []step
	}{
		{"session login is not limited", "", []step{{at: time.Second, status: 200,
			c: call{method: "POST", path: "/_session", ct: "application/json", body: `{"name":"medic","password":"password"}`, user: "-"}}}},
		{"session cookie is not limited", "", []step{{at: time.Second, c: hydrate, cookie: true, status: 200}}},
		{"basic credentials are limited", "", []step{{at: time.Second, c: hydrate, status: 429,
			body: `{"code":429,"error":"Too Many Requests"}`}}},
		{"text for a client that does not accept JSON", "", []step{{at: time.Second, status: 429, body: "Too Many Requests",
			c: call{method: "GET", path: hydrate.path, accept: "-"}}}},
		{"the window starts with the first point", "", []step{
			// Without credentials: not limited, and the 401 consumes the
			// IP's key only.
			{at: 9 * time.Second, c: call{method: "GET", path: hydrate.path, user: "-"}, times: 10, status: 401},
			{at: 10*time.Second + time.Millisecond, c: hydrate, status: 200},
		}},
		{"no limiter before 4.6", "4.5.0", []step{{at: time.Second, c: hydrate, status: 200}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
			var mu sync.Mutex
			now := start
			srv := newTestServer(t, Config{Version: tt.version, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
			login := do(t, srv, call{method: "POST", path: "/_session", ct: "application/json",
				body: `{"name":"medic","password":"password"}`, user: "-"})
			var session string
			for _, ck := range (&http.Response{Header: login.header}).Cookies() {
				if ck.Name == "AuthSession" {
					session = ck.Value
				}
			}
			if session == "" {
				t.Fatalf("login: %d %v", login.status, login.header)
			}
			for range 10 {
				if r := do(t, srv, call{method: "GET", path: hydrate.path, user: "medic", pass: "bad"}); r.status != 401 {
					t.Fatalf("bad password: %d", r.status)
				}
			}
			for _, st := range tt.steps {
				mu.Lock()
				now = start.Add(st.at)
				mu.Unlock()
				var r result
				for range max(st.times, 1) {
					if st.cookie {
						r = doWithCookie(t, srv, st.c, session)
					} else {
						r = do(t, srv, st.c)
					}
				}
				if r.status != st.status || st.body != "" && strings.TrimSpace(string(r.body)) != st.body {
					t.Fatalf("%s %s at +%v: %d %s; CHT answers %d %s", st.c.method, st.c.path, st.at, r.status, r.body, st.status, st.body)
				}
			}
		})
	}
}

// doWithCookie is do with the AuthSession cookie instead of credentials.
func doWithCookie(t *testing.T, srv *Server, c call, session string) result {
	t.Helper()
	req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: "AuthSession", Value: session})
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestFaults(t *testing.T) {
	srv := NewDemoServer(Config{BasePath: "/cht", Seed: 42})
	t.Cleanup(srv.Close)
	hydrate := call{method: "POST", path: "/api/v1/hydrate", ct: "application/json", body: `{"doc_ids":["x"]}`}

	srv.InjectFault(Fault{Path: "/api/v1/hydrate", Status: 429, RetryAfter: 2 * time.Second, Count: 3})
	for i := range 3 {
		r := do(t, srv, hydrate)
		if r.status != 429 || r.header.Get("Retry-After") != "2" {
			t.Fatalf("attempt %d: %d Retry-After %q", i, r.status, r.header.Get("Retry-After"))
		}
		// api/src/server-utils.js rateLimited, for a client that accepts
		// JSON.
		jsonEqual(t, r.body, []byte(`{"code":429,"error":"Too Many Requests"}`))
	}
	if r := do(t, srv, hydrate); r.status != 200 {
		t.Fatalf("after Count faults: %d", r.status)
	}
	if r := do(t, srv, call{method: "GET", path: "/api/info"}); r.status != 200 {
		t.Fatalf("other route affected: %d", r.status)
	}

	remove := srv.InjectFault(Fault{Path: "/medic/*", Status: 503, Skip: 1})
	if r := do(t, srv, call{method: "GET", path: "/medic/" + DemoPatientID}); r.status != 200 {
		t.Fatalf("skipped request: %d", r.status)
	}
	r := do(t, srv, call{method: "GET", path: "/medic/" + DemoPatientID})
	if r.status != 503 {
		t.Fatalf("prefix fault: %d", r.status)
	}
	jsonEqual(t, r.body, []byte(`{"code":503,"error":"Service Unavailable"}`))
	remove()
	if r := do(t, srv, call{method: "GET", path: "/medic/" + DemoPatientID}); r.status != 200 {
		t.Fatalf("after remove: %d", r.status)
	}

	// Probability with a seeded source: deterministic for a given Seed.
	count := func(seed uint64) []int {
		s := NewDemoServer(Config{Seed: seed})
		defer s.Close()
		s.InjectFault(Fault{Status: 500, Probability: 0.3})
		var failed []int
		for i := range 40 {
			if do(t, s, call{method: "GET", path: "/api/info"}).status == 500 {
				failed = append(failed, i)
			}
		}
		return failed
	}
	a, b := count(7), count(7)
	if mustMarshal(t, a) != mustMarshal(t, b) || len(a) == 0 || len(a) == 40 {
		t.Fatalf("probabilistic faults not deterministic or degenerate: %v vs %v", a, b)
	}

	// Abort closes the connection: a network error for the client (no
	// Count: Go's transport retries an idempotent request once on a reused
	// connection).
	removeAbort := srv.InjectFault(Fault{Path: "/api/v1/hydrate", Abort: true})
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/hydrate?doc_ids=[]", nil)
	req.SetBasicAuth(AdminUsername, AdminPassword)
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("aborted request answered %d", resp.StatusCode)
	}
	removeAbort()

	// Latency: a client with a shorter timeout gives up.
	srv.InjectFault(Fault{Path: "/api/v1/hydrate", Latency: 2 * time.Second, Count: 1})
	c := srv.Client()
	c.Timeout = 50 * time.Millisecond
	_, err := c.Do(req)
	var ne interface{ Timeout() bool }
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a client timeout, got %v", err)
	}
}

func TestBasePathAndBodyLimit(t *testing.T) {
	srv := newTestServer(t, Config{BasePath: "/cht/", MaxBodyBytes: 64})
	if strings.HasSuffix(srv.URL, "/") || !strings.HasSuffix(srv.URL, "/cht") {
		t.Fatalf("URL %q", srv.URL)
	}
	// A client that drops the base path gets 404.
	req, _ := http.NewRequest("GET", strings.TrimSuffix(srv.URL, "/cht")+"/api/info", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("outside base path: %d", resp.StatusCode)
	}
	r := do(t, srv, call{method: "POST", path: "/api/v1/hydrate", ct: "application/json",
		body: `{"doc_ids":["` + strings.Repeat("x", 100) + `"]}`})
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", r.status)
	}
}

func TestRequestHistoryBounded(t *testing.T) {
	srv := newTestServer(t, Config{MaxRecordedRequests: 3})
	for i := range 5 {
		do(t, srv, call{method: "GET", path: "/medic/d" + strconv.Itoa(i)})
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || reqs[0].Path != "/medic/d2" || reqs[2].Path != "/medic/d4" || reqs[2].Status != 404 {
		t.Fatalf("history %+v", reqs)
	}
	off := newTestServer(t, Config{MaxRecordedRequests: -1})
	do(t, off, call{method: "GET", path: "/api/info"})
	if n := len(off.Requests()); n != 0 {
		t.Fatalf("recorded %d requests with recording off", n)
	}
}

// TestBulkAndAllDocs pins _bulk_docs and _all_docs of an online user:
// api/src/routing.js proxies them to CouchDB (onlineUserProxy; the
// offline filters of bulk-docs.js and all-docs.js are not involved), so
// CouchDB's rules apply: new_edits: false keeps the given _rev, a stale
// write is a per-doc conflict inside a 201, and _all_docs pages by
// startkey/limit and answers {error: "not_found"} for unknown keys.
func TestBulkAndAllDocs(t *testing.T) {
	srv := newTestServer(t, Config{})
	r := do(t, srv, call{method: "POST", path: "/medic/_bulk_docs", ct: "application/json",
		body: `{"docs":[{"_id":"a","type":"person","name":"A"},{"_id":"b","_rev":"7-abc","name":"B"},{"name":"generated"}],"new_edits":false}`})
	if r.status != 201 {
		t.Fatalf("bulk: %d %s", r.status, r.body)
	}
	rows := r.json(t).([]any)
	if len(rows) != 3 || get(rows[1], "rev") != "7-abc" || !couchID.MatchString(str(get(rows[2], "id"))) {
		t.Fatalf("bulk rows %s", r.body)
	}
	// With edits on, a stale write is a per-doc conflict, not a failed request.
	r = do(t, srv, call{method: "POST", path: "/medic/_bulk_docs", ct: "application/json",
		body: `{"docs":[{"_id":"a","name":"A2"},{"_id":"c"}]}`})
	rows = r.json(t).([]any)
	if r.status != 201 || get(rows[0], "error") != "conflict" || get(rows[1], "ok") != true {
		t.Fatalf("bulk edits: %d %s", r.status, r.body)
	}
	// The generated id is random hex, so it may sort anywhere: page from
	// "a" and from "b" separately.
	r = do(t, srv, call{method: "GET", path: "/medic/_all_docs?include_docs=true&limit=1&startkey=%22a%22"})
	b := r.obj(t)
	if get(b, "total_rows") != mustNumber("4") || get(b, "rows.0.id") != "a" || get(b, "rows.1") != nil {
		t.Fatalf("all_docs from a %s", r.body)
	}
	r = do(t, srv, call{method: "GET", path: "/medic/_all_docs?include_docs=true&limit=1&startkey=%22b%22"})
	b = r.obj(t)
	if get(b, "rows.0.id") != "b" || get(b, "rows.0.doc._rev") != "7-abc" || get(b, "rows.1") != nil {
		t.Fatalf("all_docs from b %s", r.body)
	}
	r = do(t, srv, call{method: "POST", path: "/medic/_all_docs", ct: "application/json", body: `{"keys":["c","zz"]}`})
	b = r.obj(t)
	if get(b, "rows.0.id") != "c" || get(b, "rows.1.error") != "not_found" {
		t.Fatalf("all_docs keys %s", r.body)
	}
}

// TestSessionLoginFailureIsNotLoggedIn pins CHT's answer to a failed
// login: api/src/routing.js app.all('/_session') proxies to CouchDB, and
// proxy.on('proxyRes') answers CouchDB's 401 with serverUtils.notLoggedIn
// (api/src/server-utils.js): {"code":401,"error":"unauthorized"} when the
// client wants JSON (req.accepts(['text', 'json']) === 'json'), otherwise
// "not logged in" as text with WWW-Authenticate. CouchDB's own reason
// ("Name or password is incorrect.") never reaches the client.
func TestSessionLoginFailureIsNotLoggedIn(t *testing.T) {
	srv := newTestServer(t, Config{})
	for _, tc := range []struct {
		name, method, ct, body, user, accept, want string
	}{
		{"JSON login", "POST", "application/json", `{"name":"medic","password":"wrong"}`, "-", "", `{"code":401,"error":"unauthorized"}`},
		{"form login", "POST", "application/x-www-form-urlencoded", `name=medic&password=wrong`, "-", "", `{"code":401,"error":"unauthorized"}`},
		{"JSON login, no Accept", "POST", "application/json", `{"name":"nobody","password":"x"}`, "-", "-", "not logged in"},
		{"GET with bad basic auth", "GET", "", "", "medic", "", `{"code":401,"error":"unauthorized"}`},
	} {
		c := call{method: tc.method, path: "/_session", ct: tc.ct, body: tc.body, user: tc.user, accept: tc.accept}
		if tc.user == "medic" {
			c.pass = "wrong"
		}
		r := do(t, srv, c)
		if r.status != 401 || strings.TrimSpace(string(r.body)) != tc.want {
			t.Errorf("%s: %d %s; CHT answers 401 %s", tc.name, r.status, r.body, tc.want)
		}
	}
}

// TestContactsByReferenceView pins the view CHT resolves shortcodes with,
// medic-client/contacts_by_reference
// (ddocs/medic-db/medic-client/views/contacts_by_reference/map.js): a
// contact of a known type emits ["shortcode", String(place_id)] and
// ["shortcode", String(patient_id)] when the value is truthy, and
// ["external", rc_code upper-cased], with reported_date as the value; rows
// of equal keys come in document id order. API proxies view queries to
// CouchDB for online users only (api/src/routing.js
// ONLINE_ONLY_ENDPOINTS).
func TestContactsByReferenceView(t *testing.T) {
	srv := NewDemoServer(Config{})
	t.Cleanup(srv.Close)
	srv.AddUser(User{Name: "offline", Password: "pw", Roles: []string{"chw"}, Permissions: IntegrationPermissions})
	for _, d := range []map[string]any{
		{"_id": "p-b", "type": "person", "patient_id": "12345", "reported_date": 2},
		{"_id": "p-a", "type": "contact", "contact_type": "c_patient", "patient_id": mustNumber("12345"), "reported_date": 1},
		{"_id": "clinic", "type": "clinic", "place_id": "777", "rc_code": "ab1"},
		{"_id": "both", "type": "person", "place_id": "888", "patient_id": "888"},
		{"_id": "report", "type": "data_record", "patient_id": "12345"},
		{"_id": "settings-like", "type": "user-settings", "patient_id": "12345"},
		{"_id": "zero", "type": "person", "patient_id": mustNumber("0")},
		{"_id": "moved", "type": "person", "patient_id": "555"},
		{"_id": "gone", "type": "person", "patient_id": "12345"},
	} {
		if _, err := srv.PutDoc(d); err != nil {
			t.Fatal(err)
		}
	}
	moved, err := decodeDoc(mustDoc(t, srv, "moved"))
	if err != nil {
		t.Fatal(err)
	}
	moved["patient_id"] = "556"
	if _, err := srv.PutDoc(moved); err != nil {
		t.Fatal(err)
	}
	if err := srv.DeleteDoc("gone"); err != nil {
		t.Fatal(err)
	}

	const view = "/medic/_design/medic-client/_view/contacts_by_reference"
	all := do(t, srv, call{method: "GET", path: view})
	if all.status != http.StatusOK {
		t.Fatalf("all rows: status %d: %s", all.status, all.body)
	}
	var whole struct {
		TotalRows int `json:"total_rows"`
		Rows      []struct {
			ID  string    `json:"id"`
			Key [2]string `json:"key"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(all.body, &whole); err != nil {
		t.Fatal(err)
	}
	allRows := whole.Rows
	index := map[string]int{} // key|id -> first position in the whole view
	for i, r := range allRows {
		if _, seen := index[r.Key[0]+"|"+r.Key[1]+"|"+r.ID]; !seen {
			index[r.Key[0]+"|"+r.Key[1]+"|"+r.ID] = i
		}
	}
	if whole.TotalRows != len(allRows) {
		t.Fatalf("total_rows %d, want %d rows", whole.TotalRows, len(allRows))
	}
	if !slices.IsSortedFunc(allRows, func(a, b struct {
		ID  string    `json:"id"`
		Key [2]string `json:"key"`
	}) int {
		return cmp.Or(strings.Compare(a.Key[0], b.Key[0]), strings.Compare(a.Key[1], b.Key[1]), strings.Compare(a.ID, b.ID))
	}) {
		t.Errorf("rows not in key, then id order: %v", allRows)
	}

	query := func(key string) string { return view + "?include_docs=true&key=" + url.QueryEscape(key) }
	tests := []struct {
		name   string
		c      call
		status int
		key    [2]string
		ids    []string // rows in order
	}{
		{"equal keys in id order, numbers as strings; not reports, other types, deleted docs", call{method: "GET", path: query(`["shortcode","12345"]`)},
			200, [2]string{"shortcode", "12345"}, []string{"p-a", "p-b"}},
		{"place_id", call{method: "GET", path: query(`["shortcode","777"]`)}, 200, [2]string{"shortcode", "777"}, []string{"clinic"}},
		{"place_id and patient_id both emitted", call{method: "GET", path: query(`["shortcode","888"]`)}, 200, [2]string{"shortcode", "888"}, []string{"both", "both"}},
		{"rc_code upper-cased", call{method: "GET", path: query(`["external","AB1"]`)}, 200, [2]string{"external", "AB1"}, []string{"clinic"}},
		{"rc_code as stored is not a key", call{method: "GET", path: query(`["external","ab1"]`)}, 200, [2]string{"external", "ab1"}, nil},
		{"a falsy shortcode is not emitted", call{method: "GET", path: query(`["shortcode","0"]`)}, 200, [2]string{"shortcode", "0"}, nil},
		{"the old shortcode of an updated doc is gone", call{method: "GET", path: query(`["shortcode","555"]`)}, 200, [2]string{"shortcode", "555"}, nil},
		{"the new one is there", call{method: "GET", path: query(`["shortcode","556"]`)}, 200, [2]string{"shortcode", "556"}, []string{"moved"}},
		{"key not JSON", call{method: "GET", path: view + "?key=" + url.QueryEscape(`["shortcode",`)}, 400, [2]string{}, nil},
		{"a key of another shape matches no row", call{method: "GET", path: query(`"12345"`)}, 200, [2]string{}, nil},
		{"nor does a short array", call{method: "GET", path: query(`["shortcode"]`)}, 200, [2]string{}, nil},
		{"offline user", call{method: "GET", path: query(`["shortcode","12345"]`), user: "offline", pass: "pw"}, 403, [2]string{}, nil},
		{"another view", call{method: "GET", path: "/medic/_design/medic-client/_view/contacts_by_phone"}, 404, [2]string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, tt.c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != http.StatusOK {
				return
			}
			var got struct {
				TotalRows int `json:"total_rows"`
				Offset    int `json:"offset"`
				Rows      []struct {
					ID    string          `json:"id"`
					Key   [2]string       `json:"key"`
					Value json.RawMessage `json:"value"`
					Doc   map[string]any  `json:"doc"`
				} `json:"rows"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.TotalRows != len(allRows) {
				t.Errorf("total_rows %d, want %d", got.TotalRows, len(allRows))
			}
			var ids []string
			for _, row := range got.Rows {
				ids = append(ids, row.ID)
				if row.Key != tt.key || row.Doc["_id"] != row.ID {
					t.Errorf("row %s: key %v, doc %v", row.ID, row.Key, row.Doc)
				}
				if want, _ := json.Marshal(row.Doc["reported_date"]); string(row.Value) != string(want) {
					t.Errorf("row %s: value %s, want reported_date %s", row.ID, row.Value, want)
				}
			}
			if !slices.Equal(ids, tt.ids) {
				t.Fatalf("rows %v, want %v", ids, tt.ids)
			}
			if len(ids) > 0 {
				if want := index[tt.key[0]+"|"+tt.key[1]+"|"+ids[0]]; got.Offset != want {
					t.Errorf("offset %d, want %d (the first row's place in the whole view)", got.Offset, want)
				}
			}
		})
	}
}

// TestDBWritesNeedCanEdit pins api/src/routing.js canEdit: PUT, POST and
// DELETE on editPath (the medic database's prefix followed by anything)
// reach CouchDB only if auth.check(req, 'can_edit') passes (a database
// admin always does), else serverUtils.error answers the PermissionError
// 403 "Insufficient privileges". Online users pass through the doc and
// _bulk_docs routes to it (authorization.onlineUserPassThrough), offline
// users after db-doc.js / bulk-docs.js have filtered the request, so both
// need can_edit. POST _all_docs is answered before (allDocsHandler), and
// POST /medic without a trailing slash does not match editPath.
func TestDBWritesNeedCanEdit(t *testing.T) {
	srv := NewServer(Config{Users: []User{
		{Name: AdminUsername, Password: AdminPassword, Roles: []string{RoleDBAdmin}},
		{Name: "admin", Password: "pw", Roles: []string{RoleAdmin}},
		{Name: "online-editor", Password: "pw", Roles: []string{"data_entry", RoleOnline}, Permissions: []string{PermEdit}},
		{Name: "online-reader", Password: "pw", Roles: []string{"data_entry", RoleOnline}, Permissions: []string{PermViewReports}},
		{Name: "chw-editor", Password: "pw", Roles: []string{"chw"}, Permissions: []string{PermEdit}, Facility: "area"},
		{Name: "chw-reader", Password: "pw", Roles: []string{"chw"}, Facility: "area"},
	}})
	t.Cleanup(srv.Close)
	users := []struct {
		name    string
		canEdit bool
	}{
		{AdminUsername, true}, {"admin", true}, {"online-editor", true}, {"chw-editor", true},
		{"online-reader", false}, {"chw-reader", false},
	}
	const ct = "application/json"
	// The docs are people of the offline users' facility, which db-doc.js
	// lets them write (TestMedicWriteRules: the docs it refuses).
	if _, err := srv.PutDoc(map[string]any{"_id": "area", "type": "district_hospital", "name": "area"}); err != nil {
		t.Fatal(err)
	}
	const inArea = `"type":"person","name":"n","parent":{"_id":"area"}`
	for i, u := range users {
		pass := "pw"
		if u.name == AdminUsername {
			pass = AdminPassword
		}
		id := fmt.Sprintf("doc-%d", i)
		if _, err := srv.PutDoc(map[string]any{"_id": id + "-del", "type": "person", "name": "n", "parent": map[string]any{"_id": "area"}}); err != nil {
			t.Fatal(err)
		}
		rev := srv.store.currentRev(id + "-del")
		tests := []struct {
			name    string
			c       call
			guarded bool
			ok      int // status when allowed
		}{
			{"PUT doc", call{method: "PUT", path: "/medic/" + id, body: `{` + inArea + `}`, ct: ct}, true, http.StatusCreated},
			{"POST /medic/", call{method: "POST", path: "/medic/", body: `{"_id":"` + id + `-post",` + inArea + `}`, ct: ct}, true, http.StatusCreated},
			{"POST _bulk_docs", call{method: "POST", path: "/medic/_bulk_docs", body: `{"docs":[{"_id":"` + id + `-bulk"}]}`, ct: ct}, true, http.StatusCreated},
			{"DELETE doc", call{method: "DELETE", path: "/medic/" + id + "-del?rev=" + rev}, true, http.StatusOK},
			{"POST /medic", call{method: "POST", path: "/medic", body: `{"_id":"` + id + `-post2",` + inArea + `}`, ct: ct}, false, http.StatusCreated},
			{"POST _all_docs", call{method: "POST", path: "/medic/_all_docs", body: `{"keys":[]}`, ct: ct}, false, http.StatusOK},
		}
		for _, tt := range tests {
			t.Run(u.name+"/"+tt.name, func(t *testing.T) {
				tt.c.user, tt.c.pass = u.name, pass
				r := do(t, srv, tt.c)
				if tt.guarded && !u.canEdit {
					if r.status != http.StatusForbidden {
						t.Fatalf("%d %s, want 403", r.status, r.body)
					}
					jsonEqual(t, r.body, []byte(`{"code":403,"error":"Insufficient privileges"}`))
					return
				}
				if r.status != tt.ok {
					t.Fatalf("%d %s, want %d", r.status, r.body, tt.ok)
				}
			})
		}
	}
	// Refused writes left nothing behind.
	for _, id := range []string{"doc-4", "doc-4-post", "doc-4-bulk", "doc-5", "doc-5-post", "doc-5-bulk"} {
		if _, ok := srv.Doc(id); ok {
			t.Errorf("%s was written by a user without can_edit", id)
		}
	}
	for _, id := range []string{"doc-4-del", "doc-5-del"} {
		if _, ok := srv.Doc(id); !ok {
			t.Errorf("%s was deleted by a user without can_edit", id)
		}
	}
}
