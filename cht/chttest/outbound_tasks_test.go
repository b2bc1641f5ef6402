package chttest

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// taskDocs reads medic-sentinel's task:outbound documents as CHT's
// outbound queue watchers do (_all_docs, as a database admin).
func taskDocs(t *testing.T, srv *Server) []any {
	t.Helper()
	q := url.Values{"startkey": {`"task:outbound:"`}, "endkey": {`"task:outbound:` + "\ufff0" + `"`}, "include_docs": {"true"}}
	r := do(t, srv, call{method: "GET", path: "/medic-sentinel/_all_docs?" + q.Encode()})
	require.Equal(t, 200, r.status, "_all_docs: %s", r.body)
	rows, _ := r.obj(t)["rows"].([]any)
	docs := make([]any, 0, len(rows))
	for _, row := range rows {
		docs = append(docs, get(row, "doc"))
	}
	return docs
}

// taskQueue returns the queue of docID's task, nil when it has none.
func taskQueue(t *testing.T, srv *Server, docID string) []string {
	t.Helper()
	for _, d := range taskDocs(t, srv) {
		if get(d, "doc_id") != docID {
			continue
		}
		raw, _ := get(d, "queue").([]any)
		q := make([]string, 0, len(raw))
		for _, v := range raw {
			q = append(q, v.(string))
		}
		return q
	}
	return nil
}

// TestOutboundTasks pins the queue Sentinel keeps in medic-sentinel: the
// pushes of one change that fail go into one task:outbound:<doc id>
// {type, created, doc_id, queue: [push names]}
// (shared-libs/transitions/src/transitions/mark_for_outbound.js
// markForOutbound); a successful retry removes queue.splice(name, 1)'s
// entry, the first for these names, and the task goes when its queue is
// empty; the task of a doc that is gone is deleted with every push it lists
// (sentinel/src/schedule/outbound.js removeConfigKeyFromTask and
// removeInvalidTasks, cht-core 5.2.0). Only database admins read the
// database.
func TestOutboundTasks(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	srv := newTestServer(t, Config{Now: func() time.Time { return now }})
	srv.AddUser(User{Name: "online", Password: "pw", Roles: []string{RoleOnline}})
	dest := newDestination(t, reply(502, "", ""))
	newPusher := func(name string) *OutboundPusher {
		p, err := NewOutboundPusher(PusherConfig{Name: name, URL: dest.URL, Mapping: map[string]any{"id": "doc._id"},
			Server: srv, Now: func() time.Time { return now }})
		require.NoError(t, err)
		return p
	}
	a, b := newPusher("fhir_a"), newPusher("fhir_b")
	for _, id := range []string{"r1", "r2"} {
		_, err := srv.PutDoc(map[string]any{"_id": id, "type": "data_record", "form": "F"})
		require.NoError(t, err)
	}
	ctx := context.Background()
	_, _ = a.Sync(ctx)
	_, _ = b.Sync(ctx)
	assert.Equal(t, []string{"r1", "r2"}, a.Queue())
	assert.Equal(t, []string{"r1", "r2"}, b.Queue(), "markForOutbound queues every push of the change that failed")
	docs := taskDocs(t, srv)
	require.Len(t, docs, 2)
	doc := docs[0]
	assert.Equal(t, "task:outbound:r1", get(doc, "_id"))
	assert.Equal(t, "task:outbound", get(doc, "type"))
	assert.Equal(t, "r1", get(doc, "doc_id"))
	assert.Equal(t, `["fhir_a","fhir_b"]`, mustMarshal(t, get(doc, "queue")))
	assert.Equal(t, "1772359200000", mustMarshal(t, get(doc, "created")))
	r := do(t, srv, call{method: "GET", path: "/medic-sentinel/task:outbound:r1", user: "online", pass: "pw"})
	assert.Equal(t, 403, r.status, "a non-admin read the sentinel db")

	rev := srv.store.currentRev("r2")
	_, err := srv.PutDoc(map[string]any{"_id": "r2", "_rev": rev, "_deleted": true})
	require.NoError(t, err)
	dest.setRespond(reply(200, "application/json", "{}"))
	now = now.Add(5 * time.Minute)
	require.NoError(t, a.RunQueue(ctx))
	assert.Equal(t, 1, a.CountOutcome(OutcomeDropped))
	assert.Equal(t, 1, a.CountOutcome(OutcomeSent))
	assert.Empty(t, a.Queue())
	assert.Equal(t, []string{"fhir_b"}, taskQueue(t, srv, "r1"))
	assert.Nil(t, taskQueue(t, srv, "r2"), "removeInvalidTasks deletes the task with fhir_b's entry")
	assert.Equal(t, []string{"r1"}, b.Queue())

	require.NoError(t, b.RunQueue(ctx))
	assert.Equal(t, 1, b.CountOutcome(OutcomeSent))
	assert.Empty(t, b.Queue())
	assert.Empty(t, taskDocs(t, srv), "the task goes with its last entry")
}

