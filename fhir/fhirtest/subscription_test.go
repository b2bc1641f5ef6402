package fhirtest_test

import (
	"context"
	"encoding/json"
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

func await(t *testing.T, srv *fhirtest.Server, n int) []fhirtest.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	notes, err := srv.AwaitNotifications(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return notes
}

// Notifications follow R4 rest-hook (hl7.org/fhir/R4/subscription.html#channels) as HAPI FHIR
// delivers them (hapi-fhir SubscriptionDeliveringRestHookSubscriber: sendNotification POSTs no body
// without a payload; doDelivery updates, i.e. PUTs, the resource to [endpoint]/[type]/[id] with one;
// every channel.header is registered as a request header).
func TestSubscriptionRestHook(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	full, idOnly := newHook(t), newHook(t)

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

	notes := await(t, srv, 3)
	time.Sleep(50 * time.Millisecond) // a wrong extra notification would arrive now
	if n := len(srv.Notifications()); n != 3 {
		t.Fatalf("%d notifications, want 3: %+v", n, srv.Notifications())
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
	await(t, srv, 4)
	time.Sleep(50 * time.Millisecond)
	if n := len(full.calls()); n != 1 {
		t.Errorf("deleted subscription notified: %d calls", n)
	}
	if n := len(srv.Notifications()); n != 4 {
		t.Errorf("%d notifications after the delete, want 4", n)
	}
}

// Writes inside a transaction notify once it commits; a rolled-back transaction notifies nobody.
func TestSubscriptionTransaction(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	h := newHook(t)
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
	notes := await(t, srv, 1)
	time.Sleep(50 * time.Millisecond)
	if got := srv.Notifications(); len(got) != 1 || notes[0].Resource != "Task/t2/_history/1" {
		t.Errorf("notifications = %+v, want one for Task/t2", got)
	}
}

// A failed notification sets the subscription's status to error with the reason (R4
// Subscription.error), and an errored subscription is not notified again.
func TestSubscriptionEndpointFailure(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	h := newHook(t)
	h.status = http.StatusServiceUnavailable
	r := mustDo(t, c, http.MethodPost, "/Subscription", subscriptionBody("Task?_id=t1", h.URL, ""))
	id := str(r.body, "id")
	mustDo(t, c, http.MethodPut, "/Task/t1", task("t1", "requested"))
	notes := await(t, srv, 1)
	if notes[0].Status != http.StatusServiceUnavailable || !strings.Contains(notes[0].Err, "503") {
		t.Errorf("notification = %+v, want a 503 failure", notes[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := mustDo(t, c, http.MethodGet, "/Subscription/"+id, nil)
		if str(got.body, "status") == "error" {
			if !strings.Contains(str(got.body, "error"), "503") {
				t.Errorf("Subscription.error = %q", str(got.body, "error"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription status %q, want error", str(got.body, "status"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustDo(t, c, http.MethodPut, "/Task/t1", task("t1", "completed"))
	time.Sleep(50 * time.Millisecond)
	if n := len(h.calls()); n != 1 {
		t.Errorf("errored subscription notified again: %d calls", n)
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
