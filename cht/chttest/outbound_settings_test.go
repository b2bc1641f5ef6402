package chttest

import (
	"context"
	"strings"
	"testing"
)

func TestCompileJS(t *testing.T) {
	doc := map[string]any{"type": "data_record", "form": "referral", "n": mustNumber("3"), "fields": map[string]any{
		"patient_id": "13985", "list": []any{"a", "b"}}, "role": "patient", "empty": "", "nul": nil}
	tests := []struct {
		src  string
		want any
	}{
		{"doc.type === 'data_record' && doc.form === 'referral'", true},
		{"doc.type === 'person' && doc.role == 'patient'", false},
		{`doc.type === "data_record" && doc.fields.patient_id`, "13985"},
		{"doc.fields.missing", undefined},
		{"!doc.fields.missing", true},
		{"doc.n === 3 && doc.n == '3' && doc.n !== '3'", true},
		{"doc.n > 2 && doc.n <= 3", true},
		{"['referral','pnc'].includes(doc.form)", true},
		{"doc.fields.list.includes('c')", false},
		{"doc.fields.list[1]", "b"},
		{"doc['fields']['patient_id']", "13985"},
		{"doc.fields.list.length", 2.0},
		{"doc.empty || 'default'", "default"},
		{"doc.form === 'referral' ? 'urgent' : 'routine'", "urgent"},
		{"'Patient/' + doc.fields.patient_id", "Patient/13985"},
		{"doc.nul == undefined && doc.nul !== undefined", true},
		{"(doc.type === 'x' || doc.role === 'patient')", true},
	}
	for _, tt := range tests {
		n, err := compileJS(tt.src)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		got, err := n(doc)
		if err != nil || got != tt.want {
			t.Errorf("%s = %#v (%v), want %#v", tt.src, got, err, tt.want)
		}
	}
	for _, src := range []string{"new Date()", "doc.name.split(' ')", "{a:1}", "doc.a = 1", "doc.type ===", "`x`"} {
		if _, err := compileJS(src); err == nil {
			t.Errorf("%q compiled; it must be rejected", src)
		}
	}
	n, _ := compileJS("doc.fields.missing.deeper")
	if _, err := n(doc); err == nil || !strings.Contains(err.Error(), "Cannot read properties of undefined") {
		t.Errorf("reading through undefined: %v", err)
	}
}

// settingsExample is the reference §4.1 schema with the §6.1 "patient" push
// (openmrs-remove-incoming cht-config) and an encounter push.
const settingsExample = `{"transitions":{"mark_for_outbound":true},"outbound":{
  "patient":{
    "relevant_to":"doc.type === 'person' && doc.patient_id && doc.role === 'patient'",
    "destination":{"base_url":"BASE","path":"/mediator/cht/patient",
      "auth":{"type":"Basic","username":"interop-client","password_key":"openhim1"}},
    "mapping":{"doc._id":"doc._id","doc.name":"doc.name","doc.phone":"doc.phone",
      "doc.date_of_birth":"doc.date_of_birth","doc.sex":"doc.sex","doc.patient_id":"doc.patient_id"}},
  "openmrs_height_weight":{
    "relevant_to":"doc.type === 'data_record' && doc.form === 'HEIGHT_WEIGHT'",
    "destination":{"base_url":"BASE/","path":"mediator/cht/encounter",
      "auth":{"type":"header","name":"Authorization","value_key":"token1"}},
    "mapping":{"id":"doc._id","patient_uuid":"doc.fields.patient_uuid","reported_date":"doc.reported_date",
      "observations.0.code":{"expr":"'5090AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'"},
      "observations.0.valueQuantity.value":"doc.fields.height",
      "observations.0.valueQuantity.unit":{"expr":"'cm'"},
      "observations.1.code":{"expr":"'5089AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'"},
      "observations.1.valueQuantity.value":{"path":"doc.fields.weight","optional":true},
      "observations.1.valueQuantity.unit":{"expr":"'kg'"},
      "chw":{"expr":"doc.contact.name"},
      "note":{"expr":"doc.fields.note","optional":true}}}}}`

