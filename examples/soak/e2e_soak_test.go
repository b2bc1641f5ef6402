package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// faultProxy is a reverse proxy in front of a real FHIR server that fails a
// share of the writes: answered 503 without forwarding, held until the
// client gives up without forwarding (timeout), or forwarded and then
// answered 504 (the write is applied, the answer lost).
type faultProxy struct {
	proxy              *httputil.ReverseProxy
	fail, hang, lose   float64
	mu                 sync.Mutex
	rnd                *rand.Rand
	writes, faulted    atomic.Int64
	hangFor            time.Duration
	failed, hung, lost atomic.Int64
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		p.proxy.ServeHTTP(w, r)
		return
	}
	p.writes.Add(1)
	p.mu.Lock()
	x := p.rnd.Float64()
	p.mu.Unlock()
	switch {
	case x < p.fail:
		p.faulted.Add(1)
		p.failed.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"injected failure"}]}`)
	case x < p.fail+p.hang:
		p.faulted.Add(1)
		p.hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(p.hangFor):
		}
		w.WriteHeader(http.StatusGatewayTimeout)
	case x < p.fail+p.hang+p.lose:
		p.faulted.Add(1)
		p.lost.Add(1)
		rec := httptest.NewRecorder()
		p.proxy.ServeHTTP(rec, r)
		w.WriteHeader(http.StatusGatewayTimeout)
	default:
		p.proxy.ServeHTTP(w, r)
	}
}

// TestE2EFaultsRealCore pushes about 50 payloads through the real OpenHIM
// core's router to the cht-to-fhir mediator, which writes to the real FHIR
// server through a proxy that fails 30% of the writes, and checks on the
// real server that every expected resource is there exactly once.
func TestE2EFaultsRealCore(t *testing.T) {
	api, router := os.Getenv("OPENHIM_API_URL"), os.Getenv("OPENHIM_ROUTER_URL")
	user, pass, fhirBase := os.Getenv("OPENHIM_USERNAME"), os.Getenv("OPENHIM_PASSWORD"), os.Getenv("FHIR_BASE_URL")
	if api == "" || router == "" || user == "" || pass == "" || fhirBase == "" {
		t.Skip("OPENHIM_API_URL, OPENHIM_ROUTER_URL, OPENHIM_USERNAME, OPENHIM_PASSWORD and FHIR_BASE_URL are not set (see .ci/README.md)")
	}
	run := fmt.Sprintf("soak%d", time.Now().UnixNano())

	target, err := url.Parse(fhirBase)
	require.NoError(t, err)
	fp := &faultProxy{fail: 0.15, hang: 0.08, lose: 0.07, hangFor: time.Second, rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
	fp.proxy = httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	fp.proxy.ErrorLog = log.New(io.Discard, "", 0) // errors are 502 answers the mediator reports
	proxySrv := httptest.NewServer(fp)
	t.Cleanup(proxySrv.Close)

	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1, Seed: 3})
	t.Cleanup(chtSrv.Close)
	stats, err := chtSrv.SeedSynthetic(chttest.Synthetic{Households: 6, PeoplePerHousehold: 3, ReportsPerPerson: 2, Seed: 13})
	require.NoError(t, err)
	// Identifiers and ids unique to this run: the CHT instance URL names them.
	instance := "https://" + run + ".cht.example.org"
	h, conv := newBridge(t, bridgeConfig{InstanceURL: instance, CHTURL: chtSrv.URL, CHTUser: chttest.AdminUsername,
		CHTPassword: chttest.AdminPassword, FHIRURL: proxySrv.URL + target.Path})
	chtSrv.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: http.StatusServiceUnavailable, Probability: 0.2})

	// A channel of this run: path prefix, URN and names unique, public so
	// that no router client is needed.
	prefix := "/" + run
	m, _ := newMediatorDef(t, http.StripPrefix(prefix, h), openhimtest.RealCore(t), func(port int) openhim.Definition {
		def := chtToFHIRDefinition("127.0.0.1", port)
		def.URN += "-" + run
		def.Name += " " + run
		def.Endpoints[0].Name += " " + run
		ch := &def.DefaultChannelConfig[0]
		ch.Name += " " + run
		ch.URLPattern = "^" + prefix + "/cht/(outbound|encounter)$"
		ch.AuthType, ch.Allow = "public", nil
		ch.Routes = def.Endpoints
		return def
	})
	runMediator(t, m)

	// Wait until core routes the channel (its cache refreshes every ~1 s).
	require.Eventually(t, func() bool {
		resp, err := http.Post(router+prefix+push.OutboundPath, "application/json", strings.NewReader(`{}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusBadRequest // the mediator's answer to an empty push
	}, 60*time.Second, 250*time.Millisecond, "channel routable")

	p, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: run, URL: router + prefix + push.OutboundPath,
		RelevantTo: relevant, Map: mixedPayload, Server: chtSrv, RetryInterval: 100 * time.Millisecond, Timeout: 20 * time.Second})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pdone := make(chan error, 1)
	go func() { pdone <- p.Run(ctx) }()
	ids := append(append([]string{}, stats.PersonIDs...), stats.ReportIDs...)
	require.Eventually(t, func() bool { return pushedAll([]*chttest.OutboundPusher{p}, ids) && len(p.Queue()) == 0 },
		4*time.Minute, 100*time.Millisecond, "every payload delivered")
	cancel()
	require.NoError(t, <-pdone)
	t.Logf("%d docs, %d failed push attempts; proxy: %d writes, %d faulted (%d failed, %d timed out, %d lost answers)",
		len(ids), p.CountOutcome(chttest.OutcomeFailed), fp.writes.Load(), fp.faulted.Load(), fp.failed.Load(), fp.hung.Load(), fp.lost.Load())
	assert.Positive(t, fp.faulted.Load(), "faults were injected")

	// On the real server: each expected resource exists, and its CHT
	// identifier finds exactly one resource.
	client := &http.Client{Timeout: 30 * time.Second}
	checked := 0
	for key, ident := range expectedIdentifiers(t, chtSrv, conv, allDocIDs(t, chtSrv)) {
		typ, _, _ := strings.Cut(key, "/")
		resp, err := client.Get(fhirBase + "/" + key)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s lost", key)
		if ident == "" {
			continue
		}
		q := url.Values{"identifier": {ident}}
		resp, err = client.Get(fhirBase + "/" + typ + "?" + q.Encode())
		require.NoError(t, err)
		var bundle struct {
			Entry []json.RawMessage `json:"entry"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&bundle))
		resp.Body.Close()
		assert.Len(t, bundle.Entry, 1, "%s?identifier=%s: duplicates or lost", typ, ident)
		checked++
	}
	assert.Positive(t, checked)
}

// expectedIdentifiers maps each expected resource ("Type/id") to its first
// identifier as system|value ("" when it has none).
func expectedIdentifiers(t testing.TB, srv *chttest.Server, conv *fhir.Converter, ids []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tx := range expectedTransactions(t, srv, conv, ids) {
		for _, e := range tx.Entries {
			data, err := fhir.Marshal(e.Resource)
			require.NoError(t, err)
			var r struct {
				Identifier []struct{ System, Value string } `json:"identifier"`
			}
			require.NoError(t, json.Unmarshal(data, &r))
			out[e.Request.Url] = ""
			if len(r.Identifier) > 0 {
				out[e.Request.Url] = r.Identifier[0].System + "|" + r.Identifier[0].Value
			}
		}
	}
	return out
}
