package chttest

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func benchServer(b *testing.B, reports int) *Server {
	b.Helper()
	srv := NewDemoServer(Config{LoginRateLimit: -1})
	b.Cleanup(srv.Close)
	for i := range reports {
		_, err := srv.PutDoc(map[string]any{"_id": "r" + strconv.Itoa(i), "type": "data_record", "form": "assessment",
			"reported_date": 1742467356000 + i, "fields": map[string]any{"patient_id": "13987", "fever": "yes"},
			"contact": map[string]any{"_id": DemoCHWID, "parent": map[string]any{"_id": DemoCHWAreaID}}})
		if err != nil {
			b.Fatal(err)
		}
	}
	return srv
}

// BenchmarkHydrate100 measures POST /api/v1/hydrate with 100 report ids
// over loopback HTTP.
func BenchmarkHydrate100(b *testing.B) {
	srv := benchServer(b, 100)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = `"r` + strconv.Itoa(i) + `"`
	}
	body := `{"doc_ids":[` + strings.Join(ids, ",") + `]}`
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := doB(b, srv, "POST", "/api/v1/hydrate", body)
		if r != 200 {
			b.Fatalf("status %d", r)
		}
	}
}

// BenchmarkChangesPage measures one 1,000-row _changes page with docs out
// of a 20,000-doc database.
func BenchmarkChangesPage(b *testing.B) {
	srv := benchServer(b, 20000)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		since := (i * 1000) % 19000
		i++
		if r := doB(b, srv, "GET", fmt.Sprintf("/medic/_changes?include_docs=true&limit=1000&since=%d", since), ""); r != 200 {
			b.Fatalf("status %d", r)
		}
	}
}

// BenchmarkRecordsV2 measures one JSON records submission.
func BenchmarkRecordsV2(b *testing.B) {
	srv := benchServer(b, 0)
	body := `{"_meta":{"form":"HEIGHT_WEIGHT","from":"+254712345679"},"patient_uuid":"` + DemoPatientID + `","height":172,"weight":65}`
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r := doB(b, srv, "POST", "/api/v2/records", body); r != 200 {
			b.Fatalf("status %d", r)
		}
	}
}

func doB(b *testing.B, srv *Server, method, path, body string) int {
	b.Helper()
	req, err := newReq(method, srv.URL+path, body)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func newReq(method, url, body string) (*http.Request, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(AdminUsername, AdminPassword)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return req, nil
}
