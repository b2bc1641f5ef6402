package mediator

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logRecords are the JSON log records in logs with message msg.
func logRecords(t *testing.T, logs *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "%.200s", sc.Text())
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// waitRequestLog waits for the request's log line, which the mediator
// writes after answering.
func waitRequestLog(t *testing.T, logs *syncBuffer) map[string]any {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"msg":"mediator: request"`) }, 5*time.Second, 5*time.Millisecond)
	recs := logRecords(t, logs, "mediator: request")
	require.Len(t, recs, 1)
	return recs[0]
}

const overBudgetLog = "mediator: response body is over what core's transaction body budget leaves after the stored request: core stores it truncated"

// On the synchronous path, an answer whose body and the request body
// together exceed the transaction body budget reaches core's client whole,
// but core stores the response cut to what the request leaves (openhim-core
// src/middleware/messageStore.js storeTransaction then storeResponse, both
// through src/utils.js enforceMaxBodiesSize): the mediator logs that once
// per request, as it does for an async answer.
func TestSyncResponseOverBudgetIsLogged(t *testing.T) {
	const budget = 1000
	direct := HandlerFunc(func(r *Request) (*Result, error) {
		_, _ = io.Copy(io.Discard, r.Body)
		return &Result{StatusCode: 200, Body: []byte(strings.Repeat("r", 500))}, nil
	})
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(strings.Repeat("r", 500)))
	})
	tests := []struct {
		name    string
		h       http.Handler
		request int
		chunked bool // sent without a Content-Length
		want    bool
	}{
		{"HandlerFunc within the budget", direct, 500, false, false},
		{"HandlerFunc over the budget", direct, 501, false, true},
		{"plain handler within the budget", plain, 500, false, false},
		{"plain handler over the budget", plain, 600, false, true},
		{"chunked request over the budget", direct, 600, true, true},
		// Core cuts such a request first; what went missing is not the answer.
		{"request over the budget by itself", direct, budget, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			_, base := startMediator(t, Config{Handler: tt.h, Capture: CaptureConfig{BodyBudget: budget},
				Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			var body io.Reader = strings.NewReader(strings.Repeat("q", tt.request))
			if tt.chunked {
				body = io.MultiReader(body) // no length: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, base+"/x", body)
			require.NoError(t, err)
			req.Header.Set(HeaderTransactionID, "tx-1")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			assert.Len(t, env.Response.Body, 500, "the client gets the response whole")
			waitRequestLog(t, logs)
			warns := logRecords(t, logs, overBudgetLog)
			if !tt.want {
				assert.Empty(t, warns)
				return
			}
			require.Len(t, warns, 1, "one warning per request")
			w := warns[0]
			assert.Equal(t, "WARN", w["level"])
			assert.EqualValues(t, 500, w["response_bytes"])
			assert.EqualValues(t, tt.request, w["request_bytes"])
			assert.EqualValues(t, budget, w["budget"])
			assert.Equal(t, "tx-1", w["transaction_id"])
		})
	}
}

// A handler error of megabytes (a wrapped error carrying a server's whole
// answer) gives an envelope error.message, an error body and a log line
// within maxErrorText bytes: its start, cut between characters, and how
// many bytes were left out.
func TestHandlerErrorTextIsCapped(t *testing.T) {
	huge := strings.Repeat("é", 1<<20)
	tests := []struct {
		name string
		err  error
		want string // the message's start
		long bool
	}{
		{"short", errors.New("fhir: POST http://fhir: HTTP 500: boom"), "fhir: POST http://fhir: HTTP 500: boom", false},
		{"huge", fmt.Errorf("push report r1: %w", errors.New("server said: "+huge)), "push report r1: server said: éé", true},
	}
	marker := regexp.MustCompile(`… \(\d+ more bytes\)$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			h := HandlerFunc(func(*Request) (*Result, error) { return nil, tt.err })
			_, base := startMediator(t, Config{Handler: h, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			resp, err := http.Post(base+"/x", "text/plain", nil)
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			require.NotNil(t, env.Error)
			var answer struct{ Error string }
			require.NoError(t, json.Unmarshal([]byte(env.Response.Body), &answer))
			logged, _ := waitRequestLog(t, logs)["error"].(string)
			for what, s := range map[string]string{"error.message": env.Error.Message, "error body": answer.Error, "log": logged} {
				assert.True(t, strings.HasPrefix(s, tt.want), "%s starts %.60q, want %.60q", what, s, tt.want)
				assert.True(t, utf8.ValidString(s), "%s is UTF-8", what)
				assert.LessOrEqual(t, len(s), maxErrorText, what)
				assert.Equal(t, tt.long, marker.MatchString(s), "%s ends %q", what, s[max(0, len(s)-40):])
				if !tt.long {
					assert.Equal(t, tt.err.Error(), s, what)
				}
			}
		})
	}
}

// errTransport is a RoundTripper whose every call fails with err, as a
// dial, TLS or timeout error does.
type errTransport struct{ err error }

func (f errTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// An outbound call through Transport that fails with an error of 100 KiB
// (a dial, TLS or timeout error wrapping a long text) is recorded in its
// orchestration with an error.message within maxErrorText bytes, cut as a
// handler error's is (capText: between characters, with how many bytes
// were left out); the caller still gets the error whole.
func TestOrchestrationErrorTextIsCapped(t *testing.T) {
	huge := strings.Repeat("é", 50<<10) // 100 KiB
	tests := []struct {
		name string
		err  error
		want string // the message's start
		long bool
	}{
		{"short", errors.New("dial tcp 10.0.0.1:443: connect: connection refused"), "dial tcp 10.0.0.1:443: connect: connection refused", false},
		{"100 KiB", fmt.Errorf("tls: failed to verify certificate: %w", errors.New("x509: "+huge)), "tls: failed to verify certificate: x509: éé", true},
	}
	marker := regexp.MustCompile(`… \(\d+ more bytes\)$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &http.Client{Transport: Transport(errTransport{tt.err})}
			var callErr error
			h := HandlerFunc(func(r *Request) (*Result, error) {
				req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "https://fhir.example/Patient/p1", nil)
				if err != nil {
					return nil, err
				}
				_, callErr = client.Do(req)
				return &Result{StatusCode: http.StatusBadGateway, Body: []byte(`{"error":"upstream unreachable"}`)}, nil
			})
			_, base := startMediator(t, Config{Handler: h})
			resp, err := http.Post(base+"/x", "text/plain", nil)
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			assert.ErrorIs(t, callErr, tt.err, "the caller gets the error whole")
			require.Len(t, env.Orchestrations, 1)
			o := env.Orchestrations[0]
			require.NotNil(t, o.Error, "the failed call's error is recorded")
			s := o.Error.Message
			assert.True(t, strings.HasPrefix(s, tt.want), "error.message starts %.60q, want %.60q", s, tt.want)
			assert.True(t, utf8.ValidString(s), "error.message is UTF-8")
			assert.LessOrEqual(t, len(s), maxErrorText)
			assert.Equal(t, tt.long, marker.MatchString(s), "error.message ends %q", s[max(0, len(s)-40):])
			if !tt.long {
				assert.Equal(t, tt.err.Error(), s)
			}
		})
	}
}
