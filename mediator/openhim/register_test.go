package openhim_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// fakeLcClient returns a client for the fake core srv.
func fakeLcClient(t *testing.T, srv *openhimtest.Server, cfg openhim.Config) *openhim.Client {
	t.Helper()
	cfg.URL = srv.URL
	if cfg.Username == "" {
		cfg.Username, cfg.Password = openhimtest.RootUser, openhimtest.RootPassword
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = srv.Client()
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin, cfg.RetryWaitMax = 5*time.Millisecond, 20*time.Millisecond
	}
	c, err := openhim.NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fakeLcDefinition(urn string) openhim.Definition {
	return openhim.Definition{URN: urn, Version: "1.0.0", Name: "Fake Test Mediator",
		Endpoints: []openhim.Route{{Name: "endpoint", Host: "127.0.0.1", Port: 9, Primary: true}},
		DefaultChannelConfig: []openhim.Channel{{Name: "Fake Channel " + urn, URLPattern: "^/fake$", Methods: []string{"POST"},
			Routes: []openhim.Route{{Name: "endpoint", Host: "127.0.0.1", Port: 9, Primary: true}}}},
		ConfigDefs: []openhim.ConfigDef{{Param: "url", Type: openhim.ConfigString}, {Param: "apiKey", Type: openhim.ConfigPassword}},
		Config:     map[string]any{"url": "http://default", "apiKey": "default-key"},
	}
}

func TestFakeCoreAuthPerVersion(t *testing.T) {
	tests := []struct {
		name    string
		version openhimtest.Version
		auth    openhim.AuthScheme
		local   bool // user created on core 7.2+ (no token passport)
		tls     bool
		// insecureCookie is core's api.secureCookie: false.
		insecureCookie bool
		wantErr        error
	}{
		{name: "4.x auto falls back to token", version: openhimtest.Version4, auth: openhim.AuthAuto},
		{name: "4.x token", version: openhimtest.Version4, auth: openhim.AuthToken},
		{name: "4.x basic is refused", version: openhimtest.Version4, auth: openhim.AuthBasic, wantErr: openhim.ErrUnauthorized},
		{name: "7.x auto uses basic", version: openhimtest.Version7, auth: openhim.AuthAuto},
		{name: "7.x token", version: openhimtest.Version7, auth: openhim.AuthToken},
		{name: "8.x basic", version: openhimtest.Version8, auth: openhim.AuthBasic},
		{name: "8.x session", version: openhimtest.Version8, auth: openhim.AuthSession, tls: true},
		// Core marks its session cookie Secure (config/default.json
		// api.secureCookie: true, src/koaApi.js session({secure})) and over
		// http answers the login with a 500.
		{name: "8.x session over http", version: openhimtest.Version8, auth: openhim.AuthSession, wantErr: openhim.ErrConfig},
		{name: "8.x session over http, secureCookie off", version: openhimtest.Version8, auth: openhim.AuthSession, insecureCookie: true},
		{name: "8.x token", version: openhimtest.Version8, auth: openhim.AuthToken, tls: true},
		// Core 7.2+ logs a token user into a session too (passport 0.6
		// req.logIn), whose Secure cookie fails over http: a 500 after the
		// handler ran, a configuration error for the client.
		{name: "8.x token over http", version: openhimtest.Version8, auth: openhim.AuthToken, wantErr: openhim.ErrConfig},
		{name: "8.x console-created user: basic works", version: openhimtest.Version8, auth: openhim.AuthBasic, local: true},
		{name: "8.x console-created user: auto works", version: openhimtest.Version8, auth: openhim.AuthAuto, local: true},
		{name: "8.x console-created user: session works", version: openhimtest.Version8, auth: openhim.AuthSession, local: true, tls: true},
		// Core's 404 (no token passport) is a credential error, not ErrNotFound
		// (which the heartbeat loop reads as "mediator deleted").
		{name: "8.x console-created user: token cannot", version: openhimtest.Version8, auth: openhim.AuthToken, local: true,
			wantErr: openhim.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openhimtest.NewServer(openhimtest.Config{Version: tt.version, TLS: tt.tls, InsecureSessionCookie: tt.insecureCookie})
			defer srv.Close()
			cfg := openhim.Config{Auth: tt.auth, CoreVersion: int(tt.version)}
			if tt.local {
				srv.AddLocalUser("mediator@example.org", "local-pw", "admin")
				cfg.Username, cfg.Password = "mediator@example.org", "local-pw"
			}
			c := fakeLcClient(t, srv, cfg)
			def := fakeLcDefinition("urn:mediator:auth")
			for range 2 { // the second call uses cached state (salt, session)
				err := c.Register(context.Background(), &def)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("err = %v, want %v", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, ok := srv.Mediator("urn:mediator:auth"); !ok {
				t.Fatal("mediator not stored")
			}
		})
	}
}

func TestFakeCoreTLS(t *testing.T) {
	srv := openhimtest.NewTLSServer(openhimtest.Config{})
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "core.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     openhim.Config
		wantErr bool
	}{
		{name: "default verification rejects an unknown CA", cfg: openhim.Config{HTTPClient: &http.Client{}}, wantErr: true},
		{name: "CA bundle", cfg: openhim.Config{HTTPClient: &http.Client{}, CAFile: caFile}},
		{name: "the test kit's client", cfg: openhim.Config{}},
		{name: "insecure skip verify", cfg: openhim.Config{HTTPClient: &http.Client{}, InsecureSkipVerify: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.MaxRetries = -1
			c := fakeLcClient(t, srv, tt.cfg)
			_, err := c.ListChannels(context.Background())
			if tt.wantErr != (err != nil) {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestFakeCoreRegistration(t *testing.T) {
	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version7, BasePath: "/api"})
	defer srv.Close()
	c := fakeLcClient(t, srv, openhim.Config{CoreVersion: 7})
	ctx := context.Background()
	urn := "urn:mediator:with/slash and space"
	def := fakeLcDefinition(urn)
	if err := c.Register(ctx, &def); err != nil {
		t.Fatal(err)
	}
	m, err := c.GetMediator(ctx, urn)
	if err != nil {
		t.Fatalf("GET escaped URN: %v", err)
	}
	if m.URN != urn || m.Config["apiKey"] != "**********" || m.Config["url"] != "http://default" {
		t.Errorf("stored = %+v (passwords must be masked by GET)", m.Definition)
	}
	cfg, err := c.Heartbeat(ctx, urn, 1.5, true)
	if err != nil || cfg["apiKey"] != "default-key" {
		t.Errorf("heartbeat config = %v, %v; want the unmasked password", cfg, err)
	}

	// same version, other content: 201 but ignored
	changed := def
	changed.Name = "Renamed"
	if err := c.Register(ctx, &changed); err != nil {
		t.Fatal(err)
	}
	if d, err := c.CheckRegistration(ctx, &changed); err != nil || d == nil || !reflect.DeepEqual(d.Fields, []string{"name"}) {
		t.Errorf("drift = %+v, %v", d, err)
	}
	// lower version: ignored too, drift names the stored version
	older := def
	older.Version = "0.9.0"
	if err := c.Register(ctx, &older); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.CheckRegistration(ctx, &older); d == nil || d.StoredVersion != "1.0.0" {
		t.Errorf("drift for older version = %+v", d)
	}

	// channels: idempotent install
	for i := range 2 {
		installed, err := c.InstallMissingChannels(ctx, &def)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[int]int{0: 1, 1: 0}[i]; len(installed) != want {
			t.Errorf("round %d installed %v", i, installed)
		}
	}
	if n := len(srv.Channels()); n != 1 {
		t.Errorf("channels = %d, want 1", n)
	}

	// deregister
	if err := c.Deregister(ctx, urn); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Heartbeat(ctx, urn, 2, false); !errors.Is(err, openhim.ErrNotFound) {
		t.Errorf("heartbeat after delete = %v, want ErrNotFound", err)
	}
}

func TestFakeCoreRejectsPerVersion(t *testing.T) {
	// A definition valid for core 8 (no host/port) sent to a core 7: the
	// local check is bypassed by targeting 8, so core's 400 comes back.
	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version7})
	defer srv.Close()
	c := fakeLcClient(t, srv, openhim.Config{CoreVersion: 8})
	def := fakeLcDefinition("urn:mediator:v8-only")
	def.Endpoints = []openhim.Route{{Name: "no host"}}
	err := c.Register(context.Background(), &def)
	var ae *openhim.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, "host") {
		t.Fatalf("err = %v, want core's 400 naming host", err)
	}
	// targeting the right version catches it locally, before any request
	c7 := fakeLcClient(t, srv, openhim.Config{CoreVersion: 7})
	err = c7.Register(context.Background(), &def)
	var ve *openhim.ValidationError
	if !errors.As(err, &ve) || !strings.HasPrefix(ve.Field, "endpoints[0].") {
		t.Fatalf("err = %v, want a local ValidationError on endpoints[0]", err)
	}
}

func TestFakeCoreRetriesTransientFailures(t *testing.T) {
	srv := openhimtest.NewServer(openhimtest.Config{})
	defer srv.Close()
	c := fakeLcClient(t, srv, openhim.Config{Auth: openhim.AuthBasic})
	srv.FailNext(2, http.StatusServiceUnavailable)
	def := fakeLcDefinition("urn:mediator:retry")
	if err := c.Register(context.Background(), &def); err != nil {
		t.Fatalf("Register with 2 transient 503s = %v", err)
	}
	srv.FailNext(10, http.StatusInternalServerError)
	if err := c.Register(context.Background(), &def); !errors.Is(err, openhim.ErrServer) {
		t.Fatalf("Register with persistent 500 = %v, want ErrServer", err)
	}
}

// fakeLcRun starts l and stops it at cleanup.
func fakeLcRun(t *testing.T, l *openhim.Lifecycle) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestFakeCoreLifecycleDownAtStartAndRestart(t *testing.T) {
	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4})
	defer srv.Close()
	srv.Stop() // core is down when the mediator starts
	urn := "urn:mediator:down-at-start"
	l, err := openhim.NewLifecycle(openhim.LifecycleConfig{Client: fakeLcClient(t, srv, openhim.Config{CoreVersion: 4}),
		Definition: fakeLcDefinition(urn), HeartbeatInterval: 100 * time.Millisecond,
		RegisterRetryMin: 20 * time.Millisecond, RegisterRetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fakeLcRun(t, l)
	time.Sleep(300 * time.Millisecond)
	if l.Registered() {
		t.Fatal("registered while core is down")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if !e2eLcWait(10*time.Second, func() bool { return l.Registered() && len(srv.Heartbeats(urn)) > 0 }) {
		t.Fatal("not registered and heartbeating after core came up")
	}
	if err := srv.Restart(); err != nil { // core restarts mid-run (state kept)
		t.Fatal(err)
	}
	before := len(srv.Heartbeats(urn))
	if !e2eLcWait(10*time.Second, func() bool { return len(srv.Heartbeats(urn)) >= before+3 }) {
		t.Fatal("heartbeats did not resume after restart")
	}
	// heartbeats ask for config every time
	for i, hb := range srv.Heartbeats(urn) {
		if !hb.ConfigRequested || hb.Uptime <= 0 {
			t.Fatalf("heartbeat %d = %+v", i, hb)
		}
	}
}

// TestFakeCoreReplicasPushOnce shows why every heartbeat asks for config:
// core pushes a change to one heartbeat only, so with ConfigOnChangeOnly
// only one of two replicas sees it; by default both do.
func TestFakeCoreReplicasPushOnce(t *testing.T) {
	for _, onChangeOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "config:true always", true: "config on change only"}[onChangeOnly], func(t *testing.T) {
			srv := openhimtest.NewServer(openhimtest.Config{})
			defer srv.Close()
			urn := "urn:mediator:replicas"
			var ls []*openhim.Lifecycle
			for range 2 {
				l, err := openhim.NewLifecycle(openhim.LifecycleConfig{Client: fakeLcClient(t, srv, openhim.Config{}),
					Definition: fakeLcDefinition(urn), HeartbeatInterval: 50 * time.Millisecond, ConfigOnChangeOnly: onChangeOnly})
				if err != nil {
					t.Fatal(err)
				}
				fakeLcRun(t, l)
				ls = append(ls, l)
			}
			for _, l := range ls {
				if !e2eLcWait(10*time.Second, func() bool { return l.ConfigVersion() == 1 }) {
					t.Fatal("no first config")
				}
			}
			next := map[string]any{"url": "http://changed", "apiKey": "k2"}
			if err := srv.SetConfig(urn, next); err != nil {
				t.Fatal(err)
			}
			saw := func() int {
				n := 0
				for _, l := range ls {
					if reflect.DeepEqual(l.Config(), next) {
						n++
					}
				}
				return n
			}
			want := 2
			if onChangeOnly {
				want = 1 // core's push-once: the other replica never sees it
			}
			if !e2eLcWait(10*time.Second, func() bool { return saw() >= want }) {
				t.Fatalf("replicas that saw the change = %d, want %d", saw(), want)
			}
			hbs := len(srv.Heartbeats(urn))
			// give the other replica 10 more heartbeats to (not) see it
			if !e2eLcWait(10*time.Second, func() bool { return len(srv.Heartbeats(urn)) >= hbs+20 }) {
				t.Fatal("heartbeats stopped")
			}
			if got := saw(); got != want {
				t.Fatalf("replicas that saw the change = %d, want %d", got, want)
			}
		})
	}
}

