package outbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// scheduledFixture is a fake CHT of the version configured with
// testdata/app_settings_scheduled.json: the push "nightly" has the cron
// "0 2 * * *", "live" has none, and both go to a destination that fails.
// Pushers built from the same settings push n1 (form nightly) at 09:00 and
// l1 (form live) at 09:10; the clock then says 09:30. It returns the
// settings as served. honoursCron says whether the version honours cron.
//
// From 4.5.0 n1 is queued without being tried, outside its window
// (mark_for_outbound.js markForOutbound: config.cron &&
// !isWithinTimeFrame(...) → failedKeys); before, the cron is ignored and
// n1 is tried at once, fails and is queued. l1 is tried, fails and is
// queued in either.
func scheduledFixture(t *testing.T, version string, honoursCron bool) (*chttest.Server, *clock, map[string]any) {
	t.Helper()
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(dest.Close)
	raw, err := os.ReadFile("testdata/app_settings_scheduled.json")
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.ReplaceAll(raw, []byte("{{DESTINATION}}"), []byte(dest.URL))
	var settings map[string]any
	if err := json.Unmarshal(raw, &settings); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	srv := chttest.NewDemoServer(chttest.Config{Version: version})
	t.Cleanup(srv.Close)
	srv.SetSettings(settings)
	cfgs, err := chttest.OutboundFromSettings(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	pushers := map[string]*chttest.OutboundPusher{}
	for _, c := range cfgs {
		c.Server, c.Version, c.Now = srv, version, clk.now
		if pushers[c.Name], err = chttest.NewOutboundPusher(c); err != nil {
			t.Fatal(err)
		}
	}
	nightlyOutcome := chttest.OutcomeFailed
	if honoursCron {
		nightlyOutcome = chttest.OutcomeQueued
	}
	for _, d := range []struct {
		id, push string
		want     chttest.Outcome
	}{{"n1", "nightly", nightlyOutcome}, {"l1", "live", chttest.OutcomeFailed}} {
		if _, err := srv.PutDoc(map[string]any{"_id": d.id, "type": "data_record", "form": d.push}); err != nil {
			t.Fatal(err)
		}
		if a, _ := pushers[d.push].PushID(context.Background(), d.id); a.Outcome != d.want {
			t.Fatalf("CHT %s: %s pushed %s: %s, want %s", version, d.push, d.id, a.Outcome, d.want)
		}
		clk.add(10 * time.Minute)
	}
	clk.add(10 * time.Minute)
	return srv, clk, settings
}

// newAdmin is a client of srv with a CHT administrator's credentials;
// each has its own version detection.
func newAdmin(t *testing.T, srv *chttest.Server, version string) *cht.Client {
	t.Helper()
	c, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword, MaxRetries: -1, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countRequests counts the requests srv answered to GET path.
func countRequests(srv *chttest.Server, path string) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet && r.Path == path {
			n++
		}
	}
	return n
}

