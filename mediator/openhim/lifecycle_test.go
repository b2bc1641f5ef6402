package openhim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lcMiniCore is a minimal in-process core for timing tests inside a
// synctest bubble (no network). The openhimtest fake is used for
// behaviour tests (register_test.go).
type lcMiniCore struct {
	mu         sync.Mutex
	regTimes   []time.Time
	regStatus  func(n int) int // status of the n-th registration (0-based); nil = 201
	keepFirst  bool            // store only the first registration (core's same-version no-op)
	stored     map[string]json.RawMessage
	hbs        []lcMiniHeartbeat
	hbAnswer   func(n int) (int, string) // nil = 200, ""
	installs   [][]string
	channelSet []string
}

type lcMiniHeartbeat struct {
	at     time.Time
	uptime float64
	config bool
}

func newLcMiniCore() *lcMiniCore { return &lcMiniCore{stored: map[string]json.RawMessage{}} }

func (m *lcMiniCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	seg := strings.Split(p, "/")
	urn := ""
	if len(seg) > 1 {
		urn, _ = url.PathUnescape(seg[1])
	}
	switch {
	case r.Method == http.MethodPost && p == "mediators":
		n := len(m.regTimes)
		m.regTimes = append(m.regTimes, time.Now())
		st := http.StatusCreated
		if m.regStatus != nil {
			st = m.regStatus(n)
		}
		if st == http.StatusCreated {
			var d struct{ URN string }
			_ = json.Unmarshal(body, &d)
			if _, ok := m.stored[d.URN]; !ok || !m.keepFirst {
				m.stored[d.URN] = body
			}
		}
		w.WriteHeader(st)
		if st == http.StatusBadRequest {
			_, _ = io.WriteString(w, "Could not add Mediator via the API: ValidationError: endpoints.0.host: Path `host` is required.")
		}
	case r.Method == http.MethodGet && len(seg) == 2 && seg[0] == "mediators":
		doc, ok := m.stored[urn]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write(doc)
	case r.Method == http.MethodPost && len(seg) == 3 && seg[2] == "heartbeat":
		if _, ok := m.stored[urn]; !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var hb struct {
			Uptime *float64
			Config bool
		}
		_ = json.Unmarshal(body, &hb)
		if hb.Uptime == nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n := len(m.hbs)
		m.hbs = append(m.hbs, lcMiniHeartbeat{at: time.Now(), uptime: *hb.Uptime, config: hb.Config})
		st, b := http.StatusOK, ""
		if m.hbAnswer != nil {
			st, b = m.hbAnswer(n)
		}
		w.WriteHeader(st)
		_, _ = io.WriteString(w, b)
	case r.Method == http.MethodDelete && len(seg) == 2 && seg[0] == "mediators":
		delete(m.stored, urn) // core answers 200 even for an unknown URN
		_, _ = io.WriteString(w, "Mediator with urn "+urn+" has been successfully removed")
	case r.Method == http.MethodGet && p == "channels":
		var out []map[string]string
		for _, n := range m.channelSet {
			out = append(out, map[string]string{"name": n, "urlPattern": "x"})
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodPost && len(seg) == 3 && seg[2] == "channels":
		var names []string
		_ = json.Unmarshal(body, &names)
		m.installs = append(m.installs, names)
		m.channelSet = append(m.channelSet, names...)
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (m *lcMiniCore) forget(urn string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.stored, urn)
}

func (m *lcMiniCore) heartbeats() []lcMiniHeartbeat {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]lcMiniHeartbeat(nil), m.hbs...)
}

func (m *lcMiniCore) registrations() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Time(nil), m.regTimes...)
}

func lcDefinition(urn string) Definition {
	return Definition{URN: urn, Version: "1.0.0", Name: "Test Mediator",
		Endpoints: []Route{{Name: "r", Host: "127.0.0.1", Port: 9000, Primary: true}},
		DefaultChannelConfig: []Channel{{Name: "ch-a", URLPattern: "^/a$", Methods: []string{"POST"}, Routes: []Route{{Name: "r", Host: "127.0.0.1", Port: 9000, Primary: true}}},
			{Name: "ch-b", URLPattern: "^/b$", Methods: []string{"GET"}}},
		ConfigDefs: []ConfigDef{{Param: "a", Type: ConfigString}},
	}
}

