package tocht_test

// Resources shaped as EMRs send them (OpenMRS FHIR2, the R4 spec's own
// examples and rules) that the bridge used to write wrongly: retracted
// values, effective times other than effectiveDateTime, modifiers,
// version-specific references, a Task sent with the ServiceRequest it
// carries out, the reports of XForms, Bundles with context resources
// (Practitioner, Location), batch entries the bridge cannot handle, and
// conditional updates of a Patient.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
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
// raises no CHW task either, and a Patient whose link says it is replaced
// by another record (R4 Patient.link, a modifier element: "the referenced
// patient should be used instead of this Patient record") becomes no CHT
// person and is the subject of nothing.
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
		{"Patient.link replaced-by", "/fhir/Patient", testdata(t, "patient-replaced-by.json"), "Patient.link[0].type"},
		{"Patient.link without type", "/fhir/Patient", patched(t, testdata(t, "patient-replaced-by.json"), func(m map[string]any) {
			delete(m["link"].([]any)[0].(map[string]any), "type")
		}), "Patient.link[0].type"},
		{"a Patient of a Bundle replaced by another", "/fhir", patched(t, testdata(t, "bundle-new-patient.json"), func(m map[string]any) {
			entryResource(m, 0)["link"] = member(t, `[{"other": {"reference": "Patient/emr-patient-7"}, "type": "replaced-by"}]`)
		}), "Bundle.entry[0].resource.link[0].type"},
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

	// The Patient a Task refers to, read from the FHIR server, is the
	// record an EMR's merge replaced by another: it is not the patient's
	// record (R4 Patient.link, a modifier).
	t.Run("a referenced Patient of the FHIR server replaced by another", func(t *testing.T) {
		r := newRig(t)
		require.NoError(t, r.fhir.Load(testdata(t, "patient-replaced-by.json")))
		r = rebuild(t, r, func(c *tocht.Config) { c.FHIRURL = r.fhir.URL; c.HTTPClient = r.fhir.Client() })
		a := r.post(t, "/fhir/Task", testdata(t, "task.json"))
		require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
		text := parseOutcome(t, a.body).text()
		assert.Contains(t, text, "Task.for")
		assert.Contains(t, text, "Patient.link[0].type")
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
		// Named by urn:uuid only, neither has an id the FHIR server knows:
		// the CHW task's follow-up could close nothing
		// (fhir.Converter.CloseReferral reads them by id). Refused whole.
		{"urn:uuid references, no ids", testdata(t, "bundle-referral-urn-uuid.json"), http.StatusUnprocessableEntity,
			nil, nil, "Bundle.entry[2].resource.id"},
		{"the ServiceRequest is revoked", patched(t, openmrs, func(m map[string]any) { entryResource(m, 0)["status"] = "revoked" }),
			http.StatusUnprocessableEntity, nil, nil, "Bundle.entry[1].resource.basedOn[0]"},
		// OpenMRS FHIR2 derives a request's status from its Tasks
		// (BaseServiceRequestTranslatorImpl
		// determineServiceRequestStatus): unknown unless the order has
		// exactly one open Task, as for a second attempt.
		{"the ServiceRequest's status is unknown", patched(t, openmrs, func(m map[string]any) { entryResource(m, 0)["status"] = "unknown" }),
			http.StatusOK, []string{"200 OK", "201 Created"}, map[string]any{
				"patient_uuid": chttest.DemoPatientID, "fhir_task": taskID, "fhir_service_request": srID,
				"service_request_id": taskID, "reason": "Missed ART refill appointment", "due_date": "2024-05-09"}, ""},
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

// newDocs decodes the stored CHT documents whose _id is not in before.
func newDocs(t *testing.T, r *rig, before []json.RawMessage) []map[string]any {
	t.Helper()
	old := map[string]bool{}
	for _, raw := range before {
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		old[m["_id"].(string)] = true
	}
	var out []map[string]any
	for _, raw := range r.cht.Docs() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		if !old[m["_id"].(string)] {
			out = append(out, m)
		}
	}
	return out
}

// entryStatuses are the statuses of a response Bundle's entries.
func entryStatuses(resp batchResponse) []string {
	out := make([]string, len(resp.Entry))
	for i, e := range resp.Entry {
		out[i] = e.Response.Status
	}
	return out
}

// TestXFormReportIsWrittenAsCHTSavesIt: a report of an XForm (a form id
// that is not all upper case: the default mapping's assessment) is saved
// by CHT's web app with the form id unchanged, type data_record and
// content_type "xml", and no sms_message (cht-core
// webapp/src/ts/services/enketo.service.ts initializeReportDoc); CHT tells
// XForm reports by content_type (shared-libs/transitions utils
// isXFormReport, registration-utils isValidRegistration), and the app's
// tasks and targets match doc.form === 'assessment'. The bridge wrote it
// as a records API report of form ASSESSMENT, a form CHT does not have.
// Records API forms (HEIGHT_WEIGHT) and the task form keep the records
// API's shape, also when the task form is configured in lower case (the
// default interop_follow_up: cht-interoperability's INTEROP_FOLLOW_UP
// JSON form raises the task; the interop_follow_up XForm closes it).
func TestXFormReportIsWrittenAsCHTSavesIt(t *testing.T) {
	xformReport := func(r *rig) string {
		return r.bridge.ReportID("Encounter", "https://emr.example.org/encounter|ENC-RDT-1")
	}
	assertXForm := func(t *testing.T, doc map[string]any) {
		t.Helper()
		assert.Equal(t, "assessment", doc["form"], "the XForm's id, as CHT's web app saves it")
		assert.Equal(t, "data_record", doc["type"])
		assert.Equal(t, "xml", doc["content_type"])
		assert.NotContains(t, doc, "sms_message", "a records API member")
		fields := doc["fields"].(map[string]any)
		assert.Equal(t, chttest.DemoChildID, fields["patient_uuid"])
		assert.Equal(t, map[string]any{"malaria_rdt": "positive", "temperature": 38.5}, fields["group_fever"])
		assert.Equal(t, float64(time.Date(2024, 5, 2, 7, 0, 0, 0, time.UTC).UnixMilli()), doc["reported_date"])
	}

	t.Run("XForm", func(t *testing.T) {
		r := newRig(t)
		a := r.post(t, "/fhir", testdata(t, "bundle-assessment-xform.json"))
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		doc := r.doc(t, xformReport(r))
		assertXForm(t, doc)
		for _, k := range []string{"errors", "tasks"} {
			assert.NotContains(t, doc, k, "a records API member")
		}
		assert.Empty(t, r.reports(t, "ASSESSMENT"), "no report of an upper-cased form")

		// cht-to-fhir reads it back as a report of the mapped form.
		raw, _ := r.cht.Doc(xformReport(r))
		var rep cht.Report
		require.NoError(t, json.Unmarshal(raw, &rep))
		tx, err := r.conv.ReportBundle(&rep)
		require.NoError(t, err)
		out, err := json.Marshal(tx)
		require.NoError(t, err)
		assert.Contains(t, string(out), `"code":"70569-9"`)
		assert.Contains(t, string(out), `"code":"assessment"`)
	})

	t.Run("records API form", func(t *testing.T) {
		r := newRig(t)
		a := r.post(t, "/fhir", testdata(t, "observations.json"))
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		doc := r.doc(t, observationsReport(r))
		assert.Equal(t, "HEIGHT_WEIGHT", doc["form"])
		assert.NotContains(t, doc, "content_type")
		assert.Equal(t, "HEIGHT_WEIGHT", doc["sms_message"].(map[string]any)["form"])
	})

	t.Run("task form in lower case", func(t *testing.T) {
		r := newRig(t, func(c *tocht.Config) {
			conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: instanceURL, Mapping: fhir.DefaultMapping(),
				Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID}}) // TaskForm: the default, interop_follow_up
			require.NoError(t, err)
			c.Converter = conv
		})
		a := r.post(t, "/fhir/ServiceRequest", testdata(t, "service-request.json"))
		require.Equal(t, http.StatusCreated, a.status, "%s", a.body)
		reports := r.reports(t, "INTEROP_FOLLOW_UP")
		require.Len(t, reports, 1, "the JSON form that raises the task")
		assert.NotContains(t, reports[0], "content_type")
		assert.Contains(t, reports[0], "sms_message")
		assert.Empty(t, r.reports(t, "interop_follow_up"), "not the XForm that closes the task")
	})

	// A report an earlier version wrote as a records API report of form
	// ASSESSMENT is rewritten in the XForm's shape when re-sent, and its
	// fields are merged as for the same form: a field the re-send does not
	// carry stays.
	t.Run("rewrites the earlier shape", func(t *testing.T) {
		r := newRig(t)
		_, err := r.cht.PutDoc(map[string]any{"_id": xformReport(r), "type": "data_record", "form": "ASSESSMENT",
			"fields": map[string]any{"patient_uuid": chttest.DemoChildID, "group_fever": map[string]any{"malaria_rdt": "positive"},
				"group_breathing": map[string]any{"fast_breathing": "yes"}},
			"reported_date": 1714633200000, "errors": []any{}, "tasks": []any{},
			"sms_message": map[string]any{"form": "ASSESSMENT", "reported_date": 1714633200000}})
		require.NoError(t, err)
		a := r.post(t, "/fhir", testdata(t, "bundle-assessment-xform.json"))
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		doc := r.doc(t, xformReport(r))
		assertXForm(t, doc)
		assert.Equal(t, "yes", doc["fields"].(map[string]any)["group_breathing"].(map[string]any)["fast_breathing"],
			"a field the re-send does not carry stays")
	})
}

