package fhirtest_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// TestE2EDifferential runs every scenario against fhirtest and against the real FHIR server at
// FHIR_BASE_URL (medplum's fhir-router, started by .ci/stack.sh) and requires identical transcripts,
// both equal to the expected one.
func TestE2EDifferential(t *testing.T) {
	base := strings.TrimRight(os.Getenv("FHIR_BASE_URL"), "/")
	if base == "" {
		t.Skip("FHIR_BASE_URL not set; start the real server with .ci/stack.sh start")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := (&fhirClient{base: base, hc: hc}).do(ctx, http.MethodGet, "/metadata", nil); err != nil {
		t.Fatalf("real FHIR server at %s unreachable: %v", base, err)
	}

	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	fake := runScenarios(t, srv.URL, srv.Client())
	real := runScenarios(t, base, hc)
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			f, r := fake[sc.name], real[sc.name]
			for i := range max(len(f), len(r), len(sc.want)) {
				at := func(s []string) string {
					if i < len(s) {
						return s[i]
					}
					return "<missing>"
				}
				if at(f) != at(r) || at(f) != at(sc.want) {
					t.Errorf("line %d:\n fhirtest: %s\n     real: %s\n     want: %s", i, at(f), at(r), at(sc.want))
				}
			}
		})
	}
}
