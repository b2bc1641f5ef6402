package mediator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeUpdater plays core's transactions API for the async helper.
type fakeUpdater struct {
	mu        sync.Mutex
	updates   []map[string]any
	failPuts  int  // the first failPuts updates fail
	overwrite int  // the first overwrite verifications see "Processing"
	stored    bool // core has stored the 202 answer
	storeAt   int  // ... after this many GETs
	gets      int
	results   []string // counted metric results
	// status is the stored status before any update; "" means Processing.
	status string
}

func (f *fakeUpdater) UpdateTransaction(ctx context.Context, id string, update any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failPuts > 0 {
		f.failPuts--
		return errors.New("core unreachable")
	}
	b, _ := json.Marshal(update)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	f.updates = append(f.updates, m)
	return nil
}

func (f *fakeUpdater) Do(ctx context.Context, method, path string, in, out any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	t := out.(*storedTransaction)
	if f.gets > f.storeAt {
		f.stored = true
	}
	if !f.stored {
		t.Status = "Processing"
		return nil
	}
	t.Response = &struct {
		Status int `json:"status"`
	}{Status: 202}
	switch {
	case len(f.updates) == 0 && f.status != "":
		t.Status = f.status
	case len(f.updates) == 0:
		t.Status = "Processing"
	case f.overwrite > 0:
		f.overwrite--
		t.Status = "Processing"
	default:
		t.Status, _ = f.updates[len(f.updates)-1]["status"].(string)
	}
	return nil
}

func runAsync(t *testing.T, f *fakeUpdater, work AsyncFunc) (*Result, error) {
	t.Helper()
	a := newAsyncRunner(f, slog.New(slog.DiscardHandler), func(r string) {
		f.mu.Lock()
		f.results = append(f.results, r)
		f.mu.Unlock()
	})
	a.backoff = time.Millisecond
	cfg := &handlerConfig{urn: "urn:x", capture: CaptureConfig{}.compile(), log: slog.New(slog.DiscardHandler), async: a}
	r := httptest.NewRequest(http.MethodPost, "/x", nil)
	r.Header.Set(HeaderTransactionID, "tx-9")
	var req Request
	req.init(r, newRecorder(cfg, r), cfg)
	res, err := req.Async(work)
	require.NoError(t, a.shutdown(context.Background()))
	return res, err
}

func TestAsync(t *testing.T) {
	done := func(ctx context.Context) (*Result, error) {
		AddOrchestration(ctx, Orchestration{Name: "background call"})
		return &Result{Body: []byte("finished"), Properties: map[string]any{"n": 1}}, nil
	}
	tests := []struct {
		name        string
		f           *fakeUpdater
		work        AsyncFunc
		wantUpdates int
		wantResult  string
		wantStatus  string
	}{
		{"stored first, one update", &fakeUpdater{}, done, 1, "ok", "Successful"},
		{"waits for core to store the 202", &fakeUpdater{storeAt: 3}, done, 1, "ok", "Successful"},
		{"overwritten once, updated again", &fakeUpdater{overwrite: 1}, done, 2, "ok", "Successful"},
		{"transient failures are retried", &fakeUpdater{failPuts: 2}, done, 1, "ok", "Successful"},
		{"gives up after 5 attempts", &fakeUpdater{failPuts: 99}, done, 0, "error", ""},
		{"work error is reported as Failed", &fakeUpdater{}, func(context.Context) (*Result, error) {
			return nil, errors.New("background boom")
		}, 1, "ok", "Failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := runAsync(t, tt.f, tt.work)
			require.NoError(t, err)
			assert.Equal(t, http.StatusAccepted, res.StatusCode)
			assert.Equal(t, StatusProcessing, res.Status)
			assert.JSONEq(t, `{"status":"Processing","transactionId":"tx-9"}`, string(res.Body))
			require.Len(t, tt.f.updates, tt.wantUpdates)
			assert.Equal(t, []string{tt.wantResult}, tt.f.results)
			if tt.wantUpdates == 0 {
				return
			}
			u := tt.f.updates[len(tt.f.updates)-1]
			assert.Equal(t, tt.wantStatus, u["status"])
			resp := u["response"].(map[string]any)
			assert.NotEmpty(t, resp["timestamp"])
			if tt.wantStatus == "Failed" {
				assert.Equal(t, map[string]any{"message": "background boom"}, u["error"])
				return
			}
			assert.Equal(t, "finished", resp["body"])
			assert.Equal(t, map[string]any{"n": float64(1)}, u["properties"])
			orchs := u["orchestrations"].([]any)
			assert.Equal(t, "background call", orchs[0].(map[string]any)["name"])
		})
	}
}

