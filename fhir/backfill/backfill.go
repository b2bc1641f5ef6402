package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
)

// Defaults of Config.
const (
	DefaultBatchSize   = 100
	DefaultWorkers     = 4
	DefaultPageSize    = 500
	DefaultMaxAttempts = 8
	DefaultRetryWait   = 200 * time.Millisecond
	maxRetryWait       = 15 * time.Second
	// checkpointEvery is the least time between two checkpoint writes
	// while batches commit (each write is two fsyncs); the last committed
	// batch is always written when Run returns.
	checkpointEvery = 250 * time.Millisecond
)

// Config configures Run.
type Config struct {
	// CHT reads the _changes feed and hydrates documents. Its user must be
	// an online user. Required.
	CHT *cht.Client
	// Converter converts documents to transactions. Required.
	Converter *fhir.Converter
	// FHIR writes the bundles as transactions. Required unless Writer is
	// set. Give it MaxRetries -1: Run retries failed bundles itself
	// (MaxAttempts), including version conflicts between its workers.
	// With a Writer, FHIR, when set, is only searched for the Observations
	// of the fields edits emptied (see Edited reports in the package
	// documentation); without it nothing is withdrawn.
	FHIR *fhir.Client
	// Writer, when set, stores the bundles instead of FHIR: a DirWriter
	// for a dry run, or your own.
	Writer Writer
	// CheckpointFile is where progress is kept; "" keeps none (the sync
	// then starts from the beginning every time).
	CheckpointFile string
	// BatchSize is the number of feed entries per transaction Bundle; 0
	// means DefaultBatchSize.
	BatchSize int
	// Workers is the number of bundles written concurrently; 0 means
	// DefaultWorkers. A Converter with a conditional write strategy
	// (fhir.WriteConditionalUpdate, fhir.WriteConditionalCreate) writes one
	// bundle at a time whatever Workers says: two conditional writes of
	// the same new resource in parallel can both create it on many FHIR
	// servers, and every later conditional write of it then fails with 412.
	Workers int
	// PageSize is the number of changes read (and hydrated) per request; 0
	// means DefaultPageSize.
	PageSize int
	// MaxAttempts bounds the attempts to write one bundle on network
	// errors, 408, 429 and 5xx; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// RetryWait is the first backoff between attempts, doubled each time
	// up to 15 s; 0 means DefaultRetryWait.
	RetryWait time.Duration
	// OnProgress, if set, is called after every committed batch, from one
	// goroutine.
	OnProgress func(Progress)
	// Logger receives one line per failed document and per retried
	// bundle; nil discards.
	Logger *slog.Logger

	// onWait, if set, is called when a batch waits for an older one that
	// carries a resource with other content (see order).
	onWait func(batch, older int64)
}

// Progress is reported to Config.OnProgress.
type Progress struct {
	// Checkpoint is the state after the batch (counts include earlier
	// runs).
	Checkpoint Checkpoint
	// Done is the number of feed entries processed by this run and Total
	// the number this run had to process when it started (0 if unknown).
	Done, Total int64
	// Elapsed is the time since this run started.
	Elapsed time.Duration
}

// Summary is the outcome of Run.
type Summary struct {
	// Checkpoint is the final state (counts include earlier runs).
	Checkpoint
	// Processed is the number of feed entries processed by this run.
	Processed int64
	// FailedNow is the number of documents this run could not write
	// (Checkpoint.Failed counts those of earlier runs too).
	FailedNow int64
	// Elapsed is the duration of this run.
	Elapsed time.Duration
}

// batch is a slice of the feed: up to BatchSize entries ending at seq.
type batch struct {
	index int64
	seq   cht.Seq
	docs  []cht.HydratedDoc
	pre   counts // skipped by the reader
}

type result struct {
	index int64
	seq   cht.Seq
	c     counts
	err   error
}