func newLcLifecycle(t *testing.T, core *lcMiniCore, cfg LifecycleConfig) *Lifecycle {
	t.Helper()
	c, err := NewClient(Config{URL: "https://core.test", Username: "u", Password: "p", Auth: AuthBasic,
		RetryWaitMin: 100 * time.Millisecond, HTTPClient: &http.Client{Transport: lcHandlerTransport(core)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client = c
	if cfg.Definition.URN == "" {
		cfg.Definition = lcDefinition("urn:mediator:test")
	}
	l, err := NewLifecycle(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runFor runs l for d of fake time, then cancels it and returns Run's error.
func lcRunFor(t *testing.T, l *Lifecycle, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	time.Sleep(d)
	cancel()
	synctest.Wait()
	select {
	case err := <-done:
		return err
	default:
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

func TestLifecycleHeartbeatSchedule(t *testing.T) {
	tests := []struct {
		name         string
		interval     time.Duration
		onChangeOnly bool
		runFor       time.Duration
		wantMin      int
		wantMax      int
	}{
		{name: "default 10s, always config:true", runFor: 95 * time.Second, wantMin: 9, wantMax: 11},
		{name: "500ms", interval: 500 * time.Millisecond, runFor: 10 * time.Second, wantMin: 19, wantMax: 22},
		{name: "config only on change", onChangeOnly: true, runFor: 35 * time.Second, wantMin: 4, wantMax: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				core := newLcMiniCore()
				l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: tt.interval, ConfigOnChangeOnly: tt.onChangeOnly})
				start := time.Now()
				if err := lcRunFor(t, l, tt.runFor); err != nil {
					t.Fatalf("Run = %v", err)
				}
				hbs := core.heartbeats()
				if len(hbs) < tt.wantMin || len(hbs) > tt.wantMax {
					t.Fatalf("heartbeats = %d, want %d..%d", len(hbs), tt.wantMin, tt.wantMax)
				}
				if hbs[0].at != start {
					t.Errorf("first heartbeat at +%v, want immediately after registering", hbs[0].at.Sub(start))
				}
				interval := tt.interval
				if interval == 0 {
					interval = DefaultHeartbeatInterval
				}
				for i, hb := range hbs {
					wantConfig := i == 0 || !tt.onChangeOnly
					if hb.config != wantConfig {
						t.Errorf("heartbeat %d config = %v, want %v", i, hb.config, wantConfig)
					}
					if hb.uptime < 0 {
						t.Errorf("heartbeat %d uptime = %v", i, hb.uptime)
					}
					if i == 0 {
						continue
					}
					gap := hb.at.Sub(hbs[i-1].at)
					if gap < interval*9/10 || gap > interval*11/10 {
						t.Errorf("gap before heartbeat %d = %v, want %v ±10%%", i, gap, interval)
					}
					if hb.uptime <= hbs[i-1].uptime {
						t.Errorf("uptime not increasing: %v then %v", hbs[i-1].uptime, hb.uptime)
					}
				}
			})
		})
	}
}

func TestLifecycleHeartbeatBodiesAndDiff(t *testing.T) {
	type call struct{ old, new map[string]any }
	tests := []struct {
		name   string
		bodies []string // answers in order; then ""
		want   []call
	}{
		{name: "object, empty, OK, same, {}, changed", bodies: []string{`{"a":"1"}`, ``, `OK`, `{"a":"1"}`, `{}`, `{"a":"2"}`},
			want: []call{{nil, map[string]any{"a": "1"}}, {map[string]any{"a": "1"}, map[string]any{}},
				{map[string]any{}, map[string]any{"a": "2"}}}},
		{name: "OK first means no config", bodies: []string{`OK`, `OK`, `{"a":"x"}`},
			want: []call{{nil, map[string]any{}}, {map[string]any{}, map[string]any{"a": "x"}}}},
		{name: "empty first means no config", bodies: []string{``, `{}`},
			want: []call{{nil, map[string]any{}}}},
		{name: "garbage is a failed heartbeat, not a config", bodies: []string{`{"a":"1"}`, `<html>`, `{"a":"1"}`},
			want: []call{{nil, map[string]any{"a": "1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				core := newLcMiniCore()
				core.hbAnswer = func(n int) (int, string) {
					if n < len(tt.bodies) {
						return 200, tt.bodies[n]
					}
					return 200, ""
				}
				var calls []call
				reg := prometheus.NewRegistry()
				l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: time.Second, Registerer: reg,
					OnConfig: func(old, new map[string]any) { calls = append(calls, call{old, new}) }})
				if err := lcRunFor(t, l, time.Duration(len(tt.bodies)+1)*time.Second); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(calls, tt.want) {
					t.Fatalf("OnConfig calls:\n got %v\nwant %v", calls, tt.want)
				}
				last := tt.want[len(tt.want)-1].new
				if got := l.Config(); !reflect.DeepEqual(got, last) {
					t.Errorf("Config() = %v, want %v", got, last)
				}
				if got := l.ConfigVersion(); got != int64(len(tt.want)) {
					t.Errorf("ConfigVersion() = %d, want %d", got, len(tt.want))
				}
				if got := lcMetric(t, reg, "openhim_mediator_config_version", ""); got != float64(len(tt.want)) {
					t.Errorf("config_version metric = %v, want %d", got, len(tt.want))
				}
			})
		})
	}
}

func TestLifecycleConfigIsolation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		core.hbAnswer = func(int) (int, string) { return 200, `{"a":"1","m":{"k":"v"}}` }
		l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: time.Second,
			Definition: Definition{URN: "urn:x", Version: "1.0.0", Name: "x", Endpoints: []Route{{Name: "r"}},
				ConfigDefs: []ConfigDef{{Param: "a", Type: ConfigString}, {Param: "m", Type: ConfigMap}}},
			OnConfig: func(_, new map[string]any) { new["a"] = "mutated by callee" }})
		if err := lcRunFor(t, l, 3*time.Second); err != nil {
			t.Fatal(err)
		}
		got := l.Config()
		if got["a"] != "1" {
			t.Fatalf("callee mutation leaked into the Lifecycle: %v", got)
		}
		got["m"].(map[string]any)["k"] = "changed"
		if l.Config()["m"].(map[string]any)["k"] != "v" {
			t.Fatal("Config() does not return a deep copy")
		}
		if l.ConfigVersion() != 1 {
			t.Errorf("ConfigVersion = %d, want 1 (same config every beat)", l.ConfigVersion())
		}
	})
}

func TestLifecycleRegistrationRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		core.regStatus = func(n int) int {
			if n < 4 {
				return http.StatusServiceUnavailable
			}
			return http.StatusCreated
		}
		reg := prometheus.NewRegistry()
		l := newLcLifecycle(t, core, LifecycleConfig{Registerer: reg, RegisterRetryMin: time.Second, RegisterRetryMax: 8 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		synctest.Wait()
		if l.Registered() {
			t.Fatal("registered while core fails")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if !l.Registered() {
			t.Fatal("not registered after core recovered")
		}
		// each failed Register call makes 1+3 client attempts (client retries 5xx)
		regs := core.registrations()
		if len(regs) != 5 {
			t.Fatalf("registration requests = %d, want 5", len(regs))
		}
		if got := lcMetric(t, reg, "openhim_mediator_registration_attempts_total", "success"); got != 1 {
			t.Errorf("attempts{success} = %v", got)
		}
		if got := lcMetric(t, reg, "openhim_mediator_registration_attempts_total", "error"); got != 1 {
			t.Errorf("attempts{error} = %v, want 1 (one Register call whose client retries were exhausted)", got)
		}
		if got := lcMetric(t, reg, "openhim_mediator_registered", ""); got != 1 {
			t.Errorf("registered gauge = %v", got)
		}
		cancel()
		synctest.Wait()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
	})
}

func TestLifecycleNetworkDownBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var attempts []time.Time
		down := true
		core := newLcMiniCore()
		tr := lcRoundTrip(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			isDown := down
			if r.URL.Path == "/mediators" && isDown {
				attempts = append(attempts, time.Now())
			}
			mu.Unlock()
			if isDown {
				return nil, errors.New("dial tcp: connection refused")
			}
			return lcHandlerTransport(core).RoundTrip(r)
		})
		c, err := NewClient(Config{URL: "https://core.test", Username: "u", Auth: AuthBasic, MaxRetries: -1,
			HTTPClient: &http.Client{Transport: tr}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewLifecycle(LifecycleConfig{Client: c, Definition: lcDefinition("urn:down"), RegisterRetryMin: time.Second,
			RegisterRetryMax: 16 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		mu.Lock()
		a := append([]time.Time(nil), attempts...)
		down = false
		mu.Unlock()
		// waits: [0.5,1] [1,2] [2,4] [4,8] [8,16] then [8,16]...
		for i := 1; i < len(a); i++ {
			cp := min(time.Second<<(i-1), 16*time.Second)
			if gap := a[i].Sub(a[i-1]); gap < cp/2 || gap > cp {
				t.Errorf("wait before attempt %d = %v, want in [%v, %v]", i, gap, cp/2, cp)
			}
		}
		if len(a) < 8 || len(a) > 20 {
			t.Errorf("attempts in 2 min = %d", len(a))
		}
		time.Sleep(17 * time.Second)
		synctest.Wait()
		if !l.Registered() || len(core.heartbeats()) == 0 {
			t.Fatalf("not registered/heartbeating after core came up (registered %v)", l.Registered())
		}
		cancel()
		synctest.Wait()
		<-done
	})
}

func TestLifecycleCredentialErrorsNotHammered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		core.regStatus = func(int) int { return http.StatusUnauthorized }
		reg := prometheus.NewRegistry()
		l := newLcLifecycle(t, core, LifecycleConfig{Registerer: reg, RegisterRetryMin: time.Second, RegisterRetryMax: time.Minute})
		if err := lcRunFor(t, l, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		regs := core.registrations()
		if len(regs) < 10 || len(regs) > 21 {
			t.Fatalf("attempts in 10 min = %d, want 10..21 (one per 30-60 s)", len(regs))
		}
		for i := 1; i < len(regs); i++ {
			if gap := regs[i].Sub(regs[i-1]); gap < 30*time.Second {
				t.Errorf("retry after 401 within %v", gap)
			}
		}
		if got := lcMetric(t, reg, "openhim_mediator_registration_attempts_total", "unauthorized"); got != float64(len(regs)) {
			t.Errorf("attempts{unauthorized} = %v, want %d", got, len(regs))
		}
	})
}

func TestLifecycleRejectedIsFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		core.regStatus = func(int) int { return http.StatusBadRequest }
		l := newLcLifecycle(t, core, LifecycleConfig{})
		err := l.Run(t.Context())
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "Path `host` is required") {
			t.Fatalf("Run = %v, want ErrBadRequest with core's message", err)
		}
		if len(core.registrations()) != 1 {
			t.Errorf("a 400 was retried")
		}
		// Problem (what /readyz answers) gives the reason, not "not registered yet".
		if p := l.Problem(); !strings.Contains(p, "rejected") || !strings.Contains(p, "Path `host` is required") {
			t.Errorf("Problem() = %q, want the rejection with core's message", p)
		}
		if err := l.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Errorf("second Run = %v", err)
		}
	})
}

