package soak

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// Router client CHT's outbound push authenticates as.
const (
	routerClient   = "cht"
	routerPassword = "cht-router-secret"
)

// payloads returns SOAK_N, or def.
func payloads(t testing.TB, def int) int {
	if v := os.Getenv("SOAK_N"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "SOAK_N")
		return n
	}
	return def
}

// The cht-to-fhir mediator's identity, as examples/cht-to-fhir/main.go
// registers it.
const (
	chtToFHIRURN = "urn:mediator:cht-to-fhir"
	chtRole      = "cht"
)

// chtToFHIRDefinition is the registration of examples/cht-to-fhir reachable
// at 127.0.0.1 (or host) and port.
func chtToFHIRDefinition(host string, port int) openhim.Definition {
	route := openhim.Route{Name: "CHT to FHIR mediator", Type: "http", Host: host, Port: port, Primary: true}
	return openhim.Definition{
		URN: chtToFHIRURN, Version: "1.0.0", Name: "CHT to FHIR",
		Description: "Converts CHT outbound pushes to FHIR R4 transaction Bundles",
		Endpoints:   []openhim.Route{route},
		DefaultChannelConfig: []openhim.Channel{{
			Name: "CHT to FHIR", URLPattern: "^/cht/(outbound|encounter)$", Type: "http", AuthType: "private",
			Methods: []string{"POST"}, Allow: []string{chtRole}, Routes: []openhim.Route{route},
		}},
	}
}

// newCore starts a fake OpenHIM core with the router client CHT uses.
func newCore(t testing.TB, cfg openhimtest.Config) *openhimtest.Server {
	core := openhimtest.NewServer(cfg)
	t.Cleanup(core.Close)
	core.AddClient(routerClient, routerPassword, chtRole)
	return core
}

// bridgeConfig configures newBridge.
type bridgeConfig struct {
	InstanceURL                     string // names identifiers and ids; "" means CHTURL
	CHTURL, CHTUser, CHTPassword    string
	FHIRURL, FHIRUser, FHIRPassword string
	CHTClient                       *http.Client // transport for CHT (nil: default)
	Logger                          *slog.Logger
}

// newBridge wires fhir/push as examples/cht-to-fhir/main.go does, with fast
// CHT retries for tests.
func newBridge(t testing.TB, bc bridgeConfig) (http.Handler, *fhir.Converter) {
	t.Helper()
	mapping := fhir.DefaultMapping()
	instance := bc.InstanceURL
	if instance == "" {
		instance = bc.CHTURL
	}
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: instance, Mapping: mapping})
	require.NoError(t, err)
	hc := &http.Client{Transport: mediator.Transport(nil)}
	if bc.CHTClient != nil {
		hc = &http.Client{Transport: mediator.Transport(bc.CHTClient.Transport)}
	}
	chtClient, err := cht.New(cht.Config{URL: bc.CHTURL, Username: bc.CHTUser, Password: string(bc.CHTPassword),
		Logger: bc.Logger, HTTPClient: hc, Timeout: 2 * time.Second,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	require.NoError(t, err)
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: bc.FHIRURL, Username: bc.FHIRUser, Password: bc.FHIRPassword,
		HTTPClient: &http.Client{Transport: mediator.Transport(nil)}, Timeout: 5 * time.Second, Logger: bc.Logger})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: conv, FHIR: fhirClient, CHT: chtClient,
		Orchestrate: mediator.WithOrchestration, Logger: bc.Logger})
	require.NoError(t, err)
	return h, conv
}

// newMediator builds the cht-to-fhir mediator serving h on a loopback
// port, registered with the core of oh (none when oh.URL is "").
func newMediator(t testing.TB, h http.Handler, oh openhim.Config, heartbeat time.Duration, logger *slog.Logger) (*mediator.Mediator, string) {
	return newMediatorConfig(t, h, oh, heartbeat, logger, func(port int) openhim.Definition {
		return chtToFHIRDefinition("127.0.0.1", port)
	})
}

// newMediatorDef is newMediator with a definition of its own, a 200 ms
// heartbeat and discarded logs.
func newMediatorDef(t testing.TB, h http.Handler, oh openhim.Config, def func(port int) openhim.Definition) (*mediator.Mediator, string) {
	return newMediatorConfig(t, h, oh, 200*time.Millisecond, slog.New(slog.DiscardHandler), def)
}