// TestOutboundTaskCollectsTheFailuresOfOneChange pins how
// shared-libs/transitions/src/transitions/mark_for_outbound.js
// markForOutbound (cht-core 5.2.0; the same since 4.5) queues a change: it
// runs every relevant push, collects the names of those outside their cron
// window (while it walks the settings, before any send) and then of those
// whose send failed, each in the settings' order, and writes one task with
// that queue once all have run; when the doc already has a task it writes
// nothing. The fake's pushers (created in the settings' order) process the
// change one after the other, in any order.
func TestOutboundTaskCollectsTheFailuresOfOneChange(t *testing.T) {
	type push struct {
		name string
		fail bool
		cron string // one outside the window queues the push unsent
	}
	tests := []struct {
		name   string
		pushes []push
		order  []int // the order the pushers process the change
		revise int   // >0: the doc is saved again after this many pushers
		noRev  bool  // the change is a doc without _rev (the API's pass before the save)
		want   []string
	}{
		{
			name:   "every failed push, in the settings' order",
			pushes: []push{{name: "a", fail: true}, {name: "b"}, {name: "c", fail: true}},
			order:  []int{2, 1, 0},
			want:   []string{"a", "c"},
		},
		{
			name:   "pushes outside their cron window come first",
			pushes: []push{{name: "a", fail: true}, {name: "b", cron: "0 3 * * *"}, {name: "c", fail: true}},
			order:  []int{0, 1, 2},
			want:   []string{"b", "a", "c"},
		},
		{
			name:   "the API's pass before the report is saved is one change",
			pushes: []push{{name: "a", fail: true}, {name: "b", fail: true}},
			order:  []int{1, 0},
			noRev:  true,
			want:   []string{"a", "b"},
		},
		{
			name:   "a later revision's failure does not top the task up",
			pushes: []push{{name: "a", fail: true}, {name: "b", fail: true}},
			order:  []int{0, 1},
			revise: 1,
			want:   []string{"a"},
		},
		{
			// Two docs of one id without _rev handed to Push are two
			// changes (markForOutbound runs per change): the second's
			// failure does not top the first's task up.
			name:   "two different docs without _rev are two changes",
			pushes: []push{{name: "a", fail: true}, {name: "b", fail: true}},
			order:  []int{0, 1},
			noRev:  true,
			revise: 1,
			want:   []string{"a"},
		},
		{
			name:   "no task when every push is sent",
			pushes: []push{{name: "a"}, {name: "b"}},
			order:  []int{0, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			srv := newTestServer(t, Config{Now: clock})
			pushers := make([]*OutboundPusher, len(tt.pushes))
			for i, ps := range tt.pushes {
				status := 200
				if ps.fail {
					status = 503
				}
				dest := newDestination(t, reply(status, "application/json", "{}"))
				p, err := NewOutboundPusher(PusherConfig{Name: ps.name, URL: dest.URL, Cron: ps.cron,
					Mapping: map[string]any{"id": "doc._id"}, Server: srv, Now: clock})
				require.NoError(t, err)
				pushers[i] = p
			}
			rev, err := srv.PutDoc(map[string]any{"_id": "r1", "type": "data_record", "form": "F"})
			require.NoError(t, err)
			ctx := context.Background()
			for n, i := range tt.order {
				if tt.revise > 0 && n == tt.revise {
					// PutDoc keeps a _rev it is given; without one it
					// writes the next revision.
					rev2, err := srv.PutDoc(map[string]any{"_id": "r1", "type": "data_record", "form": "F", "v": 2})
					require.NoError(t, err)
					require.NotEqual(t, rev, rev2)
				}
				if tt.noRev {
					doc := map[string]any{"_id": "r1", "type": "data_record", "form": "F"}
					if tt.revise > 0 && n >= tt.revise {
						doc["v"] = 2
					}
					_, _ = pushers[i].Push(ctx, doc)
				} else {
					_, _ = pushers[i].Sync(ctx)
				}
			}
			assert.Equal(t, tt.want, taskQueue(t, srv, "r1"))
			for i, ps := range tt.pushes {
				queued := assert.ObjectsAreEqual([]string{"r1"}, pushers[i].Queue())
				assert.Equal(t, slices.Contains(tt.want, ps.name), queued, "push %s queue %v", ps.name, pushers[i].Queue())
			}
		})
	}
}

