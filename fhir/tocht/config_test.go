package tocht_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// TestConfigRedacts: a Config printed, formatted or logged (also inside
// another struct) shows its FHIR settings but neither the FHIR password,
// credentials embedded in FHIRURL, nor the NotifyEMR header.
func TestConfigRedacts(t *testing.T) {
	// With "//" and without: url.Parse reads "fhiruser" of the second as
	// its scheme.
	for _, fhirURL := range []string{"https://fhiruser:urlpass@fhir.example.org/fhir", "fhiruser:urlpass@fhir.example.org/fhir"} {
		testConfigRedacts(t, tocht.Config{FHIRURL: fhirURL, FHIRUsername: "mediator", FHIRPassword: "s3cret",
			NotifyEMR: &fhir.TaskSubscription{Endpoint: "https://emr:hookpass@emr.example.org/events", Header: []string{"Authorization: Bearer emrtoken"}}})
	}
	// New refuses the second without showing its password.
	_, err := tocht.New(tocht.Config{Converter: &fhir.Converter{}, CHT: &cht.Client{}, FHIRURL: "fhiruser:urlpass@fhir.example.org/fhir"})
	if err == nil || strings.Contains(err.Error(), "urlpass") || !strings.Contains(err.Error(), "FHIRURL") {
		t.Errorf("New with a FHIRURL without scheme: %v", err)
	}
}

func testConfigRedacts(t *testing.T, cfg tocht.Config) {
	t.Helper()
	type settings struct {
		Name   string
		Bridge tocht.Config
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("start", "bridge", cfg)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("start", "bridge", cfg)
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", cfg),
		"%+v":        fmt.Sprintf("%+v", cfg),
		"%s":         cfg.String(),
		"%#v":        fmt.Sprintf("%#v", cfg),
		"pointer %v": fmt.Sprintf("%v", &cfg),
		"nested %+v": fmt.Sprintf("%+v", settings{Name: "m", Bridge: cfg}),
		"nested %#v": fmt.Sprintf("%#v", settings{Name: "m", Bridge: cfg}),
		"slog text":  text.String(),
		"slog json":  js.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, "s3cret") || strings.Contains(out, "urlpass") || strings.Contains(out, "emrtoken") || strings.Contains(out, "hookpass") {
			t.Errorf("%s leaks a secret: %s", name, out)
		}
		if !strings.Contains(out, "mediator") || !strings.Contains(out, "fhir.example.org") || !strings.Contains(out, "REDACTED") {
			t.Errorf("%s hides what a reader needs (username, host, that a password is set): %s", name, out)
		}
	}
	if cfg.FHIRPassword != "s3cret" || !strings.Contains(cfg.FHIRURL, "urlpass") {
		t.Errorf("formatting changed the Config with FHIRURL %s", cfg.FHIRURL)
	}
	// NotifyEMR is the one member the caller shares with the formatted copy.
	if n := cfg.NotifyEMR; n.Header[0] != "Authorization: Bearer emrtoken" || !strings.Contains(n.Endpoint, "hookpass") {
		t.Errorf("formatting changed the caller's NotifyEMR: %+v", *n)
	}
}
