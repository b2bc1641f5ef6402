package cht_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// fakeSentinelDB answers GET /medic-sentinel/_all_docs as CouchDB does for startkey, endkey
// (inclusive), limit, skip and include_docs, over docs sorted by id.
func fakeSentinelDB(t *testing.T, docs map[string]map[string]any, calls *int) *httptest.Server {
	return fakeSentinelDBDeleting(t, docs, calls, false)
}

// fakeSentinelDBDeleting is fakeSentinelDB that, when deleteLast is set, deletes the last row of
// each page it answers, as Sentinel deletes a task once its push succeeded
// (shared-libs/outbound/src/outbound.js removes the task document).
func fakeSentinelDBDeleting(t *testing.T, docs map[string]map[string]any, calls *int, deleteLast bool) *httptest.Server {
	ids := make([]string, 0, len(docs))
	for id := range docs {
		ids = append(ids, id)
	}
	sort.Strings(ids) // CouchDB collates ASCII ids of one case like this
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*calls++
		if r.URL.Path != "/medic-sentinel/_all_docs" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if u, p, _ := r.BasicAuth(); u != "admin" || p != "pass" {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":"forbidden","reason":"You are not allowed to access this db."}`))
			return
		}
		q := r.URL.Query()
		var start, end string
		_ = json.Unmarshal([]byte(q.Get("startkey")), &start)
		_ = json.Unmarshal([]byte(q.Get("endkey")), &end)
		limit, _ := strconv.Atoi(q.Get("limit"))
		skip, _ := strconv.Atoi(q.Get("skip"))
		var rows []any
		for _, id := range ids {
			if id < start || id > end {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			if limit > 0 && len(rows) == limit {
				break
			}
			row := map[string]any{"id": id, "key": id, "value": map[string]any{"rev": "1-a"}}
			if q.Get("include_docs") == "true" {
				row["doc"] = docs[id]
			}
			rows = append(rows, row)
		}
		if deleteLast && len(rows) > 0 {
			gone := rows[len(rows)-1].(map[string]any)["id"]
			ids = slices.DeleteFunc(ids, func(id string) bool { return id == gone })
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"total_rows": len(ids), "offset": 0, "rows": rows})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOutboundQueue(t *testing.T) {
	docs := map[string]map[string]any{
		"a-info":       {"_id": "a-info", "type": "info"},
		"zzz":          {"_id": "zzz"},
		"task:other:1": {"_id": "task:other:1"},
	}
	for i := range 2500 { // more than one page of 1000
		id := fmt.Sprintf("task:outbound:doc%04d", i)
		docs[id] = map[string]any{"_id": id, "type": "task:outbound", "created": 1730355950419 + i, "doc_id": fmt.Sprintf("doc%04d", i), "queue": []string{"fhir"}}
	}
	var calls int
	srv := fakeSentinelDB(t, docs, &calls)
	c, err := cht.New(cht.Config{URL: srv.URL, Username: "admin", Password: "pass", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := c.OutboundQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2500 || calls != 3 {
		t.Fatalf("%d tasks in %d requests, want 2500 in 3", len(tasks), calls)
	}
	for i, tk := range tasks {
		if want := fmt.Sprintf("doc%04d", i); tk.DocID != want || tk.ID != "task:outbound:"+want || len(tk.Queue) != 1 || tk.Queue[0] != "fhir" {
			t.Fatalf("task %d = %+v, want doc %s", i, tk, want)
		}
	}
	if got := tasks[0].Created.String(); got != "2024-10-31T06:25:50.419Z" {
		t.Errorf("created = %s", got)
	}

	// Sentinel deletes the task that ends each page before the next page
	// is read: the next page starts after it, and no other task is missed.
	calls = 0
	deleting := fakeSentinelDBDeleting(t, docs, &calls, true)
	dc, err := cht.New(cht.Config{URL: deleting.URL, Username: "admin", Password: "pass", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err = dc.OutboundQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tk := range tasks {
		seen[tk.DocID] = true
	}
	for i := range 2500 {
		if id := fmt.Sprintf("doc%04d", i); !seen[id] {
			t.Errorf("task of %s missed", id)
		}
	}
	if len(tasks) != 2500 {
		t.Errorf("%d tasks, want 2500 (each once)", len(tasks))
	}

	// The database is readable by admins only (cht-core restrict-access-to-sentinel-db).
	offline, err := cht.New(cht.Config{URL: srv.URL, Username: "chw", Password: "pass", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := offline.OutboundQueue(context.Background()); !errors.Is(err, cht.ErrForbidden) {
		t.Errorf("non-admin: err = %v, want ErrForbidden", err)
	}
}