func newMediatorConfig(t testing.TB, h http.Handler, oh openhim.Config, heartbeat time.Duration, logger *slog.Logger,
	def func(port int) openhim.Definition) (*mediator.Mediator, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	m, err := mediator.New(mediator.Config{
		Auth:              mediator.InboundAuth{Open: true},
		Definition:        def(port),
		Listener:          ln,
		OpenHIM:           oh,
		HeartbeatInterval: heartbeat,
		InstallChannels:   true,
		Handler:           h,
		Logger:            logger,
		ReadTimeout:       2 * time.Second,
		ReadHeaderTimeout: time.Second,
	})
	require.NoError(t, err)
	return m, "http://" + ln.Addr().String()
}

// runMediator runs m until the test ends.
func runMediator(t testing.TB, m *mediator.Mediator) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("mediator: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("mediator did not stop")
		}
	})
}

// relevant is the outbound relevance of the cht-to-fhir example: reports and
// people.
func relevant(doc map[string]any) bool {
	switch doc["type"] {
	case "data_record":
		return true
	case "person":
		return true
	case "contact":
		return doc["contact_type"] == "person"
	}
	return false
}

// mixedPayload sends half the docs whole ({"doc": doc}) and half as a
// reference the mediator resolves with CHT's hydrate API ({"id", "rev"}), so
// that hydrate faults are on the path.
func mixedPayload(doc map[string]any) (any, error) {
	id, _ := doc["_id"].(string)
	if share(doc, 7)%2 == 0 {
		return map[string]any{"doc": doc}, nil
	}
	return map[string]any{"id": id, "rev": doc["_rev"]}, nil
}

// share assigns a doc to one of n shares by a hash of its id.
func share(doc map[string]any, n int) int {
	id, _ := doc["_id"].(string)
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// expectedResources converts every relevant doc of the fake CHT as the
// mediator would and returns the ids ("Type/id") the FHIR store must hold.
// It keeps only the ids, not the transactions (a long run has 100,000).
func expectedResources(t testing.TB, srv *chttest.Server, conv *fhir.Converter, ids []string) map[string]bool {
	t.Helper()
	want := map[string]bool{}
	eachExpected(t, srv, conv, ids, func(tx *fhir.Transaction) {
		for _, e := range tx.Entries {
			want[e.Request.Url] = true
		}
	})
	return want
}

// expectedTransactions converts every relevant doc as the mediator would.
func expectedTransactions(t testing.TB, srv *chttest.Server, conv *fhir.Converter, ids []string) []*fhir.Transaction {
	t.Helper()
	var txs []*fhir.Transaction
	eachExpected(t, srv, conv, ids, func(tx *fhir.Transaction) { txs = append(txs, tx) })
	return txs
}

// eachExpected calls fn with the transaction of every relevant doc.
func eachExpected(t testing.TB, srv *chttest.Server, conv *fhir.Converter, ids []string, fn func(*fhir.Transaction)) {
	t.Helper()
	for _, id := range ids {
		doc, ok := srv.HydratedDoc(id)
		require.True(t, ok, id)
		if !relevant(doc) {
			continue
		}
		raw, err := json.Marshal(doc)
		require.NoError(t, err)
		hd := cht.HydratedDoc{ID: id, Doc: raw}
		var tx *fhir.Transaction
		if hd.Type() == "data_record" {
			r, err := hd.Report()
			require.NoError(t, err)
			tx, err = conv.ReportBundle(r)
			require.NoError(t, err, id)
		} else {
			c, err := hd.Contact()
			require.NoError(t, err)
			tx, err = conv.ContactBundle(c)
			require.NoError(t, err, id)
		}
		fn(tx)
	}
}

// storedResources returns the ids ("Type/id") in the FHIR store, and the
// number of resources sharing a CHT identifier with another one of the same
// type (duplicates).
func storedResources(t testing.TB, srv *fhirtest.Server) (map[string]bool, int) {
	t.Helper()
	got := map[string]bool{}
	dups := 0
	for typ := range srv.Counts() {
		seen := map[string]bool{}
		for _, raw := range srv.Resources(typ) {
			var r struct {
				ID         string `json:"id"`
				Identifier []struct {
					System, Value string
				} `json:"identifier"`
			}
			require.NoError(t, json.Unmarshal(raw, &r))
			got[typ+"/"+r.ID] = true
			for _, id := range r.Identifier {
				key := id.System + "|" + id.Value
				if seen[key] {
					dups++
				}
				seen[key] = true
			}
		}
	}
	return got, dups
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