func TestOutboundFromSettings(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	srv.SetCredential("openhim1", "interop-password")
	srv.SetCredential("token1", "Token abc")
	dest := newDestination(t, reply(200, "application/json", "{}"))
	cfgs, err := OutboundFromSettings([]byte(strings.ReplaceAll(settingsExample, "BASE", dest.URL)), srv.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 2 || cfgs[0].Name != "openmrs_height_weight" || cfgs[1].Name != "patient" {
		t.Fatalf("configs %+v", cfgs)
	}
	if cfgs[0].URL != dest.URL+"/mediator/cht/encounter" || cfgs[0].AuthHeader != "Token abc" {
		t.Errorf("encounter push: URL %q auth %q", cfgs[0].URL, cfgs[0].AuthHeader)
	}
	if cfgs[1].Username != "interop-client" || cfgs[1].Password != "interop-password" {
		t.Errorf("patient push auth %q/%q", cfgs[1].Username, cfgs[1].Password)
	}
	ctx := context.Background()
	for _, c := range cfgs {
		c.Server = srv
		p, err := NewOutboundPusher(c)
		if err != nil {
			t.Fatal(err)
		}
		n, err := p.Sync(ctx)
		if n != 13 {
			t.Fatalf("%s: Sync evaluated %d docs, want 13", c.Name, n)
		}
		if c.Name == "patient" {
			// Reference §6.2: the patient mapping uses required paths, so a
			// person without a phone (the child) fails mapping and is
			// retried forever.
			if err == nil || !strings.Contains(err.Error(), `"doc.phone" not found`) ||
				len(p.Queue()) != 1 || p.Queue()[0] != DemoChildID {
				t.Fatalf("patient: err %v queue %v", err, p.Queue())
			}
		} else if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if got := p.CountOutcome(OutcomeSent); got != 1 {
			t.Errorf("%s: %d sent, want 1 (only one relevant doc in the fixture): %+v", c.Name, got, p.Attempts())
		}
	}
	if dest.count() != 2 {
		t.Fatalf("%d requests", dest.count())
	}
	jsonEqual(t, []byte(dest.bodies[0]), []byte(`{"id":"442b0937-a32f-443e-8d28-7d9a7552fda2",
		"patient_uuid":"75905106a4bc2a9046ed28df070016ce","reported_date":1730355950419,"chw":"Example CHW",
		"observations":[{"code":"5090AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","valueQuantity":{"value":172,"unit":"cm"}},
		{"code":"5089AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","valueQuantity":{"value":65,"unit":"kg"}}]}`))
	if got := dest.reqs[0].Header.Get("Authorization"); got != "Token abc" {
		t.Errorf("header auth %q", got)
	}
	jsonEqual(t, []byte(dest.bodies[1]), []byte(`{"doc":{"_id":"75905106a4bc2a9046ed28df070016ce","name":"John Test",
		"phone":"+2548277217095","date_of_birth":"1980-06-06","sex":"male","patient_id":"13985"}}`))
	if u, pw, _ := dest.reqs[1].BasicAuth(); u != "interop-client" || pw != "interop-password" {
		t.Errorf("basic auth %q %q", u, pw)
	}

	errTests := []struct {
		name, settings, want string
	}{
		{"missing credential", `{"p":{"destination":{"base_url":"http://x","auth":{"type":"basic","username":"u","password_key":"nokey"}},"mapping":{"a":"doc._id"}}}`,
			"Credentials for 'nokey' have not been configured."},
		{"invalid auth type", `{"p":{"destination":{"base_url":"http://x","auth":{"type":"oauth"}},"mapping":{"a":"doc._id"}}}`, "Invalid auth type"},
		{"unsupported JavaScript", `{"p":{"relevant_to":"doc.a.split(',').length > 1","destination":{"base_url":"http://x"},"mapping":{"a":"doc._id"}}}`, "relevant_to"},
		{"object literal expr", `{"p":{"destination":{"base_url":"http://x"},"mapping":{"a":{"expr":"[{system:'cht'}]"}}}}`, "expr"},
		{"no mapping", `{"p":{"destination":{"base_url":"http://x"}}}`, "mapping is required"},
	}
	for _, tt := range errTests {
		_, err := OutboundFromSettings([]byte(tt.settings), srv.Credential)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
}
