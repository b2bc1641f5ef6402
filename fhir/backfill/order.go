package backfill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonscan"
)

// A resource can be in several batches of one run: the lineage places and
// the CHW of many documents, the patient of reports, and any document edited
// in CHT while the run reads the feed (it is in the batch read before the
// edit and again, newer, in a later one). Each batch is hydrated when its
// page is read and every entry is a PUT, so the write that reaches the
// server last wins. order makes that the newest batch's copy: a batch that
// carries a resource with other content than an older batch not yet done
// (written, or failed) waits for that batch before its first write. The
// same content never waits, so a place shared by every batch leaves the
// workers in parallel. A batch also claims each Observation it may
// withdraw, with content no entry has (see withdrawClaim).
//
// An older batch's retry cannot simply leave the resource out of its bundle
// instead: its other entries refer to it by urn:uuid, which the server
// resolves only within the bundle.
//
// If batch N has resource R with other content than an older batch O, N's
// first write starts after O is done, so every write of O (retries and the
// documents written one by one included) reaches the server before N's.
// Batches with the same content as N may write R in any order. So the last
// write of R is of the newest batch that writes it, whatever the order in
// which the workers finish. A batch waits only for older ones, which never
// wait for it: no cycle.
type order struct {
	mu sync.Mutex
	// next is the batch whose turn it is to enter: batches enter in feed
	// order, so a batch sees every older batch's resources.
	next int64
	// turn is closed when next moves.
	turn chan struct{}
	// claims lists, per resource, the batches not yet done that carry it.
	claims  map[string][]claim
	batches map[int64]*entered
	// onWait, if set, is called when batch starts waiting for older.
	onWait func(batch, older int64)
}

// claim is a batch's copy of a resource.
type claim struct {
	batch int64
	entry []byte
}

// entered is a batch that entered and is not done.
type entered struct {
	keys []string
	done chan struct{}
}

func newOrder(first int64, onWait func(batch, older int64)) *order {
	return &order{next: first, turn: make(chan struct{}), claims: map[string][]claim{},
		batches: map[int64]*entered{}, onWait: onWait}
}

// enter records the resources of batch, once every older batch entered,
// and waits until the older batches that carry one of them with other
// content are done. Every batch of the run must enter (with no entries
// when it writes nothing), or the younger ones wait for ctx.
func (o *order) enter(ctx context.Context, batch int64, entries []entryKey) error {
	o.mu.Lock()
	for o.next != batch {
		turn := o.turn
		o.mu.Unlock()
		select {
		case <-turn:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		o.mu.Lock()
	}
	e := &entered{done: make(chan struct{})}
	var older []int64
	var wait []chan struct{}
	for _, en := range entries {
		cs := o.claims[en.key]
		mine := false
		for _, c := range cs {
			if c.batch == batch {
				mine = true
				continue
			}
			if !slices.Contains(older, c.batch) && !bytes.Equal(c.entry, en.entry) {
				older = append(older, c.batch)
				wait = append(wait, o.batches[c.batch].done)
			}
		}
		if !mine {
			o.claims[en.key] = append(cs, claim{batch: batch, entry: en.entry})
			e.keys = append(e.keys, en.key)
		}
	}
	o.batches[batch] = e
	o.next++
	close(o.turn)
	o.turn = make(chan struct{})
	o.mu.Unlock()
	if o.onWait != nil {
		for _, b := range older {
			o.onWait(batch, b)
		}
	}
	for _, done := range wait {
		select {
		case <-done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// done ends batch (written or failed): the batches waiting for it may
// write.
func (o *order) done(batch int64) {
	o.mu.Lock()
	e := o.batches[batch]
	if e == nil {
		o.mu.Unlock()
		return
	}
	delete(o.batches, batch)
	for _, k := range e.keys {
		cs := o.claims[k]
		for i, c := range cs {
			if c.batch == batch {
				cs = append(cs[:i], cs[i+1:]...)
				break
			}
		}
		if len(cs) == 0 {
			delete(o.claims, k)
		} else {
			o.claims[k] = cs
		}
	}
	o.mu.Unlock()
	close(e.done)
}

// entryKey is an entry of a transaction bundle: the resource it writes
// (its request: method, URL and any condition) and its bytes (part of the
// bundle, which is not modified while the batch is not done).
type entryKey struct {
	key   string
	entry []byte
}

var errBundleSyntax = errors.New("backfill: malformed bundle")

// bundleKeys returns the keys of the entries of a transaction bundle as
// this package encodes it (entries without a request are left out). It
// reads the bundle once; anything but one JSON object (at most 64 levels
// deep) is errBundleSyntax.
func bundleKeys(b []byte) ([]entryKey, error) {
	if len(b) == 0 {
		return nil, errBundleSyntax
	}
	// b is not modified while d reads it.
	d := jsonscan.New(unsafe.String(&b[0], len(b)), false)
	var keys []entryKey
	d.Object(func(k string) {
		if k != "entry" || d.Peek() != '[' {
			d.Skip(1)
			return
		}
		d.Array(func() {
			d.Peek()
			start := d.Pos()
			var req []byte
			d.Object(func(k string) {
				d.Peek()
				v := d.Pos()
				d.Skip(3)
				if k == "request" {
					req = b[v:d.Pos()]
				}
			})
			if req != nil && d.Err() == nil {
				keys = append(keys, entryKey{key: string(req), entry: b[start:d.Pos()]})
			}
		})
	})
	d.End()
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errBundleSyntax, err)
	}
	return keys, nil
}
