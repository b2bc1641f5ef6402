package tocht_test

// Resources shaped as EMRs send them (OpenMRS FHIR2, the R4 spec's own
// examples and rules) that the bridge used to write wrongly: retracted
// values, effective times other than effectiveDateTime, modifiers,
// version-specific references, and a Task sent with the ServiceRequest it
// carries out.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// patched is the JSON body with f applied to it decoded.
func patched(t *testing.T, body []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	f(m)
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

// member decodes a JSON value for patched.
func member(t *testing.T, s string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(s), &v))
	return v
}

// bundleResponse decodes a transaction-response or batch-response Bundle.
func bundleResponse(t *testing.T, body []byte) batchResponse {
	t.Helper()
	var resp batchResponse
	require.NoError(t, json.Unmarshal(body, &resp), "%s", body)
	require.Contains(t, []string{"transaction-response", "batch-response"}, resp.Type, "%s", body)
	return resp
}

// entryResource is the resource of entry i of a decoded Bundle.
func entryResource(m map[string]any, i int) map[string]any {
	return m["entry"].([]any)[i].(map[string]any)["resource"].(map[string]any)
}

// newWeightReports are the HEIGHT_WEIGHT reports the test wrote (not the
// demo's).
func newWeightReports(t *testing.T, r *rig) []map[string]any {
	t.Helper()
	return slices.DeleteFunc(r.reports(t, "HEIGHT_WEIGHT"), func(m map[string]any) bool {
		return m["_id"] == chttest.DemoHeightWeightReportID
	})
}

// weightAt is the clinical time of testdata/observation-openmrs-weight.json,
// 2024-05-02T10:05:00+03:00, as CHT's reported_date.
var weightAt = float64(time.Date(2024, 5, 2, 7, 5, 0, 0, time.UTC).UnixMilli())

// TestRetractedObservationsAreNotWritten: an Observation whose status is
// entered-in-error or cancelled, or the Observations of an Encounter with
// such a status, are no valid data (FHIR R4 observation.html#status: status
// is a modifier, "entered-in-error ... should not be treated as valid";
// valueset-observation-status and valueset-encounter-status): they are
// refused (422 naming the status), not written as live CHT data, and a
// transaction holding one is refused whole before anything is written.
func TestRetractedObservationsAreNotWritten(t *testing.T) {
	weight := testdata(t, "observation-openmrs-weight.json")
	withStatus := func(body []byte, status string) []byte {
		return patched(t, body, func(m map[string]any) { m["status"] = status })
	}
	encounterWith := func(status string) []byte {
		return patched(t, testdata(t, "encounter-entered-in-error.json"), func(m map[string]any) {
			entryResource(m, 0)["status"] = status
		})
	}
	// A transaction creating a person and a referral, with a retracted
	// Observation about that person.
	withRetracted := func(typ string) []byte {
		return patched(t, testdata(t, "bundle-new-patient.json"), func(m map[string]any) {
			m["type"] = typ
			o := member(t, string(withStatus(weight, "entered-in-error"))).(map[string]any)
			o["subject"] = map[string]any{"reference": "urn:uuid:9b0c7f3e-5d1a-4c2b-8e6f-1a2b3c4d5e6f"}
			m["entry"] = append(m["entry"].([]any), map[string]any{"resource": o,
				"request": map[string]any{"method": "PUT", "url": "Observation/" + o["id"].(string)}})
		})
	}
	tests := []struct {
		name, path string
		body       []byte
		status     int
		expr       string
		batch      []string // entry statuses of a batch
	}{
		{"Observation entered-in-error", "/fhir/Observation", withStatus(weight, "entered-in-error"),
			http.StatusUnprocessableEntity, "Observation.status", nil},
		{"Observation cancelled", "/fhir/Observation", withStatus(weight, "cancelled"),
			http.StatusUnprocessableEntity, "Observation.status", nil},
		{"Encounter entered-in-error", "/fhir", encounterWith("entered-in-error"),
			http.StatusUnprocessableEntity, "Bundle.entry[0].resource.status", nil},
		{"Encounter cancelled", "/fhir", encounterWith("cancelled"),
			http.StatusUnprocessableEntity, "Bundle.entry[0].resource.status", nil},
		{"transaction with one retracted Observation", "/fhir", withRetracted("transaction"),
			http.StatusUnprocessableEntity, "Bundle.entry[2].resource.status", nil},
		{"batch with one retracted Observation", "/fhir", withRetracted("batch"),
			http.StatusOK, "Bundle.entry[2].resource.status", []string{"201 Created", "201 Created", "422 Unprocessable Entity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			before := len(r.cht.Docs())
			a := r.post(t, tt.path, tt.body)
			require.Equal(t, tt.status, a.status, "%s", a.body)
			assert.Empty(t, newWeightReports(t, r), "a retracted value became CHT data")
			if tt.batch == nil {
				text := parseOutcome(t, a.body).text()
				assert.Contains(t, text, tt.expr)
				assert.Contains(t, text, "a retracted value is not written to CHT")
				assert.Len(t, r.cht.Docs(), before, "refused whole: nothing written")
				return
			}
			resp := bundleResponse(t, a.body)
			require.Len(t, resp.Entry, len(tt.batch))
			for i, want := range tt.batch {
				assert.Equal(t, want, resp.Entry[i].Response.Status, "entry %d: %s", i, a.body)
			}
			assert.Contains(t, resp.Entry[2].Response.Outcome.text(), tt.expr)
		})
	}
}

