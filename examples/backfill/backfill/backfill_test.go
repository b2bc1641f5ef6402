package backfill_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/examples/backfill/backfill"
	"github.com/cht-interop/openhim-mediator-go/examples/cht-to-fhir/chttofhir"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

type env struct {
	cht   *chttest.Server
	fhir  *fhirtest.Server
	stats chttest.SyntheticStats
	cfg   backfill.Config
}

func newEnv(t testing.TB, households int) *env {
	t.Helper()
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1})
	t.Cleanup(chtSrv.Close)
	stats, err := chtSrv.SeedSynthetic(chttest.Synthetic{Households: households, PeoplePerHousehold: 3, ReportsPerPerson: 2, Seed: 1})
	require.NoError(t, err)
	fhirSrv, err := fhirtest.NewServerConfig(fhirtest.Config{RequestLog: -1})
	require.NoError(t, err)
	t.Cleanup(fhirSrv.Close)
	client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	mapping, err := chttofhir.DefaultMapping()
	require.NoError(t, err)
	conv, err := fhir.New(fhir.Config{InstanceURL: chtSrv.URL, Mapping: mapping})
	require.NoError(t, err)
	return &env{cht: chtSrv, fhir: fhirSrv, stats: stats, cfg: backfill.Config{
		CHT: client, Converter: conv, Writer: &backfill.FHIRWriter{URL: fhirSrv.URL},
		CheckpointFile: filepath.Join(t.TempDir(), "checkpoint.json"), BatchSize: 20, Workers: 3, PageSize: 50,
	}}
}

func TestRunWritesEverything(t *testing.T) {
	e := newEnv(t, 20)
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	t.Logf("summary %+v, counts %v", sum, e.fhir.Counts())
}

