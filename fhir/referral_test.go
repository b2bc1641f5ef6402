package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// restReader reads resources over FHIR REST for CloseReferral.
type restReader struct {
	base string
	hc   *http.Client
}

func (r restReader) Read(ctx context.Context, typ, id string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/"+typ+"/"+id, nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK { // as fhir.Client.Read answers
		return &fhir.ServerError{StatusCode: resp.StatusCode, Entry: -1, Reason: string(b)}
	}
	return json.Unmarshal(b, out)
}

// loop is one FHIR server the referral loop runs against.
type loop struct {
	t    *testing.T
	rd   restReader
	conv *fhir.Converter
	tag  string // unique per run, for identifiers on the shared real server
}

func referralMapping(t *testing.T) *fhir.Mapping {
	t.Helper()
	m, err := fhir.LoadMapping("testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Forms {
		if m.Forms[i].Form == "interop_follow_up" {
			m.Forms[i].FollowUp = &fhir.FollowUp{Task: "inputs.fhir_task", ServiceRequest: "inputs.fhir_service_request",
				Outcome: "follow_up.outcome", Done: []string{"met"}, NotFound: []string{"not_found", "moved"},
				Refused: []string{"refused"}, CompleteRequest: true}
		}
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

func newLoop(t *testing.T, base string, hc *http.Client) *loop {
	conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: referralMapping(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &loop{t: t, rd: restReader{base: base, hc: hc}, conv: conv, tag: fmt.Sprint(time.Now().UnixNano())}
}

func (l *loop) do(method, path string, body any) map[string]any {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			l.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, l.rd.base+path, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := l.rd.hc.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode >= 300 {
		l.t.Fatalf("%s %s: %d %v %v", method, path, resp.StatusCode, out, err)
	}
	return out
}

// request creates a ServiceRequest and the Task for it, as an EMR does, and returns their ids.
func (l *loop) request(name string) (srID, taskID string) {
	patient := map[string]any{"reference": "Patient/" + name}
	sr := l.do(http.MethodPost, "/ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active",
		"intent": "order", "subject": patient,
		"identifier": []any{map[string]any{"system": "urn:emr:referral", "value": l.tag + "-" + name}}})
	srID = sr["id"].(string)
	task := l.do(http.MethodPost, "/Task", map[string]any{"resourceType": "Task", "status": "requested", "intent": "order",
		"for": patient, "basedOn": []any{map[string]any{"reference": "ServiceRequest/" + srID}},
		"input": []any{map[string]any{"type": map[string]any{"text": "dose"}, "valueDecimal": json.Number("0.10")}}})
	return srID, task["id"].(string)
}

// report is the CHW's follow-up report for taskID.
func (l *loop) report(id, taskID, outcome string, reported time.Time) *cht.Report {
	l.t.Helper()
	b, err := os.ReadFile("testdata/report_ltfu.json")
	if err != nil {
		l.t.Fatal(err)
	}
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	doc["_id"] = l.tag + "-" + id
	doc["reported_date"] = reported.UnixMilli()
	fields := doc["fields"].(map[string]any)
	fields["inputs"].(map[string]any)["fhir_task"] = taskID
	fields["follow_up"] = map[string]any{"outcome": outcome}
	b, _ = json.Marshal(doc)
	var r cht.Report
	if err := json.Unmarshal(b, &r); err != nil {
		l.t.Fatal(err)
	}
	return &r
}

// push converts and writes a follow-up report as the CHT → FHIR push does,
// and returns the transaction's warnings.
func (l *loop) push(r *cht.Report) []*fhir.ConversionError {
	l.t.Helper()
	tx, err := l.conv.ReportBundle(r)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := l.conv.CloseReferral(context.Background(), tx, r, l.rd); err != nil {
		l.t.Fatal(err)
	}
	body, err := tx.MarshalJSON()
	if err != nil {
		l.t.Fatal(err)
	}
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: l.rd.base, HTTPClient: l.rd.hc, MaxRetries: -1})
	if err != nil {
		l.t.Fatal(err)
	}
	if err := fc.Transaction(context.Background(), body); err != nil {
		l.t.Fatalf("push %s: %v", r.ID, err)
	}
	return tx.Warnings
}

