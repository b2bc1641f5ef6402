package cht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
)

// List fetches a page of contacts of any type with GET /api/v1/contact
// (CHT 5.2+), by opts.Type or opts.IDs. Older servers answer 404
// ([ErrNotFound]).
func (s *ContactsService) List(ctx context.Context, opts ListOptions) (*Page[Contact], error) {
	p, err := listPage[Contact](ctx, s.client, "/api/v1/contact", opts)
	if err != nil {
		return nil, fmt.Errorf("cht: list contacts: %w", err)
	}
	return p, nil
}

// All iterates over every page of [ContactsService.List].
func (s *ContactsService) All(ctx context.Context, opts ListOptions) iter.Seq2[*Contact, error] {
	return listAll(ctx, s.List, opts)
}

// List fetches a page of reports by opts.IDs with GET /api/v1/report
// (CHT 5.2+); ids that are missing or not reports are left out.
func (s *ReportsService) List(ctx context.Context, opts ListOptions) (*Page[Report], error) {
	if len(opts.IDs) == 0 {
		return nil, errors.New("cht: list reports: ListOptions.IDs is required")
	}
	p, err := listPage[Report](ctx, s.client, "/api/v1/report", opts)
	if err != nil {
		return nil, fmt.Errorf("cht: list reports: %w", err)
	}
	return p, nil
}

// ContactSummary is the compact form of a contact that POST
// /api/v1/contact/summary returns (CHT 5.2+).
type ContactSummary struct {
	ID          string   `json:"_id"`
	Rev         string   `json:"_rev"`
	Name        string   `json:"name,omitempty"` // the name, or the phone when there is none
	Phone       string   `json:"phone,omitempty"`
	Type        string   `json:"type"`
	ContactType string   `json:"contact_type,omitempty"`
	Contact     string   `json:"contact,omitempty"` // primary contact id of a place
	Lineage     []string `json:"lineage"`           // parent ids, nearest first
	DateOfDeath any      `json:"date_of_death,omitempty"`
	Muted       any      `json:"muted,omitempty"`
}

// ReportSummary is the compact form of a report that POST
// /api/v1/report/summary returns (CHT 5.2+).
type ReportSummary struct {
	ID           string          `json:"_id"`
	Rev          string          `json:"_rev"`
	Form         string          `json:"form"`
	From         string          `json:"from,omitempty"`
	Phone        string          `json:"phone,omitempty"`
	Read         json.RawMessage `json:"read,omitempty"`
	Valid        bool            `json:"valid"` // no errors stored on the report
	Verified     json.RawMessage `json:"verified,omitempty"`
	ReportedDate Millis          `json:"reported_date"`
	Contact      string          `json:"contact,omitempty"`
	Lineage      []string        `json:"lineage"`
	// Subject is {"type": "reference"|"name"|"unknown", "value", "name"}.
	Subject map[string]any `json:"subject"`
	CaseID  string         `json:"case_id,omitempty"`
}

// Summaries returns the summaries of the contacts among ids, in order,
// with POST /api/v1/contact/summary (CHT 5.2+).
func (s *ContactsService) Summaries(ctx context.Context, ids ...string) ([]ContactSummary, error) {
	var out []ContactSummary
	if err := summaries(ctx, s.client, "/api/v1/contact/summary", ids, &out); err != nil {
		return nil, fmt.Errorf("cht: contact summaries: %w", err)
	}
	return out, nil
}

// Summaries returns the summaries of the reports among ids, in order,
// with POST /api/v1/report/summary (CHT 5.2+).
func (s *ReportsService) Summaries(ctx context.Context, ids ...string) ([]ReportSummary, error) {
	var out []ReportSummary
	if err := summaries(ctx, s.client, "/api/v1/report/summary", ids, &out); err != nil {
		return nil, fmt.Errorf("cht: report summaries: %w", err)
	}
	return out, nil
}

func summaries(ctx context.Context, c *Client, path string, ids []string, out any) error {
	if len(ids) == 0 {
		return errors.New("no ids")
	}
	// A read: safe to retry although it is a POST.
	_, err := c.do(ctx, request{method: http.MethodPost, path: path, body: map[string]any{"ids": ids}, retry: true}, out)
	return err
}
