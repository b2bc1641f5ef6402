package mediator_test

// e2e test of the request side through the REAL OpenHIM router (openhim-core 4.0.5 from .ci/stack.sh):
// a mediator built with this package registers, installs its default channel, receives routed requests that
// make two outbound calls, and GET /transactions shows what core stored from our envelopes.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/internal/semver"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// servingTransaction is the part of a stored transaction the test checks.
type servingTransaction struct {
	ID        string `json:"_id"`
	Status    string `json:"status"`
	AutoRetry bool   `json:"autoRetry"`
	Request   struct {
		Path string `json:"path"`
	} `json:"request"`
	Response struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	} `json:"response"`
	Orchestrations []struct {
		Name    string `json:"name"`
		Request struct {
			Method  string            `json:"method"`
			Path    string            `json:"path"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		} `json:"request"`
		Response *struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		} `json:"response"`
	} `json:"orchestrations"`
	Properties map[string]any `json:"properties"`
	Error      *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func TestE2EServingThroughRouter(t *testing.T) {
	api, router := os.Getenv("OPENHIM_API_URL"), strings.TrimRight(os.Getenv("OPENHIM_ROUTER_URL"), "/")
	if api == "" || router == "" {
		t.Skip("OPENHIM_API_URL / OPENHIM_ROUTER_URL not set; start the stack with: eval \"$(bash .ci/stack.sh start)\"")
	}
	coreCfg := openhimtest.RealCore(t) // OPENHIM_CORE_VERSION and OPENHIM_AUTH decide the version rules and the scheme
	// The 202 answer's status: Pending Async from core 8.3.0, whose release
	// the mediator reads from GET /about (as here, through the client).
	oc, err := openhim.NewClient(coreCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	release, err := oc.CoreRelease(context.Background())
	if err != nil {
		t.Fatalf("GET /about: %v", err)
	}
	t.Logf("core release %s", release)
	pending := string(mediator.StatusProcessing)
	if semver.AtLeast(release, "8.3.0") {
		pending = string(mediator.StatusPendingAsync)
	}
	finished := func(tx *servingTransaction) bool { return tx.Status != "Processing" && tx.Status != pending }
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	suffix := fmt.Sprintf("e2e-serving-%d-%s", time.Now().Unix(), hex.EncodeToString(nonce[:]))
	urn := "urn:mediator:" + suffix
	role, clientID, clientPW := "role-"+suffix, "client-"+suffix, "pw-"+suffix

	// Two upstream services the handler calls.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"service":%q,"received":%q}`, r.URL.Path, body)
	}))
	t.Cleanup(upstream.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port

	httpc := &http.Client{Transport: mediator.Transport(nil), Timeout: 10 * time.Second}
	call := func(ctx context.Context, name, path, body string) (string, error) {
		req, err := http.NewRequestWithContext(mediator.WithOrchestration(ctx, name), http.MethodPost, upstream.URL+path, strings.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer upstream-secret")
		resp, err := httpc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	twoCalls := func(ctx context.Context, in string) (*mediator.Result, error) {
		a, err := call(ctx, "cht lookup", "/cht", in)
		if err != nil {
			return nil, err
		}
		b, err := call(ctx, "fhir write", "/fhir", a)
		if err != nil {
			return nil, err
		}
		return &mediator.Result{
			StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: []byte(b), Properties: map[string]any{"run": suffix, "calls": 2},
		}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/"+suffix+"/ok", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		if r.TransactionID == "" {
			return nil, mediator.Errorf(http.StatusBadRequest, "no transaction id")
		}
		in, _ := io.ReadAll(r.Body)
		return twoCalls(r.Context(), string(in))
	}))
	mux.Handle("/"+suffix+"/fail/", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		return nil, errors.New("e2e handler failure " + suffix)
	}))
	mux.Handle("/"+suffix+"/async", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		return r.Async(func(ctx context.Context) (*mediator.Result, error) {
			// No delay: the update may reach core before core stored the
			// 202 answer; the library must make it stick anyway.
			return twoCalls(ctx, "async")
		})
	}))

	mux.Handle("/"+suffix+"/nocontent", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		return nil, nil // 204
	}))
	mux.Handle("/"+suffix+"/status/", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"+suffix+"/status/"))
		if err != nil {
			return nil, err
		}
		return &mediator.Result{StatusCode: code, Body: []byte("upstream said " + fmt.Sprint(code))}, nil
	}))
	cookies := []string{"session=abc; Path=/", "lb=x"}
	mux.Handle("/"+suffix+"/head", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		return &mediator.Result{StatusCode: http.StatusOK, Header: http.Header{"X-Found": {"yes"}}}, nil
	}))
	mux.Handle("/"+suffix+"/cookies", mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		return &mediator.Result{StatusCode: http.StatusOK, Header: http.Header{"Set-Cookie": cookies}, Body: []byte("ok")}, nil
	}))

	route := openhim.Route{Name: "Route " + suffix, Host: "127.0.0.1", Port: port, Primary: true, Type: "http"}
	m, err := mediator.New(mediator.Config{
		Auth: mediator.InboundAuth{Open: true},
		Definition: openhim.Definition{
			URN: urn, Version: "1.0.0", Name: "Serving e2e " + suffix, Description: "e2e",
			Endpoints: []openhim.Route{route},
			DefaultChannelConfig: []openhim.Channel{{
				Name: "Channel " + suffix, URLPattern: "^/" + suffix + "/.*$", Allow: []string{role},
				Methods: []string{"GET", "HEAD", "POST"}, Type: "http", Routes: []openhim.Route{route},
			}},
		},
		Listener:          ln,
		OpenHIM:           coreCfg,
		InstallChannels:   true,
		HeartbeatInterval: time.Second,
		Handler:           mux,
		Logger:            slog.New(slog.NewTextHandler(servingTestLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	require.Eventually(t, m.Ready, 30*time.Second, 100*time.Millisecond, "registered with core")

	apiCtx, apiCancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer apiCancel()
	core := m.Client()
	require.Eventually(t, func() bool {
		var chans []struct{ Name string }
		return core.Do(apiCtx, http.MethodGet, "/channels", nil, &chans) == nil && containsName(chans, "Channel "+suffix)
	}, 30*time.Second, 250*time.Millisecond, "default channel installed")
	openhimtest.CreateClient(t, core, clientID, clientPW, role)

	routed := func(path, body string) (int, string) {
		return openhimtest.Routed(t, 45*time.Second, func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, router+path, strings.NewReader(body))
			req.SetBasicAuth(clientID, clientPW)
			return req
		})
	}
	transaction := func(path string, ready func(*servingTransaction) bool) *servingTransaction {
		var tx *servingTransaction
		q := url.Values{"filterRepresentation": {"full"}, "filterLimit": {"5"},
			"filters": {fmt.Sprintf(`{"request.path":%q}`, path)}}
		require.Eventually(t, func() bool {
			var list []servingTransaction
			if err := core.Do(apiCtx, http.MethodGet, "/transactions?"+q.Encode(), nil, &list); err != nil || len(list) == 0 {
				return false
			}
			tx = &list[0]
			return ready(tx)
		}, 45*time.Second, 300*time.Millisecond, "transaction for %s", path)
		return tx
	}
	ourOrchestrations := func(t *testing.T, tx *servingTransaction, wantInput string) {
		names := map[string]int{}
		for i, o := range tx.Orchestrations {
			names[o.Name] = i
		}
		require.Contains(t, names, "cht lookup")
		require.Contains(t, names, "fhir write")
		assert.Contains(t, names, route.Name, "core's own orchestration for the route")
		cht := tx.Orchestrations[names["cht lookup"]]
		assert.Equal(t, "POST", cht.Request.Method)
		assert.Equal(t, "/cht", cht.Request.Path)
		assert.Equal(t, wantInput, cht.Request.Body)
		assert.Equal(t, "[REDACTED]", cht.Request.Headers["Authorization"])
		require.NotNil(t, cht.Response)
		assert.Equal(t, 200, cht.Response.Status)
		assert.Contains(t, cht.Response.Body, `"service":"/cht"`)
	}

	t.Run("success", func(t *testing.T) {
		path := "/" + suffix + "/ok"
		code, body := routed(path, "patient-42")
		assert.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, `"service":"/fhir"`)
		tx := transaction(path, finished)
		assert.Equal(t, "Successful", tx.Status)
		assert.Equal(t, 200, tx.Response.Status)
		assert.Equal(t, body, tx.Response.Body)
		ourOrchestrations(t, tx, "patient-42")
		assert.Equal(t, suffix, tx.Properties["run"])
		assert.EqualValues(t, 2, tx.Properties["calls"])
		assert.Nil(t, tx.Error)
	})
	t.Run("handler failure", func(t *testing.T) {
		// An envelope error makes core 4.0.5 update the transaction twice at
		// once (storeResponse, setFinalStatus/autoRetry). On FerretDB that
		// can lose the stored response (real MongoDB updates atomically):
		// the transaction stays Processing with autoRetry set and core's
		// worker restarts. Retry then.
		lost := func(tx *servingTransaction) bool {
			return tx.Status == "Processing" && tx.AutoRetry && tx.Response.Status == 0
		}
		var tx *servingTransaction
		for attempt := 1; attempt <= 3; attempt++ {
			path := fmt.Sprintf("/%s/fail/%d", suffix, attempt)
			code, body := routed(path, "")
			assert.Equal(t, http.StatusInternalServerError, code)
			assert.Contains(t, body, "e2e handler failure")
			// Lost only if it still looks so 10 s later (core may simply not
			// have stored the response yet).
			var lostSince time.Time
			tx = transaction(path, func(tx *servingTransaction) bool {
				if !lost(tx) {
					lostSince = time.Time{}
					return tx.Status != "Processing"
				}
				if lostSince.IsZero() {
					lostSince = time.Now()
				}
				return time.Since(lostSince) > 10*time.Second
			})
			if !lost(tx) {
				break
			}
			t.Logf("attempt %d: the test stack lost core's response update (FerretDB); retrying", attempt)
		}
		// The race above can also crash core's worker when the stored
		// transaction looks right; leave core up for the tests that follow.
		waitCoreUp(t, api)
		assert.Equal(t, "Failed", tx.Status)
		require.NotNil(t, tx.Error)
		assert.Equal(t, "e2e handler failure "+suffix, tx.Error.Message)
	})
	// Core parses the envelope whatever the outer status; after a 204
	// net/http sends no body, which core could not parse (500 to its
	// client, auto-retry).
	t.Run("no content", func(t *testing.T) {
		path := "/" + suffix + "/nocontent"
		code, body := routed(path, "")
		assert.Equal(t, http.StatusNoContent, code, "%s", body)
		tx := transaction(path, finished)
		assert.Equal(t, "Successful", tx.Status)
		assert.Equal(t, http.StatusNoContent, tx.Response.Status)
		assert.False(t, tx.AutoRetry)
	})
	// answer sends method path through core's router, retrying while core
	// is unreachable, and returns its answer with the body read.
	answer := func(t *testing.T, method, path string) *http.Response {
		var resp *http.Response
		require.Eventually(t, func() bool {
			req, _ := http.NewRequest(method, router+path, nil)
			req.SetBasicAuth(clientID, clientPW)
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
			resp = r
			return true
		}, 45*time.Second, 500*time.Millisecond)
		return resp
	}
	// A HEAD answer can carry no envelope: core passes the plain answer on.
	t.Run("HEAD", func(t *testing.T) {
		resp := answer(t, http.MethodHead, "/"+suffix+"/head")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "yes", resp.Header.Get("X-Found"))
	})
	// Core sets each cookie of a set-cookie array on its answer; a string
	// made it answer 500.
	t.Run("set-cookie", func(t *testing.T) {
		path := "/" + suffix + "/cookies"
		resp := answer(t, http.MethodPost, path)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, []string{"session=abc; path=/", "lb=x"}, resp.Header.Values("Set-Cookie"))
		tx := transaction(path, finished)
		assert.Equal(t, "Successful", tx.Status)
	})
	// Core 4.0.5's koa 2.3.0 refuses a status its statuses module does not
	// list (lib/response.js, set status): it answered 500 "An internal
	// server error occurred" in place of the mediator's answer. The
	// envelope sends the first code of the class and keeps the code.
	t.Run("status core 4 cannot answer", func(t *testing.T) {
		for _, c := range []struct{ code, want int }{{520, 500}, {499, 400}} {
			path := fmt.Sprintf("/%s/status/%d", suffix, c.code)
			code, body := routed(path, "")
			assert.Equal(t, c.want, code)
			assert.Equal(t, fmt.Sprintf("upstream said %d", c.code), body)
			tx := transaction(path, finished)
			assert.Equal(t, c.want, tx.Response.Status)
			assert.EqualValues(t, c.code, tx.Properties["original status"])
			assert.Nil(t, tx.Error)
			assert.False(t, tx.AutoRetry)
		}
	})
	t.Run("async", func(t *testing.T) {
		path := "/" + suffix + "/async"
		code, body := routed(path, "")
		assert.Equal(t, http.StatusAccepted, code)
		assert.Contains(t, body, pending)
		tx := transaction(path, finished)
		assert.Equal(t, "Successful", tx.Status)
		assert.Equal(t, 200, tx.Response.Status)
		assert.Contains(t, tx.Response.Body, `"service":"/fhir"`)
		assert.Equal(t, suffix, tx.Properties["run"])
		names := []string{}
		for _, o := range tx.Orchestrations {
			names = append(names, o.Name)
		}
		assert.Subset(t, names, []string{"cht lookup", "fhir write"})
	})
}

// waitCoreUp waits until core's public GET /heartbeat has answered twice in a
// row, half a second apart (a crashed worker takes ~13 s to come back).
func waitCoreUp(t *testing.T, api string) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // core's default certificate has no SAN
	}}
	defer hc.CloseIdleConnections()
	time.Sleep(time.Second)
	ok := 0
	deadline := time.Now().Add(45 * time.Second)
	for ok < 2 && time.Now().Before(deadline) {
		resp, err := hc.Get(strings.TrimRight(api, "/") + "/heartbeat")
		if err == nil {
			resp.Body.Close()
		}
		if err == nil && resp.StatusCode == http.StatusOK {
			ok++
		} else {
			ok = 0
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ok < 2 {
		t.Errorf("OpenHIM core did not come back within 45 s")
	}
}

func containsName(list []struct{ Name string }, name string) bool {
	for _, c := range list {
		if c.Name == name {
			return true
		}
	}
	return false
}

var _ = json.Marshal

// servingTestLog sends the mediator's logs to the test log.
type servingTestLog struct{ t *testing.T }

func (w servingTestLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
