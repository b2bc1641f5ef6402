package outbound_test

import (
	"net/http"
	"os"
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
