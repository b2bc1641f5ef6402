package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// Writer stores one transaction Bundle. name identifies the bundle
// ("batch-000042", or "batch-000042-<doc id>" when a batch is written
// document by document). WriteBundle returns nil only once the bundle is
// durably stored; a *WriteError with a 4xx status (other than 408, 409, 412
// and 429) means the bundle itself was rejected and retrying it is
// pointless.
type Writer interface {
	WriteBundle(ctx context.Context, name string, bundle []byte) error
}

// WriteError is a bundle the FHIR server did not commit.
type WriteError struct {
	// StatusCode is the server's answer; 0 for network errors and
	// timeouts.
	StatusCode int
	// Reason is a short text: the OperationOutcome's diagnostics or the
	// network error.
	Reason string
	// EntryStatus is, when the server answered 2xx but failed an entry of
	// the transaction-response, that entry's status code (0 otherwise).
	EntryStatus int
	// Err is the underlying error, if any (a *fhir.TransactionError when
	// the answer was not a complete transaction-response).
	Err error
}

func (e *WriteError) Error() string {
	if e.EntryStatus != 0 {
		return "backfill: fhir transaction: " + e.Reason
	}
	if e.StatusCode == 0 {
		return "backfill: fhir transaction: " + e.Reason
	}
	return fmt.Sprintf("backfill: fhir transaction: server answered %d: %s", e.StatusCode, e.Reason)
}

func (e *WriteError) Unwrap() error { return e.Err }

// Permanent reports whether the server rejected the content of the bundle
// (400, 413, 422, or a 2xx answer whose failed entry has a 4xx status that
// is not transient): retrying the same bundle is pointless, but its
// documents may be written one by one.
func (e *WriteError) Permanent() bool {
	if e.EntryStatus != 0 {
		return e.EntryStatus >= 400 && e.EntryStatus < 500 && !transient(e.EntryStatus)
	}
	switch e.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// Fatal reports whether the answer concerns the request rather than the
// bundle (any other 4xx that is not transient: bad credentials, a wrong URL
// or method): no bundle can be written until the configuration is fixed.
func (e *WriteError) Fatal() bool {
	return e.StatusCode >= 400 && e.StatusCode < 500 && !e.Permanent() && !transient(e.StatusCode)
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

// isPermanent reports whether err is a permanent *WriteError.
func isPermanent(err error) bool {
	var we *WriteError
	return errors.As(err, &we) && we.Permanent()
}

// isFatal reports whether err is a fatal *WriteError.
func isFatal(err error) bool {
	var we *WriteError
	return errors.As(err, &we) && we.Fatal()
}

// maxAnswer bounds how much of the FHIR server's answer is read.
const maxAnswer = 64 << 20

// FHIRWriter posts transaction Bundles to a FHIR server.
type FHIRWriter struct {
	// URL is the FHIR base URL. Required.
	URL string
	// Username and Password, when Username is set, authenticate with basic
	// auth. They never appear in errors.
	Username, Password string
	// Client is the HTTP client; nil means a client with a 60 s timeout.
	Client *http.Client
}

var defaultClient = &http.Client{Timeout: 60 * time.Second}

// WriteBundle posts bundle to the base URL and checks that the server
// answered with a transaction-response Bundle holding one 2xx entry per
// entry of bundle.
func (w *FHIRWriter) WriteBundle(ctx context.Context, name string, bundle []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(w.URL, "/"), bytes.NewReader(bundle))
	if err != nil {
		return fmt.Errorf("backfill: fhir transaction: %w", err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	if w.Username != "" {
		req.SetBasicAuth(w.Username, w.Password)
	}
	hc := w.Client
	if hc == nil {
		hc = defaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &WriteError{Reason: err.Error(), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return &WriteError{Reason: "read answer: " + err.Error(), Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return &WriteError{StatusCode: resp.StatusCode, Reason: diagnostics(data)}
	}
	// Commit only a transaction-response with one 2xx entry per posted
	// entry; anything else may not have been stored.
	if err := fhir.CheckTransactionResponse(resp.StatusCode, data, entryCount(bundle)); err != nil {
		we := &WriteError{StatusCode: resp.StatusCode, Reason: err.Error(), Err: err}
		var te *fhir.TransactionError
		if errors.As(err, &te) && te.Entry >= 0 {
			code, _, _ := strings.Cut(strings.TrimSpace(te.EntryStatus), " ")
			we.EntryStatus, _ = strconv.Atoi(code)
		}
		return we
	}
	return nil
}

// entryCount is the number of entries of bundle; -1 if it cannot be read
// (the answer's entry count is then not checked).
func entryCount(bundle []byte) int {
	var b struct {
		Entry []struct{} `json:"entry"`
	}
	if json.Unmarshal(bundle, &b) != nil {
		return -1
	}
	return len(b.Entry)
}

// diagnostics extracts a short reason from a FHIR error answer.
func diagnostics(body []byte) string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Diagnostics string `json:"diagnostics"`
			Details     struct {
				Text string `json:"text"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) == nil && oo.ResourceType == "OperationOutcome" {
		var parts []string
		for _, is := range oo.Issue {
			switch {
			case is.Diagnostics != "":
				parts = append(parts, is.Diagnostics)
			case is.Details.Text != "":
				parts = append(parts, is.Details.Text)
			}
		}
		if len(parts) > 0 {
			return strings.Join(parts, "; ")
		}
	}
	const max = 200
	if len(body) > max {
		return string(body[:max]) + "…"
	}
	return string(body)
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
