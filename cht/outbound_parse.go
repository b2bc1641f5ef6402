package cht

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/decodehook"
)

func init() {
	decodehook.ParsePush = parsePush
	decodehook.DecodeDoc = func(doc []byte) (any, error) {
		dd, err := decodeDoc(string(doc))
		if err != nil {
			return nil, err
		}
		return docView{dd}, nil
	}
}

// docView gives package cht/outbound the views of a decoded document.
type docView struct{ dd *decodedDoc }

func (v docView) DocType() string            { return v.dd.docType() }
func (v docView) Contact() (*Contact, error) { return v.dd.contact() }
func (v docView) Report() (*Report, error)   { return v.dd.report() }

// parsePush validates an outbound push body and recognises the document
// and its id, in one pass that also decodes the document.
func parsePush(body []byte, docKey string) (decodehook.Push, error) {
	return parsePushAs(body, docKey, true)
}

// parsePushAs is parsePush, first without tracking paths when fast is set.
func parsePushAs(body []byte, docKey string, fast bool) (decodehook.Push, error) {
	d := newBytesDecoder(body, body)
	defer d.release()
	d.use = usePush
	var p decodehook.Push
	switch d.ws(); {
	case d.i == len(d.s):
		return p, errors.New("empty body; want a JSON value")
	case d.s[d.i] == '{':
	default:
		d.skip() // a mapping can produce any JSON value
		d.end()
		if d.hard != nil {
			return p, malformed(d.hard)
		}
		return p, nil
	}
	d.fast = fast
	var res docResult
	for {
		d.docKey = docKey
		if d.outer == nil {
			d.outer = new(outerDoc)
		}
		*d.outer = outerDoc{}
		res = d.doc(&d.outer.c, &d.outer.r)
		d.end()
		if !d.retry() {
			break
		}
	}
	if d.hard != nil {
		return p, malformed(d.hard)
	}
	if res.inner != nil || (res.hasID && res.hasType) {
		countDecode()
	}
	switch {
	case res.inner != nil:
		p.Doc = body[res.innerStart:res.innerEnd:res.innerEnd]
		res.inner.detach(d)
		p.View = docView{res.inner}
		p.ID, p.Rev = res.inner.c.ID, res.inner.c.Rev
	case res.hasID && res.hasType:
		p.Doc = body
		top := &decodedDoc{c: *res.c, r: *res.r, res: res}
		top.res.c, top.res.r = &top.c, &top.r
		top.detach(d)
		p.View = docView{top}
	}
	strOf := func(key string) string {
		for _, sp := range d.spans[res.spanFrom:res.spanTo] {
			if sp.key == key && (res.inner == nil || sp.start < res.innerStart || sp.start >= res.innerEnd) {
				d.i = sp.start
				if d.peek() == '"' {
					return d.own(d.str())
				}
			}
		}
		return ""
	}
	if at := spanOf(d.spans[res.spanFrom:res.spanTo], docKey); at >= 0 && p.Doc == nil {
		d.i = at
		return decodehook.Push{}, fmt.Errorf("%s: want the document object, got %s", docKey, d.kind())
	}
	if p.ID == "" {
		if p.ID = res.c.ID; p.ID == "" {
			p.ID = strOf("id")
		}
	}
	if p.Rev == "" {
		if p.Rev = res.c.Rev; p.Rev == "" {
			p.Rev = strOf("rev")
		}
	}
	// A named document is read from CHT by its id: one that no CHT
	// document can have is the sender's error (400), not a document CHT
	// has yet to replicate (which would be retried forever).
	for _, f := range []struct{ key, v string }{{"id", p.ID}, {"rev", p.Rev}} {
		if i := strings.IndexFunc(f.v, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError }); i >= 0 {
			return decodehook.Push{}, fmt.Errorf("%s %q: control character or invalid UTF-8 at byte %d", f.key, f.v, i)
		}
	}
	return p, nil
}

// malformed describes a syntax error in a pushed body.
func malformed(err error) error {
	var de *DecodeError
	if errors.As(err, &de) && de.Path != "" {
		return fmt.Errorf("malformed JSON in %s: %w", de.Path, de.Err)
	}
	if de != nil {
		err = de.Err
	}
	return fmt.Errorf("malformed JSON: %w", err)
}

// spanOf returns the start of the value of key, or -1.
func spanOf(spans []extSpan, key string) int {
	for _, sp := range spans {
		if sp.key == key {
			return sp.start
		}
	}
	return -1
}
