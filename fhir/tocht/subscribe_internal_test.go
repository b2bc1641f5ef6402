package tocht

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// waiting is the number of requests holding or waiting for key.
func (l *keyLocks) waiting(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := l.locks[key]; k != nil {
		return k.refs
	}
	return 0
}

// gatedPut fails the first CHT PUT of path with 503, after holding it
// until release is closed; blocked is closed once it holds it.
type gatedPut struct {
	next             http.RoundTripper
	path             string
	once             sync.Once
	blocked, release chan struct{}
}

func (g *gatedPut) RoundTrip(r *http.Request) (*http.Response, error) {
	gated := false
	if g.path != "" && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, g.path) {
		g.once.Do(func() { gated = true })
	}
	if !gated {
		return g.next.RoundTrip(r)
	}
	close(g.blocked)
	<-g.release
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
		Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
		Body: io.NopCloser(strings.NewReader(`{"error":"unavailable","reason":"test"}`))}, nil
}

// Two concurrent requests for the same Task share its Subscription (its id
// is derived from the Task). When the first one's CHT write fails after
// the second one relied on the Subscription the first made, the first one's
// undo must not leave the second one's Task without it: the requests of a
// Task are serialised, so the second one subscribes after the first one's
// undo, and the EMR is still told when the Task closes.
func TestConcurrentTaskRequestsKeepTheSubscription(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	patientJSON, err := os.ReadFile("testdata/patient-updated.json")
	require.NoError(t, err)
	taskJSON, err := os.ReadFile("testdata/task.json")
	require.NoError(t, err)
	require.NoError(t, fhirSrv.Load(patientJSON))

	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: "https://cht.example.org", Mapping: fhir.DefaultMapping(),
		Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID, TaskForm: "INTEROP_FOLLOW_UP"}})
	require.NoError(t, err)
	gate := &gatedPut{next: chtSrv.Client().Transport, blocked: make(chan struct{}), release: make(chan struct{})}
	c, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		MaxRetries: -1, HTTPClient: &http.Client{Transport: gate}})
	require.NoError(t, err)
	b, err := New(Config{Converter: conv, CHT: c, FHIRURL: fhirSrv.URL, HTTPClient: fhirSrv.Client(),
		NotifyEMR: &fhir.TaskSubscription{Endpoint: "https://emr.example.org/referral-events"}})
	require.NoError(t, err)
	ctx := context.Background()

	// The Task's Patient is a CHT person.
	parsed, err := fhir.ParseResource(patientJSON)
	require.NoError(t, err)
	pu, err := b.plan(ctx, parsed, nil)
	require.NoError(t, err)
	_, err = b.execute(ctx, pu)
	require.NoError(t, err)

	plan := func() *unit {
		res, err := fhir.ParseResource(taskJSON)
		require.NoError(t, err)
		u, err := b.plan(ctx, res, nil)
		require.NoError(t, err)
		return u
	}
	first, second := plan(), plan()
	gate.path = "/medic/" + first.docID

	firstDone := make(chan error, 1)
	go func() { _, err := b.executeWithSubscription(ctx, first); firstDone <- err }()
	<-gate.blocked // the first request made the Subscription and is writing to CHT
	secondDone := make(chan error, 1)
	go func() { _, err := b.executeWithSubscription(ctx, second); secondDone <- err }()

	// Let the first request's CHT write fail once the second one has
	// finished (as it does when nothing serialises them) or waits for the
	// first one.
	secondWaits := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for b.tasks.waiting("referral-0001") < 2 {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		close(secondWaits)
	}()
	var secondErr error
	secondFinished := false
	select {
	case secondErr = <-secondDone:
		secondFinished = true
	case <-secondWaits:
	}
	close(gate.release)
	require.Error(t, <-firstDone, "the first request's CHT write failed")
	if !secondFinished {
		secondErr = <-secondDone
	}
	require.NoError(t, secondErr)

	raw, ok := chtSrv.Doc(second.docID)
	require.True(t, ok, "the second request wrote the CHT report")
	assert.Contains(t, string(raw), "referral-0001")
	assert.Equal(t, 1, fhirSrv.Count("Subscription"), "the Task written to CHT has its Subscription")
	assert.Zero(t, b.tasks.waiting("referral-0001"), "no lock left behind")
}

// A request that gives up waiting for its Task's lock (its deadline) gets
// an error and leaves no entry behind; the holder's unlock frees the key.
func TestKeyLockWaitEndsWithTheContext(t *testing.T) {
	var l keyLocks
	unlock, err := l.lock(context.Background(), "t1")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.lock(ctx, "t1")
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, l.waiting("t1"))
	unlock()
	assert.Zero(t, l.waiting("t1"))
	unlock, err = l.lock(context.Background(), "t1")
	require.NoError(t, err, "free again")
	unlock()
}

// A Task found closed but reopened, and sent again, while its
// Subscription is about to be removed keeps the Subscription: the sweep
// waits for the Task's request in progress and reads the Task again.
func TestRemoveClosedSubscriptionsRereadsTheTask(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: "https://cht.example.org", Mapping: fhir.DefaultMapping(),
		Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID}})
	require.NoError(t, err)
	c, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	notify := fhir.TaskSubscription{Endpoint: "https://emr.example.org/referral-events"}
	b, err := New(Config{Converter: conv, CHT: c, FHIRURL: fhirSrv.URL, HTTPClient: fhirSrv.Client(), NotifyEMR: &notify})
	require.NoError(t, err)
	ctx := context.Background()
	task := func(status string) {
		require.NoError(t, b.fhir.Update(ctx, "Task", "t1", map[string]any{"resourceType": "Task", "id": "t1", "status": status, "intent": "order"}, nil))
	}
	task("completed")
	_, _, err = b.fhir.SubscribeTask(ctx, "t1", notify)
	require.NoError(t, err)

	unlock, err := b.tasks.lock(ctx, "t1") // a request for the Task is in progress
	require.NoError(t, err)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := b.RemoveClosedSubscriptions(ctx, time.Now().Add(time.Minute))
		done <- result{n, err}
	}()
	require.Eventually(t, func() bool { return b.tasks.waiting("t1") == 2 }, 10*time.Second, time.Millisecond,
		"the sweep found the Task closed and waits for its request")
	task("in-progress") // the EMR reopened the Task and sent it again
	unlock()
	got := <-done
	require.NoError(t, got.err)
	assert.Zero(t, got.n)
	assert.Equal(t, 1, fhirSrv.Count("Subscription"))
}
