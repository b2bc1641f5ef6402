package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/internal/semver"
)

// transactionUpdater is what the async helper needs from [openhim.Client].
type transactionUpdater interface {
	UpdateTransaction(ctx context.Context, id string, update any) error
	Do(ctx context.Context, method, path string, in, out any) error
}

// AsyncFunc does the work of an asynchronous request. Its context carries
// a recorder, so calls made with it through [Transport] are recorded; it is
// cancelled if the mediator's shutdown deadline passes.
type AsyncFunc func(ctx context.Context) (*Result, error)

// asyncShutdownGrace bounds how long shutdown waits, after its deadline
// has cancelled the async work, for the work to send its final transaction
// update (the client already got 202; without the update the transaction
// stays Processing).
const asyncShutdownGrace = 5 * time.Second

// asyncRunner owns the goroutines of asynchronous requests.
type asyncRunner struct {
	updater transactionUpdater // nil in standalone mode
	log     *slog.Logger
	backoff time.Duration // first retry delay of a failed update
	grace   time.Duration // how long shutdown waits for the final updates after cancelling
	updates func(result string)
	// pending returns the status of the 202 answer: Pending Async on core
	// 8.3 and later (which give an isAsynchronousProcess channel's
	// transaction that status themselves, and a mediator status replaces
	// core's), Processing on earlier cores, which do not know Pending
	// Async, and while the release is unknown.
	pending func() Status

	ctx    context.Context // cancelled when shutdown gives up waiting
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and the Add side of wg
	closed bool
	wg     sync.WaitGroup
}

func newAsyncRunner(u transactionUpdater, log *slog.Logger, updates func(string)) *asyncRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &asyncRunner{updater: u, log: log, backoff: time.Second, grace: asyncShutdownGrace,
		updates: updates, ctx: ctx, cancel: cancel, pending: func() Status { return StatusProcessing }}
}

// Async answers the request now, with HTTP 202 and status Pending Async
// on core 8.3 and later, which give an isAsynchronousProcess channel's
// transaction that status until the update (the mediator's status would
// replace it), and Processing on earlier cores, which do not know Pending
// Async (the release is read from core's GET /about after registering;
// until then, and when core does not tell it, Processing), and
// runs fn in the background. When fn returns, the transaction is updated
// through core's API (PUT /transactions/:id) with the final status,
// response, orchestrations, properties and error. Core replaces the stored
// orchestrations with those of the update, so the update carries the
// orchestrations recorded in this request before Async was called (the
// ones the 202 answer reports), then those of fn. Orchestrations added to
// the 202 answer after Async returns (e.g. Result.Orchestrations of the
// handler) are not carried over and are lost with the update. Core
// counts the request and the 202 answer it stored against the
// transaction's body budget ([CaptureConfig.BodyBudget]) before the
// update's bodies, so the update's orchestrations are cut, last first, to
// what is left after them and the response; a response body over it is
// logged (core stores it cut). The update is checked (core stores the 202 answer
// after it arrives, which can overwrite an early update) and retried with
// backoff, then logged if it still fails. It is not sent, and is logged,
// when the stored transaction is not Processing or Pending Async: the
// transaction ID comes from the request, and a finished transaction is
// not this run's to replace.
// In standalone mode the outcome is only logged. A [Mediator]'s shutdown
// waits for running async work.
//
// Async fails when the request has no X-OpenHIM-TransactionID (and the
// mediator is registered with core), when it is not served by a
// [Mediator], and once the mediator is shutting down.
func (r *Request) Async(fn AsyncFunc) (*Result, error) {
	a := r.cfg.async
	if a == nil {
		return nil, errors.New("mediator: Async needs a request served by a Mediator")
	}
	id := r.TransactionID
	if a.updater != nil && id == "" {
		return nil, Errorf(http.StatusBadRequest, "mediator: async request without %s header", HeaderTransactionID)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, Errorf(http.StatusServiceUnavailable, "mediator: shutting down")
	}
	a.wg.Add(1)
	a.mu.Unlock()
	cfg := r.cfg
	pending := a.pending()
	body, _ := json.Marshal(map[string]string{"status": string(pending), "transactionId": id})
	var prior []Orchestration
	// Core's updateTransaction (src/api/transactions.js) starts the
	// update's body budget at the bodies it stored: the request and the
	// response, this 202 answer's body.
	stored := int64(len(body))
	if r.rec != nil {
		prior = r.rec.snapshot(false)
		stored += r.rec.txn.requestBytes()
	}
	go a.run(cfg, id, prior, stored, fn)
	return &Result{
		Status:     pending,
		StatusCode: http.StatusAccepted,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       body,
	}, nil
}

