package mediator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testDefinition(urn string) openhim.Definition {
	return openhim.Definition{URN: urn, Version: "1.0.0", Name: "Test Mediator",
		Endpoints: []openhim.Route{{Name: "Test Route", Host: "127.0.0.1", Port: 8080, Primary: true, Type: "http"}}}
}

// startMediator runs a standalone mediator on a loopback port until the
// test ends and returns it with its base URL.
func startMediator(t *testing.T, cfg Config) (*Mediator, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg.Listener = ln
	if cfg.Auth == (InboundAuth{}) {
		cfg.Auth.Open = true
	}
	if cfg.Definition.URN == "" {
		cfg.Definition = testDefinition("urn:mediator:test-" + strings.ToLower(t.Name()))
	}
	m, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	return m, "http://" + ln.Addr().String()
}

func getEnvelope(t *testing.T, resp *http.Response) *Envelope {
	t.Helper()
	defer resp.Body.Close()
	assert.Equal(t, ContentType, resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	env, err := ParseEnvelope(body)
	require.NoError(t, err, "%s", body)
	assert.Equal(t, outerStatus(env.Response.Status), resp.StatusCode, "outer status mirrors response.status")
	return env
}

func TestNewValidates(t *testing.T) {
	h := http.NotFoundHandler()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no handler", Config{Definition: testDefinition("urn:a")}, "Handler is required"},
		{"no urn", Config{Handler: h}, "URN is required"},
		{"negative timeout", Config{Handler: h, Definition: testDefinition("urn:a"), ReadTimeout: -1}, "ReadTimeout must not be negative"},
		{"bad core URL", Config{Handler: h, Definition: testDefinition("urn:a"), OpenHIM: openhim.Config{URL: "ftp://x"},
			Auth: InboundAuth{Open: true}}, "Config.URL must be http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
	m, err := New(Config{Auth: InboundAuth{Open: true}, Handler: h, Definition: testDefinition("urn:a")})
	require.NoError(t, err)
	assert.True(t, m.Standalone())
	assert.Nil(t, m.Addr(), "New does not listen")
	assert.False(t, m.Ready())
}

func TestMediatorHandlerFunc(t *testing.T) {
	up := upstream(t)
	client := &http.Client{Transport: Transport(nil)}
	mux := http.NewServeMux()
	mux.Handle("POST /patients", HandlerFunc(func(r *Request) (*Result, error) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		var got []string
		for i, name := range []string{"first call", "second call"} {
			req, _ := http.NewRequestWithContext(WithOrchestration(r.Context(), name), http.MethodPost, up.URL+"/up", bytes.NewReader(body))
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = append(got, string(b))
			_ = i
		}
		res, err := JSONResult(http.StatusCreated, map[string]any{"tx": r.TransactionID, "client": r.ClientID, "got": got})
		if err != nil {
			return nil, err
		}
		res.Properties = map[string]any{"calls": 2}
		return res, nil
	}))
	mux.Handle("GET /fail", HandlerFunc(func(r *Request) (*Result, error) {
		return nil, errors.New("cht unreachable")
	}))
	mux.Handle("GET /bad", HandlerFunc(func(r *Request) (*Result, error) {
		return nil, Errorf(http.StatusBadRequest, "missing field %q", "patient_id")
	}))
	mux.Handle("GET /panic", HandlerFunc(func(r *Request) (*Result, error) { panic("kaboom") }))
	mux.Handle("GET /status", HandlerFunc(func(r *Request) (*Result, error) {
		return &Result{Status: StatusCompletedWithErrors, Body: []byte("partly")}, nil
	}))
	mux.Handle("GET /badstatus", HandlerFunc(func(r *Request) (*Result, error) { return &Result{Status: "Great"}, nil }))
	_, base := startMediator(t, Config{Handler: mux})

	t.Run("result with two orchestrations", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, base+"/patients", strings.NewReader("abc"))
		req.Header.Set(HeaderTransactionID, "tx-1")
		req.Header.Set(HeaderClientID, "client-1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		env := getEnvelope(t, resp)
		assert.Equal(t, "urn:mediator:test-testmediatorhandlerfunc", env.MediatorURN)
		assert.Equal(t, StatusSuccessful, env.Status)
		assert.Equal(t, 201, env.Response.Status)
		assert.JSONEq(t, `{"tx":"tx-1","client":"client-1","got":["got 3 bytes: abc","got 3 bytes: abc"]}`, env.Response.Body)
		assert.Equal(t, "application/json", env.Response.Headers["Content-Type"])
		require.Len(t, env.Orchestrations, 2)
		assert.Equal(t, "first call", env.Orchestrations[0].Name)
		assert.Equal(t, "second call", env.Orchestrations[1].Name)
		assert.Equal(t, "abc", env.Orchestrations[1].Request.Body)
		assert.Equal(t, map[string]any{"calls": float64(2)}, env.Properties)
		assert.Nil(t, env.Error)
	})
	tests := []struct {
		path       string
		wantCode   int
		wantStatus Status
		wantError  string // envelope error.message; "" = none
		wantBody   string
	}{
		{"/fail", 500, StatusFailed, "cht unreachable", `{"error":"cht unreachable"}`},
		{"/bad", 400, StatusCompleted, "", `{"error":"missing field \"patient_id\""}`},
		{"/panic", 500, StatusFailed, "mediator: handler panic: kaboom", ""},
		{"/status", 200, StatusCompletedWithErrors, "", "partly"},
		{"/badstatus", 500, StatusFailed, `mediator: invalid status "Great"`, ""},
		{"/nothing-here", 404, StatusCompleted, "", "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(base + tt.path)
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			assert.Equal(t, tt.wantCode, env.Response.Status)
			assert.Equal(t, tt.wantStatus, env.Status)
			if tt.wantError == "" {
				assert.Nil(t, env.Error)
			} else if assert.NotNil(t, env.Error) {
				assert.Equal(t, tt.wantError, env.Error.Message)
			}
			if tt.wantBody != "" {
				assert.Equal(t, tt.wantBody, env.Response.Body)
			}
		})
	}
	t.Run("panic has a stack", func(t *testing.T) {
		resp, err := http.Get(base + "/panic")
		require.NoError(t, err)
		env := getEnvelope(t, resp)
		require.NotNil(t, env.Error)
		assert.Contains(t, env.Error.Stack, "goroutine")
	})
}

func TestMediatorPlainHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Extra", "1")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "accepted ")
		io.WriteString(w, "twice")
	})
	mux.HandleFunc("GET /own-envelope", func(w http.ResponseWriter, r *http.Request) {
		_ = WriteEnvelope(w, &Envelope{MediatorURN: "urn:custom", Status: StatusCompleted, Response: Response{Status: 409, Body: "own"}})
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) { panic(errors.New("plain kaboom")) })
	_, base := startMediator(t, Config{Handler: mux})

	resp, err := http.Get(base + "/plain")
	require.NoError(t, err)
	env := getEnvelope(t, resp)
	assert.Equal(t, 202, env.Response.Status)
	assert.Equal(t, "accepted twice", env.Response.Body)
	assert.Equal(t, map[string]string{"Content-Type": "text/plain", "X-Extra": "1"}, env.Response.Headers)
	assert.Equal(t, StatusSuccessful, env.Status)

	resp, err = http.Get(base + "/own-envelope")
	require.NoError(t, err)
	env = getEnvelope(t, resp)
	assert.Equal(t, "urn:custom", env.MediatorURN, "an envelope written by the handler passes through")
	assert.Equal(t, StatusCompleted, env.Status)

	resp, err = http.Get(base + "/panic")
	require.NoError(t, err)
	env = getEnvelope(t, resp)
	assert.Equal(t, StatusFailed, env.Status)
	require.NotNil(t, env.Error)
	assert.Equal(t, "mediator: handler panic: plain kaboom", env.Error.Message)
}

func TestMediatorBodyLimit(t *testing.T) {
	h := HandlerFunc(func(r *Request) (*Result, error) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		return &Result{Body: b}, nil
	})
	_, base := startMediator(t, Config{Handler: h, MaxBodyBytes: 10})
	tests := []struct {
		name      string
		body      io.Reader
		wantCode  int
		wantInErr string
	}{
		{"within", strings.NewReader("0123456789"), 200, ""},
		{"content-length over", strings.NewReader("0123456789A"), 413, "exceeds the limit of 10 bytes"},
		{"chunked over", io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("ABC")), 413, "request body too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(base+"/x", "text/plain", tt.body)
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			assert.Equal(t, tt.wantCode, env.Response.Status)
			if tt.wantInErr != "" {
				var e struct{ Error string }
				require.NoError(t, json.Unmarshal([]byte(env.Response.Body), &e), "the body is a JSON error")
				assert.Contains(t, e.Error, tt.wantInErr)
				assert.Equal(t, StatusCompleted, env.Status)
			}
		})
	}
}

