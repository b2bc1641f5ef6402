package fhir_test

// Smoke e2e test against the real FHIR server started by .ci/stack.sh (medplum fhir-router).
// It uses plain net/http on purpose: it checks the harness, not the library.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// e2eFHIRBase returns FHIR_BASE_URL, or skips the test when it is not set.
func e2eFHIRBase(t *testing.T) string {
	t.Helper()
	base := strings.TrimRight(os.Getenv("FHIR_BASE_URL"), "/")
	if base == "" {
		t.Skip("FHIR_BASE_URL not set; run the stack with `bash .ci/stack.sh start` (see .ci/README.md)")
	}
	return base
}

type e2eFHIRResponse struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func e2eFHIRDo(t *testing.T, client *http.Client, method, u string, header http.Header, body any) e2eFHIRResponse {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("marshal request body: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, u, err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: FHIR server unreachable: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	out := e2eFHIRResponse{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: status %d, body is not JSON: %v: %s", method, u, resp.StatusCode, err, raw)
		}
	}
	return out
}

func TestE2EFHIRConditionalCreate(t *testing.T) {
	base := e2eFHIRBase(t)
	client := &http.Client{Timeout: 20 * time.Second}

	const system = "https://cht-interop.example/e2e-smoke"
	value := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	patient := map[string]any{
		"resourceType": "Patient",
		"identifier":   []any{map[string]any{"system": system, "value": value}},
		"name":         []any{map[string]any{"family": "Smoke", "given": []any{"E2E"}}},
		"gender":       "female",
		"birthDate":    "1990-04-01",
	}
	cond := http.Header{"If-None-Exist": {"identifier=" + url.QueryEscape(system+"|"+value)}}

	first := e2eFHIRDo(t, client, http.MethodPost, base+"/Patient", cond, patient)
	if first.status != http.StatusCreated {
		t.Fatalf("first conditional create: status %d, want 201: %s", first.status, first.raw)
	}
	id, _ := first.body["id"].(string)
	if id == "" {
		t.Fatalf("first conditional create: no id in body: %s", first.raw)
	}
	if rt := first.body["resourceType"]; rt != "Patient" {
		t.Errorf("first conditional create: resourceType %v, want Patient", rt)
	}
	if loc := first.header.Get("Location"); !strings.Contains(loc, "/Patient/"+id) {
		t.Errorf("first conditional create: Location %q does not name Patient/%s", loc, id)
	}

	second := e2eFHIRDo(t, client, http.MethodPost, base+"/Patient", cond, patient)
	if second.status != http.StatusOK {
		t.Fatalf("second conditional create: status %d, want 200: %s", second.status, second.raw)
	}
	if got, _ := second.body["id"].(string); got != id {
		t.Errorf("second conditional create: id %q, want the first one %q", got, id)
	}

	search := e2eFHIRDo(t, client, http.MethodGet,
		base+"/Patient?identifier="+url.QueryEscape(system+"|"+value), nil, nil)
	if search.status != http.StatusOK {
		t.Fatalf("search: status %d: %s", search.status, search.raw)
	}
	if rt := search.body["resourceType"]; rt != "Bundle" {
		t.Fatalf("search: resourceType %v, want Bundle: %s", rt, search.raw)
	}
	entries, _ := search.body["entry"].([]any)
	if len(entries) != 1 {
		t.Fatalf("search by identifier: %d entries, want exactly 1: %s", len(entries), search.raw)
	}
	res, _ := entries[0].(map[string]any)["resource"].(map[string]any)
	if got, _ := res["id"].(string); got != id {
		t.Errorf("search: found id %q, want %q", got, id)
	}

	// The server validates writes: an invalid Patient must be refused with an OperationOutcome.
	bad := e2eFHIRDo(t, client, http.MethodPost, base+"/Patient", nil,
		map[string]any{"resourceType": "Patient", "birthDate": "not-a-date"})
	if bad.status != http.StatusBadRequest || bad.body["resourceType"] != "OperationOutcome" {
		t.Errorf("invalid Patient: status %d, want 400 with an OperationOutcome: %s", bad.status, bad.raw)
	}
}
