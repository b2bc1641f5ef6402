package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonscan"
)

// Transaction posts bundle, a transaction Bundle, to the base URL and checks
// the answer: the status must be 2xx and the body a transaction-response
// Bundle with one entry per entry of bundle, each with a 2xx status.
// Anything else is a *[ServerError] (Entry names the failed entry), so a
// caller never acknowledges data the server did not store.
//
// The answer is checked while it streams: a large answer (thousands of
// entries, or resources returned in full by a server that ignores
// "Prefer: return=minimal") is never cut short and mistaken for a failure.
// Network errors, 408, 429, 502, 503 and 504 are retried (see
// [ClientConfig].MaxRetries): the bundles of a [Converter] are idempotent, so
// make yours idempotent too (PUT with ids, conditional creates).
//
// One answer with fewer entries succeeds: HAPI FHIR's, when bundle holds
// conditional entries that repeat one another (a conditional update of the
// same URL, or a conditional create of the same ifNoneExist, with a
// fullUrl). HAPI discards each repeat, pointing references to it at the
// first entry of its kind, and leaves its answer out
// (BaseTransactionProcessor: consolidateDuplicateConditionals, then
// transaction removes the empty answer entries). A repeat counts only when
// its resource is that of the first entry, byte for byte, so every entry
// was applied when the answer's entries all succeeded and number those of
// bundle less its repeats; a repeat with other content was not written,
// and its answer stays a failure.
func (c *Client) Transaction(ctx context.Context, bundle []byte) error {
	want, repeats := countEntries(bundle)
	err := c.transaction(ctx, bundle, want)
	var se *ServerError
	if repeats > 0 && errors.As(err, &se) && se.answered == want-repeats {
		return nil
	}
	return err
}

// transaction is Transaction for a bundle of want entries (-1: unknown).
func (c *Client) transaction(ctx context.Context, bundle []byte, want int) error {
	return c.transactionDone(ctx, bundle, want, nil)
}

// transactionDone is transaction that calls done, when not nil, once
// nothing reads bundle any more (see sentBody).
func (c *Client) transactionDone(ctx context.Context, bundle []byte, want int, done func()) error {
	if bytes.Contains(bundle, ifMatchKey) {
		// A version-aware entry applied by an attempt whose answer was
		// lost fails the retry (409 or 412, its version having moved):
		// retried only when the server did not process it, as Create.
		ctx = context.WithValue(ctx, noRetryKey{}, true)
	}
	resp, err := c.call(ctx, http.MethodPost, "", nil, bundle, "return=minimal", done)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody))
		if err != nil {
			return fmt.Errorf("fhir: %s %s: HTTP %d: read answer: %w", http.MethodPost, c.base, resp.StatusCode, err)
		}
		return newServerError(http.MethodPost, c.base, resp, data)
	}
	if se := checkAnswer(resp.Body, want); se != nil {
		se.StatusCode, se.op = resp.StatusCode, http.MethodPost+" "+c.base
		return se
	}
	// Drain what follows the Bundle so the connection can be reused.
	drainAnswer(resp.Body, 4<<10)
	return nil
}

// ifMatchKey is the member of a version-aware entry's request. Unescaped
// quotes appear in an encoded bundle only around member names.
var ifMatchKey = []byte(`"ifMatch"`)

// drainAnswer reads and drops at most n bytes of r (nothing, usually:
// the answer was read to its end).
func drainAnswer(r io.Reader, n int) {
	p := answerBufs.Get().(*[]byte)
	defer answerBufs.Put(p)
	b := (*p)[:cap(*p)]
	if len(b) == 0 {
		b = make([]byte, 512)
	}
	for n > 0 {
		k, err := r.Read(b[:min(len(b), n)])
		n -= k
		if err != nil {
			return
		}
	}
}

