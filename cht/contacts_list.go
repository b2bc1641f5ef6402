package cht

import (
	"context"
	"fmt"
	"iter"
)

// list fetches a page of contacts of any type with GET /api/v1/contact
// (CHT 5.2+), by opts.Type or opts.IDs. Older servers answer 404
// ([ErrNotFound]).
func (s *ContactsService) list(ctx context.Context, opts ListOptions) (*page[Contact], error) {
	p, err := listPage[Contact](ctx, s.client, "/api/v1/contact", opts)
	if err != nil {
		return nil, fmt.Errorf("cht: list contacts: %w", err)
	}
	return p, nil
}

// All iterates over every contact of opts.Type, or those among opts.IDs
// in that order, with GET /api/v1/contact (CHT 5.2+), following cursors
// from opts.Cursor. Older servers answer 404 ([ErrNotFound]). On error it
// yields (nil, err) once and stops.
func (s *ContactsService) All(ctx context.Context, opts ListOptions) iter.Seq2[*Contact, error] {
	return listAll(ctx, s.list, opts)
}
