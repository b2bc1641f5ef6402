package fhir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

func newFHIRClient(t *testing.T, base string) *fhir.Client {
	t.Helper()
	c, err := fhir.NewClient(fhir.ClientConfig{BaseURL: base, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func putTask(t *testing.T, c *fhir.Client, id, status string) {
	t.Helper()
	task := map[string]any{"resourceType": "Task", "id": id, "status": status, "intent": "order"}
	if err := c.Update(context.Background(), "Task", id, task, nil); err != nil {
		t.Fatal(err)
	}
}

// The EMR is told through a rest-hook Subscription: fhirtest delivers it like an R4 server.
func TestSubscribeTaskNotifies(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	emr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	}))
	t.Cleanup(emr.Close)
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	c := newFHIRClient(t, srv.URL)
	ctx := context.Background()
	putTask(t, c, "t1", "requested")

	hook := fhir.TaskSubscription{Endpoint: emr.URL + "/fhir-events", Header: []string{"Authorization: Bearer emr-token"}, Payload: "application/fhir+json"}
	id, undo, err := c.SubscribeTask(ctx, "t1", hook)
	if err != nil {
		t.Fatal(err)
	}
	var sub map[string]any
	raw, _ := srv.Resource("Subscription", id)
	_ = json.Unmarshal(raw, &sub)
	if sub["criteria"] != "Task?_id=t1&status=completed,failed,rejected" || get(sub, "channel", "endpoint") != emr.URL+"/fhir-events" {
		t.Errorf("Subscription = %s", raw)
	}
	// Subscribing again (a re-sent request) finds the same Subscription and must not undo it.
	id2, undo2, err := c.SubscribeTask(ctx, "t1", hook)
	if err != nil || id2 != id {
		t.Fatalf("second SubscribeTask = %q, %v; want %q", id2, err, id)
	}
	if err := undo2(ctx); err != nil || srv.Count("Subscription") != 1 {
		t.Fatalf("undo of an existing Subscription: %v, %d left", err, srv.Count("Subscription"))
	}

	putTask(t, c, "t1", "in-progress") // no match
	putTask(t, c, "t1", "completed")
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := srv.AwaitNotifications(wait, 1); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != 1 || got[0].Method != http.MethodPut || got[0].URL.Path != "/fhir-events/Task/t1" || got[0].Header.Get("Authorization") != "Bearer emr-token" {
		t.Errorf("EMR got %d notifications; first %v", len(got), got)
	}
	mu.Unlock()

	if err := undo(ctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.Count("Subscription"); n != 0 {
		t.Errorf("%d Subscriptions after undo, want 0", n)
	}
	if err := undo(ctx); err != nil {
		t.Errorf("a second undo: %v", err)
	}
	if _, _, err := c.SubscribeTask(ctx, "t1", fhir.TaskSubscription{Endpoint: "/relative"}); err == nil || !strings.Contains(err.Error(), "Endpoint") {
		t.Errorf("relative endpoint: %v", err)
	}
}

// A re-sent Task brings the Subscription up to date: the EMR's rotated token
// (TaskSubscription.Header), another payload, or a Subscription the server
// stopped (R4 Subscription.status off or error, https://hl7.org/fhir/R4/subscription.html)
// is written again under the same id, while unchanged settings write nothing.
func TestSubscribeTaskAppliesNewSettings(t *testing.T) {
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	c := newFHIRClient(t, srv.URL)
	ctx := context.Background()
	putTask(t, c, "t1", "requested")
	type subscription struct {
		Status  string                     `json:"status"`
		Meta    struct{ VersionID string } `json:"meta"`
		Channel struct {
			Header  []string `json:"header"`
			Payload string   `json:"payload"`
		} `json:"channel"`
	}
	stored := func(id string) subscription {
		t.Helper()
		raw, ok := srv.Resource("Subscription", id)
		var sub subscription
		if err := json.Unmarshal(raw, &sub); !ok || err != nil {
			t.Fatalf("Subscription %s: %s %v", id, raw, err)
		}
		return sub
	}
	subscribe := func(hook fhir.TaskSubscription) string {
		t.Helper()
		id, undo, err := c.SubscribeTask(ctx, "t1", hook)
		if err != nil {
			t.Fatal(err)
		}
		if err := undo(ctx); err != nil || srv.Count("Subscription") != 1 {
			t.Fatalf("undo of an existing Subscription: %v, %d left", err, srv.Count("Subscription"))
		}
		return id
	}
	hook := fhir.TaskSubscription{Endpoint: "https://emr.example.org/events", Header: []string{"Authorization: Bearer old"}}
	id, _, err := c.SubscribeTask(ctx, "t1", hook)
	if err != nil {
		t.Fatal(err)
	}
	v1 := stored(id).Meta.VersionID
	if subscribe(hook); stored(id).Meta.VersionID != v1 {
		t.Errorf("the same settings wrote the Subscription again: version %s, then %s", v1, stored(id).Meta.VersionID)
	}

	hook.Header = []string{"Authorization: Bearer new"}
	subscribe(hook)
	if got := stored(id).Channel.Header; len(got) != 1 || got[0] != "Authorization: Bearer new" {
		t.Errorf("after the token's rotation the Subscription sends %v", got)
	}
	hook.Payload = "application/fhir+json"
	if subscribe(hook); stored(id).Channel.Payload != hook.Payload {
		t.Errorf("payload %q, want %q", stored(id).Channel.Payload, hook.Payload)
	}

	for _, status := range []string{"off", "error"} {
		var sub map[string]any
		if err := c.Read(ctx, "Subscription", id, &sub); err != nil {
			t.Fatal(err)
		}
		sub["status"] = status
		delete(sub, "meta")
		if err := c.Update(ctx, "Subscription", id, sub, nil); err != nil {
			t.Fatal(err)
		}
		if subscribe(hook); stored(id).Status != "active" {
			t.Errorf("a Subscription the server set %s is %s after SubscribeTask, want active", status, stored(id).Status)
		}
	}
}

// TestE2ESubscribeTask creates and removes a Subscription on the real FHIR server (which stores
// Subscriptions but sends no notifications).
func TestE2ESubscribeTask(t *testing.T) {
	base := os.Getenv("FHIR_BASE_URL")
	if base == "" {
		t.Skip("FHIR_BASE_URL not set")
	}
	c := newFHIRClient(t, strings.TrimRight(base, "/"))
	ctx := context.Background()
	taskID := "referral-e2e-" + time.Now().Format("150405.000000000")
	taskID = strings.ReplaceAll(taskID, ".", "-")
	putTask(t, c, taskID, "requested")
	id, undo, err := c.SubscribeTask(ctx, taskID, fhir.TaskSubscription{Endpoint: "https://emr.example.org/hook"})
	if err != nil {
		t.Fatal(err)
	}
	var sub map[string]any
	if err := c.Read(ctx, "Subscription", id, &sub); err != nil || sub["criteria"] != "Task?_id="+taskID+"&status=completed,failed,rejected" {
		t.Fatalf("read Subscription: %v %v", sub, err)
	}
	if err := undo(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Read(ctx, "Subscription", id, &sub); err == nil {
		t.Errorf("Subscription %s still readable after undo", id)
	}
}

func testPollTasks(t *testing.T, c *fhir.Client, tag string, step func()) {
	ctx := context.Background()
	q := url.Values{"status": {"completed,failed"}}
	if tag != "" {
		q.Set("_id", tag+"a,"+tag+"b,"+tag+"c")
	}
	ids := func(rs []json.RawMessage) string {
		var out []string
		for _, r := range rs {
			var m map[string]any
			_ = json.Unmarshal(r, &m)
			out = append(out, strings.TrimPrefix(m["id"].(string), tag))
		}
		return strings.Join(out, ",")
	}
	putTask(t, c, tag+"a", "completed")
	putTask(t, c, tag+"b", "requested")
	step()
	tasks, cp, err := c.PollTasks(ctx, fhir.TaskCheckpoint{}, q)
	if err != nil || ids(tasks) != "a" {
		t.Fatalf("first poll = %s, %v; want a", ids(tasks), err)
	}
	if tasks, cp2, err := c.PollTasks(ctx, cp, q); err != nil || len(tasks) != 0 || !cp2.LastUpdated.Equal(cp.LastUpdated) {
		t.Fatalf("poll without changes = %s, %v, %v", ids(tasks), cp2, err)
	}
	putTask(t, c, tag+"b", "failed")
	putTask(t, c, tag+"c", "completed")
	tasks, cp, err = c.PollTasks(ctx, cp, q)
	if err != nil || ids(tasks) != "b,c" {
		t.Fatalf("poll after changes = %s, %v; want b,c", ids(tasks), err)
	}
	raw, _ := json.Marshal(cp)
	var restored fhir.TaskCheckpoint
	if err := json.Unmarshal(raw, &restored); err != nil {
		t.Fatal(err)
	}
	if tasks, _, err = c.PollTasks(ctx, restored, q); err != nil || len(tasks) != 0 {
		t.Errorf("poll from the stored checkpoint %s = %s, %v", raw, ids(tasks), err)
	}
}

// Tasks written in the same millisecond as the checkpoint are neither missed nor repeated.
func TestPollTasksInMemory(t *testing.T) {
	frozen := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) // every write in the same millisecond
	srv := fhirtest.NewServer(fhirtest.Config{Now: func() time.Time { return frozen }})
	t.Cleanup(srv.Close)
	testPollTasks(t, newFHIRClient(t, srv.URL), "", func() {})
}

func TestE2EPollTasks(t *testing.T) {
	base := os.Getenv("FHIR_BASE_URL")
	if base == "" {
		t.Skip("FHIR_BASE_URL not set")
	}
	tag := strings.ReplaceAll("poll-"+time.Now().Format("150405.000000"), ".", "-") + "-"
	testPollTasks(t, newFHIRClient(t, strings.TrimRight(base, "/")), tag, func() { time.Sleep(5 * time.Millisecond) })
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A Task updated while a poll reads its pages moves to the end of the
// _lastUpdated order. fhirtest's next links are offsets, as many servers'
// are: following them, the Task that moved onto a page already read was
// never returned, by this poll or any later one. PollTasks pages from the
// newest Task of each page instead.
func TestPollTasksMissesNoTaskUpdatedDuringThePoll(t *testing.T) {
	var clock sync.Mutex
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	srv := fhirtest.NewServer(fhirtest.Config{Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}})
	t.Cleanup(srv.Close)
	writer := newFHIRClient(t, srv.URL)
	const n = 150
	for i := range n {
		putTask(t, writer, fmt.Sprintf("t%03d", i), "completed")
	}
	searches := 0
	poller, err := fhir.NewClient(fhir.ClientConfig{BaseURL: srv.URL, MaxRetries: -1, HTTPClient: &http.Client{
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(r)
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Task") {
				if searches++; searches == 1 {
					putTask(t, writer, "t005", "completed") // after the first page was read
				}
			}
			return resp, err
		})}})
	require.NoError(t, err)

	tasks, cp, err := poller.PollTasks(context.Background(), fhir.TaskCheckpoint{}, url.Values{"status": {"completed"}})
	require.NoError(t, err)
	got := map[string]bool{}
	for _, raw := range tasks {
		var task struct{ ID string }
		require.NoError(t, json.Unmarshal(raw, &task))
		got[task.ID] = true
	}
	for i := range n {
		assert.True(t, got[fmt.Sprintf("t%03d", i)], "t%03d missed", i)
	}
	assert.Equal(t, n+1, len(tasks), "each Task once, and t005 again in its new version")
	again, _, err := poller.PollTasks(context.Background(), cp, url.Values{"status": {"completed"}})
	require.NoError(t, err)
	assert.Empty(t, again, "nothing changed since")
}

