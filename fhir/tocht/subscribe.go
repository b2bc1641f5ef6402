package tocht

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// newFHIRClient is the client of Config.FHIRURL used for the EMR's Subscriptions.
func newFHIRClient(cfg Config, hc *http.Client) (*fhir.Client, error) {
	if cfg.FHIRURL == "" {
		return nil, errors.New("tocht: NotifyEMR needs FHIRURL (the Subscription is created there)")
	}
	return fhir.NewClient(fhir.ClientConfig{BaseURL: cfg.FHIRURL, Username: cfg.FHIRUsername,
		Password: cfg.FHIRPassword, HTTPClient: hc, Logger: cfg.Logger})
}

// executeWithSubscription writes a Task's CHT report after making sure the FHIR server holds the
// rest-hook Subscription that tells the EMR when the Task is closed; when the CHT write fails, a
// Subscription made by this request is deleted again, so none is left dangling. A Subscription
// that existed before is never deleted, and the requests of one Task are serialised, so that
// no request deletes a Subscription another one made or relies on. (Bridges in separate
// processes do not serialise: run one fhir-to-cht per FHIR server with NotifyEMR.)
func (b *Bridge) executeWithSubscription(ctx context.Context, u *unit) (created bool, err error) {
	t, ok := u.resource.(*models.Task)
	if b.fhir == nil || u.skip || !ok || t.Id == nil || *t.Id == "" {
		return b.execute(ctx, u)
	}
	// One request per Task at a time: the Subscription's id is the Task's,
	// so a concurrent request for the same Task would rely on the
	// Subscription this one may remove again (or make it too, and both
	// would remove it).
	unlock, err := b.tasks.lock(ctx, *t.Id)
	if err != nil {
		return false, &Error{Status: http.StatusGatewayTimeout,
			Err: fmt.Errorf("another request for Task %s is still being written: %w", *t.Id, err)}
	}
	defer unlock()
	// The Subscription carries the EMR endpoint's credentials
	// (NotifyEMR.Header): its calls are recorded without bodies, which
	// OpenHIM core would store for anyone who may view transactions.
	_, undo, err := b.fhir.SubscribeTask(mediator.WithoutBodies(mediator.WithOrchestration(ctx, "FHIR subscribe Task")), *t.Id, *b.cfg.NotifyEMR)
	if err != nil {
		return false, subscribeFailure(err)
	}
	created, err = b.execute(ctx, u)
	if err != nil {
		// The request failed: remove the Subscription even if the caller's context is done.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
		defer cancel()
		if uerr := undo(mediator.WithoutBodies(mediator.WithOrchestration(uctx, "FHIR remove Subscription"))); uerr != nil {
			b.log.ErrorContext(ctx, "CHT write failed and its Subscription could not be removed", "task", *t.Id, "err", uerr)
			return false, errors.Join(err, uerr)
		}
	}
	return created, err
}

// subscribeFailure is the error of a failed SubscribeTask: a failure of
// the FHIR server or of the network to it (502, or 504 on a timeout) is
// retried by the sender; any other, such as a NotifyEMR endpoint that is
// not an absolute http(s) URL or a 401 or 403 of the FHIR server, is the
// mediator's configuration: 500,
// which the sender must not retry until the settings are fixed.
func subscribeFailure(err error) error {
	if refused := credentialsRefused(err); refused != nil {
		return refused
	}
	var se *fhir.ServerError
	var ue *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Err: err}
	case errors.As(err, &se), errors.As(err, &ue), errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusBadGateway, Err: err}
	}
	return &Error{Status: http.StatusInternalServerError,
		Err: fmt.Errorf("mediator configuration (tocht.Config.NotifyEMR, notify_emr): %w", err)}
}

// keyLocks is a mutex per key (a Task id), held by at most one request; an
// entry lives while a request holds or waits for it.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	held chan struct{} // holds a token while the lock is held
	refs int           // requests holding or waiting
}

// lock waits until key is free or ctx is done, and returns the function
// that frees it.
func (l *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*keyLock{}
	}
	k := l.locks[key]
	if k == nil {
		k = &keyLock{held: make(chan struct{}, 1)}
		l.locks[key] = k
	}
	k.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.locks, key)
		}
		l.mu.Unlock()
	}
	select {
	case k.held <- struct{}{}:
		return func() { <-k.held; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