// run does the async work and sends the final update. stored is the size
// of the bodies core stored for the transaction (its request and the 202
// answer), which core's updateTransaction counts against the body budget
// before the update's response and orchestrations: the orchestrations are
// cut to fit what is left (core would cut them, or the response, itself).
func (a *asyncRunner) run(cfg *handlerConfig, id string, prior []Orchestration, stored int64, fn AsyncFunc) {
	defer a.wg.Done()
	rec := newRecorder(cfg, nil)
	rec.txn.reqBytes = stored // reserved by the envelope's fitBodies
	ctx := context.WithValue(a.ctx, recorderKey{}, rec)
	res, stack, err := callHandler(func(*Request) (*Result, error) { return fn(ctx) }, nil)
	env := rec.resultEnvelope(res, stack, err) // as a HandlerFunc answers
	if len(prior) > 0 {
		now := time.Now()
		for i := range prior {
			normalizeOrchestration(&prior[i], now)
		}
		env.Orchestrations = append(prior, env.Orchestrations...)
		fitBodies(env.Orchestrations, stored+int64(len(env.Response.Body)), rec.cfg.budget)
	}
	log := a.log.With("transaction_id", id)
	if a.updater == nil {
		log.Info("mediator: async request done (standalone, not reported to core)",
			"status", env.Status, "code", env.Response.Status)
		return
	}
	if b := rec.cfg.budget; b > 0 && stored+int64(len(env.Response.Body)) > b {
		// Core keeps the stored request and cuts the response it stores
		// (src/utils.js enforceMaxBodiesSize): the work is done, only its
		// stored record is short.
		log.Warn("mediator: async response body is over what core's transaction body budget leaves after the stored request: core stores it truncated",
			"response_bytes", len(env.Response.Body), "stored_bytes", stored, "budget", b)
	}
	update := transactionUpdate(env)
	if t := a.waitStored(id, log); t != nil && !mayFinish(t.Status) {
		// The id comes from the request's header: never let it finish
		// (with the mediator's credentials) a transaction that is not
		// waiting for this answer.
		a.count("refused")
		log.Error("mediator: async transaction not updated: it is not waiting for an asynchronous answer",
			"stored_status", t.Status, "status", env.Status)
		return
	}
	delay := a.backoff
	for attempt := 1; ; attempt++ {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), 30*time.Second)
		err = a.updater.UpdateTransaction(uctx, id, update)
		if err == nil {
			// Check the update stuck (see waitStored).
			stored, gerr := a.stored(uctx, id)
			switch {
			case gerr != nil:
				log.Warn("mediator: async transaction updated but not verified", "error", gerr)
			case stored.Status != string(env.Status):
				err = fmt.Errorf("mediator: transaction status is %q after the update, not %q (overwritten by core storing the 202 answer)", stored.Status, env.Status)
			}
		}
		cancel()
		if err == nil {
			a.count("ok")
			log.Info("mediator: async transaction updated", "status", env.Status, "code", env.Response.Status, "attempts", attempt)
			return
		}
		if attempt == 5 || a.ctx.Err() != nil {
			a.count("error")
			log.Error("mediator: async transaction update failed; the transaction keeps the status of the 202 answer",
				"status", env.Status, "attempts", attempt, "error", err)
			return
		}
		log.Warn("mediator: async transaction update failed, retrying", "attempt", attempt, "error", err)
		select {
		case <-time.After(delay):
		case <-a.ctx.Done():
		}
		delay *= 2
	}
}

