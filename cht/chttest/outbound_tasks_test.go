package chttest

import (
	"context"
	"net/url"
	"testing"
	"time"
)

// TestOutboundTasks pins the queue Sentinel keeps in medic-sentinel: a
// failed push creates task:outbound:<doc id> {type, created, doc_id,
// queue: [push name]} (shared-libs/transitions/src/transitions/
// mark_for_outbound.js markForOutbound), an existing task is not topped
// up, a successful retry empties the queue and deletes the task, and the
// task of a doc that is gone is deleted (sentinel/src/schedule/outbound.js
// removeConfigKeyFromTask and removeInvalidTasks). Only database admins
// read the database.
func TestOutboundTasks(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	srv := newTestServer(t, Config{Now: func() time.Time { return now }})
	srv.AddUser(User{Name: "online", Password: "pw", Roles: []string{RoleOnline}})
	dest := newDestination(t, reply(502, "", ""))
	newPusher := func(name string) *OutboundPusher {
		p, err := NewOutboundPusher(PusherConfig{Name: name, URL: dest.URL, Mapping: map[string]any{"id": "doc._id"},
			Server: srv, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := newPusher("fhir_a"), newPusher("fhir_b")
	for _, id := range []string{"r1", "r2"} {
		if _, err := srv.PutDoc(map[string]any{"_id": id, "type": "data_record", "form": "F"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	_, _ = a.Sync(ctx)
	_, _ = b.Sync(ctx)
	if len(a.Queue()) != 2 || len(b.Queue()) != 0 {
		t.Fatalf("queues a %v b %v: the second push's failures must not top up existing tasks", a.Queue(), b.Queue())
	}
	tasks := func() []any {
		t.Helper()
		q := url.Values{"startkey": {`"task:outbound:"`}, "endkey": {`"task:outbound:` + "\ufff0" + `"`}, "include_docs": {"true"}}
		r := do(t, srv, call{method: "GET", path: "/medic-sentinel/_all_docs?" + q.Encode()})
		if r.status != 200 {
			t.Fatalf("_all_docs: %d %s", r.status, r.body)
		}
		rows, _ := r.obj(t)["rows"].([]any)
		return rows
	}
	rows := tasks()
	if len(rows) != 2 {
		t.Fatalf("%d task docs, want 2", len(rows))
	}
	doc := get(rows[0], "doc")
	if get(doc, "_id") != "task:outbound:r1" || get(doc, "type") != "task:outbound" || get(doc, "doc_id") != "r1" ||
		mustMarshal(t, get(doc, "queue")) != `["fhir_a"]` || mustMarshal(t, get(doc, "created")) != "1772359200000" {
		t.Errorf("task doc %v", doc)
	}
	if r := do(t, srv, call{method: "GET", path: "/medic-sentinel/task:outbound:r1", user: "online", pass: "pw"}); r.status != 403 {
		t.Errorf("a non-admin read the sentinel db: %d", r.status)
	}

	rev := srv.store.currentRev("r2")
	if _, err := srv.PutDoc(map[string]any{"_id": "r2", "_rev": rev, "_deleted": true}); err != nil {
		t.Fatal(err)
	}
	dest.setRespond(reply(200, "application/json", "{}"))
	now = now.Add(5 * time.Minute)
	if err := a.RunQueue(ctx); err != nil {
		t.Fatal(err)
	}
	if rows := tasks(); len(rows) != 0 || len(a.Queue()) != 0 {
		t.Errorf("after a successful retry and a deleted doc: %d task docs, queue %v", len(rows), a.Queue())
	}
	if a.CountOutcome(OutcomeDropped) != 1 || a.CountOutcome(OutcomeSent) != 1 {
		t.Errorf("outcomes: %+v", a.Attempts())
	}
}
