package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// followUpForm is the CHW's referral follow-up form: its inputs carry the Task id the CHT task
// was raised with, and its outcome closes the Task (see docs/referral-loop.md).
const followUpForm = "referral_follow_up"

// referralFollowUp declares followUpForm as the follow-up of a FHIR request in the demo mapping.
var referralFollowUp = fhir.FormMapping{
	Form:          followUpForm,
	EncounterType: &fhir.Code{System: "http://snomed.info/sct", Code: "390906007", Display: "Follow-up encounter"},
	FollowUp: &fhir.FollowUp{
		Task:            "inputs.fhir_task",
		Outcome:         "follow_up.outcome",
		Done:            []string{"met", "referred_and_attended"},
		NotFound:        []string{"not_found", "moved_away"},
		Refused:         []string{"refused"},
		CompleteRequest: true,
	},
}

// withReferral adds the referral follow-up form to the demo's mapping.
func withReferral(m *fhir.Mapping) error {
	m.Forms = append(m.Forms, referralFollowUp)
	return m.Validate()
}

// emr is the EMR's notification endpoint: it records the rest-hook notifications the FHIR
// server sends for the referral's Task.
type emr struct {
	*httptest.Server
	mu    sync.Mutex
	notes []string
}

func newEMR() *emr {
	e := &emr{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var task struct {
			Status string `json:"status"`
			Output []struct {
				ValueReference struct {
					Reference string `json:"reference"`
				} `json:"valueReference"`
			} `json:"output"`
		}
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&task)
		// The header's value is a secret, even a demo's: say only whether
		// it is the one the Subscription carries.
		auth := "no Authorization header"
		switch h := r.Header.Get("Authorization"); {
		case h == emrAuthorization:
			auth = "with the EMR's Authorization token"
		case h != "":
			auth = "with an unexpected Authorization header"
		}
		note := fmt.Sprintf("%s %s (%s): Task status %s", r.Method, r.URL.Path, auth, task.Status)
		for _, o := range task.Output {
			note += ", output " + o.ValueReference.Reference
		}
		e.mu.Lock()
		e.notes = append(e.notes, note)
		e.mu.Unlock()
	}))
	return e
}

func (e *emr) received() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.notes...)
}

// emrAuthorization is the Authorization header the FHIR server sends the EMR with each
// notification (Subscription.channel.header).
const emrAuthorization = "Bearer emr-demo-token"

// emrNotify is the Subscription the fhir-to-cht mediator creates for each Task.
func (e *emr) notify() *fhir.TaskSubscription {
	return &fhir.TaskSubscription{Endpoint: e.URL + "/referral-events", Header: []string{"Authorization: " + emrAuthorization},
		Payload: "application/fhir+json"}
}