func TestFakeCoreUpdateTransaction(t *testing.T) {
	srv := openhimtest.NewServer(openhimtest.Config{})
	defer srv.Close()
	c := fakeLcClient(t, srv, openhim.Config{MaxRetries: -1})
	err := c.UpdateTransaction(context.Background(), "5f0000000000000000000000", map[string]any{"status": "Successful"})
	// core answers an unknown transaction id with a 500 (it dereferences null)
	if !errors.Is(err, openhim.ErrServer) {
		t.Fatalf("unknown transaction = %v, want ErrServer", err)
	}
	if err := c.UpdateTransaction(context.Background(), "x", nil); err == nil {
		t.Fatal("nil update accepted")
	}
}

// TestFakeCoreTokenClockSkew: core accepts auth-ts only within ±10 s of
// its clock; the client corrects a large skew with the ts core returns
// from GET /authenticate/:user.
func TestFakeCoreTokenClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{time.Hour, -3 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4,
				Now: func() time.Time { return time.Now().Add(skew) }})
			defer srv.Close()
			c := fakeLcClient(t, srv, openhim.Config{Auth: openhim.AuthToken, CoreVersion: 4})
			if _, err := c.ListChannels(context.Background()); err != nil {
				t.Fatalf("token auth with core's clock %v off: %v", skew, err)
			}
		})
	}
}

