package fhirtest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// stepClock returns a clock that advances one hour per call from 2024-01-01T00:00Z.
func stepClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := t
		t = t.Add(time.Hour)
		return now
	}
}

func loadFixtures(t *testing.T, h *fhirtest.Server, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rs []any
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	if err := h.Load(rs...); err != nil {
		t.Fatal(err)
	}
}

func TestSearch(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{Now: stepClock()})
	loadFixtures(t, srv, "testdata/search-fixtures.json")
	tests := []struct {
		query     string
		wantIDs   []string
		wantTotal int // -1: len(wantIDs)
		wantNext  bool
	}{
		{"Patient?identifier=urn:cht:contact|c-1", []string{"pa"}, -1, false},
		{"Patient?identifier=urn:cht:contact%7Cc-1", []string{"pa"}, -1, false},
		{"Patient?identifier=c-1", []string{"pa", "pb"}, -1, false},
		{"Patient?identifier=|nosys-1", []string{"pa"}, -1, false},
		{"Patient?identifier=|c-1", nil, -1, false},
		{"Patient?identifier=urn:cht:contact|", []string{"pa", "pb", "pc"}, -1, false},
		{"Patient?identifier=urn:cht:contact|c-1,urn:cht:contact|c-2", []string{"pa", "pb"}, -1, false},
		{`Patient?identifier=urn:cht:contact|a\,b\|c`, []string{"pc"}, -1, false},
		{"Patient?identifier=urn:cht:contact|c-1&identifier=urn:national|c-1", nil, -1, false},
		{"Patient?identifier=c-1&identifier=urn:national|", []string{"pb"}, -1, false},
		{"Practitioner?identifier=urn:cht:contact|c-1", []string{"chw1"}, -1, false},
		{"Patient?_id=pa,pc", []string{"pa", "pc"}, -1, false},
		{"Patient?_id=zz", nil, -1, false},
		{"Patient?_id=pc,pa,pc", []string{"pa", "pc"}, -1, false},
		{"Patient?_id=pa&identifier=c-2", nil, -1, false},
		{"Patient?_lastUpdated=ge2024-01-01T01:00:00Z&_lastUpdated=lt2024-01-01T02:00:00Z", []string{"pb"}, -1, false},
		{"Patient?_lastUpdated=2024-01-01", []string{"pa", "pb", "pc"}, -1, false},
		{"Patient?_lastUpdated=eq2024-01", []string{"pa", "pb", "pc"}, -1, false},
		{"Patient?_lastUpdated=2023", nil, -1, false},
		{"Patient?_lastUpdated=gt2024-01-01T00:00", []string{"pb", "pc"}, -1, false},
		{"Patient?_lastUpdated=le2024-01-01T01:00:00Z", []string{"pa", "pb"}, -1, false},
		{"Patient?_lastUpdated=ne2024-01-01T01:00:00Z", []string{"pa", "pc"}, -1, false},
		{"Patient?_lastUpdated=lt2024-01-01T04:00:00%2B03:00", []string{"pa"}, -1, false},
		{"Patient?_lastUpdated=ge2024-01-01T02:00:00.000Z", []string{"pc"}, -1, false},
		{"Patient?_lastUpdated=sa2024-01-01T01:00:00Z", []string{"pc"}, -1, false},
		{"Patient?_lastUpdated=eb2024-01-01T01:00:00Z", []string{"pa"}, -1, false},
		{"Patient?_sort=-_lastUpdated", []string{"pc", "pb", "pa"}, -1, false},
		{"Patient?_sort=-_id", []string{"pc", "pb", "pa"}, -1, false},
		{"Patient?_sort=_id&_count=2", []string{"pa", "pb"}, 3, true},
		{"Patient?_count=1&_offset=1", []string{"pb"}, 3, true},
		{"Patient?_count=1&_offset=2", []string{"pc"}, 3, false},
		{"Patient?_count=5&_offset=9", nil, 3, false},
		{"Patient?_count=0", nil, 3, false},
		{"Patient?_summary=count", nil, 3, false},
		{"Patient?_total=accurate&_format=json", []string{"pa", "pb", "pc"}, -1, false},
		{"Observation?subject=Patient/pa", []string{"o1", "o2"}, -1, false},
		{"Observation?subject=pa", []string{"o1", "o2", "o4"}, -1, false},
		{"Observation?subject:Patient=pa", []string{"o1", "o2"}, -1, false},
		{"Observation?subject:Group=pa", []string{"o4"}, -1, false},
		{"Observation?subject=http://127.0.0.1/fhir/R4/Patient/pa", []string{"o1", "o2"}, -1, false},
		{"Observation?subject=Patient/pa,Patient/pb", []string{"o1", "o2", "o3"}, -1, false},
		{"Observation?patient=pa", []string{"o1", "o2"}, -1, false},
		{"Observation?patient=Patient/pb", []string{"o3"}, -1, false},
		{"Observation?encounter=e1", []string{"o1"}, -1, false},
		{"Observation?encounter=Encounter/e1&patient=pa", []string{"o1"}, -1, false},
		{"Observation?encounter=Encounter/e1&patient=pb", nil, -1, false},
		{"Encounter?patient=pa", []string{"e1"}, -1, false},
		{"Task?patient=pb", []string{"t1"}, -1, false},
		{"AllergyIntolerance?patient=pc", []string{"a1"}, -1, false},
		{"Condition?patient=pa", nil, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp := mustDo(t, c, http.MethodGet, "/"+tt.query, nil)
			if resp.status != http.StatusOK {
				t.Fatalf("status %d: %s", resp.status, resp.raw)
			}
			if str(resp.body, "resourceType") != "Bundle" || str(resp.body, "type") != "searchset" {
				t.Fatalf("not a searchset: %s", resp.raw)
			}
			var ids []string
			entries, _ := resp.body["entry"].([]any)
			for _, e := range entries {
				em := e.(map[string]any)
				id := str(em, "resource", "id")
				ids = append(ids, id)
				typ := str(em, "resource", "resourceType")
				if want := srv.URL + "/" + typ + "/" + id; str(em, "fullUrl") != want {
					t.Errorf("fullUrl %q, want %q", str(em, "fullUrl"), want)
				}
				if str(em, "search", "mode") != "match" {
					t.Errorf("search.mode %q", str(em, "search", "mode"))
				}
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("ids %v, want %v", ids, tt.wantIDs)
			}
			wantTotal := tt.wantTotal
			if wantTotal < 0 {
				wantTotal = len(tt.wantIDs)
			}
			if total, _ := resp.body["total"].(float64); int(total) != wantTotal {
				t.Errorf("total %v, want %d", resp.body["total"], wantTotal)
			}
			links, _ := resp.body["link"].([]any)
			hasNext := false
			for _, l := range links {
				if str(l.(map[string]any), "relation") == "next" {
					hasNext = true
					next := mustDo(t, c, http.MethodGet, str(l.(map[string]any), "url")[len(srv.URL):], nil)
					if next.status != http.StatusOK {
						t.Errorf("next link answered %d", next.status)
					}
				}
			}
			if hasNext != tt.wantNext {
				t.Errorf("next link %v, want %v: %v", hasNext, tt.wantNext, links)
			}
		})
	}
}

