package main

// e2e test of the referral loop through the REAL OpenHIM core (4.0.5) and the REAL FHIR server of
// .ci/stack.sh: the EMR's ServiceRequest and Task on the FHIR server, the Task through the router to
// fhir-to-cht (a CHT task in chttest), the CHW's follow-up report pushed by chttest's pusher through
// the router to cht-to-fhir, and the Task completed with the Encounter as output and the
// ServiceRequest completed, exactly once under replays.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

type e2eEnv struct {
	api, router, fhirURL, user, pass, suffix string
}

// e2eMediator registers a mediator with the real core under a unique URN, channel name, path prefix
// and role, and runs it until the test ends.
func (e e2eEnv) e2eMediator(t *testing.T, name string, def func(string, int) openhim.Definition, h http.Handler, role string) *mediator.Mediator {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	d := def("127.0.0.1", ln.Addr().(*net.TCPAddr).Port)
	d.URN += ":" + e.suffix
	ch := &d.DefaultChannelConfig[0]
	ch.Name += " " + e.suffix
	ch.URLPattern = "^/" + e.suffix + strings.TrimPrefix(ch.URLPattern, "^")
	ch.Allow = []string{role}
	m, err := mediator.New(mediator.Config{
		Auth:       mediator.InboundAuth{Open: true},
		Definition: d, Listener: ln,
		OpenHIM:         openhimtest.RealCore(t),
		InstallChannels: true, HeartbeatInterval: time.Second,
		Handler: http.StripPrefix("/"+e.suffix, h), Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err, name)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		assert.NoError(t, <-done, name)
	})
	require.Eventually(t, m.Ready, 30*time.Second, 100*time.Millisecond, "%s registered with core", name)
	return m
}

func (e e2eEnv) fhir(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.fhirURL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Less(t, resp.StatusCode, 300, "%s %s: %v", method, path, out)
	return out
}

