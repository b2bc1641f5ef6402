package mediator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// TestMediatorThroughFakeCore runs a mediator against openhimtest's fake
// core for each core version: readiness follows registration, routed
// requests are stored as core would store them, async work updates the
// transaction. The async 202 answer says Pending Async only to a core
// that knows it: 8.3.0 and later (src/model/transactions.js,
// transactionStatus), whose release the mediator reads from GET /about
// (src/api/about.js, getAboutInformation).
func TestMediatorThroughFakeCore(t *testing.T) {
	for _, tt := range []struct {
		version openhimtest.Version
		release string
		pending mediator.Status
	}{
		{openhimtest.Version4, "", mediator.StatusProcessing},
		{openhimtest.Version8, "", mediator.StatusPendingAsync}, // 8.5.0
		{openhimtest.Version8, "8.2.0", mediator.StatusProcessing},
	} {
		t.Run(fmt.Sprintf("v%d-%s", tt.version, tt.release), func(t *testing.T) {
			testThroughFakeCore(t, tt.version, tt.release, tt.pending)
		})
	}
}

func testThroughFakeCore(t *testing.T, version openhimtest.Version, release string, pending mediator.Status) {
	core := openhimtest.NewServer(openhimtest.Config{Version: version, Release: release})
	t.Cleanup(core.Close)
	core.SetDown(true) // not registered at first

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "up:"+r.URL.Path)
	}))
	t.Cleanup(upstream.Close)
	client := &http.Client{Transport: mediator.Transport(nil)}
	call := func(ctx context.Context, name, path string) error {
		req, _ := http.NewRequestWithContext(mediator.WithOrchestration(ctx, name), http.MethodGet, upstream.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	work := func(ctx context.Context) (*mediator.Result, error) {
		if err := call(ctx, "first", "/a"); err != nil {
			return nil, err
		}
		if err := call(ctx, "second", "/b"); err != nil {
			return nil, err
		}
		return &mediator.Result{Body: []byte("done"), Properties: map[string]any{"k": "v"}}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/fake/ok", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) { return work(r.Context()) }))
	mux.Handle("/fake/fail", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		return nil, errors.New("fake failure")
	}))
	mux.Handle("/fake/async", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		return r.Async(work)
	}))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	route := openhim.Route{Name: "Fake Route", Host: "127.0.0.1", Port: port, Primary: true, Type: "http"}
	m, err := mediator.New(mediator.Config{
		Auth: mediator.InboundAuth{Open: true},
		Definition: openhim.Definition{URN: "urn:mediator:fake-core", Version: "1.0.0", Name: "Fake core test",
			Endpoints: []openhim.Route{route},
			DefaultChannelConfig: []openhim.Channel{{Name: "Fake Channel", URLPattern: "^/fake/.*$", Allow: []string{"fake"},
				Methods: []string{"GET"}, Type: "http", Routes: []openhim.Route{route}}}},
		Listener: ln,
		OpenHIM: openhim.Config{URL: core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
			CoreVersion: int(version), RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 20 * time.Millisecond},
		InstallChannels:   true,
		HeartbeatInterval: 200 * time.Millisecond,
		Handler:           mux,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})

	base := "http://" + ln.Addr().String()
	require.Eventually(t, func() bool { return m.Addr() != nil }, 5*time.Second, 10*time.Millisecond)
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "not ready while core is down")

	core.SetDown(false)
	require.Eventually(t, m.Ready, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(core.Channels()) == 1 }, 5*time.Second, 20*time.Millisecond)
	core.AddClient("fake-client", "fake-pw", "fake")

	var lastBody []byte
	routed := func(path string) int {
		req, _ := http.NewRequest(http.MethodGet, core.RouterURL+path, nil)
		req.SetBasicAuth("fake-client", "fake-pw")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		lastBody, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	txFor := func(path string) openhimtest.Transaction {
		for _, tx := range core.Transactions() {
			if tx.Request != nil && tx.Request.Path == path {
				return tx
			}
		}
		t.Fatalf("no transaction for %s", path)
		return openhimtest.Transaction{}
	}

	assert.Equal(t, 200, routed("/fake/ok"))
	tx := txFor("/fake/ok")
	assert.Equal(t, "Successful", tx.Status)
	assert.Equal(t, "urn:mediator:fake-core", tx.MediatorURN)
	assert.Empty(t, tx.MetadataError, "core saved the response metadata")
	assert.False(t, tx.MetricsSkipped, "response.timestamp was set")
	assert.Equal(t, "done", tx.Response.Body)
	assert.Equal(t, map[string]any{"k": "v"}, tx.Properties)
	var names []string
	for _, o := range tx.Orchestrations {
		names = append(names, o.Name)
	}
	assert.Equal(t, []string{"first", "second", "Fake Route"}, names, "ours first, then core's own")

	assert.Equal(t, 500, routed("/fake/fail"))
	tx = txFor("/fake/fail")
	assert.Equal(t, "Failed", tx.Status)
	require.NotNil(t, tx.Error)
	assert.Equal(t, "fake failure", tx.Error.Message)

	assert.Equal(t, 202, routed("/fake/async"))
	var answer struct{ Status mediator.Status }
	require.NoError(t, json.Unmarshal(lastBody, &answer), "%s", lastBody)
	assert.Equal(t, pending, answer.Status, "the 202 answer's status")
	// The update may reach core before core stored the 202 answer, which
	// then overwrites it; the library checks and updates again.
	require.Eventually(t, func() bool { return txFor("/fake/async").Status == "Successful" }, 15*time.Second, 20*time.Millisecond)
	tx = txFor("/fake/async")
	assert.GreaterOrEqual(t, tx.Updates, 1)
	assert.Equal(t, "done", tx.Response.Body)
	assert.Len(t, tx.Orchestrations, 2)
}

