package backfill

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// MaxFailures is how many failed documents a Checkpoint lists by id; the
// count in Checkpoint.Failed goes on beyond it.
const MaxFailures = 100

// Checkpoint is the progress of a sync: every document of the feed up to and
// including Seq is written (or counted as skipped or failed). Counts add up
// over restarts.
type Checkpoint struct {
	// Seq is the feed sequence to resume after; "" means the beginning.
	Seq cht.Seq `json:"seq"`
	// Batches is the number of committed batches.
	Batches int64 `json:"batches"`
	// Docs is the number of feed entries processed (converted, skipped and
	// failed).
	Docs int64 `json:"docs"`
	// Converted is the number of documents written to FHIR.
	Converted int64 `json:"converted"`
	// Resources is the number of transaction entries written (resources
	// shared by documents of one batch count once).
	Resources int64 `json:"resources"`
	// Skipped counts documents that are not converted, by reason
	// ("deleted", "not found", "unmapped form", "type <type>").
	Skipped map[string]int64 `json:"skipped,omitempty"`
	// Failed is the number of documents that could not be converted or
	// that the FHIR server rejected.
	Failed int64 `json:"failed"`
	// Failures lists the first MaxFailures failed documents; the file
	// beside the checkpoint lists them all (see ReadFailures).
	Failures []Failure `json:"failures,omitempty"`
	// UpdatedAt is when the checkpoint was written.
	UpdatedAt time.Time `json:"updatedAt"`
}

// Failure is a document that was not written, and why.
type Failure struct {
	DocID  string `json:"docId"`
	Reason string `json:"reason"`
}

// counts is what one batch adds to a checkpoint.
type counts struct {
	docs, converted, resources, failed int64
	skipped                            map[string]int64
	failures                           []Failure
}

func (c *counts) skip(reason string) {
	if c.skipped == nil {
		c.skipped = map[string]int64{}
	}
	c.skipped[reason]++
}

// fail counts a failed document. A batch lists every one: it holds at
// most BatchSize documents, and the failure log wants them all.
func (c *counts) fail(id string, err error) {
	c.failed++
	c.failures = append(c.failures, Failure{DocID: id, Reason: err.Error()})
}

// addSkipped adds the counts of src to dst, made when needed, and returns
// dst.
func addSkipped(dst, src map[string]int64) map[string]int64 {
	for k, v := range src {
		if dst == nil {
			dst = map[string]int64{}
		}
		dst[k] += v
	}
	return dst
}

// merge adds another batch's counts, every failure included.
func (c *counts) merge(o counts) {
	c.docs += o.docs
	c.converted += o.converted
	c.resources += o.resources
	c.failed += o.failed
	c.failures = append(c.failures, o.failures...)
	c.skipped = addSkipped(c.skipped, o.skipped)
}

// add adds a committed batch's counts.
func (cp *Checkpoint) add(c *counts) {
	cp.Batches++
	cp.Docs += c.docs
	cp.Converted += c.converted
	cp.Resources += c.resources
	cp.Failed += c.failed
	cp.Skipped = addSkipped(cp.Skipped, c.skipped)
	for _, f := range c.failures {
		if len(cp.Failures) >= MaxFailures {
			break
		}
		cp.Failures = append(cp.Failures, f)
	}
}

// clone returns a deep copy.
func (cp Checkpoint) clone() Checkpoint {
	cp.Skipped = maps.Clone(cp.Skipped)
	cp.Failures = append([]Failure(nil), cp.Failures...)
	return cp
}

// SkippedTotal is the number of skipped documents.
func (cp *Checkpoint) SkippedTotal() int64 {
	var n int64
	for _, v := range cp.Skipped {
		n += v
	}
	return n
}

// ReadCheckpoint reads the checkpoint at path. A missing file is the zero
// Checkpoint (start from the beginning), not an error. A file that is not
// a checkpoint [WriteCheckpoint] could have written (not a JSON object,
// without "seq" or "batches", a count below zero, a position in the feed
// without batches) is an error naming the file and the field, never read
// as an earlier position: that would sync again what was synced, or skip
// what was not.
func ReadCheckpoint(path string) (Checkpoint, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("backfill: read checkpoint: %w", err)
	}
	cp, err := decodeCheckpoint(data)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("backfill: checkpoint %s is not valid (delete it to start over): %w", path, err)
	}
	return cp, nil
}

// decodeCheckpoint decodes and checks a checkpoint file's content; errors
// name the field.
func decodeCheckpoint(data []byte) (Checkpoint, error) {
	var cp Checkpoint
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return cp, fmt.Errorf("not a JSON object: %w", err)
	}
	if members == nil {
		return cp, errors.New("not a JSON object: null")
	}
	// WriteCheckpoint always writes these: without them the position is
	// unknown, not the beginning.
	for _, k := range []string{"seq", "batches"} {
		if _, ok := members[k]; !ok {
			return cp, fmt.Errorf("%q is missing", k)
		}
	}
	fields := []struct {
		key string
		v   any
	}{
		{"seq", &cp.Seq}, {"batches", &cp.Batches}, {"docs", &cp.Docs}, {"converted", &cp.Converted},
		{"resources", &cp.Resources}, {"skipped", &cp.Skipped}, {"failed", &cp.Failed},
		{"failures", &cp.Failures}, {"updatedAt", &cp.UpdatedAt},
	}
	for _, f := range fields {
		raw, ok := members[f.key]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, f.v); err != nil {
			return Checkpoint{}, fmt.Errorf("%q: %w", f.key, err)
		}
	}
	for _, c := range []struct {
		key string
		n   int64
	}{{"batches", cp.Batches}, {"docs", cp.Docs}, {"converted", cp.Converted}, {"resources", cp.Resources}, {"failed", cp.Failed}} {
		if c.n < 0 {
			return Checkpoint{}, fmt.Errorf("%q is %d, below zero", c.key, c.n)
		}
	}
	for k, n := range cp.Skipped {
		if n < 0 {
			return Checkpoint{}, fmt.Errorf("\"skipped\" %q is %d, below zero", k, n)
		}
	}
	for i, f := range cp.Failures {
		if f.DocID == "" {
			return Checkpoint{}, fmt.Errorf("\"failures\"[%d].docId is empty", i)
		}
	}
	if cp.Batches > 0 && cp.Seq == "" {
		// Every committed batch moves seq: an empty one would start over.
		return Checkpoint{}, fmt.Errorf("\"seq\" is empty after %d batches", cp.Batches)
	}
	return cp, nil
}

// WriteCheckpoint writes cp to path atomically: a reader (or a restart after
// a crash) sees either the old or the new checkpoint, never a torn one.
func WriteCheckpoint(path string, cp Checkpoint) error {
	data, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return fmt.Errorf("backfill: encode checkpoint: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// writeFileAtomic writes data to a temporary file beside path, fsyncs it,
// renames it over path and fsyncs the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backfill: write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		// Make the rename durable; not every file system supports it.
		_ = d.Sync()
		d.Close()
	}
	return nil
}