func TestAsyncRefusals(t *testing.T) {
	// Not served by a Mediator.
	var req Request
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	req.init(r, newRecorder(defaultHandlerConfig, r), defaultHandlerConfig)
	_, err := req.Async(func(context.Context) (*Result, error) { return nil, nil })
	assert.ErrorContains(t, err, "needs a request served by a Mediator")

	a := newAsyncRunner(&fakeUpdater{}, slog.New(slog.DiscardHandler), nil)
	cfg := &handlerConfig{capture: CaptureConfig{}.compile(), log: slog.New(slog.DiscardHandler), async: a}
	req.init(r, newRecorder(cfg, r), cfg)
	_, err = req.Async(func(context.Context) (*Result, error) { return nil, nil })
	assert.Equal(t, http.StatusBadRequest, errorStatus(err), "no transaction id: %v", err)

	r.Header.Set(HeaderTransactionID, "tx")
	req.init(r, newRecorder(cfg, r), cfg)
	require.NoError(t, a.shutdown(context.Background()))
	_, err = req.Async(func(context.Context) (*Result, error) { return nil, nil })
	assert.Equal(t, http.StatusServiceUnavailable, errorStatus(err), "after shutdown: %v", err)
}

func TestAsyncShutdownWaits(t *testing.T) {
	release := make(chan struct{})
	finished := make(chan struct{})
	a := newAsyncRunner(nil, slog.New(slog.DiscardHandler), nil) // standalone
	a.grace = 50 * time.Millisecond                              // the work ignores cancellation: don't wait the full grace
	cfg := &handlerConfig{capture: CaptureConfig{}.compile(), log: slog.New(slog.DiscardHandler), async: a}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	var req Request
	req.init(r, newRecorder(cfg, r), cfg)
	_, err := req.Async(func(ctx context.Context) (*Result, error) {
		<-release
		close(finished)
		return &Result{}, nil
	})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, a.shutdown(ctx), context.DeadlineExceeded, "work still running at the deadline")
	close(release)
	<-finished
}

// TestAsyncKeepsOrchestrationsBeforeAsync checks that the final update,
// which replaces the stored orchestrations, starts with those recorded in
// the request before Async was called.
func TestAsyncKeepsOrchestrationsBeforeAsync(t *testing.T) {
	f := &fakeUpdater{}
	a := newAsyncRunner(f, slog.New(slog.DiscardHandler), nil)
	a.backoff = time.Millisecond
	cfg := &handlerConfig{urn: "urn:x", capture: CaptureConfig{}.compile(), log: slog.New(slog.DiscardHandler), async: a}
	r := httptest.NewRequest(http.MethodPost, "/x", nil)
	r.Header.Set(HeaderTransactionID, "tx-10")
	rec := newRecorder(cfg, r)
	r = r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec))
	require.True(t, AddOrchestration(r.Context(), Orchestration{Name: "before async"}))
	var req Request
	req.init(r, rec, cfg)
	_, err := req.Async(func(ctx context.Context) (*Result, error) {
		AddOrchestration(ctx, Orchestration{Name: "background call"})
		return &Result{Body: []byte("done")}, nil
	})
	require.NoError(t, err)
	require.NoError(t, a.shutdown(context.Background()))
	require.Len(t, f.updates, 1)
	orchs, _ := f.updates[0]["orchestrations"].([]any)
	var names []string
	for _, o := range orchs {
		names = append(names, o.(map[string]any)["name"].(string))
	}
	assert.Equal(t, []string{"before async", "background call"}, names)
}

