package tocht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/search"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/subscription"
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

// closedStatuses are the Task statuses after which nothing more is done for
// a referral (the terminal states of the R4 Task state machine).
var closedStatuses = []string{"completed", "failed", "rejected", "cancelled", "entered-in-error"}

const (
	// subscriptionPage is how many Subscriptions one search asks for.
	subscriptionPage = 100
	// taskBatch is how many Tasks one search asks for by _id: with ids of
	// up to 64 characters, a URL of about 1.5 KB.
	taskBatch = 20
	// maxSweepErrors is how many failures of single Tasks a sweep goes on
	// after: more mean the server is failing, not a Task.
	maxSweepErrors = 10
)

// RemoveClosedSubscriptions deletes the Subscriptions that NotifyEMR made, for its endpoint, whose
// Task is closed (completed, failed, rejected, cancelled or entered-in-error) and last changed
// before closedBefore, and returns how many it deleted. A FHIR server keeps a Subscription until it
// is deleted (HAPI ignores Subscription.end) and matches every active one against each Task
// written, so without this they accumulate, one per referral. Call it periodically, with a
// closedBefore far enough in the past, such as a day, for the server to have delivered the closing
// notification. Only Subscriptions made by this library for NotifyEMR's endpoint, with its
// criteria or the default criteria, are deleted; those of Tasks the server does not hold are kept
// (the EMR may write a Task after sending it). Each Task is read again before its Subscription is
// deleted, while no request for it is in progress, so that a Task reopened on the FHIR server and
// sent again keeps its Subscription; one reopened later gets a Subscription again when it is sent
// again.
//
// It pages the Subscriptions by the search's next links where they are under FHIRURL, and by
// _offset otherwise. A failure to read them ends the call; the failure of one Task's read or
// delete does not, and the errors are returned, joined, with the number deleted.
func (b *Bridge) RemoveClosedSubscriptions(ctx context.Context, closedBefore time.Time) (removed int, err error) {
	if b.fhir == nil {
		return 0, errors.New("tocht: RemoveClosedSubscriptions needs Config.NotifyEMR")
	}
	// The Subscriptions hold the EMR's credentials (NotifyEMR.Header): their
	// calls are recorded without bodies.
	ctx = mediator.WithoutBodies(ctx)
	subs, err := b.ownSubscriptions(ctx)
	if err != nil {
		return 0, err
	}
	var errs []error
	for tasks := range slices.Chunk(slices.Sorted(maps.Keys(subs)), taskBatch) {
		closed, err := b.closedTasks(ctx, tasks, closedBefore)
		if err != nil {
			errs = append(errs, err)
		}
		for _, task := range closed {
			done, err := b.removeSubscription(ctx, task, subs[task], closedBefore)
			if err != nil {
				errs = append(errs, err)
			}
			if done {
				removed++
			}
		}
		if ctx.Err() != nil || len(errs) >= maxSweepErrors {
			break
		}
	}
	if removed > 0 {
		b.log.InfoContext(ctx, "removed the Subscriptions of closed Tasks", "removed", removed, "closed_before", closedBefore)
	}
	return removed, errors.Join(errs...)
}

// ownSubscriptions returns the id of each Subscription NotifyEMR made on the FHIR server, by the id
// of its Task. It reads every page of the search before anything is deleted: on a server that
// pages by offset, a deletion would shift the pages still to read.
func (b *Bridge) ownSubscriptions(ctx context.Context) (map[string]string, error) {
	n := b.cfg.NotifyEMR
	templates := []string{fhir.DefaultTaskCriteria}
	if n.Criteria != "" && n.Criteria != fhir.DefaultTaskCriteria {
		templates = append(templates, n.Criteria)
	}
	own := map[string]string{}
	seen := map[string]bool{}
	q := url.Values{"_sort": {"_id"}, "_count": {strconv.Itoa(subscriptionPage)}}
	next := "/Subscription?" + q.Encode()
	for {
		page, err := b.subscriptionPage(ctx, next)
		if err != nil {
			return nil, err
		}
		fresh := 0
		for _, e := range page.Entry {
			r := e.Resource
			if r.ResourceType != "Subscription" || r.ID == "" || seen[r.ID] {
				continue
			}
			seen[r.ID], fresh = true, fresh+1
			if r.Channel.Endpoint != n.Endpoint {
				continue
			}
			for _, tmpl := range templates {
				if task, ok := subscription.TaskOf(r.Criteria, tmpl); ok && subscription.ID(task, n.Endpoint) == r.ID {
					own[task] = r.ID
					break
				}
			}
		}
		link := b.nextLink(page)
		total := page.Total != nil
		switch {
		case fresh == 0 && (link != "" || len(page.Entry) >= subscriptionPage || total && len(seen) < *page.Total):
			// More were promised, but the page holds none not read before.
			return nil, errors.New("tocht: search Subscriptions: a next page repeats the earlier ones " +
				"(does the FHIR server page by _offset?)")
		case fresh == 0, link == "" && total && len(seen) >= *page.Total:
			return own, nil
		case link != "":
			next = link
		default:
			// No next link the mediator may follow: the next page by _offset,
			// until a page brings none not read before.
			q.Set("_offset", strconv.Itoa(len(seen)))
			next = "/Subscription?" + q.Encode()
		}
	}
}