// del deletes typ/id, as an EMR does.
func (l *loop) del(typ, id string) {
	l.t.Helper()
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: l.rd.base, HTTPClient: l.rd.hc, MaxRetries: -1})
	if err != nil {
		l.t.Fatal(err)
	}
	if err := fc.Delete(context.Background(), typ, id); err != nil {
		l.t.Fatalf("delete %s/%s: %v", typ, id, err)
	}
}

func (l *loop) read(typ, id string) map[string]any { return l.do(http.MethodGet, "/"+typ+"/"+id, nil) }

func get(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, _ := m.(map[string]any)
			m = mm[k]
		case int:
			a, _ := m.([]any)
			if k >= len(a) {
				return nil
			}
			m = a[k]
		}
	}
	return m
}

// encounterOf returns the id of the Encounter made from report id.
func (l *loop) encounterOf(reportID string) string {
	l.t.Helper()
	b := l.do(http.MethodGet, "/Encounter?identifier="+"https%3A%2F%2Fcht.example.org%2Fmedic%7C"+reportID, nil)
	if n, _ := b["total"].(float64); n != 1 {
		l.t.Fatalf("%v Encounters for report %s, want 1", b["total"], reportID)
	}
	return get(b, "entry", 0, "resource", "id").(string)
}

func testReferralLoop(t *testing.T, base string, hc *http.Client) {
	l := newLoop(t, base, hc)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

	t.Run("done closes the Task and completes the ServiceRequest, once under replays", func(t *testing.T) {
		l.t = t
		srID, taskID := l.request("p1")
		r := l.report("r1", taskID, "met", t0)
		l.push(r)
		first := l.read("Task", taskID)
		for range 2 {
			l.push(r)
		}
		task := l.read("Task", taskID)
		if get(task, "meta", "versionId") != get(first, "meta", "versionId") {
			t.Errorf("a replay wrote the Task again: version %v then %v", get(first, "meta", "versionId"), get(task, "meta", "versionId"))
		}
		enc := l.encounterOf(r.ID)
		if task["status"] != "completed" || get(task, "output", 0, "valueReference", "reference") != "Encounter/"+enc {
			t.Errorf("Task = %v, want completed with output Encounter/%s", task, enc)
		}
		if n := len(task["output"].([]any)); n != 1 {
			t.Errorf("%d Task outputs, want 1", n)
		}
		if get(task, "input", 0, "valueDecimal") != 0.1 || get(task, "basedOn", 0, "reference") != "ServiceRequest/"+srID {
			t.Errorf("the EMR's Task elements were not kept: %v", task)
		}
		if sr := l.read("ServiceRequest", srID); sr["status"] != "completed" {
			t.Errorf("ServiceRequest status %v, want completed", sr["status"])
		}
		if got := get(l.read("Encounter", enc), "basedOn", 0, "reference"); got != "ServiceRequest/"+srID {
			t.Errorf("Encounter.basedOn = %v, want ServiceRequest/%s", got, srID)
		}
	})

	t.Run("the order of two follow-ups does not change the final state", func(t *testing.T) {
		l.t = t
		final := func(name string, order ...string) map[string]any {
			srID, taskID := l.request(name)
			reports := map[string]*cht.Report{
				"A": l.report(name+"-a", taskID, "not_found", t0),
				"B": l.report(name+"-b", taskID, "met", t0.Add(time.Hour)),
			}
			for _, k := range order {
				l.push(reports[k])
			}
			task := l.read("Task", taskID)
			var outs []any
			for i := range task["output"].([]any) {
				outs = append(outs, get(task, "output", i, "valueReference", "identifier", "value"))
			}
			return map[string]any{"status": task["status"], "lastModified": task["lastModified"],
				"reason": get(task, "statusReason", "text"), "outputs": fmt.Sprint(outs...) != "",
				"n": len(outs), "sr": l.read("ServiceRequest", srID)["status"]}
		}
		ab := final("p2", "A", "B")
		ba := final("p3", "B", "A", "B", "A")
		want := map[string]any{"status": "completed", "lastModified": "2026-03-01T10:00:00.000Z", "reason": "met",
			"outputs": true, "n": 2, "sr": "completed"}
		for name, got := range map[string]map[string]any{"A,B": ab, "B,A,B,A": ba} {
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("after %s: %v, want %v", name, got, want)
			}
		}
	})

	// A CHW task raised by a ServiceRequest alone (fhir/tocht: a request
	// sent without a Task) hands its follow-up the request's id only: the
	// follow-up writes the visit basedOn the request and completes it.
	t.Run("a follow-up of a ServiceRequest alone completes it", func(t *testing.T) {
		l.t = t
		sr := l.do(http.MethodPost, "/ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active",
			"intent": "order", "subject": map[string]any{"reference": "Patient/p10"}})
		srID := sr["id"].(string)
		r := l.report("r13", "", "met", t0)
		r.Fields["inputs"].(map[string]any)["fhir_service_request"] = "ServiceRequest/" + srID
		l.push(r)
		if sr := l.read("ServiceRequest", srID); sr["status"] != "completed" {
			t.Errorf("ServiceRequest status %v, want completed", sr["status"])
		}
		if got := get(l.read("Encounter", l.encounterOf(r.ID)), "basedOn", 0, "reference"); got != "ServiceRequest/"+srID {
			t.Errorf("Encounter.basedOn = %v, want ServiceRequest/%s", got, srID)
		}
	})

	t.Run("not found fails the Task and leaves the ServiceRequest", func(t *testing.T) {
		l.t = t
		srID, taskID := l.request("p4")
		l.push(l.report("r4", taskID, "moved", t0))
		if task := l.read("Task", taskID); task["status"] != "failed" || get(task, "statusReason", "text") != "moved" {
			t.Errorf("Task = %v, want failed (moved)", task)
		}
		if sr := l.read("ServiceRequest", srID); sr["status"] != "active" {
			t.Errorf("ServiceRequest status %v, want active", sr["status"])
		}
	})

	// The R4 Task state machine (https://hl7.org/fhir/R4/task.html#statemachine)
	// has no way out of cancelled, entered-in-error, completed, failed and
	// rejected: a CHW's report arriving after the EMR closed the request is
	// recorded but reopens nothing.
	t.Run("a Task and ServiceRequest the EMR closed keep their status", func(t *testing.T) {
		l.t = t
		srID, taskID := l.request("p6")
		sr := l.read("ServiceRequest", srID)
		sr["status"] = "revoked"
		delete(sr, "meta")
		l.do(http.MethodPut, "/ServiceRequest/"+srID, sr)
		task := l.read("Task", taskID)
		task["status"] = "cancelled"
		task["statusReason"] = map[string]any{"text": "patient transferred"}
		task["lastModified"] = "2026-02-27T08:00:00Z"
		delete(task, "meta")
		l.do(http.MethodPut, "/Task/"+taskID, task)

		r := l.report("r9", taskID, "met", t0)
		l.push(r)
		l.push(l.report("r10", taskID, "not_found", t0.Add(time.Hour)))
		first := l.read("Task", taskID)
		l.push(r)
		task = l.read("Task", taskID)
		if task["status"] != "cancelled" || get(task, "statusReason", "text") != "patient transferred" ||
			task["lastModified"] != "2026-02-27T08:00:00Z" {
			t.Errorf("the EMR's cancelled Task became %v (%v, %v)", task["status"], get(task, "statusReason", "text"), task["lastModified"])
		}
		if n, _ := task["output"].([]any); len(n) != 2 ||
			get(task, "output", 0, "type", "text") != "CHT follow-up report; the Task was already closed" {
			t.Errorf("outputs %v, want both reports', saying the Task was closed", task["output"])
		}
		if get(task, "meta", "versionId") != get(first, "meta", "versionId") {
			t.Errorf("a replay wrote the closed Task again")
		}
		if sr := l.read("ServiceRequest", srID); sr["status"] != "revoked" {
			t.Errorf("the EMR's revoked ServiceRequest became %v", sr["status"])
		}
		if enc := l.encounterOf(r.ID); get(l.read("Encounter", enc), "basedOn", 0, "reference") != "ServiceRequest/"+srID {
			t.Errorf("the report's Encounter is not basedOn its ServiceRequest")
		}
	})

	t.Run("a Task the EMR rejected stays rejected whatever the follow-ups' order", func(t *testing.T) {
		l.t = t
		final := func(name string, order ...string) any {
			_, taskID := l.request(name)
			task := l.read("Task", taskID)
			task["status"] = "rejected"
			delete(task, "meta")
			l.do(http.MethodPut, "/Task/"+taskID, task)
			reports := map[string]*cht.Report{
				"A": l.report(name+"-a", taskID, "not_found", t0),
				"B": l.report(name+"-b", taskID, "met", t0.Add(time.Hour)),
			}
			for _, k := range order {
				l.push(reports[k])
			}
			task = l.read("Task", taskID)
			return fmt.Sprintf("%v %v %d", task["status"], get(task, "statusReason"), len(task["output"].([]any)))
		}
		if ab, ba := final("p7", "A", "B"), final("p8", "B", "A"); ab != "rejected <nil> 2" || ba != ab {
			t.Errorf("after A,B: %v; after B,A: %v; want rejected <nil> 2", ab, ba)
		}
	})

	t.Run("the EMR's cancellation after a follow-up stays", func(t *testing.T) {
		l.t = t
		_, taskID := l.request("p9")
		l.push(l.report("r11", taskID, "not_found", t0))
		task := l.read("Task", taskID)
		task["status"] = "cancelled"
		delete(task, "meta")
		l.do(http.MethodPut, "/Task/"+taskID, task)
		l.push(l.report("r12", taskID, "met", t0.Add(time.Hour)))
		if task := l.read("Task", taskID); task["status"] != "cancelled" {
			t.Errorf("the EMR's cancelled Task became %v", task["status"])
		}
	})

	t.Run("a gone Task or ServiceRequest is left out with a warning", func(t *testing.T) {
		l.t = t
		testGoneReferral(t, l, t0, false)
	})

	// A CHT task raised without the request's ids (fhir/tocht accepted a
	// ServiceRequest without an id before it refused one) hands its
	// follow-up neither id. No retry can name the request: failing the push
	// would leave it in CHT's outbound queue for good (Sentinel retries a
	// failed push every 5 minutes, cht-core sentinel/src/schedule/outbound.js),
	// so the visit is written, closing nothing, with a warning.
	t.Run("a follow-up naming no request is written with a warning", func(t *testing.T) {
		l.t = t
		for _, tt := range []struct {
			name   string
			inputs map[string]any
		}{
			{"ids absent", map[string]any{}},
			{"ids empty", map[string]any{"fhir_task": "", "fhir_service_request": " "}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				l.t = t
				r := l.report("none-"+strings.ReplaceAll(tt.name, " ", "-"), "", "met", t0)
				inputs := r.Fields["inputs"].(map[string]any)
				delete(inputs, "fhir_task")
				for k, v := range tt.inputs {
					inputs[k] = v
				}
				warns := l.push(r)
				if len(warns) != 1 || warns[0].Field != "fields.inputs.fhir_task" || warns[0].DocID != r.ID ||
					!strings.Contains(warns[0].Reason, "fields.inputs.fhir_service_request") {
					t.Fatalf("warnings %v, want one on fields.inputs.fhir_task naming both fields", warns)
				}
				if enc := l.read("Encounter", l.encounterOf(r.ID)); enc["basedOn"] != nil {
					t.Errorf("Encounter.basedOn = %v, want none", enc["basedOn"])
				}
			})
		}
	})

	t.Run("bad follow-up reports name the field", func(t *testing.T) {
		l.t = t
		_, taskID := l.request("p5")
		for _, tt := range []struct {
			r     *cht.Report
			field string
		}{
			{l.report("r6", "Task/bad id!", "met", t0), "fields.inputs.fhir_task"},
			{l.report("r7", taskID, "maybe", t0), "fields.follow_up.outcome"},
		} {
			tx, err := l.conv.ReportBundle(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			err = l.conv.CloseReferral(context.Background(), tx, tt.r, l.rd)
			var ce *fhir.ConversionError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Errorf("CloseReferral = %v, want a ConversionError naming %s", err, tt.field)
			}
		}
	})
}

