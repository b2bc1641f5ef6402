package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// loadResult is what load measured at one request rate.
type loadResult struct {
	Rate       int           // requests per second offered
	Sent, OK   int           // requests sent and answered 2xx
	Throughput float64       // 2xx answers per second over the run
	P50, P99   time.Duration // latency from the scheduled send time
	Max        time.Duration
}

// load offers rate requests per second for d (open loop: each request is
// sent at its scheduled time whether or not earlier ones were answered, and
// latency counts from that time, so a slow server cannot hide its queue) and
// measures the answers.
func load(ctx context.Context, client *http.Client, rate int, d time.Duration, newReq func() *http.Request) loadResult {
	n := int(float64(rate) * d.Seconds())
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				n = i
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Do(newReq().WithContext(ctx))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok[i] = resp.StatusCode/100 == 2
			}
			lat[i] = time.Since(at)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	lat, ok = lat[:n], ok[:n]
	res := loadResult{Rate: rate, Sent: n}
	for _, v := range ok {
		if v {
			res.OK++
		}
	}
	res.Throughput = float64(res.OK) / elapsed.Seconds()
	if n > 0 {
		slices.Sort(lat)
		res.P50, res.P99, res.Max = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	}
	return res
}

// loadTarget is a mediator under load.
type loadTarget struct {
	name   string
	url    string
	body   []byte
	client *http.Client
}

func (lt loadTarget) request() *http.Request {
	req, _ := http.NewRequest(http.MethodPost, lt.url, bytes.NewReader(lt.body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// loadTargets starts, standalone on loopback: the cht-to-fhir mediator
// writing each pushed report to fhirtest as a transaction, and a mediator
// whose handler answers at once (what the library itself costs per
// request).
func loadTargets(t testing.TB) []loadTarget {
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1})
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{RequestLog: -1})
	t.Cleanup(fhirSrv.Close)
	logger := slog.New(slog.DiscardHandler)

	h, _ := newBridge(t, bridgeConfig{CHTURL: chtSrv.URL, CHTUser: chttest.AdminUsername,
		CHTPassword: chttest.AdminPassword, FHIRURL: fhirSrv.URL})
	m, base := newMediator(t, h, openhim.Config{}, -1, logger)
	runMediator(t, m)
	doc, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	push, err := json.Marshal(map[string]any{"doc": doc})
	require.NoError(t, err)

	echo := mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return nil, err
		}
		return mediator.JSONResult(http.StatusOK, map[string]string{"status": "ok"})
	})
	em, ebase := newMediator(t, echo, openhim.Config{}, -1, logger)
	runMediator(t, em)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 512
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return []loadTarget{
		{name: "mediator, empty handler", url: ebase + "/echo", body: push, client: client},
		{name: "cht-to-fhir /cht/outbound → FHIR transaction", url: base + "/cht/outbound", body: push, client: client},
	}
}

// TestLoadGenerator checks the load generator at a low rate (CI); the
// table at higher rates is TestLoadTable (build tag soak).
func TestLoadGenerator(t *testing.T) {
	for _, lt := range loadTargets(t) {
		res := load(context.Background(), lt.client, 50, 400*time.Millisecond, lt.request)
		assert.Equal(t, 20, res.Sent, lt.name)
		assert.Equal(t, res.Sent, res.OK, "%s: every request answered 2xx", lt.name)
		assert.LessOrEqual(t, res.P50, res.P99)
		assert.LessOrEqual(t, res.P99, res.Max)
	}
}