func TestLifecycleReregistersOn404(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		core.hbAnswer = func(int) (int, string) { return 200, `{"a":"x"}` }
		reg := prometheus.NewRegistry()
		var calls int
		l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: time.Second, Registerer: reg, ConfigOnChangeOnly: true,
			OnConfig: func(_, _ map[string]any) { calls++ }})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		time.Sleep(2500 * time.Millisecond)
		core.forget("urn:mediator:test") // deleted in the console
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if regs := core.registrations(); len(regs) != 2 {
			t.Fatalf("registrations = %d, want 2", len(regs))
		}
		if !l.Registered() {
			t.Fatal("not registered again")
		}
		hbs := core.heartbeats()
		configTrue := 0
		for _, hb := range hbs {
			if hb.config {
				configTrue++
			}
		}
		if configTrue != 2 {
			t.Errorf("config:true heartbeats = %d, want 2 (first after each registration)", configTrue)
		}
		if calls != 1 {
			t.Errorf("OnConfig calls = %d, want 1 (config unchanged by re-registration)", calls)
		}
		if got := lcMetric(t, reg, "openhim_mediator_heartbeat_failures_total", ""); got != 1 {
			t.Errorf("heartbeat failures = %v, want 1 (the 404)", got)
		}
		cancel()
		synctest.Wait()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestLifecycleHeartbeatFailuresContinue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		core.hbAnswer = func(n int) (int, string) {
			if n%2 == 1 {
				return http.StatusInternalServerError, "boom"
			}
			return 200, ""
		}
		reg := prometheus.NewRegistry()
		l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: time.Second, Registerer: reg})
		if err := lcRunFor(t, l, 9500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		n := len(core.heartbeats())
		if n < 9 {
			t.Fatalf("heartbeats = %d; failures must not stop the loop", n)
		}
		if got := lcMetric(t, reg, "openhim_mediator_heartbeat_failures_total", ""); got != float64(n/2) {
			t.Errorf("failures = %v, want %d", got, n/2)
		}
		if got := lcHistCount(t, reg, "openhim_mediator_heartbeat_duration_seconds"); got != uint64(n) {
			t.Errorf("latency observations = %d, want %d", got, n)
		}
		if !l.Registered() {
			t.Error("5xx heartbeats must not unregister")
		}
	})
}

func TestLifecycleDriftAndChannels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		core.keepFirst = true
		core.channelSet = []string{"ch-b"} // exists already
		first := lcDefinition("urn:drift")
		first.Name = "Old Name"
		core.stored["urn:drift"], _ = json.Marshal(first)
		reg := prometheus.NewRegistry()
		l := newLcLifecycle(t, core, LifecycleConfig{Definition: lcDefinition("urn:drift"), InstallChannels: true, Registerer: reg})
		if err := lcRunFor(t, l, 25*time.Second); err != nil {
			t.Fatal(err)
		}
		d := l.Drift()
		if d == nil || d.StoredVersion != "1.0.0" || !reflect.DeepEqual(d.Fields, []string{"name"}) {
			t.Fatalf("Drift() = %+v, want name differing at 1.0.0", d)
		}
		if got := lcMetric(t, reg, "openhim_mediator_definition_drift", ""); got != 1 {
			t.Errorf("drift metric = %v", got)
		}
		if !reflect.DeepEqual(core.installs, [][]string{{"ch-a"}}) {
			t.Errorf("installs = %v, want only the missing ch-a, once", core.installs)
		}
	})
}

