package cht

import (
	"context"
	"fmt"
	"net/http"
)

// ReportsService reads reports.
type ReportsService service

// Get fetches a report by uuid. It uses GET /api/v1/report/<uuid> on CHT
// 4.18+ (with_lineage on 4.22+); otherwise hydrate (WithLineage, which
// adds the full contact, patient and place) or the raw document. A
// missing document, or one that is not a report, is an error matching
// [ErrNotFound].
func (s *ReportsService) Get(ctx context.Context, id string, opts *GetOptions) (*Report, error) {
	if id == "" {
		return nil, fmt.Errorf("cht: get report: empty id")
	}
	c := s.client
	f := featureReportGet
	if opts.lineage() {
		f = featureReportLineage
	}
	ok, err := c.supports(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("cht: get report %q: %w", id, err)
	}
	r := new(Report)
	switch {
	case ok:
		req := request{method: http.MethodGet, path: "/api/v1/report/" + escapeID(id), retry: true}
		if opts.lineage() {
			req.query = map[string][]string{"with_lineage": {"true"}}
		}
		_, err = c.do(ctx, req, r)
	case opts.lineage():
		var h HydratedDoc
		if h, err = c.hydrateOne(ctx, id); err == nil {
			r, err = h.Report()
		}
	default:
		err = c.Docs.Get(ctx, id, r)
	}
	if err != nil {
		return nil, fmt.Errorf("cht: get report %q: %w", id, err)
	}
	if r.Type != "data_record" {
		return nil, fmt.Errorf("cht: get report %q: %w: document is not a report (type %q)", id, ErrNotFound, r.Type)
	}
	return r, nil
}
