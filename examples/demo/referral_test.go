package main

import (
	"bytes"
	"context"
	"log/slog"
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
