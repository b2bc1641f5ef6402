package tocht_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// TestOneReferralOneCHWTaskAcrossRequests: an EMR sends a referral's
// ServiceRequest and the Task that carries it out (Task.basedOn, R4
// task.html) one after the other as often as together: a FHIR server's
// rest-hook Subscriptions notify each resource on its own (R4
// subscription.html, one criteria per Subscription), and OpenMRS FHIR2
// writes the order and its Task in separate calls (FhirTaskServiceImpl).
// However they arrive, one referral raises one CHW task: one report, keyed
// by the ServiceRequest, naming the Task (fhir_task) and the
// ServiceRequest (fhir_service_request) once the Task has been sent, with
// the Task's reason and due date, else the request's. A Task sent alone
// reads its ServiceRequest from Config.FHIRURL; a ServiceRequest sent
// after its Task keeps the Task's values. A report an earlier version of
// the bridge keyed by the Task is updated, not doubled.
func TestOneReferralOneCHWTaskAcrossRequests(t *testing.T) {
	const (
		srID   = "7d96f25c-4949-4f72-9931-d808fbc226de"
		taskID = "55616228-dc6d-446f-ab50-4ec711ea9243"
	)
	openmrs := testdata(t, "bundle-referral-openmrs.json")
	var bundle map[string]any
	require.NoError(t, json.Unmarshal(openmrs, &bundle))
	sr, err := json.Marshal(entryResource(bundle, 0))
	require.NoError(t, err)
	task, err := json.Marshal(entryResource(bundle, 1))
	require.NoError(t, err)
	// What the CHW task says once the Task is known: the request's reason
	// and due date, as the Task gives none.
	joined := map[string]any{"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
		"service_request_id": taskID, "reason": "Missed ART refill appointment", "due_date": "2024-05-09"}
	ownReason := patched(t, task, func(m map[string]any) {
		m["reasonCode"] = map[string]any{"text": "Home visit"}
		m["restriction"] = map[string]any{"period": map[string]any{"end": "2024-05-05"}}
	})
	// A second Task for the same request (another attempt at the visit).
	const task2ID = "6a1f0e2b-7c3d-4e5f-8a9b-0c1d2e3f4a5b"
	task2 := patched(t, task, func(m map[string]any) {
		m["id"] = task2ID
		m["identifier"] = member(t, `[{"system": "http://fhir.openmrs.org/ext/task/identifier", "value": "`+task2ID+`"}]`)
	})
	joined2 := map[string]any{"patient_uuid": chttest.DemoPatientID, "fhir_task": task2ID, "fhir_service_request": srID,
		"service_request_id": task2ID, "reason": "Missed ART refill appointment", "due_date": "2024-05-09"}
	corrected := patched(t, sr, func(m map[string]any) {
		m["occurrenceDateTime"] = "2024-05-12"
		m["reasonCode"] = member(t, `[{"text": "Missed ART refill, second notice"}]`)
	})
	// A Task whose focus names another request, not in the Bundle, and
	// whose basedOn names the Bundle's: the report names the focus's, and
	// is keyed by it however the Task is sent.
	const otherSR = "0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b"
	focusOther := func(m map[string]any) {
		m["focus"] = member(t, `{"reference": "ServiceRequest/`+otherSR+`"}`)
	}
	other := patched(t, sr, func(m map[string]any) {
		m["id"] = otherSR
		m["reasonCode"] = member(t, `[{"text": "Viral load sample"}]`)
	})
	type send struct {
		path   string
		body   []byte
		status int
	}
	tests := []struct {
		name    string
		noFHIR  bool     // Config.FHIRURL unset
		onFHIR  []byte   // the ServiceRequest the FHIR server holds; nil: sr
		more    [][]byte // more resources the FHIR server holds
		faults  *fhirtest.Faults
		legacy  bool // the report is first moved to the Task's own key, as earlier versions wrote it
		sends   []send
		reports []map[string]any // the follow-up reports at the end
		expr    string           // of the last send's refusal
	}{
		{name: "the ServiceRequest, then its Task", sends: []send{
			{"/fhir/ServiceRequest", sr, http.StatusCreated}, {"/fhir/Task", task, http.StatusOK}},
			reports: []map[string]any{joined}},
		{name: "the Task, then its ServiceRequest", sends: []send{
			{"/fhir/Task", task, http.StatusCreated}, {"/fhir/ServiceRequest", sr, http.StatusOK}},
			reports: []map[string]any{joined}},
		{name: "the Task's own reason and due date stay when the ServiceRequest follows", sends: []send{
			{"/fhir/Task", ownReason, http.StatusCreated}, {"/fhir/ServiceRequest", sr, http.StatusOK}},
			reports: []map[string]any{{"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
				"service_request_id": taskID, "reason": "Home visit", "due_date": "2024-05-05"}}},
		{name: "the Task, then its ServiceRequest corrected", more: [][]byte{task}, sends: []send{
			{"/fhir/Task", task, http.StatusCreated}, {"/fhir/ServiceRequest", corrected, http.StatusOK}},
			reports: []map[string]any{{"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
				"service_request_id": taskID, "reason": "Missed ART refill, second notice", "due_date": "2024-05-12"}}},
		{name: "the Task's own values stay when its ServiceRequest is corrected", more: [][]byte{ownReason}, sends: []send{
			{"/fhir/Task", ownReason, http.StatusCreated}, {"/fhir/ServiceRequest", corrected, http.StatusOK}},
			reports: []map[string]any{{"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
				"service_request_id": taskID, "reason": "Home visit", "due_date": "2024-05-05"}}},
		{name: "a second Task for the request is a CHW task of its own", sends: []send{
			{"/fhir/ServiceRequest", sr, http.StatusCreated}, {"/fhir/Task", task, http.StatusOK},
			{"/fhir/Task", task2, http.StatusCreated}, {"/fhir/Task", task, http.StatusOK}, {"/fhir/Task", task2, http.StatusOK}},
			reports: []map[string]any{joined, joined2}},
		{name: "a second Task in a Bundle with the request", sends: []send{
			{"/fhir", openmrs, http.StatusOK},
			{"/fhir", patched(t, openmrs, func(m map[string]any) {
				m["entry"].([]any)[1].(map[string]any)["resource"] = member(t, string(task2))
				m["entry"].([]any)[1].(map[string]any)["request"] = member(t, `{"method": "PUT", "url": "Task/`+task2ID+`"}`)
			}), http.StatusOK}},
			reports: []map[string]any{joined, joined2}},
		{name: "keyed by the focus's request, in a Bundle and alone", more: [][]byte{other}, sends: []send{
			{"/fhir", patched(t, openmrs, func(m map[string]any) { focusOther(entryResource(m, 1)) }), http.StatusOK},
			{"/fhir/Task", patched(t, task, focusOther), http.StatusOK}, {"/fhir/ServiceRequest", other, http.StatusOK}},
			reports: []map[string]any{{"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": otherSR,
				"service_request_id": taskID, "reason": "Viral load sample", "due_date": "2024-05-09"}}},
		{name: "its ServiceRequest completed on the FHIR server", onFHIR: patched(t, sr, func(m map[string]any) { m["status"] = "completed" }),
			sends: []send{{"/fhir/Task", task, http.StatusCreated}}, reports: []map[string]any{joined}},
		{name: "both in a Bundle, then the ServiceRequest again", sends: []send{
			{"/fhir", openmrs, http.StatusOK}, {"/fhir/ServiceRequest", sr, http.StatusOK}},
			reports: []map[string]any{joined}},
		{name: "the ServiceRequest, then both in a Bundle", sends: []send{
			{"/fhir/ServiceRequest", sr, http.StatusCreated}, {"/fhir", openmrs, http.StatusOK}},
			reports: []map[string]any{joined}},
		{name: "the Task in a Bundle without its ServiceRequest", sends: []send{
			{"/fhir/ServiceRequest", sr, http.StatusCreated},
			{"/fhir", patched(t, openmrs, func(m map[string]any) { m["entry"] = m["entry"].([]any)[1:] }), http.StatusOK}},
			reports: []map[string]any{joined}},
		{name: "a report keyed by the Task before is updated", legacy: true, sends: []send{
			{"/fhir", openmrs, http.StatusOK}, {"/fhir/Task", ownReason, http.StatusOK}},
			reports: []map[string]any{{"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
				"service_request_id": taskID, "reason": "Home visit", "due_date": "2024-05-05"}}},
		{name: "without a FHIR server, keyed by the request's id", noFHIR: true, sends: []send{
			{"/fhir/ServiceRequest", sr, http.StatusCreated}, {"/fhir/Task", task, http.StatusOK}},
			reports: []map[string]any{joined}},
		{name: "without a FHIR server, a Bundle and the Task alone", noFHIR: true, sends: []send{
			{"/fhir", openmrs, http.StatusOK}, {"/fhir/Task", patched(t, task, func(m map[string]any) { m["status"] = "accepted" }), http.StatusOK},
			{"/fhir/ServiceRequest", sr, http.StatusOK}},
			reports: []map[string]any{joined}},
		{name: "without a FHIR server, the Task, then its ServiceRequest", noFHIR: true, sends: []send{
			{"/fhir/Task", ownReason, http.StatusCreated}, {"/fhir/ServiceRequest", sr, http.StatusOK}},
			reports: []map[string]any{{"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
				"service_request_id": taskID, "reason": "Home visit", "due_date": "2024-05-05"}}},
		{name: "the FHIR server does not have the ServiceRequest", onFHIR: []byte{}, sends: []send{
			{"/fhir/Task", task, http.StatusCreated}},
			reports: []map[string]any{{"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID,
				"fhir_service_request": srID, "service_request_id": taskID}}},
		{name: "its ServiceRequest is revoked", onFHIR: patched(t, sr, func(m map[string]any) { m["status"] = "revoked" }),
			sends: []send{{"/fhir/Task", task, http.StatusUnprocessableEntity}}, expr: "Task.basedOn[0]"},
		{name: "its ServiceRequest is about another person", onFHIR: patched(t, sr, func(m map[string]any) {
			m["subject"] = member(t, `{"identifier": {"system": "https://cht.example.org/medic", "value": "`+chttest.DemoMotherID+`"}}`)
		}), sends: []send{{"/fhir/Task", task, http.StatusUnprocessableEntity}}, expr: "Task.for"},
		{name: "the FHIR server failing", faults: &fhirtest.Faults{FailRate: 1, IncludeReads: true},
			sends: []send{{"/fhir/Task", task, http.StatusBadGateway}}, expr: "GET ServiceRequest/" + srID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			stored := sr
			if tt.onFHIR != nil {
				stored = tt.onFHIR
			}
			if len(stored) > 0 {
				require.NoError(t, r.fhir.Load(stored))
			}
			for _, res := range tt.more {
				require.NoError(t, r.fhir.Load(res))
			}
			if !tt.noFHIR {
				r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
			}
			if tt.faults != nil {
				require.NoError(t, r.fhir.SetFaults(*tt.faults))
			}
			var a answer
			for i, s := range tt.sends {
				a = r.post(t, s.path, s.body)
				require.Equal(t, s.status, a.status, "send %d: %s", i, a.body)
				if i == 0 && tt.legacy {
					moveToTaskKey(t, r, taskID)
				}
			}
			if tt.expr != "" {
				assert.Contains(t, parseOutcome(t, a.body).text(), tt.expr)
			}
			var got []map[string]any
			for _, rep := range r.reports(t, "INTEROP_FOLLOW_UP") {
				got = append(got, rep["fields"].(map[string]any))
			}
			assert.ElementsMatch(t, tt.reports, got)
			if len(tt.reports) == 1 && !tt.legacy && tt.more == nil {
				rep := r.reports(t, "INTEROP_FOLLOW_UP")[0]
				assert.Equal(t, r.bridge.ReportID("ServiceRequest", "id:"+srID), rep["_id"], "the report's key")
			}
		})
	}
}

