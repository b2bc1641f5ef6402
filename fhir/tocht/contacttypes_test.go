package tocht_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// configurableTypes is an app whose people are of configurable types
// (contact_type c_patient and c_chw, person: true), as CHT 3.7+ apps
// declare them in app_settings.contact_types.
var configurableTypes = []chttest.ContactType{
	{ID: "c_region"},
	{ID: "c_household", Parents: []string{"c_region"}},
	{ID: "c_chw", Person: true, Parents: []string{"c_region"}},
	{ID: "c_patient", Person: true, Parents: []string{"c_household"}},
}

// configurableServer is a CHT server of that app with a region, a
// household, a CHW and a patient, and the contact types read from it.
func configurableServer(t *testing.T) (*chttest.Server, cht.ContactTypes) {
	t.Helper()
	srv := chttest.NewServer(chttest.Config{ContactTypes: configurableTypes, Forms: chttest.DemoForms()})
	t.Cleanup(srv.Close)
	require.NoError(t, srv.PutDocs(
		map[string]any{"_id": "region-1", "type": "contact", "contact_type": "c_region", "name": "Region"},
		map[string]any{"_id": "hh-1", "type": "contact", "contact_type": "c_household", "name": "Household",
			"parent": map[string]any{"_id": "region-1"}},
		map[string]any{"_id": "chw-1", "type": "contact", "contact_type": "c_chw", "name": "CHW",
			"parent": map[string]any{"_id": "region-1"}},
		map[string]any{"_id": "patient-1", "type": "contact", "contact_type": "c_patient", "name": "Patient",
			"parent": map[string]any{"_id": "hh-1", "parent": map[string]any{"_id": "region-1"}}},
	))
	c, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	types, err := c.ContactTypes(context.Background())
	require.NoError(t, err)
	return srv, types
}

// With Config.ContactTypes loaded from CHT, the app's configurable person
// types are people: a report may be about one and a Patient may update one;
// its place types are still refused.
func TestConfigurablePersonTypesArePeople(t *testing.T) {
	srv, types := configurableServer(t)
	r := newRigOn(t, srv, types, func(c *tocht.Config) { c.ContactTypes = types })

	tests := []struct {
		name, path, body string
		status           int
	}{
		{"ServiceRequest about a c_chw", "/fhir/ServiceRequest",
			`{"resourceType":"ServiceRequest","id":"sr-chw","status":"active","intent":"order","subject":{"identifier":` + medicID("chw-1") + `}}`,
			http.StatusCreated},
		{"Task for a c_patient", "/fhir/Task",
			`{"resourceType":"Task","id":"task-patient","status":"requested","intent":"order","for":{"identifier":` + medicID("patient-1") + `}}`,
			http.StatusCreated},
		{"Patient updating a c_chw", "/fhir/Patient",
			`{"resourceType":"Patient","identifier":[` + medicID("chw-1") + `],"name":[{"text":"CHW Renamed"}]}`,
			http.StatusOK},
		{"ServiceRequest about a c_household", "/fhir/ServiceRequest",
			`{"resourceType":"ServiceRequest","id":"sr-hh","status":"active","intent":"order","subject":{"identifier":` + medicID("hh-1") + `}}`,
			http.StatusUnprocessableEntity},
		{"Patient onto a c_region", "/fhir/Patient",
			`{"resourceType":"Patient","identifier":[` + medicID("region-1") + `],"name":[{"text":"Not A Person"}]}`,
			http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.post(t, tt.path, []byte(tt.body))
			require.Equal(t, tt.status, a.status, "%s", a.body)
			if tt.status == http.StatusUnprocessableEntity {
				assert.Contains(t, parseOutcome(t, a.body).text(), "not a person")
			}
		})
	}
	assert.Equal(t, "CHW Renamed", r.doc(t, "chw-1")["name"])
	assert.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 2)
}

// A parent place (fhir.InboundConfig.ParentPlace) that is a person of a
// configurable type (c_chw) is the mediator's configuration error, as one
// of type "person" is: no person is created under another person.
func TestParentPlaceOfAConfigurablePersonTypeIsRefused(t *testing.T) {
	srv, types := configurableServer(t)
	tests := []struct {
		name, parent string
		status       int
	}{
		{"a c_household", "hh-1", http.StatusCreated},
		{"a c_chw", "chw-1", http.StatusInternalServerError},
		{"a c_patient", "patient-1", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv, err := fhir.New(fhir.Config{ContactTypes: types, InstanceURL: instanceURL, Mapping: fhir.DefaultMapping(),
				Inbound: fhir.InboundConfig{ParentPlace: tt.parent, PersonType: "c_patient"}})
			require.NoError(t, err)
			r := newRigOn(t, srv, types, func(c *tocht.Config) { c.ContactTypes, c.Converter = types, conv })
			body := `{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"under-` + tt.parent + `"}],"name":[{"text":"Under ` + tt.parent + `"}]}`
			a := r.post(t, "/fhir/Patient", []byte(body))
			require.Equal(t, tt.status, a.status, "%s", a.body)
			if tt.status != http.StatusCreated {
				assert.Contains(t, parseOutcome(t, a.body).text(), "not a place")
				assert.Zero(t, r.countDocs(t, "name", "Under "+tt.parent))
			}
		})
	}
}
