package fhirtocht_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Equal identifier values of different systems are different persons, and a
// subject identifier resolves to the person of its own system.
func TestPatientKeyIncludesIdentifierSystem(t *testing.T) {
	r := newRig(t)
	a := r.post(t, "/fhir/Patient", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:nid","value":"1001"}],"name":[{"text":"Alice Alpha"}]}`))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	a = r.post(t, "/fhir/Patient", []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"1001"}],"name":[{"text":"Bob Beta"}]}`))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)

	alice, bob := r.bridge.PersonID("urn:nid|1001"), r.bridge.PersonID("urn:mrn|1001")
	require.NotEqual(t, alice, bob)
	assert.Equal(t, "Alice Alpha", r.doc(t, alice)["name"])
	assert.Equal(t, "Bob Beta", r.doc(t, bob)["name"])
	assert.Equal(t, "1001", r.doc(t, bob)["external_id"], "external_id keeps the bare value")

	a = r.post(t, "/fhir/ServiceRequest", []byte(`{"resourceType":"ServiceRequest","id":"sr-bob","status":"active",
		"intent":"order","subject":{"identifier":{"system":"urn:mrn","value":"1001"}}}`))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	reports := r.reports(t, "INTEROP_FOLLOW_UP")
	require.Len(t, reports, 1)
	assert.Equal(t, bob, reports[0]["fields"].(map[string]any)["patient_uuid"])
}

// A transaction whose subject check fails writes nothing, not even the
// entries before it.
func TestTransactionWithAMissingSubjectWritesNothing(t *testing.T) {
	r := newRig(t)
	before := len(r.cht.Docs())
	body := `{"resourceType":"Bundle","type":"transaction","entry":[
 {"resource":{"resourceType":"Patient","identifier":[{"system":"urn:nid","value":"new-777"}],"name":[{"text":"New Person"}]}},
 {"resource":{"resourceType":"ServiceRequest","id":"sr-1","status":"active","intent":"order","subject":{"identifier":{"system":"urn:nid","value":"nobody-999"}}}}]}`
	a := r.post(t, "/fhir", []byte(body))
	require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
	oo := parseOutcome(t, a.body)
	assert.Contains(t, oo.text(), "Bundle.entry[1]")
	assert.Contains(t, oo.text(), "no CHT person")
	assert.Zero(t, r.countDocs(t, "external_id", "new-777"), "the Patient of the failed transaction was written")
	assert.Equal(t, before, len(r.cht.Docs()), "documents written")
}
