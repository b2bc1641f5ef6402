package tocht

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// writtenTypes are the resource types the bridge writes to CHT from a
// Bundle (an Encounter with its Observations).
var writtenTypes = []string{"Patient", "ServiceRequest", "Task", "Observation", "Encounter"}

// contextTypes are the resource types a Bundle may carry as the context of
// the resources the bridge writes: who took part and where (OpenMRS's
// Encounter.participant and Encounter.location, a Task's owner and
// location, a request's requester refer to them, and an EMR sends them in
// the same Bundle). They hold no data of a CHT report or person, so they
// are acknowledged (200) without being written; the resources that refer
// to them are written as without them. Every other type (Condition,
// MedicationRequest, Immunization, DiagnosticReport, ...) carries clinical
// data the bridge cannot write, and is refused rather than dropped.
var contextTypes = []string{"Practitioner", "PractitionerRole", "Organization", "Location"}

// contextResource is the part of a context resource (see contextTypes)
// the bridge reads: nothing of it is written.
type contextResource struct {
	ResourceType string              `json:"resourceType"`
	ID           *string             `json:"id,omitempty"`
	Meta         *models.Meta        `json:"meta,omitempty"`
	Identifier   []models.Identifier `json:"identifier,omitempty"`
}

// parsedEntries are the entries of a Bundle as parseEntries read them.
type parsedEntries struct {
	// res is each entry's resource (*models.Patient, ..., or a
	// *contextResource), nil for an entry refused.
	res []any
	// errs is why each entry is refused (an *Error of status 400 or 405,
	// whose issues name the entry), nil for one that is not.
	errs []error
	// failed counts the entries refused; truncated is set when parsing
	// stopped after maxBundleIssues of them.
	failed    int
	truncated bool
}

// refusal is the 400 refusing the whole Bundle for the entries refused, nil
// when none is: any in a transaction or collection, which is written whole
// or not at all; in a batch, whose entries are processed independently
// (R4 http.html#transaction), only when more than maxBundleIssues entries
// are refused, so that the answer stays small.
func (pe *parsedEntries) refusal(batch bool) error {
	if pe.failed == 0 || (batch && !pe.truncated) {
		return nil
	}
	var issues []fhir.Issue
	for _, err := range pe.errs {
		var ire *fhir.InvalidResourceError
		if errors.As(err, &ire) {
			issues = append(issues, ire.Issues...)
		}
	}
	if batch {
		issues = append(issues, fhir.Issue{Expression: "Bundle.entry", Code: models.IssueTypeTooCostly, Reason: fmt.Sprintf(
			"more than %d entries are refused: the batch is refused whole", maxBundleIssues)})
	}
	return &Error{Status: http.StatusBadRequest, Err: &fhir.InvalidResourceError{ResourceType: "Bundle", Issues: issues}}
}

// parseEntries checks and decodes every entry's request and resource. An
// entry the bridge cannot handle is refused on its own (see parseEntry);
// the caller refuses the whole Bundle for it when it is not a batch.
func parseEntries(bundle *models.Bundle) *parsedEntries {
	pe := &parsedEntries{res: make([]any, len(bundle.Entry)), errs: make([]error, len(bundle.Entry))}
	for i, e := range bundle.Entry {
		res, err := parseEntry(e, i)
		if err != nil {
			if pe.failed >= maxBundleIssues {
				pe.truncated = true // one more than the answer names
				break
			}
			pe.errs[i] = err
			pe.failed++
			continue
		}
		pe.res[i] = res
	}
	return pe
}

// entryError refuses entry i with status, the issue at element (below
// Bundle.entry[i]) saying reason.
func entryError(status, i int, element, reason string, code models.IssueType) error {
	return &Error{Status: status, Err: &fhir.InvalidResourceError{ResourceType: "Bundle", Issues: []fhir.Issue{{
		Expression: "Bundle.entry[" + strconv.Itoa(i) + "]." + element, Reason: reason, Code: code}}}}
}

