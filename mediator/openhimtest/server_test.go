package openhimtest

import (
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// Stop/Start keep URL and state: "core down at start" and "core restarted
// mid-run" for lifecycle tests.
func TestStopStartRestart(t *testing.T) {
	srv, c := newFake(t, Config{Version: Version8})
	url := srv.URL
	if r := c.do(t, http.MethodPost, "/mediators", testMediator("urn:mediator:life", "1.0.0")); r.Status != 201 {
		t.Fatal(r.Body)
	}
	srv.Stop()
	if _, err := c.try(http.MethodGet, "/mediators", nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stopped server: err = %v, want connection refused", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if srv.URL != url {
		t.Fatalf("URL changed across restart: %s -> %s", url, srv.URL)
	}
	if r := c.do(t, http.MethodGet, "/mediators/urn:mediator:life", nil); r.Status != 200 {
		t.Fatalf("state lost across restart: %d", r.Status)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The restart closed the kept-alive connections; net/http does not
	// resend a POST on one (a GET is resent).
	c.hc.CloseIdleConnections()
	if r := c.do(t, http.MethodPost, "/mediators/urn:mediator:life/heartbeat", map[string]any{"uptime": 1}); r.Status != 200 {
		t.Fatalf("heartbeat after Restart: %d", r.Status)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start on a running server: %v", err)
	}
	srv.Close()
	if err := srv.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

func TestFaultInjection(t *testing.T) {
	srv, c := newFake(t, Config{Version: Version7})
	c.scheme = "basic"
	srv.FailNext(2, http.StatusServiceUnavailable)
	for i, want := range []int{503, 503, 200} {
		if r := c.do(t, http.MethodGet, "/mediators", nil); r.Status != want {
			t.Fatalf("request %d: %d, want %d", i, r.Status, want)
		}
	}
	srv.SetDown(true)
	if _, err := c.try(http.MethodGet, "/mediators", nil); err == nil {
		t.Fatal("SetDown(true): request succeeded")
	}
	srv.SetDown(false)
	if r := c.do(t, http.MethodGet, "/mediators", nil); r.Status != 200 {
		t.Fatalf("after SetDown(false): %d", r.Status)
	}
}

func TestTLSAndBasePath(t *testing.T) {
	srv, c := newFake(t, Config{Version: Version8, TLS: true, BasePath: "/openhim/"})
	if !strings.HasPrefix(srv.URL, "https://") || !strings.HasSuffix(srv.URL, "/openhim") || srv.Certificate() == nil {
		t.Fatalf("URL %s cert %v", srv.URL, srv.Certificate())
	}
	c.scheme = "basic"
	if r := c.do(t, http.MethodGet, "/mediators", nil); r.Status != 200 {
		t.Fatalf("under base path: %d", r.Status)
	}
	root := *c
	root.base = strings.TrimSuffix(srv.URL, "/openhim")
	if r := root.do(t, http.MethodGet, "/mediators", nil); r.Status != 404 {
		t.Fatalf("outside base path: %d, want 404", r.Status)
	}
	if _, err := http.Get(srv.URL + "/heartbeat"); err == nil {
		t.Fatal("default client trusted the test certificate")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The restart closed the kept-alive connections; net/http does not
	// resend a POST on one (a GET is resent).
	c.hc.CloseIdleConnections()
	if r := c.do(t, http.MethodGet, "/mediators", nil); r.Status != 200 {
		t.Fatalf("TLS after Restart: %d", r.Status)
	}
}

func TestRegisterAndAddChannelHelpers(t *testing.T) {
	srv := NewServer(Config{Version: Version4})
	defer srv.Close()
	doc := testMediator("urn:mediator:helper", "1.0.0")
	if err := srv.Register(doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "name")
	doc["urn"] = "urn:mediator:helper2"
	var e *Error
	if err := srv.Register(doc); !errors.As(err, &e) || e.StatusCode != 400 ||
		e.Message != "Could not add Mediator via the API: ValidationError: name: Path `name` is required." {
		t.Fatalf("Register invalid: %v", err)
	}
	m, ok := srv.Mediator("urn:mediator:helper")
	if !ok || len(m.DefaultChannelConfig) != 1 {
		t.Fatalf("Mediator: %+v %v", m, ok)
	}
	id, err := srv.AddChannel(m.DefaultChannelConfig[0])
	if err != nil || id == "" {
		t.Fatalf("AddChannel: %q %v", id, err)
	}
	if _, err := srv.AddChannel(m.DefaultChannelConfig[0]); !errors.As(err, &e) || e.StatusCode != 400 {
		t.Fatalf("AddChannel duplicate: %v", err)
	}
	if !srv.Deregister("urn:mediator:helper") || srv.Deregister("urn:mediator:helper") {
		t.Fatal("Deregister")
	}
}

func TestSemver(t *testing.T) {
	valid := []string{"1.2.3", "v1.2.3", " 1.2.3 ", "1.2.3-rc.1", "1.2.3+build.5", "0.0.0", "1.2.3-0a.1"}
	invalid := []string{"", "1.2", "01.2.3", "1.2.3.4", "=1.2.3", "1.2.3-", "1.2.3-01", "x"}
	for _, v := range valid {
		if _, ok := parseSemver(v); !ok {
			t.Errorf("%q should be valid", v)
		}
	}
	for _, v := range invalid {
		if _, ok := parseSemver(v); ok {
			t.Errorf("%q should be invalid", v)
		}
	}
	gt := [][2]string{{"1.2.4", "1.2.3"}, {"1.3.0", "1.2.9"}, {"2.0.0", "1.99.99"}, {"1.2.3", "1.2.3-rc.1"},
		{"1.2.3-rc.2", "1.2.3-rc.1"}, {"1.2.3-rc.10", "1.2.3-rc.9"}, {"1.2.3-beta", "1.2.3-alpha"}, {"1.2.3-a", "1.2.3-1"}, {"1.2.3-a.1", "1.2.3-a"}}
	for _, p := range gt {
		a, _ := parseSemver(p[0])
		b, _ := parseSemver(p[1])
		if !semverGreater(a, b) || semverGreater(b, a) {
			t.Errorf("want %s > %s", p[0], p[1])
		}
	}
	a, _ := parseSemver("1.2.3+a")
	b, _ := parseSemver("v1.2.3+b")
	if semverGreater(a, b) || semverGreater(b, a) {
		t.Error("build metadata must not affect precedence")
	}
}

func FuzzAddMediator(f *testing.F) {
	f.Add(`{"urn":"u","version":"1.0.0","name":"n","endpoints":[{"name":"r","host":"h","port":"1"}]}`)
	f.Add(`{"urn":"u","version":"1.0.0","configDefs":[{"param":"s","type":"struct","template":[{"param":"a","type":"option"}]}],"config":{"s":{"a":1}}}`)
	f.Add(`{"urn":1,"version":[],"endpoints":{"x":1},"defaultChannelConfig":[null,{"routes":"x"}]}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []Version{Version4, Version8} {
			srv := &Server{cfg: Config{Version: v, Now: nowFunc}, heartbeats: map[string][]Heartbeat{}, pushes: map[string][]ConfigPush{}}
			var doc map[string]any
			if err := jsonUnmarshal(body, &doc); err != nil || doc == nil {
				return
			}
			status, msg := srv.addMediator(doc)
			if status != 201 && msg == "" || status == 201 && msg != "" {
				t.Fatalf("status %d with message %q", status, msg)
			}
			if status == 201 && len(srv.mediators) == 1 {
				if _, ok := parseSemver(srv.mediators[0].Version); !ok {
					t.Fatalf("stored invalid version %q", srv.mediators[0].Version)
				}
			}
		}
	})
}
