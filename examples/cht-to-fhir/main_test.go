package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

func setBaseEnv(t *testing.T) {
	t.Setenv("MEDIATOR_CHT_URL", "https://cht.example.org")
	t.Setenv("MEDIATOR_FHIR_URL", "http://127.0.0.1:1/fhir")
}

func TestPrintOpenHIMConfig(t *testing.T) {
	setBaseEnv(t)
	t.Setenv("MEDIATOR_PUBLIC_HOST", "mediators.internal")
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--config", "config.yaml", "--print-openhim-config"}, &out, slog.New(slog.DiscardHandler)))

	var doc struct {
		Mediators []openhim.Definition
		Channels  []openhim.Channel
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	require.Len(t, doc.Mediators, 1)
	def := doc.Mediators[0]
	assert.Equal(t, "urn:mediator:cht-to-fhir", def.URN)
	require.NoError(t, def.Validate(4), "valid for core 4 (host and port set)")
	require.NoError(t, def.Validate(8))
	require.Len(t, doc.Channels, 1)
	assert.Equal(t, "mediators.internal", doc.Channels[0].Routes[0].Host, "MEDIATOR_PUBLIC_HOST wins over the file")
	assert.Equal(t, 8601, doc.Channels[0].Routes[0].Port, "port of listen in config.yaml")
}

func TestPrintCHTOutbound(t *testing.T) {
	setBaseEnv(t)
	t.Setenv("MEDIATOR_ROUTER_URL", "https://openhim.example.org:5000")
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--print-cht-outbound"}, &out, slog.New(slog.DiscardHandler)))

	var doc struct {
		Transitions map[string]bool `json:"transitions"`
		Outbound    map[string]struct {
			RelevantTo  string `json:"relevant_to"`
			Destination struct {
				BaseURL string `json:"base_url"`
				Path    string `json:"path"`
				Auth    struct {
					Type, Username, PasswordKey string
				} `json:"auth"`
			} `json:"destination"`
			Mapping map[string]string `json:"mapping"`
		} `json:"outbound"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc))
	assert.True(t, doc.Transitions["mark_for_outbound"])
	reports := doc.Outbound["cht_to_fhir_reports"]
	assert.Equal(t, "https://openhim.example.org:5000", reports.Destination.BaseURL)
	assert.Equal(t, "/cht/outbound", reports.Destination.Path)
	assert.Contains(t, reports.RelevantTo, `"height_weight"`, "every mapped form is relevant, matched ignoring case")
	assert.Equal(t, map[string]string{"doc": "doc"}, reports.Mapping)
	assert.Contains(t, doc.Outbound, "cht_to_fhir_contacts")
	// The push authenticates as a client whose ID is not a role: core 4.x-8.x
	// refuses such a client with 409 (openhim-core src/api/clients.js addClient).
	assert.Equal(t, clientID, reports.Destination.Auth.Username)
	assert.NotEqual(t, clientRole, reports.Destination.Auth.Username)
}

// Running needs the CHT and FHIR URLs; errors name the key, on one line.
func TestSettingsErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no FHIR URL", map[string]string{"MEDIATOR_CHT_URL": "https://cht.example.org"}, "fhir.url (MEDIATOR_FHIR_URL) is required"},
		{"no CHT URL", map[string]string{"MEDIATOR_FHIR_URL": "http://fhir"}, "cht.url (MEDIATOR_CHT_URL) is required"},
		{"bad FHIR URL", map[string]string{"MEDIATOR_CHT_URL": "https://c", "MEDIATOR_FHIR_URL": "fhir:8080"}, "fhir.url (MEDIATOR_FHIR_URL) is not an http(s) URL"},
		{"bad heartbeat", map[string]string{"MEDIATOR_CHT_URL": "https://c", "MEDIATOR_FHIR_URL": "http://f",
			"MEDIATOR_HEARTBEAT_INTERVAL": "often"}, "heartbeat_interval"},
		{"missing mapping file", map[string]string{"MEDIATOR_CHT_URL": "https://c", "MEDIATOR_FHIR_URL": "http://f",
			"MEDIATOR_MAPPING_FILE": "does-not-exist.yaml"}, "does-not-exist.yaml"},
		{"no inbound credentials", map[string]string{"MEDIATOR_CHT_URL": "https://c", "MEDIATOR_FHIR_URL": "http://f",
			"MEDIATOR_AUTH_TOKEN": ""}, "the mediator's routes would be open to anyone who reaches listen"},
		// Without a CHT user nothing reads the queue: no metric, no alert.
		{"outbound metrics without CHT user", map[string]string{"MEDIATOR_CHT_URL": "https://c", "MEDIATOR_FHIR_URL": "http://f",
			"MEDIATOR_OUTBOUND_METRICS": "true", "MEDIATOR_CHT_USERNAME": ""},
			"outbound_metrics (MEDIATOR_OUTBOUND_METRICS) needs cht.username (MEDIATOR_CHT_USERNAME)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("MEDIATOR_CHT_URL", "")
			t.Setenv("MEDIATOR_FHIR_URL", "")
			t.Setenv("MEDIATOR_AUTH_TOKEN", "route-token")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := run(ctx, nil, new(bytes.Buffer), slog.New(slog.DiscardHandler))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

// Until the app's contact types are read from CHT (here GET
// /api/v1/settings fails), /readyz is not ready and pushes are answered
// 503, so that CHT keeps them; once CHT answers, both recover.
func TestContactTypesUnreadRefusesPushes(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	remove := chtSrv.InjectFault(chttest.Fault{Method: "GET", Path: "/api/v1/settings", Status: http.StatusBadGateway})
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	t.Setenv("MEDIATOR_LISTEN", addr)
	t.Setenv("MEDIATOR_OPENHIM_URL", "")
	t.Setenv("MEDIATOR_CHT_URL", chtSrv.URL)
	t.Setenv("MEDIATOR_CHT_USERNAME", chttest.AdminUsername)
	t.Setenv("MEDIATOR_CHT_PASSWORD", chttest.AdminPassword)
	t.Setenv("MEDIATOR_FHIR_URL", fhirSrv.URL)
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config", "config.yaml"}, new(bytes.Buffer), slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { cancel(); <-done })

	doc, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	body, err := json.Marshal(map[string]any{"doc": doc})
	require.NoError(t, err)
	get := func(method, path string) (int, string) {
		req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("openhim-route", "route-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	require.Eventually(t, func() bool { code, _ := get("GET", "/readyz"); return code != 0 }, 10*time.Second, 20*time.Millisecond)
	code, answer := get("GET", "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, answer, "contact types")
	code, answer = get("POST", "/cht/outbound")
	assert.Equal(t, http.StatusServiceUnavailable, code, answer)
	assert.Contains(t, answer, "contact types (app_settings.contact_types) are not read from CHT yet")
	assert.Equal(t, 0, fhirSrv.Count("Encounter"))

	remove()
	require.Eventually(t, func() bool { code, _ := get("GET", "/readyz"); return code == http.StatusOK }, 15*time.Second, 100*time.Millisecond)
	code, answer = get("POST", "/cht/outbound")
	require.Equal(t, http.StatusOK, code, answer)
	assert.Equal(t, 1, fhirSrv.Count("Encounter"))
}

// TestRunRegistersAndServes runs the program against the fake OpenHIM core,
// a fake CHT and the in-memory FHIR server, and drives one push through
// core's router.
func TestRunRegistersAndServes(t *testing.T) {
	core := openhimtest.NewServer(openhimtest.Config{})
	t.Cleanup(core.Close)
	core.AddClient("cht", "cht-secret", "cht")
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)

	port := freePort(t)
	t.Setenv("MEDIATOR_LISTEN", fmt.Sprintf("127.0.0.1:%d", port))
	t.Setenv("MEDIATOR_PUBLIC_HOST", "127.0.0.1")
	t.Setenv("MEDIATOR_OPENHIM_URL", core.URL)
	t.Setenv("MEDIATOR_OPENHIM_USERNAME", openhimtest.RootUser)
	t.Setenv("MEDIATOR_OPENHIM_PASSWORD", openhimtest.RootPassword)
	t.Setenv("MEDIATOR_HEARTBEAT_INTERVAL", "200ms")
	t.Setenv("MEDIATOR_CHT_URL", chtSrv.URL)
	// The mediator reads the app's contact types from CHT at start.
	t.Setenv("MEDIATOR_CHT_USERNAME", chttest.AdminUsername)
	t.Setenv("MEDIATOR_CHT_PASSWORD", chttest.AdminPassword)
	t.Setenv("MEDIATOR_FHIR_URL", fhirSrv.URL)
	// What the mediator requires of its callers; the default channel's
	// route sends it.
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config", "config.yaml"}, new(bytes.Buffer), slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop")
		}
	})

	require.Eventually(t, func() bool {
		_, ok := core.Mediator("urn:mediator:cht-to-fhir")
		return ok && len(core.Channels()) == 1
	}, 10*time.Second, 50*time.Millisecond, "registered with its channel installed")
	assert.Equal(t, "openhim-route", core.Channels()[0].Routes[0].Username, "the route sends what the mediator requires")

	doc, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	body, err := json.Marshal(map[string]any{"doc": doc})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, core.RouterURL+"/cht/outbound", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("cht", "cht-secret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, fhirSrv.Count("Encounter"))

	txs := core.Transactions()
	require.Len(t, txs, 1)
	assert.Equal(t, "Successful", string(txs[0].Status))
	require.NotEmpty(t, txs[0].Orchestrations)
	assert.Equal(t, "FHIR transaction", txs[0].Orchestrations[0].Name)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPrintOpenHIMConfigCredentials: the printed routes carry the
// credentials the mediator requires of its callers.
func TestPrintOpenHIMConfigCredentials(t *testing.T) {
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret")
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--config", "config.yaml", "--print-openhim-config"}, &out, slog.New(slog.DiscardHandler)))
	require.Contains(t, out.String(), `"username": "openhim-route"`)
	require.Contains(t, out.String(), `"password": "route-secret"`)
}

// TestStartupLogsEffectiveConfig: the start-up line has the CHT and FHIR
// URLs and never the FHIR password.
func TestStartupLogsEffectiveConfig(t *testing.T) {
	t.Setenv("MEDIATOR_LISTEN", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	t.Setenv("MEDIATOR_CHT_URL", "https://cht.test.example")
	t.Setenv("MEDIATOR_CHT_USERNAME", "")
	t.Setenv("MEDIATOR_FHIR_URL", "https://fhir.test.example/fhir")
	t.Setenv("MEDIATOR_FHIR_PASSWORD", "fhir-secret-pw")
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret-pw")
	t.Setenv("MEDIATOR_OPENHIM_URL", "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var logs bytes.Buffer
	err := run(ctx, []string{"--config", "config.yaml"}, new(bytes.Buffer), slog.New(slog.NewJSONHandler(&logs, nil)))
	t.Log(err) // the cancelled context stops it once started
	require.Contains(t, logs.String(), "cht-to-fhir starting")
	require.Contains(t, logs.String(), "https://cht.test.example")
	require.Contains(t, logs.String(), "https://fhir.test.example/fhir")
	require.NotContains(t, logs.String(), "fhir-secret-pw")
	require.NotContains(t, logs.String(), "route-secret-pw")
}

// outbound_metrics exports CHT's outbound retry queue at /metrics and
// leaves /readyz alone: a push that keeps failing must not take the
// mediator out of service, or its retries could never get through.
func TestOutboundMetricsAreNotReadiness(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	// CHT is configured with the pushes --print-cht-outbound prints; the
	// Watch reads their names from its app settings.
	setBaseEnv(t)
	t.Setenv("MEDIATOR_ROUTER_URL", "https://openhim.example.org:5000")
	var settings bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--print-cht-outbound"}, &settings, slog.New(slog.DiscardHandler)))
	put, err := http.NewRequest(http.MethodPut, chtSrv.URL+"/api/v1/settings", &settings)
	require.NoError(t, err)
	put.SetBasicAuth(chttest.AdminUsername, chttest.AdminPassword)
	put.Header.Set("Content-Type", "application/json")
	resp, err := chtSrv.Client().Do(put)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(failing.Close)
	long := time.Now().Add(-24 * time.Hour) // a push failing for a day
	p, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "cht_to_fhir_contacts", URL: failing.URL,
		Mapping: map[string]any{"id": "doc._id"}, Server: chtSrv, Now: func() time.Time { return long }})
	require.NoError(t, err)
	_, err = p.PushID(context.Background(), chttest.DemoPatientID)
	require.Error(t, err, "the push fails and is queued")

	c, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	cfg := mediator.Config{ReadyCheck: func(context.Context) error { return nil }}
	watchOutbound(Settings{OutboundMetrics: true}, c, &cfg)
	require.NotNil(t, cfg.Registry)
	mfs, err := cfg.Registry.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) > 0 && mf.GetMetric()[0].GetGauge() != nil {
			got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	assert.Equal(t, 1.0, got["cht_outbound_queue_up"])
	assert.Equal(t, 1.0, got["cht_outbound_queue_configured_known"], "the configured pushes are read from CHT")
	assert.Equal(t, 1.0, got["cht_outbound_queue_tasks"])
	assert.Greater(t, got["cht_outbound_queue_oldest_failure_age_seconds"], (23 * time.Hour).Seconds())
	assert.NoError(t, cfg.ReadyCheck(context.Background()), "a failing push does not make the mediator unready")

	cfg = mediator.Config{}
	watchOutbound(Settings{}, c, &cfg)
	assert.Nil(t, cfg.Registry, "off by default")
}
