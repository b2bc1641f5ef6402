package cht

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// HydratedDoc is one document returned by [Client.Hydrate]: a contact
// with its full lineage, or a report with its hydrated contact, patient and
// place.
type HydratedDoc struct {
	ID  string
	Doc json.RawMessage
}

// Type returns the document's type member ("person", "contact",
// "data_record", ...), or "" if it has none or it is not a string. It
// reads the top level of the document only: a document malformed deeper
// in fails when it is decoded ([HydratedDoc.Contact], [HydratedDoc.Report]).
func (d HydratedDoc) Type() string {
	if t, ok := scanType(d.Doc); ok {
		return t
	}
	dd, err := decodeDoc(string(d.Doc))
	if err != nil {
		return ""
	}
	return dd.docType()
}

// Contact decodes the document as a contact; see [Contact.UnmarshalJSON].
func (d HydratedDoc) Contact() (*Contact, error) {
	c := new(Contact)
	if err := decodeContact(d.Doc, c); err != nil {
		return c, fmt.Errorf("cht: hydrated doc %q: %w", d.ID, err)
	}
	return c, nil
}

// Report decodes the document as a report; see [Report.UnmarshalJSON].
func (d HydratedDoc) Report() (*Report, error) {
	r := new(Report)
	if err := decodeReport(d.Doc, r); err != nil {
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
// The response (megabytes for a page) is scanned in place rather than
// copied to a string. No string that outlives the scan points into body:
// the ids and errors are copied (they are outside the documents, the only
// part of body its callers can modify, and need not keep body alive), or,
// for an entry's id equal to the one asked for (ids are the ids asked
// for, in order), that string is used.
func parseHydrate(body []byte, ids []string) ([]hydrateEntry, error) {
	d := &decoder{s: unsafe.String(unsafe.SliceData(body), len(body))}
	out := make([]hydrateEntry, 0, len(ids))
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
					if i := len(out); i < len(ids) && e.ID == ids[i] {
						e.ID = ids[i]
					} else {
						e.ID = strings.Clone(e.ID)
					}
				} else {
					e.Error = strings.Clone(d.str())
				}
			case "doc":
				// On a body that ends here, span records the error and
				// returns start == end == len(body).
				start, end := d.span()
				if start < end && body[start] == '{' {
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
		if err := c.hydrateBatch(ctx, ids[start:min(start+c.batch, len(ids))], res, len(ids)-start); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// hydrateBatch hydrates ids with one request and appends them to res;
// left (at least len(ids)) is the number of documents res may still get.
func (c *Client) hydrateBatch(ctx context.Context, ids []string, res *HydrateResult, left int) error {
	resp, err := c.do(ctx, request{
		method: http.MethodPost, path: hydratePath, url: c.hydrateURL,
		body: hydrateBody(ids), retry: true,
	}, nil)
	if err != nil {
		return fmt.Errorf("cht: hydrate: %w", err)
	}
	entries, err := parseHydrate(resp.body, ids)
	if err != nil {
		return fmt.Errorf("cht: hydrate: decode response: %w", err)
	}
	if len(entries) != len(ids) {
		return fmt.Errorf("cht: hydrate: asked for %d ids, got %d entries", len(ids), len(entries))
	}
	for i, e := range entries {
		id := e.ID
		if id == "" {
			id = ids[i]
		}
		switch {
		case e.Error == "not_found":
			res.NotFound = append(res.NotFound, id)
		case e.Error != "":
			return fmt.Errorf("cht: hydrate %q: %s", id, e.Error)
		case len(e.Doc) == 0:
			return fmt.Errorf("cht: hydrate %q: entry has neither doc nor error", id)
		default:
			if res.Docs == nil {
				res.Docs = make([]HydratedDoc, 0, left-i)
			}
			res.Docs = append(res.Docs, HydratedDoc{ID: id, Doc: e.Doc})
		}
	}
	return nil
}

// hydratePath is the path of CHT's hydrate API.
const hydratePath = "/api/v1/hydrate"

// hydrateBody returns the body of a hydrate request for ids: exactly what
// encoding/json makes of {"doc_ids": ids}.
func hydrateBody(ids []string) []byte {
	n := len(`{"doc_ids":[]}`)
	for _, id := range ids {
		n += len(id) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, `{"doc_ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		if plainJSON(id) {
			b = append(append(append(b, '"'), id...), '"')
			continue
		}
		q, _ := json.Marshal(id) // a string always encodes
		b = append(b, q...)
	}
	return append(b, "]}"...)
}

// plainJSON reports whether encoding/json writes s between quotes as it
// is: printable ASCII without '"', '\\' and the characters it escapes for
// HTML ('<', '>', '&').
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
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

// scanType finds the top-level "type" member of a JSON object in one pass
// over the bytes, without decoding the rest: hydrated reports are several
// KB of nested lineage. It is not sure (ok false) about escaped keys, keys
// such as "Type" that the decoder would not take for "type" but
// encoding/json would, a repeated "type", escaped or non-UTF-8 values and
// malformed JSON; the caller then decodes the document.
func scanType(b []byte) (typ string, ok bool) {
	seenType := false
	i := scanSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	i = scanSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return "", true
	}
	for {
		// Key.
		if i >= len(b) || b[i] != '"' {
			return "", false
		}
		end := bytes.IndexByte(b[i+1:], '"')
		if end < 0 {
			return "", false
		}
		key := b[i+1 : i+1+end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return "", false
		}
		i = scanSpace(b, i+2+end)
		if i >= len(b) || b[i] != ':' {
			return "", false
		}
		i = scanSpace(b, i+1)
		isType := string(key) == "type"
		if !isType && strings.EqualFold(string(key), "type") {
			return "", false
		}
		start := i
		var good bool
		if i, good = scanValue(b, i); !good {
			return "", false
		}
		if isType {
			if seenType {
				return "", false // a repeated "type": let the document decoder settle it
			}
			seenType = true
			v := b[start:i]
			switch {
			case len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 && utf8.Valid(v):
				typ = string(v[1 : len(v)-1])
			case len(v) > 0 && v[0] == '"':
				return "", false // escaped or invalid UTF-8: let the decoder settle it
			default:
				typ = "" // not a string: Type returns ""
			}
		}
		i = scanSpace(b, i)
		if i >= len(b) {
			return "", false
		}
		switch b[i] {
		case ',':
			i = scanSpace(b, i+1)
		case '}':
			if scanSpace(b, i+1) != len(b) {
				return "", false
			}
			return typ, true
		default:
			return "", false
		}
	}
}

func scanSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanValue returns the index after the JSON value at i. It checks the
// nesting of brackets and strings, not the grammar of literals; anything it
// accepts that is not JSON is rejected later by the document decoder.
func scanValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		var stack []byte
		for i < len(b) {
			switch c := b[i]; c {
			case '"':
				var ok bool
				if i, ok = scanString(b, i); !ok {
					return i, false
				}
				continue
			case '{', '[':
				stack = append(stack, c)
			case '}', ']':
				if len(stack) == 0 || (c == '}') != (stack[len(stack)-1] == '{') {
					return i, false
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return i, false
	default:
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			if b[i] == '"' || b[i] == '{' || b[i] == '[' || b[i] == ':' {
				return i, false
			}
			i++
		}
		return i, i > start
	}
}

// scanString returns the index after the string starting at i.
func scanString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(b), false
}
