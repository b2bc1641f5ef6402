package fhirtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// prepared is a validated resource body ready to be stored.
type prepared struct {
	typ    string
	m      map[string]any
	idents []ident
	refs   []ref
	status string // the top-level status code, for the status search parameter
}

// prepare validates m as a resource of wantType ("" = any) and extracts its search keys.
func prepare(m map[string]any, wantType string, strict bool) (*prepared, *opError) {
	if err := checkResource(m, wantType, strict); err != nil {
		return nil, err
	}
	p := &prepared{typ: m["resourceType"].(string), m: m}
	if p.typ == "Subscription" {
		if err := checkSubscription(m); err != nil {
			return nil, err
		}
	}
	p.index()
	return p, nil
}

// index (re)computes the identifiers and references of p.m; call it after rewriting references.
func (p *prepared) index() {
	p.idents = p.idents[:0]
	p.refs = p.refs[:0]
	p.status, _ = p.m["status"].(string)
	if arr, ok := p.m["identifier"].([]any); ok {
		for _, e := range arr {
			o, _ := e.(map[string]any)
			sys, _ := o["system"].(string)
			val, _ := o["value"].(string)
			if val != "" {
				p.idents = append(p.idents, ident{system: sys, value: val})
			}
		}
	}
	refOf := func(field string) string {
		o, _ := p.m[field].(map[string]any)
		s, _ := o["reference"].(string)
		return normaliseReference(s)
	}
	if s := refOf("subject"); s != "" {
		p.refs = append(p.refs, ref{"subject", s})
		if strings.HasPrefix(s, "Patient/") {
			p.refs = append(p.refs, ref{"patient", s})
		}
	}
	for _, field := range []string{"patient", "beneficiary", "for"} {
		if s := refOf(field); strings.HasPrefix(s, "Patient/") || (field == "patient" && s != "") {
			p.refs = append(p.refs, ref{"patient", s})
		}
	}
	if s := refOf("encounter"); s != "" {
		p.refs = append(p.refs, ref{"encounter", s})
	}
}

// finish sets id and meta on the resource and encodes it into a record.
func (p *prepared) finish(id string, version int, seq uint64, now time.Time) (*record, error) {
	p.m["id"] = id
	meta, _ := p.m["meta"].(map[string]any)
	if meta == nil {
		meta = make(map[string]any, 2)
		p.m["meta"] = meta
	}
	meta["versionId"] = strconv.Itoa(version)
	meta["lastUpdated"] = formatInstant(now)
	raw, err := appendJSON(make([]byte, 0, 512), p.m)
	if err != nil {
		return nil, err
	}
	if cap(raw)-len(raw) > 64 {
		raw = bytes.Clone(raw) // stored for the life of the resource: drop the spare capacity
	}
	return &record{typ: p.typ, id: id, version: version, seq: seq, updated: now, raw: raw,
		idents: p.idents, refs: p.refs, status: p.status}, nil
}

// encodeJSON marshals v without HTML escaping (narratives stay readable) and without a trailing newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// formatInstant formats t like the real server: UTC with milliseconds.
func formatInstant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// newID returns a random (version 4) UUID, the id format the real server assigns.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