// TestObservationEffectivePeriodAndInstantAreItsTime: Observation.effective[x]
// is a dateTime, Period, Timing or instant (FHIR R4 observation.html,
// Observation.effective[x]; the spec's example observation-example-f001-glucose
// sends effectivePeriod.start). A period's start (else its end) and an
// instant are the report's reported_date as effectiveDateTime is, and are
// the effective time that keys an Observation sent without identity.
func TestObservationEffectivePeriodAndInstantAreItsTime(t *testing.T) {
	weight := testdata(t, "observation-openmrs-weight.json")
	effective := func(member string, value any, drop ...string) []byte {
		return patched(t, weight, func(m map[string]any) {
			delete(m, "effectiveDateTime")
			m[member] = value
			for _, k := range drop {
				delete(m, k)
			}
		})
	}
	tests := []struct {
		name   string
		body   []byte
		status int
		expr   string // of the refusal
	}{
		{"effectiveDateTime", weight, http.StatusCreated, ""},
		{"effectivePeriod", effective("effectivePeriod", map[string]any{
			"start": "2024-05-02T10:05:00+03:00", "end": "2024-05-02T10:10:00+03:00"}), http.StatusCreated, ""},
		{"effectivePeriod with an end only", effective("effectivePeriod", map[string]any{
			"end": "2024-05-02T10:05:00+03:00"}), http.StatusCreated, ""},
		{"effectiveInstant", effective("effectiveInstant", "2024-05-02T10:05:00.000+03:00"), http.StatusCreated, ""},
		{"effectivePeriod without id or identifier", effective("effectivePeriod", map[string]any{
			"start": "2024-05-02T10:05:00+03:00"}, "id"), http.StatusCreated, ""},
		{"effectiveInstant that is a date", effective("effectiveInstant", "2024-05-02"),
			http.StatusUnprocessableEntity, "Observation.effectiveInstant"},
		{"effectivePeriod with an end that is no date", effective("effectivePeriod", map[string]any{
			"start": "2024-05-02T10:05:00+03:00", "end": "soon"}), http.StatusUnprocessableEntity, "Observation.effectivePeriod.end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			a := r.post(t, "/fhir/Observation", tt.body)
			require.Equal(t, tt.status, a.status, "%s", a.body)
			reports := newWeightReports(t, r)
			if tt.expr != "" {
				assert.Contains(t, parseOutcome(t, a.body).text(), tt.expr)
				assert.Empty(t, reports)
				return
			}
			require.Len(t, reports, 1)
			assert.Equal(t, weightAt, reports[0]["reported_date"], "the clinical time, not the time of writing")
			assert.Equal(t, 61.5, reports[0]["fields"].(map[string]any)["weight"])
		})
	}

	// Observations without an Encounter are grouped by subject and
	// effective time: two visits are two reports.
	t.Run("two visits in one Bundle", func(t *testing.T) {
		r := newRig(t)
		at := func(id, start string) any {
			return member(t, string(patched(t, weight, func(m map[string]any) {
				delete(m, "effectiveDateTime")
				delete(m, "encounter")
				m["id"], m["effectivePeriod"] = id, map[string]any{"start": start}
			})))
		}
		body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "collection", "entry": []any{
			map[string]any{"resource": at("w-1", "2024-05-02T10:05:00+03:00")},
			map[string]any{"resource": at("w-2", "2024-06-02T10:05:00+03:00")}}})
		require.NoError(t, err)
		a := r.post(t, "/fhir", body)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		var dates []float64
		for _, rep := range newWeightReports(t, r) {
			dates = append(dates, rep["reported_date"].(float64))
		}
		slices.Sort(dates)
		assert.Equal(t, []float64{weightAt, float64(time.Date(2024, 6, 2, 7, 5, 0, 0, time.UTC).UnixMilli())}, dates)
	})
}

