package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// failuresPath is the file beside a checkpoint that lists every failed
// document, one JSON [Failure] per line.
func failuresPath(checkpoint string) string { return checkpoint + ".failures" }

// ReadFailures reads every failed document a sync listed beside its
// checkpoint (the file checkpointFile + ".failures", one JSON [Failure] per
// line): each document once, with its latest reason, in the order they
// first failed. A missing file lists none. [Retry] syncs them again.
func ReadFailures(checkpointFile string) ([]Failure, error) {
	failures, _, err := readFailures(checkpointFile)
	return failures, err
}

// readFailures is ReadFailures; listed is false when there is no list.
func readFailures(checkpointFile string) (failures []Failure, listed bool, err error) {
	path := failuresPath(checkpointFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("backfill: read failures: %w", err)
	}
	failures, err = parseFailures(data)
	if err != nil {
		return nil, true, fmt.Errorf("backfill: %s %w", path, err)
	}
	return failures, true, nil
}

// maxQuotedLine bounds the line an error of parseFailures repeats.
const maxQuotedLine = 200

// parseFailures reads a failure list: each document once, with its latest
// reason, in the order they first failed. Blank lines list nothing. Any
// other line that is not a failure is an error naming it and the field,
// except the part after the last newline: a line cut by a crash while it
// was appended, which no checkpoint counts yet (see failureLog), unless it
// is a whole failure.
func parseFailures(data []byte) ([]Failure, error) {
	cut := bytes.LastIndexByte(data, '\n') + 1
	lines := bytes.Split(data[:cut], []byte("\n"))
	if f, ok := parseTail(data[cut:]); ok {
		// A last line without its newline (written by hand).
		lines = append(lines, f)
	}
	var out []Failure
	at := map[string]int{}
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			// Lists nothing; a list edited by hand may end with some,
			// which the lines appended on resuming then follow.
			continue
		}
		f, err := parseFailure(line)
		if err != nil {
			q := line
			if len(q) > maxQuotedLine {
				q = q[:maxQuotedLine]
			}
			return nil, fmt.Errorf("line %d is not a failure (%q): %w", i+1, q, err)
		}
		if j, ok := at[f.DocID]; ok {
			out[j].Reason = f.Reason
			continue
		}
		at[f.DocID] = len(out)
		out = append(out, f)
	}
	return out, nil
}

// parseFailure decodes one line of the failure list.
func parseFailure(line []byte) (Failure, error) {
	var f Failure
	if err := json.Unmarshal(line, &f); err != nil {
		return f, err
	}
	if f.DocID == "" {
		return f, errors.New(`"docId" is missing or empty`)
	}
	return f, nil
}

// parseTail returns the part of the failure list after its last newline
// when it is a whole failure; ok is false for a line cut by a crash.
func parseTail(tail []byte) (line []byte, ok bool) {
	if len(bytes.TrimSpace(tail)) == 0 {
		return nil, false
	}
	_, err := parseFailure(tail)
	return tail, err == nil
}

// failureLog appends the failures of committed batches to the file beside
// the checkpoint. They are synced before the checkpoint that counts them is
// written, so that every failure the checkpoint counts is listed. A crash
// before that makes the resumed run write them again; ReadFailures lists
// each document once.
type failureLog struct {
	f     *os.File
	dirty bool
}

// openFailureLog opens the log beside the checkpoint cp was read from.
// A sync from the beginning (no batch committed) starts an empty list. A
// list cut by a crash in the middle of its last line is cut back to its
// last whole line, so that what is appended starts a line of its own. A
// checkpoint written before the list existed starts the list with the
// failures it names.
func openFailureLog(checkpoint string, cp Checkpoint) (*failureLog, error) {
	path := failuresPath(checkpoint)
	fresh := cp.Batches == 0
	_, statErr := os.Stat(path)
	missing := errors.Is(statErr, fs.ErrNotExist)
	flags := os.O_RDWR | os.O_CREATE
	if fresh {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("backfill: open the failure list: %w", err)
	}
	l := &failureLog{f: f}
	if err := l.endOnWholeLine(); err != nil {
		f.Close()
		return nil, err
	}
	if missing && !fresh {
		if err := l.add(cp.Failures); err != nil {
			f.Close()
			return nil, err
		}
	}
	return l, nil
}

