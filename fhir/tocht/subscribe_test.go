package tocht_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// notifyRig is a rig whose bridge reads Patients from the fake FHIR
// server and subscribes the EMR to every Task (NotifyEMR, set to the
// default endpoint before configure runs), with the Patient of
// patient-updated.json on the server and written to CHT.
func notifyRig(t *testing.T, configure func(*tocht.Config)) *rig {
	t.Helper()
	r := newRig(t)
	require.NoError(t, r.fhir.Load(testdata(t, "patient-updated.json")))
	r = rebuild(t, r, func(c *tocht.Config) {
		c.FHIRURL = r.fhir.URL
		c.HTTPClient = r.fhir.Client()
		c.NotifyEMR = &fhir.TaskSubscription{Endpoint: "https://emr.example.org/referral-events"}
		if configure != nil {
			configure(c)
		}
	})
	a := r.post(t, "/fhir/Patient", testdata(t, "patient-updated.json"))
	require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
	return r
}

// A Task gets the EMR's rest-hook Subscription with its CHT task; when the CHT write fails the
// Subscription is removed again (as medic/cht-interoperability's createServiceRequest deletes it
// when creating the CHT record fails), and the retried request subscribes once.
func TestTaskSubscriptionRemovedWhenCHTWriteFails(t *testing.T) {
	r := notifyRig(t, func(c *tocht.Config) {
		c.NotifyEMR = &fhir.TaskSubscription{Endpoint: "https://emr.example.org/referral-events", Header: []string{"Authorization: Bearer emr"}}
	})
	remove := r.cht.InjectFault(chttest.Fault{Method: http.MethodPut, Path: "/medic/*", Status: http.StatusServiceUnavailable})
	a := r.post(t, "/fhir/Task", testdata(t, "task.json"))
	remove()
	require.Equal(t, http.StatusBadGateway, a.status, "%s", a.body)
	assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
	assert.Equal(t, 0, r.fhir.Count("Subscription"), "no dangling Subscription after the failed CHT write")
	var created, deleted int
	for _, q := range r.fhir.Requests() {
		switch {
		case q.Method == http.MethodPut && q.Status == http.StatusOK && strings.Contains(q.Path, "/Subscription/"):
			created++
		case q.Method == http.MethodDelete && strings.Contains(q.Path, "/Subscription/"):
			deleted++
		}
	}
	assert.Equal(t, 1, created, "the Subscription was made before the CHT write")
	assert.Equal(t, 1, deleted)

	for range 2 { // the EMR retries; a re-send must not add a Subscription
		a = r.post(t, "/fhir/Task", testdata(t, "task.json"))
		require.Less(t, a.status, 300, "%s", a.body)
	}
	require.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 1)
	subs := r.fhir.Resources("Subscription")
	require.Len(t, subs, 1)
	assert.Contains(t, string(subs[0]), `"criteria":"Task?_id=referral-0001&status=completed,failed,rejected"`)
	assert.Contains(t, string(subs[0]), `"endpoint":"https://emr.example.org/referral-events"`)
}

func TestNotifyEMRNeedsFHIRURL(t *testing.T) {
	r := newRig(t)
	c, err := cht.New(cht.Config{URL: r.cht.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	_, err = tocht.New(tocht.Config{Converter: r.conv, CHT: c, NotifyEMR: &fhir.TaskSubscription{Endpoint: "https://emr"}})
	require.ErrorContains(t, err, "FHIRURL")
}

// lockedBuffer collects log lines written from the handler's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A NotifyEMR setting the FHIR server never sees (an endpoint that is not
// an absolute http(s) URL) is the mediator's configuration error: answered
// 500 without Retry-After, so that neither OpenHIM nor the EMR retries a
// request that fails the same way until the settings are fixed, and logged
// as an error naming the setting. Nothing is written to CHT.
func TestBadNotifyEMRSettingIsAConfigurationError(t *testing.T) {
	var logs lockedBuffer
	r := notifyRig(t, func(c *tocht.Config) {
		c.NotifyEMR = &fhir.TaskSubscription{Endpoint: "emr.example.org/referral-events"}
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	task := testdata(t, "task.json")
	tests := []struct {
		name, path string
		body       []byte
		entry      string // status of the batch entry, if a batch
	}{
		{"POST Task", "/fhir/Task", task, ""},
		{"batch with the Task", "/fhir", []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"resource":` + string(task) + `}]}`), `"status":"500 Internal Server Error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.post(t, tt.path, tt.body)
			require.Equal(t, http.StatusInternalServerError, a.status, "%s", a.body)
			assert.Empty(t, a.header.Get("Retry-After"), "a configuration error is not retried")
			assert.Contains(t, string(a.body), "notify_emr")
			assert.NotContains(t, string(a.body), `"transient"`)
			assert.Contains(t, string(a.body), tt.entry)
			assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
		})
	}
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "mediator configuration (tocht.Config.NotifyEMR, notify_emr)")
	assert.Zero(t, r.fhir.Count("Subscription"))
}

// With NotifyEMR every Task written to CHT gets its Subscription, whose
// criteria name the Task's id (Task?_id=<id>): a Task without an id can
// get none, and the follow-up report could not name the Task to close
// (no fhir_task field). It is refused naming Task.id, before anything is
// written, rather than answered 201 with no Subscription.
func TestNotifyEMRRefusesATaskWithoutID(t *testing.T) {
	r := notifyRig(t, nil)
	task := strings.Replace(string(testdata(t, "task.json")), `"id": "referral-0001",`,
		`"identifier": [{"system": "https://emr.example.org/task", "value": "T-1"}],`, 1)
	require.NotContains(t, task, "referral-0001")
	tests := []struct {
		name, path, body, expr string
	}{
		{"POST Task", "/fhir/Task", task, "Task.id"},
		{"transaction with the Task", "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + task + `}]}`,
			"Bundle.entry[0].resource.id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := r.post(t, tt.path, []byte(tt.body))
			require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
			assert.Contains(t, string(a.body), tt.expr)
			assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
			assert.Zero(t, r.fhir.Count("Subscription"))
		})
	}
}
