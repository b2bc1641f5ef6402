package tocht_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// notifyRig is a rig whose bridge reads Patients from the fake FHIR
// server and subscribes the EMR to every Task (NotifyEMR, set to the
// default endpoint before configure runs), with the Patient of
// patient-updated.json on the server and written to CHT.
func notifyRig(t *testing.T, configure func(*tocht.Config)) *rig {
	t.Helper()
	r := newRig(t)
	require.NoError(t, r.fhir.Load(testdata(t, "patient-updated.json")))
	r = rebuild(t, r, func(c *tocht.Config) {
		c.FHIRURL = r.fhir.URL
		c.HTTPClient = r.fhir.Client()
		c.NotifyEMR = &fhir.TaskSubscription{Endpoint: emrEndpoint}
		if configure != nil {
			configure(c)
		}
	})
	a := r.post(t, "/fhir/Patient", testdata(t, "patient-updated.json"))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	return r
}

// A Task gets the EMR's rest-hook Subscription with its CHT task; when the CHT write fails the
// Subscription is removed again (as medic/cht-interoperability's createServiceRequest deletes it
// when creating the CHT record fails), and the retried request subscribes once.
func TestTaskSubscriptionRemovedWhenCHTWriteFails(t *testing.T) {
	r := notifyRig(t, func(c *tocht.Config) {
		c.NotifyEMR = &fhir.TaskSubscription{Endpoint: "https://emr.example.org/referral-events", Header: []string{"Authorization: Bearer emr"}}
	})
	remove := r.cht.InjectFault(chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: http.StatusServiceUnavailable})
	a := r.post(t, "/fhir/Task", testdata(t, "task.json"))
	remove()
	require.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
	assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
	assert.Equal(t, 0, r.fhir.Count("Subscription"), "no dangling Subscription after the failed CHT write")
	var created, deleted int
	for _, q := range r.fhir.Requests() {
		switch {
		case q.Method == http.MethodPut && q.Status == http.StatusOK && strings.Contains(q.Path, "/Subscription/"):
			created++
		case q.Method == http.MethodDelete && strings.Contains(q.Path, "/Subscription/"):
			deleted++
		}
	}
	assert.Equal(t, 1, created, "the Subscription was made before the CHT write")
	assert.Equal(t, 1, deleted)

	for range 2 { // the EMR retries; a re-send must not add a Subscription
		a = r.post(t, "/fhir/Task", testdata(t, "task.json"))
		require.Less(t, a.status, 300, "%s", a.body)
	}
	require.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 1)
	subs := r.fhir.Resources("Subscription")
	require.Len(t, subs, 1)
	assert.Contains(t, string(subs[0]), `"criteria":"Task?_id=referral-0001&status=completed,failed,rejected"`)
	assert.Contains(t, string(subs[0]), `"endpoint":"https://emr.example.org/referral-events"`)
}

func TestNotifyEMRNeedsFHIRURL(t *testing.T) {
	r := newRig(t)
	c, err := cht.New(cht.Config{URL: r.cht.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	_, err = tocht.New(tocht.Config{Converter: r.conv, CHT: c, NotifyEMR: &fhir.TaskSubscription{Endpoint: "https://emr"}})
	require.ErrorContains(t, err, "FHIRURL")
}

// lockedBuffer collects log lines written from the handler's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A NotifyEMR setting the FHIR server never sees (an endpoint that is not
// an absolute http(s) URL) is the mediator's configuration error: answered
// 500 without Retry-After, so that neither OpenHIM nor the EMR retries a
// request that fails the same way until the settings are fixed, and logged
// as an error naming the setting. Nothing is written to CHT.
func TestBadNotifyEMRSettingIsAConfigurationError(t *testing.T) {
	var logs lockedBuffer
	r := notifyRig(t, func(c *tocht.Config) {
		c.NotifyEMR = &fhir.TaskSubscription{Endpoint: "emr.example.org/referral-events"}
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	task := testdata(t, "task.json")
	tests := []struct {
		name, path string
		body       []byte
		entry      string // status of the batch entry, if a batch
	}{
		{"POST Task", "/fhir/Task", task, ""},
		{"batch with the Task", "/fhir", []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"resource":` + string(task) + `}]}`), `"status":"500 Internal Server Error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.post(t, tt.path, tt.body)
			require.Equal(t, http.StatusInternalServerError, a.status, "%s", a.body)
			assert.Empty(t, a.header.Get("Retry-After"), "a configuration error is not retried")
			assert.Contains(t, string(a.body), "notify_emr")
			assert.NotContains(t, string(a.body), `"transient"`)
			assert.Contains(t, string(a.body), tt.entry)
			assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
		})
	}
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "mediator configuration (tocht.Config.NotifyEMR, notify_emr)")
	assert.Zero(t, r.fhir.Count("Subscription"))
}

