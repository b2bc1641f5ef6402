package tocht_test

import (
	"encoding/json"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// demoTypes is the contact hierarchy of chttest's demo app, parsed from its
// app settings as a mediator reads them (cht.Client.ContactTypes).
func demoTypes(t testing.TB) cht.ContactTypes {
	t.Helper()
	settings, err := json.Marshal(map[string]any{"contact_types": chttest.DemoContactTypes})
	if err != nil {
		t.Fatal(err)
	}
	types, err := cht.ParseContactTypes(settings)
	if err != nil {
		t.Fatal(err)
	}
	return types
}
