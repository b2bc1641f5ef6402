package chttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// TestOutboundJS pins relevant_to and expr evaluation as JavaScript, as
// CHT runs them with vm.runInNewContext(src, {doc})
// (shared-libs/transitions/src/transitions/mark_for_outbound.js relevantTo,
// shared-libs/outbound/src/outbound.js mapDocumentToPayload), including
// what a JavaScript subset cannot do: object literals, methods, unary
// minus, and JSON.stringify's treatment of undefined.
func TestOutboundJS(t *testing.T) {
	doc := map[string]any{"_id": "d1", "type": "data_record", "form": "referral", "n": json.Number("3"),
		"fields": map[string]any{"patient_id": "13985", "list": []any{"a", "b"}}, "role": "patient", "empty": "", "nul": nil}
	relevant := []struct {
		src  string
		want bool
	}{
		{"doc.type === 'data_record' && doc.form === 'referral'", true},
		{"doc.type === 'person' && doc.role == 'patient'", false},
		{"doc.fields.missing", false},
		{"doc.n === 3 && doc.n == '3' && doc.n !== '3'", true},
		{"['referral','pnc'].includes(doc.form)", true},
		{"doc.fields.list.indexOf('c') > -1", false},
		{"doc.empty", false},
		{"doc.nul == undefined && doc.nul !== undefined", true},
		{"doc.form.split('e').length === 3", true},
		{"(function(){ return doc.role === 'patient' })()", true},
		{"typeof require === 'undefined' && typeof process === 'undefined'", true}, // only doc is in scope
	}
	for _, tt := range relevant {
		p, err := compileJS(tt.src)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		js, err := newJSDoc(doc)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := js.truthy(p); err != nil || got != tt.want {
			t.Errorf("relevant_to %s = %v (%v), want %v", tt.src, got, err, tt.want)
		}
	}
	exprs := []struct {
		expr, want string
	}{
		{`[{ "system": "cht", "use": "official", "value": doc._id }]`, `{"v":[{"system":"cht","use":"official","value":"d1"}]}`},
		{`'cht/'.concat(doc._id)`, `{"v":"cht/d1"}`},
		{`doc.n - 1`, `{"v":2}`},
		{`-1`, `{"v":-1}`},
		{`[doc.nope, 1]`, `{"v":[null,1]}`},             // undefined in an array is null
		{`({a: doc.nope, b: 1})`, `{"v":{"b":1}}`},      // and dropped from an object
		{`({a: 1, b: 2, a: 3})`, `{"v":{"a":3,"b":2}}`}, // duplicate keys: the last value, the first position
		{`0.1 + 0.2`, `{"v":0.30000000000000004}`},
		{`1e21`, `{"v":1e+21}`},
		{`NaN`, `{"v":null}`},
		{`new Date(0)`, `{"v":"1970-01-01T00:00:00.000Z"}`},
		{`'<&>'`, `{"v":"<&>"}`},
		{`doc.nul`, `{"v":null}`},
	}
	for _, tt := range exprs {
		got, err := ApplyMapping(map[string]any{"v": outbound.MapExpr(tt.expr, false)}, doc)
		if err != nil || string(got) != tt.want {
			t.Errorf("expr %s: %s (%v), want %s", tt.expr, got, err, tt.want)
		}
	}
	if _, err := compileJS("doc.type ==="); err == nil {
		t.Error("a syntax error compiled")
	}
	js, _ := newJSDoc(doc)
	p, _ := compileJS("while (true) {}")
	if _, err := js.truthy(p); err == nil {
		t.Error("an endless loop was not interrupted")
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
	// In the order mark_for_outbound.js walks them (Object.keys of the
	// outbound object): as written, not sorted.
	if len(cfgs) != 2 || cfgs[0].Name != "patient" || cfgs[1].Name != "openmrs_height_weight" {
		t.Fatalf("configs %+v", cfgs)
	}
	cfgs[0], cfgs[1] = cfgs[1], cfgs[0] // the checks below name the encounter push first
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
			if err == nil || !strings.Contains(err.Error(), "Mapping error for 'patient/doc.phone' on source document '"+DemoChildID+"': cannot find 'doc.phone' on source document") ||
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
		{"relevant_to syntax error", `{"p":{"relevant_to":"doc.a ===","destination":{"base_url":"http://x"},"mapping":{"a":"doc._id"}}}`, "relevant_to"},
		{"expr syntax error", `{"p":{"destination":{"base_url":"http://x"},"mapping":{"a":{"expr":"[{system:'cht'}"}}}}`, `mapping "a": expr`},
		{"neither path nor expr", `{"p":{"destination":{"base_url":"http://x"},"mapping":{"a":{"expr":false}}}}`, "either 'expr' or 'path' is required"},
	}
	for _, tt := range errTests {
		_, err := OutboundFromSettings([]byte(tt.settings), srv.Credential)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestOutboundFromSettingsNeedsMarkForOutbound pins that a whole
// app_settings document pushes only when it enables the transition:
// shared-libs/transitions/src/transitions/index.js loadTransitions reads
// conf = transitions.mark_for_outbound and loads the transition only when
// conf is truthy and conf.disable is not (Sentinel, and the API with
// loadTransitions(true)); otherwise no outbound push ever runs. A bare
// outbound block (no "outbound" member) is taken as already enabled.
func TestOutboundFromSettingsNeedsMarkForOutbound(t *testing.T) {
	push := `"outbound":{"p":{"relevant_to":"true","destination":{"base_url":"http://h","path":"/a"},"mapping":{"id":"doc._id"}}}`
	for _, tc := range []struct {
		name, settings string
		runs           bool
	}{
		{"absent", `{` + push + `}`, false},
		{"transitions without it", `{"transitions":{"update_clinics":true},` + push + `}`, false},
		{"false", `{"transitions":{"mark_for_outbound":false},` + push + `}`, false},
		{"null", `{"transitions":{"mark_for_outbound":null},` + push + `}`, false},
		{"disabled", `{"transitions":{"mark_for_outbound":{"disable":true}},` + push + `}`, false},
		{"disable truthy", `{"transitions":{"mark_for_outbound":{"disable":"yes"}},` + push + `}`, false},
		{"true", `{"transitions":{"mark_for_outbound":true},` + push + `}`, true},
		{"empty object", `{"transitions":{"mark_for_outbound":{}},` + push + `}`, true},
		{"disable false", `{"transitions":{"mark_for_outbound":{"disable":false}},` + push + `}`, true},
		{"disable 0", `{"transitions":{"mark_for_outbound":{"disable":0}},` + push + `}`, true},
		{"bare outbound block", push[len(`"outbound":`):], true},
	} {
		cfgs, err := OutboundFromSettings([]byte(tc.settings), nil)
		switch {
		case tc.runs && (err != nil || len(cfgs) != 1):
			t.Errorf("%s: %d configs, %v; CHT runs the push", tc.name, len(cfgs), err)
		case !tc.runs && (err == nil || !strings.Contains(err.Error(), "transitions.mark_for_outbound is not enabled")):
			t.Errorf("%s: %d configs, err %v; CHT runs no push and the error must say why", tc.name, len(cfgs), err)
		}
	}
}

// TestOutboundFromSettingsConfigErrorsAtSendTime pins that CHT meets
// these configuration errors only when it pushes, so each fails only its
// own push, which is queued and retried, while the other pushes of the
// same app_settings work. shared-libs/outbound/src/outbound.js: send calls
// mapDocumentToPayload (Object.keys(config.mapping) throws for a missing
// mapping; mapping {} gives {}), then sendPayload, which joins the URL
// with url-join (a missing path throws "Url must be a string") and calls
// handleAuth (validateAuthConfig, fetchPassword) before the request; send
// rethrows, mark_for_outbound.js queues the push and sentinel/src/
// schedule/outbound.js retries it, reading the credential store again.
func TestOutboundFromSettingsConfigErrorsAtSendTime(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	dest := newDestination(t, reply(200, "application/json", "{}"))
	auth := func(a string) string {
		return `{"relevant_to":"true","destination":{"base_url":"` + dest.URL + `","path":"/b","auth":` + a + `},"mapping":{"id":"doc._id"}}`
	}
	for _, tc := range []struct {
		name, push string
		want       Outcome
		err        string
		fix        func() // makes the retry succeed, if CHT would
	}{
		{"missing credential", auth(`{"type":"basic","username":"u","password_key":"k1"}`), OutcomeFailed,
			"Credentials for 'k1' have not been configured. See the Outbound documentation.", func() { srv.SetCredential("k1", "pw") }},
		{"missing header credential", auth(`{"type":"header","name":"Authorization","value_key":"k2"}`), OutcomeFailed,
			"Credentials for 'k2' have not been configured.", func() { srv.SetCredential("k2", "Token t") }},
		{"unknown auth type", auth(`{"type":"oauth"}`), OutcomeFailed, "Invalid auth type 'oauth'. Supported: basic, header, muso-sih", nil},
		{"no auth type", auth(`{"username":"u"}`), OutcomeFailed, "No auth.type, either declare the type or omit the auth property", nil},
		{"header name", auth(`{"type":"header","name":"X-Key","value_key":"k3"}`), OutcomeFailed, "Unsupported header name 'X-Key'. Supported: authorization", nil},
		{"no path", `{"relevant_to":"true","destination":{"base_url":"` + dest.URL + `"},"mapping":{"id":"doc._id"}}`, OutcomeFailed,
			"Url must be a string. Received undefined", nil},
		{"no destination", `{"relevant_to":"true","mapping":{"id":"doc._id"}}`, OutcomeFailed, "reading 'base_url'", nil},
		{"no mapping", `{"relevant_to":"true","destination":{"base_url":"` + dest.URL + `","path":"/b"}}`, OutcomeMappingError,
			"Cannot convert undefined or null to object", nil},
		{"empty mapping", `{"relevant_to":"true","destination":{"base_url":"` + dest.URL + `","path":"/b"},"mapping":{}}`, OutcomeSent, "", nil},
	} {
		settings := `{"good":{"relevant_to":"true","destination":{"base_url":"` + dest.URL + `","path":"/a"},"mapping":{"id":"doc._id"}},
			"other":` + tc.push + `}`
		cfgs, err := OutboundFromSettings([]byte(settings), srv.Credential)
		if err != nil || len(cfgs) != 2 {
			t.Errorf("%s: %d configs, %v; CHT loads both", tc.name, len(cfgs), err)
			continue
		}
		before := dest.count()
		for _, cfg := range cfgs {
			p, err := NewOutboundPusher(cfg)
			if err != nil {
				t.Fatalf("%s: %s: %v", tc.name, cfg.Name, err)
			}
			a, err := p.Push(context.Background(), map[string]any{"_id": "d1"})
			if cfg.Name == "good" {
				if a.Outcome != OutcomeSent {
					t.Errorf("%s: the good push %s (%v)", tc.name, a.Outcome, err)
				}
				continue
			}
			if a.Outcome != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("%s: %s, %v; want %s, %q", tc.name, a.Outcome, err, tc.want, tc.err)
			}
			if tc.want == OutcomeSent && string(a.Payload) != "{}" {
				t.Errorf("%s: payload %s, CHT sends {}", tc.name, a.Payload)
			}
			if tc.want != OutcomeSent && len(p.Queue()) != 1 {
				t.Errorf("%s: queue %v; CHT queues the failed push", tc.name, p.Queue())
			}
			if tc.fix != nil {
				tc.fix()
				if err := p.RunQueue(context.Background()); err != nil || len(p.Queue()) != 0 {
					t.Errorf("%s: retry after the fix: %v, queue %v", tc.name, err, p.Queue())
				}
			}
		}
		sent := 1
		if tc.want == OutcomeSent || tc.fix != nil {
			sent = 2
		}
		if got := dest.count() - before; got != sent {
			t.Errorf("%s: %d requests, want %d (a failed config never reaches the destination)", tc.name, got, sent)
		}
	}
	// The retries carried the credentials set after the first failure.
	var basic, header bool
	for _, r := range dest.reqs {
		u, pw, _ := r.BasicAuth()
		basic = basic || (u == "u" && pw == "pw")
		header = header || r.Header.Get("Authorization") == "Token t"
	}
	if !basic || !header {
		t.Errorf("retries with the new credentials: basic %v, header %v", basic, header)
	}
}

// TestCredentialsEndpoint: api/src/routing.js parses PUT
// /api/v1/credentials/:key with textParser only (text/plain,
// application/xml, text/csv); with another type the body stays {}, and
// controllers/credentials.js put answers 400 "Missing required request
// body" before it checks that the user is a database admin (403):
// auth.isDbAdmin, which is user-management roles.js isDbAdmin, role
// "_admin", and from cht-core 5.1.0 "admin" too (DB_ADMIN_ROLES).
func TestCredentialsEndpoint(t *testing.T) {
	servers := map[string]*Server{}
	server := func(version string) *Server {
		if servers[version] == nil {
			srv := newTestServer(t, Config{Version: version})
			// An online user who is no database admin (an offline one
			// meets the offline firewall first), and an app admin.
			srv.AddUser(User{Name: "manager", Password: "manager-pass", Roles: []string{RoleOnline}})
			srv.AddUser(User{Name: "app-admin", Password: "pw", Roles: []string{RoleAdmin}})
			servers[version] = srv
		}
		return servers[version]
	}
	for _, tt := range []struct {
		name, ct, body, user, pass string
		want                       int
		version                    string
	}{
		{"text/plain", "text/plain", "s3cret", "", "", http.StatusOK, ""},
		{"with a charset", "text/plain; charset=utf-8", "s3cret", "", "", http.StatusOK, ""},
		{"text/csv", "text/csv", "s3cret", "", "", http.StatusOK, ""},
		{"form-encoded", "application/x-www-form-urlencoded", "s3cret", "", "", http.StatusBadRequest, ""},
		{"JSON", "application/json", `"s3cret"`, "", "", http.StatusBadRequest, ""},
		{"no type", "", "s3cret", "", "", http.StatusBadRequest, ""},
		{"empty", "text/plain", "", "", "", http.StatusBadRequest, ""},
		{"not an admin", "text/plain", "s3cret", "manager", "manager-pass", http.StatusForbidden, ""},
		{"not an admin, no body", "application/json", `"s3cret"`, "manager", "manager-pass", http.StatusBadRequest, ""},
		{"role admin from 5.1", "text/plain", "s3cret", "app-admin", "pw", http.StatusOK, "5.1.0"},
		{"role admin before 5.1", "text/plain", "s3cret", "app-admin", "pw", http.StatusForbidden, "5.0.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(tt.version)
			key := fmt.Sprintf("key-%x", tt.name)
			r := do(t, srv, call{method: http.MethodPut, path: "/api/v1/credentials/" + key, body: tt.body, ct: tt.ct, user: tt.user, pass: tt.pass})
			if r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
			got, ok := srv.Credential(key)
			if ok != (tt.want == http.StatusOK) || ok && got != tt.body {
				t.Errorf("stored %q, %v", got, ok)
			}
		})
	}
}

