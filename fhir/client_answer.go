package fhir

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonscan"
)

// maxHeldAnswer is the largest transaction answer read into memory to be
// checked at once; a larger one is checked while it streams.
const maxHeldAnswer = 1 << 20

// answerBufs holds the buffers answers are read into, each a *[]byte of
// at most maxHeldAnswer bytes.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// checkAnswer is checkTransactionAnswer, cheaper for the usual answer: one
// of at most maxHeldAnswer bytes is read whole and, when it shows every
// entry applied, accepted by a scan that allocates nothing (okAnswer). Any
// other answer, and a larger one, is checked by checkTransactionAnswer,
// which gives the same result and error for it as it would have for the
// answer streamed.
func checkAnswer(r io.Reader, want int) *ServerError {
	p := answerBufs.Get().(*[]byte)
	defer func() {
		if cap(*p) <= maxHeldAnswer {
			answerBufs.Put(p)
		}
	}()
	b := (*p)[:0]
	var err error
	for len(b) <= maxHeldAnswer {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		var n int
		n, err = r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			break
		}
	}
	*p = b[:0]
	if err == io.EOF {
		if okAnswer(b, want) {
			return nil
		}
		return checkTransactionAnswer(bytes.NewReader(b), want)
	}
	rest := r
	if err != nil {
		rest = errReader{err} // the answer as far as it came, then the failure
	}
	wr := &watchReader{r: io.MultiReader(bytes.NewReader(b), rest)}
	se := checkTransactionAnswer(wr, want)
	if se != nil && se.Entry < 0 && wr.err != nil {
		// The server answered 2xx: it committed the transaction, unless the
		// rest of its answer would have said otherwise.
		se.Reason = "the server answered 2xx, so the transaction was probably applied (sending it again is safe), " +
			"but its answer could not be read to the end: " + se.Reason
	}
	return se
}

// watchReader records the first error of r other than io.EOF.
type watchReader struct {
	r   io.Reader
	err error
}

func (w *watchReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF && w.err == nil {
		w.err = err
	}
	return n, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// okAnswer reports whether b is a transaction-response Bundle of want
// entries (any number when want < 0), each with a 2xx status: whether
// checkTransactionAnswer returns nil for it. It reports false, sending the
// answer to checkTransactionAnswer, for any answer it does not clearly
// accept, so that it never accepts one that checkTransactionAnswer refuses.
func okAnswer(b []byte, want int) bool {
	if len(b) == 0 {
		return false
	}
	// b is not modified while d reads it.
	d := &scanner{jsonscan.New(unsafe.String(&b[0], len(b)), false)}
	var rt, typ string
	entries, entrySeen, ok := 0, false, true
	str := func() string {
		if d.Peek() != '"' {
			ok = false
			d.Skip(1)
			return ""
		}
		return d.Str()
	}
	d.Object(func(k string) {
		switch k {
		case "resourceType":
			rt = str()
		case "type":
			typ = str()
		case "entry":
			if entrySeen || d.Peek() != '[' {
				ok = false
				d.Skip(1)
				return
			}
			entrySeen = true
			d.Array(func() {
				if d.Peek() != '{' {
					ok = false
					d.Skip(1)
					return
				}
				answered := false
				d.Object(func(k string) {
					if k != "response" {
						d.Skip(1)
						return
					}
					answered = true
					if d.Peek() != '{' {
						ok = false
						d.Skip(1)
						return
					}
					status := ""
					d.Object(func(k string) {
						// encoding/json matches keys without regard to
						// case, the last one winning.
						if strings.EqualFold(k, "status") {
							status = str()
							return
						}
						d.Skip(2)
					})
					code, _, _ := strings.Cut(strings.TrimSpace(status), " ")
					if c, err := strconv.Atoi(code); err != nil || c < 200 || c > 299 {
						ok = false
					}
				})
				if !answered {
					ok = false
				}
				entries++
			})
		default:
			d.Skip(1)
		}
	})
	return ok && d.Err() == nil && rt == "Bundle" && typ == "transaction-response" && (want < 0 || entries == want)
}