func TestMediatorErrorBody(t *testing.T) {
	h := HandlerFunc(func(r *Request) (*Result, error) {
		if _, err := io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		return nil, Errorf(http.StatusUnprocessableEntity, "bad resource")
	})
	outcome := func(code int, err error) (string, []byte) {
		return "application/fhir+json", []byte(`{"resourceType":"OperationOutcome","issue":[{"diagnostics":` +
			string(appendString(nil, err.Error())) + `}]}`)
	}
	_, base := startMediator(t, Config{Handler: h, MaxBodyBytes: 4, ErrorBody: outcome})
	tests := []struct {
		body     string
		wantCode int
		wantDiag string
	}{
		{"abc", 422, "bad resource"},
		{"too long", 413, "exceeds the limit of 4 bytes"},
	}
	for _, tt := range tests {
		resp, err := http.Post(base+"/Patient", "application/fhir+json", strings.NewReader(tt.body))
		require.NoError(t, err)
		env := getEnvelope(t, resp)
		assert.Equal(t, tt.wantCode, env.Response.Status)
		assert.Equal(t, "application/fhir+json", env.Response.Headers["Content-Type"])
		var oo struct {
			ResourceType string
			Issue        []struct{ Diagnostics string }
		}
		require.NoError(t, json.Unmarshal([]byte(env.Response.Body), &oo))
		assert.Equal(t, "OperationOutcome", oo.ResourceType)
		assert.Contains(t, oo.Issue[0].Diagnostics, tt.wantDiag)
	}
}

func TestMediatorProbesAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	up := upstream(t)
	client := &http.Client{Transport: Transport(nil)}
	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", HandlerFunc(func(r *Request) (*Result, error) {
		req, _ := http.NewRequestWithContext(WithOrchestration(r.Context(), "lookup"), http.MethodGet, up.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return &Result{Body: []byte(r.PathValue("id"))}, nil
	}))
	m, base := startMediator(t, Config{Handler: mux, Registry: reg})
	require.Eventually(t, func() bool { return m.Addr() != nil }, 5*time.Second, 10*time.Millisecond)

	for path, want := range map[string]string{"/healthz": `{"status":"ok"}`, "/readyz": `{"status":"ready"}`} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, path)
		assert.Equal(t, want, string(b), path)
	}
	for _, id := range []string{"1", "2"} {
		resp, err := http.Get(base + "/items/" + id)
		require.NoError(t, err)
		env := getEnvelope(t, resp)
		assert.Equal(t, id, env.Response.Body)
	}
	// Metrics are recorded just after the answer is sent.
	var text string
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(b)
		return strings.Contains(text, `openhim_mediator_request_duration_seconds_count{route="GET /items/{id}"} 2`) &&
			strings.Contains(text, `openhim_mediator_requests_in_flight 0`)
	}, 5*time.Second, 10*time.Millisecond)
	assert.Contains(t, text, `openhim_mediator_requests_total{code="200",route="GET /items/{id}",status="Successful"} 2`)
	assert.Contains(t, text, `openhim_mediator_request_duration_seconds_count{route="GET /items/{id}"} 2`)
	assert.Contains(t, text, `openhim_mediator_orchestration_duration_seconds_count{name="lookup"} 2`)
	assert.Contains(t, text, `openhim_mediator_requests_in_flight 0`)
}

func TestMediatorRunListenError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	m, err := New(Config{Auth: InboundAuth{Open: true}, Handler: http.NotFoundHandler(), Definition: testDefinition("urn:mediator:busy"), Listen: busy.Addr().String()})
	require.NoError(t, err)
	err = m.Run(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "mediator: listen")
}

func TestMediatorPlainHandlerFlushIsBuffered(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part 1, ")
		require.NoError(t, http.NewResponseController(w).Flush())
		w.(http.Flusher).Flush()
		io.WriteString(w, "part 2")
	})
	_, base := startMediator(t, Config{Handler: h})
	resp, err := http.Get(base + "/stream")
	require.NoError(t, err)
	env := getEnvelope(t, resp)
	assert.Equal(t, "part 1, part 2", env.Response.Body, "a flush does not send a partial, unwrapped answer")
}