func TestLifecycleStandaloneAndValidation(t *testing.T) {
	c, err := NewClient(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewLifecycle(LifecycleConfig{Client: c, Definition: Definition{URN: "u"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid definition accepted: %v", err)
	}
	if _, err := NewLifecycle(LifecycleConfig{Definition: lcDefinition("u")}); err == nil {
		t.Fatal("nil client accepted")
	}
	synctest.Test(t, func(t *testing.T) {
		l, err := NewLifecycle(LifecycleConfig{Client: c, Definition: lcDefinition("u")})
		if err != nil {
			t.Fatal(err)
		}
		if err := lcRunFor(t, l, time.Hour); err != nil {
			t.Fatal(err)
		}
		if l.Registered() || l.Config() != nil {
			t.Error("standalone lifecycle registered")
		}
	})
}

func TestLifecycleMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	core := newLcMiniCore()
	a := newLcLifecycle(t, core, LifecycleConfig{Registerer: reg})
	b := newLcLifecycle(t, core, LifecycleConfig{Registerer: reg}) // a second replica in one process
	if a.metrics.registered != b.metrics.registered {
		t.Error("replicas of one URN must share collectors")
	}
	other := newLcLifecycle(t, core, LifecycleConfig{Registerer: reg, Definition: lcDefinition("urn:other")})
	if other.metrics.registered == a.metrics.registered {
		t.Error("different URNs must not share collectors")
	}
}

func lcMetric(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
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
			match := result == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == result {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{result=%q} not found", name, result)
	return 0
}

func lcHistCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("histogram %s not found", name)
	return 0
}

func TestLifecycleCopiesDefinition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		def := lcDefinition("urn:copy")
		def.Config = map[string]any{"a": "x"}
		c, err := NewClient(Config{URL: "https://core.test", Username: "u", Auth: AuthBasic,
			HTTPClient: &http.Client{Transport: lcHandlerTransport(core)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewLifecycle(LifecycleConfig{Client: c, Definition: def})
		if err != nil {
			t.Fatal(err)
		}
		def.Name = "mutated"
		def.Endpoints[0].Host = "mutated"
		def.Config["a"] = "mutated"
		if err := lcRunFor(t, l, time.Second); err != nil {
			t.Fatal(err)
		}
		var stored Definition
		if err := json.Unmarshal(core.stored["urn:copy"], &stored); err != nil {
			t.Fatal(err)
		}
		if stored.Name != "Test Mediator" || stored.Endpoints[0].Host != "127.0.0.1" || stored.Config["a"] != "x" {
			t.Fatalf("caller's later edits leaked into the registration: %+v", stored)
		}
	})
}

func BenchmarkAuthTokenHeaders(b *testing.B) {
	a := &authState{active: AuthToken, username: "root@openhim.org", passHash: lcRootPasswordHash}
	req, _ := http.NewRequest(http.MethodGet, "https://core/mediators", nil)
	b.ReportAllocs()
	for b.Loop() {
		a.apply(req.Header)
	}
}

func BenchmarkDecodeConfig(b *testing.B) {
	raw := map[string]any{"upstreamUrl": "http://x", "apiKey": "k", "mode": "safe", "retries": 5.0, "enabled": true,
		"headers": map[string]any{"A": "1", "B": "2"}, "targets": []any{map[string]any{"url": "u", "weight": 2.0}},
		"timeout": "30s", "codes": []any{200.0, 201.0}}
	defs, err := ConfigDefsOf(lcTestConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var c lcTestConfig
		if err := DecodeConfig(raw, defs, &c); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLifecycleDeregister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: -1})
		if err := lcRunFor(t, l, time.Second); err != nil {
			t.Fatal(err)
		}
		if !l.Registered() || len(core.heartbeats()) != 0 {
			t.Fatalf("registered %v, heartbeats %d (disabled)", l.Registered(), len(core.heartbeats()))
		}
		if err := l.Deregister(t.Context()); err != nil {
			t.Fatal(err)
		}
		if l.Registered() {
			t.Error("still registered after Deregister")
		}
		if d := l.Definition(); d.URN != "urn:mediator:test" {
			t.Errorf("Definition() = %+v", d)
		}
	})
}

