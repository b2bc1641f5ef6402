package backfill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
)

// conflictingWriter answers status to the first attempts of every bundle (a
// version conflict between concurrent workers), then delegates.
type conflictingWriter struct {
	backfill.Writer
	status, times int
	mu            sync.Mutex
	seen          map[string]int
}

func (w *conflictingWriter) WriteBundle(ctx context.Context, name string, b []byte) error {
	w.mu.Lock()
	w.seen[name]++
	n := w.seen[name]
	w.mu.Unlock()
	if n <= w.times {
		return &fhir.ServerError{Entry: -1, StatusCode: w.status, Reason: "version conflict"}
	}
	return w.Writer.WriteBundle(ctx, name, b)
}

// A 409 or 412 is a transient conflict: the bundle is retried, no document
// is dropped.
func TestVersionConflictsAreRetried(t *testing.T) {
	for _, status := range []int{http.StatusConflict, http.StatusPreconditionFailed} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t, 3)
			e.cfg.Writer = &conflictingWriter{Writer: txWriter{e.cfg.FHIR}, status: status, times: 2, seen: map[string]int{}}
			sum, err := backfill.Run(context.Background(), e.cfg)
			require.NoError(t, err)
			assert.Zero(t, sum.Failed, "%v", sum.Failures)
			assert.Equal(t, e.stats.Reports+demoReports, e.fhir.Count("Encounter"))
		})
	}
}

// With a conditional write strategy, a 412 answers a write conditional on
// an identifier that several resources on the server hold (fhirtest, as
// HAPI and medplum: "more than 1 is 412"). It does not clear with time:
// the documents that carry that resource fail under their own ids, named
// with the reason, and the sync goes on; it stopped at the batch before.
func TestConditionalWriteOfADuplicatedResourceFailsItsDocuments(t *testing.T) {
	e := newEnv(t, 3)
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: e.cht.URL, Mapping: fhir.DefaultMapping(),
		Strategy: fhir.WriteConditionalUpdate})
	require.NoError(t, err)
	e.cfg.Converter = conv
	first := e.cfg
	first.CheckpointFile = ""
	sum, err := backfill.Run(context.Background(), first)
	require.NoError(t, err)
	require.Zero(t, sum.Failed, "%v", sum.Failures)

	// A second copy of one person's Patient, under another id.
	var person string
	patients := e.fhir.Resources("Patient")
	require.NotEmpty(t, patients)
	{
		var p map[string]any
		require.NoError(t, json.Unmarshal(patients[0], &p))
		for _, id := range p["identifier"].([]any) {
			if m := id.(map[string]any); strings.HasSuffix(fmt.Sprint(m["system"]), "/medic") {
				person = fmt.Sprint(m["value"])
			}
		}
		delete(p, "id")
		delete(p, "meta")
		b, err := json.Marshal(p)
		require.NoError(t, err)
		resp, err := http.Post(e.fhir.URL+"/Patient", "application/fhir+json", bytes.NewReader(b))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
	}
	require.NotEmpty(t, person)

	sum, err = backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err, "the sync goes on past the documents")
	require.Positive(t, sum.Failed)
	var failed []string
	for _, f := range sum.Failures {
		failed = append(failed, f.DocID)
		assert.Contains(t, f.Reason, "several resources with the identifier")
		assert.Contains(t, f.Reason, "412")
	}
	assert.Contains(t, failed, person)
	assert.Equal(t, sum.Docs, sum.Converted+sum.Failed+sum.SkippedTotal())
	assert.Greater(t, sum.Converted, sum.Failed, "the other documents are written")
}
