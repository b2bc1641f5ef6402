package fhir_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// TestE2EClientAgainstRealServer runs every Client call against the real
// FHIR server: a transaction with its answer checked, then read, search,
// update, create and delete, and a read of a missing resource that comes
// back as a *ServerError carrying the server's OperationOutcome.
func TestE2EClientAgainstRealServer(t *testing.T) {
	base := e2eFHIRBase(t)
	c, err := fhir.NewClient(fhir.ClientConfig{BaseURL: base})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := fmt.Sprintf("e2e-client-%d", time.Now().UnixNano())

	bundle := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:8a7b6c5d-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","id":%q,"name":[{"family":"Client"}]},"request":{"method":"PUT","url":"Patient/%s"}},
	 {"resource":{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"weight"},"subject":{"reference":"Patient/%s"}},"request":{"method":"PUT","url":"Observation/%s"}}]}`,
		id, id, id+"-o", id, id+"-o")
	require.NoError(t, c.Transaction(ctx, []byte(bundle)))
	// Idempotent: the same bundle again is a success, not a duplicate.
	require.NoError(t, c.Transaction(ctx, []byte(bundle)))

	var p models.Patient
	require.NoError(t, c.Read(ctx, "Patient", id, &p))
	assert.Equal(t, "Client", *p.Name[0].Family)

	var b models.Bundle
	require.NoError(t, c.Search(ctx, "Observation", url.Values{"subject": {"Patient/" + id}}, &b))
	require.Len(t, b.Entry, 1)

	p.Name[0].Family = ptr("Updated")
	require.NoError(t, c.Update(ctx, "Patient", id, p, nil))
	var raw json.RawMessage
	require.NoError(t, c.Read(ctx, "Patient", id, &raw))
	assert.Contains(t, string(raw), `"Updated"`)

	var created models.Task
	require.NoError(t, c.Create(ctx, "Task", []byte(`{"resourceType":"Task","status":"requested","intent":"order","for":{"reference":"Patient/`+id+`"}}`), &created))
	require.NotNil(t, created.Id)
	require.NoError(t, c.Delete(ctx, "Task", *created.Id))

	err = c.Read(ctx, "Patient", id+"-missing", nil)
	var se *fhir.ServerError
	require.True(t, errors.As(err, &se), "got %v", err)
	assert.Equal(t, 404, se.StatusCode)
	assert.NotEmpty(t, se.Reason)

	// A transaction the server refuses (an Observation without its required
	// status) is a *ServerError too, with the server's reason.
	bad := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","id":%q,"code":{"text":"x"}},"request":{"method":"PUT","url":"Observation/%s"}}]}`, id+"-bad", id+"-bad")
	err = c.Transaction(ctx, []byte(bad))
	require.True(t, errors.As(err, &se), "got %v", err)
	assert.GreaterOrEqual(t, max(se.StatusCode, se.EntryStatus), 400)
	// Medplum puts the message in details.text and the location in
	// diagnostics; the reason carries both.
	assert.Contains(t, se.Reason, "Missing required property")
	t.Logf("refused transaction: %v", err)
}
