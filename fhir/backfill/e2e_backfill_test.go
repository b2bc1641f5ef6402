package backfill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
)

// TestE2EBackfillRealFHIR syncs a small fake CHT to the real FHIR server
// twice (the second time from scratch, as after a lost checkpoint) and
// checks that each report's Encounter exists exactly once.
func TestE2EBackfillRealFHIR(t *testing.T) {
	base := os.Getenv("FHIR_BASE_URL")
	if base == "" {
		t.Skip("FHIR_BASE_URL is not set (see .ci/README.md)")
	}
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1})
	t.Cleanup(chtSrv.Close)
	stats, err := chtSrv.SeedSynthetic(chttest.Synthetic{Households: 5, PeoplePerHousehold: 2, ReportsPerPerson: 2, Seed: 21})
	require.NoError(t, err)
	client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	mapping := fhir.DefaultMapping()
	// Identifiers unique to this run: the instance URL names them.
	instance := fmt.Sprintf("https://backfill%d.cht.example.org", time.Now().UnixNano())
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: instance, Mapping: mapping})
	require.NoError(t, err)
	hc := &http.Client{Timeout: 30 * time.Second}
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: base, MaxRetries: -1})
	require.NoError(t, err)

	for run := range 2 {
		sum, err := backfill.Run(context.Background(), backfill.Config{CHT: client, Converter: conv,
			FHIR:           fc,
			CheckpointFile: filepath.Join(t.TempDir(), "cp.json"), BatchSize: 10, Workers: 2})
		require.NoError(t, err, "run %d", run)
		require.Zero(t, sum.Failed, "run %d: %v", run, sum.Failures)
		assert.Equal(t, sum.Docs, sum.Converted, "run %d", run)
	}

	for _, id := range stats.ReportIDs {
		q := url.Values{"identifier": {conv.Systems().DocumentID + "|" + id}}
		resp, err := hc.Get(base + "/Encounter?" + q.Encode())
		require.NoError(t, err)
		var bundle struct {
			Entry []json.RawMessage `json:"entry"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&bundle))
		resp.Body.Close()
		assert.Len(t, bundle.Entry, 1, "Encounter of report %s", id)
	}
}

// TestE2EBackfillWithdrawsRealFHIR backfills a report, then a version of
// it whose weight an edit emptied (its Observation is withdrawn on the
// real FHIR server: searched by identifier, updated If-Match in the
// batch's transaction), then one that fills the weight in again.
func TestE2EBackfillWithdrawsRealFHIR(t *testing.T) {
	base := os.Getenv("FHIR_BASE_URL")
	if base == "" {
		t.Skip("FHIR_BASE_URL is not set (see .ci/README.md)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1})
	t.Cleanup(chtSrv.Close)
	client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	// Identifiers unique to this run: the instance URL names them.
	instance := fmt.Sprintf("https://withdraw%d.cht.example.org", time.Now().UnixNano())
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: instance, Mapping: fhir.DefaultMapping()})
	require.NoError(t, err)
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: base, MaxRetries: -1})
	require.NoError(t, err)
	cfg := backfill.Config{CHT: client, Converter: conv, FHIR: fc,
		CheckpointFile: filepath.Join(t.TempDir(), "cp.json"), BatchSize: 10, Workers: 2}
	run := func() {
		t.Helper()
		sum, err := backfill.Run(ctx, cfg)
		require.NoError(t, err)
		require.Zero(t, sum.Failed, "%v", sum.Failures)
	}
	id := chttest.DemoHeightWeightReportID
	edit := func(weight any) {
		t.Helper()
		var d map[string]any
		require.NoError(t, client.Docs.Get(ctx, id, &d))
		if weight == nil {
			delete(d["fields"].(map[string]any), "weight")
		} else {
			d["fields"].(map[string]any)["weight"] = weight
		}
		_, err := client.Docs.Put(ctx, id, d)
		require.NoError(t, err)
	}
	// status returns the statuses of the Observations of field path.
	status := func(path string) []string {
		t.Helper()
		q := url.Values{"identifier": {conv.Systems().Observation + "|" + id + "/" + path}}
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

	run()
	require.Equal(t, []string{"final"}, status("weight"))
	edit(nil)
	run()
	assert.Equal(t, []string{"entered-in-error"}, status("weight"), "withdrawn by the backfill of the edit")
	assert.Equal(t, []string{"final"}, status("height"))
	edit(12.5)
	run()
	assert.Equal(t, []string{"final"}, status("weight"), "filled in again")
}