// TestCompareStoredOnlyWhatCoreStores: core drops what its schema of that
// version lacks (for example isAsynchronousProcess before 8.3, the kafka
// route fields before 8), so a field missing from the stored document is
// no drift; a stored field with another value is.
func TestCompareStoredOnlyWhatCoreStores(t *testing.T) {
	def := openhim.Definition{URN: "urn:x", Version: "1.0.0", Name: "X",
		Endpoints: []openhim.Route{{Name: "r", Host: "h", Port: 1, Primary: true, WaitPrimaryResponse: true}},
		DefaultChannelConfig: []openhim.Channel{{Name: "c", URLPattern: "^/c$", Methods: []string{"POST"},
			IsAsynchronousProcess: true}}}
	tests := []struct {
		name   string
		stored string
		fields []string // nil: no drift
	}{
		{"core 4 drops fields it does not know",
			`{"urn":"urn:x","version":"1.0.0","name":"X","endpoints":[{"name":"r","host":"h","port":1,"primary":true,"_id":"a"}],
			  "defaultChannelConfig":[{"name":"c","urlPattern":"^/c$","methods":["POST"],"status":"enabled"}]}`, nil},
		{"a stored value differs",
			`{"urn":"urn:x","version":"1.0.0","name":"X","endpoints":[{"name":"r","host":"other","port":1,"primary":true}],
			  "defaultChannelConfig":[{"name":"c","urlPattern":"^/c$","methods":["POST"]}]}`, []string{"endpoints"}},
		{"a stored channel lost a method",
			`{"urn":"urn:x","version":"1.0.0","name":"X","endpoints":[{"name":"r","host":"h","port":1,"primary":true}],
			  "defaultChannelConfig":[{"name":"c","urlPattern":"^/c$","methods":[]}]}`, []string{"defaultChannelConfig"}},
	}
	// A route that now requires credentials (the mediator's inbound
	// auth) against core's route without them: every core's RouteDef
	// has username and password, so their absence is a difference.
	withAuth := def
	withAuth.Endpoints = []openhim.Route{{Name: "r", Host: "h", Port: 1, Primary: true, Username: "core", Password: "s3cret"}}
	withAuth.DefaultChannelConfig = nil
	noCreds := `{"urn":"urn:x","version":"1.0.0","name":"X","endpoints":[{"name":"r","host":"h","port":1,"primary":true}]}`
	if d, err := openhim.CompareStoredForTest(&withAuth, noCreds); err != nil || d == nil || !slices.Equal(d.Fields, []string{"endpoints"}) {
		t.Errorf("route credentials missing in core: drift %v, %v; want endpoints", d, err)
	}
	sameCreds := `{"urn":"urn:x","version":"1.0.0","name":"X","endpoints":[{"name":"r","host":"h","port":1,"primary":true,"username":"core","password":"s3cret"}]}`
	if d, err := openhim.CompareStoredForTest(&withAuth, sameCreds); err != nil || d != nil {
		t.Errorf("same route credentials: drift %v, %v; want none", d, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := openhim.CompareStoredForTest(&def, tt.stored)
			if err != nil {
				t.Fatal(err)
			}
			if tt.fields == nil {
				if d != nil {
					t.Fatalf("drift = %v, want none", d)
				}
				return
			}
			if d == nil || !slices.Equal(d.Fields, tt.fields) {
				t.Fatalf("drift = %v, want fields %v", d, tt.fields)
			}
		})
	}
}