// TestOutboundTaskRetryRemovesTheEntrySpliceRemoves pins
// sentinel/src/schedule/outbound.js (cht-core 5.2.0; the same since 4.0):
// a run tries each push the task lists, in the queue's order, and after a
// success removeConfigKeyFromTask calls queue.splice(name, 1), which reads
// the push's name as an index (NaN, hence 0, for a name that is no
// number), and deletes the task when the queue is empty. So a success can
// remove another push's entry: that push is never retried, while the
// push that succeeded stays queued until a run finds it sent and removes
// an entry again. Each push failed at the change; the first run retries
// them with ok's answers, the second with every destination up.
func TestOutboundTaskRetryRemovesTheEntrySpliceRemoves(t *testing.T) {
	tests := []struct {
		name         string
		names        []string
		ok           []bool   // the first run's answers
		afterFirst   []string // the task's queue after the first run (nil: deleted)
		afterSecond  []string
		requests     []int // per push, after both runs
		alreadySent  []int // per push: retries that found the payload sent
		queuedAtLast []bool
	}{
		{
			name:  "the first entry goes, whichever push succeeded",
			names: []string{"fhir_a", "fhir_b"}, ok: []bool{false, true},
			afterFirst: []string{"fhir_b"}, afterSecond: nil,
			requests: []int{2, 2}, alreadySent: []int{0, 1}, queuedAtLast: []bool{false, false},
		},
		{
			name:  "both sent",
			names: []string{"fhir_a", "fhir_b"}, ok: []bool{true, true},
			afterFirst: nil, afterSecond: nil,
			requests: []int{2, 2}, alreadySent: []int{0, 0}, queuedAtLast: []bool{false, false},
		},
		{
			name:  "a name that is a number is an index",
			names: []string{"fhir", "1"}, ok: []bool{false, true},
			afterFirst: []string{"fhir"}, afterSecond: nil,
			requests: []int{3, 2}, alreadySent: []int{0, 0}, queuedAtLast: []bool{false, false},
		},
		{
			name:  "a number past the end removes nothing: the task stays",
			names: []string{"fhir", "5"}, ok: []bool{false, true},
			afterFirst: []string{"fhir", "5"}, afterSecond: []string{"5"},
			requests: []int{3, 2}, alreadySent: []int{0, 1}, queuedAtLast: []bool{false, true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, Config{})
			pushers := make([]*OutboundPusher, len(tt.names))
			dests := make([]*destination, len(tt.names))
			for i, name := range tt.names {
				dests[i] = newDestination(t, reply(503, "", ""))
				p, err := NewOutboundPusher(PusherConfig{Name: name, URL: dests[i].URL,
					Mapping: map[string]any{"id": "doc._id"}, Server: srv})
				require.NoError(t, err)
				pushers[i] = p
			}
			_, err := srv.PutDoc(map[string]any{"_id": "r1", "type": "data_record", "form": "F"})
			require.NoError(t, err)
			ctx := context.Background()
			for _, p := range pushers {
				_, _ = p.Sync(ctx)
			}
			require.Equal(t, tt.names, taskQueue(t, srv, "r1"))

			run := func() {
				for _, p := range pushers {
					_ = p.RunQueue(ctx)
				}
			}
			for i, ok := range tt.ok {
				if ok {
					dests[i].setRespond(reply(200, "application/json", "{}"))
				}
			}
			run()
			assert.Equal(t, tt.afterFirst, taskQueue(t, srv, "r1"), "after the first run")
			for _, d := range dests {
				d.setRespond(reply(200, "application/json", "{}"))
			}
			run()
			assert.Equal(t, tt.afterSecond, taskQueue(t, srv, "r1"), "after the second run")
			for i, p := range pushers {
				assert.Equal(t, tt.requests[i], dests[i].count(), "requests of %s", tt.names[i])
				assert.Equal(t, tt.alreadySent[i], p.CountOutcome(OutcomeAlreadySent), "found sent by %s", tt.names[i])
				assert.Equal(t, tt.queuedAtLast[i], len(p.Queue()) == 1, "%s queue %v", tt.names[i], p.Queue())
			}
		})
	}
}

