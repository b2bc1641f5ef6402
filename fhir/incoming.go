package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// maxIncoming bounds the size of a resource ParseResource accepts.
const maxIncoming = 8 << 20

// requiredElements lists, per supported resource type, the elements with
// minimum cardinality 1 in R4 that the samply types cannot detect as missing
// (they decode to zero values).
var requiredElements = map[string][]string{
	"Patient":        nil,
	"Observation":    {"status", "code"},
	"Encounter":      {"status", "class"},
	"ServiceRequest": {"status", "intent", "subject"},
	"Task":           {"status", "intent"},
	"Bundle":         {"type"},
}

// choiceElements lists choice types ([x]) whose variants are exclusive.
var choiceElements = map[string][]string{
	"Patient":        {"deceased", "multipleBirth"},
	"Observation":    {"effective", "value"},
	"ServiceRequest": {"quantity", "occurrence", "asNeeded"},
}

// enumElements are top-level coded elements checked before decoding so the
// error names the element.
var enumElements = map[string]map[string]func([]byte) error{
	"Patient":     {"gender": unmarshalInto[models.AdministrativeGender]},
	"Observation": {"status": unmarshalInto[models.ObservationStatus]},
	"Encounter":   {"status": unmarshalInto[models.EncounterStatus]},
	"ServiceRequest": {"status": unmarshalInto[models.RequestStatus], "intent": unmarshalInto[models.RequestIntent],
		"priority": unmarshalInto[models.RequestPriority]},
	"Task":   {"status": unmarshalInto[models.TaskStatus], "priority": unmarshalInto[models.RequestPriority]},
	"Bundle": {"type": unmarshalInto[models.BundleType]},
}

func unmarshalInto[T any](b []byte) error {
	var v T
	return json.Unmarshal(b, &v)
}

// ParseResource checks and decodes one incoming FHIR resource of a
// supported type (Patient, Observation, Encounter, ServiceRequest, Task,
// Bundle) and returns a pointer to the samply value (*models.Patient, ...).
//
// Beyond what the samply types do it checks: that the body is one JSON
// object with a known resourceType, that required elements are present and
// not null (samply would silently default a missing status to its first
// code), that coded elements hold valid codes, that choice elements ([x])
// have at most one variant, the ele-1 rule (no empty strings, objects or
// arrays, no nulls), and that nothing would be lost in decoding: elements
// the samply types do not model (unknown elements, contained resources,
// primitive extensions such as _birthDate) are rejected, except inside the
// resource's meta, where servers keep their own bookkeeping. Failures are an *[InvalidResourceError] whose issues
// name the elements as FHIRPath expressions; an unsupported resourceType
// also matches [ErrUnsupportedResource].
func ParseResource(data []byte) (any, error) {
	if len(data) > maxIncoming {
		return nil, invalid("", "", fmt.Sprintf("resource larger than %d bytes", maxIncoming))
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		e := invalid("", "", "body is not a JSON object")
		e.Issues[0].Code = models.IssueTypeStructure
		return nil, e
	}
	if dec.More() {
		return nil, invalid("", "", "trailing data after the resource")
	}
	rtRaw, ok := raw["resourceType"]
	var rt string
	if !ok || json.Unmarshal(rtRaw, &rt) != nil || rt == "" {
		return nil, required("", "resourceType")
	}
	req, supported := requiredElements[rt]
	if !supported {
		return nil, &InvalidResourceError{ResourceType: rt, Err: ErrUnsupportedResource, Issues: []Issue{{
			Expression: "resourceType", Reason: fmt.Sprintf("resource type %q is not supported", rt), Code: models.IssueTypeNotSupported}}}
	}
	ire := &InvalidResourceError{ResourceType: rt}
	for _, el := range req {
		if v, ok := raw[el]; !ok || string(bytes.TrimSpace(v)) == "null" {
			ire.Issues = append(ire.Issues, Issue{Expression: rt + "." + el, Reason: "required element is missing", Code: models.IssueTypeRequired})
		}
	}
	for el, check := range enumElements[rt] {
		if v, ok := raw[el]; ok && string(v) != "null" {
			if err := check(v); err != nil {
				ire.Issues = append(ire.Issues, Issue{Expression: rt + "." + el, Reason: err.Error(), Code: models.IssueTypeCodeInvalid})
			}
		}
	}
	for _, choice := range choiceElements[rt] {
		var set []string
		for k := range raw {
			if len(k) > len(choice) && strings.HasPrefix(k, choice) && k[len(choice)] >= 'A' && k[len(choice)] <= 'Z' {
				set = append(set, k)
			}
		}
		if len(set) > 1 {
			slices.Sort(set)
			ire.Issues = append(ire.Issues, Issue{Expression: rt + "." + choice + "[x]",
				Reason: "only one of " + strings.Join(set, ", ") + " is allowed", Code: models.IssueTypeStructure})
		}
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err == nil {
		ele1(tree, rt, &ire.Issues, 0)
	}
	if len(ire.Issues) > 0 {
		// One issue per element: a null required element is also an ele-1 finding.
		seen := map[string]bool{}
		ire.Issues = slices.DeleteFunc(ire.Issues, func(is Issue) bool {
			dup := seen[is.Expression]
			seen[is.Expression] = true
			return dup
		})
		slices.SortStableFunc(ire.Issues, func(a, b Issue) int { return strings.Compare(a.Expression, b.Expression) })
		return nil, ire
	}
	res, err := decodeAs(rt, data)
	if err != nil {
		expr := rt
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			expr = rt + "." + ute.Field
		}
		return nil, &InvalidResourceError{ResourceType: rt, Issues: []Issue{{Expression: expr, Reason: err.Error(), Code: models.IssueTypeStructure}}}
	}
	// The samply types drop what they do not model (unknown elements,
	// contained resources, primitive extensions such as _birthDate):
	// reject such input rather than lose data silently.
	kept, err := json.Marshal(res)
	if err == nil {
		var keptTree any
		if err := json.Unmarshal(kept, &keptTree); err == nil {
			var issues []Issue
			if dropped(tree, keptTree, rt, 0, &issues); len(issues) > 0 {
				return nil, &InvalidResourceError{ResourceType: rt, Issues: issues}
			}
		}
	}
	return res, nil
}

