package fhirtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// resourceTypes lists the R4 (4.0.1) resource types; any other type in a URL or body is rejected.
var resourceTypes = func() map[string]bool {
	m := make(map[string]bool, 150)
	for _, t := range strings.Fields(`
	Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent Basic 
	Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam CatalogEntry 
	ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem Communication 
	CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent Contract Coverage 
	CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric 
	DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis 
	Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence 
	EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal GraphDefinition Group 
	GuidanceResponse HealthcareService ImagingStudy Immunization ImmunizationEvaluation 
	ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice Library Linkage List Location Measure 
	MeasureReport Media Medication MedicationAdministration MedicationDispense MedicationKnowledge 
	MedicationRequest MedicationStatement MedicinalProduct MedicinalProductAuthorization 
	MedicinalProductContraindication MedicinalProductIndication MedicinalProductIngredient 
	MedicinalProductInteraction MedicinalProductManufactured MedicinalProductPackaged 
	MedicinalProductPharmaceutical MedicinalProductUndesirableEffect MessageDefinition MessageHeader 
	MolecularSequence NamingSystem NutritionOrder Observation ObservationDefinition OperationDefinition 
	OperationOutcome Organization OrganizationAffiliation Parameters Patient PaymentNotice PaymentReconciliation 
	Person PlanDefinition Practitioner PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse 
	RelatedPerson RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject 
	RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition 
	StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer 
	SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification SupplyDelivery 
	SupplyRequest Task TerminologyCapabilities TestReport TestScript ValueSet VerificationResult 
	VisionPrescription 	`) {
		m[t] = true
	}
	return m
}()

// requiredElements lists, for common resource types, the top-level elements with cardinality 1..1 or
// 1..* that are not choice types. A write without one of them is rejected with 400, as the real server
// (medplum's validator) does.
var requiredElements = map[string][]string{
	"AllergyIntolerance":    {"patient"},
	"Appointment":           {"status", "participant"},
	"AuditEvent":            {"type", "recorded", "agent", "source"},
	"Basic":                 {"code"},
	"Bundle":                {"type"},
	"CarePlan":              {"status", "intent", "subject"},
	"Communication":         {"status"},
	"CommunicationRequest":  {"status"},
	"Composition":           {"status", "type", "date", "author", "title"},
	"Condition":             {"subject"},
	"Consent":               {"status", "scope", "category"},
	"Coverage":              {"status", "beneficiary", "payor"},
	"DiagnosticReport":      {"status", "code"},
	"DocumentReference":     {"status", "content"},
	"Encounter":             {"status", "class"},
	"EpisodeOfCare":         {"status", "patient"},
	"Flag":                  {"status", "code", "subject"},
	"Goal":                  {"lifecycleStatus", "description", "subject"},
	"Group":                 {"type", "actual"},
	"Immunization":          {"status", "vaccineCode", "patient"},
	"List":                  {"status", "mode"},
	"MedicationRequest":     {"status", "intent", "subject"},
	"Observation":           {"status", "code"},
	"OperationOutcome":      {"issue"},
	"Procedure":             {"status", "subject"},
	"Provenance":            {"target", "recorded", "agent"},
	"QuestionnaireResponse": {"status"},
	"RelatedPerson":         {"patient"},
	"ServiceRequest":        {"status", "intent", "subject"},
	"Subscription":          {"status", "reason", "criteria", "channel"},
	"Task":                  {"status", "intent"},
}

// opError is a failed request: the HTTP status plus the OperationOutcome issue to answer with.
type opError struct {
	status     int
	code       string // OperationOutcome issue.code: invalid, structure, not-found, ...
	msg        string
	expression string // FHIRPath of the offending element, if any
}

func (e *opError) Error() string {
	if e.expression != "" {
		return fmt.Sprintf("fhirtest: %d %s: %s (%s)", e.status, e.code, e.msg, e.expression)
	}
	return fmt.Sprintf("fhirtest: %d %s: %s", e.status, e.code, e.msg)
}

func errInvalid(expr, format string, args ...any) *opError {
	return &opError{status: http.StatusBadRequest, code: "invalid", msg: fmt.Sprintf(format, args...), expression: expr}
}

func errNotFound(what string) *opError {
	return &opError{status: http.StatusNotFound, code: "not-found", msg: what + " not found"}
}

func errMultiple(expr string) *opError {
	return &opError{status: http.StatusPreconditionFailed, code: "multiple-matches",
		msg: "multiple resources found matching condition", expression: expr}
}

