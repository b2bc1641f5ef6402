package fhirtest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

func bundleOf(kind string, entries ...map[string]any) map[string]any {
	es := make([]any, len(entries))
	for i, e := range entries {
		es[i] = e
	}
	return map[string]any{"resourceType": "Bundle", "type": kind, "entry": es}
}

func req(method, url string, extra ...string) map[string]any {
	r := map[string]any{"method": method, "url": url}
	for i := 0; i+1 < len(extra); i += 2 {
		r[extra[i]] = extra[i+1]
	}
	return map[string]any{"request": r}
}

func withResource(e map[string]any, fullURL string, res map[string]any) map[string]any {
	e["resource"] = res
	if fullURL != "" {
		e["fullUrl"] = fullURL
	}
	return e
}

func TestTransactionFixture(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	body, err := os.ReadFile("testdata/transaction-encounter-20obs.json")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for round, want := range []int{201, 200, 200} {
		resp := mustDo(t, c, http.MethodPost, "", body)
		if resp.status != 200 || str(resp.body, "type") != "transaction-response" {
			t.Fatalf("round %d: %d %s", round, resp.status, resp.raw)
		}
		for i, s := range entryStatuses(resp.body) {
			if s != want {
				t.Errorf("round %d entry %d status %d, want %d", round, i, s, want)
			}
		}
		got := entryIDs(resp.body)
		if round == 0 {
			ids = got
		} else if !slices.Equal(got, ids) {
			t.Errorf("round %d ids changed: %v vs %v", round, got, ids)
		}
		entries := resp.body["entry"].([]any)
		first := entries[0].(map[string]any)
		if loc := str(first, "response", "location"); !strings.HasPrefix(loc, "Patient/"+ids[0]+"/_history/") {
			t.Errorf("location %q", loc)
		}
		if fu := str(first, "fullUrl"); fu != srv.URL+"/Patient/"+ids[0] {
			t.Errorf("fullUrl %q", fu)
		}
		if str(first, "response", "etag") == "" || str(first, "response", "lastModified") == "" {
			t.Errorf("response lacks etag or lastModified: %v", first["response"])
		}
	}
	if got := srv.Counts(); fmt.Sprint(got) != "map[Encounter:1 Observation:20 Patient:1]" {
		t.Errorf("counts %v", got)
	}
	// Every reference points to a stored resource; no urn:uuid survived.
	for _, raw := range srv.Resources("Observation") {
		if strings.Contains(string(raw), "urn:uuid:") {
			t.Errorf("unresolved reference in %s", raw)
		}
		var o map[string]any
		_ = json.Unmarshal(raw, &o)
		if str(o, "subject", "reference") != "Patient/"+ids[0] || str(o, "encounter", "reference") != "Encounter/"+ids[1] {
			t.Errorf("references %v %v", o["subject"], o["encounter"])
		}
	}
	// The PUT entries updated in place: version 3 after three rounds; the conditional create did not.
	enc, _ := srv.Resource("Encounter", ids[1])
	pat, _ := srv.Resource("Patient", ids[0])
	if !strings.Contains(string(enc), `"versionId":"3"`) || !strings.Contains(string(pat), `"versionId":"1"`) {
		t.Errorf("versions: encounter %s patient %s", enc, pat)
	}
}