// parseEntry checks and decodes entry i. The request comes first: an
// entry whose method the bridge does not serve is refused 405 naming the
// method, whether or not it carries a resource (a DELETE carries none).
// A POST or PUT entry must carry a resource (400 naming it), of a type the
// bridge writes (decoded by fhir.ParseResource) or of a context type (see
// contextTypes); any other type is refused 400. A PUT's url must name the
// resource (<type>/<id>, whose id becomes the resource's), or, for a
// Patient, be a conditional update by identifier (see conditionalPatient).
func parseEntry(e models.BundleEntry, i int) (res any, err error) {
	if e.Request != nil {
		switch m := e.Request.Method; m {
		case models.HTTPVerbPOST, models.HTTPVerbPUT:
		default:
			why := "the bridge only writes: send POST or PUT"
			switch m {
			case models.HTTPVerbDELETE:
				why = "the bridge does not delete CHT data (delete it in CHT): send POST or PUT"
			case models.HTTPVerbGET, models.HTTPVerbHEAD:
				why = "the bridge does not read CHT data back: send POST or PUT"
			case models.HTTPVerbPATCH:
				why = "send the whole resource with POST or PUT"
			}
			return nil, entryError(http.StatusMethodNotAllowed, i, "request.method",
				fmt.Sprintf("method %s is not supported: %s", m.Code(), why), models.IssueTypeNotSupported)
		}
		for _, c := range []struct {
			name string
			v    *string
		}{{"ifMatch", e.Request.IfMatch}, {"ifNoneMatch", e.Request.IfNoneMatch}, {"ifModifiedSince", e.Request.IfModifiedSince}} {
			if c.v != nil {
				return nil, entryError(http.StatusBadRequest, i, "request."+c.name, noVersions, models.IssueTypeNotSupported)
			}
		}
	}
	if len(e.Resource) == 0 {
		return nil, entryError(http.StatusBadRequest, i, "resource",
			"required element is missing: a POST or PUT entry (or one without request) carries the resource to write", models.IssueTypeRequired)
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(e.Resource, &head) == nil && slices.Contains(contextTypes, head.ResourceType) {
		return parseContext(e, i, head.ResourceType)
	}
	res, err = fhir.ParseResource(e.Resource)
	if errors.Is(err, fhir.ErrUnsupportedResource) {
		return nil, entryError(http.StatusBadRequest, i, "resource", fmt.Sprintf(
			"%s is not accepted: its data cannot be written to CHT, and is not dropped silently (the bridge writes %s, "+
				"and acknowledges %s as context without writing them)",
			quote(head.ResourceType), strings.Join(writtenTypes, ", "), strings.Join(contextTypes, ", ")), models.IssueTypeNotSupported)
	}
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Err: &fhir.InvalidResourceError{ResourceType: "Bundle", Issues: entryIssues(err, i)}}
	}
	rt := typeOf(res)
	if !slices.Contains(writtenTypes, rt) {
		return nil, entryError(http.StatusBadRequest, i, "resource", rt+" is not accepted in a Bundle", models.IssueTypeNotSupported)
	}
	if e.Request == nil {
		return res, nil
	}
	u := e.Request.Url
	if e.Request.Method == models.HTTPVerbPOST {
		// A create's url is the resource type (R4 bundle.html
		// Bundle.entry.request.url, http.html#create), relative to the
		// base or absolute.
		if strings.TrimSuffix(u, "/") != rt && !strings.HasSuffix(strings.TrimSuffix(u, "/"), "/"+rt) {
			return nil, entryError(http.StatusBadRequest, i, "request.url",
				fmt.Sprintf("POST %s: want %s, the type of the entry's resource", quote(u), rt), models.IssueTypeInvalid)
		}
		return res, nil
	}
	if p, ok := res.(*models.Patient); ok && strings.Contains(u, "?") {
		if reason := conditionalPatient(u, p); reason != "" {
			return nil, entryError(http.StatusBadRequest, i, "request.url", fmt.Sprintf("PUT %s: %s", quote(u), reason), models.IssueTypeInvalid)
		}
		return res, nil
	}
	id, ok := literalID(u, rt)
	if !ok {
		reason := fmt.Sprintf("PUT %s: want %s/<id>", quote(u), rt)
		if strings.Contains(u, "?") {
			reason += " (a conditional update is accepted for a Patient only, by identifier: Patient?identifier=<system>|<value>)"
		}
		return nil, entryError(http.StatusBadRequest, i, "request.url", reason, models.IssueTypeInvalid)
	}
	if err := checkID(id); err != nil {
		return nil, entryError(http.StatusBadRequest, i, "request.url", fmt.Sprintf("PUT %s: %v", quote(u), err), models.IssueTypeValue)
	}
	if err := setID(res, id); err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Err: &fhir.InvalidResourceError{ResourceType: "Bundle", Issues: entryIssues(err, i)}}
	}
	return res, nil
}

// parseContext decodes the context resource (see contextTypes) of entry
// i, of type rt. Its content is not checked beyond what the bridge reads
// (checkInput has checked its strings and ids): it is not written. A PUT
// must name a resource of its type (<type>/<id>, or a conditional update
// <type>?..., which the bridge does not evaluate since it writes nothing).
func parseContext(e models.BundleEntry, i int, rt string) (any, error) {
	var c contextResource
	if err := json.Unmarshal(e.Resource, &c); err != nil {
		return nil, entryError(http.StatusBadRequest, i, "resource", fmt.Sprintf("%s: %v", rt, err), models.IssueTypeStructure)
	}
	if e.Request == nil || e.Request.Method != models.HTTPVerbPUT {
		return &c, nil
	}
	u := e.Request.Url
	path, _, conditional := strings.Cut(u, "?")
	if conditional && (path == rt || strings.HasSuffix(path, "/"+rt)) {
		return &c, nil
	}
	id, ok := literalID(u, rt)
	if !ok {
		return nil, entryError(http.StatusBadRequest, i, "request.url", fmt.Sprintf("PUT %s: want %s/<id>", quote(u), rt), models.IssueTypeInvalid)
	}
	if err := checkID(id); err != nil {
		return nil, entryError(http.StatusBadRequest, i, "request.url", fmt.Sprintf("PUT %s: %v", quote(u), err), models.IssueTypeValue)
	}
	if c.ID != nil && *c.ID != id {
		return nil, entryError(http.StatusBadRequest, i, "resource.id", fmt.Sprintf("id %s differs from the request url's %s", quote(*c.ID), quote(id)), models.IssueTypeInvalid)
	}
	return &c, nil
}