type rollbackConfigV10 struct {
	UpstreamURL string `openhim:"upstreamUrl"`
}

type rollbackConfigV11 struct {
	UpstreamURL string `openhim:"upstreamUrl"`
	BatchSize   int    `openhim:"batchSize"`
}

// TestFakeCoreRollbackKeepsAdminConfig: after 1.1.0 (which added
// batchSize) is rolled back to 1.0.0, core ignores the 1.0.0 registration
// (openhim-core-js src/api/mediators.js addMediator: only a version
// semver.gt the stored one replaces it) and its heartbeat answer carries
// the 1.1.0 config. The 1.0.0 mediator keeps the administrator's
// upstreamUrl rather than falling back to its compiled-in default.
func TestFakeCoreRollbackKeepsAdminConfig(t *testing.T) {
	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version8})
	defer srv.Close()
	urn := "urn:mediator:rollback"
	tc11, err := openhim.NewTypedConfig(rollbackConfigV11{UpstreamURL: "http://default", BatchSize: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d11 := fakeLcDefinition(urn)
	d11.Version, d11.ConfigDefs, d11.Config = "1.1.0", tc11.Defs(), tc11.DefaultConfig()
	if err := srv.Register(d11); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetConfig(urn, map[string]any{"upstreamUrl": "https://prod-fhir.example", "batchSize": 50}); err != nil {
		t.Fatal(err)
	}

	tc10, err := openhim.NewTypedConfig(rollbackConfigV10{UpstreamURL: "http://default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d10 := fakeLcDefinition(urn)
	d10.Version, d10.ConfigDefs, d10.Config = "1.0.0", tc10.Defs(), tc10.DefaultConfig()
	l, err := openhim.NewLifecycle(openhim.LifecycleConfig{Client: fakeLcClient(t, srv, openhim.Config{}), Definition: d10,
		HeartbeatInterval: 50 * time.Millisecond, OnConfig: tc10.OnConfig})
	if err != nil {
		t.Fatal(err)
	}
	fakeLcRun(t, l)
	if !e2eLcWait(10*time.Second, func() bool { return l.ConfigVersion() >= 1 }) {
		t.Fatal("no config received")
	}
	if got, ok := srv.Mediator(urn); !ok || got.Version != "1.1.0" {
		t.Fatalf("stored mediator = %+v, want core to keep 1.1.0", got)
	}
	if got := tc10.Load().UpstreamURL; got != "https://prod-fhir.example" {
		t.Fatalf("upstreamUrl = %q (Err %v), want the administrator's value", got, tc10.Err())
	}
	if err := tc10.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
}

// TestFakeCoreConfigOnChangeOnlyAfterLostHeartbeatAnswer: core pushes a
// config change once, in answer to the first heartbeat after it, and
// moves _lastHeartbeat even when that answer never reaches the mediator
// (openhim-core-js src/api/mediators.js heartbeat). A proxy loses that
// answer; with ConfigOnChangeOnly the next heartbeat asks for the config,
// so the change is not lost.
func TestFakeCoreConfigOnChangeOnlyAfterLostHeartbeatAnswer(t *testing.T) {
	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version8})
	defer srv.Close()
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = srv.Client().Transport
	var loseNext atomic.Bool // lose the next heartbeat answer that carries a config
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/heartbeat") || !loseNext.Load() {
			rp.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r) // core handles the heartbeat ...
		if rec.Code == http.StatusOK && rec.Body.Len() > 0 && loseNext.CompareAndSwap(true, false) {
			w.WriteHeader(http.StatusBadGateway) // ... and its answer is lost
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer proxy.Close()

	c, err := openhim.NewClient(openhim.Config{URL: proxy.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
		MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	def := fakeLcDefinition("urn:mediator:onchange-lost-answer")
	l, err := openhim.NewLifecycle(openhim.LifecycleConfig{Client: c, Definition: def, HeartbeatInterval: 50 * time.Millisecond,
		ConfigOnChangeOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	fakeLcRun(t, l)
	if !e2eLcWait(10*time.Second, func() bool { return l.ConfigVersion() == 1 }) {
		t.Fatal("no first config")
	}
	loseNext.Store(true)
	if err := srv.SetConfig(def.URN, map[string]any{"url": "http://changed", "apiKey": "k"}); err != nil {
		t.Fatal(err)
	}
	if !e2eLcWait(10*time.Second, func() bool { return !loseNext.Load() && l.Config()["url"] == "http://changed" }) {
		t.Fatalf("config change lost: url = %v after %d heartbeats", l.Config()["url"], len(srv.Heartbeats(def.URN)))
	}
}

// TestFakeCoreChannelWithoutPrimaryRoute: a default channel whose routes
// have no primary installs (the mediator's channel install saves it as
// is, src/api/mediators.js), but core's router answers 404 on it and
// updateChannel (src/api/channels.js) refuses a PUT of those routes with
// 400 "Channel must have a primary route", so every restore would fail.
// Definition.Validate refuses it before it gets there.
func TestFakeCoreChannelWithoutPrimaryRoute(t *testing.T) {
	d := fakeLcDefinition("urn:mediator:no-primary")
	d.DefaultChannelConfig[0].Routes[0].Primary = false
	d.DefaultChannelConfig[0].AuthType = "public"
	if err := d.Validate(8); !errors.Is(err, openhim.ErrInvalid) || !strings.Contains(err.Error(), "defaultChannelConfig[0].routes") {
		t.Fatalf("Validate = %v, want ErrInvalid naming defaultChannelConfig[0].routes", err)
	}

	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version8})
	defer srv.Close()
	c := fakeLcClient(t, srv, openhim.Config{MaxRetries: -1})
	ctx := context.Background()
	if err := srv.Register(d); err != nil { // as an older release of the library would have
		t.Fatal(err)
	}
	if err := c.InstallChannels(ctx, d.URN); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.RouterURL+"/fake", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("router status = %d, want 404", resp.StatusCode)
	}
	chs := srv.Channels()
	if len(chs) != 1 {
		t.Fatalf("channels = %d, want 1", len(chs))
	}
	err = c.Do(ctx, http.MethodPut, "/channels/"+chs[0].ID, map[string]any{"routes": d.DefaultChannelConfig[0].Routes}, nil)
	if !errors.Is(err, openhim.ErrBadRequest) || !strings.Contains(err.Error(), "Channel must have a primary route") {
		t.Errorf("PUT = %v, want 400 Channel must have a primary route", err)
	}
}

// TestFakeCoreRejectedRegistrationProblem: core 4 requires a route host
// (src/model/channels.js RouteDef host: required) and answers the
// registration with 400; Problem, which /readyz answers, says so.
func TestFakeCoreRejectedRegistrationProblem(t *testing.T) {
	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4})
	defer srv.Close()
	d := fakeLcDefinition("urn:mediator:rejected")
	d.Endpoints[0].Host = "" // fine for core 8's rules, which the client checks against
	l, err := openhim.NewLifecycle(openhim.LifecycleConfig{Client: fakeLcClient(t, srv, openhim.Config{Auth: openhim.AuthToken}), Definition: d})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); !errors.Is(err, openhim.ErrBadRequest) {
		t.Fatalf("Run = %v, want ErrBadRequest", err)
	}
	if p := l.Problem(); !strings.Contains(p, "rejected") || !strings.Contains(p, "host") {
		t.Fatalf("Problem() = %q, want the rejection naming host", p)
	}
}

