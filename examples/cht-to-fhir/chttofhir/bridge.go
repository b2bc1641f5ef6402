// Package chttofhir is the CHT → FHIR mediator of the cht-to-fhir example:
// it receives CHT outbound pushes, fills in missing data with CHT's hydrate
// API, converts the document with a [fhir.Converter] and writes one FHIR
// transaction Bundle per document.
//
// It answers 2xx only after the FHIR server committed the transaction, so
// CHT retries every push whose data did not arrive; and because the
// converter's bundles are idempotent, a retried push creates no duplicates.
// Run inside a [mediator.Mediator], every call to CHT and to the FHIR server
// is recorded as an orchestration of the OpenHIM transaction.
package chttofhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// Paths served by [Bridge.Handler].
const (
	// OutboundPath receives CHT outbound pushes that carry the whole
	// document (mapping {"doc": "doc"}) or a reference to it
	// ({"id": "doc._id", "rev": "doc._rev"}).
	OutboundPath = "/cht/outbound"
	// EncounterPath receives the pre-mapped encounter payload of the
	// cht-interoperability outbound configuration (see fhir.EncounterPayload).
	EncounterPath = "/cht/encounter"
)

// DefaultTimeout is the deadline of one push. CHT gives up after 10 s.
const DefaultTimeout = 8 * time.Second

// maxFHIRResponse bounds how much of the FHIR server's answer is read.
const maxFHIRResponse = 8 << 20

// Config configures a Bridge.
type Config struct {
	// Converter converts CHT documents to FHIR. Required.
	Converter *fhir.Converter
	// FHIRURL is the FHIR base URL the transaction Bundles are posted to:
	// the FHIR server itself or an OpenHIM channel in front of it. Required.
	FHIRURL string
	// FHIRUsername and FHIRPassword, when set, authenticate to FHIRURL with
	// basic auth.
	FHIRUsername string
	FHIRPassword string
	// HTTPClient is used for the FHIR server; its transport is wrapped with
	// mediator.Transport so calls become orchestrations. Nil means a client
	// with a 30 s timeout.
	HTTPClient *http.Client
	// CHT, when set, hydrates documents that arrive without their lineage,
	// patient or place, and resolves pushes that only reference a document.
	CHT *cht.Client
	// SkipUnmappedForms answers 200 (with the reason) to reports whose form
	// has no mapping. By default they are answered 422 so that a missing
	// mapping is noticed instead of silently dropping data.
	SkipUnmappedForms bool
	// Timeout is the deadline of one push; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger receives one line per failed push; nil discards.
	Logger *slog.Logger
}

// Bridge converts CHT pushes to FHIR transactions. It is safe for
// concurrent use.
type Bridge struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger
}

