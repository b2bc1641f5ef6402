package chttest

import (
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/dop251/goja"
)

// Sentinel keeps the pushes that failed in its own database, one document
// per source doc (sentinel/src/schedule/outbound.js and
// shared-libs/transitions/src/transitions/mark_for_outbound.js):
//
//	{"_id": "task:outbound:<doc id>", "type": "task:outbound",
//	 "created": <ms>, "doc_id": "<doc id>", "queue": ["<push name>", ...]}
//
// The fake keeps them in its medic-sentinel database (GET
// /medic-sentinel/_all_docs?startkey="task:outbound:", database admins
// only) when a pusher follows a Server, so that tools watching CHT's
// outbound queue can be tested against it.
//
// markForOutbound runs every relevant push of one change, collects the
// names of those that failed, and only then writes one task whose queue
// lists them all: first the pushes it skipped because they were outside
// their cron window (it notes those while it walks the settings, before any
// send), then those whose send failed, each group in the settings' order.
// When the doc already has a task it writes nothing (the existing queue is
// not topped up). The fake's pushers evaluate a change one after the
// other, so a task stays open to the failures of the change that created
// it: a later pusher whose push of the same revision (_rev; none for the
// API's pass before the report is saved) fails joins the queue at the
// place markForOutbound would have given it. A push of any other revision
// finds the task and is not queued, as in CHT.

// OutboundTaskPrefix starts the id of every outbound task document.
const OutboundTaskPrefix = "task:outbound:"

// outboundTask mirrors one task document the fake wrote (only the fake
// writes medic-sentinel), with what it needs to place later failures of
// the same change.
type outboundTask struct {
	change string               // _rev of the revision whose pushes created the task
	queue  []string             // the document's queue
	order  map[string]taskOrder // place of each push that change queued
}

// taskOrder is the place markForOutbound gives a push in a new task's
// queue: pushes outside their cron window first, then failed sends, each
// in the settings' order (the order the pushers were created for the
// server, which is OutboundFromSettings' order).
type taskOrder struct {
	failed bool // sent and failed (false: queued outside its cron window)
	rank   int  // the pusher's place among the server's pushers
}

func (o taskOrder) before(x taskOrder) bool {
	if o.failed != x.failed {
		return !o.failed
	}
	return o.rank < x.rank
}

// addOutboundTask queues push for docID after its push of the revision
// change failed (ord: its place in the queue). Without a task it creates
// one; a task created by the same change gets push at its place; any other
// task is left alone (mark_for_outbound does not top it up) and false is
// returned.
func (s *Server) addOutboundTask(docID, push, change string, ord taskOrder, now time.Time) bool {
	s.taskMu.Lock()
	defer s.taskMu.Unlock()
	id := OutboundTaskPrefix + docID
	doc, exists := s.sentinel.get(id)
	t := s.tasks[docID]
	switch {
	case !exists:
		doc = map[string]any{"_id": id, "type": "task:outbound", "created": now.UnixMilli(), "doc_id": docID}
		t = &outboundTask{change: change, order: make(map[string]taskOrder)}
	case t == nil || t.change != change || slices.Contains(t.queue, push):
		return false
	}
	pos := len(t.queue)
	for i, name := range t.queue {
		if o, ok := t.order[name]; ok && ord.before(o) {
			pos = i
			break
		}
	}
	queue := slices.Insert(slices.Clone(t.queue), pos, push)
	doc["queue"] = anyStrings(queue)
	if _, err := s.sentinel.put(doc, false); err != nil {
		return false
	}
	t.queue = queue
	t.order[push] = ord
	if s.tasks == nil {
		s.tasks = make(map[string]*outboundTask)
	}
	s.tasks[docID] = t
	return true
}

// outboundTaskHolds reports whether the task of docID lists push.
func (s *Server) outboundTaskHolds(docID, push string) bool {
	s.taskMu.Lock()
	defer s.taskMu.Unlock()
	t := s.tasks[docID]
	return t != nil && slices.Contains(t.queue, push)
}

// completeOutboundTask is schedule/outbound.js removeConfigKeyFromTask
// after push was retried for docID and found sent: it removes one entry
// from the task's queue, deletes the task when the queue is empty, and
// reports whether the queue still lists push. The entry removed is the one
// queue.splice(push, 1) removes: JavaScript reads the name as an index
// (spliceStart), so for a name that is not a number it is the first entry,
// whichever push succeeded; that push's own entry then stays and the next
// run finds it sent, while the push whose entry went is never retried. A
// task that no longer lists push is left alone.
func (s *Server) completeOutboundTask(docID, push string) bool {
	s.taskMu.Lock()
	defer s.taskMu.Unlock()
	t := s.tasks[docID]
	if t == nil || !slices.Contains(t.queue, push) {
		return false
	}
	id := OutboundTaskPrefix + docID
	doc, ok := s.sentinel.get(id)
	if !ok {
		return false
	}
	queue := slices.Clone(t.queue)
	if i := spliceStart(push, len(queue)); i < len(queue) {
		queue = slices.Delete(queue, i, i+1)
	}
	doc["queue"] = anyStrings(queue)
	if len(queue) == 0 {
		doc["_deleted"] = true
	}
	if _, err := s.sentinel.put(doc, false); err != nil {
		return true
	}
	if len(queue) == 0 {
		delete(s.tasks, docID)
		return false
	}
	t.queue = queue
	return slices.Contains(queue, push)
}

// dropOutboundTask deletes the task of a doc that no longer exists, with
// every push it lists (removeInvalidTasks).
func (s *Server) dropOutboundTask(docID string) {
	s.taskMu.Lock()
	defer s.taskMu.Unlock()
	delete(s.tasks, docID)
	id := OutboundTaskPrefix + docID
	if t, ok := s.sentinel.get(id); ok {
		_, _ = s.sentinel.put(map[string]any{"_id": id, "_rev": t["_rev"], "_deleted": true}, false)
	}
}

// spliceStart returns the index Array.prototype.splice(key, 1) starts at
// for an array of n elements: key converted with ToIntegerOrInfinity (a
// name that is no number is NaN, hence 0; "1" is 1; "-1" counts from the
// end) and clamped to [0, n]. n means nothing is removed.
func spliceStart(key string, n int) int {
	// StringToNumber trims WhiteSpace and LineTerminator, which goja's
	// conversion does only for ASCII; what is left of a number is ASCII.
	trimmed := strings.TrimFunc(key, func(r rune) bool {
		return unicode.Is(unicode.Zs, r) || strings.ContainsRune("\t\n\v\f\r\u2028\u2029\ufeff", r)
	})
	f := goja.StringFromUTF16(utf16.Encode([]rune(trimmed))).ToFloat()
	switch {
	case math.IsNaN(f):
		return 0
	case f < 0:
		return max(n+int(max(math.Trunc(f), -float64(n))), 0)
	default:
		return int(min(math.Trunc(f), float64(n)))
	}
}

func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