// With WatchConfig.Scheduled empty, the Watch learns the scheduled pushes
// from the app settings, on a CHT that honours cron: from 4.5.0
// sentinel/src/schedule/outbound.js execute retries a push with a cron only
// within its window (`!config.cron || isWithinTimeFrame(config.cron, ...)`);
// before, execute batches every configured push, and mark_for_outbound.js
// sends it at once, so its queued entries are failures. The Watch takes
// the version from the client (GET /api/deploy-info, shared-libs/server-info
// getDeployInfo), at each read of the settings.
func TestWatchLearnsScheduledPushesByVersion(t *testing.T) {
	tests := []struct {
		version     string
		honoursCron bool
		tasks       float64
		oldest      time.Duration // at 09:30
	}{
		{"4.4.2", false, 2, 30 * time.Minute},
		{"4.5.0", true, 1, 20 * time.Minute},
		{"4.11.0", true, 1, 20 * time.Minute},
		{"5.2.0", true, 1, 20 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			srv, clk, _ := scheduledFixture(t, tt.version, tt.honoursCron)
			srv.ResetRequests()
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbound.NewWatch(newAdmin(t, srv, ""), outbound.WatchConfig{Now: clk.now}))
			for later := time.Duration(0); later <= 6*time.Minute; later += 6 * time.Minute {
				if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != tt.tasks {
					t.Errorf("+%v: tasks = %v, want %v", later, got, tt.tasks)
				}
				if got, want := gauge(t, reg, "cht_outbound_queue_oldest_failure_age_seconds", ""), (tt.oldest + later).Seconds(); got != want {
					t.Errorf("+%v: oldest failure age = %v s, want %v", later, got, want)
				}
				for _, d := range []string{"nightly", "live"} {
					if got := gauge(t, reg, "cht_outbound_queue_pushes", d); got != 1 {
						t.Errorf("+%v: pushes{destination=%s} = %v, want 1", later, d, got)
					}
				}
				clk.add(6 * time.Minute) // the settings are read again
			}
			if n := countRequests(srv, "/api/v1/settings"); n != 2 {
				t.Errorf("%d reads of /api/v1/settings, want 2", n)
			}
			if n := countRequests(srv, "/api/deploy-info"); n != 2 {
				t.Errorf("%d reads of /api/deploy-info, want 2 (one per read of the settings)", n)
			}
		})
	}
}