// TestMediatorRunStopsWhenCoreRejectsRegistration: a 400 from core is fatal
// for the lifecycle, and Run shuts the server down and returns it.
func TestMediatorRunStopsWhenCoreRejectsRegistration(t *testing.T) {
	core := openhimtest.NewServer(openhimtest.Config{})
	t.Cleanup(core.Close)
	core.FailNext(1, http.StatusBadRequest)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m, err := mediator.New(mediator.Config{
		Auth: mediator.InboundAuth{Open: true},
		Definition: openhim.Definition{URN: "urn:mediator:rejected", Version: "1.0.0", Name: "Rejected",
			Endpoints: []openhim.Route{{Name: "R", Host: "127.0.0.1", Port: 1, Primary: true, Type: "http"}}},
		Listener: ln,
		OpenHIM:  openhim.Config{URL: core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword},
		Handler:  http.NotFoundHandler(),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.ErrorIs(t, err, openhim.ErrBadRequest)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after core rejected the registration")
	}
	_, err = http.Get("http://" + ln.Addr().String() + "/healthz")
	assert.Error(t, err, "the server is shut down")
}

// TestBodiesFitCoreBudgetThroughFakeCore: core counts the request body it
// stored before the mediator's bodies: when it stores the answer
// (src/middleware/messageStore.js storeTransaction, then storeResponse and
// truncateOrchestrationBodies) and when it applies an async update
// (src/api/transactions.js updateTransaction, which starts from the
// stored request and response bodies). It cuts what goes over with
// JavaScript's slice, which takes the byte count it measured as UTF-16 code
// units (src/utils.js enforceMaxBodiesSize): a non-ASCII orchestration body
// it cuts keeps more bytes than the 15 MiB budget leaves, which is there to
// keep the transaction under MongoDB's 16 MiB document limit. The mediator
// cuts its orchestrations to what the request leaves, so core stores them
// as sent and within the budget; a request its client sent chunked reaches
// the mediator chunked (src/middleware/router.js constructOptionsObject
// forwards the client's headers), and counts as read.
func TestBodiesFitCoreBudgetThroughFakeCore(t *testing.T) {
	for _, tt := range []struct {
		path    string
		chunked bool
	}{
		// A request with a Content-Length is reserved from it, in
		// TestAsyncBudgetCountsStoredBodies.
		{"/fake/async", true},
		{"/fake/sync", true},
	} {
		t.Run(fmt.Sprintf("%s chunked=%t", tt.path, tt.chunked), func(t *testing.T) {
			testBodiesFitCoreBudget(t, tt.path, tt.chunked)
		})
	}
}

func testBodiesFitCoreBudget(t *testing.T, path string, chunked bool) {
	const budget = 15 << 20
	core := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version8})
	t.Cleanup(core.Close)
	orchBody := strings.Repeat("ж", 3<<20) // 6 MiB of UTF-8, 3 Mi UTF-16 code units
	work := func(ctx context.Context) (*mediator.Result, error) {
		mediator.AddOrchestration(ctx, mediator.Orchestration{Name: "big", Response: &mediator.Response{Status: 200, Body: orchBody}})
		return &mediator.Result{Body: []byte("done")}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/fake/async", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return nil, err
		}
		return r.Async(work)
	}))
	mux.Handle("/fake/sync", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return nil, err
		}
		return work(r.Context())
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	route := openhim.Route{Name: "Fake Route", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Primary: true, Type: "http"}
	m, err := mediator.New(mediator.Config{
		Auth: mediator.InboundAuth{Open: true},
		Definition: openhim.Definition{URN: "urn:mediator:fake-budget", Version: "1.0.0", Name: "Fake budget test",
			Endpoints: []openhim.Route{route},
			DefaultChannelConfig: []openhim.Channel{{Name: "Fake Channel", URLPattern: "^/fake/.*$", Allow: []string{"fake"},
				Methods: []string{"POST"}, Type: "http", Routes: []openhim.Route{route}}}},
		Listener:     ln,
		MaxBodyBytes: -1,
		OpenHIM: openhim.Config{URL: core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
			CoreVersion: 8, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 20 * time.Millisecond},
		InstallChannels: true,
		Handler:         mux,
		ShutdownTimeout: 2 * time.Minute, // the async work and its update, on a slow machine
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	require.Eventually(t, m.Ready, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(core.Channels()) == 1 }, 5*time.Second, 20*time.Millisecond)
	core.AddClient("fake-client", "fake-pw", "fake")

	request := strings.Repeat("r", 10<<20)
	var body io.Reader = strings.NewReader(request)
	if chunked {
		body = io.MultiReader(body) // no length known: sent chunked
	}
	req, _ := http.NewRequest(http.MethodPost, core.RouterURL+path, body)
	req.SetBasicAuth("fake-client", "fake-pw")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)
	cancel() // Run's shutdown waits for the async work and its update
	require.NoError(t, <-done)
	tx, ok := core.Transaction(resp.Header.Get(mediator.HeaderTransactionID))
	require.True(t, ok)
	require.Equal(t, "Successful", tx.Status)
	require.NotEmpty(t, tx.Orchestrations)
	got := tx.Orchestrations[0].Response.Body // the mediator's, before core's own
	total := len(tx.Request.Body) + len(tx.Response.Body) + len(got)
	assert.LessOrEqual(t, total, budget, "bodies stored for the transaction")
	assert.Equal(t, request, tx.Request.Body)
	assert.Equal(t, "done", tx.Response.Body)
	assert.True(t, strings.HasSuffix(got, "\n[truncated ...]"), "the orchestration is cut")
	assert.True(t, utf8.ValidString(got) && !strings.ContainsRune(got, utf8.RuneError), "cut on a character boundary")
}
