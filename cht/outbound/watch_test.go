package outbound_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func gauge(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1 // absent
}

// The queue metrics rise while CHT's pushes keep failing and fall when the destination recovers.
// chttest records failed pushes as cht-core does: mark_for_outbound.js creates task:outbound:<id>
// with created and queue when the first push fails; sentinel/src/schedule/outbound.js retries the
// queue every 5 minutes and deletes the task once its queue is empty.
func TestWatchFollowsFailingPushes(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(dest.Close)
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	// chttest's pusher records failed pushes in medic-sentinel as Sentinel does.
	p, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "fhir-mediator", URL: dest.URL,
		Mapping: map[string]any{"id": "doc._id"}, Server: chtSrv, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	w := outbound.NewWatch(admin, outbound.WatchConfig{CacheFor: time.Nanosecond, Now: clk.now})
	reg := prometheus.NewRegistry()
	reg.MustRegister(w)
	ctx := context.Background()

	if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != 0 {
		t.Fatalf("tasks before any push = %v", got)
	}
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := chtSrv.PutDoc(map[string]any{"_id": id, "type": "data_record", "form": "referral_follow_up"}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.PushID(ctx, id); err == nil {
			t.Fatal("push to a failing destination succeeded")
		}
		clk.add(time.Minute)
	}
	for range 7 { // Sentinel retries every 5 minutes; the destination stays down
		clk.add(5 * time.Minute)
		if err := p.RunQueue(ctx); err == nil {
			t.Fatal("retry to a failing destination succeeded")
		}
	}
	if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != 3 {
		t.Errorf("tasks while failing = %v, want 3", got)
	}
	if got := gauge(t, reg, "cht_outbound_queue_pushes", "fhir-mediator"); got != 3 {
		t.Errorf("pushes{destination=fhir-mediator} while failing = %v, want 3", got)
	}
	if got := gauge(t, reg, "cht_outbound_queue_oldest_failure_age_seconds", ""); got != (3*time.Minute + 35*time.Minute).Seconds() {
		t.Errorf("oldest failure age = %v s, want %v", got, (38 * time.Minute).Seconds())
	}

	down.Store(false)
	clk.add(5 * time.Minute)
	if err := p.RunQueue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != 0 {
		t.Errorf("tasks after recovery = %v, want 0", got)
	}
	if got := gauge(t, reg, "cht_outbound_queue_pushes", "fhir-mediator"); got != -1 {
		t.Errorf("pushes after recovery = %v, want no series", got)
	}
	if got := gauge(t, reg, "cht_outbound_queue_oldest_failure_age_seconds", ""); got != 0 {
		t.Errorf("oldest failure age after recovery = %v", got)
	}
}

type failingQueue struct {
	calls atomic.Int32
	ok    atomic.Bool // answers an empty queue instead of failing
}

func (f *failingQueue) OutboundQueue(context.Context) ([]cht.OutboundTask, error) {
	f.calls.Add(1)
	if f.ok.Load() {
		return nil, nil
	}
	return nil, errors.New("cht: read outbound queue: forbidden")
}

// The queue that cannot be read is cht_outbound_queue_up 0, and the error
// is logged once (WARN), not at every scrape, until a read succeeds (INFO).
func TestWatchUnreadableQueue(t *testing.T) {
	q := &failingQueue{}
	var logs bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := outbound.NewWatch(q, outbound.WatchConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Now: func() time.Time { return now }})
	reg := prometheus.NewRegistry()
	reg.MustRegister(w)
	if up, tasks := gauge(t, reg, "cht_outbound_queue_up", ""), gauge(t, reg, "cht_outbound_queue_tasks", ""); up != 0 || tasks != -1 {
		t.Errorf("up = %v, tasks = %v; want 0 and no series", up, tasks)
	}
	if n := q.calls.Load(); n != 1 {
		t.Errorf("%d reads within CacheFor, want 1", n)
	}
	now = now.Add(time.Minute) // a later scrape, failing again
	gauge(t, reg, "cht_outbound_queue_up", "")
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "forbidden") {
		t.Errorf("logs = %s; want one WARN with the error", logs.String())
	}
	q.ok.Store(true)
	now = now.Add(time.Minute)
	if up := gauge(t, reg, "cht_outbound_queue_up", ""); up != 1 {
		t.Errorf("up = %v after a read succeeded", up)
	}
	if !strings.Contains(logs.String(), "level=INFO msg=\"cht: outbound queue read again\"") {
		t.Errorf("logs = %s; want the recovery", logs.String())
	}
}