// TestEachTaskIsACHWTaskOfItsOwn: a ServiceRequest may be carried out by
// several Tasks (R4 task.html: a Task per attempt, each basedOn the
// request), sent one after the other or at once: each Task is a CHW task
// of its own; the first takes the request's report, the others get their
// own, and a ServiceRequest sent afterwards keeps the Task's values. (A
// Task is told by its id, fhir_task; the referral loop needs it anyway.)
func TestEachTaskIsACHWTaskOfItsOwn(t *testing.T) {
	const srID = "7d96f25c-4949-4f72-9931-d808fbc226de"
	var bundle map[string]any
	require.NoError(t, json.Unmarshal(testdata(t, "bundle-referral-openmrs.json"), &bundle))
	sr, err := json.Marshal(entryResource(bundle, 0))
	require.NoError(t, err)
	// taskFor is a Task of the request, with its own reason.
	taskFor := func(name string) []byte {
		return []byte(`{"resourceType": "Task", "id": "` + name + `",
			"identifier": [{"system": "https://emr.example.org/task", "value": "` + name + `"}],
			"basedOn": [{"reference": "ServiceRequest/` + srID + `"}], "status": "requested", "intent": "order",
			"reasonCode": {"text": "visit ` + name + `"},
			"for": {"identifier": {"system": "https://cht.example.org/medic", "value": "` + chttest.DemoPatientID + `"}}}`)
	}
	reasons := func(r *rig) []string {
		var out []string
		for _, rep := range r.reports(t, "INTEROP_FOLLOW_UP") {
			out = append(out, rep["fields"].(map[string]any)["reason"].(string))
		}
		return out
	}
	rig := func(t *testing.T) *rig {
		r := newRig(t)
		require.NoError(t, r.fhir.Load(sr))
		return rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
	}
	t.Run("one after the other", func(t *testing.T) {
		r := rig(t)
		for i, send := range []struct {
			path   string
			body   []byte
			status int
		}{
			{"/fhir/Task", taskFor("T-1"), http.StatusCreated},
			{"/fhir/Task", taskFor("T-2"), http.StatusCreated},
			{"/fhir/ServiceRequest", sr, http.StatusOK},
			{"/fhir/Task", taskFor("T-1"), http.StatusOK},
			{"/fhir/Task", taskFor("T-2"), http.StatusOK},
		} {
			a := r.post(t, send.path, send.body)
			require.Equal(t, send.status, a.status, "send %d: %s", i, a.body)
		}
		assert.ElementsMatch(t, []string{"visit T-1", "visit T-2"}, reasons(r))
	})
	t.Run("at once", func(t *testing.T) {
		for round := range 15 {
			r := rig(t)
			require.Equal(t, http.StatusCreated, r.post(t, "/fhir/ServiceRequest", sr).status)
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			for i, name := range []string{"T-1", "T-2"} {
				wg.Go(func() { statuses[i] = r.post(t, "/fhir/Task", taskFor(name)).status })
			}
			wg.Wait()
			assert.ElementsMatch(t, []int{http.StatusOK, http.StatusCreated}, statuses, "round %d", round)
			assert.ElementsMatch(t, []string{"visit T-1", "visit T-2"}, reasons(r), "round %d", round)
		}
	})
}