// validID reports whether id is a FHIR id: 1 to 64 of [A-Za-z0-9-.].
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// decodeObject parses body as exactly one JSON object, keeping numbers as json.Number so decimals
// such as 37.50 survive unchanged.
func decodeObject(body []byte, where string) (map[string]any, *opError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errInvalid(where, "missing request body")
	}
	v, err := parseJSON(body)
	if err != nil {
		return nil, &opError{status: http.StatusBadRequest, code: "structure", msg: "invalid JSON: " + err.Error(), expression: where}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &opError{status: http.StatusBadRequest, code: "structure", msg: "expected a JSON object", expression: where}
	}
	return m, nil
}

// checkResource validates a resource body for a write of wantType ("" accepts any known type). It
// rejects a missing, unknown or mismatched resourceType, a malformed id, null values, empty objects
// and missing required elements. Empty strings and arrays are removed, as the real server does,
// unless strict is set, in which case they are rejected (FHIR invariant ele-1).
func checkResource(m map[string]any, wantType string, strict bool) *opError {
	rt, _ := m["resourceType"].(string)
	switch {
	case rt == "":
		return &opError{status: http.StatusBadRequest, code: "structure", msg: "missing resourceType", expression: "resourceType"}
	case !resourceTypes[rt]:
		return &opError{status: http.StatusBadRequest, code: "structure", msg: fmt.Sprintf("unknown resourceType %q", rt), expression: "resourceType"}
	case wantType != "" && rt != wantType:
		return errInvalid("resourceType", "incorrect resource type: expected %s, but found %s", wantType, rt)
	}
	if v, ok := m["id"]; ok {
		id, isString := v.(string)
		if !isString || !validID(id) {
			return errInvalid(rt+".id", "invalid id %v: want 1-64 characters of [A-Za-z0-9-.]", jsonString(v))
		}
	}
	if v, ok := m["meta"]; ok {
		if _, isObject := v.(map[string]any); !isObject {
			return &opError{status: http.StatusBadRequest, code: "structure", msg: "meta must be an object", expression: rt + ".meta"}
		}
	}
	for k, v := range m {
		if k == "resourceType" {
			continue
		}
		nv, keep, cerr := cleanValue(v, strict)
		if cerr != nil {
			var expr strings.Builder
			expr.WriteString(rt + "." + k)
			for i := len(cerr.path) - 1; i >= 0; i-- {
				expr.WriteString(cerr.path[i])
			}
			return &opError{status: http.StatusBadRequest, code: "structure", msg: cerr.msg, expression: expr.String()}
		}
		if keep {
			m[k] = nv
		} else {
			delete(m, k)
		}
	}
	for _, name := range requiredElements[rt] {
		if _, ok := m[name]; !ok {
			return &opError{status: http.StatusBadRequest, code: "structure", msg: "missing required element", expression: rt + "." + name}
		}
	}
	return nil
}

// cleanErr is a null or (when strict) empty value; path lists the element steps from the problem
// up to the value cleanValue was called with (innermost first), built only on error.
type cleanErr struct {
	msg  string
	path []string
}

// cleanValue checks v: null and {} are errors; empty strings and arrays, and objects left empty by
// dropping them, report keep=false (or an error when strict). Arrays and objects are cleaned in place; the returned value replaces v.
func cleanValue(v any, strict bool) (_ any, keep bool, _ *cleanErr) {
	empty := func(what string) (any, bool, *cleanErr) {
		if strict {
			return nil, false, &cleanErr{msg: "empty " + what + " (FHIR invariant ele-1)"}
		}
		return nil, false, nil
	}
	switch x := v.(type) {
	case nil:
		return nil, false, &cleanErr{msg: "invalid null value"}
	case string:
		if x == "" {
			return empty("string")
		}
	case []any:
		out := x[:0]
		for i, e := range x {
			ne, keepE, err := cleanValue(e, strict)
			if err != nil {
				err.path = append(err.path, "["+strconv.Itoa(i)+"]")
				return nil, false, err
			}
			if keepE {
				out = append(out, ne)
			}
		}
		if len(out) == 0 {
			return empty("array")
		}
		return out, true, nil
	case map[string]any:
		if len(x) == 0 {
			// Rejected even when not strict, as the real server does ("Invalid empty non-primitive
			// value"); an object that only becomes empty once its empty strings are dropped is dropped.
			return nil, false, &cleanErr{msg: "invalid empty object (FHIR invariant ele-1)"}
		}
		for k, e := range x {
			ne, keepE, err := cleanValue(e, strict)
			if err != nil {
				err.path = append(err.path, "."+k)
				return nil, false, err
			}
			if keepE {
				x[k] = ne
			} else {
				delete(x, k)
			}
		}
		if len(x) == 0 {
			return empty("object")
		}
	}
	return v, true, nil
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