// subscriptionSearch is what ownSubscriptions reads of a page of Subscriptions.
type subscriptionSearch struct {
	ResourceType string `json:"resourceType"`
	Total        *int   `json:"total"`
	Entry        []struct {
		Resource struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Criteria     string `json:"criteria"`
			Channel      struct {
				Endpoint string `json:"endpoint"`
			} `json:"channel"`
		} `json:"resource"`
	} `json:"entry"`
	Link []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
}

// subscriptionPage reads the page of Subscriptions at path (under FHIRURL).
func (b *Bridge) subscriptionPage(ctx context.Context, path string) (*subscriptionSearch, error) {
	status, data, err := b.fhirGet(ctx, "FHIR search Subscriptions", path, nil, "GET Subscription")
	var page *subscriptionSearch
	switch {
	case err != nil:
	case status != http.StatusOK:
		err = fmt.Errorf("GET Subscription answered %d", status)
	default:
		page, err = decodeSubscriptionPage(data)
	}
	if err != nil {
		return nil, fmt.Errorf("tocht: search Subscriptions: %w", err)
	}
	return page, nil
}

// decodeSubscriptionPage reads the FHIR server's answer data to a search
// of Subscriptions; an answer that is no Bundle is an error.
func decodeSubscriptionPage(data []byte) (*subscriptionSearch, error) {
	var page subscriptionSearch
	if err := json.Unmarshal(data, &page); err != nil {
		return nil, fmt.Errorf("GET Subscription answered no Bundle: %w", err)
	}
	if page.ResourceType != "Bundle" {
		return nil, fmt.Errorf("GET Subscription answered no Bundle: resourceType %q", page.ResourceType)
	}
	return &page, nil
}

// nextLink returns the path under FHIRURL of page's next link, or "" when it has none the
// mediator may follow: one that leaves FHIRURL would get the mediator's FHIR credentials, as
// would one whose dot segments (also escaped) lead out of it through a proxy that resolves them.
func (b *Bridge) nextLink(page *subscriptionSearch) string {
	for _, l := range page.Link {
		if l.Relation != "next" {
			continue
		}
		rest, under := strings.CutPrefix(l.URL, b.cfg.FHIRURL)
		if !under || (rest != "" && rest[0] != '/' && rest[0] != '?') {
			return ""
		}
		u, err := url.Parse(rest)
		if err != nil || u.Scheme != "" || u.Host != "" || slices.ContainsFunc(strings.Split(u.Path, "/"), func(seg string) bool {
			return seg == "." || seg == ".."
		}) {
			return ""
		}
		return rest
	}
	return ""
}

// taskState is what removing a Subscription reads of its Task.
type taskState struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Status       string `json:"status"`
	Meta         struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
}

// closedBefore reports whether the Task is closed and was last changed before t.
func (s taskState) closedBefore(t time.Time) bool {
	at, err := time.Parse(time.RFC3339Nano, s.Meta.LastUpdated)
	return err == nil && at.Before(t) && slices.Contains(closedStatuses, s.Status)
}

// closedTasks returns those of the Tasks ids that are closed and were last changed before t. A
// Task the server leaves out of the answer (not held, or on a next page) is not returned.
func (b *Bridge) closedTasks(ctx context.Context, ids []string, t time.Time) ([]string, error) {
	var page struct {
		Entry []struct {
			Resource taskState `json:"resource"`
		} `json:"entry"`
	}
	escaped := make([]string, len(ids))
	for i, id := range ids {
		escaped[i] = search.Escape(id)
	}
	q := url.Values{"_id": {strings.Join(escaped, ",")}, "_count": {strconv.Itoa(len(ids))}}
	if err := b.fhir.Search(mediator.WithOrchestration(ctx, "FHIR search Tasks"), "Task", q, &page); err != nil {
		return nil, fmt.Errorf("tocht: search the Tasks of Subscriptions: %w", err)
	}
	var closed []string
	for _, e := range page.Entry {
		if r := e.Resource; r.ResourceType == "Task" && slices.Contains(ids, r.ID) && r.closedBefore(t) {
			closed = append(closed, r.ID)
		}
	}
	return closed, nil
}

// removeSubscription deletes the Subscription sub of task if the Task, read again while no request
// for it is in progress, is still closed and last changed before t. It reports whether it deleted
// it (false when the server no longer had it).
func (b *Bridge) removeSubscription(ctx context.Context, task, sub string, t time.Time) (bool, error) {
	unlock, err := b.tasks.lock(ctx, task)
	if err != nil {
		return false, fmt.Errorf("tocht: remove the Subscription of Task %s: %w", task, err)
	}
	defer unlock()
	var s taskState
	switch err := b.fhir.Read(mediator.WithOrchestration(ctx, "FHIR read Task"), "Task", task, &s); {
	case isNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("tocht: remove the Subscription of Task %s: %w", task, err)
	case !s.closedBefore(t):
		return false, nil
	}
	switch err := b.fhir.Delete(mediator.WithOrchestration(ctx, "FHIR remove Subscription"), "Subscription", sub); {
	case isNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("tocht: remove the Subscription of Task %s: %w", task, err)
	}
	return true, nil
}

// isNotFound reports whether err is the FHIR server's answer that the
// resource does not exist (404) or was deleted (410).
func isNotFound(err error) bool {
	var se *fhir.ServerError
	return errors.As(err, &se) && (se.StatusCode == http.StatusNotFound || se.StatusCode == http.StatusGone)
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
