package fhirtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// hook is a rest-hook endpoint that records what it receives and answers status.
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	got    []hookCall
	status int
}

type hookCall struct {
	method, path, auth, contentType string
	body                            []byte
}

func newHook(t *testing.T) *hook {
	h := &hook{status: http.StatusOK}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got = append(h.got, hookCall{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b})
		status := h.status
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) calls() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.got...)
}

func subscriptionBody(criteria, endpoint, payload string) map[string]any {
	ch := map[string]any{"type": "rest-hook", "endpoint": endpoint, "header": []any{"Authorization: Bearer s3cret"}}
	if payload != "" {
		ch["payload"] = payload
	}
	return map[string]any{"resourceType": "Subscription", "status": "requested", "reason": "tell the EMR",
		"criteria": criteria, "channel": ch}
}

func task(id, status string) map[string]any {
	return map[string]any{"resourceType": "Task", "id": id, "status": status, "intent": "order"}
}

// waitLimit bounds every wait for an event in these tests. It is generous so that a slow, busy
// machine never fails a test; a wait ends as soon as its event happens.
const waitLimit = 10 * time.Second

func await(t *testing.T, srv *fhirtest.Server, n int) []fhirtest.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	notes, err := srv.AwaitNotifications(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return notes
}

// barrier tells when every notification of the writes made so far has been sent, without
// guessing how long that takes: notifications are sent one at a time in the order of the writes,
// so once the notification of a later write (to a Patient only the barrier's subscription
// watches) has been sent, all earlier ones have been too.
type barrier struct {
	srv   *fhirtest.Server
	c     *fhirClient
	subID string
	n     int // barrier writes so far
}

func newBarrier(t *testing.T, srv *fhirtest.Server, c *fhirClient) *barrier {
	t.Helper()
	r := mustDo(t, c, http.MethodPost, "/Subscription", subscriptionBody("Patient?_id=barrier", newHook(t).URL, ""))
	if r.status != http.StatusCreated {
		t.Fatalf("create the barrier subscription: %d %s", r.status, r.raw)
	}
	return &barrier{srv: srv, c: c, subID: str(r.body, "id")}
}

// wait writes the barrier Patient, waits for its notification and returns the other
// notifications sent so far, oldest first.
func (b *barrier) wait(t *testing.T) []fhirtest.Notification {
	t.Helper()
	b.n++
	if r := mustDo(t, b.c, http.MethodPut, "/Patient/barrier", map[string]any{"resourceType": "Patient", "id": "barrier"}); r.status >= 300 {
		t.Fatalf("barrier write: %d %s", r.status, r.raw)
	}
	want := fmt.Sprintf("Patient/barrier/_history/%d", b.n)
	for seen := 0; ; {
		all := await(t, b.srv, seen+1)
		var others []fhirtest.Notification
		done := false
		for _, n := range all {
			switch {
			case n.Subscription != b.subID:
				others = append(others, n)
			case n.Resource == want:
				if n.Err != "" {
					t.Fatalf("barrier notification failed: %+v", n)
				}
				done = true
			}
		}
		if done {
			return others
		}
		seen = len(all)
	}
}