// A push with a cron is queued outside its window without being tried
// (mark_for_outbound.js: config.cron && !isWithinTimeFrame → failedKeys,
// no send), so it waits in the queue without having failed. Named in
// WatchConfig.Scheduled, such pushes are counted by destination but are
// not failures; unnamed, the watch cannot tell them apart.
func TestWatchScheduledPushesAreNotFailures(t *testing.T) {
	var tried atomic.Int32
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tried.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(dest.Close)
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	nightly, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "nightly", URL: dest.URL, Cron: "0 2 * * *",
		Mapping: map[string]any{"id": "doc._id"}, Server: chtSrv, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	live, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "live", URL: dest.URL,
		Mapping: map[string]any{"id": "doc._id"}, Server: chtSrv, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"n1", "l1"} {
		if _, err := chtSrv.PutDoc(map[string]any{"_id": id, "type": "data_record", "form": "f"}); err != nil {
			t.Fatal(err)
		}
	}
	if a, err := nightly.PushID(ctx, "n1"); err != nil || a.Outcome != chttest.OutcomeQueued { // 09:00, outside the window
		t.Fatalf("scheduled push: %v, %v; want queued", a.Outcome, err)
	}
	if n := tried.Load(); n != 0 {
		t.Fatalf("the scheduled push was tried %d times outside its window", n)
	}
	clk.add(10 * time.Minute)
	if _, err := live.PushID(ctx, "l1"); err == nil { // tried at 09:10, failed
		t.Fatal("push to a failing destination succeeded")
	}
	clk.add(20 * time.Minute)

	admin, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		scheduled []string
		tasks     float64
		oldest    time.Duration
	}{
		{"scheduled named", []string{"nightly"}, 1, 20 * time.Minute},
		{"scheduled not named", nil, 2, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbound.NewWatch(admin, outbound.WatchConfig{Now: clk.now, Scheduled: tt.scheduled}))
			if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != tt.tasks {
				t.Errorf("tasks = %v, want %v", got, tt.tasks)
			}
			if got := gauge(t, reg, "cht_outbound_queue_oldest_failure_age_seconds", ""); got != tt.oldest.Seconds() {
				t.Errorf("oldest failure age = %v s, want %v", got, tt.oldest.Seconds())
			}
			for _, d := range []string{"nightly", "live"} {
				if got := gauge(t, reg, "cht_outbound_queue_pushes", d); got != 1 {
					t.Errorf("pushes{destination=%s} = %v, want 1", d, got)
				}
			}
		})
	}
}

// A push taken out of app_settings.outbound leaves its queued entries
// behind: from cht-core 4.11 Sentinel's schedule skips an entry without a
// configuration (sentinel/src/schedule/outbound.js batch: .filter(({config})
// => config && ...)), so it is neither tried nor removed, and chttest keeps
// it so too. Told the configured pushes (WatchConfig.Configured), the watch
// counts such entries in cht_outbound_queue_unconfigured_pushes and not as
// failures; not told, it cannot tell them apart.
func TestWatchUnconfiguredPushesAreNotFailures(t *testing.T) {
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(dest.Close)
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	newPusher := func(name string, forms ...string) *chttest.OutboundPusher {
		p, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: name, URL: dest.URL,
			RelevantTo: func(doc map[string]any) bool { f, _ := doc["form"].(string); return slices.Contains(forms, f) },
			Mapping:    map[string]any{"id": "doc._id"}, Server: chtSrv, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	retired, live := newPusher("retired", "old", "both"), newPusher("live", "both")
	ctx := context.Background()
	// r1 fails at 09:00 and queues [retired]; m1 at 09:10, [retired live].
	for _, d := range []struct{ id, form string }{{"r1", "old"}, {"m1", "both"}} {
		if _, err := chtSrv.PutDoc(map[string]any{"_id": d.id, "type": "data_record", "form": d.form}); err != nil {
			t.Fatal(err)
		}
		_, _ = retired.PushID(ctx, d.id)
		_, _ = live.PushID(ctx, d.id)
		clk.add(10 * time.Minute)
	}
	for range 2 { // "retired" is no longer configured: only "live" is retried, and fails
		clk.add(5 * time.Minute)
		if err := live.RunQueue(ctx); err == nil {
			t.Fatal("retry to a failing destination succeeded")
		}
	}
	// 09:30

	admin, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                 string
		cfg                  outbound.WatchConfig
		tasks                float64
		oldest               time.Duration
		pushes, unconfigured float64 // of destination "retired"; -1: no series
	}{
		{"configured pushes unknown", outbound.WatchConfig{}, 2, 30 * time.Minute, 2, -1},
		{"retired push still configured", outbound.WatchConfig{Configured: []string{"live", "retired"}}, 2, 30 * time.Minute, 2, -1},
		{"retired push removed", outbound.WatchConfig{Configured: []string{"live"}}, 1, 20 * time.Minute, -1, 2},
		{"a scheduled push counts as configured", outbound.WatchConfig{Configured: []string{"live"}, Scheduled: []string{"retired"}}, 1, 20 * time.Minute, 2, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Now = clk.now
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbound.NewWatch(admin, cfg))
			if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != tt.tasks {
				t.Errorf("tasks = %v, want %v", got, tt.tasks)
			}
			if got := gauge(t, reg, "cht_outbound_queue_oldest_failure_age_seconds", ""); got != tt.oldest.Seconds() {
				t.Errorf("oldest failure age = %v s, want %v", got, tt.oldest.Seconds())
			}
			if got := gauge(t, reg, "cht_outbound_queue_pushes", "live"); got != 1 {
				t.Errorf("pushes{destination=live} = %v, want 1", got)
			}
			if got := gauge(t, reg, "cht_outbound_queue_pushes", "retired"); got != tt.pushes {
				t.Errorf("pushes{destination=retired} = %v, want %v", got, tt.pushes)
			}
			if got := gauge(t, reg, "cht_outbound_queue_unconfigured_pushes", "retired"); got != tt.unconfigured {
				t.Errorf("unconfigured_pushes{destination=retired} = %v, want %v", got, tt.unconfigured)
			}
		})
	}
}