// testGoneReferral: a follow-up whose Task or ServiceRequest the FHIR server
// no longer has (deleted: 410 Gone on HAPI, which keeps deleted resources,
// BaseHapiFhirResourceDao read's ResourceGoneException; 404 on servers that
// keep no record of deletions, medplum's in-memory repository among them;
// R4 http.html#read) is written without it, with a warning naming the
// report's field and the gone resource. Failing it instead would leave the
// push in CHT's outbound queue for good: Sentinel retries a failed push
// every 5 minutes without end (cht-core sentinel/src/schedule/outbound.js),
// and the visit would never reach FHIR.
//
// keepsReferences is set for a server that refuses a write referring to a
// deleted resource (HAPI-1096 "is deleted, specified in path", HAPI's
// enforce_referential_integrity_on_write) and a delete of a resource others
// refer to (HAPI-0515 "Unable to delete ... because at least one resource has a
// reference to this resource", enforce_referential_integrity_on_delete; both on by
// default): there a ServiceRequest that a Task still refers to cannot be
// deleted, so the cases of a kept Task whose ServiceRequest is gone cannot
// arise and are not run.
func testGoneReferral(t *testing.T, l *loop, t0 time.Time, keepsReferences bool) {
	for i, tt := range []struct {
		name string
		// setup makes the referral and removes what is gone; it returns the
		// report and the Task that stays (or "").
		setup   func(name string) (r *cht.Report, taskID string)
		field   string // of the warning
		goneRef string // the warning names it
		// taskRefersToGone: a Task that stays refers to the gone
		// ServiceRequest.
		taskRefersToGone bool
	}{
		{"the Task's ServiceRequest deleted", func(name string) (*cht.Report, string) {
			srID, taskID := l.request(name)
			l.del("ServiceRequest", srID)
			return l.report(name, taskID, "met", t0), taskID
		}, "fields.inputs.fhir_task", "ServiceRequest/", true},
		{"the Task deleted", func(name string) (*cht.Report, string) {
			_, taskID := l.request(name)
			l.del("Task", taskID)
			return l.report(name, taskID, "met", t0), ""
		}, "fields.inputs.fhir_task", "Task/", false},
		{"a Task the server never had", func(name string) (*cht.Report, string) {
			return l.report(name, "no-such-task-"+l.tag, "met", t0), ""
		}, "fields.inputs.fhir_task", "Task/no-such-task-", false},
		{"the report's ServiceRequest deleted, its Task kept", func(name string) (*cht.Report, string) {
			srID, taskID := l.request(name)
			l.del("ServiceRequest", srID)
			r := l.report(name, taskID, "met", t0)
			r.Fields["inputs"].(map[string]any)["fhir_service_request"] = srID
			return r, taskID
		}, "fields.inputs.fhir_service_request", "ServiceRequest/", true},
		{"a ServiceRequest sent alone, deleted", func(name string) (*cht.Report, string) {
			srID, taskID := l.request(name)
			l.del("Task", taskID) // the request had no Task
			l.del("ServiceRequest", srID)
			r := l.report(name, "", "met", t0)
			r.Fields["inputs"].(map[string]any)["fhir_service_request"] = "ServiceRequest/" + srID
			return r, ""
		}, "fields.inputs.fhir_service_request", "ServiceRequest/", false},
		// Nothing to complete: the ServiceRequest is read all the same,
		// as the Encounter would refer to it.
		{"a ServiceRequest sent alone, deleted, its patient not found", func(name string) (*cht.Report, string) {
			srID, taskID := l.request(name)
			l.del("Task", taskID)
			l.del("ServiceRequest", srID)
			r := l.report(name, "", "not_found", t0)
			r.Fields["inputs"].(map[string]any)["fhir_service_request"] = srID
			return r, ""
		}, "fields.inputs.fhir_service_request", "ServiceRequest/", false},
	} {
		if keepsReferences && tt.taskRefersToGone {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			l.t = t
			r, taskID := tt.setup(fmt.Sprintf("gone%d", i))
			warns := l.push(r)
			if len(warns) != 1 || warns[0].Field != tt.field || warns[0].DocID != r.ID ||
				!strings.Contains(warns[0].Reason, tt.goneRef) || !strings.Contains(warns[0].Reason, "gone") {
				t.Fatalf("warnings %v, want one on %s naming %s as gone", warns, tt.field, tt.goneRef)
			}
			enc := l.read("Encounter", l.encounterOf(r.ID))
			if enc["basedOn"] != nil {
				t.Errorf("Encounter.basedOn = %v, want none: what it named is gone", enc["basedOn"])
			}
			if taskID != "" {
				task := l.read("Task", taskID)
				if task["status"] != "completed" || get(task, "output", 0, "valueReference", "reference") != "Encounter/"+enc["id"].(string) {
					t.Errorf("the Task that stays = %v, want completed with the Encounter as output", task)
				}
			}
			// A replay writes nothing new and warns again.
			if warns := l.push(r); len(warns) != 1 {
				t.Errorf("replay: warnings %v, want one", warns)
			}
		})
	}
}

