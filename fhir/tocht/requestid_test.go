package tocht_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRequestWithoutIDIsRefused: a ServiceRequest or Task that would raise
// a CHW task whose report names neither the Task (fhir_task) nor a
// ServiceRequest (fhir_service_request) is refused, 422 naming its id, and
// nothing is written. The follow-up of such a task could not close the
// referral: fhir.Converter.CloseReferral reads the Task and the
// ServiceRequest by these ids only, and a follow-up naming neither is
// written without closing anything. A resource of a Bundle named only by a
// urn:uuid fullUrl has no id the FHIR server knows either (R4
// bundle.html#references: a POST entry's resource gets its id from the
// server). A ServiceRequest whose CHW task is its Task's (in the same
// Bundle) needs no id of its own when the Task has one, and a Task without
// an id that names its ServiceRequest by id is closed through the request.
func TestRequestWithoutIDIsRefused(t *testing.T) {
	srNoID := patched(t, testdata(t, "service-request.json"), func(m map[string]any) { delete(m, "id") })
	var sr map[string]any
	require.NoError(t, json.Unmarshal(srNoID, &sr))
	subject := sr["subject"]
	task := func(id string, basedOn string) map[string]any {
		t := map[string]any{"resourceType": "Task", "status": "requested", "intent": "order", "for": subject,
			"identifier": []any{map[string]any{"system": "https://emr.example.org/task", "value": "T-" + id + basedOn}}}
		if id != "" {
			t["id"] = id
		}
		if basedOn != "" {
			t["basedOn"] = []any{map[string]any{"reference": basedOn}}
		}
		return t
	}
	const srURN = "urn:uuid:0c1d2e3f-4a5b-4c6d-8e7f-000000000001"
	bundle := func(typ string, entries ...map[string]any) []byte {
		es := make([]any, len(entries))
		for i, e := range entries {
			es[i] = e
		}
		b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": es})
		require.NoError(t, err)
		return b
	}
	srEntry := map[string]any{"fullUrl": srURN, "resource": sr, "request": map[string]any{"method": "POST", "url": "ServiceRequest"}}
	entry := func(res map[string]any) map[string]any {
		return map[string]any{"resource": res, "request": map[string]any{"method": "POST", "url": res["resourceType"]}}
	}
	body := func(v any) []byte {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return b
	}

	tests := []struct {
		name, path string
		body       []byte
		status     int
		expr       string   // of the refusal; "" when accepted
		entries    []string // a batch's entry statuses
		fields     map[string]any
	}{
		{"a ServiceRequest alone", "/fhir/ServiceRequest", srNoID, http.StatusUnprocessableEntity, "ServiceRequest.id", nil, nil},
		{"a ServiceRequest in a transaction, by urn:uuid", "/fhir", bundle("transaction", srEntry),
			http.StatusUnprocessableEntity, "Bundle.entry[0].resource.id", nil, nil},
		{"a ServiceRequest in a collection, by urn:uuid", "/fhir", bundle("collection", srEntry),
			http.StatusUnprocessableEntity, "Bundle.entry[0].resource.id", nil, nil},
		{"a ServiceRequest in a batch, by urn:uuid, beside a Task with an id", "/fhir", bundle("batch", srEntry, entry(task("t-2", ""))),
			http.StatusOK, "Bundle.entry[0].resource.id", []string{"422 Unprocessable Entity", "201 Created"},
			map[string]any{"fhir_task": "t-2"}},
		{"a Task alone, naming no ServiceRequest", "/fhir/Task", body(task("", "")), http.StatusUnprocessableEntity, "Task.id", nil, nil},
		{"a Task carrying out a ServiceRequest by urn:uuid, neither with an id", "/fhir",
			bundle("transaction", srEntry, entry(task("", srURN))), http.StatusUnprocessableEntity, "Bundle.entry[1].resource.id", nil, nil},

		{"a ServiceRequest with its id", "/fhir/ServiceRequest", testdata(t, "service-request.json"), http.StatusCreated, "", nil,
			map[string]any{"fhir_service_request": "ltfu-0001"}},
		{"a ServiceRequest by urn:uuid carried out by a Task with an id", "/fhir", bundle("transaction", srEntry, entry(task("t-1", srURN))),
			http.StatusOK, "", nil, map[string]any{"fhir_task": "t-1"}},
		{"a Task without an id naming its ServiceRequest by id", "/fhir/Task", body(task("", "ServiceRequest/sr-9")), http.StatusCreated, "", nil,
			map[string]any{"fhir_service_request": "sr-9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			a := r.post(t, tt.path, tt.body)
			require.Equal(t, tt.status, a.status, "%s", a.body)
			reports := r.reports(t, "INTEROP_FOLLOW_UP")
			if tt.fields == nil {
				assert.Empty(t, reports, "nothing is written")
			} else {
				require.Len(t, reports, 1)
				fields := reports[0]["fields"].(map[string]any)
				for k, v := range tt.fields {
					assert.Equal(t, v, fields[k], k)
				}
			}
			if tt.expr == "" {
				return
			}
			type issue struct {
				Code       string
				Expression []string
			}
			var issues []issue
			if tt.entries != nil {
				resp := parseBatch(t, a.body)
				require.Len(t, resp.Entry, len(tt.entries))
				for i, want := range tt.entries {
					assert.Equal(t, want, resp.Entry[i].Response.Status, "entry %d", i)
				}
				for _, is := range resp.Entry[0].Response.Outcome.Issue {
					issues = append(issues, issue{is.Code, is.Expression})
				}
			} else {
				var oo outcome
				require.NoError(t, json.Unmarshal(a.body, &oo), "%s", a.body)
				require.Equal(t, "OperationOutcome", oo.ResourceType)
				for _, is := range oo.Issue {
					issues = append(issues, issue{is.Code, is.Expression})
				}
			}
			found := false
			for _, is := range issues {
				if len(is.Expression) == 1 && is.Expression[0] == tt.expr && is.Code == "required" {
					found = true
				}
			}
			assert.True(t, found, "no issue of code required naming %s: %s", tt.expr, a.body)
		})
	}
}