// installFault counts the POSTs to .../channels that reach core and fails
// them as a network does: after the first answer was lost (a reset after
// core did the work) or before they reach core (refused); "" passes them.
type installFault struct {
	next  http.RoundTripper
	fault string // "lost", "refused" or ""
	posts atomic.Int32
}

func (f *installFault) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/channels") {
		return f.next.RoundTrip(r)
	}
	if f.fault == "refused" {
		return nil, errors.New("connection refused")
	}
	n := f.posts.Add(1)
	resp, err := f.next.RoundTrip(r)
	if err == nil && f.fault == "lost" && n == 1 {
		resp.Body.Close()
		return nil, errors.New("connection reset by peer")
	}
	return resp, err
}

// TestInstallChannelsAfterALostAnswer: POST /mediators/:urn/channels is
// not idempotent in core (4.0.5 src/api/mediators.js, loadDefaultChannels,
// saves each channel; a name saved before fails the call with a 500
// duplicate key error from the unique name index of src/model/channels.js).
// InstallChannels sends it once, not retried, and when it fails it counts
// the channels core holds by name as installed: an answer lost after core
// saved them, or core's 500 for channels there already, is success; a POST
// that never reached core fails naming the channels missing.
func TestInstallChannelsAfterALostAnswer(t *testing.T) {
	for _, tt := range []struct {
		fault   string
		missing string // in the error; "" for success
		posts   int32
	}{
		{fault: "lost", posts: 1},
		{fault: "", posts: 2}, // "already there": the second POST: core's 500 for the channel saved by the first
		{fault: "refused", missing: "not installed: Fake Channel urn:mediator:lost-answer, Second Channel"},
	} {
		t.Run(map[string]string{"lost": "answer lost", "": "already there", "refused": "never sent"}[tt.fault], func(t *testing.T) {
			srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4})
			t.Cleanup(srv.Close)
			fault := &installFault{next: srv.Client().Transport, fault: tt.fault}
			c := fakeLcClient(t, srv, openhim.Config{HTTPClient: &http.Client{Transport: fault}})
			d := fakeLcDefinition("urn:mediator:lost-answer")
			d.DefaultChannelConfig = append(d.DefaultChannelConfig, d.DefaultChannelConfig[0])
			d.DefaultChannelConfig[1].Name = "Second Channel"
			ctx := context.Background()
			if err := c.Register(ctx, &d); err != nil {
				t.Fatal(err)
			}
			err := c.InstallChannels(ctx, d.URN)
			if tt.fault == "" {
				err = c.InstallChannels(ctx, d.URN, "Second Channel")
			}
			if tt.missing == "" && err != nil {
				t.Errorf("InstallChannels = %v, want nil: core holds the channels", err)
			}
			if tt.missing != "" && (err == nil || !strings.Contains(err.Error(), tt.missing)) {
				t.Errorf("InstallChannels = %v, want the error naming the channels missing (%s)", err, tt.missing)
			}
			if want := map[bool]int{true: 0, false: 2}[tt.fault == "refused"]; len(srv.Channels()) != want || fault.posts.Load() != tt.posts {
				t.Errorf("core holds %d channels after %d POSTs, want %d after %d", len(srv.Channels()), fault.posts.Load(), want, tt.posts)
			}
		})
	}
}
