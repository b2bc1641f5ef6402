package main

// e2e test through the REAL OpenHIM core 4.0.5 and the REAL FHIR server of
// .ci/stack.sh: the mediator registers and installs its channel, CHT's
// outbound push (chttest.OutboundPusher) goes through core's router, the
// bundle reaches the FHIR server once, and core stores our orchestrations.
// Then the FHIR server becomes unreachable: the push fails with a non-2xx
// answer, CHT queues it, and the retry succeeds without duplicates.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

func TestE2ECHTToFHIRThroughOpenHIM(t *testing.T) {
	api, router := os.Getenv("OPENHIM_API_URL"), strings.TrimRight(os.Getenv("OPENHIM_ROUTER_URL"), "/")
	fhirURL := strings.TrimRight(os.Getenv("FHIR_BASE_URL"), "/")
	if api == "" || router == "" || fhirURL == "" {
		t.Skip("OPENHIM_API_URL / OPENHIM_ROUTER_URL / FHIR_BASE_URL not set; start the stack with: eval \"$(bash .ci/stack.sh start)\"")
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	suffix := fmt.Sprintf("e2e-cht-to-fhir-%d-%s", time.Now().Unix(), hex.EncodeToString(nonce[:]))
	role, clientID, clientPW := "role-"+suffix, "client-"+suffix, "pw-"+suffix
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The FHIR server is reached through a proxy the test can cut.
	target, err := url.Parse(fhirURL)
	require.NoError(t, err)
	proxy := newSwitchableProxy(t, target.Host)
	viaProxy := *target
	viaProxy.Host = proxy.addr

	// A CHT instance name unique to the run keeps our identifiers apart from
	// other tests' on the shared FHIR server.
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: "https://" + suffix + ".cht.example.org", Mapping: fhir.DefaultMapping()})
	require.NoError(t, err)
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: viaProxy.String(), HTTPClient: &http.Client{Transport: mediator.Transport(nil)}})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: conv, FHIR: fc, Timeout: 5 * time.Second, Orchestrate: mediator.WithOrchestration})
	require.NoError(t, err)

	// The shared core gets a unique URN, channel, role and path prefix.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := Settings{Mediator: settings.Default()}
	s.PublicHost, s.Listen = "127.0.0.1", ln.Addr().String()
	def, err := definition(s)
	require.NoError(t, err)
	def.URN += ":" + suffix
	def.DefaultChannelConfig[0].Name += " " + suffix
	def.DefaultChannelConfig[0].URLPattern = "^/" + suffix + "/cht/(outbound|encounter)$"
	def.DefaultChannelConfig[0].Allow = []string{role}
	m, err := mediator.New(mediator.Config{
		Auth:              mediator.InboundAuth{Open: true},
		Definition:        def,
		Listener:          ln,
		OpenHIM:           openhimtest.RealCore(t),
		InstallChannels:   true,
		HeartbeatInterval: time.Second,
		Handler:           http.StripPrefix("/"+suffix, h),
		Logger:            slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		assert.NoError(t, <-done)
	})
	require.Eventually(t, m.Ready, 30*time.Second, 100*time.Millisecond, "registered with core")

	core := m.Client()
	openhimtest.CreateClient(t, core, clientID, clientPW, role)

	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{
		Name: "cht_to_fhir", URL: router + "/" + suffix + push.OutboundPath,
		Username: clientID, Password: clientPW,
		Mapping: map[string]any{"doc": "doc"}, Server: chtSrv,
	})
	require.NoError(t, err)
	report, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)

	// The channel and client become routable after core's cache refresh:
	// until then the router answers 401 (core 4.x) or 404 (core 7.0.1 and later).
	var att chttest.Attempt
	require.Eventually(t, func() bool {
		att, err = pusher.Push(ctx, report)
		return err == nil || (att.StatusCode != http.StatusUnauthorized && att.StatusCode != http.StatusNotFound)
	}, 30*time.Second, 500*time.Millisecond, "routable")
	require.NoError(t, err, "first push: %d %s", att.StatusCode, att.Response)
	if len(pusher.Queue()) > 0 { // a 401 or 404 while waiting queued the doc; the retry is a resend of the same payload
		require.NoError(t, pusher.RunQueue(ctx))
	}
	require.Empty(t, pusher.Queue())

	fhirGet := func(path string) (int, map[string]any) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fhirURL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	encounterID := conv.ID("Encounter", chttest.DemoHeightWeightReportID)
	expectOnce := func(stage string) {
		t.Helper()
		code, enc := fhirGet("/Encounter/" + encounterID)
		require.Equal(t, http.StatusOK, code, "%s: Encounter stored", stage)
		ident := conv.Systems().DocumentID + "|" + chttest.DemoHeightWeightReportID
		_, found := fhirGet("/Encounter?identifier=" + url.QueryEscape(ident))
		assert.EqualValues(t, 1, found["total"], "%s: one Encounter for the report", stage)
		_, obs := fhirGet("/Observation?encounter=" + url.QueryEscape("Encounter/"+encounterID))
		assert.EqualValues(t, 2, obs["total"], "%s: height and weight, once each", stage)
		_, pats := fhirGet("/Patient?identifier=" + url.QueryEscape(conv.Systems().DocumentID+"|"+chttest.DemoPatientID))
		assert.EqualValues(t, 1, pats["total"], "%s: one Patient", stage)
		assert.Equal(t, "finished", enc["status"])
	}
	expectOnce("after the first push")

	// Core stored the transaction with our orchestrations.
	var txs []struct {
		Status         string
		Orchestrations []struct{ Name string }
	}
	q := url.Values{"filterRepresentation": {"full"}, "filterLimit": {"10"},
		"filters": {fmt.Sprintf(`{"request.path":%q}`, "/"+suffix+push.OutboundPath)}}
	require.Eventually(t, func() bool {
		if core.Do(ctx, http.MethodGet, "/transactions?"+q.Encode(), nil, &txs) != nil {
			return false
		}
		for _, tx := range txs {
			if tx.Status == "Successful" && len(tx.Orchestrations) > 0 && tx.Orchestrations[0].Name == "FHIR transaction" {
				return true
			}
		}
		return false
	}, 45*time.Second, 300*time.Millisecond, "a Successful transaction with the FHIR orchestration: %+v", txs)

	// The FHIR server goes away; CHT edits the report, so it pushes again.
	proxy.setDown(true)
	raw, ok := chtSrv.Doc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	doc["fields"].(map[string]any)["weight"] = 71.5
	_, err = chtSrv.PutDoc(doc)
	require.NoError(t, err)
	edited, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	att, err = pusher.Push(ctx, edited)
	require.Error(t, err, "the push fails while the FHIR server is unreachable")
	assert.GreaterOrEqual(t, att.StatusCode, 500, "non-2xx, so CHT retries: %s", att.Response)
	assert.Equal(t, []string{chttest.DemoHeightWeightReportID}, pusher.Queue(), "queued for CHT's retry")

	// It comes back; CHT's retry succeeds and nothing is duplicated.
	proxy.setDown(false)
	require.NoError(t, pusher.RunQueue(ctx))
	assert.Empty(t, pusher.Queue())
	expectOnce("after the retry")
	code, weight := fhirGet("/Observation/" + conv.ID("Observation", chttest.DemoHeightWeightReportID, "weight"))
	require.Equal(t, http.StatusOK, code)
	assert.EqualValues(t, 71.5, weight["valueQuantity"].(map[string]any)["value"], "the retried push carried the edit")
}

// switchableProxy forwards TCP connections to a target until it is set
// down; then it refuses new connections and cuts open ones.
type switchableProxy struct {
	addr   string
	target string
	mu     sync.Mutex // guards down and conns
	down   bool
	conns  map[net.Conn]struct{}
}

func newSwitchableProxy(t *testing.T, target string) *switchableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &switchableProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *switchableProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
}

func (p *switchableProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}