// Notifications follow R4 rest-hook (hl7.org/fhir/R4/subscription.html#channels) as HAPI FHIR
// delivers them (hapi-fhir SubscriptionDeliveringRestHookSubscriber: sendNotification POSTs no body
// without a payload; doDelivery updates, i.e. PUTs, the resource to [endpoint]/[type]/[id] with one;
// every channel.header is registered as a request header).
func TestSubscriptionRestHook(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	full, idOnly := newHook(t), newHook(t)
	b := newBarrier(t, srv, c)

	r := mustDo(t, c, http.MethodPost, "/Subscription", subscriptionBody("Task?_id=t1&status=completed,failed", full.URL+"/hook/", "application/fhir+json"))
	if r.status != http.StatusCreated || str(r.body, "status") != "active" {
		t.Fatalf("create subscription: %d %s, want 201 with status active", r.status, r.raw)
	}
	fullID := str(r.body, "id")
	if r := mustDo(t, c, http.MethodPost, "/Subscription", subscriptionBody("Task?_id=t1", idOnly.URL, "")); r.status != http.StatusCreated {
		t.Fatalf("create subscription without payload: %d %s", r.status, r.raw)
	}

	mustDo(t, c, http.MethodPut, "/Task/t1", task("t1", "requested"))                                                                                                                                               // only idOnly matches
	mustDo(t, c, http.MethodPut, "/Task/t2", task("t2", "completed"))                                                                                                                                               // neither matches
	mustDo(t, c, http.MethodPut, "/Task/t1", task("t1", "completed"))                                                                                                                                               // both match
	mustDo(t, c, http.MethodPut, "/ServiceRequest/t1", map[string]any{"resourceType": "ServiceRequest", "id": "t1", "status": "completed", "intent": "order", "subject": map[string]any{"reference": "Patient/p"}}) // other type

	notes := b.wait(t) // a wrong extra notification would be among them
	if len(notes) != 3 {
		t.Fatalf("%d notifications, want 3: %+v", len(notes), notes)
	}
	for _, n := range notes {
		if n.Err != "" || n.Status != http.StatusOK {
			t.Errorf("notification %+v failed", n)
		}
	}
	var fullNotes []fhirtest.Notification
	for _, n := range notes {
		if n.Subscription == fullID {
			fullNotes = append(fullNotes, n)
		}
	}
	if len(fullNotes) != 1 || fullNotes[0].Resource != "Task/t1/_history/2" || fullNotes[0].Method != http.MethodPut {
		t.Errorf("full-resource notifications = %+v", fullNotes)
	}

	fc := full.calls()
	if len(fc) != 1 {
		t.Fatalf("full-resource endpoint got %d calls, want 1", len(fc))
	}
	if fc[0].method != http.MethodPut || fc[0].path != "/hook/Task/t1" || fc[0].auth != "Bearer s3cret" || fc[0].contentType != "application/fhir+json" {
		t.Errorf("full-resource call = %s %s auth %q type %q", fc[0].method, fc[0].path, fc[0].auth, fc[0].contentType)
	}
	var sent map[string]any
	if err := json.Unmarshal(fc[0].body, &sent); err != nil || sent["status"] != "completed" || str(sent, "meta", "versionId") != "2" {
		t.Errorf("full-resource body = %s (%v)", fc[0].body, err)
	}
	ic := idOnly.calls()
	if len(ic) != 2 {
		t.Fatalf("no-payload endpoint got %d calls, want 2", len(ic))
	}
	for _, call := range ic {
		if call.method != http.MethodPost || call.path != "" && call.path != "/" || len(call.body) != 0 || call.auth != "Bearer s3cret" {
			t.Errorf("no-payload call = %s %q body %q auth %q", call.method, call.path, call.body, call.auth)
		}
	}

	// A deleted subscription is no longer notified.
	if r := mustDo(t, c, http.MethodDelete, "/Subscription/"+fullID, nil); r.status != http.StatusOK {
		t.Fatalf("delete subscription: %d", r.status)
	}
	mustDo(t, c, http.MethodPut, "/Task/t1", task("t1", "failed"))
	notes = b.wait(t)
	if n := len(full.calls()); n != 1 {
		t.Errorf("deleted subscription notified: %d calls", n)
	}
	if len(notes) != 4 || notes[3].Subscription == fullID || notes[3].Resource != "Task/t1/_history/3" {
		t.Errorf("notifications after the delete = %+v, want a 4th for the no-payload subscription only", notes)
	}
}

// Writes inside a transaction notify once it commits; a rolled-back transaction notifies nobody.
func TestSubscriptionTransaction(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	h := newHook(t)
	b := newBarrier(t, srv, c)
	mustDo(t, c, http.MethodPost, "/Subscription", subscriptionBody("Task?status=completed", h.URL, "application/fhir+json"))

	failing := bundleOf("transaction",
		withResource(req("PUT", "Task/t1"), "", task("t1", "completed")),
		req("DELETE", "Patient/missing"))
	if r := mustDo(t, c, http.MethodPost, "", failing); r.status != http.StatusNotFound {
		t.Fatalf("failing transaction: %d %s", r.status, r.raw)
	}
	ok := bundleOf("transaction",
		withResource(req("PUT", "Task/t2"), "", task("t2", "completed")),
		withResource(req("PUT", "Task/t3"), "", task("t3", "requested")))
	if r := mustDo(t, c, http.MethodPost, "", ok); r.status != http.StatusOK {
		t.Fatalf("transaction: %d %s", r.status, r.raw)
	}
	if notes := b.wait(t); len(notes) != 1 || notes[0].Resource != "Task/t2/_history/1" {
		t.Errorf("notifications = %+v, want one for Task/t2", notes)
	}
}