// With NotifyEMR every Task written to CHT gets its Subscription, whose
// criteria name the Task's id (Task?_id=<id>): a Task without an id can
// get none, and the follow-up report could not name the Task to close
// (no fhir_task field). It is refused naming Task.id, before anything is
// written, rather than answered 201 with no Subscription.
func TestNotifyEMRRefusesATaskWithoutID(t *testing.T) {
	r := notifyRig(t, nil)
	task := strings.Replace(string(testdata(t, "task.json")), `"id": "referral-0001",`,
		`"identifier": [{"system": "https://emr.example.org/task", "value": "T-1"}],`, 1)
	require.NotContains(t, task, "referral-0001")
	tests := []struct {
		name, path, body, expr string
	}{
		{"POST Task", "/fhir/Task", task, "Task.id"},
		{"transaction with the Task", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + task + `}]}`,
			"Bundle.entry[0].resource.id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.post(t, tt.path, []byte(tt.body))
			require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
			assert.Contains(t, string(a.body), tt.expr)
			assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
			assert.Zero(t, r.fhir.Count("Subscription"))
		})
	}
}

// The Subscriptions of closed Tasks are removed once closedBefore is after
// the Task's last change, over more than a page of Subscriptions and of
// Tasks; open Tasks', those of Tasks the server does not hold, another
// endpoint's and one the EMR made itself are kept, and a second call
// removes nothing more.
func TestRemoveClosedSubscriptions(t *testing.T) {
	r := notifyRig(t, nil)
	ctx := context.Background()
	e := newEMR(t, r.fhir)
	for i := range 130 { // more than a page (100) of Subscriptions and of Tasks
		e.subscribedTask(fmt.Sprintf("done-%03d", i), closedStatuses[i%len(closedStatuses)], "")
	}
	kept := []string{
		e.subscribedTask("open", "in-progress", ""),
		e.subscribedTask("not-on-server", "", ""),
		e.subscribe("done-000", fhir.TaskSubscription{Endpoint: "https://other.example.org/events"}),
		"emr-own",
	}
	require.NoError(t, e.c.Update(ctx, "Subscription", "emr-own", map[string]any{"resourceType": "Subscription", "id": "emr-own",
		"status": "requested", "reason": "the EMR's own", "criteria": "Task?_id=done-001&status=completed,failed,rejected",
		"channel": map[string]any{"type": "rest-hook", "endpoint": emrEndpoint}}, nil))
	require.Equal(t, 134, r.fhir.Count("Subscription"))

	n, err := r.bridge.RemoveClosedSubscriptions(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n, "the Tasks closed after closedBefore")
	assert.Equal(t, 134, r.fhir.Count("Subscription"))

	n, err = r.bridge.RemoveClosedSubscriptions(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 130, n)
	var left []string
	for _, s := range r.fhir.Resources("Subscription") {
		var sub struct{ ID string }
		require.NoError(t, json.Unmarshal(s, &sub))
		left = append(left, sub.ID)
	}
	assert.ElementsMatch(t, kept, left)

	n, err = r.bridge.RemoveClosedSubscriptions(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Zero(t, n)
}

// With notify_emr.criteria set, the Subscriptions made with it and those
// made with the default criteria before it was set are both the bridge's.
func TestRemoveClosedSubscriptionsWithOwnCriteria(t *testing.T) {
	r := notifyRig(t, func(c *tocht.Config) { c.NotifyEMR.Criteria = "Task?_id={id}" })
	e := newEMR(t, r.fhir)
	e.subscribedTask("before", "completed", "")
	e.subscribedTask("after", "completed", "Task?_id={id}")
	require.Equal(t, 2, r.fhir.Count("Subscription"))
	n, err := r.bridge.RemoveClosedSubscriptions(context.Background(), time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Zero(t, r.fhir.Count("Subscription"))
}

// FHIR servers page a search differently: by next links (HAPI, fhirtest),
// by _offset without links (medplum's fhir-router), with or without total,
// capping _count. The sweep reads every page of each, through a proxy in
// front of fhirtest that answers as such a server would. A next link that
// leaves the FHIR URL, or leads out of it by dot segments, is never
// followed (it would get the mediator's FHIR credentials): the sweep pages
// by _offset instead. A server that ignores _offset and gives no link
// stops the sweep with an error rather than a partial one.
func TestRemoveClosedSubscriptionsPaging(t *testing.T) {
	tests := []struct {
		name string
		// answer rewrites the query sent to fhirtest and its answer's
		// links, total and entries: base is the proxy's FHIR URL, fhirtest's
		// the one fhirtest puts in its links.
		query  func(q url.Values)
		answer func(page map[string]any, base, fhirtest string)
		want   string // error; "" removes all 130
	}{
		{"next links", nil, func(p map[string]any, base, fhirtest string) { rebaseLinks(p, fhirtest, base) }, ""},
		{"_offset, total, no links", nil, func(p map[string]any, _, _ string) { delete(p, "link") }, ""},
		{"_offset, no total, no links", nil, func(p map[string]any, _, _ string) { delete(p, "link"); delete(p, "total") }, ""},
		{"_count capped at 30, no total, no links", func(q url.Values) { q.Set("_count", "30") },
			func(p map[string]any, _, _ string) { delete(p, "link"); delete(p, "total") }, ""},
		{"links to another host", nil, func(p map[string]any, _, fhirtest string) {
			rebaseLinks(p, fhirtest, "https://fhir.example.org/fhir")
		}, ""},
		{"links out of the base by dot segments", nil, func(p map[string]any, base, fhirtest string) {
			rebaseLinks(p, fhirtest, base+"/../admin")
		}, ""},
		{"links out of the base by escaped dot segments", nil, func(p map[string]any, base, fhirtest string) {
			rebaseLinks(p, fhirtest, base+"/%2e%2e/admin")
		}, ""},
		{"_offset ignored, no links", func(q url.Values) { q.Del("_offset") },
			func(p map[string]any, _, _ string) { delete(p, "link") }, "repeats the earlier ones"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fhirSrv := fhirtest.NewServer(fhirtest.Config{})
			t.Cleanup(fhirSrv.Close)
			target, err := url.Parse(fhirSrv.URL)
			require.NoError(t, err)
			var mu sync.Mutex
			var paths []string
			var proxy *httptest.Server
			proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				paths = append(paths, r.URL.RequestURI())
				mu.Unlock()
				search := r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Subscription")
				u := *r.URL
				u.Scheme, u.Host = target.Scheme, target.Host
				if q := u.Query(); search && tt.query != nil {
					tt.query(q)
					u.RawQuery = q.Encode()
				}
				req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				req.Header = r.Header.Clone()
				resp, err := fhirSrv.Client().Do(req)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if search && resp.StatusCode == http.StatusOK {
					var page map[string]any
					if json.Unmarshal(body, &page) == nil {
						tt.answer(page, proxy.URL+target.Path, fhirSrv.URL)
						body, _ = json.Marshal(page)
					}
				}
				w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
				w.WriteHeader(resp.StatusCode)
				_, _ = w.Write(body)
			}))
			t.Cleanup(proxy.Close)

			e := newEMR(t, fhirSrv)
			for i := range 130 { // more than a page (100) of Subscriptions
				e.subscribedTask(fmt.Sprintf("t%03d", i), closedStatuses[i%len(closedStatuses)], "")
			}
			e.subscribedTask("t130", "in-progress", "")
			b := rebuild(t, newRig(t), func(c *tocht.Config) {
				c.FHIRURL = proxy.URL + target.Path
				c.NotifyEMR = &fhir.TaskSubscription{Endpoint: emrEndpoint}
			}).bridge
			n, err := b.RemoveClosedSubscriptions(context.Background(), time.Now().Add(time.Minute))
			if tt.want != "" {
				require.ErrorContains(t, err, tt.want)
				assert.Zero(t, n)
				assert.Equal(t, 131, fhirSrv.Count("Subscription"))
			} else {
				require.NoError(t, err)
				assert.Equal(t, 130, n)
				assert.Equal(t, 1, fhirSrv.Count("Subscription"), "the open Task's")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range paths {
				assert.NotContains(t, p, "admin", "a link out of the FHIR URL was followed")
			}
		})
	}
}

