package chttest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// TestGeneratedOutboundConfigDrivesReceiver wires the pieces as a
// deployment does: the cht package generates app_settings.outbound, the
// pusher reads it (with the secret from the fake's credentials store) and
// pushes the fake's changes to a outbound.Handler. A failure of the
// receiver is retried from the queue, and each patient is handled once.
func TestGeneratedOutboundConfigDrivesReceiver(t *testing.T) {
	srv := chttest.NewDemoServer()
	t.Cleanup(srv.Close)
	srv.SetCredential("openhim1", "interop-password")

	var mu sync.Mutex
	handled := map[string]int{}
	failOnce := map[string]bool{chttest.DemoPatientID: true}
	h, err := outbound.NewHandler(outbound.HandlerConfig{Handle: func(ctx context.Context, p *outbound.Payload) error {
		mu.Lock()
		defer mu.Unlock()
		if failOnce[p.ID] {
			failOnce[p.ID] = false
			return errors.New("downstream unavailable")
		}
		handled[p.ID]++
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "interop" || p != "interop-password" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(recv.Close)

	dest, err := outbound.NewDestination(recv.URL+"/mediator/cht/patient", "interop", "openhim1")
	if err != nil {
		t.Fatal(err)
	}
	settings, err := outbound.Config{"patients": {
		RelevantTo:  "doc.type === 'person' && doc.role === 'patient'",
		Destination: dest,
		Mapping:     outbound.DocMapping(),
	}}.AppSettings()
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := chttest.OutboundFromSettings(settings, srv.Credential)
	if err != nil {
		t.Fatal(err)
	}
	cfgs[0].Server = srv
	p, err := chttest.NewOutboundPusher(cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Sync(ctx); err == nil {
		t.Fatal("the first push of the patient should have failed")
	}
	if q := p.Queue(); len(q) != 1 || q[0] != chttest.DemoPatientID {
		t.Fatalf("queue %v", q)
	}
	if err := p.RunQueue(ctx); err != nil {
		t.Fatal(err)
	}
	// A second pass over unchanged docs sends nothing new.
	if _, err := p.PushID(ctx, chttest.DemoChildID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// type "person" with role patient: John Test and the child (the
	// mother is type "contact", so this relevant_to skips her).
	want := map[string]int{chttest.DemoPatientID: 1, chttest.DemoChildID: 1}
	if len(handled) != len(want) || handled[chttest.DemoPatientID] != 1 || handled[chttest.DemoChildID] != 1 {
		t.Fatalf("handled %v, want %v", handled, want)
	}
	if n := p.CountOutcome(chttest.OutcomeAlreadySent); n != 1 {
		t.Errorf("already_sent %d, want 1", n)
	}
}