// TestLifecycleReregisterBackoff checks that a core answering 404 to every
// heartbeat is not hammered with registrations: consecutive
// re-registrations without a successful heartbeat wait the retry backoff.
func TestLifecycleReregisterBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		// 404 to every heartbeat (bounded, so that a tight loop ends).
		core.hbAnswer = func(n int) (int, string) {
			if n < 1000 {
				return http.StatusNotFound, ""
			}
			return http.StatusOK, ""
		}
		l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: time.Second,
			RegisterRetryMin: time.Second, RegisterRetryMax: 8 * time.Second})
		if err := lcRunFor(t, l, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		regs := core.registrations()
		// Waits in [0.5,1], [1,2], [2,4], then [4,8] s: at most 8 in 20 s.
		if len(regs) < 4 || len(regs) > 8 {
			t.Fatalf("registrations in 20 s = %d, want 4-8", len(regs))
		}
		for i := 2; i < len(regs); i++ {
			if gap := regs[i].Sub(regs[i-1]); gap < time.Second {
				t.Errorf("gap before registration %d = %v, want >= 1s (backoff)", i, gap)
			}
		}
	})
}

// With ConfigOnChangeOnly, the first successful heartbeat after a failed
// one asks for the config: the failed one may have reached core, which
// pushes a change once, to the first heartbeat after it, and moves
// _lastHeartbeat whether or not the answer arrives (openhim-core-js
// src/api/mediators.js heartbeat).
func TestLifecycleConfigOnChangeOnlyAsksAgainAfterFailure(t *testing.T) {
	tests := []struct {
		name   string
		failed []int  // heartbeats (0-based) that fail
		want   []bool // config flag of heartbeats 0..len-1
	}{
		{name: "no failure", want: []bool{true, false, false, false, false}},
		{name: "one 502", failed: []int{1}, want: []bool{true, false, true, false, false}},
		{name: "two 502 in a row", failed: []int{1, 2}, want: []bool{true, false, true, true, false}},
		{name: "first heartbeat fails", failed: []int{0}, want: []bool{true, true, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				core := newLcMiniCore()
				core.hbAnswer = func(n int) (int, string) {
					if slices.Contains(tt.failed, n) {
						return http.StatusBadGateway, "bad gateway"
					}
					return 200, ""
				}
				l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: time.Second, ConfigOnChangeOnly: true})
				if err := lcRunFor(t, l, 4500*time.Millisecond); err != nil {
					t.Fatal(err)
				}
				hbs := core.heartbeats()
				if len(hbs) < len(tt.want) {
					t.Fatalf("heartbeats = %d, want at least %d", len(hbs), len(tt.want))
				}
				var got []bool
				for _, hb := range hbs[:len(tt.want)] {
					got = append(got, hb.config)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("config flags = %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// During an outage the first failed heartbeat and every 30th in a row are
// logged at WARN with the count, the others at DEBUG, and one INFO line
// says when heartbeats resume (docs/operations.md, Logs).
func TestLifecycleHeartbeatFailuresAreRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core := newLcMiniCore()
		core.hbAnswer = func(n int) (int, string) {
			if n < 61 {
				return http.StatusServiceUnavailable, "down"
			}
			return http.StatusOK, ""
		}
		var logs bytes.Buffer
		l := newLcLifecycle(t, core, LifecycleConfig{HeartbeatInterval: time.Second,
			Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err := lcRunFor(t, l, 90*time.Second); err != nil {
			t.Fatalf("Run = %v", err)
		}
		var warns []float64
		debugs, resumed := 0, 0
		for line := range strings.Lines(logs.String()) {
			var e struct {
				Level, Msg          string
				ConsecutiveFailures float64 `json:"consecutive_failures"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			switch {
			case e.Msg == "heartbeat failed; retrying until openhim core answers" && e.Level == "WARN":
				warns = append(warns, e.ConsecutiveFailures)
			case e.Msg == "heartbeat failed" && e.Level == "DEBUG":
				debugs++
			case e.Msg == "heartbeats to openhim core resumed" && e.Level == "INFO":
				resumed++
			}
		}
		if want := []float64{1, 30, 60}; !slices.Equal(warns, want) {
			t.Errorf("WARN lines at failures %v, want %v", warns, want)
		}
		if debugs != 61-3 {
			t.Errorf("DEBUG lines = %d, want %d", debugs, 61-3)
		}
		if resumed != 1 {
			t.Errorf("resumed lines = %d, want 1", resumed)
		}
	})
}
