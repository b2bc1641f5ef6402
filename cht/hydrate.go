package cht

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// HydratedDoc is one document returned by [Client.Hydrate]: a contact
// with its full lineage, or a report with its hydrated contact, patient and
// place.
type HydratedDoc struct {
	ID  string
	Doc json.RawMessage
}

// Type returns the document's type member ("person", "contact",
// "data_record", ...), or "" if it has none.
func (d HydratedDoc) Type() string {
	dd, err := decodeDoc(string(d.Doc))
	if err != nil {
		return ""
	}
	return dd.docType()
}

// Contact decodes the document as a contact; see [Contact.UnmarshalJSON].
func (d HydratedDoc) Contact() (*Contact, error) {
	c, err := decodeContact(string(d.Doc))
	if err != nil {
		return c, fmt.Errorf("cht: hydrated doc %q: %w", d.ID, err)
	}
	return c, nil
}

// Report decodes the document as a report; see [Report.UnmarshalJSON].
func (d HydratedDoc) Report() (*Report, error) {
	r, err := decodeReport(string(d.Doc))
	if err != nil {
		return r, fmt.Errorf("cht: hydrated doc %q: %w", d.ID, err)
	}
	return r, nil
}

// HydrateResult is the outcome of [Client.Hydrate].
type HydrateResult struct {
	// Docs are the documents found, in request order.
	Docs []HydratedDoc
	// NotFound lists the requested ids CHT reported as not_found (missing
	// or deleted), in request order.
	NotFound []string
}

// hydrateEntry is one element of the hydrate response array.
type hydrateEntry struct {
	ID    string
	Doc   json.RawMessage
	Error string
}

// parseHydrate splits a hydrate response into its entries. The documents
// are checked but not decoded: that happens once, when they are used.
func parseHydrate(body []byte) ([]hydrateEntry, error) {
	d := &decoder{s: string(body)}
	var out []hydrateEntry
	for more := d.openArray(); more; more = d.next(']') {
		d.pushIdx(len(out))
		var e hydrateEntry
		for more := d.openObject(); more; more = d.next('}') {
			k := d.key()
			switch k {
			case "id", "error":
				if d.peek() != '"' {
					d.skip()
					break
				}
				if k == "id" {
					e.ID = d.str()
				} else {
					e.Error = d.str()
				}
			case "doc":
				start, end := d.span()
				if body[start] == '{' {
					e.Doc = body[start:end:end]
				}
			default:
				d.skip()
			}
		}
		out = append(out, e)
		d.pop()
	}
	d.end()
	if d.hard != nil {
		return nil, d.hard
	}
	return out, nil
}

// Hydrate fetches documents with their lineage via POST /api/v1/hydrate
// (CHT 3.9+, online users only), in batches of Config.HydrateBatchSize.
// Order is kept; ids CHT reports as not_found are returned in NotFound,
// not as an error. Hydrate only reads, so failed batches are retried.
func (c *Client) Hydrate(ctx context.Context, ids ...string) (*HydrateResult, error) {
	res := &HydrateResult{}
	for start := 0; start < len(ids); start += c.batch {
		batch := ids[start:min(start+c.batch, len(ids))]
		resp, err := c.do(ctx, request{
			method: http.MethodPost, path: "/api/v1/hydrate",
			body: map[string][]string{"doc_ids": batch}, retry: true,
		}, nil)
		if err != nil {
			return nil, fmt.Errorf("cht: hydrate: %w", err)
		}
		entries, err := parseHydrate(resp.body)
		if err != nil {
			return nil, fmt.Errorf("cht: hydrate: decode response: %w", err)
		}
		if len(entries) != len(batch) {
			return nil, fmt.Errorf("cht: hydrate: asked for %d ids, got %d entries", len(batch), len(entries))
		}
		for i, e := range entries {
			id := e.ID
			if id == "" {
				id = batch[i]
			}
			switch {
			case e.Error == "not_found":
				res.NotFound = append(res.NotFound, id)
			case e.Error != "":
				return nil, fmt.Errorf("cht: hydrate %q: %s", id, e.Error)
			case len(e.Doc) == 0:
				return nil, fmt.Errorf("cht: hydrate %q: entry has neither doc nor error", id)
			default:
				res.Docs = append(res.Docs, HydratedDoc{ID: id, Doc: e.Doc})
			}
		}
	}
	return res, nil
}

// hydrateOne hydrates a single id, returning ErrNotFound when missing.
func (c *Client) hydrateOne(ctx context.Context, id string) (HydratedDoc, error) {
	res, err := c.Hydrate(ctx, id)
	if err != nil {
		return HydratedDoc{}, err
	}
	if len(res.Docs) == 0 {
		return HydratedDoc{}, fmt.Errorf("cht: hydrate %q: %w", id, ErrNotFound)
	}
	return res.Docs[0], nil
}
