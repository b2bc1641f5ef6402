package chttofhir

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// closeReferral adds the referral loop's Task and ServiceRequest updates to the transaction of a
// follow-up report (see fhir.Converter.CloseReferral).
func (b *Bridge) closeReferral(ctx context.Context, tx *fhir.Transaction, r *cht.Report) error {
	err := b.cfg.Converter.CloseReferral(ctx, tx, r, fhirReader{b})
	if _, ok := err.(*fhir.ConversionError); ok {
		return conversionFailure(err)
	}
	if err != nil {
		return &cht.OutboundError{StatusCode: http.StatusBadGateway, Err: err}
	}
	return nil
}

// fhirReader reads one resource from the FHIR server.
type fhirReader struct{ b *Bridge }

func (rd fhirReader) Read(ctx context.Context, typ, id string, out any) error {
	ctx = mediator.WithOrchestration(ctx, "FHIR read "+typ)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rd.b.cfg.FHIRURL+"/"+typ+"/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if rd.b.cfg.FHIRUsername != "" {
		req.SetBasicAuth(rd.b.cfg.FHIRUsername, rd.b.cfg.FHIRPassword)
	}
	resp, err := rd.b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFHIRResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/%s answered %d", typ, id, resp.StatusCode)
	}
	return json.Unmarshal(data, out)
}