// TestAsyncShutdownWaitsForFinalUpdate checks that a shutdown whose
// deadline cancels running async work still sends the work's final
// update (Failed) before returning, within the grace.
func TestAsyncShutdownWaitsForFinalUpdate(t *testing.T) {
	f := &fakeUpdater{storeAt: 1} // the first read finds the 202 not stored: the update comes later
	a := newAsyncRunner(f, slog.New(slog.DiscardHandler), nil)
	a.backoff = time.Millisecond
	cfg := &handlerConfig{urn: "urn:x", capture: CaptureConfig{}.compile(), log: slog.New(slog.DiscardHandler), async: a}
	r := httptest.NewRequest(http.MethodPost, "/x", nil)
	r.Header.Set(HeaderTransactionID, "tx-11")
	var req Request
	req.init(r, newRecorder(cfg, r), cfg)
	started := make(chan struct{})
	_, err := req.Async(func(ctx context.Context) (*Result, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	require.NoError(t, err)
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has passed
	require.ErrorIs(t, a.shutdown(ctx), context.Canceled)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.updates, 1, "the final update is sent before shutdown returns")
	assert.Equal(t, "Failed", f.updates[0]["status"])
}

// TestPendingStatus: the 202 answer of async work says Pending Async from
// core 8.3.0, the first release whose transactions may have that status
// (src/model/transactions.js, transactionStatus.PENDING_ASYNC) and which
// gives it to an isAsynchronousProcess channel itself (src/middleware/
// messageStore.js, initiateRequest and setFinalStatus; a mediator's status
// replaces core's). Earlier cores store no such status; an unknown
// release gets Processing, which every core knows.
func TestPendingStatus(t *testing.T) {
	for _, tt := range []struct {
		release string
		want    Status
	}{
		{"4.0.5", StatusProcessing}, {"7.1.0", StatusProcessing}, {"8.0.0", StatusProcessing}, {"8.2.0", StatusProcessing},
		{"8.3.0", StatusPendingAsync}, {"8.5.0", StatusPendingAsync}, {"9.0.0", StatusPendingAsync},
		{"", StatusProcessing}, {"unknown", StatusProcessing},
	} {
		assert.Equal(t, tt.want, pendingStatus(tt.release), "release %q", tt.release)
	}
	a := newAsyncRunner(nil, slog.New(slog.DiscardHandler), nil)
	a.pending = func() Status { return StatusPendingAsync }
	cfg := &handlerConfig{urn: "urn:x", capture: CaptureConfig{}.compile(), log: slog.New(slog.DiscardHandler), async: a}
	r := httptest.NewRequest(http.MethodPost, "/x", nil)
	r.Header.Set(HeaderTransactionID, "tx-8")
	var req Request
	req.init(r, newRecorder(cfg, r), cfg)
	res, err := req.Async(func(context.Context) (*Result, error) { return nil, nil })
	require.NoError(t, err)
	require.NoError(t, a.shutdown(context.Background()))
	assert.Equal(t, StatusPendingAsync, res.Status)
	assert.JSONEq(t, `{"status":"Pending Async","transactionId":"tx-8"}`, string(res.Body))
}

// An orchestration added with AddOrchestration is copied: the request's
// envelope and the async run's update each normalize (and may cut) their
// own, on two goroutines, and the caller's Response is left as it was.
// Under -race, a shared Response is reported.
func TestAsyncManualOrchestrationNotShared(t *testing.T) {
	var mu sync.Mutex
	var added []*Response
	h := HandlerFunc(func(r *Request) (*Result, error) {
		resp := &Response{Status: 200, Headers: map[string]string{"X-Queue": "q"}, Body: "queued"}
		mu.Lock()
		added = append(added, resp)
		mu.Unlock()
		AddOrchestration(r.Context(), Orchestration{Name: "queue", Request: OrchestrationRequest{Method: "POST"}, Response: resp})
		return r.Async(func(ctx context.Context) (*Result, error) { return &Result{Body: []byte("done")}, nil })
	})
	_, base := startMediator(t, Config{Handler: h})
	for range 20 {
		resp, err := http.Post(base+"/x", "text/plain", nil)
		require.NoError(t, err)
		env := getEnvelope(t, resp)
		require.Equal(t, http.StatusAccepted, env.Response.Status)
		require.Len(t, env.Orchestrations, 1)
		assert.Equal(t, "queued", env.Orchestrations[0].Response.Body)
		assert.False(t, env.Orchestrations[0].Response.Timestamp.IsZero())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range added {
		assert.Equal(t, Response{Status: 200, Headers: map[string]string{"X-Queue": "q"}, Body: "queued"}, *r,
			"the caller's Response was written to")
	}
}

// The async update reports a Result as a HandlerFunc answers it: a status
// code outside 200-599 is a 500 Failed with the reason in the error, not
// sent to core as it is (core would store status 1000, or call 99
// Completed).
func TestAsyncInvalidStatusCodeFails(t *testing.T) {
	for _, code := range []int{99, 100, 199, 600, 1000, -1} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			f := &fakeUpdater{}
			_, err := runAsync(t, f, func(ctx context.Context) (*Result, error) {
				return &Result{StatusCode: code, Body: []byte("x")}, nil
			})
			require.NoError(t, err)
			require.Len(t, f.updates, 1)
			u := f.updates[0]
			assert.Equal(t, "Failed", u["status"])
			assert.Equal(t, float64(500), u["response"].(map[string]any)["status"])
			require.IsType(t, map[string]any{}, u["error"])
			assert.Contains(t, u["error"].(map[string]any)["message"], "invalid HTTP status")
		})
	}
}