// endOnWholeLine cuts the file after its last newline, unless what follows
// is a whole failure (a last line written by hand without its newline),
// which gets its newline, and puts the offset at its end.
func (l *failureLog) endOnWholeLine() error {
	data, err := io.ReadAll(l.f)
	if err != nil {
		return fmt.Errorf("backfill: read the failure list: %w", err)
	}
	keep := int64(bytes.LastIndexByte(data, '\n') + 1)
	if _, whole := parseTail(data[keep:]); whole {
		if _, err := l.f.Write([]byte("\n")); err != nil {
			return fmt.Errorf("backfill: end the failure list's last line: %w", err)
		}
		l.dirty = true
		return nil
	}
	if keep < int64(len(data)) {
		if err := l.f.Truncate(keep); err != nil {
			return fmt.Errorf("backfill: cut the failure list's last line: %w", err)
		}
	}
	if _, err := l.f.Seek(keep, io.SeekStart); err != nil {
		return fmt.Errorf("backfill: seek in the failure list: %w", err)
	}
	return nil
}

// appendLines appends failures to b as the file lists them.
func appendLines(b []byte, failures []Failure) ([]byte, error) {
	for _, f := range failures {
		line, err := json.Marshal(f)
		if err != nil {
			return b, fmt.Errorf("backfill: encode a failure: %w", err)
		}
		b = append(append(b, line...), '\n')
	}
	return b, nil
}

// add appends failures (a nil log keeps none).
func (l *failureLog) add(failures []Failure) error {
	if l == nil || len(failures) == 0 {
		return nil
	}
	b, err := appendLines(nil, failures)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("backfill: write the failure list: %w", err)
	}
	l.dirty = true
	return nil
}

// sync makes the appended failures durable.
func (l *failureLog) sync() error {
	if l == nil || !l.dirty {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("backfill: sync the failure list: %w", err)
	}
	l.dirty = false
	return nil
}

func (l *failureLog) close() {
	if l != nil {
		_ = l.f.Close() // synced before every checkpoint that counts what it holds
	}
}

