package cht

import (
	"context"
	"fmt"
	"iter"
)

// list fetches a page of contacts by opts.Type or opts.IDs with
// GET /api/v1/contact (CHT 5.2+). Older servers list by Type only, with
// GET /api/v1/person (4.11+) for a person type and GET /api/v1/place
// (4.12+) for any other.
func (s *ContactsService) list(ctx context.Context, opts ListOptions) (*page[Contact], error) {
	v2, err := s.client.supports(ctx, featureCreateV2)
	if err != nil {
		return nil, fmt.Errorf("cht: list contacts: %w", err)
	}
	path := "/api/v1/contact"
	if !v2 && opts.Type != "" {
		person, err := s.isPersonType(ctx, opts.Type)
		if err != nil {
			return nil, fmt.Errorf("cht: list contacts: %w", err)
		}
		f, kind := featurePlaceList, "place"
		if person {
			f, kind = featurePersonList, "person"
		}
		if err := s.client.require(ctx, f); err != nil {
			return nil, fmt.Errorf("cht: list contacts: %w", err)
		}
		path = "/api/v1/" + kind
	}
	p, err := listPage[Contact](ctx, s.client, path, opts)
	if err != nil {
		return nil, fmt.Errorf("cht: list contacts: %w", err)
	}
	return p, nil
}

// All iterates over every contact of opts.Type, or those among opts.IDs
// in that order (CHT 5.2+), following cursors from opts.Cursor. On CHT
// before 5.2 it lists people (4.11+) or places (4.12+) of opts.Type, and
// an older server is an error matching [ErrUnsupported]. On error it
// yields (nil, err) once and stops. Each iteration starts again from
// opts.Cursor.
func (s *ContactsService) All(ctx context.Context, opts ListOptions) iter.Seq2[*Contact, error] {
	return listAll(ctx, s.list, opts)
}
