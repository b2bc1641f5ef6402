package tocht_test

// e2e test through the REAL OpenHIM router (openhim-core 4.0.5) and the REAL
// FHIR server of .ci/stack.sh: the bridge registers, installs its channel
// (under a unique path prefix), reads the EMR's Patient from the FHIR server
// and writes to a fake CHT; core stores our orchestrations.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

func TestE2EFHIRToCHTThroughOpenHIM(t *testing.T) {
	api, router := os.Getenv("OPENHIM_API_URL"), strings.TrimRight(os.Getenv("OPENHIM_ROUTER_URL"), "/")
	fhirURL := strings.TrimRight(os.Getenv("FHIR_BASE_URL"), "/")
	if api == "" || router == "" || fhirURL == "" {
		t.Skip("OPENHIM_API_URL / OPENHIM_ROUTER_URL / FHIR_BASE_URL not set; start the stack with: eval \"$(bash .ci/stack.sh start)\"")
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	suffix := fmt.Sprintf("e2e-fhir-to-cht-%d-%s", time.Now().Unix(), hex.EncodeToString(nonce[:]))
	role, clientID, clientPW := "role-"+suffix, "client-"+suffix, "pw-"+suffix
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The EMR's Patient lives on the real FHIR server.
	patientID := "emr-" + suffix
	patient := fmt.Sprintf(`{"resourceType":"Patient","id":%q,
		"identifier":[{"system":"https://emr.example.org/patient-id","value":"MRN-%s"}],
		"name":[{"family":"Wanjiru","given":["Grace"]}],"gender":"female","birthDate":"1992-02-02"}`, patientID, suffix)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fhirURL+"/Patient/"+patientID, strings.NewReader(patient))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "FHIR_BASE_URL is set, so the FHIR server must answer")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, []int{200, 201}, resp.StatusCode, "%s", body)

	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: "https://cht.example.org", Mapping: fhir.DefaultMapping(),
		Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID}})
	require.NoError(t, err)
	chtClient, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername,
		Password: chttest.AdminPassword, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: mediator.Transport(nil)}})
	require.NoError(t, err)
	bridge, err := tocht.New(tocht.Config{Converter: conv, CHT: chtClient, FHIRURL: fhirURL})
	require.NoError(t, err)

	// The shared core gets a unique URN, channel, role and path prefix.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	def := tocht.Definition("127.0.0.1", ln.Addr().(*net.TCPAddr).Port)
	def.URN += ":" + suffix
	def.DefaultChannelConfig[0].Name += " " + suffix
	def.DefaultChannelConfig[0].URLPattern = "^/" + suffix + tocht.BasePath + "(/.*)?$"
	def.DefaultChannelConfig[0].Allow = []string{role}
	m, err := mediator.New(mediator.Config{
		Auth:              mediator.InboundAuth{Open: true},
		Definition:        def,
		Listener:          ln,
		OpenHIM:           openhimtest.RealCore(t),
		InstallChannels:   true,
		HeartbeatInterval: time.Second,
		Handler:           http.StripPrefix("/"+suffix, bridge.Handler()),
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

	routed := func(path, body string) (int, string) {
		return openhimtest.Routed(t, 30*time.Second, func() *http.Request {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, router+"/"+suffix+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.SetBasicAuth(clientID, clientPW)
			return req
		})
	}

	// The Patient, then a ServiceRequest that refers to it as Patient/<id>
	// (resolved through the FHIR server), sent twice.
	code, got := routed("/fhir/Patient", patient)
	require.Equal(t, http.StatusCreated, code, "%s", got)
	personID := bridge.PersonID("https://emr.example.org/patient-id|MRN-" + suffix)
	_, ok := chtSrv.Doc(personID)
	require.True(t, ok, "CHT person created")

	sr := fmt.Sprintf(`{"resourceType":"ServiceRequest","id":"ltfu-%s","status":"active","intent":"order",
		"subject":{"reference":"Patient/%s"},"reasonCode":[{"text":"Missed visit"}]}`, suffix, patientID)
	for _, want := range []int{http.StatusCreated, http.StatusOK} {
		code, got = routed("/fhir/ServiceRequest", sr)
		require.Equal(t, want, code, "%s", got)
	}
	reports := chtSrv.Reports("INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1)
	assert.Contains(t, string(reports[0]), personID)

	// CHT down: core answers the EMR non-2xx; the retry writes nothing twice.
	sr2 := strings.Replace(sr, "ltfu-", "ltfu2-", 1)
	remove := chtSrv.InjectFault(chttest.Fault{Path: "/medic/*", Status: http.StatusServiceUnavailable})
	code, got = routed("/fhir/ServiceRequest", sr2)
	remove()
	assert.Equal(t, http.StatusBadGateway, code, "%s", got)
	assert.Contains(t, got, "transient")
	code, got = routed("/fhir/ServiceRequest", sr2)
	require.Equal(t, http.StatusCreated, code, "%s", got)
	assert.Len(t, chtSrv.Reports("INTEROP_FOLLOW_UP"), 2)

	// Core stored our orchestrations for the first ServiceRequest. Core may
	// answer the client before it stores the response and orchestrations
	// (src/middleware/messageStore.js, koaMiddleware, calls storeResponse
	// without awaiting it), so wait until no transaction is "Processing".
	var txs []struct {
		Status         string
		Orchestrations []struct{ Name string }
	}
	q := url.Values{"filterRepresentation": {"full"}, "filterLimit": {"10"},
		"filters": {fmt.Sprintf(`{"request.path":%q}`, "/"+suffix+"/fhir/ServiceRequest")}}
	require.Eventually(t, func() bool {
		if core.Do(ctx, http.MethodGet, "/transactions?"+q.Encode(), nil, &txs) != nil || len(txs) < 4 {
			return false
		}
		for _, tx := range txs {
			if tx.Status == "Processing" {
				return false
			}
		}
		return true
	}, 45*time.Second, 300*time.Millisecond, "transactions stored with their responses")
	var names [][]string
	for _, tx := range txs {
		var n []string
		for _, o := range tx.Orchestrations {
			n = append(n, o.Name)
		}
		names = append(names, n)
	}
	// The report is read while planning, as its Task may have raised it.
	assert.Contains(t, fmt.Sprint(names), "FHIR read subject CHT read report CHT read subject CHT create report",
		"the first ServiceRequest's calls, in order")
}
