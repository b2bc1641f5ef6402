package fhir

import (
	"encoding/json"
	"errors"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Transaction is a FHIR transaction Bundle under construction, holding typed
// samply resources. [Transaction.MarshalJSON] (or json.Marshal) writes its
// Bundle JSON.
type Transaction struct {
	Entries []Entry
	// Warnings lists the values of lenient fields (see [FieldMapping] and
	// [ContactsMapping]) that could not be converted and were left out.
	// They are not part of the Bundle; log them and report them with the
	// transaction (for example in the OpenHIM transaction).
	Warnings []*ConversionError

	// direct are Observations written straight to JSON by the encoder
	// (see Converter.reportTransaction; never set in a Transaction a
	// Converter method returns).
	direct []*directObs
	// st, when set, is the state this transaction is part of (a direct
	// path's; see release).
	st *planState
}

// release gives the memory of a transaction of a direct path
// (reportTransaction, contactTransaction) back for the next conversion,
// once it is written and nothing reads it or its entries any more (a
// Warnings slice read before stays valid). It does nothing for other
// transactions.
func (t *Transaction) release() {
	if st := t.st; st != nil {
		t.st = nil
		st.release()
	}
}

// Entry is one transaction entry. Resource is a pointer to a samply resource
// (*models.Patient, *models.Observation, ...).
type Entry struct {
	FullURL  string // "urn:uuid:<uuid>"
	Resource any
	Request  models.BundleEntryRequest
}

// MarshalJSON encodes the transaction as a FHIR Bundle without going
// through encoding/json's reflection (byte-for-byte the same as
// encoding/json would write the samply Bundle).
func (t Transaction) MarshalJSON() ([]byte, error) { return appendJSON(nil, &t) }

// Len returns the number of entries.
func (t *Transaction) Len() int {
	n := len(t.Entries)
	for _, ob := range t.direct {
		n += len(ob.kept)
	}
	return n
}

func (e *encoder) transaction(t *Transaction) {
	f := e.begin()
	e.strv(f, `"type":`, "transaction")
	if t.Len() > 0 {
		e.key(f, `"entry":`)
		e.b = append(e.b, '[')
		comma := false
		d := t.direct
		for i := range t.Entries {
			for len(d) > 0 && d[0].at <= i {
				e.observations(d[0], &comma)
				d = d[1:]
			}
			if comma {
				e.b = append(e.b, ',')
			}
			comma = true
			e.entry(&t.Entries[i])
			if e.err != nil {
				return
			}
		}
		for _, ob := range d {
			e.observations(ob, &comma)
		}
		e.b = append(e.b, ']')
	}
	e.resourceType(f, "Bundle")
}

// entry writes one transaction entry; a resource the fast path does not
// handle is encoded with encoding/json.
func (e *encoder) entry(en *Entry) {
	if d, ok := en.Resource.(*directRes); ok {
		e.directEntry(en.FullURL, d)
		return
	}
	ef := e.begin()
	e.strv(ef, `"fullUrl":`, en.FullURL)
	e.key(ef, `"resource":`)
	if err := e.resource(en.Resource); err != nil {
		raw, merr := json.Marshal(en.Resource)
		if merr != nil {
			e.fail(merr)
			return
		}
		if len(raw) == 0 || string(raw) == "null" {
			e.fail(errors.New("entry has no resource"))
			return
		}
		e.b = append(e.b, raw...)
	}
	rq := en.Request
	e.request(ef, &rq)
	e.end()
}

// entry makes the transaction entry for a resource of type rt made from the
// CHT document chtID, with identifier system|value as its business key.
func (c *Converter) entry(x *refs, rt, chtID string, path string, resource any, system, value string) Entry {
	var urn string
	if path == "" {
		var url string
		urn, url = x.addURL(rt, chtID)
		if c.cfg.Strategy == WritePut {
			return Entry{FullURL: urn, Resource: resource,
				Request: models.BundleEntryRequest{Method: models.HTTPVerbPUT, Url: url}}
		}
	} else {
		// "urn:uuid:<id>" and "<rt>/<id>" share one allocation.
		u := c.uuid(rt, chtID, path)
		var tmp [36]byte
		id := appendUUID(tmp[:0], u)
		var sb strings.Builder
		sb.Grow(9 + 36 + len(rt) + 1 + 36)
		sb.WriteString("urn:uuid:")
		sb.Write(id)
		sb.WriteString(rt)
		sb.WriteByte('/')
		sb.Write(id)
		s := sb.String()
		urn = s[:45]
		if c.cfg.Strategy == WritePut {
			return Entry{FullURL: urn, Resource: resource,
				Request: models.BundleEntryRequest{Method: models.HTTPVerbPUT, Url: s[45:]}}
		}
	}
	e := Entry{FullURL: urn, Resource: resource}
	switch c.cfg.Strategy {
	case WritePut:
		id := urn[len("urn:uuid:"):]
		e.Request = models.BundleEntryRequest{Method: models.HTTPVerbPUT, Url: rt + "/" + id}
	case WriteConditionalUpdate:
		e.Request = models.BundleEntryRequest{Method: models.HTTPVerbPUT, Url: rt + "?" + identifierQuery(system, value)}
	case WriteConditionalCreate:
		e.Request = models.BundleEntryRequest{Method: models.HTTPVerbPOST, Url: rt, IfNoneExist: ptr(identifierQuery(system, value))}
	}
	return e
}

// identifierQuery returns "identifier=<system>|<value>" with both parts
// token-escaped, then query-escaped (see appendTokenEscape).
func identifierQuery(system, value string) string {
	b := appendTokenEscape([]byte("identifier="), system)
	b = append(b, '|')
	return string(appendTokenEscape(b, value))
}