// failingReader fails the reads of one resource type with err.
type failingReader struct {
	restReader
	typ string
	err error
}

func (f failingReader) Read(ctx context.Context, typ, id string, out any) error {
	if typ == f.typ {
		return f.err
	}
	return f.restReader.Read(ctx, typ, id, out)
}

// TestCloseReferralFailsOnOtherReadErrors: only 404 and 410 mean gone. A
// server failing (5xx), refusing the mediator's credentials (401, 403),
// throttling (429) or not answering fails the push, which CHT sends again:
// the Task or ServiceRequest may well be there.
func TestCloseReferralFailsOnOtherReadErrors(t *testing.T) {
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	l := newLoop(t, srv.URL, srv.Client())
	_, taskID := l.request("fails")
	for _, typ := range []string{"Task", "ServiceRequest"} {
		for _, err := range []error{
			&fhir.ServerError{StatusCode: http.StatusInternalServerError, Entry: -1},
			&fhir.ServerError{StatusCode: http.StatusBadGateway, Entry: -1},
			&fhir.ServerError{StatusCode: http.StatusUnauthorized, Entry: -1},
			&fhir.ServerError{StatusCode: http.StatusForbidden, Entry: -1},
			&fhir.ServerError{StatusCode: http.StatusTooManyRequests, Entry: -1},
			fmt.Errorf("dial tcp: %w", context.DeadlineExceeded),
			errors.New("connection reset by peer"),
		} {
			t.Run(fmt.Sprintf("%s %v", typ, err), func(t *testing.T) {
				r := l.report("fails", taskID, "met", time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
				tx, cerr := l.conv.ReportBundle(r)
				if cerr != nil {
					t.Fatal(cerr)
				}
				cerr = l.conv.CloseReferral(context.Background(), tx, r, failingReader{l.rd, typ, err})
				var ce *fhir.ConversionError
				if !errors.Is(cerr, err) || errors.As(cerr, &ce) {
					t.Errorf("CloseReferral = %v, want the read's error %v, not a ConversionError", cerr, err)
				}
				if len(tx.Warnings) != 0 {
					t.Errorf("warnings %v, want none", tx.Warnings)
				}
			})
		}
	}
}

func TestReferralLoopInMemory(t *testing.T) {
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	testReferralLoop(t, srv.URL, srv.Client())
}

// TestReferralGone runs the gone cases against servers that answer a
// deleted resource 410 Gone, as HAPI FHIR does (BaseHapiFhirResourceDao
// read: ResourceGoneException), and, with references kept, refuse a
// transaction that refers to a resource they do not have (HAPI-1094 and
// HAPI-1096 with enforce_referential_integrity_on_write, on by default):
// the follow-up must not refer to what is gone. TestReferralLoopInMemory
// runs them on a server that answers 404.
func TestReferralGone(t *testing.T) {
	for _, keepsReferences := range []bool{false, true} {
		t.Run(fmt.Sprintf("410, references kept %v", keepsReferences), func(t *testing.T) {
			testGoneOn(t, fhirtest.Config{Gone: true, ReferentialIntegrity: keepsReferences})
		})
	}
}

func testGoneOn(t *testing.T, cfg fhirtest.Config) {
	srv := fhirtest.NewServer(cfg)
	t.Cleanup(srv.Close)
	l := newLoop(t, srv.URL, srv.Client())
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	// The people the report refers to (its patient, its CHW), which the
	// push of their CHT documents would have written.
	tx, err := l.conv.ReportBundle(l.report("people", "", "met", t0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := tx.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"reference":"(Patient|Practitioner)/([A-Za-z0-9.-]+)"`).FindAllStringSubmatch(string(b), -1) {
		l.do(http.MethodPut, "/"+m[1]+"/"+m[2], map[string]any{"resourceType": m[1], "id": m[2]})
	}
	testGoneReferral(t, l, t0, cfg.ReferentialIntegrity)
}

// TestE2EReferralLoop runs the loop against the real FHIR server (FHIR_BASE_URL).
func TestE2EReferralLoop(t *testing.T) {
	base := os.Getenv("FHIR_BASE_URL")
	if base == "" {
		t.Skip("FHIR_BASE_URL not set")
	}
	testReferralLoop(t, strings.TrimRight(base, "/"), &http.Client{Timeout: 30 * time.Second})
}

func TestFollowUpMappingValidation(t *testing.T) {
	tests := []struct {
		f    fhir.FollowUp
		want string
	}{
		{fhir.FollowUp{}, "followUp.task is required"},
		{fhir.FollowUp{Task: "inputs..task"}, "empty path segment"},
		{fhir.FollowUp{Task: "t", Done: []string{"met"}}, "needs followUp.outcome"},
		{fhir.FollowUp{Task: "t", Outcome: "o"}, "followUp.done needs at least one value"},
		{fhir.FollowUp{Task: "t", Outcome: "o", Done: []string{"met"}, Refused: []string{"met"}}, `"met" is listed in both done and refused`},
	}
	for _, tt := range tests {
		f := tt.f
		m := &fhir.Mapping{Forms: []fhir.FormMapping{{Form: "follow", FollowUp: &f}}}
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.f, err, tt.want)
		}
	}
	yaml := "forms:\n  - form: follow\n    fields: []\n    followUp: {task: inputs.fhir_task, outcome: o, done: [met], completeRequest: true}\n"
	m, err := fhir.ParseMapping([]byte(yaml))
	if err != nil || m.Forms[0].FollowUp == nil || !m.Forms[0].FollowUp.CompleteRequest {
		t.Errorf("ParseMapping = %+v, %v", m, err)
	}
}

// The follow-up keeps the EMR's Task and ServiceRequest elements, among them
// the client-owned members of meta (profile, security, tag: FHIR R4
// resource.html#Meta); only the server's versionId and lastUpdated are left
// to the server.
func TestReferralKeepsTheEMRsMeta(t *testing.T) {
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	l := newLoop(t, srv.URL, srv.Client())
	srID, taskID := l.request("meta")
	meta := map[string]any{
		"profile":  []any{"http://example.org/fhir/StructureDefinition/referral"},
		"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}},
		"tag":      []any{map[string]any{"system": "urn:emr:tag", "code": "ltfu"}},
	}
	for _, typ := range []string{"Task", "ServiceRequest"} {
		id := taskID
		if typ == "ServiceRequest" {
			id = srID
		}
		res := l.read(typ, id)
		res["meta"] = meta
		l.do(http.MethodPut, "/"+typ+"/"+id, res)
	}
	l.push(l.report("m1", taskID, "met", time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)))
	for _, typ := range []string{"Task", "ServiceRequest"} {
		id := taskID
		if typ == "ServiceRequest" {
			id = srID
		}
		res := l.read(typ, id)
		if res["status"] != "completed" {
			t.Errorf("%s status %v, want completed", typ, res["status"])
		}
		for _, k := range []string{"profile", "security", "tag"} {
			if got, want := fmt.Sprint(get(res, "meta", k)), fmt.Sprint(meta[k]); got != want {
				t.Errorf("%s meta.%s = %s, want %s", typ, k, got, want)
			}
		}
	}
}
