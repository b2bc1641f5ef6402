package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

func setBaseEnv(t *testing.T) {
	t.Setenv("MEDIATOR_CHT_URL", "https://cht.example.org")
	t.Setenv("MEDIATOR_CHT_USERNAME", "openhim")
	t.Setenv("MEDIATOR_PARENT_PLACE", "household-1")
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
	assert.Equal(t, "urn:mediator:fhir-to-cht", def.URN)
	require.NoError(t, def.Validate(4), "valid for core 4 (host and port set)")
	require.NoError(t, def.Validate(8))
	require.Len(t, doc.Channels, 1)
	ch := doc.Channels[0]
	assert.Equal(t, "mediators.internal", ch.Routes[0].Host, "MEDIATOR_PUBLIC_HOST wins over the file")
	assert.Equal(t, 8602, ch.Routes[0].Port, "port of listen in config.yaml")
	assert.Equal(t, []string{"emr"}, ch.Allow)
	assert.Equal(t, "^/fhir(/.*)?$", ch.URLPattern)
}

func TestPrintCHTOutboundExplainsWhyThereIsNone(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--print-cht-outbound"}, &out, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, errNoOutbound)
	assert.Contains(t, err.Error(), "receives from the EMR")
	assert.Empty(t, out.String(), "nothing a script could mistake for an outbound block")
}

func TestSettingsErrorsNameTheKey(t *testing.T) {
	base := map[string]string{"MEDIATOR_CHT_URL": "https://c", "MEDIATOR_CHT_USERNAME": "u", "MEDIATOR_PARENT_PLACE": "p",
		"MEDIATOR_AUTH_TOKEN": "route-token"}
	tests := []struct {
		name  string
		unset string
		env   map[string]string
		want  string
	}{
		{"no CHT URL", "MEDIATOR_CHT_URL", nil, "cht.url"},
		{"no CHT user", "MEDIATOR_CHT_USERNAME", nil, "cht.username"},
		{"no parent place", "MEDIATOR_PARENT_PLACE", nil, "parent_place"},
		{"no inbound credentials", "MEDIATOR_AUTH_TOKEN", nil, "the mediator's routes would be open to anyone who reaches listen"},
		{"bad heartbeat", "", map[string]string{"MEDIATOR_HEARTBEAT_INTERVAL": "often"}, "heartbeat_interval"},
		{"missing mapping file", "", map[string]string{"MEDIATOR_MAPPING_FILE": "does-not-exist.yaml"}, "does-not-exist.yaml"},
		{"listen without port", "", map[string]string{"MEDIATOR_LISTEN": "127.0.0.1:0"}, "fixed port"},
		{"bad EMR URL", "", map[string]string{"MEDIATOR_FHIR_URL": "emr:8080"}, "fhir.url (MEDIATOR_FHIR_URL) is not an http(s) URL"},
		// notify_emr is checked at startup, not on the first Task the EMR sends.
		{"notify endpoint without scheme", "", map[string]string{"MEDIATOR_FHIR_URL": "http://f",
			"MEDIATOR_NOTIFY_EMR_ENDPOINT": "emr.example.org/referral-events?token=s3cretN"},
			"notify_emr.endpoint (MEDIATOR_NOTIFY_EMR_ENDPOINT) must be an absolute http(s) URL"},
		{"notify endpoint without FHIR URL", "", map[string]string{"MEDIATOR_NOTIFY_EMR_ENDPOINT": "https://emr.example.org/hook"},
			"notify_emr.endpoint (MEDIATOR_NOTIFY_EMR_ENDPOINT) needs fhir.url (MEDIATOR_FHIR_URL)"},
		{"notify authorization without endpoint", "", map[string]string{"MEDIATOR_FHIR_URL": "http://f",
			"MEDIATOR_NOTIFY_EMR_AUTHORIZATION": "Bearer s3cretN"}, "need notify_emr.endpoint (MEDIATOR_NOTIFY_EMR_ENDPOINT)"},
		{"notify payload not a MIME type", "", map[string]string{"MEDIATOR_FHIR_URL": "http://f",
			"MEDIATOR_NOTIFY_EMR_ENDPOINT": "https://emr.example.org/hook", "MEDIATOR_NOTIFY_EMR_PAYLOAD": "task"},
			"notify_emr.payload (MEDIATOR_NOTIFY_EMR_PAYLOAD)"},
		{"negative remove_closed_after", "", map[string]string{"MEDIATOR_FHIR_URL": "http://f",
			"MEDIATOR_NOTIFY_EMR_ENDPOINT": "https://emr.example.org/hook", "MEDIATOR_NOTIFY_EMR_REMOVE_CLOSED_AFTER": "-1h"},
			"notify_emr.remove_closed_after (MEDIATOR_NOTIFY_EMR_REMOVE_CLOSED_AFTER) -1h0m0s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range base {
				if k != tt.unset {
					t.Setenv(k, v)
				}
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // running checks everything before it serves
			err := run(ctx, nil, new(bytes.Buffer), slog.New(slog.DiscardHandler))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "\n")
			assert.NotContains(t, err.Error(), "s3cretN", "secrets are not repeated")
		})
	}
}

