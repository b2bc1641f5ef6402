package chttest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"slices"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

//go:embed testdata/demo-hierarchy.json
var demoFixture []byte

// Ids of the documents in the demo fixture (DemoFixture).
const (
	DemoDistrictID     = "3f1c1c1e-6b8a-4c52-9a8e-0d1a9f2c7b01" // district_hospital "Siaya District"
	DemoSupervisorID   = "a1b2c3d4-0001-4e5f-8a9b-0c1d2e3f4a01" // person, the district's contact
	DemoHealthCentreID = "5a2e7c44-1d3b-4f0e-8c6a-2b9d0e4f7a12" // health_center "Ugunja Health Centre"
	DemoNurseID        = "a1b2c3d4-0002-4e5f-8a9b-0c1d2e3f4a02" // person, the health centre's contact
	DemoCHWAreaID      = "7c3d9e55-2e4c-4a1f-9d7b-3c0e1f5a8b23" // contact_type chw_area "Sigomere CHW Area"
	DemoCHWID          = "a1b2c3d4-0003-4e5f-8a9b-0c1d2e3f4a03" // person "Example CHW", phone +254712345679
	DemoHouseholdID    = "9e4f0a66-3f5d-4b20-8e8c-4d1f2a6b9c34" // contact_type household "Otieno Household"
	DemoPatientID      = "75905106a4bc2a9046ed28df070016ce"     // person "John Test", shortcode 13985, head of household
	DemoMotherID       = "1f605fc1-ec99-44e3-af38-055d47b72991" // contact_type person "Della Otieno", shortcode 13986
	DemoChildID        = "c0ffee00-1d2e-4f3a-9b4c-5d6e7f8a9b01" // person "Baby Otieno", shortcode 13987

	DemoDangerSignReportID   = "232a3938-9b1c-4d88-bbd8-8ebd6a688b2d" // xform pregnancy_danger_sign for the mother (fields.patient_uuid)
	DemoAssessmentReportID   = "5e1a9c2b-7d3f-4e6a-b8c9-0a1b2c3d4e02" // xform assessment for the child (fields.patient_id shortcode)
	DemoHeightWeightReportID = "442b0937-a32f-443e-8d28-7d9a7552fda2" // JSON record HEIGHT_WEIGHT for the patient
)

// DemoContactTypes is the hierarchy of the demo fixture: district →
// health centre → CHW area → household → people. The first two use CHT's
// hard-coded types, the others configurable ones.
var DemoContactTypes = []ContactType{
	{ID: "district_hospital"},
	{ID: "health_center", Parents: []string{"district_hospital"}},
	{ID: "chw_area", Parents: []string{"health_center"}},
	{ID: "household", Parents: []string{"chw_area"}},
	{ID: "person", Parents: []string{"district_hospital", "health_center", "chw_area", "household"}, Person: true},
}

// DemoTypes returns DemoContactTypes as a mediator loads them from the
// demo server's app settings (cht.Client.ContactTypes): the value for
// fhir.Config.ContactTypes in tests against NewDemoServer.
func DemoTypes() cht.ContactTypes {
	settings, err := json.Marshal(map[string]any{"contact_types": DemoContactTypes})
	if err != nil {
		panic("chttest: demo contact types: " + err.Error())
	}
	types, err := cht.ParseContactTypes(settings)
	if err != nil {
		panic("chttest: demo contact types: " + err.Error())
	}
	return types
}

// DemoForms are JSON forms matching the demo: HEIGHT_WEIGHT (the
// reference's OpenMRS example) and INTEROP_FOLLOW_UP (the records-API form
// that raises a CHW follow-up task in cht-interoperability).
func DemoForms() map[string]Form {
	var forms map[string]Form
	if err := json.Unmarshal(demoForms, &forms); err != nil {
		panic("chttest: demo forms: " + err.Error())
	}
	return forms
}

// demoForms is the app_settings.forms block of the demo.
var demoForms = []byte(`{
  "HEIGHT_WEIGHT": {"meta": {"code": "HEIGHT_WEIGHT", "label": "Height and weight"}, "fields": {
    "patient_uuid": {"type": "string", "required": true, "labels": {"tiny": "p"}},
    "height": {"type": "integer", "labels": {"tiny": "h"}},
    "weight": {"type": "integer", "labels": {"tiny": "w"}}}},
  "INTEROP_FOLLOW_UP": {"meta": {"code": "INTEROP_FOLLOW_UP", "label": "Follow-up"}, "fields": {
    "patient_uuid": {"type": "string", "required": true, "labels": {"tiny": "p"}},
    "reason": {"type": "string", "labels": {"tiny": "r"}},
    "service_request_id": {"type": "string", "labels": {"tiny": "s"}},
    "due_date": {"type": "date", "labels": {"tiny": "d"}}}}
}`)

// DemoFixture returns the demo fixture: a JSON array of 13 documents (the
// hierarchy above with six people and three reports), ready for Seed.
func DemoFixture() []byte { return bytes.Clone(demoFixture) }

// DemoConfig returns a Config with the demo's contact types and forms; the
// other fields are defaults.
func DemoConfig() Config {
	return Config{ContactTypes: slices.Clone(DemoContactTypes), Forms: DemoForms(),
		Settings: map[string]any{"default_country_code": "254"}}
}

// NewDemoServer starts a server with DemoConfig (plus the overrides in cfg,
// if given: its Version, BasePath, Users, Seed, Now and Logger are used) and
// seeds it with DemoFixture.
func NewDemoServer(cfg ...Config) *Server {
	c := DemoConfig()
	if len(cfg) > 0 {
		o := cfg[0]
		c.Version, c.BasePath, c.Users, c.Seed, c.Now, c.Logger = o.Version, o.BasePath, o.Users, o.Seed, o.Now, o.Logger
		c.MaxLongpoll, c.LoginRateLimit, c.MaxBodyBytes = o.MaxLongpoll, o.LoginRateLimit, o.MaxBodyBytes
		for k, v := range o.Forms {
			c.Forms[k] = v
		}
	}
	s := NewServer(c)
	if err := s.Seed(bytes.NewReader(demoFixture)); err != nil {
		s.Close()
		panic(err)
	}
	return s
}