// Retry syncs again the documents that syncs with cfg.CheckpointFile failed
// on (see [ReadFailures]), after a fix in the mapping, in CHT or on the FHIR
// server, without reading the feed from the beginning. Each is hydrated as
// it is now, converted and written as Run does. Those that fail again stay
// listed, with their new reason; a document CHT no longer has is skipped
// ("not found") and leaves the list. The checkpoint keeps its place in the
// feed; its counts (Failed, Failures, Converted) follow. Run Retry when no
// Run uses the same checkpoint. On an error (a bundle that could not be
// written, ctx canceled) the list is left as it was: the documents written
// meanwhile are written again, to the same resources, by the next Retry.
func Retry(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.CheckpointFile == "" {
		return nil, errors.New("backfill: Retry needs the CheckpointFile its failures are listed beside")
	}
	cfg, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	cp, err := ReadCheckpoint(cfg.CheckpointFile)
	if err != nil {
		return nil, err
	}
	failures, listed, err := readFailures(cfg.CheckpointFile)
	if err != nil {
		return nil, err
	}
	if !listed {
		// A checkpoint written before the list existed: the failures
		// it names.
		failures = cp.Failures
	}
	start := time.Now()
	sum := &Summary{Checkpoint: cp}
	if len(failures) == 0 {
		sum.Elapsed = time.Since(start)
		return sum, nil
	}
	var total counts
	ord := newOrder(0, nil)
	for i := 0; i < len(failures); i += cfg.BatchSize {
		chunk := failures[i:min(i+cfg.BatchSize, len(failures))]
		b, err := hydrateFailures(ctx, cfg, int64(i/cfg.BatchSize), chunk)
		if err != nil {
			return nil, err
		}
		c, err := writeBatch(ctx, cfg, ord, b)
		if err != nil {
			return nil, err
		}
		total.merge(c)
	}
	list, err := appendLines(nil, total.failures)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(failuresPath(cfg.CheckpointFile), list); err != nil {
		return nil, err
	}
	cp.Converted += total.converted
	cp.Resources += total.resources
	// Those written or skipped now leave the count; it keeps failures
	// the list could not name (beyond the MaxFailures of a checkpoint
	// written before the list existed).
	cp.Failed = max(total.failed, cp.Failed-(int64(len(failures))-total.failed))
	cp.Failures = total.failures[:min(len(total.failures), MaxFailures):min(len(total.failures), MaxFailures)]
	cp.Skipped = addSkipped(cp.Skipped, total.skipped)
	cp.UpdatedAt = time.Now().UTC()
	if err := WriteCheckpoint(cfg.CheckpointFile, cp); err != nil {
		return nil, err
	}
	sum.Checkpoint, sum.Processed, sum.FailedNow = cp, total.docs, total.failed
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// hydrateFailures reads the listed documents as CHT hydrates them now: in
// one request, or one at a time when CHT's copy of one cannot be read or
// CHT fails to hydrate one, so that such a document stays listed alone
// (see blame). On any other error Retry stops, and the list stays as it
// was.
func hydrateFailures(ctx context.Context, cfg Config, index int64, list []Failure) (*batch, error) {
	ids := make([]string, len(list))
	for i, f := range list {
		ids[i] = f.DocID
	}
	b := &batch{index: index, pre: counts{docs: int64(len(ids))}}
	res, err := cfg.CHT.Hydrate(ctx, ids...)
	if mayBeADocument(err) {
		res = &cht.HydrateResult{}
		for _, id := range ids {
			one, err := cfg.CHT.Hydrate(ctx, id)
			switch {
			case err == nil:
				res.Docs = append(res.Docs, one.Docs...)
				res.NotFound = append(res.NotFound, one.NotFound...)
			case blame(ctx, cfg, err):
				cfg.Logger.WarnContext(ctx, "document not read", "doc", id, "err", err)
				b.pre.fail(id, err)
			default:
				return nil, fmt.Errorf("backfill: hydrate %s: %w", id, err)
			}
		}
	} else if err != nil {
		return nil, fmt.Errorf("backfill: hydrate the failed documents: %w", err)
	}
	b.docs = res.Docs
	for range res.NotFound {
		b.pre.skip("not found")
	}
	return b, nil
}

// mayBeADocument reports whether err, from a hydrate request, may be
// caused by one of its documents: an answer that cannot be read (a
// *cht.DecodeError), or a 500, which is how CHT answers any error of a
// hydration (api/src/controllers/hydration.js: serverUtils.serverError).
func mayBeADocument(err error) bool {
	var de *cht.DecodeError
	var ae *cht.APIError
	return errors.As(err, &de) || errors.As(err, &ae) && ae.StatusCode == http.StatusInternalServerError
}

// blame reports whether err, from the hydrate request of one document, is
// the document's: an answer that cannot be read, or a 500 while CHT
// hydrates an id no document has without error. A 500 may also be CouchDB
// failing, which fails that request too (fetchHydratedDoc queries the
// lineage view, then gets the document, a 404 answered not_found); CHT
// failing as a whole is not blamed on the documents. cht's
// DocsService.AllHydrated, which Run reads, tells them apart the same way.
func blame(ctx context.Context, cfg Config, err error) bool {
	var de *cht.DecodeError
	switch {
	case errors.As(err, &de):
		return true
	case !mayBeADocument(err):
		return false
	}
	_, err = cfg.CHT.Hydrate(ctx, "cht-interop-hydrate-probe")
	return err == nil
}
