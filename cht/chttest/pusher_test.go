package chttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/release"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// heightWeightMapping is the openmrs_height_weight push of reference §6.1
// (exprs for the constants).
var heightWeightMapping = map[string]any{
	"id":                                 "doc._id",
	"patient_uuid":                       "doc.fields.patient_uuid",
	"reported_date":                      "doc.reported_date",
	"observations.0.code":                outbound.MapExpr("'5090AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'", false),
	"observations.0.valueQuantity.value": "doc.fields.height",
	"observations.0.valueQuantity.unit":  outbound.MapExpr("'cm'", false),
	"observations.1.code":                outbound.MapExpr("'5089AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'", false),
	"observations.1.valueQuantity.value": "doc.fields.weight",
	"observations.1.valueQuantity.unit":  outbound.MapExpr("'kg'", false),
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
				"missing":  outbound.MapOptional("doc.fields.nope"),
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
			jsonEqual(t, got, []byte(tt.want))
		})
	}

	errTests := []struct {
		name    string
		mapping map[string]any
		doc     map[string]any
		want    string
	}{
		{"required missing", map[string]any{"x": "doc.a.b"}, map[string]any{"_id": "r1", "a": map[string]any{}},
			"Mapping error for 'mapping/x' on source document 'r1': cannot find 'doc.a.b' on source document"},
		{"expr throws", map[string]any{"x": outbound.MapExpr("doc.a.b.c", false)}, map[string]any{"_id": "r1"},
			"Mapping error for 'mapping/x' JS error on source document: 'r1': TypeError: Cannot read property 'b' of undefined"},
		{"required expr undefined", map[string]any{"x": outbound.MapExpr("doc.nope", false)}, map[string]any{"_id": "r1"},
			"Mapping error for 'mapping/x' on source document 'r1': expr evaluated to undefined"},
		{"through a primitive", map[string]any{"a": "doc.v", "a.b": "doc.v"}, map[string]any{"v": 1}, "Cannot create property 'b' on number '1'"},
		{"huge array index", map[string]any{"list.70000": "doc.v"}, map[string]any{"v": 1}, "array index 70000 is above 65536"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ApplyMapping(tt.mapping, tt.doc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// An index up to the fake's bound builds the array CHT builds.
	got, err := ApplyMapping(map[string]any{"list.2": "doc.v"}, map[string]any{"v": 1})
	if err != nil || string(got) != `{"list":[null,null,1]}` {
		t.Fatalf("indexes: %s %v", got, err)
	}
	// null is a value (not undefined) and is sent.
	got, err = ApplyMapping(map[string]any{"x": "doc.n"}, map[string]any{"n": nil})
	if err != nil || string(got) != `{"x":null}` {
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
		{"JS syntax error", PusherConfig{URL: "http://x", Mapping: map[string]any{"a": map[string]any{"expr": "doc.a ==="}}}},
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

// TestPusherSuccessRules pins when CHT counts a push as sent. shared-libs/
// outbound/src/outbound.js sendPayload posts with @medic/couch-request:
// before 4.17 that wraps request-promise-native (json: true), which
// resolves only for 2xx and does not follow redirects on POST; from 4.17
// (shared-libs/couch-request/src/couch-request.js, fetch) a response is a
// success when response.ok || (status > 300 && status < 399), and
// getResponseBody parses the body as JSON when the content type
// startsWith('application/json') (case-sensitive), so an empty or invalid
// body then rejects. Any failure, a 4xx included, is thrown by send and
// mark_for_outbound.js queues the push.
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
		{"JSON type check is case-sensitive", "5.2.0", reply(200, "Application/JSON", "OK"), OutcomeSent},
		{"398 from 4.17", "4.17.0", reply(398, "", ""), OutcomeSent},
		{"399 is not in (300,399)", "5.2.0", reply(399, "", ""), OutcomeFailed},
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
			if v, _ := release.Parse(tt.version); v.AtLeast(4, 18) != strings.HasPrefix(ua, "Community Health Toolkit/"+v.String()) {
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

// TestPusherTimeout pins the per-request timeout: shared-libs/outbound/
// src/outbound.js sendPayload sets timeout: OUTBOUND_REQ_TIMEOUT (10 s),
// which couch-request turns into AbortSignal.timeout; a timed-out push
// fails and is queued like any other failure.
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

// TestPusherHashDedupe pins the duplicate check: shared-libs/outbound/src/
// outbound.js send maps the doc, and alreadySent compares hash(payload)
// (SHA-256 of orderedStringify, keys sorted) with the last completed_tasks
// entry of that push in the infodoc; an identical payload is not sent
// again, whatever else changed in the doc. mark_for_outbound.js relevantTo
// evaluates relevant_to first, and shared-libs/transitions/src/
// transitions/index.js canRun skips deleted docs.
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
	// outbound.js hash: sha256 of orderedStringify(payload), keys sorted.
	want := sha256.Sum256([]byte(`{"doc":{"_id":"p1","date_of_birth":"x","name":"A","patient_id":"1","phone":"2","sex":"f"}}`))
	if !ok || h != hex.EncodeToString(want[:]) {
		t.Errorf("SentHash %q %v", h, ok)
	}
	if got, want := p.CountOutcome(OutcomeAlreadySent), 2; got != want {
		t.Errorf("already sent %d, want %d", got, want)
	}
}

// TestPusherRetryQueue pins the retry queue: shared-libs/transitions/src/
// transitions/mark_for_outbound.js markForOutbound writes
// task:outbound:<doc id> only when none exists (an existing task is not
// topped up), and sentinel/src/schedule/outbound.js queuedTasks re-reads
// the current doc (allDocs + lineage.hydrateDocs) at every run, so a doc
// edited while queued is sent as it is now; singlePush removes the push
// from the task on success.
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
// queue until the destination recovers. Sentinel follows the medic changes
// feed and runs shared-libs/transitions/src/transitions/index.js
// processChange for each change (mark_for_outbound.js markForOutbound
// queues a failure), and sentinel/src/schedule/outbound.js execute retries
// the queue on Sentinel's schedule.
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
	defer cancel()
	// FromNow checkpoints the feed at the first Sync or Run. Run takes it
	// whenever its goroutine gets to run, which may be after the POST
	// below: the report would then count as a change made before, and be
	// ignored. Sync takes it here, before the report exists.
	if n, err := p.Sync(ctx); err != nil || n != 0 {
		t.Fatalf("first Sync with FromNow evaluated %d docs: %v", n, err)
	}
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

// TestPusherCronWindow pins outbound cron (CHT 4.5+): a relevant doc
// outside ±5 minutes of a tick is queued without an attempt
// (shared-libs/transitions/src/transitions/mark_for_outbound.js
// markForOutbound, utils.isWithinTimeFrame with TIME_FRAME_DURATION), and
// the schedule retries only pushes that are due (sentinel/src/schedule/
// outbound.js execute, dueConfiguredPushes).
func TestPusherCronWindow(t *testing.T) {
	dest := newDestination(t, reply(200, "application/json", "{}"))
	now := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	p, err := NewOutboundPusher(PusherConfig{Name: "hourly", URL: dest.URL, Mapping: map[string]any{"id": "doc._id"},
		Cron: "0 * * * *", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := p.Push(ctx, map[string]any{"_id": "r1", "type": "data_record"})
	if err != nil || a.Outcome != OutcomeQueued || dest.count() != 0 || len(p.Queue()) != 1 {
		t.Fatalf("outside the window: %s %v, %d requests, queue %v", a.Outcome, err, dest.count(), p.Queue())
	}
	steps := []struct {
		at   time.Time
		sent int
	}{
		{time.Date(2026, 3, 1, 10, 54, 59, 0, time.UTC), 0}, // 5 min 1 s before 11:00
		{time.Date(2026, 3, 1, 11, 5, 1, 0, time.UTC), 0},   // 5 min 1 s after
		{time.Date(2026, 3, 1, 11, 5, 0, 0, time.UTC), 1},   // bounds are inclusive
	}
	for _, s := range steps {
		now = s.at
		if err := p.RunQueue(ctx); err != nil {
			t.Fatal(err)
		}
		if dest.count() != s.sent {
			t.Fatalf("at %s: %d requests, want %d", s.at.Format(time.TimeOnly), dest.count(), s.sent)
		}
	}
	if len(p.Queue()) != 0 {
		t.Errorf("queue %v after the push", p.Queue())
	}
	now = time.Date(2026, 3, 1, 11, 58, 0, 0, time.UTC)
	if a, err := p.Push(ctx, map[string]any{"_id": "r2"}); err != nil || a.Outcome != OutcomeSent {
		t.Errorf("inside the window: %s %v", a.Outcome, err)
	}
}

// TestPusherCronCHTRefusesIsNeverDue pins what CHT does with a cron that
// cron-validator 1.3.1 refuses (default options: five fields, no names,
// no ?, weekday 0-6; lib/index.js isValidCron): shared-libs/transitions/
// src/lib/utils.js isWithinTimeFrame logs "Outbound push failed: invalid
// cron expression" and answers false, so mark_for_outbound.js
// markForOutbound queues the push and sentinel/src/schedule/outbound.js
// execute never counts it due. The doc is never sent, even at a time that
// matches the expression for robfig/cron.
func TestPusherCronCHTRefusesIsNeverDue(t *testing.T) {
	monday := time.Date(2026, 3, 2, 0, 1, 0, 0, time.UTC) // a Monday, 1 min after midnight
	for _, expr := range []string{"@daily", "0 0 * * MON", "0 0 ? * *", "0 0 0 * * *", "0 0 * * 7", "61 * * * *"} {
		dest := newDestination(t, reply(200, "", ""))
		now := monday
		p, err := NewOutboundPusher(PusherConfig{URL: dest.URL, Cron: expr, Mapping: map[string]any{"id": "doc._id"},
			Now: func() time.Time { return now }})
		if err != nil {
			t.Errorf("%q: CHT loads it (and never pushes); NewOutboundPusher: %v", expr, err)
			continue
		}
		a, err := p.Push(context.Background(), map[string]any{"_id": "d"})
		if a.Outcome != OutcomeQueued || err == nil || !strings.Contains(err.Error(), "invalid cron expression") {
			t.Errorf("cron %q: %s (%v); CHT queues it and logs the invalid cron", expr, a.Outcome, err)
		}
		for _, at := range []time.Duration{0, 24 * time.Hour, 6 * 24 * time.Hour} {
			now = monday.Add(at)
			_ = p.RunQueue(context.Background())
		}
		if dest.count() != 0 || len(p.Queue()) != 1 {
			t.Errorf("cron %q: %d requests, queue %v; CHT never sends it", expr, dest.count(), p.Queue())
		}
	}
}

// TestPusherCronIgnoredBefore45 pins that cron arrived in cht-core 4.5.0:
// 4.4.0's shared-libs/transitions/src/transitions/mark_for_outbound.js
// markForOutbound and sentinel/src/schedule/outbound.js execute never read
// config.cron, so a push with a cron (valid or not) is sent at once.
func TestPusherCronIgnoredBefore45(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC) // 30 min from any tick
	for _, tc := range []struct {
		version, cron string
		want          Outcome
	}{
		{"4.4.0", "0 * * * *", OutcomeSent},
		{"4.4.0", "@daily", OutcomeSent},
		{"4.5.0", "0 * * * *", OutcomeQueued},
		{"4.5.0", "@daily", OutcomeQueued},
	} {
		dest := newDestination(t, reply(200, "", ""))
		p, err := NewOutboundPusher(PusherConfig{URL: dest.URL, Version: tc.version, Cron: tc.cron,
			Mapping: map[string]any{"id": "doc._id"}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := p.Push(context.Background(), map[string]any{"_id": "d"}); a.Outcome != tc.want {
			t.Errorf("%s with cron %q: %s, want %s", tc.version, tc.cron, a.Outcome, tc.want)
		}
	}
}

// TestPusherLargeJSONAnswer pins that CHT judges the whole answer:
// shared-libs/couch-request/src/couch-request.js getResponseBody reads a
// JSON answer with response.json(), which parses all of it, so a valid
// answer of any size is a success and an invalid one fails the push
// (from 4.17), even when the first MiB alone would decide otherwise.
func TestPusherLargeJSONAnswer(t *testing.T) {
	filler := strings.Repeat("x", 3<<20/2) // 1.5 MiB
	tests := []struct {
		name string
		body string
		want Outcome
	}{
		{"valid, over 1 MiB", `{"ok":true,"note":"` + filler + `"}`, OutcomeSent},
		{"invalid after the first MiB", `{"ok":true,"note":"` + filler + `"`, OutcomeFailed},
		{"invalid in the first MiB", `{"ok":true,,"note":"` + filler + `"}`, OutcomeFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := newDestination(t, reply(200, "application/json", tt.body))
			p, err := NewOutboundPusher(PusherConfig{URL: dest.URL, Version: "5.2.0", Mapping: map[string]any{"id": "doc._id"}})
			if err != nil {
				t.Fatal(err)
			}
			a, err := p.Push(context.Background(), map[string]any{"_id": "d"})
			if a.Outcome != tt.want || (err != nil) != (tt.want == OutcomeFailed) {
				t.Fatalf("%s (%v), want %s", a.Outcome, err, tt.want)
			}
			if a.StatusCode != 200 || len(a.Response) != 1<<20 || !strings.HasPrefix(tt.body, string(a.Response)) {
				t.Errorf("status %d, kept %d bytes of the answer; want 200 and its first MiB", a.StatusCode, len(a.Response))
			}
		})
	}
}

// TestPusherCronAsLaterJS pins how CHT reads a cron's fields:
// shared-libs/transitions/src/lib/utils.js isWithinTimeFrame parses it
// with later.js 1.2.0 (later.parse.cron), which turns each restricted
// field into a constraint of one schedule, and later.schedule's next/prev
// keep only times that meet every constraint. So with both day of month
// and day of week restricted a day must match both, not either as in
// classic cron; "0 9 1 * 1" is a Monday that is the 1st. A range's end is
// getValue(b) || max (src/parse/cron.js addRange), so an end of 0 is the
// field's maximum: "0-0 9 * * *" ticks every minute from 09:00 to 09:59,
// where classic cron ticks at 09:00 only. Sentinel sends within 5 minutes
// of a tick (TIME_FRAME_DURATION). A cron with no tick at all is never due
// (see TestPusherCronNeverTicks).
func TestPusherCronAsLaterJS(t *testing.T) {
	tests := []struct {
		name string
		cron string
		now  time.Time
		want Outcome
	}{
		{"Monday the 1st", "0 9 1 * 1", time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC), OutcomeSent},
		{"Monday, not the 1st", "0 9 1 * 1", time.Date(2024, 1, 8, 9, 0, 0, 0, time.UTC), OutcomeQueued},
		{"the 1st, not a Monday", "0 9 1 * 1", time.Date(2024, 2, 1, 9, 0, 0, 0, time.UTC), OutcomeQueued},
		{"inside the window of Monday the 1st", "0 9 1 * 1", time.Date(2024, 1, 1, 9, 4, 0, 0, time.UTC), OutcomeSent},
		{"first Monday of the month", "0 9 1-7 * 1", time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC), OutcomeSent},
		{"second Monday of the month", "0 9 1-7 * 1", time.Date(2024, 1, 8, 9, 0, 0, 0, time.UTC), OutcomeQueued},
		{"every weekday written out is still a constraint", "0 9 1 * 0-6", time.Date(2024, 1, 8, 9, 0, 0, 0, time.UTC), OutcomeQueued},
		{"only day of month restricted", "0 9 1 * *", time.Date(2024, 2, 1, 9, 0, 0, 0, time.UTC), OutcomeSent},
		{"only day of week restricted", "0 9 * * 1", time.Date(2024, 1, 8, 9, 0, 0, 0, time.UTC), OutcomeSent},
		{"never: 30 February on a Monday", "0 9 30 2 1", time.Date(2024, 2, 26, 9, 0, 0, 0, time.UTC), OutcomeQueued},
		{"minute 0-0 is every minute", "0-0 9 * * *", time.Date(2027, 1, 5, 9, 30, 0, 0, time.UTC), OutcomeSent},
		{"minute 0-0, outside its hour", "0-0 9 * * *", time.Date(2027, 1, 5, 10, 30, 0, 0, time.UTC), OutcomeQueued},
		{"minute 0-0/20", "0-0/20 9 * * *", time.Date(2027, 1, 5, 9, 40, 0, 0, time.UTC), OutcomeSent},
		{"minute 0-0/20, between ticks", "0-0/20 9 * * *", time.Date(2027, 1, 5, 9, 30, 0, 0, time.UTC), OutcomeQueued},
		{"hour 0-0 is every hour", "0 0-0 * * *", time.Date(2027, 1, 5, 15, 0, 0, 0, time.UTC), OutcomeSent},
		{"minute 0 is itself", "0 9 * * *", time.Date(2027, 1, 5, 9, 30, 0, 0, time.UTC), OutcomeQueued},
		{"minute 0, within the window", "0 9 * * *", time.Date(2027, 1, 5, 9, 4, 0, 0, time.UTC), OutcomeSent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := newDestination(t, reply(200, "", ""))
			now := tt.now
			p, err := NewOutboundPusher(PusherConfig{URL: dest.URL, Cron: tt.cron, Mapping: map[string]any{"id": "doc._id"},
				Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			a, err := p.Push(ctx, map[string]any{"_id": "d"})
			if a.Outcome != tt.want || err != nil {
				t.Fatalf("cron %q at %s: %s (%v), want %s", tt.cron, tt.now.Format(time.RFC1123), a.Outcome, err, tt.want)
			}
			// Sentinel's schedule applies the same test to queued pushes.
			if err := p.RunQueue(ctx); err != nil {
				t.Fatal(err)
			}
			if want := map[Outcome]int{OutcomeSent: 1}[tt.want]; dest.count() != want {
				t.Errorf("%d requests after RunQueue, want %d", dest.count(), want)
			}
		})
	}
}

// TestPusherCronNeverTicks pins what CHT does with a cron cron-validator
// accepts but that never ticks: shared-libs/transitions/src/lib/utils.js
// isWithinTimeFrame reads it with later.js 1.2.0, whose schedule keeps only
// times that meet every field (src/core/compile.js start: day of month and
// day of week both) and has 29 February in leap years only
// (src/constraint/day.js later.D.extent). For days that exist in none of
// the cron's months, next and prev give up after 1000 steps on dates that
// match nothing (not later.NEVER: nothing throws), so isWithinTimeFrame
// answers false without a log line and the doc stays queued, never sent,
// even at the day a calendar that rolls 31 February over would give, or on
// a weekday classic cron would take. 29 February ticks in leap years.
func TestPusherCronNeverTicks(t *testing.T) {
	tests := []struct {
		name string
		cron string
		now  time.Time
		want Outcome
	}{
		{"31 February, at 2 March of a leap year", "0 0 31 2 *", time.Date(2028, 3, 2, 0, 0, 0, 0, time.UTC), OutcomeQueued},
		{"31 February, at 3 March", "0 0 31 2 *", time.Date(2027, 3, 3, 0, 0, 0, 0, time.UTC), OutcomeQueued},
		{"30 February, at 1 March of a leap year", "0 0 30 2 *", time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC), OutcomeQueued},
		{"31 April, at 1 May", "0 0 31 4,6,9,11 *", time.Date(2027, 5, 1, 0, 0, 0, 0, time.UTC), OutcomeQueued},
		{"31 February on a Monday, at a Monday in February", "0 0 31 2 1", time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), OutcomeQueued},
		{"29 February, in a leap year", "0 0 29 2 *", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC), OutcomeSent},
		{"29 February on a Monday, in 2044", "0 0 29 2 1", time.Date(2044, 2, 29, 0, 0, 0, 0, time.UTC), OutcomeSent},
		{"the 31st", "0 0 31 * *", time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC), OutcomeSent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := newDestination(t, reply(200, "", ""))
			var logs bytes.Buffer
			now := tt.now
			p, err := NewOutboundPusher(PusherConfig{URL: dest.URL, Cron: tt.cron, Mapping: map[string]any{"id": "doc._id"},
				Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			a, err := p.Push(ctx, map[string]any{"_id": "d"})
			if a.Outcome != tt.want || err != nil {
				t.Fatalf("cron %q at %s: %s (%v), want %s without an error", tt.cron, tt.now.Format(time.RFC1123), a.Outcome, err, tt.want)
			}
			for _, at := range []time.Duration{time.Minute, 24 * time.Hour, 366 * 24 * time.Hour} {
				now = tt.now.Add(at)
				if err := p.RunQueue(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if want := map[Outcome]int{OutcomeSent: 1}[tt.want]; dest.count() != want {
				t.Errorf("%d requests after RunQueue, want %d", dest.count(), want)
			}
			if strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("logs %q; CHT logs nothing for a cron it accepts", logs.String())
			}
		})
	}
}

// TestPusherRetryDoesNotRecheckRelevance pins that Sentinel's schedule
// retries a queued push with the current hydrated doc without evaluating
// relevant_to again (sentinel/src/schedule/outbound.js batch and
// singlePush call outbound.send directly), so a doc edited out of scope
// after a failure is still pushed.
func TestPusherRetryDoesNotRecheckRelevance(t *testing.T) {
	srv := NewServer(Config{})
	t.Cleanup(srv.Close)
	dest := newDestination(t, reply(503, "", ""))
	cfgs, err := OutboundFromSettings([]byte(`{"patients":{"relevant_to":"doc.role === 'patient'",
		"destination":{"base_url":"`+dest.URL+`","path":""},"mapping":{"id":"doc._id","role":"doc.role"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cfgs[0]
	cfg.Server = srv
	p, err := NewOutboundPusher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rev, err := srv.PutDoc(map[string]any{"_id": "p1", "type": "person", "role": "patient"})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := p.PushID(ctx, "p1"); a.Outcome != OutcomeFailed || len(p.Queue()) != 1 {
		t.Fatalf("first push %s, queue %v", a.Outcome, p.Queue())
	}
	if _, err := srv.PutDoc(map[string]any{"_id": "p1", "_rev": rev, "type": "person", "role": "chw"}); err != nil {
		t.Fatal(err)
	}
	dest.setRespond(reply(200, "application/json", "{}"))
	if err := p.RunQueue(ctx); err != nil {
		t.Fatal(err)
	}
	if dest.count() != 2 || dest.bodies[1] != `{"id":"p1","role":"chw"}` || len(p.Queue()) != 0 {
		t.Fatalf("retry: %d requests %v, queue %v", dest.count(), dest.bodies, p.Queue())
	}
}

// TestPusherNodeDetails pins what CHT's Node process puts on the wire:
// the User-Agent names the architecture as os.arch() does ("x64" for
// amd64; shared-libs/couch-request/src/couch-request.js getUserAgent), and
// the stored hash is SHA-256 of orderedStringify, where nested object keys
// are sorted but objects inside arrays keep their order, keys are written
// unescaped and <, > and & are not escaped (shared-libs/outbound/src/
// outbound.js hash and orderedStringify).
func TestPusherNodeDetails(t *testing.T) {
	for goarch, node := range map[string]string{"amd64": "x64", "386": "ia32", "arm64": "arm64"} {
		if got := nodeArch(goarch); got != node {
			t.Errorf("nodeArch(%s) = %s, want %s", goarch, got, node)
		}
	}
	// User-Agent: none before 4.18 (request-promise-native sends none);
	// 4.18.0 shared-libs/outbound/src/outbound.js getUserAgent with
	// CHT_AGENT 'CHT'; from 4.19.0 shared-libs/couch-request/src/
	// couch-request.js getUserAgent with CHT_AGENT 'Community Health
	// Toolkit'.
	platform := " (" + runtime.GOOS + "," + nodeArch(runtime.GOARCH) + ")"
	for _, tc := range []struct{ version, want string }{
		{"4.17.0", ""},
		{"4.18.0", "CHT/4.18.0" + platform},
		{"4.19.0", "Community Health Toolkit/4.19.0" + platform},
		{"5.2.0", "Community Health Toolkit/5.2.0" + platform},
	} {
		dest := newDestination(t, reply(200, "application/json", "{}"))
		p, err := NewOutboundPusher(PusherConfig{URL: dest.URL, Version: tc.version, Mapping: map[string]any{"id": "doc._id"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Push(context.Background(), map[string]any{"_id": "d"}); err != nil {
			t.Fatal(err)
		}
		if got := dest.reqs[0].Header.Get("User-Agent"); got != tc.want && !(tc.want == "" && strings.HasPrefix(got, "Go-http-client/")) {
			t.Errorf("%s: User-Agent %q, want %q", tc.version, got, tc.want)
		}
	}
	dest := newDestination(t, reply(200, "application/json", "{}"))
	p, err := NewOutboundPusher(PusherConfig{URL: dest.URL, Version: "4.18.0",
		Mapping: map[string]any{"z": outbound.MapExpr(`[{b: 1, a: '<&>'}]`, false), "a": outbound.MapExpr(`({y: 1, x: 2})`, false)}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Push(context.Background(), map[string]any{"_id": "d"})
	if err != nil {
		t.Fatal(err)
	}
	// JSON.stringify writes objects in insertion order (a Go map mapping
	// is walked in sorted order); orderedStringify sorts them.
	if string(a.Payload) != `{"a":{"y":1,"x":2},"z":[{"b":1,"a":"<&>"}]}` {
		t.Errorf("payload %s", a.Payload)
	}
	sum := sha256.Sum256([]byte(`{"a":{"x":2,"y":1},"z":[{"b":1,"a":"<&>"}]}`))
	if a.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("hash %s", a.Hash)
	}
	h, err := PayloadHash(json.RawMessage(`{"k\"q":1}`))
	sum = sha256.Sum256([]byte(`{"k"q":1}`)) // keys are not re-escaped
	if err != nil || h != hex.EncodeToString(sum[:]) {
		t.Errorf("PayloadHash with a quote in a key: %s %v", h, err)
	}
}

// TestPusherQueueOrderAndMaxAttempts checks the retry queue keeps its order
// through removals and re-queueing (entries are removed lazily), and that
// MaxAttempts bounds Attempts while CountOutcome still counts every attempt.
func TestPusherQueueOrderAndMaxAttempts(t *testing.T) {
	dest := newDestination(t, reply(503, "", ""))
	p, err := NewOutboundPusher(PusherConfig{Name: "q", URL: dest.URL, MaxAttempts: 10,
		Map: func(doc map[string]any) (any, error) { return doc, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var want []string
	for i := range 50 {
		id := "doc-" + strconv.Itoa(i)
		if _, err := p.Push(ctx, map[string]any{"_id": id}); err == nil {
			t.Fatal("push to a failing destination succeeded")
		}
		want = append(want, id)
	}
	// Every even doc is pushed live and succeeds: its task stays until
	// the next run of the schedule finds it sent and removes it
	// (mark_for_outbound.js markForOutbound leaves the task;
	// schedule/outbound.js singlePush removes it). The odd ones fail again
	// in that run and keep their places. Then doc-0 is queued again (it
	// fails once more): it goes to the back.
	dest.setRespond(reply(200, "application/json", `{}`))
	for i := 0; i < 50; i += 2 {
		if _, err := p.Push(ctx, map[string]any{"_id": "doc-" + strconv.Itoa(i), "v": 2}); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Queue(); !slices.Equal(got, want) {
		t.Fatalf("queue after the live pushes %v, want every task still there", got)
	}
	dest.setRespond(reply(503, "", ""))
	if err := p.RunQueue(ctx); err == nil {
		t.Fatal("the odd docs' retries succeeded")
	}
	if _, err := p.Push(ctx, map[string]any{"_id": "doc-0", "v": 3}); err == nil {
		t.Fatal("push succeeded")
	}
	var odd []string
	for i, id := range want {
		if i%2 == 1 {
			odd = append(odd, id)
		}
	}
	if got, exp := p.Queue(), append(odd, "doc-0"); !slices.Equal(got, exp) {
		t.Fatalf("queue %v, want %v", got, exp)
	}
	if n := len(p.Attempts()); n > 10 || n < 5 {
		t.Errorf("Attempts kept %d, want 5-10 with MaxAttempts 10", n)
	}
	if a := p.Attempts(); a[len(a)-1].DocID != "doc-0" {
		t.Errorf("last kept attempt %s, want doc-0", a[len(a)-1].DocID)
	}
	// 50 first attempts, 25 odd retries and doc-0 once more; 25 sent,
	// 25 found sent by the schedule.
	if f, s, a := p.CountOutcome(OutcomeFailed), p.CountOutcome(OutcomeSent), p.CountOutcome(OutcomeAlreadySent); f != 76 || s != 25 || a != 25 {
		t.Errorf("CountOutcome failed %d sent %d already sent %d, want 76, 25 and 25", f, s, a)
	}
}

// TestPusherRealtimeUsesFetchHydratedDoc pins which hydration each push
// maps. The real-time push (mark_for_outbound) maps change.doc, which
// shared-libs/transitions/src/transitions/index.js processChange loads
// with lineage.fetchHydratedDoc(change.id): a doc docs_by_id_lineage emits
// nothing for (a report without a form, a doc whose type is not a contact
// type) comes back as stored, its contact still the minified stub. A retry
// (sentinel/src/schedule/outbound.js queuedTasks) hydrates with
// lineage.hydrateDocs, which hydrates it.
func TestPusherRealtimeUsesFetchHydratedDoc(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	fail := true
	var mu sync.Mutex
	dest := newDestination(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	p, err := NewOutboundPusher(PusherConfig{Name: "all", URL: dest.URL, Server: srv, FromNow: true,
		Mapping:    map[string]any{"id": "doc._id", "contact": "doc.contact"},
		RelevantTo: func(d map[string]any) bool { return d["type"] != "person" && d["type"] != "contact" }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	stub := map[string]any{"_id": DemoCHWID, "parent": map[string]any{"_id": DemoCHWAreaID}}
	if err := srv.PutDocs(
		map[string]any{"_id": "sms-1", "type": "data_record", "from": "+254712345679", "contact": stub, "reported_date": 1},
		map[string]any{"_id": "fb-1", "type": "feedback", "contact": stub},
		map[string]any{"_id": "rep-1", "type": "data_record", "form": "X", "contact": stub, "reported_date": 1},
	); err != nil {
		t.Fatal(err)
	}
	_, _ = p.Sync(ctx) // every real-time attempt fails: all three queued
	hydrated := map[string]bool{}
	for _, a := range p.Attempts() {
		var body struct {
			Contact map[string]any `json:"contact"`
		}
		if err := json.Unmarshal(a.Payload, &body); err != nil {
			t.Fatalf("%s: %s", a.DocID, a.Payload)
		}
		hydrated[a.DocID] = body.Contact["name"] != nil
	}
	if want := map[string]bool{"sms-1": false, "fb-1": false, "rep-1": true}; !maps.Equal(hydrated, want) {
		t.Errorf("real-time payload hydrated %v, want %v (fetchHydratedDoc)", hydrated, want)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := p.RunQueue(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range p.Attempts() {
		if a.Retry && !strings.Contains(string(a.Payload), `"name":"Example CHW"`) {
			t.Errorf("retry of %s maps %s; hydrateDocs hydrates the contact", a.DocID, a.Payload)
		}
	}
	if dest.count() != 6 {
		t.Errorf("%d requests, want 3 failures and 3 retries", dest.count())
	}
}

// TestApplyMappingObjectPathMagicNames pins the destination paths with
// names object-path guards in some builds: cht-core 4.3 to 5.2 lock
// object-path 0.11.8, whose default export (factory() without
// includeInheritedProps, what shared-libs/outbound/src/outbound.js
// mapDocumentToPayload uses for objectPath.set) has a
// getShallowPropertySafely that checks nothing. So "constructor" and
// "prototype" are ordinary own members that JSON.stringify writes, and
// "__proto__" is JavaScript's prototype assignment, invisible in the
// payload.
func TestApplyMappingObjectPathMagicNames(t *testing.T) {
	doc := map[string]any{"_id": "d1"}
	for _, tc := range []struct{ dest, want string }{
		{"constructor", `{"constructor":"d1"}`},
		{"a.prototype", `{"a":{"prototype":"d1"}}`},
		{"a.constructor", `{"a":{"constructor":"d1"}}`},
		{"constructor.x", `{"constructor":{"x":"d1"}}`},
		{"__proto__", `{}`},
		{"__proto__.x", `{}`},
	} {
		got, err := ApplyMapping(map[string]any{tc.dest: "doc._id"}, doc)
		if err != nil {
			t.Errorf("%s: %v; CHT sends %s", tc.dest, err, tc.want)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s: payload %s, CHT sends %s", tc.dest, got, tc.want)
		}
	}
}

// TestURLJoin pins how the destination URL is built: shared-libs/
// outbound/src/outbound.js sendPayload calls urlJoin(base_url, path) with
// url-join 4.0.1 (package-lock of cht-core 4.3 to 5.2), lib/url-join.js
// normalize.
func TestURLJoin(t *testing.T) {
	for _, tc := range []struct{ base, path, want string }{
		{"http://h", "/fhir", "http://h/fhir"},
		{"http://h/", "/fhir", "http://h/fhir"},
		{"http://h//", "//fhir", "http://h/fhir"},
		{"http://h", "fhir/", "http://h/fhir/"},
		{"http://h", "/x//", "http://h/x/"},              // the last part keeps one trailing slash
		{"http://h/", "", "http://h"},                    // an empty part is skipped
		{"http://h", "/", "http://h/"},                   // "/" is the last part: one slash
		{"http://h", "/fhir/?a=1", "http://h/fhir?a=1"},  // no slash before parameters
		{"http://h", "/p?a=1?b=2", "http://h/p?a=1&b=2"}, // later ? become &
		{"http://h", "/p/#frag", "http://h/p#frag"},
		{"http:", "h/p", "http://h/p"}, // a plain protocol is merged with the next part
		{"http:/h", "p", "http://h/p"}, // the protocol gets two slashes
		{"", "/p", "p"},
	} {
		if got := urlJoin(tc.base, tc.path); got != tc.want {
			t.Errorf("urlJoin(%q, %q) = %q, url-join 4.0.1 gives %q", tc.base, tc.path, got, tc.want)
		}
	}
}

// TestRecordsAPIRunsMarkForOutboundBeforeSave pins that CHT's API runs
// mark_for_outbound itself for a report created with the records API:
// api/src/controllers/records.js runTransitions calls shared-libs/
// transitions/src/transitions/index.js processDocs, which hydrates a copy
// of the unsaved report (hydrateDocs, no _rev) and applies the
// transitions api/src/services/config-watcher.js loaded with
// loadTransitions(true) (mark_for_outbound is not asynchronousOnly), then
// saves. So a mapping of doc._rev (outbound.RefMapping) fails there and
// the push is queued (task:outbound:<id>), a whole-document mapping
// reaches the destination before the report exists, and Sentinel's pass
// over the saved revision (processChange; the transition recorded no
// last_rev, canRun) pushes again when the payload differs. Without the
// transition in app_settings the API runs nothing.
func TestRecordsAPIRunsMarkForOutboundBeforeSave(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		srv := NewDemoServer()
		if enabled {
			srv.SetSettings(map[string]any{"transitions": map[string]any{"mark_for_outbound": true}})
		}
		var mu sync.Mutex
		var existed []bool
		// Whether the report exists in CHT when the destination gets it.
		var docDest *destination
		docDest = newDestination(t, func(w http.ResponseWriter, r *http.Request) {
			docDest.mu.Lock()
			last := docDest.bodies[len(docDest.bodies)-1]
			docDest.mu.Unlock()
			var body struct {
				Doc map[string]any `json:"doc"`
			}
			_ = json.Unmarshal([]byte(last), &body)
			_, ok := srv.Doc(str(body.Doc["_id"]))
			mu.Lock()
			existed = append(existed, ok)
			mu.Unlock()
		})
		refDest := newDestination(t, reply(200, "", ""))
		hw := func(d map[string]any) bool { return d["form"] == "HEIGHT_WEIGHT" }
		ref, err := NewOutboundPusher(PusherConfig{Name: "ref", URL: refDest.URL, Server: srv, FromNow: true,
			Mapping: map[string]any{"id": "doc._id", "rev": "doc._rev"}, RelevantTo: hw})
		if err != nil {
			t.Fatal(err)
		}
		whole, err := NewOutboundPusher(PusherConfig{Name: "doc", URL: docDest.URL, Server: srv, FromNow: true,
			Mapping: map[string]any{"doc": "doc"}, RelevantTo: hw})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, p := range []*OutboundPusher{ref, whole} {
			if _, err := p.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		r := do(t, srv, call{method: "POST", path: "/api/v2/records", ct: "application/json",
			body: `{"_meta":{"form":"HEIGHT_WEIGHT"},"patient_uuid":"` + DemoPatientID + `","height":180,"weight":70}`})
		id := str(r.obj(t)["id"])
		if !enabled {
			if n := len(ref.Attempts()) + len(whole.Attempts()); n != 0 {
				t.Errorf("without mark_for_outbound in app_settings the API pushed: %d attempts", n)
			}
			srv.Close()
			continue
		}
		as := ref.Attempts()
		if len(as) != 1 || as[0].Outcome != OutcomeMappingError || !strings.Contains(as[0].Err.Error(), "cannot find 'doc._rev'") {
			t.Fatalf("ref: first attempt %+v; the API's pass maps the unsaved report and fails on doc._rev", as)
		}
		if q := ref.Queue(); len(q) != 1 || q[0] != id {
			t.Errorf("ref queue %v, want the report queued", q)
		}
		as = whole.Attempts()
		var first struct {
			Doc map[string]any `json:"doc"`
		}
		if len(as) == 1 {
			_ = json.Unmarshal(as[0].Payload, &first)
		}
		if len(as) != 1 || as[0].Outcome != OutcomeSent || first.Doc["_id"] != id || first.Doc["_rev"] != nil ||
			get(first.Doc, "patient.name") != "John Test" {
			t.Fatalf("doc: %d attempts, first %s; the API sends the hydrated report (patient John Test) without _rev", len(as), first.Doc)
		}
		for _, p := range []*OutboundPusher{ref, whole} {
			if _, err := p.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Sentinel's pass sends it (the task stays until the schedule
		// runs: mark_for_outbound.js leaves it), and the schedule's next
		// run finds it sent and removes the task without sending again.
		if q := ref.Queue(); len(q) != 1 || ref.CountOutcome(OutcomeSent) != 1 || refDest.count() != 1 {
			t.Errorf("ref after Sentinel's pass: queue %v, %d sent", q, ref.CountOutcome(OutcomeSent))
		}
		if err := ref.RunQueue(ctx); err != nil {
			t.Fatal(err)
		}
		if q := ref.Queue(); len(q) != 0 || refDest.count() != 1 {
			t.Errorf("ref after the schedule's run: queue %v, %d sent", q, refDest.count())
		}
		mu.Lock()
		got := slices.Clone(existed)
		mu.Unlock()
		if !slices.Equal(got, []bool{false, true}) {
			t.Errorf("doc pushes found the report in CHT %v, want [false true] (first before the save, again from Sentinel with _rev)", got)
		}
		srv.Close()
	}
}
