package outbound_test

import (
	"bytes"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// The CHT version matters only for pushes with a cron: app settings
// without any are read without GET /api/deploy-info. The settings answer
// slowly here, so that a detection started alongside them would be
// answered (and recorded) before they are.
func TestWatchDetectsVersionOnlyForCrons(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	srv := chttest.NewDemoServer()
	t.Cleanup(srv.Close)
	settings, err := os.ReadFile("testdata/app_settings_live.json") // "live" has no cron
	if err != nil {
		t.Fatal(err)
	}
	configure(t, srv, settings)
	t.Cleanup(srv.InjectFault(chttest.Fault{Method: http.MethodGet, Path: "/api/v1/settings", Latency: 200 * time.Millisecond}))
	srv.ResetRequests()
	reg := prometheus.NewRegistry()
	reg.MustRegister(outbound.NewWatch(newAdmin(t, srv, ""), outbound.WatchConfig{Now: clk.now}))
	for range 3 {
		if got := gauge(t, reg, "cht_outbound_queue_configured_known", ""); got != 1 {
			t.Fatalf("configured_known = %v, want 1", got)
		}
		clk.add(5 * time.Minute) // the settings are read again
	}
	// A request the Watch gave up on would be recorded once answered.
	time.Sleep(300 * time.Millisecond)
	if n := countRequests(srv, "/api/v1/settings"); n != 3 {
		t.Errorf("%d reads of /api/v1/settings, want 3", n)
	}
	if n := countRequests(srv, "/api/deploy-info"); n != 0 {
		t.Errorf("%d reads of /api/deploy-info, want none: no push has a cron", n)
	}
}

// watchGoroutines counts the goroutines running a method of the Watch.
func watchGoroutines(t *testing.T) int {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
		t.Fatal(err)
	}
	n := 0
	for g := range strings.SplitSeq(buf.String(), "\n\n") {
		if strings.Contains(g, "cht/outbound.(*Watch).") {
			n++
		}
	}
	return n
}

// When CHT hangs, the reads of the settings and the version a scrape
// starts end with it (they share its Timeout): scrapes that keep finding
// CHT hanging do not pile them up.
func TestWatchReadsEndWithTheScrape(t *testing.T) {
	tests := []struct {
		name  string
		path  string // that hangs
		learn bool   // Configured given, Scheduled learned
	}{
		{"settings hang", "/api/v1/settings", false},
		{"settings hang, only Scheduled learned", "/api/v1/settings", true},
		{"version detection hangs", "/api/deploy-info", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, clk, _ := scheduledFixture(t, "5.2.0", true)
			t.Cleanup(srv.InjectFault(chttest.Fault{Method: http.MethodGet, Path: tt.path, Latency: time.Hour}))
			cfg := outbound.WatchConfig{Now: clk.now, Timeout: 500 * time.Millisecond}
			if tt.learn {
				cfg.Configured = []string{"nightly", "live"}
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(outbound.NewWatch(newAdmin(t, srv, ""), cfg))
			for i := range 3 {
				if _, err := reg.Gather(); err != nil {
					t.Fatal(err)
				}
				n := watchGoroutines(t)
				for deadline := time.Now().Add(5 * time.Second); n > 0 && time.Now().Before(deadline); n = watchGoroutines(t) {
					time.Sleep(10 * time.Millisecond)
				}
				if n > 0 {
					t.Fatalf("scrape %d: %d goroutines of the Watch still run after it", i, n)
				}
				clk.add(5 * time.Minute)
			}
		})
	}
}