// runReferral closes the referral loop: the EMR's ServiceRequest and Task become a CHT task (with
// the EMR subscribed to the Task), the CHW's follow-up report is pushed by CHT (twice), and the
// Task is completed with the Encounter as output, the ServiceRequest completed and the EMR told
// once.
func (d *demo) runReferral(ctx context.Context, out io.Writer) error {
	fmt.Fprintln(out, "\n== 5. Referral loop: the EMR refers the patient with a ServiceRequest and a Task in the FHIR server, and sends the Task through OpenHIM")
	patient := map[string]any{"reference": "Patient/" + d.conv.ID("Patient", newPatientID)}
	srID, taskID := "referral-sr-0042", "referral-task-0042"
	err := d.fhir.Load(
		map[string]any{"resourceType": "ServiceRequest", "id": srID, "status": "active", "intent": "order", "subject": patient,
			"code": map[string]any{"text": "Refer to Ugunja Health Centre for ANC"}},
		map[string]any{"resourceType": "Task", "id": taskID, "status": "requested", "intent": "order", "for": patient,
			"basedOn": []any{map[string]any{"reference": "ServiceRequest/" + srID}}, "authoredOn": "2025-03-15T08:00:00Z"},
	)
	if err != nil {
		return err
	}
	task, _ := d.fhir.Resource("Task", taskID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.core.RouterURL+tocht.BasePath+"/Task", bytes.NewReader(task))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.SetBasicAuth(emrClientID, emrClientPW)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the EMR request: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the EMR Task answered %d: %s", resp.StatusCode, body)
	}
	fmt.Fprintf(out, "   POST /fhir/Task → HTTP %d; Subscriptions in the FHIR server: %d\n", resp.StatusCode, d.fhir.Count("Subscription"))

	var record struct {
		ID     string         `json:"_id"`
		Fields map[string]any `json:"fields"`
	}
	for _, raw := range d.cht.Reports(taskForm) {
		var r struct {
			ID     string         `json:"_id"`
			Fields map[string]any `json:"fields"`
		}
		if json.Unmarshal(raw, &r) == nil && r.Fields["fhir_task"] == taskID {
			record = r
		}
	}
	if record.ID == "" {
		return fmt.Errorf("no CHT record carries fhir_task %s", taskID)
	}
	fmt.Fprintf(out, "   CHT task record %s: fhir_task %v, fhir_service_request %v\n", record.ID, record.Fields["fhir_task"], record.Fields["fhir_service_request"])

	fmt.Fprintln(out, "\n== 6. The CHW visits and submits the follow-up form (its inputs hold the Task id); CHT pushes it twice")
	reportID := "referral-follow-up-0042"
	if _, err := d.cht.PutDoc(map[string]any{
		"_id": reportID, "type": "data_record", "form": followUpForm, "reported_date": time.Date(2025, 3, 18, 10, 30, 0, 0, time.UTC).UnixMilli(),
		"contact": map[string]any{"_id": chttest.DemoCHWID},
		"fields": map[string]any{"patient_uuid": newPatientID,
			"inputs":    map[string]any{"fhir_task": record.Fields["fhir_task"], "contact": map[string]any{"_id": newPatientID}},
			"follow_up": map[string]any{"outcome": "referred_and_attended"}},
	}); err != nil {
		return err
	}
	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "cht_to_fhir", URL: d.core.RouterURL + push.OutboundPath,
		Username: chtClientID, Password: chtClientPW, Mapping: map[string]any{"doc": "doc"}, Server: d.cht, Logger: d.log})
	if err != nil {
		return err
	}
	taskVersion := func() string {
		raw, _ := d.fhir.Resource("Task", taskID)
		var t struct {
			Meta struct {
				VersionID string `json:"versionId"`
			} `json:"meta"`
		}
		_ = json.Unmarshal(raw, &t)
		return t.Meta.VersionID
	}
	att, err := pusher.PushID(ctx, reportID)
	if err != nil {
		return fmt.Errorf("push %s: %w (answer %d: %s)", reportID, err, att.StatusCode, att.Response)
	}
	version := taskVersion()
	fmt.Fprintf(out, "   push → HTTP %d; Task version %s\n", att.StatusCode, version)
	// The same payload again, as CHT sends it after a lost answer.
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, d.core.RouterURL+push.OutboundPath, bytes.NewReader(att.Payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(chtClientID, chtClientPW)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("re-push %s: %w", reportID, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("re-push %s: HTTP %d", reportID, resp.StatusCode)
	}
	fmt.Fprintf(out, "   same push again → HTTP %d; Task version %s\n", resp.StatusCode, taskVersion())
	if v := taskVersion(); v != version {
		return fmt.Errorf("the replayed push wrote the Task again (version %s → %s)", version, v)
	}

	raw, _ := d.fhir.Resource("Task", taskID)
	var t struct {
		Status string `json:"status"`
		Output []struct {
			ValueReference struct {
				Reference string `json:"reference"`
			} `json:"valueReference"`
		} `json:"output"`
	}
	if err := json.Unmarshal(raw, &t); err != nil || t.Status != "completed" || len(t.Output) != 1 {
		return fmt.Errorf("the Task after the follow-up: %s", raw)
	}
	sr, _ := d.fhir.Resource("ServiceRequest", srID)
	var s struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(sr, &s)
	fmt.Fprintf(out, "   Task %s: %s, output %s; ServiceRequest %s: %s\n", taskID, t.Status, t.Output[0].ValueReference.Reference, srID, s.Status)
	if s.Status != "completed" {
		return fmt.Errorf("the ServiceRequest %s is %s, want completed", srID, s.Status)
	}

	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := d.fhir.AwaitNotifications(wait, 1); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond) // a duplicate notification would arrive now
	notes := d.emr.received()
	fmt.Fprintf(out, "\n== 7. The FHIR server told the EMR (rest-hook Subscription), %d time(s):\n", len(notes))
	for _, n := range notes {
		fmt.Fprintln(out, "   "+n)
	}
	if len(notes) != 1 {
		return fmt.Errorf("the EMR was notified %d times, want once", len(notes))
	}
	return nil
}