// A failed notification sets the subscription's status to error with the reason (R4
// Subscription.error), and an errored subscription is not notified again.
func TestSubscriptionEndpointFailure(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	h := newHook(t)
	h.status = http.StatusServiceUnavailable
	b := newBarrier(t, srv, c)
	r := mustDo(t, c, http.MethodPost, "/Subscription", subscriptionBody("Task?_id=t1", h.URL, ""))
	id := str(r.body, "id")
	mustDo(t, c, http.MethodPut, "/Task/t1", task("t1", "requested"))
	notes := await(t, srv, 1)
	if notes[0].Status != http.StatusServiceUnavailable || !strings.Contains(notes[0].Err, "503") {
		t.Errorf("notification = %+v, want a 503 failure", notes[0])
	}
	// A failed notification is listed only once its subscription is in error.
	got := mustDo(t, c, http.MethodGet, "/Subscription/"+id, nil)
	if str(got.body, "status") != "error" || !strings.Contains(str(got.body, "error"), "503") {
		t.Errorf("Subscription status %q error %q, want error naming the 503", str(got.body, "status"), str(got.body, "error"))
	}
	mustDo(t, c, http.MethodPut, "/Task/t1", task("t1", "completed"))
	if notes := b.wait(t); len(notes) != 1 {
		t.Errorf("errored subscription notified again: %+v", notes)
	}
	if n := len(h.calls()); n != 1 {
		t.Errorf("errored subscription's endpoint called %d times, want 1", n)
	}
}

// Subscriptions fhirtest cannot deliver are rejected naming the element, so a test never waits for
// a notification that cannot come.
func TestSubscriptionValidation(t *testing.T) {
	_, c := newClient(t, fhirtest.Config{})
	tests := []struct {
		name     string
		mutate   func(m map[string]any)
		wantExpr string
	}{
		{"no criteria", func(m map[string]any) { delete(m, "criteria") }, "Subscription.criteria"},
		{"unknown type", func(m map[string]any) { m["criteria"] = "Tusk?_id=1" }, "Subscription.criteria"},
		{"unsupported parameter", func(m map[string]any) { m["criteria"] = "Task?owner=x" }, "Subscription.criteria"},
		{"websocket", func(m map[string]any) { m["channel"].(map[string]any)["type"] = "websocket" }, "Subscription.channel.type"},
		{"relative endpoint", func(m map[string]any) { m["channel"].(map[string]any)["endpoint"] = "/hook" }, "Subscription.channel.endpoint"},
		{"xml payload", func(m map[string]any) { m["channel"].(map[string]any)["payload"] = "application/fhir+xml" }, "Subscription.channel.payload"},
		{"bad header", func(m map[string]any) { m["channel"].(map[string]any)["header"] = []any{"no colon"} }, "Subscription.channel.header[0]"},
		{"no reason", func(m map[string]any) { delete(m, "reason") }, "Subscription.reason"},
		{"bad status", func(m map[string]any) { m["status"] = "on" }, "Subscription.status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := subscriptionBody("Task?_id=1", "http://127.0.0.1:1/hook", "")
			tt.mutate(m)
			r := mustDo(t, c, http.MethodPost, "/Subscription", m)
			if expr, text := outcomeExpr(r.body); r.status != http.StatusBadRequest || expr != tt.wantExpr {
				t.Errorf("status %d expression %q (%s), want 400 %q", r.status, expr, text, tt.wantExpr)
			}
		})
	}
	// An off subscription is stored as sent and never checked for delivery.
	m := subscriptionBody("Anything at all", "", "")
	m["status"] = "off"
	if r := mustDo(t, c, http.MethodPost, "/Subscription", m); r.status != http.StatusCreated || str(r.body, "status") != "off" {
		t.Errorf("off subscription: %d %s", r.status, r.raw)
	}
}