// storedTransaction is what the async helper reads back from core.
type storedTransaction struct {
	Status   string `json:"status"`
	Response *struct {
		Status int `json:"status"`
	} `json:"response"`
}

func (a *asyncRunner) stored(ctx context.Context, id string) (*storedTransaction, error) {
	var t storedTransaction
	err := a.updater.Do(ctx, http.MethodGet, "/transactions/"+url.PathEscape(id), nil, &t)
	return &t, err
}

// waitStored waits (up to 10 s) until core has stored the 202 answer,
// and returns the stored transaction (nil if it did not see it stored).
// Core stores a route's answer asynchronously after it arrives, with a
// plain overwrite: an update that reached core first would be lost.
func (a *asyncRunner) waitStored(id string, log *slog.Logger) *storedTransaction {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), 10*time.Second)
	defer cancel()
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		t, err := a.stored(ctx, id)
		if err == nil && t.Response != nil && t.Response.Status != 0 {
			return t
		}
		select {
		case <-ctx.Done():
			log.Warn("mediator: core has not stored the 202 answer yet; updating anyway", "error", err)
			return nil
		case <-time.After(wait):
		}
	}
}

// mayFinish reports whether a stored transaction status is one an async
// run may replace: the status core gives a transaction when it arrives
// (Processing, or Pending Async on an isAsynchronousProcess channel:
// openhim-core-js src/middleware/messageStore.js, storeTransaction), or
// the one of the 202 answer, which core's setFinalStatus stores in its
// place (a mediator's status overrides core's). Any other status is a
// finished transaction: one whose id a caller put in the header, or one
// already updated.
func mayFinish(status string) bool {
	return status == string(StatusProcessing) || status == string(StatusPendingAsync)
}

func (a *asyncRunner) count(result string) {
	if a.updates != nil {
		a.updates(result)
	}
}

// transactionUpdate is the body of PUT /transactions/:id: a partial
// transaction. It is a plain overwrite, so that retries are idempotent; the
// orchestrations replace those stored with the 202 answer.
func transactionUpdate(env *Envelope) map[string]any {
	u := map[string]any{
		"status":   env.Status,
		"response": json.RawMessage(appendResponse(nil, &env.Response)),
	}
	if len(env.Orchestrations) > 0 {
		b := []byte{'['}
		for i := range env.Orchestrations {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendOrchestration(b, &env.Orchestrations[i])
		}
		u["orchestrations"] = json.RawMessage(append(b, ']'))
	}
	if len(env.Properties) > 0 {
		u["properties"] = env.Properties
	}
	if env.Error != nil {
		u["error"] = env.Error
	}
	return u
}

// shutdown stops accepting async work and waits for running work until
// ctx is done; then it cancels the work's context, waits up to a.grace
// more for the final updates (now reporting the cancelled work as Failed)
// to be sent, and returns ctx.Err().
func (a *asyncRunner) shutdown(ctx context.Context) error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		a.cancel()
		return nil
	case <-ctx.Done():
		// Cancel the work's context, then give the final updates a
		// short bounded grace: the deadline wins, but not by dropping
		// updates that are about to be sent.
		a.cancel()
		t := time.NewTimer(a.grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			a.log.Warn("mediator: shutdown did not wait for all async transaction updates", "grace", a.grace.String())
		}
		return ctx.Err()
	}
}

// pendingStatus is the status of an async 202 answer on core release
// rel: Pending Async from 8.3.0 (src/model/transactions.js has no such
// status before), else Processing.
func pendingStatus(rel string) Status {
	if semver.AtLeast(rel, "8.3.0") {
		return StatusPendingAsync
	}
	return StatusProcessing
}