// TestRelevantToThatThrowsStopsEveryPush: mark_for_outbound.js relevantTo
// evaluates every push's relevant_to before it sends any; one that throws
// rejects the transition (transitions/index.js applyTransition catches
// it), so no push of that change goes out and no task is written. A push
// whose relevant_to reads doc.fields.x throws for a person (doc.fields is
// undefined) and so stops the contacts push too.
func TestRelevantToThatThrowsStopsEveryPush(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	dest := newDestination(t, reply(200, "application/json", "{}"))
	settings := `{"transitions": {"mark_for_outbound": true}, "outbound": {
	  "contacts": {"relevant_to": "doc.type === 'person'", "destination": {"base_url": "` + dest.URL + `", "path": "/contacts"},
	    "mapping": {"id": "doc._id"}},
	  "reports": {"relevant_to": "doc.fields.x === 1", "destination": {"base_url": "` + dest.URL + `", "path": "/reports"},
	    "mapping": {"id": "doc._id"}}}}`
	cfgs, err := OutboundFromSettings([]byte(settings), srv.Credential)
	if err != nil {
		t.Fatal(err)
	}
	var pushers []*OutboundPusher
	for _, c := range cfgs {
		c.Server = srv
		p, err := NewOutboundPusher(c)
		if err != nil {
			t.Fatal(err)
		}
		pushers = append(pushers, p)
	}
	ctx := context.Background()
	for _, p := range pushers {
		if _, err := p.PushID(ctx, DemoPatientID); err == nil || !strings.Contains(err.Error(), "reports relevant_to") {
			t.Errorf("%s: err %v, want the reports push's relevant_to error", p.cfg.Name, err)
		}
		if n := p.CountOutcome(OutcomeSent); n != 0 {
			t.Errorf("%s sent %d", p.cfg.Name, n)
		}
		if q := p.Queue(); len(q) != 0 {
			t.Errorf("%s queued %v", p.cfg.Name, q)
		}
	}
	if dest.count() != 0 {
		t.Fatalf("%d pushes reached the destination", dest.count())
	}
	// A report with fields: both relevant_to evaluate; only the reports
	// push is relevant.
	if _, err := srv.PutDoc(map[string]any{"_id": "rep-x", "type": "data_record", "form": "X", "fields": map[string]any{"x": 1}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range pushers {
		if _, err := p.PushID(ctx, "rep-x"); err != nil {
			t.Errorf("%s: %v", p.cfg.Name, err)
		}
	}
	if dest.count() != 1 || dest.reqs[0].URL.Path != "/reports" {
		t.Fatalf("%d pushes, want the reports push only", dest.count())
	}
}