// TestContextResourcesInABundleAreAcknowledged: an EMR's Bundle carries
// the Practitioner and Location its Encounter refers to (OpenMRS FHIR2
// EncounterTranslatorImpl: Encounter.participant.individual is a
// Practitioner reference, Encounter.location a Location reference; R4
// bundle.html: a Bundle holds the resources its entries refer to). They
// hold no data of a CHT report or person: each is answered 200 saying it
// was not written to CHT, and the Encounter's report is written as
// without them, whatever the Bundle's type. The whole Bundle was refused
// (400 "resource type Practitioner is not supported"). A resource type
// with clinical data the bridge cannot write (a Condition) is still
// refused, and so is a Location that carries a report's geolocation.
func TestContextResourcesInABundleAreAcknowledged(t *testing.T) {
	openmrs := testdata(t, "bundle-openmrs-encounter-context.json")
	ofType := func(typ string) []byte {
		return patched(t, openmrs, func(m map[string]any) { m["type"] = typ })
	}
	withEntry := func(body []byte, entry string) []byte {
		return patched(t, body, func(m map[string]any) { m["entry"] = append(m["entry"].([]any), member(t, entry)) })
	}
	const condition = `{"resource": {"resourceType": "Condition", "id": "c-1",
	  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
	  "subject": {"identifier": {"system": "https://cht.example.org/medic", "value": "` + chttest.DemoPatientID + `"}}},
	  "request": {"method": "PUT", "url": "Condition/c-1"}}`
	for _, typ := range []string{"transaction", "collection", "batch"} {
		t.Run(typ, func(t *testing.T) {
			r := newRig(t)
			before := r.cht.Docs()
			a := r.post(t, "/fhir", ofType(typ))
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			resp := bundleResponse(t, a.body)
			assert.Equal(t, []string{"201 Created", "201 Created", "200 OK", "200 OK"}, entryStatuses(resp), "%s", a.body)
			for i, rt := range map[int]string{2: "Practitioner", 3: "Location"} {
				text := resp.Entry[i].Response.Outcome.text()
				assert.Contains(t, text, rt)
				assert.Contains(t, text, "not written to CHT")
			}
			docs := newDocs(t, r, before)
			require.Len(t, docs, 1, "one report, nothing else: %v", docs)
			assert.Equal(t, "HEIGHT_WEIGHT", docs[0]["form"])
			assert.Equal(t, 168.0, docs[0]["fields"].(map[string]any)["height"])
		})
	}

	t.Run("a Condition refuses a transaction", func(t *testing.T) {
		r := newRig(t)
		before := len(r.cht.Docs())
		a := r.post(t, "/fhir", withEntry(openmrs, condition))
		require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
		text := parseOutcome(t, a.body).text()
		assert.Contains(t, text, "Bundle.entry[4].resource")
		assert.Contains(t, text, `"Condition" is not accepted`)
		assert.Len(t, r.cht.Docs(), before, "nothing written")
	})

	t.Run("a Condition in a batch", func(t *testing.T) {
		r := newRig(t)
		a := r.post(t, "/fhir", withEntry(ofType("batch"), condition))
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		resp := bundleResponse(t, a.body)
		assert.Equal(t, []string{"201 Created", "201 Created", "200 OK", "200 OK", "400 Bad Request"}, entryStatuses(resp))
		assert.Contains(t, resp.Entry[4].Response.Outcome.text(), "Bundle.entry[4].resource")
		assert.Len(t, newWeightReports(t, r), 1)
	})

	t.Run("the Location of a report's geolocation", func(t *testing.T) {
		r := newRig(t)
		before := len(r.cht.Docs())
		a := r.post(t, "/fhir", withEntry(openmrs, `{"resource": {"resourceType": "Location", "id": "geo-1",
		  "identifier": [{"system": "https://cht.example.org/observation", "value": "r-1/geolocation"}],
		  "position": {"latitude": -0.1, "longitude": 34.7}}}`))
		require.Equal(t, http.StatusUnprocessableEntity, a.status, "%s", a.body)
		text := parseOutcome(t, a.body).text()
		assert.Contains(t, text, "Bundle.entry[4].resource.identifier[0]")
		assert.Contains(t, text, "geolocation")
		assert.Len(t, r.cht.Docs(), before, "nothing written")
	})
}