// TestPollTasksOnAServerCappingCount: a server that caps _count below
// what PollTasks asks (HAPI's maximum page size; here 30, by a proxy in
// front of fhirtest) answers shorter pages with a next link. The poll reads
// on rather than taking the short page for the last; and when more Tasks
// changed in one millisecond than such a page holds (HAPI gives every
// resource of a transaction the same lastUpdated), it fails saying so, where
// it used to return nothing, poll after poll, without a word.
func TestPollTasksOnAServerCappingCount(t *testing.T) {
	for _, tt := range []struct {
		name    string
		instant bool // every Task written in the same millisecond
		n       int
		wantErr bool
	}{
		{"each Task its own instant", false, 100, false},
		{"up to the cap in one instant", true, 30, false},
		{"more than the cap in one instant", true, 60, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var clock sync.Mutex
			now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
			srv := fhirtest.NewServer(fhirtest.Config{Now: func() time.Time {
				clock.Lock()
				defer clock.Unlock()
				if !tt.instant {
					now = now.Add(time.Millisecond)
				}
				return now
			}})
			t.Cleanup(srv.Close)
			writer := newFHIRClient(t, srv.URL)
			for i := range tt.n {
				putTask(t, writer, fmt.Sprintf("t%03d", i), "completed")
			}
			poller, err := fhir.NewClient(fhir.ClientConfig{BaseURL: srv.URL, MaxRetries: -1, HTTPClient: &http.Client{
				Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					q := r.URL.Query()
					if n, err := strconv.Atoi(q.Get("_count")); err == nil && n > 30 {
						q.Set("_count", "30")
						r = r.Clone(r.Context())
						r.URL.RawQuery = q.Encode()
					}
					return http.DefaultTransport.RoundTrip(r)
				})}})
			require.NoError(t, err)
			tasks, _, err := poller.PollTasks(context.Background(), fhir.TaskCheckpoint{}, url.Values{"status": {"completed"}})
			if tt.wantErr {
				require.ErrorContains(t, err, "more than the server returns in a page")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.n, len(tasks), "every Task in one poll")
		})
	}
}

// An endpoint refused as not a URL is named without the credentials or
// token it may carry (the error can reach a log or an OpenHIM
// transaction).
func TestSubscribeTaskErrorRedactsTheEndpoint(t *testing.T) {
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	c := newFHIRClient(t, srv.URL)
	for _, endpoint := range []string{"emruser:s3cretpw@emr.example.org/notify", "emr.example.org/notify?token=s3cretpw"} {
		_, _, err := c.SubscribeTask(context.Background(), "t1", fhir.TaskSubscription{Endpoint: endpoint})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not an absolute http(s) URL")
		assert.NotContains(t, err.Error(), "s3cretpw")
	}
}