// TestServiceRequestTwiceInABatch: a batch may carry one ServiceRequest
// twice (two versions queued by the EMR); the entries are written in
// order, so the report ends with the last.
func TestServiceRequestTwiceInABatch(t *testing.T) {
	var bundle map[string]any
	require.NoError(t, json.Unmarshal(testdata(t, "bundle-referral-openmrs.json"), &bundle))
	srWith := func(reason string) map[string]any {
		sr := maps.Clone(entryResource(bundle, 0))
		sr["reasonCode"] = []any{map[string]any{"text": reason}}
		return sr
	}
	r := newRig(t)
	require.NoError(t, r.fhir.Load(testdata(t, "patient-kenyaemr.json")))
	r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
	first, err := json.Marshal(srWith("B"))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, r.post(t, "/fhir/ServiceRequest", first).status)
	entry := func(sr map[string]any) map[string]any {
		return map[string]any{"resource": sr, "request": map[string]any{"method": "PUT", "url": "ServiceRequest/" + sr["id"].(string)}}
	}
	batch, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "batch",
		"entry": []any{entry(srWith("A")), entry(srWith("B"))}})
	require.NoError(t, err)
	a := r.post(t, "/fhir", batch)
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	reps := r.reports(t, "INTEROP_FOLLOW_UP")
	require.Len(t, reps, 1)
	assert.Equal(t, "B", reps[0]["fields"].(map[string]any)["reason"], "%s", a.body)
}