// TestBatchEntryTheBridgeCannotHandle: the entries of a batch are processed
// independently ("there SHALL be no interdependencies between the different
// entries", R4 http.html#transaction), each answered on its own. An entry
// the bridge cannot handle, a DELETE (it deletes no CHT data: 405) or a
// POST without a resource (400), is answered alone, naming the problem,
// and the others are written. The whole batch was refused 400 with
// "Bundle.entry[0].resource: required element is missing" for a DELETE.
// A transaction, written whole or not at all, is refused whole, naming
// the method.
func TestBatchEntryTheBridgeCannotHandle(t *testing.T) {
	withFirst := func(typ, entry string) []byte {
		return patched(t, testdata(t, "batch-delete-entry.json"), func(m map[string]any) {
			m["type"] = typ
			m["entry"].([]any)[0] = member(t, entry)
		})
	}
	tests := []struct {
		name   string
		body   []byte
		status string // of the first entry
		want   []string
	}{
		{"DELETE", testdata(t, "batch-delete-entry.json"), "405 Method Not Allowed",
			[]string{"Bundle.entry[0].request.method", "DELETE", "does not delete CHT data"}},
		{"GET", withFirst("batch", `{"request": {"method": "GET", "url": "ServiceRequest/ltfu-old"}}`), "405 Method Not Allowed",
			[]string{"Bundle.entry[0].request.method", "GET"}},
		{"DELETE with a resource", withFirst("batch", `{"resource": {"resourceType": "Patient", "id": "p-1", "name": [{"text": "A B"}]},
			"request": {"method": "DELETE", "url": "Patient/p-1"}}`), "405 Method Not Allowed", []string{"Bundle.entry[0].request.method", "DELETE"}},
		{"POST without a resource", withFirst("batch", `{"request": {"method": "POST", "url": "ServiceRequest"}}`), "400 Bad Request",
			[]string{"Bundle.entry[0].resource", "required element is missing"}},
		{"an invalid resource", withFirst("batch", `{"resource": {"resourceType": "Task", "intent": "order"}}`), "400 Bad Request",
			[]string{"Bundle.entry[0].resource.status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			a := r.post(t, "/fhir", tt.body)
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			resp := bundleResponse(t, a.body)
			assert.Equal(t, []string{tt.status, "201 Created"}, entryStatuses(resp), "%s", a.body)
			text := resp.Entry[0].Response.Outcome.text()
			for _, w := range tt.want {
				assert.Contains(t, text, w)
			}
			if !strings.HasPrefix(tt.name, "POST") {
				assert.NotContains(t, text, "resource: required element is missing", "not a missing resource")
			}
			assert.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 1, "the other entry is written")
		})
	}

	t.Run("transaction", func(t *testing.T) {
		r := newRig(t)
		before := len(r.cht.Docs())
		a := r.post(t, "/fhir", patched(t, testdata(t, "batch-delete-entry.json"), func(m map[string]any) { m["type"] = "transaction" }))
		require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
		text := parseOutcome(t, a.body).text()
		assert.Contains(t, text, "Bundle.entry[0].request.method")
		assert.Contains(t, text, "method DELETE is not supported")
		assert.NotContains(t, text, "required element is missing")
		assert.Len(t, r.cht.Docs(), before, "nothing written")
	})

	// A batch answers up to 50 such entries one by one; one more refuses
	// it whole (the answer stays small), saying so truthfully.
	many := func(n int) []byte {
		return patched(t, testdata(t, "batch-delete-entry.json"), func(m map[string]any) {
			entries := m["entry"].([]any)
			del := entries[0]
			m["entry"] = append(slices.Repeat([]any{del}, n), entries[1:]...)
		})
	}
	t.Run("50 refused entries", func(t *testing.T) {
		r := newRig(t)
		a := r.post(t, "/fhir", many(50))
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		st := entryStatuses(bundleResponse(t, a.body))
		assert.Equal(t, "201 Created", st[len(st)-1], "the entry after them is written")
		assert.Len(t, r.reports(t, "INTEROP_FOLLOW_UP"), 1)
	})
	t.Run("51 refused entries", func(t *testing.T) {
		r := newRig(t)
		a := r.post(t, "/fhir", many(51))
		require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
		assert.Contains(t, parseOutcome(t, a.body).text(), "more than 50 entries are refused")
		assert.Empty(t, r.reports(t, "INTEROP_FOLLOW_UP"))
	})
}

