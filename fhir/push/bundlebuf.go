package push

import "sync"

// maxPooledBundle is the largest bundle buffer kept for reuse: one huge
// bundle must not pin its memory for the life of the process.
const maxPooledBundle = 1 << 20

// bundleBufs holds the buffers the bundles posted to the FHIR server are
// written into, each a *bundleBuf.
var bundleBufs sync.Pool

// bundleBuf is a buffer a bundle is written into, from the pool.
type bundleBuf struct {
	b []byte
	// release gives the buffer back with the bundle last handed to
	// hold; made once per buffer, it is the done function of a write.
	release func()
}

// getBundleBuf takes a buffer from the pool.
func getBundleBuf() *bundleBuf {
	bb, _ := bundleBufs.Get().(*bundleBuf)
	if bb == nil {
		bb = &bundleBuf{}
		bb.release = func() { bb.put(bb.b) }
	}
	return bb
}

// bytes is the buffer, empty, to append a bundle to.
func (bb *bundleBuf) bytes() []byte { return bb.b[:0] }

// hold records bundle, written into the buffer (its memory, possibly
// grown), and returns release, which gives it back: call release once,
// when nothing reads the bundle any more.
func (bb *bundleBuf) hold(bundle []byte) func() {
	bb.b = bundle
	return bb.release
}

// put gives the buffer back with the bundle written into it (its memory,
// possibly grown). Call it once, when nothing reads the bundle any more.
// A buffer without room for a bundle a little larger than this one is
// replaced by one with room: the payload writer writes into the caller's
// buffer only when it has room for the size recent bundles needed, and
// otherwise allocates a new output.
func (bb *bundleBuf) put(bundle []byte) {
	if room := len(bundle)/4 + 1024; cap(bundle)-len(bundle) < room {
		if len(bundle)+room > maxPooledBundle {
			return
		}
		bundle = make([]byte, 0, len(bundle)+room)
	} else if cap(bundle) > maxPooledBundle {
		return
	}
	bb.b = bundle[:0]
	bundleBufs.Put(bb)
}
