package outbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
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

// configure stores app settings as a CHT administrator does, with PUT
// /api/v1/settings (each member given replaces the stored one).
func configure(t *testing.T, srv *chttest.Server, settings []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/api/v1/settings", bytes.NewReader(settings))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(chttest.AdminUsername, chttest.AdminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /api/v1/settings: %s", resp.Status)
	}
}

// configurePushes configures the pushes names in app_settings.outbound.
func configurePushes(t *testing.T, srv *chttest.Server, names ...string) {
	t.Helper()
	pushes := map[string]any{}
	for _, n := range names {
		pushes[n] = map[string]any{"destination": map[string]any{"base_url": "http://openhim-core:5001", "path": "/" + n},
			"mapping": map[string]any{"id": "doc._id"}}
	}
	b, err := json.Marshal(map[string]any{"outbound": pushes})
	if err != nil {
		t.Fatal(err)
	}
	configure(t, srv, b)
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
	configurePushes(t, chtSrv, "fhir-mediator")
	// chttest's pusher records failed pushes in medic-sentinel as Sentinel does.
	p, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "fhir-mediator", URL: dest.URL,
		Mapping: map[string]any{"id": "doc._id"}, Server: chtSrv, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	admin := newAdmin(t, chtSrv, "")
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
// not failures; unnamed, and without a cron in the app settings the Watch
// reads (here the settings have none), the Watch cannot tell them apart.
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
	configurePushes(t, chtSrv, "nightly", "live")
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

	admin := newAdmin(t, chtSrv, "")
	tests := []struct {
		name      string
		scheduled []string
		tasks     float64
		oldest    time.Duration
	}{
		{"scheduled named", []string{"nightly"}, 1, 20 * time.Minute},
		{"scheduled not named, no cron in the settings", nil, 2, 30 * time.Minute},
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
// it so too. Knowing the configured pushes, from WatchConfig.Configured or
// from the keys of app_settings.outbound that GET /api/v1/settings answers
// (api/src/services/settings.js get: the settings document's settings,
// which Sentinel loads too, sentinel/src/config.js initConfig), the watch
// counts such entries in cht_outbound_queue_unconfigured_pushes and not as
// failures; not knowing them (settings unreadable, or too slow), it cannot
// tell them apart, and the scrape still succeeds within Timeout.
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
	// 09:30. The settings now configure "live" only.
	settings, err := os.ReadFile("testdata/app_settings_live.json")
	if err != nil {
		t.Fatal(err)
	}
	configure(t, chtSrv, settings)

	admin := newAdmin(t, chtSrv, "")
	// onlyQueue hides the client's AppSettings: a Queue that cannot read settings.
	type onlyQueue struct{ outbound.Queue }
	tests := []struct {
		name                 string
		cfg                  outbound.WatchConfig
		queue                outbound.Queue // nil: admin
		fault                *chttest.Fault // on GET /api/v1/settings
		tasks                float64
		oldest               time.Duration
		pushes, unconfigured float64 // of destination "retired"; -1: no series
		known                float64
		settingsReads        int
	}{
		{"learned from the app settings", outbound.WatchConfig{}, nil, nil, 1, 20 * time.Minute, -1, 2, 1, 1},
		{"explicit list wins: retired still configured", outbound.WatchConfig{Configured: []string{"live", "retired"}}, nil, nil, 2, 30 * time.Minute, 2, -1, 1, 1},
		{"explicit list: retired removed", outbound.WatchConfig{Configured: []string{"live"}}, nil, nil, 1, 20 * time.Minute, -1, 2, 1, 1},
		{"explicit lists: the settings are not read", outbound.WatchConfig{Configured: []string{"live"}, Scheduled: []string{"nightly"}}, nil, nil, 1, 20 * time.Minute, -1, 2, 1, 0},
		{"a scheduled push counts as configured", outbound.WatchConfig{Scheduled: []string{"retired"}}, nil, nil, 1, 20 * time.Minute, 2, -1, 1, 1},
		{"settings unreadable: unknown", outbound.WatchConfig{}, nil, &chttest.Fault{Status: http.StatusInternalServerError}, 2, 30 * time.Minute, 2, -1, 0, 1},
		{"settings too slow: unknown", outbound.WatchConfig{Timeout: time.Second}, nil, &chttest.Fault{Latency: time.Minute}, 2, 30 * time.Minute, 2, -1, 0, 1},
		{"a queue that cannot read settings: unknown", outbound.WatchConfig{}, onlyQueue{admin}, nil, 2, 30 * time.Minute, 2, -1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				f := *tt.fault
				f.Method, f.Path = http.MethodGet, "/api/v1/settings"
				t.Cleanup(chtSrv.InjectFault(f))
			}
			chtSrv.ResetRequests()
			cfg := tt.cfg
			cfg.Now = clk.now
			q := tt.queue
			if q == nil {
				q = admin
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbound.NewWatch(q, cfg))
			start := time.Now()
			if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != tt.tasks {
				t.Errorf("tasks = %v, want %v", got, tt.tasks)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("scrape took %v", took)
			}
			if got := gauge(t, reg, "cht_outbound_queue_up", ""); got != 1 {
				t.Errorf("up = %v, want 1", got)
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
			if got := gauge(t, reg, "cht_outbound_queue_configured_known", ""); got != tt.known {
				t.Errorf("configured_known = %v, want %v", got, tt.known)
			}
			// chttest records a request once answered: the slow one after the Watch gave up on it.
			n := 0
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				n = countRequests(chtSrv, "/api/v1/settings")
				if n >= tt.settingsReads || time.Now().After(deadline) {
					break
				}
			}
			if n != tt.settingsReads {
				t.Errorf("%d reads of /api/v1/settings, want %d (one read serves the scrapes)", n, tt.settingsReads)
			}
		})
	}
}

