package cht_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// testClock is a clock that tests move on.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := new(testClock)
	c.ns.Store(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func countGets(srv *chttest.Server, path string) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet && r.Path == path {
			n++
		}
	}
	return n
}

// listsPeople reports whether c lists people through GET
// /api/v1/person?type= (CHT 4.11 and later) rather than answering
// ErrUnsupported (before 4.11, which has no listing).
func listsPeople(t *testing.T, c *cht.Client) bool {
	t.Helper()
	for _, err := range c.Contacts.All(context.Background(), cht.ListOptions{Type: "person"}) {
		if errors.Is(err, cht.ErrUnsupported) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	return true
}

// CHT upgraded from 4.10 to 4.11 under a running client: the version
// detected with GET /api/deploy-info serves 10 minutes, then the client
// detects it again and uses the routes of the new release (the person
// listing, from 4.11), without a restart. The API answers the new release
// once the upgrade is done (api/src/routing.js answers deployInfo.get(),
// shared-libs/server-info getDeployInfo; cht-core 5.x
// api/src/services/setup/upgrade-steps.js finalize reads it again, and a
// 4.x upgrade starts a new API). A detection again that fails keeps the
// version last detected (a WARN line, once until one succeeds) and is not
// retried before another 10 minutes. Config.Version is never detected.
func TestClientLearnsUpgradeWhileRunning(t *testing.T) {
	srv := chttest.NewDemoServer(chttest.Config{Version: "4.10.0"})
	t.Cleanup(srv.Close)
	clk := newTestClock()
	var logs bytes.Buffer
	c, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword, MaxRetries: 2,
		RetryWaitMin: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	cht.SetClock(c, clk.now)
	pinned, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword, Version: "4.10.0"})
	if err != nil {
		t.Fatal(err)
	}
	cht.SetClock(pinned, clk.now)
	var removeFault func()
	steps := []struct {
		name    string
		advance time.Duration
		do      func()
		lists   bool
		detects int // GET /api/deploy-info
		log     string
	}{
		{"on 4.10.0", 0, nil, false, 1, ""},
		{"upgraded, detected 9 minutes ago", 9 * time.Minute, func() {
			if err := srv.SetVersion("4.11.0"); err != nil {
				t.Fatal(err)
			}
		}, false, 0, ""},
		{"detected 10 minutes ago", time.Minute, nil, true, 1, `level=INFO msg="cht: the CHT version changed" was=4.10.0 version=4.11.0`},
		{"kept", 9 * time.Minute, nil, true, 0, ""},
		{"detection fails: 4.11.0 kept", 2 * time.Minute, func() {
			removeFault = srv.InjectFault(chttest.Fault{Method: http.MethodGet, Path: "/api/deploy-info", Status: http.StatusServiceUnavailable})
		}, true, 1, `level=WARN msg="cht: the CHT version cannot be detected again; the version last detected stays in use until it can" version=4.11.0`},
		{"not tried again within 10 minutes", 9 * time.Minute, nil, true, 0, ""},
		{"fails again, logged once", time.Minute, nil, true, 1, ""},
		{"detected again", 10 * time.Minute, func() { removeFault() }, true, 1, `level=INFO msg="cht: the CHT version detected again" version=4.11.0`},
	}
	for _, st := range steps {
		clk.add(st.advance)
		if st.do != nil {
			st.do()
		}
		logs.Reset()
		before := countGets(srv, "/api/deploy-info")
		if got := listsPeople(t, c); got != st.lists {
			t.Errorf("%s: lists people = %v, want %v", st.name, got, st.lists)
		}
		if listsPeople(t, pinned) {
			t.Errorf("%s: the client with Config.Version 4.10.0 lists people", st.name)
		}
		if n := countGets(srv, "/api/deploy-info") - before; n != st.detects {
			t.Errorf("%s: %d reads of /api/deploy-info, want %d", st.name, n, st.detects)
		}
		if got := strings.TrimSpace(logs.String()); (st.log == "") != (got == "") || !strings.Contains(got, st.log) {
			t.Errorf("%s: logs = %q, want %q", st.name, got, st.log)
		}
	}
}

// Callers that find the version due at once detect it once between them:
// the others go on with the version they have (go test -race).
func TestClientDetectsAgainOnce(t *testing.T) {
	srv := chttest.NewDemoServer(chttest.Config{Version: "4.11.0"})
	t.Cleanup(srv.Close)
	clk := newTestClock()
	c, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	cht.SetClock(c, clk.now)
	if !listsPeople(t, c) {
		t.Fatal("4.11.0 does not list people")
	}
	srv.InjectFault(chttest.Fault{Method: http.MethodGet, Path: "/api/deploy-info", Latency: 50 * time.Millisecond})
	clk.add(10 * time.Minute)
	before := countGets(srv, "/api/deploy-info")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, err := range c.Contacts.All(context.Background(), cht.ListOptions{Type: "person"}) {
				if err != nil {
					t.Error(err)
				}
				break
			}
		})
	}
	wg.Wait()
	if n := countGets(srv, "/api/deploy-info") - before; n != 1 {
		t.Errorf("%d reads of /api/deploy-info, want 1", n)
	}
}
