package openhimtest

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkRouterRoundTrip measures one routed request through the fake
// router to a json+openhim mediator, including the stored transaction.
func BenchmarkRouterRoundTrip(b *testing.B) {
	f := newRouterFixture(b, Version4, envelope(nil), nil)
	req, _ := http.NewRequest(http.MethodGet, f.srv.RouterURL+"/api/x", nil)
	req.SetBasicAuth("client-1", "pw")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkHeartbeat measures an authenticated (basic, Version8) heartbeat.
func BenchmarkHeartbeat(b *testing.B) {
	srv := NewServer(Config{})
	defer srv.Close()
	if err := srv.Register(testMediator("urn:mediator:bench", "1.0.0")); err != nil {
		b.Fatal(err)
	}
	c := &apiClient{base: srv.URL, hc: srv.Client(), user: RootUser, pass: RootPassword, scheme: "basic"}
	b.ReportAllocs()
	for b.Loop() {
		r, err := c.try(http.MethodPost, "/mediators/urn:mediator:bench/heartbeat", map[string]any{"uptime": 1})
		if err != nil || r.Status != http.StatusOK {
			b.Fatal(r.Status, err)
		}
	}
}