// rebaseLinks moves the links of a search answer from the base from to to.
func rebaseLinks(page map[string]any, from, to string) {
	links, _ := page["link"].([]any)
	for _, l := range links {
		if m, ok := l.(map[string]any); ok {
			if u, ok := m["url"].(string); ok {
				m["url"] = to + strings.TrimPrefix(u, from)
			}
		}
	}
}

// An answer to the search of Subscriptions that is not a Bundle (an
// OperationOutcome with 200, a login page) fails the sweep rather than
// being read as no Subscriptions.
func TestRemoveClosedSubscriptionsNeedsABundle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing"}]}`)
	}))
	t.Cleanup(srv.Close)
	b := rebuild(t, newRig(t), func(c *tocht.Config) {
		c.FHIRURL = srv.URL
		c.NotifyEMR = &fhir.TaskSubscription{Endpoint: emrEndpoint}
	}).bridge
	n, err := b.RemoveClosedSubscriptions(context.Background(), time.Now())
	require.ErrorContains(t, err, "answered no Bundle")
	assert.Zero(t, n)
}

// A Task whose read keeps failing does not keep the other Tasks'
// Subscriptions: the sweep goes on and returns the failure with the
// number it removed.
func TestRemoveClosedSubscriptionsGoesOnAfterATaskFails(t *testing.T) {
	r := notifyRig(t, func(c *tocht.Config) {
		hc := *c.HTTPClient
		hc.Transport = failRead{next: hc.Transport, path: "/Task/a-broken"}
		c.HTTPClient = &hc
	})
	e := newEMR(t, r.fhir)
	for _, id := range []string{"a-broken", "b-fine", "c-fine"} {
		e.subscribedTask(id, "completed", "")
	}
	n, err := r.bridge.RemoveClosedSubscriptions(context.Background(), time.Now().Add(time.Minute))
	require.ErrorContains(t, err, "a-broken")
	assert.Equal(t, 2, n)
	assert.Equal(t, 1, r.fhir.Count("Subscription"))
}

