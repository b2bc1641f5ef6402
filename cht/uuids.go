package cht

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// IDPage is one page of document ids from the /uuid listings (CHT 4.18+).
type IDPage struct {
	Data []string `json:"data"`
	// Cursor fetches the next page; "" on the last page.
	Cursor string `json:"cursor"`
}

// UUIDQuery selects ids from [ContactsService.UUIDs] or
// [ReportsService.UUIDs].
type UUIDQuery struct {
	// Type is a contact type id (contacts only).
	Type string
	// Freetext is a search term of at least 3 characters without
	// whitespace, or "key:value" for an exact field match. Required for
	// reports.
	Freetext string
	// Form restricts reports to one form code.
	Form string
	// Limit is the page size; 0 means CHT's default of 10000.
	Limit int
	// Cursor continues from a previous page.
	Cursor string
}

func (c *Client) uuidPage(ctx context.Context, path string, q UUIDQuery) (*IDPage, error) {
	if err := c.require(ctx, FeatureContactGet); err != nil {
		return nil, err
	}
	v := url.Values{}
	for k, s := range map[string]string{"type": q.Type, "freetext": q.Freetext, "form": q.Form, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit < 0 {
		return nil, fmt.Errorf("negative limit")
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var p IDPage
	if _, err := c.do(ctx, request{method: http.MethodGet, path: path, query: v, retry: true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func allIDs(ctx context.Context, fetch func(context.Context, UUIDQuery) (*IDPage, error), q UUIDQuery) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		seen := map[string]bool{}
		for {
			p, err := fetch(ctx, q)
			if err != nil {
				yield("", err)
				return
			}
			for _, id := range p.Data {
				if !yield(id, nil) {
					return
				}
			}
			if p.Cursor == "" {
				return
			}
			if seen[p.Cursor] {
				yield("", fmt.Errorf("cht: listing cursor %q repeated", p.Cursor))
				return
			}
			seen[p.Cursor] = true
			q.Cursor = p.Cursor
		}
	}
}

// UUIDs fetches one page of contact ids by type or freetext with
// GET /api/v1/contact/uuid (CHT 4.18+).
func (s *ContactsService) UUIDs(ctx context.Context, q UUIDQuery) (*IDPage, error) {
	if q.Type == "" && q.Freetext == "" {
		return nil, fmt.Errorf("cht: contact uuids: Type or Freetext is required")
	}
	p, err := s.client.uuidPage(ctx, "/api/v1/contact/uuid", q)
	if err != nil {
		return nil, fmt.Errorf("cht: contact uuids: %w", err)
	}
	return p, nil
}

// AllUUIDs iterates over all contact ids matching q, following cursors.
// On error it yields ("", err) once and stops.
func (s *ContactsService) AllUUIDs(ctx context.Context, q UUIDQuery) iter.Seq2[string, error] {
	return allIDs(ctx, s.UUIDs, q)
}

// UUIDs fetches one page of report ids matching q.Freetext (and q.Form)
// with GET /api/v1/report/uuid (CHT 4.18+).
func (s *ReportsService) UUIDs(ctx context.Context, q UUIDQuery) (*IDPage, error) {
	if q.Freetext == "" {
		return nil, fmt.Errorf("cht: report uuids: Freetext is required")
	}
	p, err := s.client.uuidPage(ctx, "/api/v1/report/uuid", q)
	if err != nil {
		return nil, fmt.Errorf("cht: report uuids: %w", err)
	}
	return p, nil
}

// AllUUIDs iterates over all report ids matching q, following cursors.
// On error it yields ("", err) once and stops.
func (s *ReportsService) AllUUIDs(ctx context.Context, q UUIDQuery) iter.Seq2[string, error] {
	return allIDs(ctx, s.UUIDs, q)
}
