package tocht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/search"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// maxFHIRResponse bounds how much of the FHIR server's answer is read.
const maxFHIRResponse = 4 << 20

// fhirGet GETs FHIRURL + path with query as the orchestration name, and
// returns the status and body of the answer. what names the request in
// errors ("GET Patient/123"). A failure to reach the FHIR server, or an
// answer larger than maxFHIRResponse, is a fhirFailure (502, or 504 on a
// timeout); a 401 or 403 is the mediator's configuration error (500). The
// caller maps the other statuses. An answer 2xx, 404 or 410 is kept for
// the rest of the request (lookups): the same GET is not sent again.
func (b *Bridge) fhirGet(ctx context.Context, orchestration, path string, query url.Values, what string) (int, []byte, error) {
	target := b.cfg.FHIRURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	seen := lookupsOf(ctx)
	if a, ok := seen.fhir[target]; ok {
		return a.status, a.body, nil
	}
	req, err := http.NewRequestWithContext(mediator.WithOrchestration(ctx, orchestration), http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, fhirFailure(err) // FHIRURL is checked by New, and path and query are escaped
	}
	req.Header.Set("Accept", "application/fhir+json")
	if b.cfg.FHIRUsername != "" {
		req.SetBasicAuth(b.cfg.FHIRUsername, b.cfg.FHIRPassword)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, nil, fhirFailure(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFHIRResponse+1))
	if err != nil {
		return 0, nil, fhirFailure(err)
	}
	if len(data) > maxFHIRResponse {
		return 0, nil, fhirFailure(fmt.Errorf("%s answered more than %d bytes", what, maxFHIRResponse))
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return 0, nil, &Error{Status: http.StatusInternalServerError, Err: fmt.Errorf(
			"mediator configuration: %s answered %d, check %s", what, resp.StatusCode, fixFHIRCredentials)}
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		seen.fhir[target] = fhirAnswer{resp.StatusCode, data}
	}
	return resp.StatusCode, data, nil
}

// readPatient reads a referenced Patient, whose id is id, as
// FHIRURL/Patient/id (its current version). The reference itself is never
// the request's target: with the mediator's FHIR credentials, a reference
// such as <FHIRURL>/../admin?x=/Patient/1 would reach another path of the
// server (or of a proxy that normalises paths). A Patient the server does
// not have is a 422 (see notOnServer).
func (b *Bridge) readPatient(ctx context.Context, id, expr string) (*models.Patient, error) {
	res, status, err := b.readResource(ctx, "FHIR read subject", "Patient", id)
	switch {
	case err != nil:
		return nil, err
	case res == nil:
		return nil, &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr,
			fmt.Sprintf("Patient/%s not found on the FHIR server (%d)", id, status), models.IssueTypeNotFound)}
	}
	return res.(*models.Patient), nil
}

// readResource reads <resourceType>/id from Config.FHIRURL as the
// orchestration name: nil, with the status, when the server does not have
// it (404, 410). Any other answer than a resource of that type is a
// fhirFailure.
func (b *Bridge) readResource(ctx context.Context, orchestration, resourceType, id string) (res any, status int, err error) {
	what := "GET " + resourceType + "/" + id
	status, data, err := b.fhirGet(ctx, orchestration, "/"+resourceType+"/"+url.PathEscape(id), nil, what)
	switch {
	case err != nil:
		return nil, 0, err
	case status == http.StatusNotFound || status == http.StatusGone:
		return nil, status, nil
	case status/100 != 2:
		return nil, status, fhirFailure(fmt.Errorf("%s answered %d", what, status))
	}
	if res, err = fhir.ParseResource(data); err != nil {
		return nil, status, fhirFailure(fmt.Errorf("%s: %w", what, err))
	}
	if got := typeOf(res); got != resourceType {
		return nil, status, fhirFailure(fmt.Errorf("%s answered a %s", what, got))
	}
	return res, status, nil
}

// notOnServer reports whether err is readPatient's 422 of a Patient the
// FHIR server does not have.
func notOnServer(err error) bool {
	var ire *fhir.InvalidResourceError
	return statusOf(err) == http.StatusUnprocessableEntity && errors.As(err, &ire) &&
		len(ire.Issues) == 1 && ire.Issues[0].Code == models.IssueTypeNotFound
}