// New returns a Bridge for cfg. It does no I/O.
func New(cfg Config) (*Bridge, error) {
	if cfg.Converter == nil {
		return nil, errors.New("chttofhir: Converter is required")
	}
	if cfg.FHIRURL == "" {
		return nil, errors.New("chttofhir: FHIRURL is required")
	}
	cfg.FHIRURL = strings.TrimRight(cfg.FHIRURL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	hc.Transport = mediator.Transport(hc.Transport)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bridge{cfg: cfg, http: hc, log: log}, nil
}

// Handler returns the bridge's routes: POST [OutboundPath] and POST
// [EncounterPath].
func (b *Bridge) Handler() (http.Handler, error) {
	var fetch func(context.Context, string) (json.RawMessage, error)
	if b.cfg.CHT != nil {
		hydrate := b.cfg.CHT.HydrateFetcher()
		fetch = func(ctx context.Context, id string) (json.RawMessage, error) {
			return hydrate(mediator.WithOrchestration(ctx, "CHT hydrate"), id)
		}
	}
	outbound, err := cht.NewOutboundHandler(cht.OutboundHandlerConfig{
		Handle:  b.HandlePush,
		Fetch:   fetch,
		Timeout: b.cfg.Timeout,
		Logger:  b.log,
	})
	if err != nil {
		return nil, fmt.Errorf("chttofhir: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+OutboundPath, outbound)
	mux.Handle("POST "+EncounterPath, mediator.HandlerFunc(b.serveEncounter))
	return mux, nil
}

// HandlePush converts one outbound push and writes it to the FHIR server. It
// returns nil only once the FHIR server committed the transaction.
func (b *Bridge) HandlePush(ctx context.Context, p *cht.OutboundPayload) error {
	tx, err := b.convert(ctx, p)
	if err != nil {
		if errors.Is(err, fhir.ErrUnmappedForm) && b.cfg.SkipUnmappedForms {
			b.log.InfoContext(ctx, "skipped push of an unmapped form", "doc", p.ID, "reason", err)
			return nil
		}
		return err
	}
	body, err := tx.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode transaction for %s: %w", p.ID, err)
	}
	if err := b.post(ctx, body, tx.Len()); err != nil {
		b.log.WarnContext(ctx, "push not written to FHIR; CHT will retry", "doc", p.ID, "err", err)
		return err
	}
	return nil
}

// convert turns the payload into a transaction, hydrating what is missing.
func (b *Bridge) convert(ctx context.Context, p *cht.OutboundPayload) (*fhir.Transaction, error) {
	if len(p.Doc) == 0 {
		return nil, &cht.OutboundError{StatusCode: http.StatusBadRequest,
			Err: errors.New("payload carries no document: map the push as {\"doc\": \"doc\"} or configure CHT access to resolve {\"id\": ...}")}
	}
	if p.DocType() == "data_record" {
		r, err := p.Report()
		if err != nil {
			return nil, &cht.OutboundError{StatusCode: http.StatusBadRequest, Err: err}
		}
		if needsHydration(r) && b.cfg.CHT != nil && r.ID != "" {
			if hr, err := b.hydrate(ctx, r.ID); err != nil {
				return nil, err
			} else if hr != nil {
				if r, err = hr.Report(); err != nil {
					return nil, err
				}
			}
		}
		tx, err := b.cfg.Converter.ReportBundle(r)
		if err != nil {
			return nil, conversionFailure(err)
		}
		if err := b.closeReferral(ctx, tx, r); err != nil {
			return nil, err
		}
		return tx, nil
	}
	c, err := p.Contact()
	if err != nil {
		return nil, &cht.OutboundError{StatusCode: http.StatusBadRequest, Err: err}
	}
	if c.Parent != nil && c.Parent.Doc == nil && b.cfg.CHT != nil && c.ID != "" {
		hr, err := b.hydrate(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		if hr != nil {
			if c, err = hr.Contact(); err != nil {
				return nil, err
			}
		}
	}
	tx, err := b.cfg.Converter.ContactBundle(c)
	if err != nil {
		return nil, conversionFailure(err)
	}
	return tx, nil
}

// needsHydration reports whether a report arrived without the documents the
// converter links to (patient, submitting CHW).
func needsHydration(r *cht.Report) bool {
	if r.Patient == nil {
		if _, _, ok := r.Subject(); ok {
			return true
		}
	}
	return r.Contact != nil && r.Contact.Name == "" && r.Contact.ID != ""
}

// hydrate fetches the hydrated document id; nil when CHT does not know it
// (the pushed copy is then converted as it is).
func (b *Bridge) hydrate(ctx context.Context, id string) (*cht.HydratedDoc, error) {
	res, err := b.cfg.CHT.Hydrate(mediator.WithOrchestration(ctx, "CHT hydrate"), id)
	if err != nil {
		return nil, fmt.Errorf("hydrate %s: %w", id, err)
	}
	if len(res.Docs) == 0 {
		return nil, nil
	}
	return &res.Docs[0], nil
}

// conversionFailure maps a conversion error to the status CHT logs: the data
// is wrong (or unmapped), so 422.
func conversionFailure(err error) error {
	return &cht.OutboundError{StatusCode: http.StatusUnprocessableEntity, Err: err}
}

// post sends one transaction Bundle of n entries (n < 0: unknown) and
// checks that the server applied every entry: a 200 whose entries are not all
// 2xx (a proxy or a server that does not apply transactions atomically) is a
// failure too, so CHT retries.
func (b *Bridge) post(ctx context.Context, bundle []byte, n int) error {
	ctx = mediator.WithOrchestration(ctx, "FHIR transaction")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.FHIRURL, bytes.NewReader(bundle))
	if err != nil {
		return fmt.Errorf("fhir transaction: %w", err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	if b.cfg.FHIRUsername != "" {
		req.SetBasicAuth(b.cfg.FHIRUsername, b.cfg.FHIRPassword)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return &cht.OutboundError{StatusCode: http.StatusBadGateway, Err: fmt.Errorf("fhir transaction: %w", err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFHIRResponse))
	if err != nil {
		return &cht.OutboundError{StatusCode: http.StatusBadGateway, Err: fmt.Errorf("fhir transaction: read answer: %w", err)}
	}
	if err := fhir.CheckTransactionResponse(resp.StatusCode, data, n); err != nil {
		return &cht.OutboundError{StatusCode: http.StatusBadGateway, Err: err}
	}
	return nil
}

// serveEncounter handles the cht-interoperability style payload.
func (b *Bridge) serveEncounter(r *mediator.Request) (*mediator.Result, error) {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		return nil, mediator.Errorf(http.StatusUnsupportedMediaType, "content type %q: send application/json", ct)
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, mediator.Errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes", tooBig.Limit)
		}
		return nil, mediator.Errorf(http.StatusBadRequest, "read body: %w", err)
	}
	bundle, err := b.cfg.Converter.PayloadBundleJSON(nil, payload)
	if err != nil {
		return nil, mediator.Errorf(http.StatusBadRequest, "%w", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), b.cfg.Timeout)
	defer cancel()
	if err := b.post(ctx, bundle, -1); err != nil {
		return nil, err
	}
	return mediator.JSONResult(http.StatusOK, map[string]string{"status": "written"})
}

func isJSON(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	return ct == "application/json" || ct == "application/fhir+json"
}
