package fhir

import (
	"strings"
	"testing"
)

func TestUUIDv5(t *testing.T) {
	// RFC 9562 / Python uuid.uuid5(NAMESPACE_DNS, "www.example.com").
	dns := [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	if got := uuidString(uuidV5(dns, "www.example.com")); got != "2ed6657d-e927-568b-95e1-2665a8aea6a2" {
		t.Errorf("uuidV5 = %s", got)
	}
	// Converter ids, computed independently with Python:
	//   ns = uuid5(NAMESPACE_URL, "https://cht.example.org")
	//   uuid5(ns, "Patient\x00<_id>"), uuid5(ns, "Observation\x00<_id>\x00<path>")
	c := testConverter(t, Config{})
	for _, tt := range []struct {
		rt, id, path, want string
	}{
		{"Patient", "75905106a4bc2a9046ed28df070016ce", "", "858c31a6-35fb-568e-8245-e4233bb4a890"},
		{"Encounter", "442b0937-a32f-443e-8d28-7d9a7552fda2", "", "b6c715f5-ec65-50e3-985d-ddc8f3c38949"},
		{"Observation", "442b0937-a32f-443e-8d28-7d9a7552fda2", "height", "512473a9-02c0-5190-bc24-61b3f1018301"},
	} {
		var got string
		if tt.path == "" {
			got = c.ID(tt.rt, tt.id)
		} else {
			got = c.ID(tt.rt, tt.id, tt.path)
		}
		if got != tt.want {
			t.Errorf("ID(%s, %s, %s) = %s, want %s", tt.rt, tt.id, tt.path, got, tt.want)
		}
	}
	// The trailing slash of the instance URL does not change ids.
	c2 := testConverter(t, Config{InstanceURL: testInstance + "/"})
	if c2.ID("Patient", "x") != c.ID("Patient", "x") {
		t.Error("trailing slash changed the id name space")
	}
	if c.ID("Patient", "ab", "c") == c.ID("Patient", "a", "bc") {
		t.Error("name parts are not separated")
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{InstanceURL: "cht.example.org"},
		{InstanceURL: "https://user:pw@cht.example.org"},
		{InstanceURL: testInstance, Strategy: 7},
		{InstanceURL: testInstance, NameSplit: -1},
		{InstanceURL: testInstance, EncounterClass: &Code{Code: "HH"}},
		{InstanceURL: testInstance, Mapping: &Mapping{Forms: []FormMapping{{Form: ""}}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", cfg)
		}
	}
	c, err := New(Config{InstanceURL: "https://cht.example.org/", Systems: Systems{PatientID: "urn:oid:1.2.3"}})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Systems()
	if s.PatientID != "urn:oid:1.2.3" || s.DocumentID != "https://cht.example.org/medic" || s.Source != "https://cht.example.org/source" {
		t.Errorf("systems %+v", s)
	}
}

// New refuses an InstanceURL with credentials, parsed or not, without
// repeating its password: the error reaches logs and the terminal.
func TestNewInstanceURLPasswordNotShown(t *testing.T) {
	for _, raw := range []string{
		"https://user:s3cret@cht.example.org",
		"https://user:s3cret%zz@cht.example.org", // does not parse
		"https://user:s3cret@cht.example.org:port",
		"//user:s3cret@cht.example.org", // no scheme
		"https://user:s3cret@",          // no host
	} {
		t.Run(raw, func(t *testing.T) {
			_, err := New(Config{InstanceURL: raw})
			if err == nil {
				t.Fatal("New accepted the URL")
			}
			if !strings.Contains(err.Error(), "InstanceURL") {
				t.Errorf("error %q does not name InstanceURL", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("password shown: %v", err)
			}
		})
	}
}
