package backfill_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
)

// BenchmarkBackfillEditedReports syncs 50 synthetic households (300
// reports of two forms, of which the default mapping maps 6 and 7 fields,
// and their contacts: 515 documents) into fhirtest, from scratch each
// iteration, with the backfill's default batch size and workers: with
// every report at its first version, which searches nothing, and with
// every report edited (_rev 2, its fever answers emptied), whose mapped
// fields left out are searched for, 10 identifiers per search. It reports
// the Observation searches per batch and the time per document.
//
//	go test -run '^$' -bench BackfillEditedReports -benchtime 20x ./fhir/backfill/
func BenchmarkBackfillEditedReports(b *testing.B) {
	for _, edited := range []bool{false, true} {
		name := "first versions"
		if edited {
			name = "edited"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b, 50)
			e.cfg.BatchSize, e.cfg.Workers, e.cfg.PageSize = backfill.DefaultBatchSize, backfill.DefaultWorkers, backfill.DefaultPageSize
			f := spyOn(b, e)
			if edited {
				for _, id := range e.stats.ReportIDs {
					var d map[string]any
					require.NoError(b, e.cfg.CHT.Docs.Get(ctx, id, &d))
					delete(d["fields"].(map[string]any), "group_fever")
					_, err := e.cfg.CHT.Docs.Put(ctx, id, d)
					require.NoError(b, err)
				}
			}
			dir := b.TempDir()
			var batches int64
			b.ResetTimer()
			for i := range b.N {
				e.cfg.CheckpointFile = filepath.Join(dir, fmt.Sprintf("cp%d.json", i))
				sum, err := backfill.Run(ctx, e.cfg)
				require.NoError(b, err)
				require.Zero(b, sum.Failed, "%v", sum.Failures)
				batches += sum.Batches
			}
			b.StopTimer()
			b.ReportMetric(float64(f.searched())/float64(batches), "searches/batch")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*int64(e.docs)), "ns/doc")
		})
	}
}