// prepare checks cfg and fills in its defaults.
func (cfg Config) prepare() (Config, error) {
	if cfg.Writer == nil && cfg.FHIR != nil {
		cfg.Writer = clientWriter{cfg.FHIR}
	}
	if cfg.CHT == nil || cfg.Converter == nil || cfg.Writer == nil {
		return cfg, errors.New("backfill: CHT, Converter and FHIR (or Writer) are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if direct.Conditional(cfg.Converter) {
		cfg.Workers = 1
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = DefaultRetryWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FHIR == nil {
		// A Writer alone: the FHIR server cannot be searched, so edits
		// that emptied fields of reports leave their Observations as they
		// are (see Edited reports in the package documentation).
		cfg.Logger.Warn("backfill: Config.FHIR is not set, so the Observations of fields that edits of reports emptied are not withdrawn")
	}
	if dw, ok := cfg.Writer.(DirWriter); ok {
		if err := ensureDir(dw.Dir); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// Run syncs the feed from the checkpoint to its current end. It returns the
// summary, and an error when a batch could not be written (the checkpoint
// then stays before it and a later Run resumes there) or ctx was canceled.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	cfg, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	cp := Checkpoint{}
	var failed *failureLog
	if cfg.CheckpointFile != "" {
		if cp, err = ReadCheckpoint(cfg.CheckpointFile); err != nil {
			return nil, err
		}
		if failed, err = openFailureLog(cfg.CheckpointFile, cp); err != nil {
			return nil, err
		}
		defer failed.close()
	}
	start := time.Now()
	sum := &Summary{}

	// The number of entries left, for the progress bar's ETA.
	var total int64
	if cfg.OnProgress != nil {
		page, err := cfg.CHT.Docs.Changes(ctx, cht.ChangesOptions{Since: cp.Seq, Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("backfill: read changes: %w", err)
		}
		total = int64(len(page.Results) + page.Pending)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// window bounds the batches between the reader and the committed
	// prefix, so a slow batch cannot make the others pile up.
	window := make(chan struct{}, 2*cfg.Workers)
	batches := make(chan *batch, cfg.Workers)
	results := make(chan result, cfg.Workers)
	readErr := make(chan error, 1)
	go func() {
		readErr <- read(ctx, cfg, cp, window, batches)
		close(batches)
	}()
	ord := newOrder(cp.Batches, cfg.onWait)
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				c, err := writeBatch(ctx, cfg, ord, b)
				results <- result{index: b.index, seq: b.seq, c: c, err: err}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	// Commit in order: pending holds batches finished ahead of the next one.
	next := cp.Batches
	pending := map[int64]result{}
	var runErr error
	// save writes the checkpoint when it moved since the last write.
	saved, lastSave := cp.Batches, time.Time{}
	save := func() error {
		if cfg.CheckpointFile == "" || cp.Batches == saved {
			return nil
		}
		// The failures the checkpoint counts are on disk before it.
		if err := failed.sync(); err != nil {
			return err
		}
		saved, lastSave = cp.Batches, time.Now()
		return WriteCheckpoint(cfg.CheckpointFile, cp)
	}
	for r := range results {
		if r.err != nil {
			if runErr == nil {
				runErr = r.err
				cancel(r.err)
			}
			continue
		}
		if runErr != nil {
			continue
		}
		pending[r.index] = r
		for {
			p, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if err := failed.add(p.c.failures); err != nil {
				runErr = err
				cancel(err)
				break
			}
			cp.add(&p.c)
			cp.Seq = p.seq
			cp.UpdatedAt = time.Now().UTC()
			sum.Processed += p.c.docs
			sum.FailedNow += p.c.failed
			if time.Since(lastSave) >= checkpointEvery {
				if err := save(); err != nil {
					runErr = err
					cancel(err)
					break
				}
			}
			<-window
			if cfg.OnProgress != nil {
				cfg.OnProgress(Progress{Checkpoint: cp.clone(), Done: sum.Processed, Total: total, Elapsed: time.Since(start)})
			}
		}
	}
	// The committed prefix, also when a batch failed or ctx was canceled.
	if err := save(); err != nil && runErr == nil {
		runErr = err
	}
	if err := <-readErr; err != nil && runErr == nil {
		runErr = err
	}
	sum.Checkpoint = cp
	sum.Elapsed = time.Since(start)
	if runErr == nil && ctx.Err() != nil {
		runErr = context.Cause(ctx)
	}
	return sum, runErr
}

// read cuts the feed into batches.
func read(ctx context.Context, cfg Config, cp Checkpoint, window chan struct{}, out chan<- *batch) error {
	index := cp.Batches
	b := &batch{index: index}
	send := func() bool {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return false
		}
		index++
		b = &batch{index: index, docs: make([]cht.HydratedDoc, 0, cfg.BatchSize)}
		return true
	}
	for ch, err := range cfg.CHT.Docs.AllHydrated(ctx, cht.ChangesOptions{Since: cp.Seq, Limit: cfg.PageSize}) {
		if err != nil {
			if ctx.Err() != nil {
				return nil // the cause is reported by Run
			}
			return fmt.Errorf("backfill: read changes after %q: %w", b.seq, err)
		}
		b.seq = ch.Seq
		b.pre.docs++
		switch {
		case ch.Deleted:
			b.pre.skip("deleted")
		case ch.Err != nil:
			cfg.Logger.WarnContext(ctx, "document not read", "doc", ch.ID, "err", ch.Err)
			b.pre.fail(ch.ID, ch.Err)
		case ch.Hydrated == nil:
			b.pre.skip("not found")
		default:
			b.docs = append(b.docs, *ch.Hydrated)
		}
		if b.pre.docs >= int64(cfg.BatchSize) && !send() {
			return nil
		}
	}
	if b.pre.docs > 0 {
		send()
	}
	return nil
}

// contactTypes are the document types converted with ContactBundle.
var contactTypes = map[string]bool{
	"contact": true, "person": true, "clinic": true, "health_center": true, "district_hospital": true,
}

// converted is one document's transaction.
type converted struct {
	doc *cht.HydratedDoc
	tx  *fhir.Transaction
	// stale are the Observations the report's earlier versions may have
	// made from fields this version does not convert (see withdraw).
	stale []direct.Stale
}

// writeBatch converts a batch and writes it as one bundle; when the server
// rejects the bundle, it writes the documents one by one. It writes nothing
// before the older batches that carry one of its resources with other
// content are done (see order).
func writeBatch(ctx context.Context, cfg Config, ord *order, b *batch) (counts, error) {
	defer ord.done(b.index)
	c := b.pre
	c.skipped = cloneMap(b.pre.skipped)
	txs := make([]converted, 0, len(b.docs))
	var stale []direct.Stale
	for i, o := range convertAll(cfg.Converter, b.docs) {
		d := &b.docs[i]
		tx, skip, err := o.tx, o.skip, o.err
		switch {
		case err != nil:
			cfg.Logger.WarnContext(ctx, "document not converted", "doc", d.ID, "err", err)
			c.fail(d.ID, err)
		case skip != "":
			c.skip(skip)
		default:
			for _, w := range tx.Warnings {
				doc := w.DocID // the document of a shared resource, or this one
				if doc == "" {
					doc = d.ID
				}
				// The field, not the value, which may be personal data.
				cfg.Logger.WarnContext(ctx, "conversion left out a value of a lenient field", "doc", doc,
					"field", w.Field, "reason", w.Reason)
			}
			txs = append(txs, converted{doc: d, tx: tx, stale: o.stale})
			stale = append(stale, o.stale...)
		}
	}
	if len(txs) == 0 {
		return c, ord.enter(ctx, b.index, nil)
	}
	name := fmt.Sprintf("batch-%06d", b.index)
	bundle, entries, err := encode(txs)
	var keys []entryKey
	if err == nil {
		keys, err = bundleKeys(bundle)
	}
	if err != nil {
		// Entered all the same, for the younger batches' turn.
		return c, errors.Join(err, ord.enter(ctx, b.index, nil))
	}
	if err := ord.enter(ctx, b.index, append(keys, withdrawalKeys(cfg, stale)...)); err != nil {
		return c, err
	}
	j := &job{name: name, txs: txs, bundle: bundle, entries: entries, stale: stale}
	err = writeRetrying(ctx, cfg, j)
	if err == nil {
		c.converted += int64(len(txs))
		c.resources += int64(j.entries)
		return c, nil
	}
	if !isPermanent(err) || len(txs) == 1 {
		if isPermanent(err) {
			cfg.Logger.WarnContext(ctx, "document rejected by the FHIR server", "doc", txs[0].doc.ID, "err", err)
			c.fail(txs[0].doc.ID, err)
			return c, nil
		}
		return c, fmt.Errorf("backfill: %s (after %q): %w", name, b.seq, err)
	}
	// One document spoils the bundle: find it by writing them one by one.
	cfg.Logger.InfoContext(ctx, "bundle rejected; writing its documents one by one", "batch", name, "err", err)
	for _, t := range txs {
		// Converted again, whole: in the batch, it may lack resources an
		// earlier document held.
		o := convert(cfg.Converter, t.doc, nil)
		if o.err != nil {
			return c, fmt.Errorf("backfill: %s: convert %s again: %w", name, t.doc.ID, o.err)
		}
		id := t.doc.ID
		one := []converted{{doc: t.doc, tx: o.tx, stale: o.stale}}
		bundle, entries, err := encode(one)
		if err != nil {
			return c, err
		}
		j := &job{name: name + "-" + id, txs: one, bundle: bundle, entries: entries, stale: o.stale}
		err = writeRetrying(ctx, cfg, j)
		switch {
		case err == nil:
			c.converted++
			c.resources += int64(j.entries)
		case isPermanent(err):
			cfg.Logger.WarnContext(ctx, "document rejected by the FHIR server", "doc", id, "err", err)
			c.fail(id, err)
		default:
			return c, fmt.Errorf("backfill: %s (after %q): %w", name, b.seq, err)
		}
	}
	return c, nil
}

// convert returns the document's transaction, or the reason it is skipped.
// With built, the transaction leaves out the contact resources listed
// there (see direct.BatchTransaction).
func convert(conv *fhir.Converter, d *cht.HydratedDoc, built map[[2]string]struct{}) outcome {
	typ := d.Type()
	switch {
	case typ == "data_record":
		// UnmarshalJSON directly: json.Unmarshal would first scan the whole
		// document once more to validate it.
		r := new(cht.Report)
		// Member errors the conversion handles: converted (direct.Usable).
		if err := direct.Usable(r.UnmarshalJSON(d.Doc), true); err != nil {
			return outcome{err: fmt.Errorf("decode report: %w", err)}
		}
		if r.Form == "" {
			// A message: an SMS that matched no form (cht-core
			// api/src/services/records.js getDataRecord) or one sent
			// from the Messages tab (webapp send-message.service.ts,
			// form null). Not a report to convert, and no failure.
			return outcome{skip: "no form (a message)"}
		}
		// ReportBundle, with the Observations written when the
		// transaction is encoded rather than built as samply values.
		t, err := direct.BatchTransaction(conv, r, built)
		if errors.Is(err, fhir.ErrUnmappedForm) {
			return outcome{skip: "unmapped form"}
		}
		if err != nil {
			return outcome{err: err}
		}
		tx := t.(*fhir.Transaction)
		// An edited report withdraws the Observations of the fields the
		// edit emptied (see withdraw).
		stale, err := direct.StaleObservations(conv, tx, r)
		if err != nil {
			return outcome{err: err}
		}
		return outcome{tx: tx, stale: stale}
	case contactTypes[typ]:
		ct := new(cht.Contact)
		if err := direct.Usable(ct.UnmarshalJSON(d.Doc), false); err != nil {
			return outcome{err: fmt.Errorf("decode contact: %w", err)}
		}
		t, err := direct.BatchTransaction(conv, ct, built)
		if err != nil {
			return outcome{err: err}
		}
		return outcome{tx: t.(*fhir.Transaction)}
	case typ == "":
		return outcome{skip: "no type"}
	default:
		return outcome{skip: "type " + typ}
	}
}

// outcome is what convert returned for one document.
type outcome struct {
	tx    *fhir.Transaction
	stale []direct.Stale
	skip  string
	err   error
}

// supersededReason is the reason an older copy of a document is skipped
// when its batch holds a newer one.
const supersededReason = "older copy (its batch writes a newer one)"

// convertAll converts the documents of a batch. They share most of their
// lineage (the CHW, their places, a household), and each contact resource
// is built once, from the last document of the batch that carries it: a
// batch spans pages of the feed, hydrated one after the other, so the
// later copy is the newer. Built from the first copy, a person edited
// between two pages of one batch kept its older content on the FHIR
// server: the edit's own change, in the later page, found it built. For
// the same reason a document twice in a batch is converted from its last
// copy only, and the older copy is skipped: a report's bundle would write
// its Observations twice, an Observation of a field the edit emptied both
// from the older copy and withdrawn by the newer one.
func convertAll(conv *fhir.Converter, docs []cht.HydratedDoc) []outcome {
	out := make([]outcome, len(docs))
	built := make(map[[2]string]struct{}, 2*len(docs))
	later := make(map[string]struct{}, len(docs))
	for i := len(docs) - 1; i >= 0; i-- {
		d := &docs[i]
		if _, ok := later[d.ID]; ok && d.ID != "" {
			out[i].skip = supersededReason
			continue
		}
		later[d.ID] = struct{}{}
		out[i] = convert(conv, d, built)
	}
	return out
}

// encode merges transactions into one bundle, followed by the entries of
// extra. Resources shared by several documents (a patient, the CHW, their
// places) have the same deterministic fullUrl and are written once. The
// transactions are merged last first, the order convertAll builds them
// in, so that a shared resource comes before the entries that refer to it
// and, of the copies, the last one is kept.
func encode(txs []converted, extra ...*fhir.Transaction) ([]byte, int, error) {
	all := make([]any, len(txs), len(txs)+len(extra))
	for i, t := range txs {
		all[len(txs)-1-i] = t.tx
	}
	for _, t := range extra {
		all = append(all, t)
	}
	merged := direct.Merge(all).(*fhir.Transaction)
	data, err := merged.MarshalJSON()
	return data, merged.Len(), err
}

// job is a bundle to write: a batch's, or one document's of a batch
// written document by document.
type job struct {
	name string
	txs  []converted
	// bundle is the transactions' bundle, of entries entries, without
	// withdrawals. Once written, entries is the number of entries of the
	// bundle that was.
	bundle  []byte
	entries int
	// stale are the Observations the reports of txs may have to withdraw.
	stale []direct.Stale
}

// writeRetrying writes j's bundle, retrying transient failures with
// backoff. When j's reports have stale Observations, each attempt first
// searches them (see withdraw) and writes the bundle with their
// withdrawals, so that a retry, after a version conflict (412, 409)
// included, withdraws the versions it finds then.
func writeRetrying(ctx context.Context, cfg Config, j *job) error {
	wait := cfg.RetryWait
	conditional := direct.Conditional(cfg.Converter)
	searchedAgain := false
	for attempt := 1; ; attempt++ {
		bundle, n, withdrew, err := withdraw(ctx, cfg, j)
		var sf *searchFailed
		if err != nil && !errors.As(err, &sf) {
			return err
		}
		if err == nil {
			if cw, ok := cfg.Writer.(clientWriter); ok {
				// The client need not count the entries again.
				err = direct.Transaction(cw.c, ctx, bundle, n)
			} else {
				err = cfg.Writer.WriteBundle(ctx, j.name, bundle)
			}
			switch {
			case !conditional:
			case withdrew && !searchedAgain && attempt < cfg.MaxAttempts && preconditionFailed(err):
				// The If-Match of a withdrawal (the Observation
				// changed since the search) as much as an ambiguous
				// match: an ambiguous match only if it fails again
				// after a new search. Without an attempt left, it is
				// one: left unclassified, it would stop Run at this
				// batch every time.
				searchedAgain = true
			default:
				err = conditionalConflict(err)
			}
			if err == nil {
				j.entries = n
				return nil
			}
		}
		if isPermanent(err) || isFatal(err) || attempt >= cfg.MaxAttempts || ctx.Err() != nil {
			return err
		}
		cfg.Logger.InfoContext(ctx, "bundle not written; retrying", "batch", j.name, "attempt", attempt, "err", err)
		// Full jitter keeps the workers from retrying in lockstep.
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return err
		}
		wait = min(2*wait, maxRetryWait)
	}
}

func cloneMap(m map[string]int64) map[string]int64 {
	if m == nil {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
