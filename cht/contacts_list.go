package cht

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
)

// list fetches a page of contacts by opts.Type or opts.IDs.
//
// By type it uses GET /api/v1/person?type= (4.11+) for a person type and
// GET /api/v1/place?type= (4.12+) for any other: every release since has
// them, while GET /api/v1/contact (contact.v1.getAll) is not in tag 5.2.0
// nor on branch 5.2.x (cht-core api/src/routing.js), though later builds
// report the same version.
//
// By ids it needs GET /api/v1/contact, so it is tried on 5.2+ only. A
// server without the route passes the request to its CouchDB proxy, which
// answers 404 "Database does not exist."; that answer is reported as
// [ErrUnsupported].
func (s *ContactsService) list(ctx context.Context, opts ListOptions) (*page[Contact], error) {
	if len(opts.IDs) > 0 {
		if err := s.client.require(ctx, featureCreateV2); err != nil {
			return nil, fmt.Errorf("cht: list contacts by ids: %w", err)
		}
		p, err := listPage[Contact](ctx, s.client, "/api/v1/contact", opts)
		if err != nil {
			if noRoute(err) {
				return nil, fmt.Errorf("cht: list contacts by ids: %w (GET /api/v1/contact: %w)", ErrUnsupported, err)
			}
			return nil, fmt.Errorf("cht: list contacts by ids: %w", err)
		}
		return p, nil
	}
	path := "/api/v1/contact" // only named in the error for no type
	if opts.Type != "" {
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

// noRoute reports whether err is the answer of CHT's CouchDB proxy to a
// path under /api that API has no route for (api/src/routing.js ends with
// the proxy; CouchDB treats "api" as a database name).
func noRoute(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound &&
		apiErr.Err == "not_found" && apiErr.Reason == "Database does not exist."
}

// All iterates over every contact of opts.Type, or those among opts.IDs
// in that order, following cursors from opts.Cursor. A person type is
// listed through GET /api/v1/person (CHT 4.11+), any other through GET
// /api/v1/place (4.12+); listing by ids needs GET /api/v1/contact, which
// cht-core added after 5.2.0. A server without the route gives an error
// matching [ErrUnsupported]. On error it yields (nil, err) once and
// stops. Each iteration starts again from opts.Cursor.
func (s *ContactsService) All(ctx context.Context, opts ListOptions) iter.Seq2[*Contact, error] {
	return listAll(ctx, s.list, opts)
}