// max_body_bytes negative means no limit, for the bridge too: it was
// passed to tocht as 0, its 4 MiB default, so asking for no limit gave a
// limit below the 10 MiB default and a 5 MiB Patient was refused 413.
func TestNegativeMaxBodyBytesMeansNoLimit(t *testing.T) {
	assert.Equal(t, int64(math.MaxInt64), bodyLimit(-1))
	assert.Equal(t, int64(1<<20), bodyLimit(1<<20))

	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	s := Settings{Mediator: settings.Default(), TaskForm: "INTEROP_FOLLOW_UP", PatientField: "patient_uuid",
		ParentPlace: chttest.DemoHouseholdID}
	s.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.Auth.Disabled = true
	s.MaxBodyBytes = -1
	s.CHT.URL, s.CHT.Username, s.CHT.Password = chtSrv.URL, chttest.AdminUsername, chttest.AdminPassword
	m, _, err := newMediator(context.Background(), s, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)

	body := `{"resourceType":"Patient","id":"big-1",` + strings.Repeat(" ", 5<<20) + `"name":[{"family":"Big"}]}`
	resp, err := http.Post(srv.URL+"/fhir/Patient", "application/fhir+json", strings.NewReader(body))
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	env, err := mediator.ParseEnvelope(raw)
	require.NoError(t, err, "%s", raw)
	assert.NotEqual(t, http.StatusRequestEntityTooLarge, env.Response.Status,
		"max_body_bytes=-1 (no limit) refused a 5 MiB body: %s", env.Response.Body)
	assert.Less(t, env.Response.Status, 300, "the Patient is written: %s", env.Response.Body)
}

