package backfill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// Writer stores one transaction Bundle: [DirWriter] for a dry run, or your
// own. name identifies the bundle ("batch-000042", or
// "batch-000042-<doc id>" when a batch is written document by document).
// WriteBundle returns nil only once the bundle is durably stored; a
// *fhir.ServerError with a 4xx status other than 408, 409, 412 and 429 (or
// a 412 under a conditional write strategy, except the first one of a
// bundle that withdraws Observations, which is retried after a new search:
// see Edited reports in the package documentation) means the bundle
// itself was rejected and retrying it is pointless. Any other error is
// retried.
// WriteBundle must not modify bundle.
type Writer interface {
	WriteBundle(ctx context.Context, name string, bundle []byte) error
}

// permanent reports whether the server rejected the content of the bundle
// (400, 413, 422, or a 2xx answer whose failed entry has a 4xx status that
// is not transient): retrying the same bundle is pointless, but its
// documents may be written one by one.
func permanent(e *fhir.ServerError) bool {
	if e.EntryStatus != 0 {
		return e.EntryStatus >= 400 && e.EntryStatus < 500 && !transient(e.EntryStatus)
	}
	switch e.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// fatal reports whether the answer concerns the request rather than the
// bundle (any other 4xx that is not transient: bad credentials, a wrong URL
// or method): no bundle can be written until the configuration is fixed.
func fatal(e *fhir.ServerError) bool {
	return e.EntryStatus == 0 && e.StatusCode >= 400 && e.StatusCode < 500 && !permanent(e) && !transient(e.StatusCode)
}

// transient reports whether a 4xx status is worth retrying as it is: 408
// and 429, and 409 and 412, the version conflicts of concurrent writers of
// the same resource (workers writing batches that share a patient or a
// place), which clear once the other write is done.
func transient(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusPreconditionFailed, http.StatusTooManyRequests:
		return true
	}
	return false
}

// isPermanent reports whether err is a permanent *fhir.ServerError or an
// *ambiguousMatch. A failed search (*searchFailed) never is.
func isPermanent(err error) bool {
	var se *fhir.ServerError
	var am *ambiguousMatch
	var sf *searchFailed
	return !errors.As(err, &sf) && (errors.As(err, &am) || errors.As(err, &se) && permanent(se))
}

// ambiguousMatch is a 412 answer to a conditional write, which Run makes
// one at a time: the server holds several resources with the identifier
// the write is conditional on (duplicates left by an earlier tool or by
// parallel conditional writes) and refuses every write of it until they are
// merged. Retrying is pointless; like a rejected resource, the documents
// are written one by one and each that carries it fails under its own id.
type ambiguousMatch struct{ err error }

func (e *ambiguousMatch) Error() string {
	return "the FHIR server holds several resources with the identifier of a conditional write (412); merge them: " + e.err.Error()
}

func (e *ambiguousMatch) Unwrap() error { return e.err }

// conditionalConflict returns err as an *ambiguousMatch when it is a 412
// answer (to the transaction or to one of its entries).
func conditionalConflict(err error) error {
	if preconditionFailed(err) {
		return &ambiguousMatch{err}
	}
	return err
}

// preconditionFailed reports whether err is a 412 answer (to the
// transaction or to one of its entries).
func preconditionFailed(err error) bool {
	var se *fhir.ServerError
	return errors.As(err, &se) && (se.EntryStatus == http.StatusPreconditionFailed ||
		se.EntryStatus == 0 && se.StatusCode == http.StatusPreconditionFailed)
}

// isFatal reports whether err is a fatal *fhir.ServerError, or a failed
// search (*searchFailed) answered with a 4xx status that is not transient.
func isFatal(err error) bool {
	var se *fhir.ServerError
	var sf *searchFailed
	if errors.As(err, &sf) {
		return errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 && !transient(se.StatusCode)
	}
	return errors.As(err, &se) && fatal(se)
}

// clientWriter writes bundles as transactions with a FHIR client.
type clientWriter struct{ c *fhir.Client }

func (w clientWriter) WriteBundle(ctx context.Context, _ string, bundle []byte) error {
	return w.c.Transaction(ctx, bundle)
}

// DirWriter writes each bundle to <Dir>/<name>.json instead of a server
// (the --dry-run mode). Files are written atomically.
type DirWriter struct {
	Dir string
}

// WriteBundle writes bundle to Dir.
func (w DirWriter) WriteBundle(_ context.Context, name string, bundle []byte) error {
	return writeFileAtomic(filepath.Join(w.Dir, safeName(name)+".json"), bundle)
}

// safeName keeps names usable as file names.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// ensureDir creates dir.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	return nil
}