// TestTransactionAtomic checks that every kind of failing entry leaves the store exactly as it was.
func TestTransactionAtomic(t *testing.T) {
	pu := "urn:uuid:" + uuid()
	newPatient := withResource(req("POST", "Patient"), pu, patient("urn:t", "new"))
	tests := []struct {
		name       string
		failing    map[string]any
		wantStatus int
		wantExpr   string
	}{
		{"read missing", req("GET", "Patient/missing"), 404, ""},
		{"vread missing version", req("GET", "Patient/keep/_history/9"), 404, ""},
		{"if-none-exist two matches", withResource(req("POST", "Patient", "ifNoneExist", "identifier=urn:t|dup"), "", patient("urn:t", "dup")), 412, "Bundle.entry[1].request.ifNoneExist"},
		{"conditional put two matches", withResource(req("PUT", "Patient?identifier=urn:t|dup"), "", patient("urn:t", "dup")), 412, "Bundle.entry[1].request.url"},
		{"if-match stale", withResource(req("PUT", "Patient/pa", "ifMatch", `W/"9"`), "", map[string]any{"resourceType": "Patient", "id": "pa"}), 412, ""},
		{"delete missing", req("DELETE", "Patient/missing"), 404, ""},
		{"duplicate identity", withResource(req("PUT", "Patient/keep"), "", map[string]any{"resourceType": "Patient", "id": "keep"}), 400, "Bundle.entry[2]"},
		{"invalid resource", withResource(req("POST", "Observation"), "", map[string]any{"resourceType": "Observation", "status": "final"}), 400, "Bundle.entry[1].resource.code"},
		{"type mismatch", withResource(req("POST", "Observation"), "", patient("urn:t", "x")), 400, "Bundle.entry[1].resource.resourceType"},
		{"unknown method", req("PATCH", "Patient/keep"), 400, "Bundle.entry[1].request.method"},
		{"missing url", req("GET", ""), 400, "Bundle.entry[1].request.url"},
		{"conditional put with body id", withResource(req("PUT", "Patient?identifier=urn:t|none"), "", map[string]any{"resourceType": "Patient", "id": "mine"}), 400, "Bundle.entry[1].resource.id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newClient(t, fhirtest.Config{})
			loadFixtures(t, srv, "testdata/search-fixtures.json")
			mustDo(t, c, http.MethodPut, "/Patient/keep", []byte(`{"resourceType":"Patient","id":"keep","identifier":[{"system":"urn:t","value":"keep"}]}`))
			mustDo(t, c, http.MethodPost, "/Patient", patient("urn:t", "dup"))
			mustDo(t, c, http.MethodPost, "/Patient", patient("urn:t", "dup"))
			before := snapshot(srv)
			entries := []map[string]any{newPatient, tt.failing,
				// Changes to existing resources that must be undone:
				withResource(req("PUT", "Patient/keep"), "", map[string]any{"resourceType": "Patient", "id": "keep", "active": true,
					"identifier": []any{map[string]any{"system": "urn:t", "value": "changed"}}}),
				req("DELETE", "Observation/o1"),
				withResource(req("PUT", "Observation?identifier=urn:t|o-new"), "", map[string]any{"resourceType": "Observation", "status": "final",
					"code": map[string]any{"text": "x"}, "identifier": []any{map[string]any{"system": "urn:t", "value": "o-new"}}, "subject": map[string]any{"reference": pu}}),
			}
			if tt.name == "duplicate identity" {
				entries = slices.Insert(entries, 2, withResource(req("PUT", "Patient/keep"), "", map[string]any{"resourceType": "Patient", "id": "keep"}))
				entries = slices.Delete(entries, 1, 2)
			}
			resp := mustDo(t, c, http.MethodPost, "", bundleOf("transaction", entries...))
			if resp.status != tt.wantStatus || str(resp.body, "resourceType") != "OperationOutcome" {
				t.Fatalf("status %d (want %d): %s", resp.status, tt.wantStatus, resp.raw)
			}
			if expr, _ := outcomeExpr(resp.body); tt.wantExpr != "" && expr != tt.wantExpr {
				t.Errorf("expression %q, want %q", expr, tt.wantExpr)
			}
			if after := snapshot(srv); after != before {
				t.Errorf("store changed by a failed transaction:\nbefore %s\nafter  %s", before, after)
			}
			// The indexes were restored too.
			for q, want := range map[string]int{"Patient?identifier=urn:t|keep": 1, "Patient?identifier=urn:t|changed": 0,
				"Patient?identifier=urn:t|new": 0, "Observation?patient=pa": 2, "Observation?identifier=urn:t|o-new": 0} {
				r := mustDo(t, c, http.MethodGet, "/"+q, nil)
				if total, _ := r.body["total"].(float64); int(total) != want {
					t.Errorf("%s: total %v, want %d", q, r.body["total"], want)
				}
			}
			// A write after the rollback gets the next version, not a skipped one.
			put := mustDo(t, c, http.MethodPut, "/Patient/keep", []byte(`{"resourceType":"Patient","id":"keep"}`))
			if put.header.Get("ETag") != `W/"2"` {
				t.Errorf("ETag after rollback %q, want W/\"2\"", put.header.Get("ETag"))
			}
		})
	}
}