// Which cron makes a push scheduled, on CHT 5.2 (the same in every
// release from 4.5.0 to 5.2.0): sentinel/src/schedule/outbound.js execute
// and mark_for_outbound.js markForOutbound both test `config.cron` for
// truth, then shared-libs/transitions/src/lib/utils.js isWithinTimeFrame
// asks cron-validator 1.3.1 isValidCron(exp), which starts with
// exp.trim().split(/\s+/) and, when it refuses the expression, answers
// false ("Outbound push failed: invalid cron expression"). So a falsy cron
// is none (the push is retried every 5 minutes), a refused string is never
// due (never sent), and a truthy value that is not a string throws in
// trim() (execute rejects: no queued push is sent). An accepted string
// is then read by later.js 1.2.0 (later.parse.cron, later.schedule's next
// and prev), which keeps only times that meet every field
// (src/core/compile.js start: day of month and day of week both) and has
// 29 February in leap years only (src/constraint/day.js later.D.extent):
// a cron whose days exist in none of its months has no tick, next and
// prev give up after 1000 steps on dates that match nothing, and
// isWithinTimeFrame answers false at every run, so the push is never sent
// (a WARN line names it and its cron). Only an accepted string that falls
// due schedules the push; anything else leaves its queued entries
// failures. Here the admin changed the cron of "nightly" after n1 was
// queued.
func TestWatchScheduledCronValues(t *testing.T) {
	srv, clk, settings := scheduledFixture(t, "5.2.0", true)
	admin := newAdmin(t, srv, "")
	tests := []struct {
		name      string
		member    string // "cron" unless set
		cron      string // JSON; "" removes the member
		scheduled bool
		neverDue  bool // accepted by CHT, never due: a WARN line
	}{
		{"a cron", "", `"0 2 * * *"`, true, false},
		{"white space around and between", "", `" 0  2\t* * *\n"`, true, false},
		{"lists, ranges and steps", "", `"0,30 1-3 */2 1-12/3 0-6"`, true, false},
		{"every 5 minutes", "", `"*/5 * * * *"`, true, false},
		{"weekdays", "", `"0 9 * * 1-5"`, true, false},
		{"the 31st", "", `"0 0 31 * *"`, true, false},
		{"29 February, in leap years", "", `"0 0 29 2 *"`, true, false},
		{"29 February on a Monday (2044)", "", `"0 0 29 2 1"`, true, false},
		{"31 February", "", `"0 0 31 2 *"`, false, true},
		{"30 February", "", `"0 0 30 2 *"`, false, true},
		{"31 April, June, September or November", "", `"0 0 31 4,6,9,11 *"`, false, true},
		{"31 February on a Monday: both must match", "", `"0 0 31 2 1"`, false, true},
		{"30 or 31 February, by a range and a step", "", `"0 0 30-31/1 2-2 *"`, false, true},
		{"no cron", "", ``, false, false},
		{"empty", "", `""`, false, false},
		{"white space only", "", `"   "`, false, false},
		{"six fields", "", `"0 0 2 * * *"`, false, false},
		{"a macro", "", `"@daily"`, false, false},
		{"a weekday name", "", `"0 2 * * MON"`, false, false},
		{"weekday 7", "", `"0 2 * * 7"`, false, false},
		{"a question mark", "", `"0 2 ? * *"`, false, false},
		{"null", "", `null`, false, false},
		{"false", "", `false`, false, false},
		{"zero", "", `0`, false, false},
		{"a number", "", `5`, false, false},
		{"true", "", `true`, false, false},
		{"an array", "", `["0 2 * * *"]`, false, false},
		{"an object", "", `{"cron": "0 2 * * *"}`, false, false},
		{"another member's case", "Cron", `"0 2 * * *"`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := json.NewEncoder(&b).Encode(settings); err != nil {
				t.Fatal(err)
			}
			var s map[string]any // a deep copy
			if err := json.Unmarshal(b.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			nightly := s["outbound"].(map[string]any)["nightly"].(map[string]any)
			delete(nightly, "cron")
			if tt.cron != "" {
				var v any
				if err := json.Unmarshal([]byte(tt.cron), &v); err != nil {
					t.Fatal(err)
				}
				member := tt.member
				if member == "" {
					member = "cron"
				}
				nightly[member] = v
			}
			srv.SetSettings(s)
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbound.NewWatch(admin, outbound.WatchConfig{Now: clk.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
			tasks, oldest := 2.0, 30*time.Minute
			if tt.scheduled {
				tasks, oldest = 1, 20*time.Minute
			}
			if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != tasks {
				t.Errorf("tasks = %v, want %v", got, tasks)
			}
			if got := gauge(t, reg, "cht_outbound_queue_oldest_failure_age_seconds", ""); got != oldest.Seconds() {
				t.Errorf("oldest failure age = %v s, want %v", got, oldest.Seconds())
			}
			if got := gauge(t, reg, "cht_outbound_queue_pushes", "nightly"); got != 1 {
				t.Errorf("pushes{destination=nightly} = %v, want 1", got)
			}
			// A WARN line for an accepted cron that never falls due only.
			want := ""
			if tt.neverDue {
				var expr string
				if err := json.Unmarshal([]byte(tt.cron), &expr); err != nil {
					t.Fatal(err)
				}
				want = `level=WARN msg="cht: an outbound push's cron never falls due: CHT 4.5 and later never send the push and keep its tasks queued; fix the cron in app_settings.outbound" push=nightly cron=` + strconv.Quote(expr)
			}
			if got := strings.TrimSpace(logs.String()); (want == "") != (got == "") || !strings.Contains(got, want) {
				t.Errorf("logs = %q, want %q", got, want)
			}
		})
	}
}

// The lists given win over the app settings, each on its own: Scheduled
// given is used as it is (the settings are still read for Configured),
// Configured given still lets Scheduled be learned, among the pushes it
// names. The version comes from a *cht.Client only: its Config.Version,
// without asking CHT, or GET /api/deploy-info. Any other Queue cannot tell
// it, and a version that cannot be detected is not guessed: pushes with a
// cron then count as failures, as they are on a CHT before 4.5, and a WARN
// line says so.
func TestWatchScheduledSources(t *testing.T) {
	srv, clk, _ := scheduledFixture(t, "5.2.0", true)
	// wrapped is a Queue that reads the queue and the settings, but is no *cht.Client.
	type wrapped struct{ *cht.Client }
	tests := []struct {
		name             string
		cfg              outbound.WatchConfig
		version          string // cht.Config.Version
		wrap             bool
		fault            *chttest.Fault // on GET /api/deploy-info
		tasks            float64
		oldest           time.Duration
		unconfigured     float64 // of "nightly"; -1: no series
		settings, deploy int     // reads of /api/v1/settings and /api/deploy-info
		log              string
	}{
		{"learned", outbound.WatchConfig{}, "", false, nil, 1, 20 * time.Minute, -1, 1, 1, ""},
		{"Config.Version given", outbound.WatchConfig{}, "5.2.0", false, nil, 1, 20 * time.Minute, -1, 1, 0, ""},
		{"Config.Version before 4.5", outbound.WatchConfig{}, "4.4.2", false, nil, 2, 30 * time.Minute, -1, 1, 0, ""},
		{"Scheduled given wins", outbound.WatchConfig{Scheduled: []string{"live"}}, "", false, nil, 1, 30 * time.Minute, -1, 1, 0, ""},
		{"Configured given, Scheduled learned", outbound.WatchConfig{Configured: []string{"nightly", "live"}}, "", false, nil, 1, 20 * time.Minute, -1, 1, 1, ""},
		{"Configured given without the push", outbound.WatchConfig{Configured: []string{"live"}}, "", false, nil, 1, 20 * time.Minute, 1, 1, 1, ""},
		{"both given", outbound.WatchConfig{Configured: []string{"nightly", "live"}, Scheduled: []string{"nightly"}}, "", false, nil, 1, 20 * time.Minute, -1, 0, 0, ""},
		{"not a *cht.Client", outbound.WatchConfig{}, "", true, nil, 2, 30 * time.Minute, -1, 1, 0,
			`level=WARN msg="cht: the CHT version is unknown, so outbound pushes with a cron count as failures: CHT before 4.5 ignores cron; name them in WatchConfig.Scheduled"`},
		{"version cannot be detected", outbound.WatchConfig{}, "", false, &chttest.Fault{Status: http.StatusNotFound}, 2, 30 * time.Minute, -1, 1, 1,
			`level=WARN msg="cht: the CHT version cannot be detected; outbound pushes with a cron count as failures until it is (CHT before 4.5 ignores cron)"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				f := *tt.fault
				f.Method, f.Path = http.MethodGet, "/api/deploy-info"
				t.Cleanup(srv.InjectFault(f))
			}
			srv.ResetRequests()
			var q outbound.Queue = newAdmin(t, srv, tt.version)
			if tt.wrap {
				q = wrapped{q.(*cht.Client)}
			}
			var logs bytes.Buffer
			cfg := tt.cfg
			cfg.Now, cfg.Logger = clk.now, slog.New(slog.NewTextHandler(&logs, nil))
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbound.NewWatch(q, cfg))
			if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != tt.tasks {
				t.Errorf("tasks = %v, want %v", got, tt.tasks)
			}
			if got := gauge(t, reg, "cht_outbound_queue_oldest_failure_age_seconds", ""); got != tt.oldest.Seconds() {
				t.Errorf("oldest failure age = %v s, want %v", got, tt.oldest.Seconds())
			}
			if got := gauge(t, reg, "cht_outbound_queue_unconfigured_pushes", "nightly"); got != tt.unconfigured {
				t.Errorf("unconfigured_pushes{destination=nightly} = %v, want %v", got, tt.unconfigured)
			}
			if got := gauge(t, reg, "cht_outbound_queue_up", ""); got != 1 {
				t.Errorf("up = %v, want 1", got)
			}
			if n := countRequests(srv, "/api/v1/settings"); n != tt.settings {
				t.Errorf("%d reads of /api/v1/settings, want %d", n, tt.settings)
			}
			if n := countRequests(srv, "/api/deploy-info"); n != tt.deploy {
				t.Errorf("%d reads of /api/deploy-info, want %d", n, tt.deploy)
			}
			if got := strings.TrimSpace(logs.String()); (tt.log == "") != (got == "") || !strings.Contains(got, tt.log) {
				t.Errorf("logs = %q, want %q", got, tt.log)
			}
		})
	}
}

// A version that cannot be detected is asked again at the next read of
// the queue (CacheFor later, not 5 minutes), and once it is known the
// scheduled pushes are (an INFO line).
func TestWatchVersionDetectedLater(t *testing.T) {
	srv, clk, _ := scheduledFixture(t, "5.2.0", true)
	remove := srv.InjectFault(chttest.Fault{Method: http.MethodGet, Path: "/api/deploy-info", Status: http.StatusServiceUnavailable})
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	reg.MustRegister(outbound.NewWatch(newAdmin(t, srv, ""), outbound.WatchConfig{Now: clk.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	steps := []struct {
		name    string
		advance time.Duration
		do      func()
		tasks   float64
		log     string
	}{
		{"cannot be detected", 0, nil, 2, "level=WARN msg=\"cht: the CHT version cannot be detected"},
		{"still not, logged once", 15 * time.Second, nil, 2, ""},
		{"detected at the next read of the queue", 15 * time.Second, func() { remove() },
			1, "level=INFO msg=\"cht: CHT version detected; outbound pushes with a cron count as scheduled from CHT 4.5\" version=5.2.0 scheduled=1"},
		{"kept", 6 * time.Minute, nil, 1, ""},
	}
	for _, st := range steps {
		clk.add(st.advance)
		if st.do != nil {
			st.do()
		}
		logs.Reset()
		if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != st.tasks {
			t.Errorf("%s: tasks = %v, want %v", st.name, got, st.tasks)
		}
		if got := strings.TrimSpace(logs.String()); (st.log == "") != (got == "") || !strings.Contains(got, st.log) {
			t.Errorf("%s: logs = %q, want %q", st.name, got, st.log)
		}
	}
}

// A cron that never falls due is logged once while it stays in the app
// settings, again when it changes or comes back, and its queued entries
// count as failures while it is there.
func TestWatchNeverDueCronWarnsOnce(t *testing.T) {
	srv, clk, settings := scheduledFixture(t, "5.2.0", true)
	nightly := settings["outbound"].(map[string]any)["nightly"].(map[string]any)
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	reg.MustRegister(outbound.NewWatch(newAdmin(t, srv, ""), outbound.WatchConfig{Now: clk.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	warn := func(expr string) string {
		return `level=WARN msg="cht: an outbound push's cron never falls due: CHT 4.5 and later never send the push and keep its tasks queued; fix the cron in app_settings.outbound" push=nightly cron=` + strconv.Quote(expr)
	}
	steps := []struct {
		name  string
		cron  string
		tasks float64
		log   string
	}{
		{"31 February", "0 0 31 2 *", 2, warn("0 0 31 2 *")},
		{"read again, unchanged", "0 0 31 2 *", 2, ""},
		{"changed, still never due", "0 0 31 4,6,9,11 *", 2, warn("0 0 31 4,6,9,11 *")},
		{"fixed", "0 0 29 2 *", 1, ""},
		{"broken again", "0 0 31 4,6,9,11 *", 2, warn("0 0 31 4,6,9,11 *")},
	}
	for _, st := range steps {
		nightly["cron"] = st.cron
		srv.SetSettings(settings)
		logs.Reset()
		if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != st.tasks {
			t.Errorf("%s: tasks = %v, want %v", st.name, got, st.tasks)
		}
		if got := strings.TrimSpace(logs.String()); (st.log == "") != (got == "") || !strings.Contains(got, st.log) {
			t.Errorf("%s: logs = %q, want %q", st.name, got, st.log)
		}
		clk.add(6 * time.Minute) // the settings are read again
	}
}

// CHT upgraded from 4.4 to 4.11 under a running Watch: at the next read of
// the app settings the Watch detects the version again, and the push with
// a cron, which 4.4 ignores (sentinel/src/schedule/outbound.js before
// 4.5.0), counts as scheduled from then on, without a restart. The API
// answers the new release at GET /api/deploy-info once the upgrade is done
// (cht-core 5.x api/src/services/setup/upgrade-steps.js finalize calls
// shared-libs/server-info getDeployInfo(true); a 4.x upgrade starts a new
// API, whose api/src/services/deploy-info.js reads the ddoc afresh). A
// detection that fails then keeps the version last detected, which the
// client's log says once, not every read. A client given Config.Version
// never asks.
func TestWatchLearnsUpgradeWhileRunning(t *testing.T) {
	srv, clk, _ := scheduledFixture(t, "4.4.2", false)
	srv.ResetRequests()
	var clientLogs bytes.Buffer
	client, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword, MaxRetries: -1,
		Logger: slog.New(slog.NewTextHandler(&clientLogs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(outbound.NewWatch(client, outbound.WatchConfig{Now: clk.now}))
	pinned := prometheus.NewRegistry()
	pinned.MustRegister(outbound.NewWatch(newAdmin(t, srv, "4.4.2"), outbound.WatchConfig{Now: clk.now}))
	var removeFault func()
	steps := []struct {
		name   string
		do     func()
		tasks  float64
		oldest time.Duration // after 09:30 and the steps' 6 minutes each
		log    string        // of the client
	}{
		{"on 4.4.2", nil, 2, 30 * time.Minute, ""},
		{"upgraded to 4.11.0", func() {
			if err := srv.SetVersion("4.11.0"); err != nil {
				t.Fatal(err)
			}
		}, 1, 26 * time.Minute, `level=INFO msg="cht: the CHT version changed" was=4.4.2 version=4.11.0`},
		{"detection fails: 4.11.0 kept", func() {
			removeFault = srv.InjectFault(chttest.Fault{Method: http.MethodGet, Path: "/api/deploy-info", Status: http.StatusServiceUnavailable})
		}, 1, 32 * time.Minute, `level=WARN msg="cht: the CHT version cannot be detected again; the version last detected stays in use until it can" version=4.11.0`},
		{"still failing, logged once", nil, 1, 38 * time.Minute, ""},
		{"detected again", func() { removeFault() }, 1, 44 * time.Minute, `level=INFO msg="cht: the CHT version detected again" version=4.11.0`},
	}
	for i, st := range steps {
		if i > 0 {
			clk.add(6 * time.Minute) // the settings are read again
		}
		if st.do != nil {
			st.do()
		}
		clientLogs.Reset()
		before := countRequests(srv, "/api/deploy-info")
		if got := gauge(t, reg, "cht_outbound_queue_tasks", ""); got != st.tasks {
			t.Errorf("%s: tasks = %v, want %v", st.name, got, st.tasks)
		}
		if got := gauge(t, reg, "cht_outbound_queue_oldest_failure_age_seconds", ""); got != st.oldest.Seconds() {
			t.Errorf("%s: oldest failure age = %v s, want %v", st.name, got, st.oldest.Seconds())
		}
		if got := gauge(t, pinned, "cht_outbound_queue_tasks", ""); got != 2 {
			t.Errorf("%s: tasks with Config.Version 4.4.2 = %v, want 2", st.name, got)
		}
		if n := countRequests(srv, "/api/deploy-info") - before; n != 1 {
			t.Errorf("%s: %d reads of /api/deploy-info, want 1 (the Config.Version client's none)", st.name, n)
		}
		if got := strings.TrimSpace(clientLogs.String()); (st.log == "") != (got == "") || !strings.Contains(got, st.log) {
			t.Errorf("%s: client logs = %q, want %q", st.name, got, st.log)
		}
	}
}
