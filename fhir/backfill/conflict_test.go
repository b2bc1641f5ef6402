package backfill_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