// TestRunRegistersAndServes runs the program against the fake OpenHIM core
// and a fake CHT, and sends the EMR's requests through core's router.
func TestRunRegistersAndServes(t *testing.T) {
	core := openhimtest.NewServer(openhimtest.Config{})
	t.Cleanup(core.Close)
	core.AddClient("emr", "emr-secret", "emr")
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)

	port := freePort(t)
	t.Setenv("MEDIATOR_LISTEN", fmt.Sprintf("127.0.0.1:%d", port))
	t.Setenv("MEDIATOR_PUBLIC_HOST", "127.0.0.1")
	t.Setenv("MEDIATOR_OPENHIM_URL", core.URL)
	t.Setenv("MEDIATOR_OPENHIM_USERNAME", openhimtest.RootUser)
	t.Setenv("MEDIATOR_OPENHIM_PASSWORD", openhimtest.RootPassword)
	t.Setenv("MEDIATOR_HEARTBEAT_INTERVAL", "200ms")
	t.Setenv("MEDIATOR_CHT_URL", chtSrv.URL)
	t.Setenv("MEDIATOR_CHT_USERNAME", chttest.AdminUsername)
	t.Setenv("MEDIATOR_CHT_PASSWORD", chttest.AdminPassword)
	t.Setenv("MEDIATOR_PARENT_PLACE", chttest.DemoHouseholdID)
	t.Setenv("MEDIATOR_MAX_BODY_BYTES", "65536")
	// What the mediator requires of its callers; the default channel's
	// route sends it.
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret")

	startRun(t)

	require.Eventually(t, func() bool {
		_, ok := core.Mediator("urn:mediator:fhir-to-cht")
		return ok && len(core.Channels()) == 1
	}, 10*time.Second, 50*time.Millisecond, "registered with its channel installed")
	assert.Equal(t, "openhim-route", core.Channels()[0].Routes[0].Username, "the route sends what the mediator requires")

	// The identifiers name the CHT instance by MEDIATOR_CHT_URL.
	sr, err := os.ReadFile("testdata/service-request.json")
	require.NoError(t, err)
	sr = bytes.Replace(sr, []byte("https://cht.example.org/medic"), []byte(chtSrv.URL+"/medic"), 1)

	send := func(path string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, core.RouterURL+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/fhir+json")
		req.SetBasicAuth("emr", "emr-secret")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
	tests := []struct {
		name   string
		path   string
		body   []byte
		status int
		want   string
	}{
		{"ServiceRequest", "/fhir/ServiceRequest", sr, http.StatusCreated, `"resourceType":"ServiceRequest"`},
		{"ServiceRequest re-sent", "/fhir/ServiceRequest", sr, http.StatusOK, `"resourceType":"ServiceRequest"`},
		{"too large", "/fhir/Patient", []byte(`{"resourceType":"Patient","x":"` + strings.Repeat("x", 70000) + `"}`),
			http.StatusRequestEntityTooLarge, `"resourceType":"OperationOutcome"`},
		// Far over the limit, the mediator refuses by Content-Length before
		// the bridge reads: its answer is an OperationOutcome too.
		{"far too large", "/fhir/Patient", []byte(`{"resourceType":"Patient","x":"` + strings.Repeat("x", 2<<20) + `"}`),
			http.StatusRequestEntityTooLarge, `"resourceType":"OperationOutcome"`},
	}
	for _, tt := range tests {
		status, body := send(tt.path, tt.body)
		assert.Equal(t, tt.status, status, "%s: %s", tt.name, body)
		assert.Contains(t, string(body), tt.want, tt.name)
	}
	reports := chtSrv.Reports("INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1, "one report for the request sent twice")
	assert.Contains(t, string(reports[0]), chttest.DemoPatientID)

	txs := core.Transactions()
	require.Len(t, txs, len(tests))
	assert.Equal(t, "Successful", string(txs[0].Status))
	var names []string
	for _, o := range txs[0].Orchestrations {
		names = append(names, o.Name)
	}
	require.GreaterOrEqual(t, len(names), 3)
	assert.Equal(t, []string{"CHT read subject", "CHT read report", "CHT create report"}, names[:3],
		"our orchestrations first (core appends its route to the primary mediator)")
}

// startRun runs the program with config.yaml and the environment until the
// test ends, when it must stop without an error.
func startRun(t *testing.T) {
	t.Helper()
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
	setBaseEnv(t)
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret")
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--config", "config.yaml", "--print-openhim-config"}, &out, slog.New(slog.DiscardHandler)))
	require.Contains(t, out.String(), `"username": "openhim-route"`)
	require.Contains(t, out.String(), `"password": "route-secret"`)
}

// TestStartupLogsEffectiveConfig: the start-up line has the CHT URL and
// never the CHT password.
func TestStartupLogsEffectiveConfig(t *testing.T) {
	setBaseEnv(t)
	t.Setenv("MEDIATOR_LISTEN", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	t.Setenv("MEDIATOR_CHT_PASSWORD", "cht-secret-pw")
	t.Setenv("MEDIATOR_AUTH_USERNAME", "openhim-route")
	t.Setenv("MEDIATOR_AUTH_PASSWORD", "route-secret-pw")
	t.Setenv("MEDIATOR_OPENHIM_URL", "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stops the mediator once started
	var logs bytes.Buffer
	_ = run(ctx, []string{"--config", "config.yaml"}, new(bytes.Buffer), slog.New(slog.NewJSONHandler(&logs, nil)))
	require.Contains(t, logs.String(), "fhir-to-cht starting")
	require.Contains(t, logs.String(), "https://cht.example.org")
	require.NotContains(t, logs.String(), "cht-secret-pw")
	require.NotContains(t, logs.String(), "route-secret-pw")
}

// TestConfigurablePersonTypes: the mediator reads the app's contact
// hierarchy from CHT at startup, so a ServiceRequest about a person of a
// configurable type (c_chw) is written, and one about a place refused.
func TestConfigurablePersonTypes(t *testing.T) {
	chtSrv := chttest.NewServer(chttest.Config{Forms: chttest.DemoForms(), ContactTypes: []chttest.ContactType{
		{ID: "c_region"},
		{ID: "c_chw", Person: true, Parents: []string{"c_region"}},
		{ID: "c_patient", Person: true, Parents: []string{"c_region"}},
	}})
	t.Cleanup(chtSrv.Close)
	require.NoError(t, chtSrv.PutDocs(
		map[string]any{"_id": "region-1", "type": "contact", "contact_type": "c_region", "name": "Region"},
		map[string]any{"_id": "chw-1", "type": "contact", "contact_type": "c_chw", "name": "CHW",
			"parent": map[string]any{"_id": "region-1"}},
	))
	s := Settings{Mediator: settings.Default(), TaskForm: "INTEROP_FOLLOW_UP", PatientField: "patient_uuid", ParentPlace: "region-1"}
	s.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.Auth.Disabled = true
	s.CHT.URL, s.CHT.Username, s.CHT.Password = chtSrv.URL, chttest.AdminUsername, chttest.AdminPassword
	m, _, err := newMediator(context.Background(), s, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)

	subject := func(id string) string {
		return `{"resourceType":"ServiceRequest","id":"sr-` + id + `","status":"active","intent":"order",
 "subject":{"identifier":{"system":"` + chtSrv.URL + `/medic","value":"` + id + `"}}}`
	}
	for _, tt := range []struct {
		subject string
		status  int
	}{{"chw-1", http.StatusCreated}, {"region-1", http.StatusUnprocessableEntity}} {
		resp, err := http.Post(srv.URL+"/fhir/ServiceRequest", "application/fhir+json", strings.NewReader(subject(tt.subject)))
		require.NoError(t, err)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		env, err := mediator.ParseEnvelope(raw)
		require.NoError(t, err, "%s", raw)
		assert.Equal(t, tt.status, env.Response.Status, "%s: %s", tt.subject, env.Response.Body)
	}
	reports := chtSrv.Reports("INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1)
	assert.Contains(t, string(reports[0]), `"patient_uuid":"chw-1"`)
}

// With notify_emr, the program deletes the Subscriptions of Tasks closed
// more than notify_emr.remove_closed_after ago, at startup and then
// periodically, and keeps those of open Tasks.
func TestRunRemovesClosedSubscriptions(t *testing.T) {
	const endpoint = "https://emr.example.org/referral-events"
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	ctx := context.Background()
	c, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL})
	require.NoError(t, err)
	subs := map[string]string{}
	for id, status := range map[string]string{"closed": "completed", "open": "in-progress"} {
		require.NoError(t, c.Update(ctx, "Task", id, map[string]any{"resourceType": "Task", "id": id, "status": status, "intent": "order"}, nil))
		subs[id], _, err = c.SubscribeTask(ctx, id, fhir.TaskSubscription{Endpoint: endpoint})
		require.NoError(t, err)
	}

	t.Setenv("MEDIATOR_LISTEN", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	t.Setenv("MEDIATOR_CHT_URL", chtSrv.URL)
	t.Setenv("MEDIATOR_CHT_USERNAME", chttest.AdminUsername)
	t.Setenv("MEDIATOR_CHT_PASSWORD", chttest.AdminPassword)
	t.Setenv("MEDIATOR_PARENT_PLACE", chttest.DemoHouseholdID)
	t.Setenv("MEDIATOR_AUTH_TOKEN", "route-token")
	t.Setenv("MEDIATOR_FHIR_URL", fhirSrv.URL)
	t.Setenv("MEDIATOR_NOTIFY_EMR_ENDPOINT", endpoint)
	t.Setenv("MEDIATOR_NOTIFY_EMR_REMOVE_CLOSED_AFTER", "100ms")
	startRun(t)
	require.Eventually(t, func() bool { return fhirSrv.Count("Subscription") == 1 }, 10*time.Second, 20*time.Millisecond,
		"the closed Task's Subscription is deleted")
	_, ok := fhirSrv.Resource("Subscription", subs["open"])
	assert.True(t, ok, "the open Task's Subscription is kept")
}
