package cht

import (
	"encoding/json"
	"sync/atomic"
	"unsafe"
)

// The memory of decoded values. A decode allocates only what its result
// keeps: the strings and Extra values kept from the input are copied to a
// few arena chunks, and the Contacts and Lineage links to a few chunks of
// nodes (see newNode). No decoded value shares memory with the caller's
// bytes (unless src is set: see newDecoder) or with a decoder.

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

// ownMember is own for the value of a typed member. The values CHT
// repeats need less: a common type or sex is not copied, and an id met
// again along a lineage (a link's parent is the link above, a contact
// reference names a document of the lineage) is copied once.
func (d *decoder) ownMember(s string) string {
	if len(s) < 16 {
		if v := commonValue(s); v != "" {
			return v
		}
		return d.own(s)
	}
	for _, r := range d.recent {
		if r == s {
			return r
		}
	}
	o := d.own(s)
	d.recent[d.nrecent%uint8(len(d.recent))] = o
	d.nrecent++
	return o
}

// commonValue returns s if it is one of the values most documents hold,
// as a string of the program's, or "".
func commonValue(s string) string {
	switch s {
	case "contact":
		return "contact"
	case "person":
		return "person"
	case "clinic":
		return "clinic"
	case "health_center":
		return "health_center"
	case "data_record":
		return "data_record"
	case "xml":
		return "xml"
	case "female":
		return "female"
	case "male":
		return "male"
	}
	return ""
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
	d.owned += n
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
// first chunk is sized by what recent decodes of the same kind kept (see
// arenaEstimate); a later chunk is twice the size of the one before, but
// never more than what is left of the input could need.
func (d *decoder) growArena(n int) {
	size := d.arenaNext * 2
	if size == 0 {
		size = arenaEstimate(d.use, len(d.s), d.src != nil)
	}
	d.arenaNext = size
	if rest := len(d.s) - d.i + n; size > rest {
		size = rest
	}
	d.arena, d.arenaLen = make([]byte, max(size, n)), 0
}

// arenaUse tells which kind of decode a decoder runs, to size its arena.
type arenaUse uint8

const (
	useOther   arenaUse = iota // a member type's UnmarshalJSON, parseHydrate
	useContact                 // decodeContact
	useReport                  // decodeReport
	useDoc                     // decodeDoc
	usePush                    // parsePush
)

// arenaShares holds, for each kind of decode but useOther, the share of
// its input (in 1/1024) that recent decodes of that kind copied to their
// arena, or 0 before the first. A service decodes documents of a few
// shapes over and over: sizing the arena by them wastes little memory,
// and a document that keeps more only takes a second chunk.
var arenaShares [usePush + 1]atomic.Int32

// arenaEstimate returns the size of the first arena chunk for an input of
// n bytes. Before any decode of its kind it is 5/8 of the input, about
// what a hydrated document keeps (its strings and Extra values, not its
// white space, punctuation and the names of typed members), or 9/16 when
// Extra values alias the caller's bytes (src).
func arenaEstimate(use arenaUse, n int, src bool) int {
	share := int(arenaShares[use].Load())
	if share == 0 || use == useOther {
		share = 640
		if src {
			share = 576
		}
	}
	return max(n*(share+32)/1024, 64) // 1/32 to spare
}

// noteArena records that a decode of kind use copied owned bytes of an
// input of n bytes to its arena. Concurrent decodes may lose each
// other's notes; the share stays a recent one.
func noteArena(use arenaUse, owned, n int) {
	if use == useOther || n < 256 {
		return // small documents say little
	}
	share := min(owned*1024/n, 1024)
	a := &arenaShares[use]
	if old := int(a.Load()); old != 0 {
		share = old + (share-old)/4
	}
	a.Store(int32(max(share, 1)))
}

// docNode is a Contact with a Lineage link: a hydrated lineage link with
// its document, or a contact reference with the first minified link of
// its lineage (see newLineage). The nodes of a document are allocated
// together (see newNode), so that a lineage costs one allocation rather
// than one per link; the chunk stays alive while any node of it is
// referenced, which is while the document is.
type docNode struct {
	c Contact
	l Lineage
}

// maxNodeChunk bounds the nodes allocated at once: a document that needs
// more takes further chunks.
const maxNodeChunk = 16

// nodeCounts and linkCounts hold, for each kind of decode, the nodes and
// the minified links beyond a node's own (see newLineage) that recent
// decodes of that kind used, in 1/16, or 0 before the first.
var nodeCounts, linkCounts [usePush + 1]atomic.Int32

// countEstimate returns how many of n things to allocate in a chunk when
// a decode of kind use needs one: what recent decodes of its kind used
// (counts), or one for every 512 bytes of input before the first. It is
// at least 1 and at most maxNodeChunk.
func countEstimate(counts *[usePush + 1]atomic.Int32, use arenaUse, input int) int {
	n := (int(counts[use].Load()) + 15) / 16
	if n == 0 {
		n = input / 512
	}
	return min(max(n, 1), maxNodeChunk)
}

// noteCount records that a decode of kind use used n things of counts.
// Concurrent decodes may lose each other's notes; the count stays a
// recent one.
func noteCount(counts *[usePush + 1]atomic.Int32, use arenaUse, n int) {
	v := min(n, maxNodeChunk) * 16
	a := &counts[use]
	if old := int(a.Load()); old != 0 {
		v = old + (v-old)/4
	}
	a.Store(int32(max(v, 1)))
}

// chunk hands out zero values of T from slices allocated a few at a
// time: the first sized by recent decodes of the same kind (see
// countEstimate), each later one as large as the one before.
type chunk[T any] struct {
	items []T
	n     int // items[:n] are handed out
	used  int // handed out over the decode, for noteCount
}

// take returns the next zero value of c, allocating a slice when the
// current one is used up.
func (c *chunk[T]) take(counts *[usePush + 1]atomic.Int32, use arenaUse, input int) *T {
	if c.n == len(c.items) {
		n := len(c.items)
		if n == 0 {
			n = countEstimate(counts, use, input)
		}
		c.items, c.n = make([]T, n), 0
	}
	c.n++
	c.used++
	return &c.items[c.n-1]
}

// newNode returns a zero docNode for a Contact with its link.
func (d *decoder) newNode() *docNode { return d.nodes.take(&nodeCounts, d.use, len(d.s)) }

// newLineage returns a zero Lineage for a minified link: d.spare, which
// the contact being decoded was allocated with, if it is still free, or
// one from the chunks of links.
func (d *decoder) newLineage() *Lineage {
	if l := d.spare; l != nil {
		d.spare = nil
		return l
	}
	return d.links.take(&linkCounts, d.use, len(d.s))
}