// TestModifiersAreRefused: a modifier extension changes the meaning of the
// element that holds it, and whoever processes a resource must check for
// them (FHIR R4 extensibility.html#modifierExtension,
// backboneelement-definitions.html): the bridge knows none, so a resource
// (or Bundle entry) with one is refused (422 naming it), never acted on.
// ServiceRequest.doNotPerform true (R4 servicerequest.html: a modifier,
// "the ServiceRequest is asking for the specified action to not occur")
// raises no CHW task either.
func TestModifiersAreRefused(t *testing.T) {
	const ext = `[{"url": "http://example.org/fhir/StructureDefinition/not-until-consent", "valueBoolean": true}]`
	cht := `{"identifier": {"system": "https://cht.example.org/medic", "value": "` + chttest.DemoPatientID + `"}}`
	task := patched(t, testdata(t, "task.json"), func(m map[string]any) { m["for"] = member(t, cht) })
	tests := []struct {
		name, path string
		body       []byte
		expr       string
	}{
		{"ServiceRequest.modifierExtension", "/fhir/ServiceRequest", testdata(t, "service-request-modifier-extension.json"),
			"ServiceRequest.modifierExtension"},
		{"ServiceRequest.doNotPerform", "/fhir/ServiceRequest", testdata(t, "service-request-do-not-perform.json"),
			"ServiceRequest.doNotPerform"},
		{"Task.modifierExtension", "/fhir/Task", patched(t, task, func(m map[string]any) { m["modifierExtension"] = member(t, ext) }),
			"Task.modifierExtension"},
		{"Task.restriction.modifierExtension", "/fhir/Task", patched(t, task, func(m map[string]any) {
			m["restriction"].(map[string]any)["modifierExtension"] = member(t, ext)
		}), "Task.restriction.modifierExtension"},
		{"Observation.modifierExtension", "/fhir/Observation", patched(t, testdata(t, "observation-openmrs-weight.json"),
			func(m map[string]any) { m["modifierExtension"] = member(t, ext) }), "Observation.modifierExtension"},
		{"Patient.modifierExtension", "/fhir/Patient", patched(t, testdata(t, "patient.json"),
			func(m map[string]any) { m["modifierExtension"] = member(t, ext) }), "Patient.modifierExtension"},
		{"Patient.contact.modifierExtension", "/fhir/Patient", patched(t, testdata(t, "patient.json"), func(m map[string]any) {
			m["contact"] = member(t, `[{"name": {"text": "Rose Achieng"}, "modifierExtension": `+ext+`}]`)
		}), "Patient.contact[0].modifierExtension"},
		{"an Encounter of a Bundle", "/fhir", patched(t, testdata(t, "observations.json"), func(m map[string]any) {
			entryResource(m, 0)["modifierExtension"] = member(t, ext)
		}), "Bundle.entry[0].resource.modifierExtension"},
		{"a Bundle entry's request", "/fhir", patched(t, testdata(t, "bundle-new-patient.json"), func(m map[string]any) {
			m["entry"].([]any)[1].(map[string]any)["request"].(map[string]any)["modifierExtension"] = member(t, ext)
		}), "Bundle.entry[1].request.modifierExtension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			before := len(r.cht.Docs())
			a := r.post(t, tt.path, tt.body)
			require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
			assert.Contains(t, parseOutcome(t, a.body).text(), tt.expr)
			assert.Len(t, r.cht.Docs(), before, "nothing written")
		})
	}

	// The Patient a Task refers to, read from the FHIR server, carries
	// one: its identifiers do not name a CHT person.
	t.Run("a referenced Patient of the FHIR server", func(t *testing.T) {
		r := newRig(t)
		require.NoError(t, r.fhir.Load(patched(t, testdata(t, "patient-updated.json"),
			func(m map[string]any) { m["modifierExtension"] = member(t, ext) })))
		r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
		a := r.post(t, "/fhir/Task", testdata(t, "task.json"))
		require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
		text := parseOutcome(t, a.body).text()
		assert.Contains(t, text, "Task.for")
		assert.Contains(t, text, "Patient.modifierExtension")
		assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
	})
}