func TestMediatorRequestLog(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	h := HandlerFunc(func(r *Request) (*Result, error) { return nil, errors.New("upstream down") })
	_, base := startMediator(t, Config{Handler: h, Logger: logger})
	req, _ := http.NewRequest(http.MethodPost, base+"/x?token=querysecret", strings.NewReader("bodysecret"))
	req.Header.Set("Authorization", "Bearer headersecret")
	req.Header.Set(HeaderTransactionID, "tx-log")
	req.Header.Set(HeaderClientID, "client-log")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	// The line is written after the answer is sent.
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), `"mediator: request"`) }, 5*time.Second, 5*time.Millisecond)
	var line map[string]any
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `"mediator: request"`) {
			require.NoError(t, json.Unmarshal([]byte(l), &line))
		}
	}
	require.NotNil(t, line, "request logged: %s", buf.String())
	assert.Equal(t, "tx-log", line["transaction_id"])
	assert.Equal(t, "client-log", line["client_id"])
	assert.Equal(t, "WARN", line["level"])
	assert.Equal(t, "upstream down", line["error"])
	assert.EqualValues(t, 500, line["code"])
	assert.Equal(t, "Failed", line["status"])
	for _, secret := range []string{"querysecret", "bodysecret", "headersecret"} {
		assert.NotContains(t, buf.String(), secret)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMediatorGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := HandlerFunc(func(r *Request) (*Result, error) {
		close(started)
		<-release
		return &Result{Body: []byte("finished")}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m, err := New(Config{Auth: InboundAuth{Open: true}, Handler: h, Listener: ln, Definition: testDefinition("urn:mediator:shutdown")})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	var wg sync.WaitGroup
	var body string
	wg.Go(func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if assert.NoError(t, err) {
			body = getEnvelope(t, resp).Response.Body
		}
	})
	<-started
	cancel() // shutdown begins with a request in flight
	select {
	case err := <-done:
		t.Fatalf("Run returned before the in-flight request finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	assert.Equal(t, "finished", body, "the in-flight request was drained")
	assert.NoError(t, <-done)
	assert.False(t, m.Ready())
	assert.ErrorIs(t, m.ListenAndServe(), http.ErrServerClosed, "not reusable after shutdown")
}

// TestMediatorInvalidStatus checks that a status net/http can't write
// (or that is no final answer) is answered as a 500 Failed envelope naming
// it, never a panic and a reset connection.
func TestMediatorInvalidStatus(t *testing.T) {
	mux := http.NewServeMux()
	for _, code := range []int{42, 150, 600, 1000} {
		mux.Handle(fmt.Sprintf("GET /func/%d", code), HandlerFunc(func(r *Request) (*Result, error) {
			return &Result{StatusCode: code, Body: []byte("x")}, nil
		}))
	}
	for _, code := range []int{42, 1000} {
		mux.HandleFunc(fmt.Sprintf("GET /plain/%d", code), func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			_, _ = io.WriteString(w, "x")
		})
	}
	_, base := startMediator(t, Config{Handler: mux})
	tests := []struct {
		path string
		code int
	}{
		{"/func/42", 42}, {"/func/150", 150}, {"/func/600", 600}, {"/func/1000", 1000},
		{"/plain/42", 42}, {"/plain/1000", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(base + tt.path)
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			assert.Equal(t, http.StatusInternalServerError, env.Response.Status)
			assert.Equal(t, StatusFailed, env.Status)
			require.NotNil(t, env.Error)
			assert.Contains(t, env.Error.Message, fmt.Sprintf("invalid HTTP status %d", tt.code))
		})
	}
}

// TestMediatorPlainHandlerOwnEnvelopeKeepsOrchestrations checks that a
// plain handler writing its own envelope gets the orchestrations recorded
// through Transport added, and that a body that isn't an envelope passes
// through as written.
func TestMediatorPlainHandlerOwnEnvelopeKeepsOrchestrations(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(up.Close)
	client := &http.Client{Transport: Transport(nil)}
	call := func(r *http.Request) {
		req, _ := http.NewRequestWithContext(WithOrchestration(r.Context(), "lookup"), http.MethodGet, up.URL, nil)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /own", func(w http.ResponseWriter, r *http.Request) {
		call(r)
		_ = WriteEnvelope(w, &Envelope{MediatorURN: "urn:custom", Response: Response{Status: 200, Body: "own"},
			Orchestrations: []Orchestration{{Name: "handler's own", Request: OrchestrationRequest{Method: "GET"}}}})
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		call(r)
		w.Header().Set("Content-Type", ContentType)
		_, _ = io.WriteString(w, "not json")
	})
	_, base := startMediator(t, Config{Handler: mux})

	resp, err := http.Get(base + "/own")
	require.NoError(t, err)
	env := getEnvelope(t, resp)
	assert.Equal(t, "urn:custom", env.MediatorURN)
	assert.Equal(t, "own", env.Response.Body)
	var names []string
	for _, o := range env.Orchestrations {
		names = append(names, o.Name)
	}
	assert.ElementsMatch(t, []string{"handler's own", "lookup"}, names)

	resp, err = http.Get(base + "/broken")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "not json", string(body))
}