func TestSearchErrors(t *testing.T) {
	_, c := newClient(t, fhirtest.Config{})
	tests := []struct{ query, wantExpr string }{
		{"Patient?name=x", "name"},
		{"Patient?identifier:of-type=x", "identifier:of-type"},
		{"Patient?identifier=", "identifier"},
		{"Patient?_id:exact=1", "_id:exact"},
		{"Patient?_count=-1", "_count"},
		{"Patient?_count=abc", "_count"},
		{"Patient?_offset=x", "_offset"},
		{"Patient?_lastUpdated=yesterday", "_lastUpdated"},
		{"Patient?_lastUpdated:missing=true", "_lastUpdated:missing"},
		{"Patient?_sort=name", "_sort"},
		{"Patient?_summary=true", "_summary"},
		{"Observation?subject=Foo/1", "subject"},
		{"Observation?subject=Patient/", "subject"},
		{"Observation?subject:Patient=Group/pa", "subject"},
		{"Observation?subject:Foo=pa", "subject:Foo"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp := mustDo(t, c, http.MethodGet, "/"+tt.query, nil)
			if resp.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.status, resp.raw)
			}
			if expr, text := outcomeExpr(resp.body); expr != tt.wantExpr || text == "" {
				t.Errorf("expression %q text %q, want expression %q", expr, text, tt.wantExpr)
			}
		})
	}
}

// TestSearchIndexAfterChanges checks that updates and deletes keep the identifier and reference
// indexes in step with the resources.
func TestSearchIndexAfterChanges(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	count := func(q string) int {
		resp := mustDo(t, c, http.MethodGet, "/"+q, nil)
		total, _ := resp.body["total"].(float64)
		return int(total)
	}
	mustDo(t, c, http.MethodPut, "/Patient/x", []byte(`{"resourceType":"Patient","id":"x","identifier":[{"system":"s","value":"old"}]}`))
	mustDo(t, c, http.MethodPut, "/Observation/o", []byte(`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"c"},"subject":{"reference":"Patient/x"}}`))
	mustDo(t, c, http.MethodPut, "/Patient/x", []byte(`{"resourceType":"Patient","id":"x","identifier":[{"system":"s","value":"new"}]}`))
	mustDo(t, c, http.MethodPut, "/Observation/o", []byte(`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"c"},"subject":{"reference":"Patient/y"}}`))
	got := fmt.Sprint(count("Patient?identifier=s|old"), count("Patient?identifier=s|new"), count("Patient?identifier=new"),
		count("Observation?subject=Patient/x"), count("Observation?patient=y"))
	if got != "0 1 1 0 1" {
		t.Errorf("after updates: %s, want 0 1 1 0 1", got)
	}
	mustDo(t, c, http.MethodDelete, "/Patient/x", nil)
	mustDo(t, c, http.MethodDelete, "/Observation/o", nil)
	got = fmt.Sprint(count("Patient?identifier=s|new"), count("Observation?patient=y"), count("Patient"), srv.Count("Patient"))
	if got != "0 0 0 0" {
		t.Errorf("after deletes: %s, want 0 0 0 0", got)
	}
}