// snapshot renders every stored resource, for before/after comparisons.
func snapshot(srv *fhirtest.Server) string {
	var b strings.Builder
	counts := srv.Counts()
	types := make([]string, 0, len(counts))
	for typ := range counts {
		types = append(types, typ)
	}
	slices.Sort(types)
	for _, typ := range types {
		for _, raw := range srv.Resources(typ) {
			b.Write(raw)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func TestTransactionSemantics(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	mustDo(t, c, http.MethodPut, "/Patient/gone", []byte(`{"resourceType":"Patient","id":"gone"}`))
	pu := "urn:uuid:" + strings.ToUpper(uuid())
	oddURN := "urn:uuid:not-a-uuid"
	resp := mustDo(t, c, http.MethodPost, "", bundleOf("transaction",
		// GET runs last, so it sees the entries created by this Bundle.
		req("GET", "Observation?subject="+pu),
		withResource(req("POST", "Observation"), "", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"text": "x"}, "subject": map[string]any{"reference": pu},
			"hasMember": []any{map[string]any{"reference": oddURN}, map[string]any{"reference": "urn:uuid:" + uuid()}},
			"text":      map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">see ` + pu + `</div>`}}),
		withResource(req("POST", "Patient"), pu, map[string]any{"resourceType": "Patient", "id": "client-id"}),
		withResource(req("PUT", "Basic/b1"), oddURN, map[string]any{"resourceType": "Basic", "id": "b1", "code": map[string]any{"text": "b"}}),
		req("DELETE", "Patient/gone"),
		req("GET", "http://ignored.example"+srv.BasePath()+"/Basic/b1"),
	))
	if resp.status != 200 {
		t.Fatalf("status %d: %s", resp.status, resp.raw)
	}
	if got := fmt.Sprint(entryStatuses(resp.body)); got != "[200 201 201 200 200 200]" {
		t.Errorf("statuses %s", got)
	}
	entries := resp.body["entry"].([]any)
	pid := str(entries[2].(map[string]any), "resource", "id")
	if pid == "client-id" || pid == "" {
		t.Errorf("POST entry kept the client id %q; the real server assigns a new one", pid)
	}
	obs := entries[1].(map[string]any)["resource"].(map[string]any)
	if got := str(obs, "subject", "reference"); got != "Patient/"+pid {
		t.Errorf("upper-case urn not rewritten: %q", got)
	}
	if got := str(obs, "hasMember", "0", "reference"); got != "Basic/b1" {
		t.Errorf("non-UUID urn fullUrl not rewritten: %q", got)
	}
	if got := str(obs, "hasMember", "1", "reference"); !strings.HasPrefix(got, "urn:uuid:") {
		t.Errorf("unknown urn changed: %q", got)
	}
	if got := str(obs, "text", "div"); !strings.Contains(got, "see Patient/"+pid+"</div>") {
		t.Errorf("narrative not rewritten: %q", got)
	}
	search := entries[0].(map[string]any)["resource"].(map[string]any)
	if str(search, "type") != "searchset" || search["total"] != float64(1) {
		t.Errorf("GET search entry: %v", search)
	}
	if str(entries[4].(map[string]any), "response", "outcome", "resourceType") != "OperationOutcome" {
		t.Errorf("DELETE entry lacks outcome: %v", entries[4])
	}
	if str(entries[5].(map[string]any), "resource", "id") != "b1" {
		t.Errorf("absolute GET url: %v", entries[5])
	}
	if _, ok := srv.Resource("Patient", "gone"); ok {
		t.Error("deleted Patient still stored")
	}
}

func TestBatch(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	mustDo(t, c, http.MethodPost, "/Patient", patient("urn:t", "dup"))
	mustDo(t, c, http.MethodPost, "/Patient", patient("urn:t", "dup"))
	resp := mustDo(t, c, http.MethodPost, "", bundleOf("batch",
		withResource(req("POST", "Patient"), "", patient("urn:t", "b1")),
		req("GET", "Patient/missing"),
		withResource(req("POST", "Patient", "ifNoneExist", "identifier=urn:t|dup"), "", patient("urn:t", "dup")),
		withResource(req("PUT", "Patient?identifier=urn:t|dup"), "", patient("urn:t", "dup")),
		req("PATCH", "Patient/x"),
		withResource(req("PUT", "Patient?identifier=urn:t|b2"), "", patient("urn:t", "b2")),
	))
	if resp.status != 200 || str(resp.body, "type") != "batch-response" {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	if got := fmt.Sprint(entryStatuses(resp.body)); got != "[201 404 412 412 400 201]" {
		t.Errorf("statuses %s", got)
	}
	entries := resp.body["entry"].([]any)
	if str(entries[1].(map[string]any), "response", "outcome", "resourceType") != "OperationOutcome" {
		t.Errorf("failed entry lacks outcome: %v", entries[1])
	}
	if n := srv.Count("Patient"); n != 4 {
		t.Errorf("count %d, want 4 (2 seeded + 2 from the batch)", n)
	}
	// An invalid resource fails the whole batch, as on the real server.
	bad := mustDo(t, c, http.MethodPost, "", bundleOf("batch",
		withResource(req("POST", "Patient"), "", patient("urn:t", "b3")),
		withResource(req("POST", "Observation"), "", map[string]any{"resourceType": "Observation"})))
	if bad.status != 400 || srv.Count("Patient") != 4 {
		t.Errorf("invalid batch: %d, count %d: %s", bad.status, srv.Count("Patient"), bad.raw)
	}
}

func TestBundleErrors(t *testing.T) {
	_, c := newClient(t, fhirtest.Config{})
	tests := []struct {
		name, body, wantExpr string
	}{
		{"not a bundle", `{"resourceType":"Patient"}`, "resourceType"},
		{"document", `{"resourceType":"Bundle","type":"document","entry":[{}]}`, "Bundle.type"},
		{"no entries", `{"resourceType":"Bundle","type":"transaction"}`, "Bundle.entry"},
		{"entry not object", `{"resourceType":"Bundle","type":"batch","entry":[1]}`, "Bundle.entry[0]"},
		{"missing resource", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"}}]}`, "Bundle.entry[0].resource"},
		{"unknown type in url", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Foo/1"}}]}`, "Bundle.entry[0].request.url"},
		{"post with id", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient/1"}}]}`, "Bundle.entry[0].request.url"},
		{"conditional delete", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient?identifier=x"}}]}`, "Bundle.entry[0].request.url"},
		{"bad search", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient?name=x"}}]}`, "name"},
		{"bad ifNoneExist", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"name=x"}}]}`, "name"},
		{"put id mismatch", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","id":"a"},"request":{"method":"PUT","url":"Patient/b"}}]}`, "Bundle.entry[0].resource.id"},
		{"foreign absolute url", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"http://x.example/other/Patient/1"}}]}`, "Bundle.entry[0].request.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := mustDo(t, c, http.MethodPost, "", []byte(tt.body))
			if resp.status != 400 {
				t.Fatalf("status %d, want 400: %s", resp.status, resp.raw)
			}
			if expr, _ := outcomeExpr(resp.body); expr != tt.wantExpr {
				t.Errorf("expression %q, want %q: %s", expr, tt.wantExpr, resp.raw)
			}
		})
	}
}

// TestReferentialIntegrity: with Config.ReferentialIntegrity a transaction
// after which a written resource references (Type/id) a resource the
// server does not hold is refused whole with 400, as HAPI FHIR's default
// enforce_referential_integrity_on_write does (HAPI-1094 "Resource
// Patient/x not found, specified in path: Encounter.subject"). A resource
// the same transaction writes, one already stored, a reference by
// identifier only, an absolute URL and a contained resource are fine.
// Without the option nothing is checked.
func TestReferentialIntegrity(t *testing.T) {
	patient := func(id string) map[string]any {
		return withResource(req("PUT", "Patient/"+id), "", map[string]any{"resourceType": "Patient", "id": id})
	}
	encounter := func(id string, subject map[string]any, more ...map[string]any) map[string]any {
		res := map[string]any{"resourceType": "Encounter", "id": id, "status": "finished",
			"class": map[string]any{"code": "AMB"}, "subject": subject}
		for _, m := range more {
			for k, v := range m {
				res[k] = v
			}
		}
		return withResource(req("PUT", "Encounter/"+id), "", res)
	}
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	tests := []struct {
		name    string
		on      bool
		entries []map[string]any
		status  int
		written int // resources stored after the request
	}{
		{"a patient written in the same transaction, after", true,
			[]map[string]any{encounter("e1", ref("Patient/p1")), patient("p1")}, 200, 2},
		{"a patient the server does not hold", true,
			[]map[string]any{patient("p2"), encounter("e2", ref("Patient/p-unknown"))}, 400, 0},
		{"a versioned reference", true,
			[]map[string]any{patient("p3"), encounter("e3", ref("Patient/p3/_history/1"))}, 200, 2},
		{"identifier only", true,
			[]map[string]any{encounter("e4", map[string]any{"identifier": map[string]any{"system": "s", "value": "v"}})}, 200, 1},
		{"an absolute URL", true, []map[string]any{encounter("e5", ref("https://elsewhere.example.org/fhir/Patient/x"))}, 200, 1},
		{"a contained resource", true, []map[string]any{encounter("e6", ref("#p"),
			map[string]any{"contained": []any{map[string]any{"resourceType": "Patient", "id": "p",
				"link": []any{map[string]any{"other": ref("Patient/p-unknown"), "type": "seealso"}}}}})}, 200, 1},
		{"deep in the resource", true, []map[string]any{patient("p7"),
			encounter("e7", ref("Patient/p7"), map[string]any{"participant": []any{map[string]any{"individual": ref("Practitioner/pr-unknown")}}})},
			400, 0},
		{"off by default", false, []map[string]any{encounter("e8", ref("Patient/p-unknown"))}, 200, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newClient(t, fhirtest.Config{ReferentialIntegrity: tt.on})
			resp := mustDo(t, c, http.MethodPost, "", bundleOf("transaction", tt.entries...))
			if resp.status != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.status, resp.raw)
			}
			if tt.status == 400 && !strings.Contains(string(resp.raw), "not found, specified in path") {
				t.Errorf("outcome %s does not name the reference", resp.raw)
			}
			n := 0
			for _, c := range srv.Counts() {
				n += c
			}
			if n != tt.written {
				t.Errorf("%d resources stored, want %d (%v)", n, tt.written, srv.Counts())
			}
		})
	}
}

// TestDuplicateFullURL: a transaction naming one fullUrl twice is refused
// (400, nothing written), as HAPI's BaseTransactionProcessor refuses it
// ("Transaction bundle contains multiple resources with ID"); a batch's
// entries are independent.
func TestDuplicateFullURL(t *testing.T) {
	for _, kind := range []string{"transaction", "batch"} {
		t.Run(kind, func(t *testing.T) {
			srv, c := newClient(t, fhirtest.Config{})
			const u = "urn:uuid:0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"
			resp := mustDo(t, c, http.MethodPost, "", bundleOf(kind,
				withResource(req("POST", "Patient"), u, map[string]any{"resourceType": "Patient"}),
				withResource(req("POST", "Patient"), u, map[string]any{"resourceType": "Patient"})))
			want, stored := 400, 0
			if kind == "batch" {
				want, stored = 200, 2
			}
			if resp.status != want {
				t.Fatalf("status %d, want %d: %s", resp.status, want, resp.raw)
			}
			if got := srv.Counts()["Patient"]; got != stored {
				t.Errorf("%d Patients stored, want %d", got, stored)
			}
		})
	}
}

// TestConditionalEntriesOfOneResource pins what the e2e server (@medplum/fhir-router 5.2.13)
// answers, observed there by the "duplicate conditional updates in a Bundle" and "duplicate
// conditional creates in a Bundle" scenarios: a conditional update whose search matched nothing
// when the Bundle was read is searched again when it runs (repo.ts conditionalUpdate), so one that
// matches what an earlier entry wrote fails (400, "Resource ID did not match resolved ID"); two
// If-None-Exist entries that match one existing resource both answer 200 with it.
func TestConditionalEntriesOfOneResource(t *testing.T) {
	patient := func(active bool) map[string]any {
		return map[string]any{"resourceType": "Patient", "active": active, "identifier": []any{map[string]any{"system": "urn:s", "value": "v"}}}
	}
	put := func(active bool) map[string]any {
		return withResource(req("PUT", "Patient?identifier=urn:s|v"), "urn:uuid:"+uuid(), patient(active))
	}
	post := func() map[string]any {
		return withResource(req("POST", "Patient", "ifNoneExist", "identifier=urn:s|v"), "urn:uuid:"+uuid(), patient(false))
	}
	tests := []struct {
		name     string
		existing bool
		bundle   map[string]any
		want     int
		entries  string // entry statuses of a 200 answer
		stored   int
	}{
		{"two conditional updates, none exists", false, bundleOf("transaction", put(true), put(false)), 400, "", 0},
		{"two conditional updates in a batch, none exists", false, bundleOf("batch", put(true), put(false)), 200, "[201 400]", 1},
		{"a conditional update of what a POST creates", false,
			bundleOf("transaction", put(true), withResource(req("POST", "Patient"), "", patient(false))), 400, "", 0},
		{"two conditional updates, one exists (identity overlap)", true, bundleOf("transaction", put(true), put(false)), 400, "", 1},
		{"two conditional creates, none exists", false, bundleOf("transaction", post(), post()), 200, "[201 200]", 1},
		{"two conditional creates, one exists", true, bundleOf("transaction", post(), post()), 200, "[200 200]", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := newClient(t, fhirtest.Config{})
			if tc.existing {
				mustDo(t, c, http.MethodPost, "/Patient", patient(false))
			}
			resp := mustDo(t, c, http.MethodPost, "", tc.bundle)
			if resp.status != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.want, resp.raw)
			}
			if got := fmt.Sprint(entryStatuses(resp.body)); tc.want == 200 && got != tc.entries {
				t.Errorf("entry statuses %s, want %s", got, tc.entries)
			}
			if got := srv.Count("Patient"); got != tc.stored {
				t.Errorf("%d Patients stored, want %d", got, tc.stored)
			}
		})
	}
}
