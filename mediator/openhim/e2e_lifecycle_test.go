package openhim_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
	"github.com/prometheus/client_golang/prometheus"
)

// e2eLcSchemes are the API auth schemes core of cfg's version offers to
// its root user: token only up to 5.0 (CI's 4.0.5), basic from 7.1, a
// session from 7.2 over https (core refuses its secure cookie over http).
func e2eLcSchemes(cfg openhim.Config) []openhim.AuthScheme {
	schemes := []openhim.AuthScheme{openhim.AuthAuto}
	if cfg.CoreVersion < 8 {
		schemes = append(schemes, openhim.AuthToken)
	}
	if cfg.CoreVersion >= 7 {
		schemes = append(schemes, openhim.AuthBasic)
	}
	if cfg.CoreVersion >= 8 && strings.HasPrefix(cfg.URL, "https://") {
		schemes = append(schemes, openhim.AuthSession)
	}
	return schemes
}

func e2eLcClient(t *testing.T, cfg openhim.Config) *openhim.Client {
	t.Helper()
	c, err := openhim.NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var e2eLcNonAlnum = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// e2eLcURN is unique per test and run (the database is shared by the run).
func e2eLcURN(t *testing.T) string {
	return fmt.Sprintf("urn:mediator:e2e-%s-%d", strings.ToLower(e2eLcNonAlnum.ReplaceAllString(t.Name(), "-")), time.Now().UnixNano())
}

type e2eLcUpstream struct {
	URL    string  `openhim:"url"`
	Weight float64 `openhim:"weight"`
}

type e2eLcConfig struct {
	UpstreamURL string            `openhim:"upstreamUrl" display:"Upstream URL"`
	APIKey      settings.Secret   `openhim:"apiKey,password"`
	Retries     int               `openhim:"retries"`
	Mode        string            `openhim:"mode" values:"fast,safe"`
	Enabled     bool              `openhim:"enabled"`
	Headers     map[string]string `openhim:"headers"`
	Targets     []e2eLcUpstream   `openhim:"targets"`
}

func e2eLcDefinition(t *testing.T, urn string) openhim.Definition {
	t.Helper()
	defaults := e2eLcConfig{UpstreamURL: "http://127.0.0.1:9/default", APIKey: "default-key", Retries: 1, Mode: "fast", Headers: map[string]string{"X-A": "1"},
		Targets: []e2eLcUpstream{{URL: "http://a", Weight: 1}}}
	defs, err := openhim.ConfigDefsOf(defaults)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := openhim.NewTypedConfig(defaults, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.DefaultConfig()
	return openhim.Definition{URN: urn, Version: "1.0.0", Name: "e2e " + t.Name(), Description: "lifecycle e2e",
		Endpoints:  []openhim.Route{{Name: "e2e endpoint", Host: "127.0.0.1", Port: 9, Path: "/", Primary: true}},
		ConfigDefs: defs, Config: cfg}
}

// e2eLcWait polls cond every 20 ms until it holds or d elapses.
func e2eLcWait(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func e2eLcStart(t *testing.T, cfg openhim.LifecycleConfig) (*openhim.Lifecycle, func()) {
	t.Helper()
	l, err := openhim.NewLifecycle(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not stop after cancel")
		}
	}
	t.Cleanup(stop)
	return l, stop
}

func TestE2ELifecycleTwoReplicasSeeConfigChange(t *testing.T) {
	cfg := openhimtest.RealCore(t)
	admin := e2eLcClient(t, cfg)
	urn := e2eLcURN(t)
	def := e2eLcDefinition(t, urn)
	const interval = 500 * time.Millisecond

	type replica struct {
		l     *openhim.Lifecycle
		typed *openhim.TypedConfig[e2eLcConfig]
	}
	var replicas []replica
	for range 2 {
		typed, err := openhim.NewTypedConfig(e2eLcConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := e2eLcStart(t, openhim.LifecycleConfig{Client: e2eLcClient(t, cfg), Definition: def,
			HeartbeatInterval: interval, OnConfig: typed.OnConfig})
		replicas = append(replicas, replica{l, typed})
	}
	for i, r := range replicas {
		if !e2eLcWait(30*time.Second, func() bool { return r.l.Registered() && r.l.ConfigVersion() >= 1 }) {
			t.Fatalf("replica %d: not registered with a first config (registered=%v)", i, r.l.Registered())
		}
		if got := r.l.Config(); !reflect.DeepEqual(got, def.Config) {
			t.Fatalf("replica %d first config = %v, want the defaults %v", i, got, def.Config)
		}
	}
	stored, err := admin.GetMediator(context.Background(), urn)
	if err != nil {
		t.Fatal(err)
	}
	if stored.LastHeartbeat == nil || stored.Uptime == nil || *stored.Uptime <= 0 {
		t.Errorf("core did not store heartbeats: lastHeartbeat %v uptime %v", stored.LastHeartbeat, stored.Uptime)
	}
	// GET masks passwords; heartbeats (config:true) carry the real value.
	if stored.Config["apiKey"] != "**********" {
		t.Errorf("GET /mediators/:urn apiKey = %v, want core's mask", stored.Config["apiKey"])
	}

	next := map[string]any{"upstreamUrl": "http://127.0.0.1:9/changed", "apiKey": "rotated-key", "retries": 4.0, "mode": "safe", "enabled": true,
		"headers": map[string]any{"X-B": "2"}, "targets": []any{map[string]any{"url": "http://b", "weight": 2.0}}}
	start := time.Now()
	if err := admin.SetConfig(context.Background(), urn, next); err != nil {
		t.Fatal(err)
	}
	// Core pushes a change to one heartbeat only; with config:true on every
	// heartbeat both replicas must see it within two intervals (plus the
	// heartbeat round trips of a busy test machine).
	limit := 2*interval + interval/5 + 3*time.Second
	for i, r := range replicas {
		if !e2eLcWait(limit, func() bool { return reflect.DeepEqual(r.l.Config(), next) }) {
			t.Fatalf("replica %d did not see the change within %v: %v", i, limit, r.l.Config())
		}
		t.Logf("replica %d saw the change after %v", i, time.Since(start).Round(time.Millisecond))
		got := r.typed.Load()
		if got.UpstreamURL != "http://127.0.0.1:9/changed" || got.APIKey != "rotated-key" || got.Retries != 4 || got.Mode != "safe" || !got.Enabled ||
			got.Headers["X-B"] != "2" || len(got.Targets) != 1 || got.Targets[0].Weight != 2 {
			t.Errorf("replica %d typed config = %+v", i, got)
		}
	}

	// a config core rejects is a 400 with core's message
	err = admin.SetConfig(context.Background(), urn, map[string]any{"retries": "four"})
	if !errors.Is(err, openhim.ErrBadRequest) {
		t.Errorf("SetConfig(invalid) = %v, want ErrBadRequest", err)
	}
}

func TestE2ELifecycleReregistersAfterDelete(t *testing.T) {
	cfg := openhimtest.RealCore(t)
	admin := e2eLcClient(t, cfg)
	urn := e2eLcURN(t)
	reg := prometheus.NewRegistry()
	l, _ := e2eLcStart(t, openhim.LifecycleConfig{Client: e2eLcClient(t, cfg), Definition: e2eLcDefinition(t, urn),
		HeartbeatInterval: 300 * time.Millisecond, RegisterRetryMin: 200 * time.Millisecond, Registerer: reg})
	if !e2eLcWait(30*time.Second, l.Registered) {
		t.Fatal("not registered")
	}
	if err := admin.Deregister(context.Background(), urn); err != nil {
		t.Fatal(err)
	}
	// Found is no failure: the heartbeat (every 300 ms) may have seen the
	// mediator gone and registered it again already, on a busy machine
	// before this GET. The count of registrations below tells that core
	// deleted it.
	if _, err := admin.GetMediator(context.Background(), urn); err != nil && !errors.Is(err, openhim.ErrNotFound) {
		t.Fatalf("GET after DELETE = %v, want the mediator or ErrNotFound", err)
	}
	ok := e2eLcWait(30*time.Second, func() bool {
		m, err := admin.GetMediator(context.Background(), urn)
		return err == nil && m.URN == urn && l.Registered()
	})
	if !ok {
		t.Fatal("mediator not registered again after being deleted in core")
	}
	if got := e2eLcCounter(t, reg, "openhim_mediator_registration_attempts_total", "success"); got != 2 {
		t.Errorf("successful registrations = %v, want 2", got)
	}
}

// e2eLcProxy is a TCP proxy to the real core that the test can take down
// and bring back on the same address: the mediator sees core unreachable
// (connection refused) and then reachable again, at network level.
type e2eLcProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func (p *e2eLcProxy) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *e2eLcProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func TestE2ELifecycleCoreDownAtStartAndRestart(t *testing.T) {
	cfg := openhimtest.RealCore(t)
	admin := e2eLcClient(t, cfg)
	target := strings.TrimPrefix(strings.TrimPrefix(cfg.URL, "https://"), "http://")
	target = strings.SplitN(target, "/", 2)[0]
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := &e2eLcProxy{addr: free.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	free.Close() // nothing listens: "core down"
	t.Cleanup(proxy.stop)

	pcfg := cfg
	pcfg.URL = strings.Replace(cfg.URL, target, proxy.addr, 1)
	pcfg.MaxRetries = -1
	urn := e2eLcURN(t)
	reg := prometheus.NewRegistry()
	l, _ := e2eLcStart(t, openhim.LifecycleConfig{Client: e2eLcClient(t, pcfg), Definition: e2eLcDefinition(t, urn),
		HeartbeatInterval: 300 * time.Millisecond, RegisterRetryMin: 100 * time.Millisecond, RegisterRetryMax: 400 * time.Millisecond,
		Registerer: reg})
	if !e2eLcWait(5*time.Second, func() bool { return e2eLcCounter(t, reg, "openhim_mediator_registration_attempts_total", "error") >= 3 }) {
		t.Fatal("no failed registration attempts while core is down")
	}
	if l.Registered() {
		t.Fatal("registered while core is down")
	}

	proxy.start(t) // core comes up
	if !e2eLcWait(30*time.Second, l.Registered) {
		t.Fatal("not registered after core came up")
	}
	if _, err := admin.GetMediator(context.Background(), urn); err != nil {
		t.Fatalf("core does not know the mediator: %v", err)
	}

	proxy.stop() // core restarts: down for a while
	failures := e2eLcCounter(t, reg, "openhim_mediator_heartbeat_failures_total", "")
	if !e2eLcWait(10*time.Second, func() bool {
		return e2eLcCounter(t, reg, "openhim_mediator_heartbeat_failures_total", "") >= failures+2
	}) {
		t.Fatal("heartbeats did not fail while core was down")
	}
	downSince := time.Now()
	proxy.start(t)
	ok := e2eLcWait(30*time.Second, func() bool {
		m, err := admin.GetMediator(context.Background(), urn)
		return err == nil && m.LastHeartbeat != nil && m.LastHeartbeat.After(downSince)
	})
	if !ok {
		t.Fatal("heartbeats did not resume after core came back")
	}
	if !l.Registered() {
		t.Error("a core outage must not unregister the mediator")
	}
}

func TestE2EInstallChannelsIdempotent(t *testing.T) {
	cfg := openhimtest.RealCore(t)
	admin := e2eLcClient(t, cfg)
	urn := e2eLcURN(t)
	def := e2eLcDefinition(t, urn)
	chName := "e2e channel " + urn
	def.DefaultChannelConfig = []openhim.Channel{{Name: chName, URLPattern: "^/e2e-" + strconv.FormatInt(time.Now().UnixNano(), 10) + "$",
		Methods: []string{"GET"}, Allow: []string{"e2e"}, Type: "http",
		Routes: []openhim.Route{{Name: "to mediator", Host: "127.0.0.1", Port: 9, Primary: true, Type: "http"}}}}
	l, _ := e2eLcStart(t, openhim.LifecycleConfig{Client: e2eLcClient(t, cfg), Definition: def, InstallChannels: true,
		HeartbeatInterval: 300 * time.Millisecond})
	count := func() int {
		chs, err := admin.ListChannels(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ch := range chs {
			if ch.Name == chName {
				n++
			}
		}
		return n
	}
	if !e2eLcWait(30*time.Second, func() bool { return l.Registered() && count() == 1 }) {
		t.Fatalf("channel not installed (registered=%v, count=%d)", l.Registered(), count())
	}
	// a second replica (or a restart) must not fail or duplicate
	installed, err := admin.InstallMissingChannels(context.Background(), &def)
	if err != nil || len(installed) != 0 {
		t.Fatalf("InstallMissingChannels = %v, %v; want nothing to do", installed, err)
	}
	if n := count(); n != 1 {
		t.Fatalf("channel count = %d, want 1", n)
	}
}

func TestE2ERegisterDriftAndRejection(t *testing.T) {
	cfg := openhimtest.RealCore(t)
	c := e2eLcClient(t, cfg)
	ctx := context.Background()
	urn := e2eLcURN(t)
	def := e2eLcDefinition(t, urn)
	if err := c.Register(ctx, &def); err != nil {
		t.Fatal(err)
	}
	if d, err := c.CheckRegistration(ctx, &def); err != nil || d != nil {
		t.Fatalf("CheckRegistration after first registration = %v, %v; want no drift", d, err)
	}
	changed := def
	changed.Description = "changed without a version bump"
	if err := c.Register(ctx, &changed); err != nil { // core answers 201 but ignores it
		t.Fatal(err)
	}
	d, err := c.CheckRegistration(ctx, &changed)
	if err != nil || d == nil || !reflect.DeepEqual(d.Fields, []string{"description"}) || d.StoredVersion != "1.0.0" {
		t.Fatalf("drift = %+v, %v; want description differing at 1.0.0", d, err)
	}
	changed.Version = "1.0.1"
	if err := c.Register(ctx, &changed); err != nil {
		t.Fatal(err)
	}
	if d, err := c.CheckRegistration(ctx, &changed); err != nil || d != nil {
		t.Fatalf("after a version bump drift = %+v, %v; want none", d, err)
	}

	// Valid for core 8 (host/port optional) but not for core ≤7: core's 400
	// and its message come back.
	if cfg.CoreVersion <= 7 {
		c8cfg := cfg
		c8cfg.CoreVersion = 8
		c8 := e2eLcClient(t, c8cfg)
		bad := e2eLcDefinition(t, e2eLcURN(t))
		bad.Endpoints = []openhim.Route{{Name: "no host"}}
		err := c8.Register(ctx, &bad)
		var ae *openhim.APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || !strings.Contains(ae.Message, "host") {
			t.Fatalf("Register(route without host) = %v; want 400 naming host", err)
		}
		t.Logf("core's 400: %s", ae.Message)
	}
}

func TestE2EAuth(t *testing.T) {
	cfg := openhimtest.RealCore(t)
	ctx := context.Background()
	for _, scheme := range e2eLcSchemes(cfg) {
		c := cfg
		c.Auth = scheme
		if _, err := e2eLcClient(t, c).ListChannels(ctx); err != nil {
			t.Errorf("%s: %v", scheme, err)
		}
	}
	bad := cfg
	bad.Password = "wrong-password"
	_, err := e2eLcClient(t, bad).ListChannels(ctx)
	if !errors.Is(err, openhim.ErrUnauthorized) || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("wrong password: %v", err)
	}
	if cfg.CoreVersion <= 5 { // core 4.x has no basic auth on the API
		basic := cfg
		basic.Auth = openhim.AuthBasic
		if _, err := e2eLcClient(t, basic).ListChannels(ctx); !errors.Is(err, openhim.ErrUnauthorized) {
			t.Errorf("basic auth on core %d = %v, want ErrUnauthorized", cfg.CoreVersion, err)
		}
	}
}

// TestE2EUpdateTransaction routes a request through the real router to an
// asynchronous mediator, which answers 202 and later completes the
// transaction with PUT /transactions/:id.
func TestE2EUpdateTransaction(t *testing.T) {
	cfg := openhimtest.RealCore(t)
	router := os.Getenv("OPENHIM_ROUTER_URL")
	if router == "" {
		t.Skip("OPENHIM_ROUTER_URL not set")
	}
	c := e2eLcClient(t, cfg)
	ctx := context.Background()
	txIDs := make(chan string, 4)
	med := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		txIDs <- r.Header.Get("X-OpenHIM-TransactionID")
		w.Header().Set("Content-Type", "application/json+openhim")
		w.WriteHeader(http.StatusAccepted)
		now := time.Now().UTC().Format(time.RFC3339Nano)
		fmt.Fprintf(w, `{"x-mediator-urn":"urn:mediator:e2e-async","status":"Processing",`+
			`"response":{"status":202,"headers":{},"body":"accepted","timestamp":%q}}`, now)
	}))
	defer med.Close()
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(med.URL, "http://"))
	port, _ := strconv.Atoi(portStr)
	path := "/e2e-async-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	channel := map[string]any{"name": "e2e async " + path, "urlPattern": "^" + path + "$", "authType": "public",
		"methods": []string{"POST"}, "type": "http",
		"routes": []map[string]any{{"name": "async mediator", "host": "127.0.0.1", "port": port, "primary": true, "type": "http"}}}
	if err := c.Do(ctx, http.MethodPost, "/channels", channel, nil); err != nil {
		t.Fatal(err)
	}
	var txID string
	ok := e2eLcWait(20*time.Second, func() bool { // core's channel cache refreshes every second
		resp, err := http.Post(router+path, "application/json", strings.NewReader(`{"hello":"async"}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return false
		}
		select {
		case txID = <-txIDs:
		case <-time.After(5 * time.Second):
		}
		return txID != ""
	})
	if !ok {
		t.Fatal("no transaction routed to the async mediator")
	}
	now := time.Now().UTC()
	update := map[string]any{"status": "Successful", "response": map[string]any{"status": 200, "headers": map[string]any{},
		"body": "done later", "timestamp": now}}
	if err := c.UpdateTransaction(ctx, txID, update); err != nil {
		t.Fatal(err)
	}
	var tx struct {
		Status   string `json:"status"`
		Response struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		} `json:"response"`
	}
	if err := c.Do(ctx, http.MethodGet, "/transactions/"+txID, nil, &tx); err != nil {
		t.Fatal(err)
	}
	if tx.Status != "Successful" || tx.Response.Status != 200 || tx.Response.Body != "done later" {
		t.Fatalf("transaction after update = %+v", tx)
	}
	if err := c.UpdateTransaction(ctx, "", update); !errors.Is(err, openhim.ErrInvalid) {
		t.Errorf("empty id: %v", err)
	}
}

func e2eLcCounter(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
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
			if match {
				if m.Counter != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
