package fhir

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

const testInstance = "https://cht.example.org"

// testConverter returns a converter with the example mapping; cfg fields
// that are set override the defaults.
func testConverter(tb testing.TB, cfg Config) *Converter {
	tb.Helper()
	if cfg.InstanceURL == "" {
		cfg.InstanceURL = testInstance
	}
	if cfg.Mapping == nil {
		m, err := LoadMapping("testdata/mapping.yaml")
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Mapping = m
	}
	c, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func readFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func loadReport(tb testing.TB, name string) *cht.Report {
	tb.Helper()
	var r cht.Report
	if err := json.Unmarshal(readFile(tb, name), &r); err != nil {
		tb.Fatal(err)
	}
	return &r
}

func loadContact(tb testing.TB, name string) *cht.Contact {
	tb.Helper()
	var c cht.Contact
	if err := json.Unmarshal(readFile(tb, name), &c); err != nil {
		tb.Fatal(err)
	}
	return &c
}