// searchPatient finds the Patient carrying the identifier ident on the
// FHIR server: GET FHIRURL/Patient?identifier=<system>|<value> (<value>,
// of any system, for an identifier without system; R4
// search.html#token). n is the number of Patients found, 2 standing for
// "more than one", and p the one found when n is 1. Only an entry that
// carries the identifier counts: a server that ignored the parameter does
// not name a patient. A page of one match with a next link counts as
// several, since the next pages may hold more.
func (b *Bridge) searchPatient(ctx context.Context, ident *models.Identifier) (p *models.Patient, n int, err error) {
	// An identifier without a system keys the person of an identifier
	// without one, or of the external_id system (identifierKey): search
	// for those only (|value is "no system", R4 search.html#token), not
	// for the value in any system.
	value := search.Escape(*ident.Value)
	token := "|" + value
	if ident.System != nil && *ident.System != "" {
		token = search.Escape(*ident.System) + "|" + value
	} else if ext := b.sys.ExternalID; ext != "" {
		token += "," + search.Escape(ext) + "|" + value
	}
	what := "GET Patient?identifier=" + token
	status, data, err := b.fhirGet(ctx, "FHIR search subject by identifier", "/Patient",
		url.Values{"identifier": {token}, "_count": {"2"}}, what)
	if err != nil {
		return nil, 0, err
	}
	if status/100 != 2 {
		return nil, 0, fhirFailure(fmt.Errorf("%s answered %d", what, status))
	}
	p, n, err = matchPatients(data, ident, b.sys.ExternalID)
	if err != nil {
		return nil, 0, fhirFailure(fmt.Errorf("%s: %w", what, err))
	}
	return p, n, nil
}

// patientSearch is what searchPatient reads of a page of Patients.
type patientSearch struct {
	ResourceType string `json:"resourceType"`
	Link         []struct {
		Relation string `json:"relation"`
	} `json:"link"`
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
		Search   *struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

// matchPatients reads the FHIR server's answer data to searchPatient's
// search: n is the number of its Patients that carry ident (extSys is
// the external_id system), 2 standing for "more than one", and p the one
// found when n is 1. An answer that is no Bundle, or holds a resource
// that does not parse, is an error.
func matchPatients(data []byte, ident *models.Identifier, extSys string) (p *models.Patient, n int, err error) {
	var bundle patientSearch
	if err := json.Unmarshal(data, &bundle); err != nil {
		return nil, 0, fmt.Errorf("did not answer a searchset Bundle: %w", err)
	}
	if bundle.ResourceType != "Bundle" {
		return nil, 0, fmt.Errorf("did not answer a searchset Bundle: resourceType %q", bundle.ResourceType)
	}
	for _, e := range bundle.Entry {
		if e.Search != nil && e.Search.Mode != "" && e.Search.Mode != "match" {
			continue // an included resource, or an OperationOutcome
		}
		if len(e.Resource) == 0 {
			continue
		}
		res, err := fhir.ParseResource(e.Resource)
		if err != nil {
			return nil, 0, err
		}
		if q, ok := res.(*models.Patient); ok && carries(q, ident, extSys) {
			p, n = q, n+1
		}
	}
	if n == 1 {
		for _, l := range bundle.Link {
			if l.Relation == "next" {
				n = 2
			}
		}
	}
	if n != 1 {
		return nil, min(n, 2), nil
	}
	return p, 1, nil
}

// carries reports whether the Patient p has the identifier ident: the
// same system and value, or, for ident without a system, the value
// without a system or with the external_id system (extSys), as
// identifierKey keys them alike.
func carries(p *models.Patient, ident *models.Identifier, extSys string) bool {
	for _, i := range p.Identifier {
		if i.Value == nil || *i.Value != *ident.Value {
			continue
		}
		sys := ""
		if i.System != nil {
			sys = *i.System
		}
		if ident.System == nil || *ident.System == "" {
			if sys == "" || sys == extSys {
				return true
			}
			continue
		}
		if sys == *ident.System {
			return true
		}
	}
	return false
}

// fhirFailure wraps a failed read from the FHIR server: the sender should
// retry.
func fhirFailure(err error) error {
	status := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	return &Error{Status: status, Err: fmt.Errorf("fhir server: %w", err)}
}