// TestVersionSpecificReferences: a version-specific reference to a resource
// of the same Bundle resolves to it without its version, and must then
// name the version the Bundle holds (FHIR R4 bundle.html#references:
// "remove the version from the URL before matching fullUrl, and then
// match the version based on Resource.meta.versionId"). One read from the
// FHIR server reads the Patient's id.
func TestVersionSpecificReferences(t *testing.T) {
	versioned := testdata(t, "bundle-versioned-reference.json")
	withRef := func(ref string) []byte {
		return []byte(strings.Replace(string(versioned), `"Patient/p-99/_history/2"`, `"`+ref+`"`, 1))
	}
	// observations.json with an Encounter of id enc-7, version 3, that
	// its Observations name with a version.
	encounterRef := func(ref string) []byte {
		return patched(t, testdata(t, "observations.json"), func(m map[string]any) {
			enc := entryResource(m, 0)
			enc["id"], enc["meta"] = "enc-7", map[string]any{"versionId": "3"}
			for i := 1; i <= 2; i++ {
				entryResource(m, i)["encounter"] = map[string]any{"reference": ref}
			}
		})
	}
	tests := []struct {
		name   string
		body   []byte
		status int
		expr   string // of the refusal
		form   string // of the report written
	}{
		{"relative", versioned, http.StatusOK, "", "INTEROP_FOLLOW_UP"},
		{"absolute", withRef("https://emr.example.org/fhir/Patient/p-99/_history/2"), http.StatusOK, "", "INTEROP_FOLLOW_UP"},
		{"another version", withRef("Patient/p-99/_history/1"), http.StatusUnprocessableEntity,
			"Bundle.entry[1].resource.subject", ""},
		{"Observation.encounter", encounterRef("Encounter/enc-7/_history/3"), http.StatusOK, "", "HEIGHT_WEIGHT"},
		{"Observation.encounter, another version", encounterRef("Encounter/enc-7/_history/2"), http.StatusUnprocessableEntity,
			"Bundle.entry[1].resource.encounter", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			before := len(r.cht.Docs())
			a := r.post(t, "/fhir", tt.body)
			require.Equal(t, tt.status, a.status, "%s", a.body)
			if tt.expr != "" {
				text := parseOutcome(t, a.body).text()
				assert.Contains(t, text, tt.expr)
				assert.Contains(t, text, "meta.versionId")
				assert.Len(t, r.cht.Docs(), before, "nothing written")
				return
			}
			if tt.form == "HEIGHT_WEIGHT" {
				assert.Equal(t, 168.0, r.doc(t, observationsReport(r))["fields"].(map[string]any)["height"], "grouped with the Encounter")
				return
			}
			reports := r.reports(t, tt.form)
			require.Len(t, reports, 1)
			person := r.bridge.PersonID("https://emr.example.org/patient-id|EMR-0099")
			assert.Equal(t, person, reports[0]["fields"].(map[string]any)["patient_uuid"], "the Patient of the Bundle")
			assert.Equal(t, "Ann Wanjiru", r.doc(t, person)["name"])
		})
	}

	t.Run("read from the FHIR server", func(t *testing.T) {
		r := newRig(t)
		require.NoError(t, r.fhir.Load(testdata(t, "patient-updated.json")))
		r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
		require.Equal(t, http.StatusCreated, r.post(t, "/fhir/Patient", testdata(t, "patient-updated.json")).status)
		task := patched(t, testdata(t, "task.json"), func(m map[string]any) {
			m["for"] = map[string]any{"reference": r.fhir.URL + "/Patient/emr-patient-1/_history/3"}
		})
		a := r.post(t, "/fhir/Task", task)
		require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
		reports := r.reports(t, "INTEROP_FOLLOW_UP")
		require.Len(t, reports, 1)
		assert.Equal(t, r.bridge.PersonID("https://emr.example.org/patient-id|EMR-0001"), reports[0]["fields"].(map[string]any)["patient_uuid"])
		var paths []string
		for _, q := range r.fhir.Requests() {
			paths = append(paths, strings.TrimPrefix(q.Path, r.fhir.BasePath()))
		}
		assert.Equal(t, []string{"/Patient/emr-patient-1"}, paths, "the current version, read by id")
	})
}

