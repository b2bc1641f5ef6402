package cht

import (
	"encoding/json"
	"unsafe"
)

// The memory of decoded values. A decode allocates only what its result
// keeps: the strings and Extra values kept from the input are copied to a
// few arena chunks, and each Contact and Lineage link is allocated at its
// size (a hydrated link with its document). No decoded value shares memory
// with the caller's bytes (unless src is set: see newDecoder) or with a
// decoder.

// newBytesDecoder returns a decoder for one document read in place from
// b, which the caller may reuse once the decode has ended: whatever the
// result keeps of b is copied (see own). src is as for newDecoder.
func newBytesDecoder(b, src []byte) *decoder {
	d := decoders.Get().(*decoder)
	d.s, d.src, d.borrowed = unsafe.String(unsafe.SliceData(b), len(b)), src, true
	return d
}

// own returns s, a string read from the input, as a string the result
// may keep: s itself when the input is the decoder's own string or when
// s was unescaped into memory of its own, a copy in the arena when s is
// part of borrowed input.
func (d *decoder) own(s string) string {
	if !d.borrowed || !d.inInput(s) {
		return s
	}
	b := d.copyBytes(s)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// inInput reports whether s is a non-empty part of d.s.
func (d *decoder) inInput(s string) bool {
	if len(s) == 0 || len(d.s) == 0 {
		return false
	}
	off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(unsafe.StringData(d.s)))
	return off < uintptr(len(d.s))
}

// copyRaw returns a copy of s[start:end] for Extra, from the arena.
func (d *decoder) copyRaw(start, end int) json.RawMessage {
	if start == end { // after a syntax error
		return json.RawMessage{}
	}
	return d.copyBytes(d.s[start:end])
}

// copyBytes copies s to the arena. The copies are never written again:
// strings may be made of them, and a RawMessage made of one is capped so
// that appending to it reallocates. The arena slice is only replaced when
// a chunk is full, so that a copy writes no pointer to the decoder.
func (d *decoder) copyBytes(s string) []byte {
	n := len(s)
	if len(d.arena)-d.arenaLen < n {
		d.growArena(n)
	}
	at := d.arenaLen
	b := d.arena[at : at+n : at+n]
	copy(b, s)
	d.arenaLen = at + n
	return b
}

// reserve makes room in the arena for n more bytes in one chunk, so that
// a run of copies of known total size (an Extra map) shares a chunk.
func (d *decoder) reserve(n int) {
	if len(d.arena)-d.arenaLen < n {
		d.growArena(n)
	}
}

// growArena starts an arena chunk with room for at least n bytes. The
// first chunk of a borrowed input holds 5/8 of its size, about what a
// hydrated document keeps (its strings and Extra values, not its white
// space, punctuation and the names of typed members), or 9/16 when Extra
// values alias the caller's bytes (src); a later chunk is
// the size of the one before, but never more than what is left of the
// input could need.
func (d *decoder) growArena(n int) {
	size := d.arenaNext
	if size == 0 {
		size = len(d.s) * 5 / 8
		if d.src != nil { // Extra values alias src: only strings and keys are copied
			size = len(d.s) * 9 / 16
		}
		size = max(size, 64)
	}
	d.arenaNext = size
	if rest := len(d.s) - d.i + n; size > rest {
		size = rest
	}
	d.arena, d.arenaLen = make([]byte, max(size, n)), 0
}

// hydratedLink is a hydrated lineage link with its document, in one
// allocation.
type hydratedLink struct {
	l Lineage
	c Contact
}

// refContact is a contact reference with the first minified link of its
// lineage, in one allocation (see newLineage).
type refContact struct {
	c Contact
	l Lineage
}

// newLineage returns a zero Lineage for a minified link: d.spare, which
// the contact being decoded was allocated with, if it is still free.
func (d *decoder) newLineage() *Lineage {
	if l := d.spare; l != nil {
		d.spare = nil
		return l
	}
	return new(Lineage)
}
