package chttest

import (
	"slices"
	"time"
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

// OutboundTaskPrefix starts the id of every outbound task document.
const OutboundTaskPrefix = "task:outbound:"

// addOutboundTask creates the task document for a failed push of docID.
// An existing task is left alone (mark_for_outbound does not top it up),
// and false is returned.
func (s *Server) addOutboundTask(docID, push string, now time.Time) bool {
	id := OutboundTaskPrefix + docID
	if _, ok := s.sentinel.get(id); ok {
		return false
	}
	_, err := s.sentinel.put(map[string]any{"_id": id, "type": "task:outbound", "created": now.UnixMilli(),
		"doc_id": docID, "queue": []any{push}}, false)
	return err == nil
}

// completeOutboundTask removes a push from a doc's task after a
// successful retry, and deletes the task when its queue is empty. Sentinel
// removes the queue's first entry whichever push succeeded
// (removeConfigKeyFromTask calls queue.splice with the push name, which
// JavaScript reads as index 0); with one push per task that is the push.
func (s *Server) completeOutboundTask(docID string) {
	id := OutboundTaskPrefix + docID
	t, ok := s.sentinel.get(id)
	if !ok {
		return
	}
	q, _ := t["queue"].([]any)
	if len(q) > 0 {
		q = slices.Delete(q, 0, 1)
	}
	t["queue"] = q
	if len(q) == 0 {
		t["_deleted"] = true
	}
	_, _ = s.sentinel.put(t, false)
}

// dropOutboundTask deletes the task of a doc that no longer exists
// (removeInvalidTasks).
func (s *Server) dropOutboundTask(docID string) {
	id := OutboundTaskPrefix + docID
	if t, ok := s.sentinel.get(id); ok {
		_, _ = s.sentinel.put(map[string]any{"_id": id, "_rev": t["_rev"], "_deleted": true}, false)
	}
}
