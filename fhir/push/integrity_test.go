package push_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// TestPushesOnAServerWithReferentialIntegrity: HAPI FHIR refuses a write
// that references a resource it does not hold (its default
// enforce_referential_integrity_on_write; HAPI-1094), and so do servers
// that are facades over an EMR's database. Every document of the demo CHT,
// pushed in feed order as CHT's outbound pushes it (hydrated, sentinel's
// outbound) or named by id and hydrated by the handler, is written: each
// transaction carries the resources it references (the subject, the CHW,
// their places). Without the hydrated lineage, a report naming an unknown
// patient is refused until that patient is written (TestEncounterPayload
// shows the payload path).
func TestPushesOnAServerWithReferentialIntegrity(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mapping map[string]any
		hydrate bool // the handler hydrates through CHT's API
	}{
		{"hydrated by CHT", map[string]any{"doc": "doc"}, false},
		{"named by id, hydrated by the handler", map[string]any{"id": "doc._id", "rev": "doc._rev"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			chtSrv := chttest.NewDemoServer()
			t.Cleanup(chtSrv.Close)
			fhirSrv := fhirtest.NewServer(fhirtest.Config{ReferentialIntegrity: true})
			t.Cleanup(fhirSrv.Close)
			conv, err := fhir.New(fhir.Config{InstanceURL: chtSrv.URL, Mapping: fhir.DefaultMapping(), ContactTypes: chttest.DemoTypes()})
			require.NoError(t, err)
			fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
			require.NoError(t, err)
			cfg := push.Config{Converter: conv, FHIR: fc, Logger: slog.New(slog.DiscardHandler)}
			if tt.hydrate {
				cfg.CHT, err = cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
				require.NoError(t, err)
			}
			h, err := push.New(cfg)
			require.NoError(t, err)
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "cht_to_fhir", URL: srv.URL + push.OutboundPath,
				Mapping: tt.mapping, Server: chtSrv})
			require.NoError(t, err)
			n, err := pusher.Sync(context.Background())
			require.NoError(t, err, "every push is written")
			assert.Positive(t, n)
			for _, a := range pusher.Attempts() {
				assert.Equal(t, chttest.OutcomeSent, a.Outcome, "%s: %s", a.DocID, a.Response)
			}
			encounters, err := fhirSrv.Search("Encounter", "")
			require.NoError(t, err)
			assert.NotEmpty(t, encounters, "reports were written")
		})
	}
}