// The transaction ID comes from the request's X-OpenHIM-TransactionID
// header, and the update is sent with the mediator's core credentials: it
// is sent only to a transaction waiting for an asynchronous answer. Core
// stores a new transaction as Processing, or Pending Async on an
// isAsynchronousProcess channel (openhim-core-js
// src/middleware/messageStore.js, storeTransaction), and setFinalStatus
// then stores the 202 answer's status, one of those two; any other status
// is a finished transaction, not this run's to replace.
func TestAsyncUpdatesOnlyAWaitingTransaction(t *testing.T) {
	tests := []struct {
		stored      string
		wantUpdates int
		wantResult  string
	}{
		{"Processing", 1, "ok"},
		{"Pending Async", 1, "ok"},
		{"Successful", 0, "refused"},
		{"Completed", 0, "refused"},
		{"Completed with error(s)", 0, "refused"},
		{"Failed", 0, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.stored, func(t *testing.T) {
			f := &fakeUpdater{status: tt.stored}
			_, err := runAsync(t, f, func(ctx context.Context) (*Result, error) {
				return &Result{Body: []byte("done")}, nil
			})
			require.NoError(t, err)
			assert.Len(t, f.updates, tt.wantUpdates)
			assert.Equal(t, []string{tt.wantResult}, f.results)
		})
	}
}

// TestAsyncBudgetCountsStoredBodies: core's updateTransaction
// (src/api/transactions.js) starts the update's body budget at the bodies
// it stored for the transaction, the request and the response (the 202
// answer), before the update's response and orchestrations
// (enforceMaxBodiesSize): the update's orchestrations are cut to what those
// leave, whether recorded before Async or by the work.
func TestAsyncBudgetCountsStoredBodies(t *testing.T) {
	const budget = 1000
	orchBody := strings.Repeat("o", 400)
	tests := []struct {
		name    string
		request int  // request body bytes
		before  bool // the orchestration is recorded before Async
		cut     bool
	}{
		{"small request, nothing cut", 100, false, false},
		{"the request leaves too little", 600, false, true},
		{"the request leaves too little, orchestration before Async", 600, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeUpdater{}
			a := newAsyncRunner(f, slog.New(slog.DiscardHandler), nil)
			a.backoff = time.Millisecond
			cfg := &handlerConfig{urn: "urn:x", capture: CaptureConfig{BodyBudget: budget}.compile(), log: slog.New(slog.DiscardHandler), async: a}
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(strings.Repeat("r", tt.request)))
			r.Header.Set(HeaderTransactionID, "tx-11")
			rec := newRecorder(cfg, r)
			r = r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec))
			o := Orchestration{Name: "call", Response: &Response{Status: 200, Body: orchBody}}
			if tt.before {
				require.True(t, AddOrchestration(r.Context(), o))
			}
			var req Request
			req.init(r, rec, cfg)
			res, err := req.Async(func(ctx context.Context) (*Result, error) {
				if !tt.before {
					AddOrchestration(ctx, o)
				}
				return &Result{Body: []byte(strings.Repeat("d", 100))}, nil
			})
			require.NoError(t, err)
			require.NoError(t, a.shutdown(context.Background()))
			require.Len(t, f.updates, 1)
			orchs := f.updates[0]["orchestrations"].([]any)
			require.Len(t, orchs, 1)
			got := orchs[0].(map[string]any)["response"].(map[string]any)["body"].(string)
			want := orchBody
			if tt.cut {
				left := budget - tt.request - len(res.Body) - 100
				want = orchBody[:left-len(truncateMarker)] + truncateMarker
			}
			assert.Equal(t, want, got)
		})
	}
}

// TestAsyncLogsResponseOverBudget: a response body over what the stored
// request and 202 answer leave of the budget is cut by core when it stores
// the update (src/api/transactions.js updateTransaction, src/utils.js
// enforceMaxBodiesSize); the work is done, so the update is sent and the
// cut is logged.
func TestAsyncLogsResponseOverBudget(t *testing.T) {
	for _, tt := range []struct {
		response int
		warn     bool
	}{{300, false}, {500, true}} {
		t.Run(strconv.Itoa(tt.response), func(t *testing.T) {
			var logs bytes.Buffer
			f := &fakeUpdater{}
			a := newAsyncRunner(f, slog.New(slog.NewTextHandler(&logs, nil)), nil)
			a.backoff = time.Millisecond
			cfg := &handlerConfig{urn: "urn:x", capture: CaptureConfig{BodyBudget: 1000}.compile(), log: slog.New(slog.DiscardHandler), async: a}
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(strings.Repeat("r", 600)))
			r.Header.Set(HeaderTransactionID, "tx-12")
			var req Request
			req.init(r, newRecorder(cfg, r), cfg)
			_, err := req.Async(func(ctx context.Context) (*Result, error) {
				return &Result{Body: []byte(strings.Repeat("d", tt.response))}, nil
			})
			require.NoError(t, err)
			require.NoError(t, a.shutdown(context.Background()))
			require.Len(t, f.updates, 1, "the update is sent")
			assert.Equal(t, tt.warn, strings.Contains(logs.String(), "core stores it truncated"), "%s", logs.String())
		})
	}
}