// TestOutboundTaskPushOutsideItsWindowLosesItsEntry follows a task
// through sentinel/src/schedule/outbound.js (cht-core 5.2.0): execute
// retries only the pushes that are due, and when fhir_b's retry succeeds
// removeConfigKeyFromTask splices index 0, fhir_a's entry, so fhir_a's
// queued push is never sent. While the task exists a later revision queues
// nothing (shared-libs/transitions/src/transitions/mark_for_outbound.js
// markForOutbound); once a run finds fhir_b sent and deletes it, the next
// revision that fhir_a cannot send makes a new task.
func TestOutboundTaskPushOutsideItsWindowLosesItsEntry(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv := newTestServer(t, Config{Now: clock})
	destA := newDestination(t, reply(200, "application/json", "{}"))
	destB := newDestination(t, reply(503, "", ""))
	a, err := NewOutboundPusher(PusherConfig{Name: "fhir_a", URL: destA.URL, Cron: "0 3 * * *",
		Mapping: map[string]any{"id": "doc._id"}, Server: srv, Now: clock})
	require.NoError(t, err)
	b, err := NewOutboundPusher(PusherConfig{Name: "fhir_b", URL: destB.URL,
		Mapping: map[string]any{"id": "doc._id"}, Server: srv, Now: clock})
	require.NoError(t, err)
	ctx := context.Background()
	revise := func(v int) {
		t.Helper()
		_, err := srv.PutDoc(map[string]any{"_id": "r1", "type": "data_record", "form": "F", "v": v})
		require.NoError(t, err)
		_, _ = a.Sync(ctx)
		_, _ = b.Sync(ctx)
	}
	revise(1)
	require.Equal(t, []string{"fhir_a", "fhir_b"}, taskQueue(t, srv, "r1"))

	destB.setRespond(reply(200, "application/json", "{}"))
	require.NoError(t, a.RunQueue(ctx)) // not due
	require.NoError(t, b.RunQueue(ctx))
	assert.Equal(t, []string{"fhir_b"}, taskQueue(t, srv, "r1"), "fhir_b's success removes fhir_a's entry")

	revise(2)
	assert.Equal(t, []string{"fhir_b"}, taskQueue(t, srv, "r1"), "revision 2 tops nothing up")
	require.NoError(t, b.RunQueue(ctx))
	assert.Equal(t, 2, b.CountOutcome(OutcomeAlreadySent), "revision 2's push and the run find the payload sent")
	assert.Nil(t, taskQueue(t, srv, "r1"), "the run found fhir_b sent: the task is deleted")

	revise(3)
	assert.Equal(t, []string{"fhir_a"}, taskQueue(t, srv, "r1"))
	assert.Equal(t, []string{"r1"}, a.Queue())
	assert.Empty(t, b.Queue())
	assert.Equal(t, 0, destA.count(), "fhir_a was never due")
	assert.Equal(t, 2, destB.count())
}

