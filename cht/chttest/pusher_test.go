package chttest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func constExpr(v any) MapExpr {
	return MapExpr{Expr: func(map[string]any) (any, error) { return v, nil }}
}

// heightWeightMapping is the openmrs_height_weight push of reference §6.1
// (exprs for the constants).
var heightWeightMapping = map[string]any{
	"id":                                 "doc._id",
	"patient_uuid":                       "doc.fields.patient_uuid",
	"reported_date":                      "doc.reported_date",
	"observations.0.code":                constExpr("5090AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
	"observations.0.valueQuantity.value": "doc.fields.height",
	"observations.0.valueQuantity.unit":  constExpr("cm"),
	"observations.1.code":                constExpr("5089AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
	"observations.1.valueQuantity.value": "doc.fields.weight",
	"observations.1.valueQuantity.unit":  constExpr("kg"),
}

// patientMapping is the "patient" push of reference §6.1.
var patientMapping = map[string]any{
	"doc._id": "doc._id", "doc.name": "doc.name", "doc.phone": "doc.phone",
	"doc.date_of_birth": "doc.date_of_birth", "doc.sex": "doc.sex", "doc.patient_id": "doc.patient_id",
}

func TestApplyMappingReference(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		docID   string
		mapping map[string]any
		want    string
	}{
		{
			// Reference §8.2: the outbound body POSTed to /mediator/cht/patient.
			name: "patient", docID: DemoPatientID, mapping: patientMapping,
			want: `{"doc":{"_id":"75905106a4bc2a9046ed28df070016ce","name":"John Test","phone":"+2548277217095",
				"date_of_birth":"1980-06-06","sex":"male","patient_id":"13985"}}`,
		},
		{
			// Reference §8.3: the shape of the body POSTed to /mediator/cht/encounter
			// (values from the demo report; the reference's example has no labels in its mapping).
			name: "height weight", docID: DemoHeightWeightReportID, mapping: heightWeightMapping,
			want: `{"id":"442b0937-a32f-443e-8d28-7d9a7552fda2","patient_uuid":"75905106a4bc2a9046ed28df070016ce",
				"reported_date":1730355950419,"observations":[
				{"code":"5090AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","valueQuantity":{"value":172,"unit":"cm"}},
				{"code":"5089AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","valueQuantity":{"value":65,"unit":"kg"}}]}`,
		},
		{
			// Sentinel maps the hydrated doc: lineage and patient are reachable.
			name: "hydrated paths", docID: DemoAssessmentReportID,
			mapping: map[string]any{
				"subject":  "doc.patient._id",
				"chw":      "doc.contact.name",
				"facility": "doc.contact.parent.parent.name",
				"fever":    "doc.fields.group_fever.fever",
				"missing":  MapPath{Path: "doc.fields.nope", Optional: true},
				"alsoMiss": map[string]any{"path": "doc.fields.nope", "optional": true},
				"first":    "doc.fields.inputs.contact._id",
			},
			want: `{"subject":"c0ffee00-1d2e-4f3a-9b4c-5d6e7f8a9b01","chw":"Example CHW","facility":"Ugunja Health Centre",
				"fever":"yes","first":"c0ffee00-1d2e-4f3a-9b4c-5d6e7f8a9b01"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, ok := srv.HydratedDoc(tt.docID)
			if !ok {
				t.Fatal("doc missing")
			}
			got, err := ApplyMapping(tt.mapping, doc)
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, []byte(mustMarshal(t, got)), []byte(tt.want))
		})
	}

	errTests := []struct {
		name    string
		mapping map[string]any
		doc     map[string]any
		want    string
	}{
		{"required missing", map[string]any{"x": "doc.a.b"}, map[string]any{"a": map[string]any{}}, `JSON path "doc.a.b" not found`},
		{"expr fails", map[string]any{"x": MapExpr{Expr: func(map[string]any) (any, error) { return nil, errors.New("boom") }}}, map[string]any{}, "boom"},
		{"required expr undefined", map[string]any{"x": MapExpr{Expr: func(map[string]any) (any, error) { return nil, nil }}}, map[string]any{}, "not found"},
		{"array then key", map[string]any{"a.0": "doc.v", "a.b": "doc.v"}, map[string]any{"v": 1}, `segment "b" on an array`},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ApplyMapping(tt.mapping, tt.doc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// null is a value (not undefined) and is sent.
	got, err := ApplyMapping(map[string]any{"x": "doc.n"}, map[string]any{"n": nil})
	if err != nil || mustMarshal(t, got) != `{"x":null}` {
		t.Fatalf("null: %v %v", got, err)
	}
}

func TestNewOutboundPusherValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  PusherConfig
	}{
		{"no URL", PusherConfig{Mapping: patientMapping}},
		{"relative URL", PusherConfig{URL: "/x", Mapping: patientMapping}},
		{"no mapping", PusherConfig{URL: "http://x"}},
		{"JS expr", PusherConfig{URL: "http://x", Mapping: map[string]any{"a": map[string]any{"expr": "doc.a"}}}},
		{"bad version", PusherConfig{URL: "http://x", Mapping: patientMapping, Version: "four"}},
	}
	for _, tt := range tests {
		if _, err := NewOutboundPusher(tt.cfg); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

// destination is a programmable receiving endpoint.
type destination struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  []string
	respond func(w http.ResponseWriter, r *http.Request)
}

func newDestination(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *destination {
	d := &destination{respond: respond}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.reqs = append(d.reqs, r)
		d.bodies = append(d.bodies, string(b))
		respond := d.respond
		d.mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *destination) setRespond(f func(w http.ResponseWriter, r *http.Request)) {
	d.mu.Lock()
	d.respond = f
	d.mu.Unlock()
}

func (d *destination) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.reqs)
}

func reply(status int, ct, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestPusherSuccessRules(t *testing.T) {
	doc := map[string]any{"_id": "p1", "name": "A", "phone": "1", "date_of_birth": "x", "sex": "f", "patient_id": "1"}
	tests := []struct {
		name    string
		version string
		respond func(w http.ResponseWriter, r *http.Request)
		want    Outcome
	}{
		{"2xx", "4.16.0", reply(200, "", ""), OutcomeSent},
		{"201 JSON", "4.20.0", reply(201, "application/json", `{"ok":true}`), OutcomeSent},
		{"500", "4.20.0", reply(500, "", ""), OutcomeFailed},
		{"400 is retried too", "4.20.0", reply(400, "application/json", `{"error":"bad"}`), OutcomeFailed},
		{"3xx before 4.17", "4.16.0", reply(350, "", ""), OutcomeFailed},
		{"3xx from 4.17", "4.17.0", reply(350, "", ""), OutcomeSent},
		{"300 is not in (300,399)", "4.17.0", reply(300, "", ""), OutcomeFailed},
		{"empty body with JSON type from 4.17", "4.17.0", reply(200, "application/json; charset=utf-8", ""), OutcomeFailed},
		{"invalid JSON from 4.17", "5.2.0", reply(200, "application/json", "OK"), OutcomeFailed},
		{"invalid JSON before 4.17", "4.16.0", reply(200, "application/json", "OK"), OutcomeSent},
		{"empty body without type", "5.2.0", reply(200, "", ""), OutcomeSent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := newDestination(t, tt.respond)
			p, err := NewOutboundPusher(PusherConfig{Name: "patient", URL: dest.URL + "/mediator/cht/patient", Version: tt.version,
				Username: "interop", Password: "interop-password", Mapping: patientMapping})
			if err != nil {
				t.Fatal(err)
			}
			a, err := p.Push(context.Background(), doc)
			if a.Outcome != tt.want {
				t.Fatalf("outcome %s (err %v), want %s", a.Outcome, err, tt.want)
			}
			if (err != nil) != (tt.want == OutcomeFailed) {
				t.Errorf("err %v for outcome %s", err, a.Outcome)
			}
			if queued := len(p.Queue()) == 1; queued != (tt.want == OutcomeFailed) {
				t.Errorf("queue %v after %s", p.Queue(), a.Outcome)
			}
			if dest.count() != 1 {
				t.Fatalf("%d requests", dest.count())
			}
			r := dest.reqs[0]
			u, pw, _ := r.BasicAuth()
			if r.Method != "POST" || r.URL.Path != "/mediator/cht/patient" || u != "interop" || pw != "interop-password" ||
				r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Accept") != "application/json" {
				t.Errorf("request %s %s %v", r.Method, r.URL, r.Header)
			}
			ua := r.Header.Get("User-Agent")
			if v, _ := parseVersion(tt.version); v.atLeast(4, 18) != strings.HasPrefix(ua, "Community Health Toolkit/"+v.String()) {
				t.Errorf("User-Agent %q on %s", ua, tt.version)
			}
			jsonEqual(t, []byte(dest.bodies[0]), []byte(`{"doc":{"_id":"p1","name":"A","phone":"1","date_of_birth":"x","sex":"f","patient_id":"1"}}`))
		})
	}

	// From 4.17 redirects are followed (fetch): a 302 turns the POST into a
	// GET of the target, whose 200 counts as success.
	target := newDestination(t, reply(200, "", ""))
	redir := newDestination(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/moved", http.StatusFound)
	})
	for _, v := range []struct {
		version string
		want    Outcome
	}{{"4.16.0", OutcomeFailed}, {"4.17.0", OutcomeSent}} {
		p, _ := NewOutboundPusher(PusherConfig{URL: redir.URL, Version: v.version, Mapping: patientMapping})
		if a, _ := p.Push(context.Background(), doc); a.Outcome != v.want {
			t.Errorf("redirect on %s: %s, want %s", v.version, a.Outcome, v.want)
		}
	}
	if target.count() != 1 || target.reqs[0].Method != "GET" {
		t.Errorf("redirect target got %d requests", target.count())
	}
}

func TestPusherTimeout(t *testing.T) {
	release := make(chan struct{})
	dest := newDestination(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	p, _ := NewOutboundPusher(PusherConfig{URL: dest.URL, Timeout: 50 * time.Millisecond, Mapping: map[string]any{"id": "doc._id"}})
	a, err := p.Push(context.Background(), map[string]any{"_id": "x"})
	var ne interface{ Timeout() bool }
	if a.Outcome != OutcomeFailed || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("outcome %s err %v, want a timeout failure", a.Outcome, err)
	}
}

func TestPusherHashDedupe(t *testing.T) {
	dest := newDestination(t, reply(200, "application/json", "{}"))
	p, _ := NewOutboundPusher(PusherConfig{URL: dest.URL, Mapping: patientMapping,
		RelevantTo: func(d map[string]any) bool { return d["role"] == "patient" }})
	ctx := context.Background()
	doc := map[string]any{"_id": "p1", "name": "A", "phone": "1", "date_of_birth": "x", "sex": "f", "patient_id": "1", "role": "patient"}
	steps := []struct {
		change func()
		want   Outcome
	}{
		{func() {}, OutcomeSent},
		{func() {}, OutcomeAlreadySent},                            // same payload
		{func() { doc["notes"] = "unmapped" }, OutcomeAlreadySent}, // new rev, same payload
		{func() { doc["phone"] = "2" }, OutcomeSent},               // payload changed
		{func() { doc["role"] = "chw" }, OutcomeNotRelevant},
		{func() { doc["role"], doc["_deleted"] = "patient", true }, OutcomeNotRelevant},
	}
	for i, s := range steps {
		s.change()
		a, err := p.Push(ctx, doc)
		if err != nil || a.Outcome != s.want {
			t.Fatalf("step %d: %s %v, want %s", i, a.Outcome, err, s.want)
		}
	}
	if dest.count() != 2 {
		t.Errorf("destination got %d requests, want 2", dest.count())
	}
	h, ok := p.SentHash("p1")
	if !ok || h != PayloadHash(map[string]any{"doc": map[string]any{"_id": "p1", "name": "A", "phone": "2",
		"date_of_birth": "x", "sex": "f", "patient_id": "1"}}) {
		t.Errorf("SentHash %q %v", h, ok)
	}
	if got, want := p.CountOutcome(OutcomeAlreadySent), 2; got != want {
		t.Errorf("already sent %d, want %d", got, want)
	}
}

func TestPusherRetryQueue(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	dest := newDestination(t, reply(503, "", ""))
	p, err := NewOutboundPusher(PusherConfig{Name: "patient", URL: dest.URL, Mapping: patientMapping, Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if a, err := p.PushID(ctx, DemoPatientID); a.Outcome != OutcomeFailed || err == nil {
		t.Fatalf("first push %s %v", a.Outcome, err)
	}
	if _, err := p.PushID(ctx, DemoPatientID); err == nil {
		t.Fatal("second push succeeded")
	}
	if q := p.Queue(); len(q) != 1 || q[0] != DemoPatientID {
		t.Fatalf("queue %v: the task must not be topped up", q)
	}
	if err := p.RunQueue(ctx); err == nil {
		t.Fatal("RunQueue with a failing destination returned nil")
	}
	// The doc changes while queued; the retry sends the current doc.
	raw := mustDoc(t, srv, DemoPatientID)
	doc, _ := decodeDoc(raw)
	doc["phone"] = "+254700000000"
	if _, err := srv.PutDoc(doc); err != nil {
		t.Fatal(err)
	}
	dest.setRespond(reply(200, "application/json", `{"status":"ok"}`))
	if err := p.RunQueue(ctx); err != nil {
		t.Fatal(err)
	}
	if q := p.Queue(); len(q) != 0 {
		t.Fatalf("queue %v after success", q)
	}
	last := dest.bodies[len(dest.bodies)-1]
	if !strings.Contains(last, `"phone":"+254700000000"`) {
		t.Errorf("retry sent %s, want the current doc", last)
	}
	atts := p.Attempts()
	if a := atts[len(atts)-1]; !a.Retry || a.Outcome != OutcomeSent || a.StatusCode != 200 {
		t.Errorf("last attempt %+v", a)
	}

	// A queued doc that is deleted is dropped.
	dest.setRespond(reply(500, "", ""))
	if _, err := p.PushID(ctx, DemoMotherID); err == nil {
		t.Fatal("push succeeded")
	}
	if err := srv.DeleteDoc(DemoMotherID); err != nil {
		t.Fatal(err)
	}
	if err := p.RunQueue(ctx); err != nil {
		t.Fatal(err)
	}
	if len(p.Queue()) != 0 || p.CountOutcome(OutcomeDropped) != 1 {
		t.Fatalf("queue %v dropped %d", p.Queue(), p.CountOutcome(OutcomeDropped))
	}

	// A mapping error stays queued (CHT retries forever).
	if _, err := p.PushID(ctx, DemoHouseholdID); err == nil { // a place has no phone/sex: required paths fail
		t.Fatal("mapping error not reported")
	}
	before := dest.count()
	if err := p.RunQueue(ctx); err == nil || len(p.Queue()) != 1 || dest.count() != before {
		t.Fatalf("mapping error: err %v queue %v requests %d→%d", err, p.Queue(), before, dest.count())
	}
}

// TestPusherRunFollowsServer drives pushes the way CHT does: every change
// (here a records API submission) is evaluated, failures are retried by the
// queue until the destination recovers.
func TestPusherRunFollowsServer(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	fail := 2
	dest := newDestination(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	})
	p, err := NewOutboundPusher(PusherConfig{Name: "hw", URL: dest.URL, Mapping: heightWeightMapping, Server: srv, FromNow: true,
		RetryInterval: 10 * time.Millisecond,
		RelevantTo:    func(d map[string]any) bool { return d["type"] == "data_record" && d["form"] == "HEIGHT_WEIGHT" }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	r := do(t, srv, call{method: "POST", path: "/api/v2/records", ct: "application/json",
		body: `{"_meta":{"form":"HEIGHT_WEIGHT"},"patient_uuid":"` + DemoPatientID + `","height":180,"weight":70}`})
	id := str(r.obj(t)["id"])
	deadline := time.Now().Add(10 * time.Second)
	for p.CountOutcome(OutcomeSent) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not sent; attempts %+v", p.Attempts())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var sent []Attempt
	for _, a := range p.Attempts() {
		if a.Outcome == OutcomeSent {
			sent = append(sent, a)
		}
		if a.DocID != id {
			t.Errorf("pre-existing doc %s evaluated despite FromNow", a.DocID)
		}
	}
	if len(sent) != 1 || !sent[0].Retry || p.CountOutcome(OutcomeFailed) != 2 {
		t.Fatalf("attempts %+v", p.Attempts())
	}
	var body map[string]any
	if err := json.Unmarshal(sent[0].Payload, &body); err != nil || body["id"] != id || get(body, "observations.0.valueQuantity.value") != 180.0 {
		t.Fatalf("payload %s", sent[0].Payload)
	}
}

func TestSecretsRedactedInLogs(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("cfg", "pusher", PusherConfig{Name: "p", URL: "http://x", Username: "u", Password: "s3cret-pw", AuthHeader: "Token s3cret-tok"},
		"user", User{Name: "medic", Password: "s3cret-user"})
	out := buf.String()
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "[REDACTED]") {
		t.Fatalf("log leaks secrets: %s", out)
	}
	// Attempt logs of a failing push carry no credentials either.
	buf.Reset()
	dest := newDestination(t, reply(500, "", ""))
	p, _ := NewOutboundPusher(PusherConfig{URL: dest.URL, Username: "u", Password: "s3cret-pw", Logger: log,
		Mapping: map[string]any{"id": "doc._id"}})
	_, _ = p.Push(context.Background(), map[string]any{"_id": "x"})
	if strings.Contains(buf.String(), "s3cret") || !strings.Contains(buf.String(), "failed") {
		t.Fatalf("attempt log: %s", buf.String())
	}
}
