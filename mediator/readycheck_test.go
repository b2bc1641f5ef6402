package mediator_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// Config.ReadyCheck turns /readyz to 503 with its error as the reason while it fails.
func TestReadyCheck(t *testing.T) {
	var failing atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mediator.New(mediator.Config{Auth: mediator.InboundAuth{Open: true}, Definition: exampleDefinition(), Listener: ln, Handler: http.NotFoundHandler(),
		ReadyCheck: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			if failing.Load() {
				return errors.New(`CHT outbound pushes failing for 38m0s: [fhir: 3]`)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = m.ListenAndServe() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	probe := func() (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := probe(); code != http.StatusOK || body != `{"status":"ready"}` {
		t.Errorf("passing check: %d %s", code, body)
	}
	failing.Store(true)
	if code, body := probe(); code != http.StatusServiceUnavailable || body != `{"status":"not ready","reason":"CHT outbound pushes failing for 38m0s: [fhir: 3]"}` {
		t.Errorf("failing check: %d %s", code, body)
	}
}