// TestSpliceStart pins where Array.prototype.splice(name, 1) starts in
// removeConfigKeyFromTask (sentinel/src/schedule/outbound.js): the push
// name through ToIntegerOrInfinity, clamped to the queue. The expected
// values are Node 20's ([...'abcdefghijkl'].splice(name, 1)).
func TestSpliceStart(t *testing.T) {
	tests := []struct {
		name string
		want int // for a queue of 12
	}{
		{"fhir", 0}, {"", 0}, {"1", 1}, {" 2 ", 2}, {"1e1", 10}, {"0x1", 1}, {"-0x1", 0},
		{"0o7", 7}, {"0b11", 3}, {"-1", 11}, {"Infinity", 12}, {"-Infinity", 0}, {"inf", 0},
		{"NaN", 0}, {"1_0", 0}, {".5", 0}, {"5.", 5}, {"+5", 5}, {"\u00a05", 5}, {"\u20285\u3000", 5},
		{"1.9", 1}, {"-1.5", 11}, {"0X1F", 12}, {"1n", 0}, {"12", 12}, {"-20", 0}, {"1e1000", 12},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, spliceStart(tt.name, 12), "%q", tt.name)
	}
}

// TestOutboundTaskOfRemovedPush pins what Sentinel does with the queued
// entries of a push taken out of app_settings.outbound: from cht-core 4.11
// (sentinel/src/schedule/outbound.js batch, tags 4.11.0 to 5.2.0) it looks
// each entry up among the due pushes and skips the one without a
// configuration (.filter(({config}) => config && ...)), so the entry is
// never tried and stays queued, unless it is the first entry of a task
// where another push succeeds (removeConfigKeyFromTask: queue.splice(key,
// 1) removes index 0).
// (Before 4.11 singlePush cleared such entries: "this outbound config no
// longer exists, clearing task".) The fake has no call that removes a
// push: a pusher no longer run stands for one.
func TestOutboundTaskOfRemovedPush(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv := newTestServer(t, Config{Now: clock})
	retiredDest := newDestination(t, reply(502, "", ""))
	liveDest := newDestination(t, reply(502, "", ""))
	newPusher := func(name, url string, forms ...string) *OutboundPusher {
		p, err := NewOutboundPusher(PusherConfig{Name: name, URL: url, Mapping: map[string]any{"id": "doc._id"},
			RelevantTo: func(doc map[string]any) bool { f, _ := doc["form"].(string); return slices.Contains(forms, f) },
			Server:     srv, Now: clock})
		require.NoError(t, err)
		return p
	}
	retired := newPusher("retired", retiredDest.URL, "OLD", "BOTH")
	live := newPusher("live", liveDest.URL, "BOTH")
	for _, d := range []struct{ id, form string }{{"r1", "OLD"}, {"m1", "BOTH"}} {
		_, err := srv.PutDoc(map[string]any{"_id": d.id, "type": "data_record", "form": d.form})
		require.NoError(t, err)
	}
	ctx := context.Background()
	_, _ = retired.Sync(ctx)
	_, _ = live.Sync(ctx)
	require.Equal(t, []string{"retired"}, taskQueue(t, srv, "r1"))
	require.Equal(t, []string{"retired", "live"}, taskQueue(t, srv, "m1"))
	tried := retiredDest.count()
	require.Equal(t, 2, tried)

	// "retired" leaves app_settings.outbound; "live" recovers.
	liveDest.setRespond(reply(200, "application/json", "{}"))
	now = now.Add(5 * time.Minute)
	require.NoError(t, live.RunQueue(ctx))
	assert.Equal(t, []string{"live"}, taskQueue(t, srv, "m1"), "live's success removes the first entry, retired's")
	for range 3 {
		now = now.Add(5 * time.Minute)
		require.NoError(t, live.RunQueue(ctx))
	}
	assert.Nil(t, taskQueue(t, srv, "m1"), "the next run finds live sent and deletes the task")
	assert.Equal(t, []string{"retired"}, taskQueue(t, srv, "r1"), "an entry of a removed push stays queued")
	assert.Equal(t, tried, retiredDest.count(), "an entry of a removed push is never tried")
}