// countEntries is the number of entries of a Bundle, -1 if it cannot be
// read (the answer's entry count is then not checked), and how many of
// them repeat an earlier conditional entry as HAPI FHIR tells them
// (BaseTransactionProcessor.consolidateDuplicateConditionals): a PUT with a
// fullUrl to a URL with search parameters, or a POST with a fullUrl other
// than its URL and an ifNoneExist, with a resource, whose method, URL and
// ifNoneExist are those of an earlier such entry. HAPI discards such a
// repeat unwritten, so it is counted only when its resource is the
// earlier entry's, byte for byte.
func countEntries(bundle []byte) (n, repeats int) {
	src := string(bundle)
	d := &scanner{jsonscan.New(src, false)}
	str := func(dst *string, depth int) { // a string, anything else skipped
		if d.Peek() == '"' {
			*dst = d.Str()
		} else {
			d.Skip(depth)
		}
	}
	var seen map[[3]string]string // the resource of the first of a kind
	d.Object(func(k string) {
		if k != "entry" {
			d.Skip(1)
			return
		}
		if d.Null() {
			return
		}
		d.Array(func() {
			n++
			if d.Peek() != '{' {
				d.Skip(2)
				return
			}
			var fullURL, resource string
			var req [3]string // method, url, ifNoneExist
			d.Object(func(k string) {
				switch k {
				case "fullUrl":
					str(&fullURL, 2)
				case "resource":
					start := d.Pos()
					d.Skip(2)
					resource = strings.TrimSpace(src[start:d.Pos()])
				case "request":
					if d.Peek() != '{' {
						d.Skip(2)
						return
					}
					d.Object(func(k string) {
						switch k {
						case "method":
							str(&req[0], 3)
						case "url":
							str(&req[1], 3)
						case "ifNoneExist":
							str(&req[2], 3)
						default:
							d.Skip(3)
						}
					})
				default:
					d.Skip(2)
				}
			})
			_, query, _ := strings.Cut(req[1], "?")
			conditional := fullURL != "" && resource != "" && resource != "null" && (req[0] == "PUT" && query != "" ||
				req[0] == "POST" && req[1] != "" && req[2] != "" && fullURL != req[1])
			if !conditional {
				return
			}
			if first, ok := seen[req]; ok {
				if first == resource {
					repeats++
				}
				return
			}
			if seen == nil {
				seen = map[[3]string]string{}
			}
			seen[req] = resource
		})
	})
	d.End()
	if d.Err() != nil {
		return -1, 0
	}
	return n, repeats
}

// checkTransactionAnswer reads a transaction-response Bundle from r token by
// token, keeping only the entries' statuses and the outcome of a failed
// entry, and reports the first problem (nil when every entry succeeded and
// their number is want, or want < 0).
func checkTransactionAnswer(r io.Reader, want int) *ServerError {
	fail := func(format string, args ...any) *ServerError {
		return &ServerError{Entry: -1, Reason: capText(fmt.Sprintf(format, args...), maxReason)}
	}
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return fail("answer is not a JSON object: %v", err)
	}
	var scratch json.RawMessage
	var rt, typ string
	entries := 0
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return fail("answer is not JSON: %v", err)
		}
		switch key {
		case "resourceType":
			err = dec.Decode(&rt)
		case "type":
			err = dec.Decode(&typ)
		case "entry":
			var se *ServerError
			entries, se, err = checkEntries(dec, &scratch)
			if se != nil {
				return se
			}
		default:
			err = skipValue(dec, &scratch)
		}
		if err != nil {
			return fail("answer is not a transaction-response Bundle: %v", err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fail("answer is not JSON: %v", err)
	}
	if rt != "Bundle" || typ != "transaction-response" {
		return fail("answer is a %s %s, want a transaction-response Bundle", orNone(rt), orNone(typ))
	}
	if want >= 0 && entries != want {
		se := fail("answer has %d entries, want %d", entries, want)
		se.answered = entries
		return se
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// checkEntries reads the entry array; it returns the first failed entry as
// a *ServerError.
func checkEntries(dec *json.Decoder, scratch *json.RawMessage) (int, *ServerError, error) {
	tok, err := dec.Token()
	if err != nil {
		return 0, nil, err
	}
	if tok == nil { // "entry": null
		return 0, nil, nil
	}
	if tok != json.Delim('[') {
		return 0, nil, fmt.Errorf("entry is not an array")
	}
	n := 0
	for dec.More() {
		if err := expectDelim(dec, '{'); err != nil {
			return n, nil, fmt.Errorf("entry %d: %w", n, err)
		}
		seen := false
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return n, nil, err
			}
			if key != "response" {
				if err := skipValue(dec, scratch); err != nil {
					return n, nil, err
				}
				continue
			}
			var resp struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			}
			if err := dec.Decode(&resp); err != nil {
				return n, nil, fmt.Errorf("entry %d: response: %w", n, err)
			}
			seen = true
			code, _, _ := strings.Cut(strings.TrimSpace(resp.Status), " ")
			if c, err := strconv.Atoi(code); err != nil || c < 200 || c > 299 {
				se := &ServerError{Entry: n, EntryStatus: c, Outcome: parseOutcome(resp.Outcome)}
				se.Reason = outcomeText(se.Outcome)
				if se.Reason == "" {
					se.Reason = capText(fmt.Sprintf("entry status %q", resp.Status), maxReason)
				}
				return n, se, nil
			}
		}
		if err := expectDelim(dec, '}'); err != nil {
			return n, nil, err
		}
		if !seen {
			return n, &ServerError{Entry: n, Reason: "entry has no response"}, nil
		}
		n++
	}
	return n, nil, expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// skipValue consumes one JSON value (a resource a server returns with each
// entry, for one) into scratch, whose memory it reuses: the decoder scans
// it byte by byte, many times faster than reading it token by token.
func skipValue(dec *json.Decoder, scratch *json.RawMessage) error {
	return dec.Decode(scratch)
}