// Without NotifyEMR the bridge makes no Subscriptions and removes none.
func TestRemoveClosedSubscriptionsNeedsNotifyEMR(t *testing.T) {
	_, err := newRig(t).bridge.RemoveClosedSubscriptions(context.Background(), time.Now())
	require.ErrorContains(t, err, "NotifyEMR")
}

// failRead answers every GET of path 500, as a FHIR server failing on one
// resource does.
type failRead struct {
	next http.RoundTripper
	path string
}

func (f failRead) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, f.path) {
		next := f.next
		if next == nil {
			next = http.DefaultTransport
		}
		return next.RoundTrip(r)
	}
	return &http.Response{StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error", Request: r,
		Header: http.Header{"Content-Type": {"application/fhir+json"}},
		Body:   io.NopCloser(strings.NewReader(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`))}, nil
}

// emrEndpoint is the EMR's notification URL of notifyRig's bridge.
const emrEndpoint = "https://emr.example.org/referral-events"

// closedStatuses are the statuses that close a Task.
var closedStatuses = []string{"completed", "failed", "rejected", "cancelled", "entered-in-error"}

// emr writes Tasks to a FHIR server, as an EMR does, and their
// Subscriptions, as fhir-to-cht does.
type emr struct {
	t *testing.T
	c *fhir.Client
}

func newEMR(t *testing.T, srv *fhirtest.Server) emr {
	t.Helper()
	c, err := fhir.NewClient(fhir.ClientConfig{BaseURL: srv.URL, HTTPClient: srv.Client()})
	require.NoError(t, err)
	return emr{t, c}
}

// subscribedTask writes the Task id with status ("" writes none) and its
// Subscription to emrEndpoint with criteria ("" is the default), and
// returns the Subscription's id.
func (e emr) subscribedTask(id, status, criteria string) string {
	e.t.Helper()
	if status != "" {
		require.NoError(e.t, e.c.Update(context.Background(), "Task", id,
			map[string]any{"resourceType": "Task", "id": id, "status": status, "intent": "order"}, nil))
	}
	return e.subscribe(id, fhir.TaskSubscription{Endpoint: emrEndpoint, Criteria: criteria})
}

// subscribe makes the Subscription s of the Task id and returns its id.
func (e emr) subscribe(id string, s fhir.TaskSubscription) string {
	e.t.Helper()
	sub, _, err := e.c.SubscribeTask(context.Background(), id, s)
	require.NoError(e.t, err)
	return sub
}