// The checks of one resource report at most maxIssues issues, stop
// descending below maxCheckDepth, and write at most maxPathKey bytes of a
// member's name into an issue's path: a hostile body of 4 MiB could
// otherwise make each of its elements an issue carrying a copy of a long
// path, an answer of hundreds of megabytes.
const (
	maxIssues     = 50
	maxCheckDepth = 64
	maxPathKey    = 64
)

// pathKey is key as an issue's path shows it: cut after maxPathKey bytes
// (at a character boundary), marked with "…".
func pathKey(key string) string {
	if len(key) <= maxPathKey {
		return key
	}
	cut := maxPathKey
	for cut > 0 && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return key[:cut] + "…"
}

// dropped adds to out the object members of raw that are missing from
// kept (the input decoded and re-encoded through the samply types). The
// resource's meta is exempt: servers add their own bookkeeping there.
func dropped(raw, kept any, path string, depth int, out *[]Issue) {
	if len(*out) >= maxIssues || depth > maxCheckDepth {
		return
	}
	root := depth == 0
	switch r := raw.(type) {
	case map[string]any:
		k, _ := kept.(map[string]any)
		keys := make([]string, 0, len(r))
		for key := range r {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		for _, key := range keys {
			if key == "resourceType" || (root && key == "meta") {
				continue
			}
			kv, ok := k[key]
			if !ok {
				reason := "element is not supported and would be lost"
				switch {
				case strings.HasPrefix(key, "_"):
					reason = "primitive extensions are not supported and would be lost"
				case key == "contained":
					reason = "contained resources are not supported and would be lost"
				}
				if len(*out) < maxIssues {
					*out = append(*out, Issue{Expression: path + "." + pathKey(key), Reason: reason, Code: models.IssueTypeNotSupported})
				}
				continue
			}
			dropped(r[key], kv, path+"."+pathKey(key), depth+1, out)
		}
	case []any:
		k, _ := kept.([]any)
		for i := range r {
			if i < len(k) {
				dropped(r[i], k[i], path+"["+strconv.Itoa(i)+"]", depth+1, out)
			}
		}
	}
}

func decodeAs(rt string, data []byte) (any, error) {
	switch rt {
	case "Patient":
		v, err := models.UnmarshalPatient(data)
		return &v, err
	case "Observation":
		v, err := models.UnmarshalObservation(data)
		return &v, err
	case "Encounter":
		v, err := models.UnmarshalEncounter(data)
		return &v, err
	case "ServiceRequest":
		v, err := models.UnmarshalServiceRequest(data)
		return &v, err
	case "Task":
		v, err := models.UnmarshalTask(data)
		return &v, err
	case "Bundle":
		v, err := models.UnmarshalBundle(data)
		return &v, err
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedResource, rt)
}

// ele1 checks the FHIR ele-1 rule on a decoded JSON tree (as produced by
// encoding/json into any), appending to out: every element must have a
// value or children, so empty strings, empty objects, empty arrays and
// nulls are reported. path is the FHIRPath of v (e.g. the resource type).
// The div of a narrative and the resource's own "resourceType" are not
// special-cased: they are never empty in valid FHIR either.
func ele1(v any, path string, out *[]Issue, depth int) {
	if len(*out) >= maxIssues {
		return
	}
	if depth > maxCheckDepth {
		*out = append(*out, Issue{Expression: path, Reason: fmt.Sprintf("nested deeper than %d levels", maxCheckDepth), Code: models.IssueTypeStructure})
		return
	}
	switch v := v.(type) {
	case nil:
		*out = append(*out, Issue{Expression: path, Reason: "null is not allowed (ele-1)", Code: models.IssueTypeStructure})
	case string:
		if strings.TrimSpace(v) == "" {
			*out = append(*out, Issue{Expression: path, Reason: "empty string is not allowed (ele-1)", Code: models.IssueTypeValue})
		}
	case []any:
		if len(v) == 0 {
			*out = append(*out, Issue{Expression: path, Reason: "empty array is not allowed (ele-1)", Code: models.IssueTypeStructure})
		}
		for i, e := range v {
			ele1(e, path+"["+strconv.Itoa(i)+"]", out, depth+1)
		}
	case map[string]any:
		if len(v) == 0 {
			*out = append(*out, Issue{Expression: path, Reason: "empty object is not allowed (ele-1)", Code: models.IssueTypeStructure})
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if k == "resourceType" {
				continue
			}
			ele1(v[k], path+"."+pathKey(k), out, depth+1)
		}
	}
}
