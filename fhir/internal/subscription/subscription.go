// Package subscription names the rest-hook Subscriptions that
// fhir.Client.SubscribeTask makes for a referral's Task, for package fhir,
// which makes them, and fhir/tocht, which removes them once their Task is
// closed: one rule for both.
package subscription

import (
	"crypto/sha1"
	"fmt"
	"net/url"
	"strings"
)

// ID is the deterministic id of the Subscription of the Task taskID to
// endpoint (a name-based UUID), so that a re-sent Task finds the
// Subscription made the first time instead of adding another.
func ID(taskID, endpoint string) string {
	h := sha1.Sum([]byte("Subscription\x00" + taskID + "\x00" + endpoint))
	h[6] = h[6]&0x0f | 0x50 // version 5
	h[8] = h[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Criteria is the Subscription.criteria of template for taskID: every
// "{id}" replaced by the query-escaped Task id.
func Criteria(template, taskID string) string {
	return strings.ReplaceAll(template, "{id}", url.QueryEscape(taskID))
}

// TaskOf returns the Task id for which Criteria(template, id) is criteria,
// and false when template made no such criteria.
func TaskOf(criteria, template string) (taskID string, ok bool) {
	pre, rest, found := strings.Cut(template, "{id}")
	if !found || !strings.HasPrefix(criteria, pre) {
		return "", false
	}
	esc := criteria[len(pre):]
	// The text between the first and the next {id} (or the end) ends the id.
	if lit, _, _ := strings.Cut(rest, "{id}"); lit != "" {
		i := strings.Index(esc, lit)
		if i < 0 {
			return "", false
		}
		esc = esc[:i]
	}
	taskID, err := url.QueryUnescape(esc)
	if err != nil || taskID == "" || Criteria(template, taskID) != criteria {
		return "", false
	}
	return taskID, true
}
