package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A dry run must not move the real checkpoint: the real run after it still
// writes every document.
func TestDryRunLeavesRealCheckpoint(t *testing.T) {
	f := newFakes(t, 5)
	dir := t.TempDir()
	cp := filepath.Join(dir, "cp.json")
	f.setEnv(t, cp)
	dry := filepath.Join(dir, "bundles")
	var stdout bytes.Buffer
	logger := slog.New(slog.DiscardHandler)
	require.NoError(t, run(context.Background(), []string{"--dry-run", dry}, &stdout, logger))
	_, err := os.Stat(cp)
	assert.ErrorIs(t, err, os.ErrNotExist, "the dry run wrote the real checkpoint")
	assert.FileExists(t, filepath.Join(dry, "checkpoint.json"), "the dry run keeps its own checkpoint")

	stdout.Reset()
	require.NoError(t, run(context.Background(), nil, &stdout, logger))
	var sum summary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &sum))
	assert.Positive(t, sum.ThisRun)
	assert.Equal(t, f.stats.Reports+demoReports, f.fhir.Count("Encounter"))
}

// Documents the FHIR server rejects make the command fail, and the summary
// still lists them.
func TestRunFailsWhenDocumentsFailed(t *testing.T) {
	f := newFakes(t, 1)
	reject := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"rejected"}]}`))
	}))
	t.Cleanup(reject.Close)
	f.setEnv(t, filepath.Join(t.TempDir(), "cp.json"))
	t.Setenv("MEDIATOR_FHIR_URL", reject.URL)
	var stdout bytes.Buffer
	err := run(context.Background(), nil, &stdout, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, errFailed)
	var sum summary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &sum))
	assert.Positive(t, sum.Failed)
	assert.NotEmpty(t, sum.Failures)
	assert.Contains(t, sum.Failures[0].Reason, "rejected")
}
