package fhirtest_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// TestReadDeleted pins what a read of a deleted resource answers. FHIR R4
// http.html#read: "A GET for a deleted resource returns a 410 Gone status
// code ..., whereas a GET for an unknown resource returns 404 Not Found";
// HAPI FHIR does so (hapi-fhir-jpaserver-base BaseHapiFhirResourceDao read
// and readByPid: a deleted entity throws createResourceGoneException, a
// ResourceGoneException answered 410; an id it never had is a
// ResourceNotFoundException, 404). Config.Gone answers so; without it a
// deleted resource reads 404, as the e2e suite's medplum in-memory
// repository answers (the "delete" scenario of scenarios_test.go).
func TestReadDeleted(t *testing.T) {
	type read struct {
		name, path string
		want       int
	}
	reads := func(deleted int) []read {
		return []read{
			{"read deleted", "/Patient/p1", deleted},
			{"vread of its deleted version", "/Patient/p1/_history/2", deleted},
			{"vread of an older version (only the current is kept)", "/Patient/p1/_history/1", http.StatusNotFound},
			{"read never existed", "/Patient/never", http.StatusNotFound},
		}
	}
	for _, tt := range []struct {
		name  string
		cfg   fhirtest.Config
		reads []read
	}{
		{"default: 404 as medplum's in-memory repository", fhirtest.Config{}, reads(http.StatusNotFound)},
		{"Gone: 410 as HAPI FHIR and R4 http.html#read", fhirtest.Config{Gone: true}, reads(http.StatusGone)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newClient(t, tt.cfg)
			mustDo(t, c, http.MethodPut, "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`))
			if r := mustDo(t, c, http.MethodDelete, "/Patient/p1", nil); r.status != http.StatusOK {
				t.Fatalf("delete: %d %s", r.status, r.raw)
			}
			for _, rd := range tt.reads {
				r := mustDo(t, c, http.MethodGet, rd.path, nil)
				if r.status != rd.want {
					t.Errorf("%s: GET %s = %d %s, want %d", rd.name, rd.path, r.status, r.raw, rd.want)
				}
				if r.body["resourceType"] != "OperationOutcome" {
					t.Errorf("%s: body %s, want an OperationOutcome", rd.name, r.raw)
				}
				// The same read as a GET entry of a batch.
				b := mustDo(t, c, http.MethodPost, "", map[string]any{"resourceType": "Bundle", "type": "batch",
					"entry": []any{req("GET", rd.path[1:])}})
				if got, want := str(b.body, "entry", "0", "response", "status"), statusLine(rd.want); got != want {
					t.Errorf("%s: batch GET %s = %q, want %q", rd.name, rd.path, got, want)
				}
			}
			// Written again, it reads again.
			mustDo(t, c, http.MethodPut, "/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`))
			if r := mustDo(t, c, http.MethodGet, "/Patient/p1", nil); r.status != http.StatusOK {
				t.Errorf("read after re-create = %d, want 200", r.status)
			}
		})
	}
}

func statusLine(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }
