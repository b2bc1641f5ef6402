package push_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// observationsByField returns the Observations on the FHIR server by the
// field path of their identifier ("<report id>/<path>").
func (r *rig) observationsByField(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, raw := range r.fhir.Resources("Observation") {
		var o map[string]any
		require.NoError(t, json.Unmarshal(raw, &o))
		ids, _ := o["identifier"].([]any)
		require.Len(t, ids, 1)
		v, _ := ids[0].(map[string]any)["value"].(string)
		_, path, _ := strings.Cut(v, "/")
		out[path] = o
	}
	return out
}

func versionID(o map[string]any) string {
	meta, _ := o["meta"].(map[string]any)
	v, _ := meta["versionId"].(string)
	return v
}

// An edit that empties a mapped field withdraws the Observation written
// for it before: CHT pushes every version of a report (cht-core
// shared-libs/transitions/src/transitions/mark_for_outbound.js runs
// markForOutbound on every change; shared-libs/outbound/src/outbound.js
// alreadySent skips only a payload whose hash equals the last one sent),
// and the FHIR server must not keep a value the CHW removed. The Observation stays, with
// status entered-in-error (FHIR R4 observation-status: "withdrawn
// following previous final release"); a field that comes back makes it
// final again.
func TestEditedReportWithdrawsEmptiedFields(t *testing.T) {
	for _, strategy := range []fhir.WriteStrategy{fhir.WritePut, fhir.WriteConditionalUpdate} {
		t.Run(strategy.String(), func(t *testing.T) {
			conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: "https://cht.example.org",
				Mapping: fhir.DefaultMapping(), Strategy: strategy})
			require.NoError(t, err)
			testEditedReportWithdrawsEmptiedFields(t, newRigWith(t, false, conv))
		})
	}
}

func testEditedReportWithdrawsEmptiedFields(t *testing.T, r *rig) {
	ctx := context.Background()
	var payload []byte // the last push's
	pushed := func(doc map[string]any) {
		t.Helper()
		att, err := r.pusher.Push(ctx, doc)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, att.StatusCode, "%s", att.Response)
		payload = att.Payload
	}
	doc := r.hydrated(t, chttest.DemoHeightWeightReportID)
	fields := doc["fields"].(map[string]any)
	require.Contains(t, fields, "weight")
	require.Contains(t, fields, "height")

	doc["_rev"] = "1-a"
	pushed(doc)
	assert.Equal(t, []string{"FHIR transaction"}, r.calls.take(), "a first version has nothing to withdraw: no search")
	v1 := r.observationsByField(t)
	require.Len(t, v1, 2)
	assert.Equal(t, "final", v1["weight"]["status"])

	// The CHW edits the report and clears the weight.
	doc["_rev"] = "2-b"
	delete(fields, "weight")
	pushed(doc)
	assert.Equal(t, []string{"FHIR search Observation", "FHIR transaction"}, r.calls.take())
	v2 := r.observationsByField(t)
	require.Len(t, v2, 2, "withdrawn, not deleted")
	assert.Equal(t, "entered-in-error", v2["weight"]["status"])
	assert.Equal(t, v1["weight"]["valueQuantity"], v2["weight"]["valueQuantity"], "the value withdrawn stays readable")
	assert.Equal(t, v1["weight"]["code"], v2["weight"]["code"])
	assert.Equal(t, "final", v2["height"]["status"])

	// CHT pushes the same version again (after a lost answer): the
	// withdrawn Observation gets no new version.
	resp := postJSON(t, r.srv.URL+push.OutboundPath, payload)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp.Body.Close()
	assert.Equal(t, []string{"FHIR search Observation", "FHIR transaction"}, r.calls.take())
	assert.Equal(t, versionID(v2["weight"]), versionID(r.observationsByField(t)["weight"]))

	// An empty answer counts as none, as for a first version.
	doc["_rev"] = "3-c"
	fields["height"] = ""
	pushed(doc)
	assert.Equal(t, "entered-in-error", r.observationsByField(t)["height"]["status"])

	// A later edit fills the weight in again: the Observation is final,
	// with the new value.
	doc["_rev"] = "4-d"
	fields["weight"] = 12.5
	pushed(doc)
	v4 := r.observationsByField(t)
	assert.Equal(t, "final", v4["weight"]["status"])
	assert.Equal(t, 12.5, v4["weight"]["valueQuantity"].(map[string]any)["value"])
	assert.Equal(t, "entered-in-error", v4["height"]["status"])
	assert.Equal(t, 2, r.fhir.Count("Observation"))
}

// A search that fails fails the push (502), before anything is written:
// CHT pushes the report again, and the retry withdraws what the edit
// emptied.
func TestFailedWithdrawSearchFailsThePush(t *testing.T) {
	r := newRig(t, false)
	ctx := context.Background()
	doc := r.hydrated(t, chttest.DemoHeightWeightReportID)
	doc["_rev"] = "1-a"
	att, err := r.pusher.Push(ctx, doc)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, att.StatusCode, "%s", att.Response)
	r.calls.take()

	require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{FailRate: 1, IncludeReads: true}))
	doc["_rev"] = "2-b"
	delete(doc["fields"].(map[string]any), "weight")
	att, err = r.pusher.Push(ctx, doc)
	require.Error(t, err, "CHT keeps the push to retry it")
	assert.Equal(t, http.StatusBadGateway, att.StatusCode, "%s", att.Response)
	assert.Equal(t, []string{"FHIR search Observation"}, r.calls.take(), "no transaction without the search")
	assert.Equal(t, "final", r.observationsByField(t)["weight"]["status"])

	require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{}))
	resp := postJSON(t, r.srv.URL+push.OutboundPath, att.Payload)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp.Body.Close()
	assert.Equal(t, "entered-in-error", r.observationsByField(t)["weight"]["status"])
}