// conditionalPatient reads u, the url of a PUT of the Patient p that is a
// conditional update (FHIR R4 http.html#cond-update: PUT
// [base]/Patient?[search parameters]). The bridge accepts one search
// parameter, identifier, with one token (see patientQuery), which p must
// carry. The Patient is then keyed as when it is sent any other way (see
// planPatient), so that every send of it updates the same CHT person.
// reason says why u is refused ("" when it is not).
func conditionalPatient(u string, p *models.Patient) (reason string) {
	system, value, hasSystem, reason := patientQuery(u, "a conditional update")
	if reason != "" {
		return reason
	}
	for j := range p.Identifier {
		id := &p.Identifier[j]
		if id.Value == nil || *id.Value != value {
			continue
		}
		sys := ""
		if id.System != nil {
			sys = *id.System
		}
		if !hasSystem || sys == system {
			return ""
		}
	}
	want := value
	if hasSystem {
		want = system + "|" + value
	}
	return fmt.Sprintf("the Patient carries no identifier %s: a conditional update must name an identifier of the Patient it sends",
		quote(want))
}

// patientQuery reads u, a search of Patients by one identifier,
// [base]/Patient?identifier=<token>: <system>|<value>, |<value> for an
// identifier without system, or <value> of any system (R4
// search.html#token, with \| \, \$ \\ escaped). what names the use of u
// in reason, which says why u is refused ("" when it is not).
func patientQuery(u, what string) (system, value string, hasSystem bool, reason string) {
	path, query, _ := strings.Cut(u, "?")
	if path != "Patient" && !strings.HasSuffix(path, "/Patient") {
		return "", "", false, "want Patient/<id> or Patient?identifier=<system>|<value>"
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return "", "", false, "the search parameters do not parse: " + err.Error()
	}
	var other []string
	for k := range params {
		if k != "identifier" {
			other = append(other, quote(k))
		}
	}
	slices.Sort(other)
	switch {
	case len(other) > 0:
		return "", "", false, fmt.Sprintf("%s by search parameter %s is not supported: the bridge names a Patient by one identifier, "+
			"Patient?identifier=<system>|<value>", what, strings.Join(other, ", "))
	case len(params["identifier"]) != 1:
		return "", "", false, "name the Patient by one identifier, Patient?identifier=<system>|<value>"
	}
	system, value, hasSystem, ok := token(params["identifier"][0])
	switch {
	case !ok:
		return "", "", false, "the identifier lists several values: name one, <system>|<value>"
	case value == "":
		return "", "", false, "the identifier has no value: want <system>|<value>"
	}
	return system, value, hasSystem, ""
}

// token splits a token search value into system and value (R4
// search.html#token): hasSystem is false for a bare value, which matches
// any system. ok is false when the value lists several tokens (an
// unescaped comma). The escapes \| \, \$ and \\ are undone.
func token(s string) (system, value string, hasSystem, ok bool) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == ',':
			return "", "", false, false
		case c == '|' && len(parts) == 0:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(parts) == 0 {
		return "", cur.String(), false, true
	}
	return parts[0], cur.String(), true, true
}

// geolocationSuffix ends the value of the Systems.Observation identifier of
// the Location where a CHT report was filled in ("<report _id>/geolocation",
// as the converter writes it).
const geolocationSuffix = "/geolocation"

// planContext acknowledges a context resource (see contextTypes) without
// writing it, or, when it came from CHT, as a resource not written back.
// A Location that is where a report was filled in (one with the
// Systems.Observation identifier "<report _id>/geolocation") is no
// context: it carries the report's geolocation, which the bridge does not
// write from a Bundle, so it is refused (422) rather than dropped.
func (b *Bridge) planContext(c *contextResource) (*unit, error) {
	if b.fromCHT(c.Meta) {
		return skipped(c.ResourceType, c), nil
	}
	if c.ResourceType == "Location" {
		for j, id := range c.Identifier {
			if id.System != nil && *id.System == b.sys.Observation && id.Value != nil && strings.HasSuffix(*id.Value, geolocationSuffix) {
				return nil, &Error{Status: http.StatusUnprocessableEntity, Err: &fhir.InvalidResourceError{ResourceType: "Location",
					Issues: []fhir.Issue{{Expression: "Location.identifier[" + strconv.Itoa(j) + "]", Code: models.IssueTypeNotSupported,
						Reason: fmt.Sprintf("%s: the Location where a report was filled in carries the report's geolocation, "+
							"which the bridge does not write from a Bundle: leave it out", quote(*id.Value))}}}}
			}
		}
	}
	return &unit{resourceType: c.ResourceType, resource: c, skip: true, message: c.ResourceType +
		": context of the Bundle's resources (who took part, where), not written to CHT"}, nil
}
