package cht

import (
	"context"
	"fmt"
	"iter"
)

// PlacesService accesses place contacts (facilities, areas, households).
type PlacesService service

// Get fetches a place by uuid with GET /api/v1/place/<uuid> (CHT 4.10+),
// falling back to hydrate (WithLineage) or the raw document on older
// servers. A missing document, or a person, is an error matching
// [ErrNotFound].
func (s *PlacesService) Get(ctx context.Context, id string, opts *GetOptions) (*Contact, error) {
	c, err := getContact(ctx, s.client, featurePlaceGet, "/api/v1/place/", id, opts)
	if err != nil {
		return nil, fmt.Errorf("cht: get place %q: %w", id, err)
	}
	if c.Type == "person" {
		return nil, fmt.Errorf("cht: get place %q: %w (type person)", id, ErrNotFound)
	}
	return c, nil
}

// list fetches one page of places of opts.Type (CHT 4.12+).
func (s *PlacesService) list(ctx context.Context, opts ListOptions) (*page[Contact], error) {
	if err := s.client.require(ctx, featurePlaceList); err != nil {
		return nil, fmt.Errorf("cht: list places: %w", err)
	}
	p, err := listPage[Contact](ctx, s.client, "/api/v1/place", opts)
	if err != nil {
		return nil, fmt.Errorf("cht: list places: %w", err)
	}
	return p, nil
}

// All iterates over all places of opts.Type, following cursors. On error
// it yields (nil, err) once and stops.
func (s *PlacesService) All(ctx context.Context, opts ListOptions) iter.Seq2[*Contact, error] {
	return listAll(ctx, s.list, opts)
}

// Create creates a place of type p.Type (a legacy type or "contact" with
// ContactType, or on 5.2+ any configured type id) under p.Parent.ID (omit
// for a top-level place), with primary contact p.Contact.ID if set. It
// uses POST /api/v1/place on CHT 5.2+ and the legacy POST /api/v1/places
// otherwise. Create is not retried on server errors.
func (s *PlacesService) Create(ctx context.Context, p *Contact) (*CreateResult, error) {
	if p == nil || p.Name == "" || p.TypeID() == "" {
		return nil, fmt.Errorf("cht: create place: name and type are required")
	}
	v2, err := s.client.supports(ctx, featureCreateV2)
	if err != nil {
		return nil, fmt.Errorf("cht: create place: %w", err)
	}
	body, err := createBody(p, v2, "parent")
	if err != nil {
		return nil, fmt.Errorf("cht: create place: %w", err)
	}
	path := "/api/v1/places"
	if v2 {
		path = "/api/v1/place"
	}
	res, err := s.client.create(ctx, path, body, v2)
	if err != nil {
		return nil, fmt.Errorf("cht: create place: %w", err)
	}
	return res, nil
}