func TestE2EReferralLoop(t *testing.T) {
	e := e2eEnv{api: os.Getenv("OPENHIM_API_URL"), router: strings.TrimRight(os.Getenv("OPENHIM_ROUTER_URL"), "/"),
		fhirURL: strings.TrimRight(os.Getenv("FHIR_BASE_URL"), "/"), user: os.Getenv("OPENHIM_USERNAME"), pass: os.Getenv("OPENHIM_PASSWORD")}
	if e.api == "" || e.router == "" || e.fhirURL == "" {
		t.Skip("OPENHIM_API_URL / OPENHIM_ROUTER_URL / FHIR_BASE_URL not set; start the stack with: eval \"$(bash .ci/stack.sh start)\"")
	}
	if e.user == "" {
		e.user, e.pass = "root@openhim.org", "openhim-password"
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	e.suffix = fmt.Sprintf("e2e-referral-%d-%s", time.Now().Unix(), hex.EncodeToString(nonce[:]))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// CHT (chttest) and the converter both mediators share, with the follow-up form declared.
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	mapping := fhir.DefaultMapping()
	require.NoError(t, withReferral(mapping))
	chtClient, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername,
		Password: chttest.AdminPassword, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: mediator.Transport(nil)}})
	require.NoError(t, err)
	types, err := chtClient.ContactTypes(ctx) // the demo app's configurable hierarchy, as the mediators load it
	require.NoError(t, err)
	conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht-" + e.suffix + ".example.org", Mapping: mapping,
		ContactTypes: types, Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID}})
	require.NoError(t, err)

	// The EMR's Patient, ServiceRequest and Task on the real FHIR server. The Patient carries the
	// CHT person's id, so fhir-to-cht finds the person.
	patientID := "pt-" + e.suffix
	e.fhir(t, http.MethodPut, "/Patient/"+patientID, map[string]any{"resourceType": "Patient", "id": patientID,
		"identifier": []any{map[string]any{"system": "https://cht-" + e.suffix + ".example.org/medic", "value": chttest.DemoPatientID}}})
	subject := map[string]any{"reference": "Patient/" + patientID}
	srID, taskID := "sr-"+e.suffix, "task-"+e.suffix
	e.fhir(t, http.MethodPut, "/ServiceRequest/"+srID, map[string]any{"resourceType": "ServiceRequest", "id": srID,
		"status": "active", "intent": "order", "subject": subject})
	e.fhir(t, http.MethodPut, "/Task/"+taskID, map[string]any{"resourceType": "Task", "id": taskID, "status": "requested",
		"intent": "order", "for": subject, "basedOn": []any{map[string]any{"reference": "ServiceRequest/" + srID}}})

	// Both mediators on the real core, each behind its own channel and client role.
	toCHT, err := tocht.New(tocht.Config{Converter: conv, CHT: chtClient, FHIRURL: e.fhirURL,
		NotifyEMR: &fhir.TaskSubscription{Endpoint: "https://emr-" + e.suffix + ".example.org/events"}}) // the EMR's endpoint
	require.NoError(t, err)
	emrRole, chtRole := "emr-"+e.suffix, "cht-"+e.suffix
	m := e.e2eMediator(t, "fhir-to-cht", tocht.Definition, toCHT.Handler(), emrRole)
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: e.fhirURL, HTTPClient: &http.Client{Transport: mediator.Transport(nil)}})
	require.NoError(t, err)
	toFHIR, err := push.New(push.Config{Converter: conv, FHIR: fhirClient, CHT: chtClient, Orchestrate: mediator.WithOrchestration})
	require.NoError(t, err)
	e.e2eMediator(t, "cht-to-fhir", chtToFHIRDefinition, toFHIR, chtRole)
	core := m.Client()
	for _, c := range []struct{ id, role string }{{"emr-client-" + e.suffix, emrRole}, {"cht-client-" + e.suffix, chtRole}} {
		openhimtest.CreateClient(t, core, c.id, "pw-"+e.suffix, c.role)
	}

	sendTask := func(id string) (int, string) {
		taskBody, _ := json.Marshal(e.fhir(t, http.MethodGet, "/Task/"+id, nil))
		return openhimtest.Routed(t, 30*time.Second, func() *http.Request {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.router+"/"+e.suffix+tocht.BasePath+"/Task", bytes.NewReader(taskBody))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.SetBasicAuth("emr-client-"+e.suffix, "pw-"+e.suffix)
			return req
		})
	}
	endpoint := "https://emr-" + e.suffix + ".example.org/events"

	// 0. A Task whose CHT write fails leaves no Subscription on the FHIR server.
	failedID := "task-failed-" + e.suffix
	e.fhir(t, http.MethodPut, "/Task/"+failedID, map[string]any{"resourceType": "Task", "id": failedID, "status": "requested",
		"intent": "order", "for": subject})
	remove := chtSrv.InjectFault(chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: http.StatusServiceUnavailable})
	code, got := sendTask(failedID)
	remove()
	require.Equal(t, http.StatusBadGateway, code, "%s", got)
	req, _ := http.NewRequest(http.MethodGet, e.fhirURL+"/Subscription/"+subscriptionIDOf(t, failedID, endpoint), nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, []int{http.StatusNotFound, http.StatusGone}, resp.StatusCode, "the failed Task's Subscription was removed")

	// 1. The EMR sends the Task through OpenHIM; retried once as an EMR would.
	for range 2 {
		code, got := sendTask(taskID)
		require.Less(t, code, 300, "%s", got)
	}
	var record struct {
		Fields map[string]any `json:"fields"`
	}
	reports := chtSrv.Reports("INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1, "one CHT task record for the Task sent twice")
	require.NoError(t, json.Unmarshal(reports[0], &record))
	require.Equal(t, taskID, record.Fields["fhir_task"])
	require.Equal(t, srID, record.Fields["fhir_service_request"])

	// The EMR's Subscription is on the real server (which stores it but sends no notifications).
	subs := e.fhir(t, http.MethodGet, "/Subscription?_id="+subscriptionIDOf(t, taskID, endpoint), nil)
	require.EqualValues(t, 1, subs["total"], "one Subscription for the Task")

	// 2. The CHW's follow-up report, pushed by chttest's pusher through OpenHIM, then replayed.
	reportID := "follow-up-" + e.suffix
	_, err = chtSrv.PutDoc(map[string]any{"_id": reportID, "type": "data_record", "form": followUpForm,
		"reported_date": time.Now().UnixMilli(), "contact": map[string]any{"_id": chttest.DemoCHWID},
		"fields": map[string]any{"patient_uuid": chttest.DemoPatientID,
			"inputs":    map[string]any{"fhir_task": record.Fields["fhir_task"], "contact": map[string]any{"_id": chttest.DemoPatientID}},
			"follow_up": map[string]any{"outcome": "met"}}})
	require.NoError(t, err)
	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "cht_to_fhir",
		URL:      e.router + "/" + e.suffix + push.OutboundPath,
		Username: "cht-client-" + e.suffix, Password: "pw-" + e.suffix, Mapping: map[string]any{"doc": "doc"}, Server: chtSrv})
	require.NoError(t, err)
	att, err := pusher.PushID(ctx, reportID)
	require.NoError(t, err, "answer %d: %s", att.StatusCode, att.Response)
	first := e.fhir(t, http.MethodGet, "/Task/"+taskID, nil)
	for range 2 { // CHT re-sends the same payload after a lost answer
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.router+"/"+e.suffix+push.OutboundPath, bytes.NewReader(att.Payload))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("cht-client-"+e.suffix, "pw-"+e.suffix)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 300, "%s", b)
	}

	// 3. The Task is completed with the Encounter as output, once; the ServiceRequest completed.
	final := e.fhir(t, http.MethodGet, "/Task/"+taskID, nil)
	assert.Equal(t, "completed", final["status"])
	assert.Equal(t, get(first, "meta", "versionId"), get(final, "meta", "versionId"), "replays wrote the Task again")
	encs := e.fhir(t, http.MethodGet, "/Encounter?identifier="+strings.ReplaceAll("https://cht-"+e.suffix+".example.org/medic|"+reportID, "|", "%7C"), nil)
	require.EqualValues(t, 1, encs["total"], "one Encounter for the report")
	encID := get(encs, "entry", 0, "resource", "id")
	outputs, _ := final["output"].([]any)
	require.Len(t, outputs, 1)
	assert.Equal(t, "Encounter/"+fmt.Sprint(encID), get(final, "output", 0, "valueReference", "reference"))
	assert.Equal(t, "ServiceRequest/"+srID, get(encs, "entry", 0, "resource", "basedOn", 0, "reference"))
	assert.Equal(t, "completed", e.fhir(t, http.MethodGet, "/ServiceRequest/"+srID, nil)["status"])

	// 4. The closed Task's Subscription is deleted once it has been closed for longer than asked,
	// with those of 120 more closed Tasks and none of an open one: more than a page (100) of the
	// real server's Subscriptions, which it pages by _offset without next links.
	subscribe := func(id string) {
		_, _, err := fhirClient.SubscribeTask(ctx, id, fhir.TaskSubscription{Endpoint: endpoint})
		require.NoError(t, err)
	}
	for i := range 121 {
		id, status := fmt.Sprintf("task-%d-%s", i, e.suffix), "completed"
		if i == 120 {
			status = "in-progress"
		}
		e.fhir(t, http.MethodPut, "/Task/"+id, map[string]any{"resourceType": "Task", "id": id, "status": status,
			"intent": "order", "for": subject})
		subscribe(id)
	}
	n, err := toCHT.RemoveClosedSubscriptions(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n, "the Tasks closed less than an hour ago keep their Subscriptions")
	n, err = toCHT.RemoveClosedSubscriptions(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 121, n, "the closed Tasks' Subscriptions")
	subs = e.fhir(t, http.MethodGet, "/Subscription?_id="+subscriptionIDOf(t, taskID, endpoint), nil)
	assert.EqualValues(t, 0, subs["total"], "the Subscription is gone from the FHIR server")
	subs = e.fhir(t, http.MethodGet, "/Subscription?url="+url.QueryEscape(endpoint), nil)
	assert.EqualValues(t, 1, subs["total"], "the open Task's Subscription is kept")
}

// subscriptionIDOf finds the Subscription fhir-to-cht made for taskID through the library, which
// derives its id from the Task and the endpoint.
func subscriptionIDOf(t *testing.T, taskID, endpoint string) string {
	t.Helper()
	srv := fhirtest.NewServer(fhirtest.Config{})
	defer srv.Close()
	c, err := fhir.NewClient(fhir.ClientConfig{BaseURL: srv.URL})
	require.NoError(t, err)
	id, _, err := c.SubscribeTask(context.Background(), taskID, fhir.TaskSubscription{Endpoint: endpoint})
	require.NoError(t, err)
	return id
}

func get(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, _ := m.(map[string]any)
			m = mm[k]
		case int:
			a, _ := m.([]any)
			if k >= len(a) {
				return nil
			}
			m = a[k]
		}
	}
	return m
}