// moveToTaskKey moves the one follow-up report to the key earlier versions
// of the bridge gave a Task's report: the Task's own identity.
func moveToTaskKey(t *testing.T, r *rig, taskID string) {
	t.Helper()
	reps := r.reports(t, "INTEROP_FOLLOW_UP")
	require.Len(t, reps, 1)
	doc := reps[0]
	require.NoError(t, r.cht.DeleteDoc(doc["_id"].(string)))
	doc["_id"] = r.bridge.ReportID("Task", "http://fhir.openmrs.org/ext/task/identifier|"+taskID)
	delete(doc, "_rev")
	_, err := r.cht.PutDoc(doc)
	require.NoError(t, err)
}

// TestReferralSentFirstWithoutIDs: an EMR may POST a resource with its
// identifiers only and PUT it later with the id its server gave it (R4
// http.html#create, #update), and FHIR ids are unique per resource type
// only (R4 resource.html#id): the report is keyed by the resource's
// identity (first identifier, else id), so an id given later keeps one
// report, and a Task's report is told from its request's by fhir_task.
func TestReferralSentFirstWithoutIDs(t *testing.T) {
	const person = chttest.DemoPatientID
	sr := func(id, reason string) []byte {
		idm := ""
		if id != "" {
			idm = `"id": "` + id + `",`
		}
		return []byte(`{"resourceType": "ServiceRequest", ` + idm + `
			"identifier": [{"system": "https://emr.example.org/sr", "value": "REF-1"}],
			"status": "active", "intent": "order", "reasonCode": [{"text": "` + reason + `"}],
			"subject": {"identifier": {"system": "https://cht.example.org/medic", "value": "` + person + `"}}}`)
	}
	task := func(id, srID, reason string) []byte {
		idm := ""
		if id != "" {
			idm = `"id": "` + id + `",`
		}
		return []byte(`{"resourceType": "Task", ` + idm + `
			"identifier": [{"system": "https://emr.example.org/task", "value": "TASK-1"}],
			"basedOn": [{"reference": "ServiceRequest/` + srID + `"}], "status": "requested", "intent": "order",
			"reasonCode": {"text": "` + reason + `"},
			"for": {"identifier": {"system": "https://cht.example.org/medic", "value": "` + person + `"}}}`)
	}
	type send struct {
		method, path string
		body         []byte
		status       int
	}
	tests := []struct {
		name   string
		onFHIR [][]byte
		sends  []send
		want   []map[string]any // reason, fhir_task of each report
	}{
		// Posted without its id, the ServiceRequest is refused
		// (requireRequestID): its CHW task's follow-up could not name it.
		{"the ServiceRequest posted, then put with its id, then its Task", [][]byte{sr("sr-1", "corrected")}, []send{
			{http.MethodPost, "/fhir/ServiceRequest", sr("", "first"), http.StatusUnprocessableEntity},
			{http.MethodPut, "/fhir/ServiceRequest/sr-1", sr("sr-1", "corrected"), http.StatusCreated},
			{http.MethodPut, "/fhir/Task/t-1", task("t-1", "sr-1", "visit"), http.StatusOK}},
			[]map[string]any{{"reason": "visit", "fhir_task": "t-1"}}},
		{"the Task posted, then put with its id", [][]byte{sr("sr-1", "order")}, []send{
			{http.MethodPut, "/fhir/ServiceRequest/sr-1", sr("sr-1", "order"), http.StatusCreated},
			{http.MethodPost, "/fhir/Task", task("", "sr-1", "visit"), http.StatusOK},
			{http.MethodPut, "/fhir/Task/t-1", task("t-1", "sr-1", "visit again"), http.StatusOK}},
			[]map[string]any{{"reason": "visit again", "fhir_task": "t-1"}}},
		{"a ServiceRequest re-sent under another id, and without one", nil, []send{
			{http.MethodPut, "/fhir/ServiceRequest/sr-1", sr("sr-1", "first"), http.StatusCreated},
			{http.MethodPut, "/fhir/ServiceRequest/hie-42", sr("hie-42", "second"), http.StatusOK},
			{http.MethodPost, "/fhir/ServiceRequest", sr("", "third"), http.StatusUnprocessableEntity}},
			[]map[string]any{{"reason": "second", "fhir_task": nil}}},
		{"a Task and its ServiceRequest with the same id", [][]byte{sr("ref-1", "order")}, []send{
			{http.MethodPut, "/fhir/Task/ref-1", task("ref-1", "ref-1", "visit"), http.StatusCreated},
			{http.MethodPut, "/fhir/ServiceRequest/ref-1", sr("ref-1", "order"), http.StatusOK}},
			[]map[string]any{{"reason": "visit", "fhir_task": "ref-1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			for _, res := range tt.onFHIR {
				require.NoError(t, r.fhir.Load(res))
			}
			r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
			for i, s := range tt.sends {
				a := r.send(t, s.method, s.path, "application/fhir+json", s.body)
				require.Equal(t, s.status, a.status, "send %d: %s", i, a.body)
			}
			var got []map[string]any
			for _, rep := range r.reports(t, "INTEROP_FOLLOW_UP") {
				f := rep["fields"].(map[string]any)
				got = append(got, map[string]any{"reason": f["reason"], "fhir_task": f["fhir_task"]})
			}
			assert.ElementsMatch(t, tt.want, got)
		})
	}
}

