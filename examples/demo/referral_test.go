package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemoReferralLoop checks the demo's referral part: the EMR's Task gets one Subscription, the
// follow-up report closes the Task and the ServiceRequest, a replayed push changes nothing and
// the EMR is told once.
func TestDemoReferralLoop(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, &out, slog.New(slog.DiscardHandler)))
	text := out.String()
	assert.Contains(t, text, "POST /fhir/Task → HTTP 201; Subscriptions in the FHIR server: 1")
	assert.Contains(t, text, "fhir_task referral-task-0042, fhir_service_request referral-sr-0042")
	assert.Contains(t, text, "push → HTTP 200; Task version 2")
	assert.Contains(t, text, "same push again → HTTP 200; Task version 2")
	assert.Regexp(t, `Task referral-task-0042: completed, output Encounter/[0-9a-f-]{36}; ServiceRequest referral-sr-0042: completed`, text)
	assert.Contains(t, text, "told the EMR (rest-hook Subscription), 1 time(s)")
	assert.Contains(t, text, `PUT /referral-events/Task/referral-task-0042 (with the EMR's Authorization token): Task status completed`)
	assert.NotContains(t, text, "emr-demo-token", "the demo prints no secret")
}

// TestDemoCoreStoresNoEMRToken: the Subscription fhir-to-cht writes carries the EMR's token
// (notify_emr.authorization), so its calls reach OpenHIM core's transaction log without bodies
// (mediator.WithoutBodies): no stored transaction holds the token, while the calls themselves
// are still listed.
func TestDemoCoreStoresNoEMRToken(t *testing.T) {
	ctx := context.Background()
	d, err := startDemo(ctx, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer d.Close()
	_, err = d.runFlows(ctx, io.Discard)
	require.NoError(t, err)
	require.NoError(t, d.runReferral(ctx, io.Discard))

	token := strings.TrimPrefix(emrAuthorization, "Bearer ")
	subscribes := 0
	for _, tx := range d.core.Transactions() {
		raw, err := json.Marshal(tx)
		require.NoError(t, err)
		assert.NotContains(t, string(raw), token, "transaction %s %s", tx.Request.Method, tx.Request.Path)
		subscribes += strings.Count(string(raw), `"FHIR subscribe Task"`)
	}
	assert.Positive(t, subscribes, "the Subscription's call is still recorded")
}