// TestTaskAndItsServiceRequestRaiseOneFollowUp: an EMR sends the order and
// the Task that asks for it to be done, the Task basedOn the ServiceRequest
// (FHIR R4 task.html, Task.basedOn: "the request ... that this task is
// carrying out"; OpenMRS FHIR2's Task of an order, FhirTaskServiceImpl,
// names it so). In one Bundle, by a literal or urn:uuid reference
// (R4 bundle.html#references), that is one referral: one CHW follow-up,
// the Task's, naming the Task and the ServiceRequest (fhir_task,
// fhir_service_request: docs/referral-loop.md) and carrying the request's
// reason and due date. A refusal of either refuses the other.
func TestTaskAndItsServiceRequestRaiseOneFollowUp(t *testing.T) {
	const (
		srID   = "7d96f25c-4949-4f72-9931-d808fbc226de"
		taskID = "55616228-dc6d-446f-ab50-4ec711ea9243"
	)
	openmrs := testdata(t, "bundle-referral-openmrs.json")
	taskPatched := func(body []byte, f func(task map[string]any)) []byte {
		return patched(t, body, func(m map[string]any) { f(entryResource(m, 1)) })
	}
	tests := []struct {
		name     string
		body     []byte
		status   int
		statuses []string       // of the entries
		fields   map[string]any // of the one follow-up report; nil: none written
		expr     string         // of the refusal
	}{
		{"OpenMRS, literal basedOn", openmrs, http.StatusOK, []string{"200 OK", "201 Created"}, map[string]any{
			"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
			"service_request_id": taskID, "reason": "Missed ART refill appointment", "due_date": "2024-05-09"}, ""},
		{"by fullUrl, versioned", taskPatched(openmrs, func(task map[string]any) {
			task["basedOn"] = member(t, `[{"reference": "http://openmrs:8080/openmrs/ws/fhir2/R4/ServiceRequest/`+srID+`/_history/1714650000000"}]`)
		}), http.StatusOK, []string{"200 OK", "201 Created"}, map[string]any{
			"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
			"service_request_id": taskID, "reason": "Missed ART refill appointment", "due_date": "2024-05-09"}, ""},
		{"the Task's own reason and due date", taskPatched(openmrs, func(task map[string]any) {
			task["reasonCode"] = map[string]any{"text": "Home visit"}
			task["restriction"] = map[string]any{"period": map[string]any{"end": "2024-05-05"}}
		}), http.StatusOK, []string{"200 OK", "201 Created"}, map[string]any{
			"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
			"service_request_id": taskID, "reason": "Home visit", "due_date": "2024-05-05"}, ""},
		{"urn:uuid references, no ids", testdata(t, "bundle-referral-urn-uuid.json"), http.StatusOK,
			[]string{"201 Created", "200 OK", "201 Created"}, map[string]any{
				"service_request_id": "T-0088", "reason": "Missed ART refill"}, ""},
		{"the ServiceRequest is revoked", patched(t, openmrs, func(m map[string]any) { entryResource(m, 0)["status"] = "revoked" }),
			http.StatusUnprocessableEntity, nil, nil, "Bundle.entry[1].resource.basedOn[0]"},
		{"the Task is about another person", taskPatched(openmrs, func(task map[string]any) {
			task["for"] = member(t, `{"identifier": {"system": "https://cht.example.org/medic", "value": "`+chttest.DemoMotherID+`"}}`)
		}), http.StatusUnprocessableEntity, nil, nil, "Bundle.entry[1].resource.for"},
		{"batch, the Task is cancelled", patched(t, openmrs, func(m map[string]any) {
			m["type"] = "batch"
			entryResource(m, 1)["status"] = "cancelled"
		}), http.StatusOK, []string{"422 Unprocessable Entity", "422 Unprocessable Entity"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			a := r.post(t, "/fhir", tt.body)
			require.Equal(t, tt.status, a.status, "%s", a.body)
			reports := r.reports(t, "INTEROP_FOLLOW_UP")
			if tt.expr != "" {
				assert.Contains(t, parseOutcome(t, a.body).text(), tt.expr)
			} else {
				resp := bundleResponse(t, a.body)
				require.Len(t, resp.Entry, len(tt.statuses))
				for i, want := range tt.statuses {
					assert.Equal(t, want, resp.Entry[i].Response.Status, "entry %d: %s", i, a.body)
				}
			}
			if tt.fields == nil {
				assert.Empty(t, reports, "no CHW task")
				return
			}
			require.Len(t, reports, 1, "one referral, one CHW task")
			fields := reports[0]["fields"].(map[string]any)
			if _, ok := tt.fields["patient_uuid"]; !ok {
				delete(fields, "patient_uuid") // a person the Bundle created
			}
			assert.Equal(t, tt.fields, fields)
		})
	}
}
