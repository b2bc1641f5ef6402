package tocht

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// maxFHIRResponse bounds how much of the FHIR server's answer is read.
const maxFHIRResponse = 4 << 20

// readPatient reads a referenced Patient, whose id is id, as
// FHIRURL/Patient/id (its current version). The reference itself is never
// the request's target: with the mediator's FHIR credentials, a reference
// such as <FHIRURL>/../admin?x=/Patient/1 would reach another path of the
// server (or of a proxy that normalises paths).
func (b *Bridge) readPatient(ctx context.Context, id, expr string) (*models.Patient, error) {
	target := b.cfg.FHIRURL + "/Patient/" + url.PathEscape(id)
	req, err := http.NewRequestWithContext(mediator.WithOrchestration(ctx, "FHIR read subject"), http.MethodGet, target, nil)
	if err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr, err.Error(), models.IssueTypeValue)}
	}
	req.Header.Set("Accept", FHIRContentType)
	if b.cfg.FHIRUsername != "" {
		req.SetBasicAuth(b.cfg.FHIRUsername, b.cfg.FHIRPassword)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, fhirFailure(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFHIRResponse+1))
	if err != nil {
		return nil, fhirFailure(err)
	}
	if len(data) > maxFHIRResponse {
		return nil, fhirFailure(fmt.Errorf("GET Patient/%s answered more than %d bytes", id, maxFHIRResponse))
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, &Error{Status: http.StatusUnprocessableEntity, Err: invalid(expr,
			fmt.Sprintf("Patient/%s not found on the FHIR server (%d)", id, resp.StatusCode), models.IssueTypeNotFound)}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, &Error{Status: http.StatusInternalServerError, Err: fmt.Errorf(
			"mediator configuration: GET Patient/%s answered %d, check %s", id, resp.StatusCode, fixFHIRCredentials)}
	case resp.StatusCode/100 != 2:
		return nil, fhirFailure(fmt.Errorf("GET Patient/%s answered %d", id, resp.StatusCode))
	}
	res, err := fhir.ParseResource(data)
	if err != nil {
		return nil, fhirFailure(fmt.Errorf("GET Patient/%s: %w", id, err))
	}
	p, ok := res.(*models.Patient)
	if !ok {
		return nil, fhirFailure(fmt.Errorf("GET Patient/%s answered a %s", id, typeOf(res)))
	}
	return p, nil
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