// failedPush returns a fake CHT whose outbound queue holds one entry: the
// push name, of report r1, failed at the clock's time.
func failedPush(t *testing.T, name string) (*clock, *chttest.Server) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(dest.Close)
	p, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: name, URL: dest.URL,
		Mapping: map[string]any{"id": "doc._id"}, Server: chtSrv, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chtSrv.PutDoc(map[string]any{"_id": "r1", "type": "data_record", "form": "f"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PushID(context.Background(), "r1"); err == nil {
		t.Fatal("push to a failing destination succeeded")
	}
	return clk, chtSrv
}

// The app settings are read with the first scrape and again every 5
// minutes, not at every read of the queue. A read that fails keeps the
// names last read (a WARN line, once) and is tried again at the next read
// of the queue; a read that succeeds again is an INFO line.
func TestWatchSettingsCache(t *testing.T) {
	clk, chtSrv := failedPush(t, "renamed")
	configurePushes(t, chtSrv, "new-name") // "renamed" was renamed after it failed
	admin := newAdmin(t, chtSrv, "")
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	reg.MustRegister(outbound.NewWatch(admin, outbound.WatchConfig{Now: clk.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	settingsReads := func() int { return countRequests(chtSrv, "/api/v1/settings") }
	chtSrv.ResetRequests()
	var removeFault func()
	steps := []struct {
		name         string
		advance      time.Duration
		do           func()
		unconfigured float64 // of "renamed"; -1: no series (counted as configured)
		known        float64
		reads        int // of the settings so far
		log          string
	}{
		{"first scrape reads the settings", 0, nil, 1, 1, 1, ""},
		{"a later read of the queue reuses them", time.Minute, nil, 1, 1, 1, ""},
		{"the push configured again", time.Minute, func() { configurePushes(t, chtSrv, "new-name", "renamed") }, 1, 1, 1, ""},
		{"read again after 5 minutes", 3 * time.Minute, nil, -1, 1, 2, ""},
		{"renamed again", 0, func() { configurePushes(t, chtSrv, "new-name") }, -1, 1, 2, ""},
		{"a failed read keeps the names last read", 5 * time.Minute, func() {
			removeFault = chtSrv.InjectFault(chttest.Fault{Method: http.MethodGet, Path: "/api/v1/settings", Status: http.StatusServiceUnavailable})
		}, -1, 1, 3, "level=WARN msg=\"cht: app settings cannot be read; the outbound pushes configured when they last were still count as configured\""},
		{"tried again at the next read of the queue", 15 * time.Second, nil, -1, 1, 4, ""},
		{"read again", 15 * time.Second, func() { removeFault() }, 1, 1, 5, "level=INFO msg=\"cht: app settings read again; the configured outbound pushes are known\" pushes=1"},
	}
	for _, st := range steps {
		clk.add(st.advance)
		if st.do != nil {
			st.do()
		}
		logs.Reset()
		if got := gauge(t, reg, "cht_outbound_queue_unconfigured_pushes", "renamed"); got != st.unconfigured {
			t.Errorf("%s: unconfigured_pushes{destination=renamed} = %v, want %v", st.name, got, st.unconfigured)
		}
		if got := gauge(t, reg, "cht_outbound_queue_configured_known", ""); got != st.known {
			t.Errorf("%s: configured_known = %v, want %v", st.name, got, st.known)
		}
		if n := settingsReads(); n != st.reads {
			t.Errorf("%s: %d reads of the settings, want %d", st.name, n, st.reads)
		}
		if got := strings.TrimSpace(logs.String()); (st.log == "") != (got == "") || !strings.Contains(got, st.log) {
			t.Errorf("%s: logs = %q, want %q", st.name, got, st.log)
		}
	}
}

// The configured pushes are the keys of app_settings.outbound; Sentinel
// takes config.get('outbound') || {} (sentinel/src/schedule/outbound.js),
// so a missing, null or empty block configures none, and every queued push
// is one no longer configured. A block that is not an object is not read:
// the names stay unknown.
func TestWatchOutboundBlockShapes(t *testing.T) {
	clk, chtSrv := failedPush(t, "a")
	admin := newAdmin(t, chtSrv, "")
	tests := []struct {
		name                 string
		settings             map[string]any
		pushes, unconfigured float64 // of "a"; -1: no series
		known                float64
	}{
		{"configured", map[string]any{"outbound": map[string]any{"a": map[string]any{}, "b": map[string]any{}}}, 1, -1, 1},
		{"other names", map[string]any{"outbound": map[string]any{"A": map[string]any{}}}, -1, 1, 1},
		{"no outbound", map[string]any{}, -1, 1, 1},
		{"null", map[string]any{"outbound": nil}, -1, 1, 1},
		{"empty", map[string]any{"outbound": map[string]any{}}, -1, 1, 1},
		{"an array", map[string]any{"outbound": []any{"a"}}, 1, -1, 0},
		{"a string", map[string]any{"outbound": "a"}, 1, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chtSrv.SetSettings(tt.settings)
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbound.NewWatch(admin, outbound.WatchConfig{Now: clk.now}))
			if got := gauge(t, reg, "cht_outbound_queue_pushes", "a"); got != tt.pushes {
				t.Errorf("pushes{destination=a} = %v, want %v", got, tt.pushes)
			}
			if got := gauge(t, reg, "cht_outbound_queue_unconfigured_pushes", "a"); got != tt.unconfigured {
				t.Errorf("unconfigured_pushes{destination=a} = %v, want %v", got, tt.unconfigured)
			}
			if got := gauge(t, reg, "cht_outbound_queue_configured_known", ""); got != tt.known {
				t.Errorf("configured_known = %v, want %v", got, tt.known)
			}
		})
	}
}
