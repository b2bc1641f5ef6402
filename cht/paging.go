package cht

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// page is one page of a cht-datasource listing (CHT 4.11+).
type page[T any] struct {
	Data []*T `json:"data"`
	// Cursor fetches the next page; "" on the last page (CHT sends null).
	Cursor string `json:"cursor"`
}

// ListOptions selects a page of a listing.
type ListOptions struct {
	// Type is the contact type id to list, e.g. "person", "clinic" or a
	// configured contact_type. Listings need Type or IDs.
	Type string
	// IDs lists documents by uuid instead (GET /api/v1/contact, which
	// cht-core added after its 5.2.0 release; servers without the route
	// give an error matching [ErrUnsupported]): the page holds those that
	// exist and are of the listed kind, in the given order.
	IDs []string
	// Limit is the page size; 0 means CHT's default of 100.
	Limit int
	// Cursor continues from a previous page's Cursor; "" starts at the
	// beginning.
	Cursor string
}

// GetOptions modifies single-document reads.
type GetOptions struct {
	// WithLineage returns the document hydrated: parents (and for reports
	// contact, patient and place) as full documents.
	WithLineage bool
}

func (o *GetOptions) lineage() bool { return o != nil && o.WithLineage }

func listPage[T any](ctx context.Context, c *Client, path string, opts ListOptions) (*page[T], error) {
	if opts.Type == "" && len(opts.IDs) == 0 {
		return nil, fmt.Errorf("cht: list %s: ListOptions.Type or IDs is required", path)
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("cht: list %s: negative limit", path)
	}
	q := url.Values{}
	if len(opts.IDs) > 0 {
		q.Set("ids", strings.Join(opts.IDs, ","))
	} else {
		q.Set("type", opts.Type)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	var p page[T]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, retry: true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// listAll follows cursors; see ContactsService.All.
func listAll[T any](ctx context.Context, fetch func(context.Context, ListOptions) (*page[T], error), opts ListOptions) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		o := opts // the caller's options are never modified
		seen := map[string]bool{}
		for {
			p, err := fetch(ctx, o)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, v := range p.Data {
				if !yield(v, nil) {
					return
				}
			}
			if p.Cursor == "" {
				return
			}
			if seen[p.Cursor] {
				yield(nil, fmt.Errorf("cht: listing cursor %q repeated", p.Cursor))
				return
			}
			seen[p.Cursor] = true
			o.Cursor = p.Cursor
		}
	}
}