// TestConditionalUpdateOfAPatient: an EMR that does not know the server's
// id of a Patient updates it by identifier, PUT Patient?identifier=
// <system>|<value> (R4 http.html#cond-update, search.html#token; the R4
// transaction example bundle-transaction.json sends one). When the Patient
// carries that identifier, the request creates or updates the CHT person
// a POST of the same Patient does (keyed as the package documentation
// says, whichever identifier the url names). It was refused (400 "want
// Patient/<id>"). A conditional URL with other search parameters, or an
// identifier the Patient does not carry, is refused naming request.url.
func TestConditionalUpdateOfAPatient(t *testing.T) {
	withURL := func(u string, ids ...string) []byte {
		return patched(t, testdata(t, "bundle-conditional-patient.json"), func(m map[string]any) {
			e := m["entry"].([]any)[0].(map[string]any)
			e["request"].(map[string]any)["url"] = u
			if ids != nil {
				e["resource"].(map[string]any)["identifier"] = member(t, "["+strings.Join(ids, ",")+"]")
			}
		})
	}
	const (
		emr  = `{"system": "https://emr.example.org/patient-id", "value": "EMR-0077"}`
		nupi = `{"system": "https://cr.kenya-hie.health/nupi", "value": "MOH1234567890"}`
	)
	tests := []struct {
		name string
		body []byte
		key  string // of the person; "" when refused
		want string // in the refusal
	}{
		{"system|value", testdata(t, "bundle-conditional-patient.json"), "https://emr.example.org/patient-id|EMR-0077", ""},
		{"percent-encoded", withURL("Patient?identifier=https%3A%2F%2Femr.example.org%2Fpatient-id%7CEMR-0077"),
			"https://emr.example.org/patient-id|EMR-0077", ""},
		{"value of any system", withURL("Patient?identifier=EMR-0077"), "https://emr.example.org/patient-id|EMR-0077", ""},
		// Named by its second identifier, the Patient keeps the key any
		// other send of it has (its first identifier), so that a later
		// POST of it updates the same person (below).
		{"by its second identifier", withURL("Patient?identifier=https://cr.kenya-hie.health/nupi|MOH1234567890", emr, nupi),
			"https://emr.example.org/patient-id|EMR-0077", ""},
		{"an identifier the Patient does not carry", withURL("Patient?identifier=https://emr.example.org/patient-id|EMR-0078"), "",
			"carries no identifier"},
		{"another system", withURL("Patient?identifier=urn:other|EMR-0077"), "", "carries no identifier"},
		{"other search parameters", withURL("Patient?identifier=https://emr.example.org/patient-id|EMR-0077&birthdate=1985-01-30"), "",
			`"birthdate"`},
		{"by name", withURL("Patient?name=Peter"), "", `"name"`},
		{"two identifiers", withURL("Patient?identifier=urn:a|1,https://emr.example.org/patient-id|EMR-0077"), "", "several"},
		{"another type", withURL("Practitioner?identifier=https://emr.example.org/patient-id|EMR-0077"), "", "want Patient/<id>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			before := len(r.cht.Docs())
			a := r.post(t, "/fhir", tt.body)
			if tt.key == "" {
				require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
				text := parseOutcome(t, a.body).text()
				assert.Contains(t, text, "Bundle.entry[0].request.url")
				assert.Contains(t, text, tt.want)
				assert.Len(t, r.cht.Docs(), before, "nothing written")
				return
			}
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			assert.Equal(t, []string{"201 Created", "201 Created"}, entryStatuses(bundleResponse(t, a.body)))
			person := r.bridge.PersonID(tt.key)
			assert.Equal(t, "Peter Odhiambo", r.doc(t, person)["name"])
			reports := r.reports(t, "INTEROP_FOLLOW_UP")
			require.Len(t, reports, 1)
			assert.Equal(t, person, reports[0]["fields"].(map[string]any)["patient_uuid"])

			// Sent again: the same person and report, up to date.
			a = r.post(t, "/fhir", tt.body)
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			assert.Equal(t, []string{"200 OK", "200 OK"}, entryStatuses(bundleResponse(t, a.body)))
			assert.Len(t, r.cht.Docs(), before+2)
		})
	}

	// A conditional update, then a POST of the same Patient: one person.
	t.Run("then a POST", func(t *testing.T) {
		r := newRig(t)
		require.Equal(t, http.StatusOK, r.post(t, "/fhir",
			withURL("Patient?identifier=https://cr.kenya-hie.health/nupi|MOH1234567890", emr, nupi)).status)
		before := len(r.cht.Docs())
		a := r.post(t, "/fhir", patched(t, withURL("Patient", emr, nupi), func(m map[string]any) {
			m["entry"].([]any)[0].(map[string]any)["request"] = member(t, `{"method": "POST", "url": "Patient"}`)
		}))
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		assert.Len(t, r.cht.Docs(), before, "the POST updated the person the conditional update made")
	})

	// A ServiceRequest is named by its id or its identifier: a
	// conditional update of one is refused, naming request.url.
	t.Run("a ServiceRequest", func(t *testing.T) {
		r := newRig(t)
		a := r.post(t, "/fhir", patched(t, testdata(t, "bundle-conditional-patient.json"), func(m map[string]any) {
			m["entry"].([]any)[1].(map[string]any)["request"] = member(t,
				`{"method": "PUT", "url": "ServiceRequest?identifier=https://emr.example.org/service-request|SR-0077"}`)
		}))
		require.Equal(t, http.StatusBadRequest, a.status, "%s", a.body)
		text := parseOutcome(t, a.body).text()
		assert.Contains(t, text, "Bundle.entry[1].request.url")
		assert.Contains(t, text, "a conditional update is accepted for a Patient only")
	})
}
