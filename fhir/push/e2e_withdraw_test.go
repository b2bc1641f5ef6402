package push_test

// e2e test against the REAL FHIR server of .ci/stack.sh (FHIR_BASE_URL):
// an edit that empties a field withdraws its Observation there, found with
// a search by identifier and updated If-Match in the report's transaction.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

func TestE2EEditedReportWithdrawsEmptiedFields(t *testing.T) {
	fhirURL := strings.TrimRight(os.Getenv("FHIR_BASE_URL"), "/")
	if fhirURL == "" {
		t.Skip("FHIR_BASE_URL not set; start the stack with: eval \"$(bash .ci/stack.sh start)\"")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	// This run's instance names its identifiers: apart from other runs' on
	// the shared server.
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), Mapping: fhir.DefaultMapping(),
		InstanceURL: "https://" + strings.ToLower(rand.Text()) + ".cht.example.org"})
	require.NoError(t, err)
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirURL})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: conv, FHIR: fc})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "cht_to_fhir", URL: srv.URL + push.OutboundPath,
		Mapping: map[string]any{"doc": "doc"}, Server: chtSrv})
	require.NoError(t, err)

	doc, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	fields := doc["fields"].(map[string]any)
	pushed := func(rev string) {
		t.Helper()
		doc["_rev"] = rev
		att, err := pusher.Push(ctx, doc)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, att.StatusCode, "%s", att.Response)
	}
	// status returns the statuses of the Observations of field path.
	status := func(path string) []string {
		t.Helper()
		q := url.Values{"identifier": {conv.Systems().Observation + "|" + chttest.DemoHeightWeightReportID + "/" + path}}
		var b struct {
			Entry []struct {
				Resource struct{ Status string }
			}
		}
		require.NoError(t, fc.Search(ctx, "Observation", q, &b))
		var out []string
		for _, e := range b.Entry {
			out = append(out, e.Resource.Status)
		}
		return out
	}

	pushed("1-a")
	require.Equal(t, []string{"final"}, status("weight"))
	delete(fields, "weight")
	pushed("2-b")
	assert.Equal(t, []string{"entered-in-error"}, status("weight"), "withdrawn by the edit")
	assert.Equal(t, []string{"final"}, status("height"))
	fields["weight"] = 12.5
	pushed("3-c")
	assert.Equal(t, []string{"final"}, status("weight"), "filled in again")

	var o struct{ ValueQuantity struct{ Value json.Number } }
	q := url.Values{"identifier": {conv.Systems().Observation + "|" + chttest.DemoHeightWeightReportID + "/weight"}}
	var b struct {
		Entry []struct{ Resource json.RawMessage }
	}
	require.NoError(t, fc.Search(ctx, "Observation", q, &b))
	require.Len(t, b.Entry, 1)
	require.NoError(t, json.Unmarshal(b.Entry[0].Resource, &o))
	assert.Equal(t, json.Number("12.5"), o.ValueQuantity.Value)
}