// Polling for changed Tasks: status and _lastUpdated=gt select what changed since a checkpoint.
func TestSearchTaskPolling(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{Now: stepClock()})
	for _, tk := range []map[string]any{task("a", "requested"), task("b", "completed"), task("c", "failed")} {
		mustDo(t, c, http.MethodPut, "/Task/"+tk["id"].(string), tk)
	}
	a, _ := srv.Resource("Task", "a")
	var m map[string]any
	_ = json.Unmarshal(a, &m)
	since := str(m, "meta", "lastUpdated")
	r := mustDo(t, c, http.MethodGet, "/Task?_lastUpdated=gt"+since+"&status=completed,failed&_sort=_lastUpdated", nil)
	if got := entryIDs(r.body); strings.Join(got, ",") != "b,c" {
		t.Errorf("polled ids %v, want b,c", got)
	}
	r = mustDo(t, c, http.MethodGet, "/Task?status=cancelled", nil)
	if r.status != 200 || len(entryIDs(r.body)) != 0 {
		t.Errorf("status=cancelled: %d %v", r.status, entryIDs(r.body))
	}
}

// After Close a matching write is still answered, and its notification is recorded as not sent
// before the answer starts; the subscription stays active (closing is not the endpoint's failure).
func TestSubscriptionAfterClose(t *testing.T) {
	h, err := fhirtest.NewHandler(fhirtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sub := subscriptionBody("Task?_id=t1", "http://127.0.0.1:1/hook", "")
	sub["id"] = "s1"
	body, _ := json.Marshal(sub)
	if w := serve(h, http.MethodPut, "/fhir/R4/Subscription/s1", body); w.Code >= 300 {
		t.Fatalf("create subscription: %d %s", w.Code, w.Body)
	}
	h.Close()
	var seen []fhirtest.Notification
	w := &probeWriter{ResponseRecorder: httptest.NewRecorder(), first: func() { seen = h.Notifications() }}
	body, _ = json.Marshal(task("t1", "requested"))
	r := httptest.NewRequest(http.MethodPut, "/fhir/R4/Task/t1", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/fhir+json")
	h.ServeHTTP(w, r)
	if w.Code >= 300 {
		t.Fatalf("write after Close: %d %s", w.Code, w.Body)
	}
	if len(seen) != 1 || seen[0].Subscription != "s1" || !strings.Contains(seen[0].Err, "not sent") {
		t.Errorf("notifications when the answer started: %+v, want one not sent", seen)
	}
	if raw, _ := h.Resource("Subscription", "s1"); !strings.Contains(string(raw), `"status":"active"`) {
		t.Errorf("subscription after Close: %s, want it still active", raw)
	}
}

// Reset forgets a notification being sent: it is not listed afterwards, and its failure does not
// put a new subscription with the same id in error.
func TestSubscriptionReset(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(slow.Close)
	var once sync.Once
	releaseSlow := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseSlow) // runs before slow.Close

	putSub := func(endpoint string) {
		t.Helper()
		sub := subscriptionBody("Task?status=requested", endpoint, "")
		sub["id"] = "s1"
		if r := mustDo(t, c, http.MethodPut, "/Subscription/s1", sub); r.status >= 300 {
			t.Fatalf("put subscription: %d %s", r.status, r.raw)
		}
	}
	putSub(slow.URL)
	mustDo(t, c, http.MethodPut, "/Task/t1", task("t1", "requested"))
	select {
	case <-arrived:
	case <-time.After(waitLimit):
		t.Fatal("the notification never reached the endpoint")
	}
	srv.Reset()
	good := newHook(t)
	putSub(good.URL)
	releaseSlow()
	mustDo(t, c, http.MethodPut, "/Task/t2", task("t2", "requested"))
	notes := await(t, srv, 1)
	if len(notes) != 1 || notes[0].Resource != "Task/t2/_history/1" || notes[0].Err != "" {
		t.Fatalf("notifications after Reset = %+v, want only Task/t2's, sent", notes)
	}
	if r := mustDo(t, c, http.MethodGet, "/Subscription/s1", nil); str(r.body, "status") != "active" {
		t.Errorf("new subscription status %q error %q, want active", str(r.body, "status"), str(r.body, "error"))
	}
	if n := len(good.calls()); n != 1 {
		t.Errorf("new endpoint got %d calls, want 1", n)
	}
}