// TestReferralFailingHalfIsNotRefused: in a batch, when the
// ServiceRequest of a referral cannot be handled for a reason that is not
// its content (the FHIR server failing while its subject is read), the
// Task that carries it out fails with it, 502, not 422: the sender
// retries both (a 422 would tell it not to).
func TestReferralFailingHalfIsNotRefused(t *testing.T) {
	var bundle map[string]any
	require.NoError(t, json.Unmarshal(testdata(t, "bundle-referral-openmrs.json"), &bundle))
	bundle["type"] = "batch"
	entryResource(bundle, 0)["subject"] = map[string]any{"reference": "Patient/" + kenyaPatientID}
	body, err := json.Marshal(bundle)
	require.NoError(t, err)
	r := newRig(t)
	r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
	require.NoError(t, r.fhir.SetFaults(fhirtest.Faults{FailRate: 1, IncludeReads: true}))
	a := r.post(t, "/fhir", body)
	require.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
	assert.Equal(t, []string{"502 Bad Gateway", "502 Bad Gateway"}, entryStatuses(bundleResponse(t, a.body)))
	assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
}

// TestReferralEdgeCases: sends that a review found to double or to take
// over a CHW task, each with what it must end in.
func TestReferralEdgeCases(t *testing.T) {
	subject := func(id string) string {
		return `{"identifier": {"system": "https://cht.example.org/medic", "value": "` + id + `"}}`
	}
	sr := func(id, person string) []byte {
		return []byte(`{"resourceType": "ServiceRequest", "id": "` + id + `",
			"identifier": [{"system": "https://emr.example.org/sr", "value": "REF-` + id + `"}],
			"status": "active", "intent": "order", "reasonCode": [{"text": "order ` + id + `"}],
			"subject": ` + subject(person) + `}`)
	}
	task := func(id, person, focus string, basedOn ...string) map[string]any {
		m := map[string]any{"resourceType": "Task", "id": id, "status": "requested", "intent": "order",
			"identifier": []any{map[string]any{"system": "https://emr.example.org/task", "value": id}},
			"for":        member(t, subject(person))}
		if focus != "" {
			m["focus"] = map[string]any{"reference": focus}
		}
		var refs []any
		for _, r := range basedOn {
			refs = append(refs, map[string]any{"reference": r})
		}
		if refs != nil {
			m["basedOn"] = refs
		}
		return m
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return b
	}
	fields := func(r *rig) []map[string]any {
		var out []map[string]any
		for _, rep := range r.reports(t, "INTEROP_FOLLOW_UP") {
			f := rep["fields"].(map[string]any)
			out = append(out, map[string]any{"patient_uuid": f["patient_uuid"], "fhir_task": f["fhir_task"],
				"fhir_service_request": f["fhir_service_request"], "reason": f["reason"]})
		}
		return out
	}
	fhirRig := func(t *testing.T) *rig {
		r := newRig(t)
		return rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
	}
	mother, child := chttest.DemoMotherID, chttest.DemoChildID

	t.Run("the Task re-sent once the FHIR server has its request", func(t *testing.T) {
		r := fhirRig(t)
		tk := js(task("t-1", mother, "", "ServiceRequest/sr-1"))
		require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Task", tk).status)
		require.NoError(t, r.fhir.Load(sr("sr-1", mother)))
		a := r.post(t, "/fhir/Task", tk)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		assert.Equal(t, []map[string]any{{"patient_uuid": mother, "fhir_task": "t-1", "fhir_service_request": "sr-1",
			"reason": "order sr-1"}}, fields(r))
	})
	t.Run("a Task about another person than its request's report", func(t *testing.T) {
		r := newRig(t) // no FHIR server: the Task knows the request by its id only
		srNoIdent := []byte(`{"resourceType": "ServiceRequest", "id": "sr-2", "status": "active", "intent": "order",
			"reasonCode": [{"text": "order sr-2"}], "subject": ` + subject(mother) + `}`)
		require.Equal(t, http.StatusCreated, r.post(t, "/fhir/ServiceRequest", srNoIdent).status)
		a := r.post(t, "/fhir/Task", js(task("t-2", child, "", "ServiceRequest/sr-2")))
		require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
		assert.ElementsMatch(t, []map[string]any{
			{"patient_uuid": mother, "fhir_task": nil, "fhir_service_request": "sr-2", "reason": "order sr-2"},
			{"patient_uuid": child, "fhir_task": "t-2", "fhir_service_request": "sr-2", "reason": nil},
		}, fields(r), "the mother's CHW task stays hers")
	})
	t.Run("the key follows fhir_service_request past a request without id", func(t *testing.T) {
		r := fhirRig(t)
		require.NoError(t, r.fhir.Load(sr("ext-1", mother)))
		srURN := map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order",
			"identifier": []any{map[string]any{"system": "https://emr.example.org/sr", "value": "REF-URN"}},
			"reasonCode": []any{map[string]any{"text": "order urn"}}, "subject": member(t, subject(mother))}
		tk := task("t-3", mother, "urn:uuid:0d1c2b3a-4f5e-4d6c-8b7a-9f8e7d6c5b4a", "ServiceRequest/ext-1")
		bundle := js(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"fullUrl": "urn:uuid:0d1c2b3a-4f5e-4d6c-8b7a-9f8e7d6c5b4a", "resource": srURN,
				"request": map[string]any{"method": "POST", "url": "ServiceRequest"}},
			map[string]any{"resource": tk, "request": map[string]any{"method": "PUT", "url": "Task/t-3"}}}})
		a := r.post(t, "/fhir", bundle)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		a = r.post(t, "/fhir/Task", js(tk))
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		got := fields(r)
		require.Len(t, got, 1, "one CHW task for the Task")
		assert.Equal(t, "ext-1", got[0]["fhir_service_request"])
	})
	t.Run("a Task moved to in-progress", func(t *testing.T) {
		// R4 task.html#statemachine: the EMR starts the Task while the
		// CHW is on the way; the CHW task stands.
		r := newRig(t)
		tk := task("t-5", mother, "", "ServiceRequest/sr-5")
		require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Task", js(tk)).status)
		tk["status"] = "in-progress"
		a := r.send(t, http.MethodPut, "/fhir/Task/t-5", "application/fhir+json", js(tk))
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		assert.Len(t, fields(r), 1)
	})
	t.Run("a batch where one of two Tasks of the request is refused", func(t *testing.T) {
		r := newRig(t)
		srNoIdent := map[string]any{"resourceType": "ServiceRequest", "id": "sr-4", "status": "active", "intent": "order",
			"reasonCode": []any{map[string]any{"text": "order sr-4"}}, "subject": member(t, subject(mother))}
		bundle := js(map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
			map[string]any{"resource": srNoIdent, "request": map[string]any{"method": "PUT", "url": "ServiceRequest/sr-4"}},
			map[string]any{"resource": task("t-4a", mother, "", "ServiceRequest/sr-4"), "request": map[string]any{"method": "PUT", "url": "Task/t-4a"}},
			map[string]any{"resource": task("t-4b", child, "", "ServiceRequest/sr-4"), "request": map[string]any{"method": "PUT", "url": "Task/t-4b"}}}})
		a := r.post(t, "/fhir", bundle)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		assert.Equal(t, []string{"200 OK", "201 Created", "422 Unprocessable Entity"}, entryStatuses(bundleResponse(t, a.body)), "%s", a.body)
		assert.Equal(t, []map[string]any{{"patient_uuid": mother, "fhir_task": "t-4a", "fhir_service_request": "sr-4",
			"reason": "order sr-4"}}, fields(r))
	})
}
