package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/redact"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/subscription"
)

// TaskSubscription configures the R4 rest-hook Subscription by which the FHIR server tells the
// EMR that a referral's Task changed (see [Client.SubscribeTask]).
type TaskSubscription struct {
	// Endpoint is the EMR's URL the server notifies (Subscription.channel.endpoint). Required.
	Endpoint string
	// Header lists HTTP headers sent with every notification, "Name: value"
	// (Subscription.channel.header), e.g. the EMR's "Authorization: Bearer ...". They are stored in
	// the Subscription, readable by whoever may read Subscriptions on the FHIR server.
	// TaskSubscription redacts their values when it is logged or printed.
	Header []string
	// Payload is Subscription.channel.payload: "" notifies with an empty POST, a MIME type such as
	// "application/fhir+json" sends the Task.
	Payload string
	// Criteria is the search that selects the notifications, with {id} replaced by the Task id;
	// "" means "Task?_id={id}&status=completed,failed,rejected" (the follow-up closed the Task).
	Criteria string
	// Reason is Subscription.reason; "" means "CHT follow-up of Task <id>".
	Reason string
}

// String implements fmt.Stringer with the values of Header redacted: they
// are the EMR's credentials.
func (s TaskSubscription) String() string {
	return fmt.Sprintf("%+v", taskSubscriptionFields(s.redacted()))
}

// GoString implements fmt.GoStringer, so %#v does not print Header's
// values.
func (s TaskSubscription) GoString() string {
	return fmt.Sprintf("%#v", taskSubscriptionFields(s.redacted()))
}

// LogValue implements slog.LogValuer: the settings without Header's
// values.
func (s TaskSubscription) LogValue() slog.Value {
	r := s.redacted()
	return slog.GroupValue(slog.String("endpoint", r.Endpoint), slog.Any("header", r.Header),
		slog.String("payload", r.Payload), slog.String("criteria", r.Criteria), slog.String("reason", r.Reason))
}

// taskSubscriptionFields is TaskSubscription without its methods, for
// formatting.
type taskSubscriptionFields TaskSubscription

// redacted returns s with each Header value replaced by "REDACTED" (a
// header without a colon is replaced whole), in a new slice, and the
// credentials of Endpoint dropped.
func (s TaskSubscription) redacted() TaskSubscription {
	s.Endpoint = redact.URL(s.Endpoint)
	if s.Header == nil {
		return s
	}
	h := make([]string, len(s.Header))
	for i, v := range s.Header {
		name, _, ok := strings.Cut(v, ":")
		if !ok {
			name = "REDACTED"
		} else {
			name += ": REDACTED"
		}
		h[i] = name
	}
	s.Header = h
	return s
}

// DefaultTaskCriteria is the criteria of a [TaskSubscription] without one.
const DefaultTaskCriteria = "Task?_id={id}&status=completed,failed,rejected"

// SubscribeTask makes sure the FHIR server holds the rest-hook Subscription of s for the Task
// taskID; its id is derived from the Task and the endpoint, so calling it again for the same Task
// adds nothing. A Subscription found with another channel (payload, header, e.g. a rotated token)
// or criteria, or one the server stopped (status off or error), is written again (PUT, same id)
// with s and status requested. It returns the Subscription's id and an undo function that deletes the
// Subscription again when this call created it (and does nothing when it existed before): call it
// when the CHT write that the Subscription belongs to fails, so that no dangling Subscription is
// left. The server must accept client-assigned ids on update (PUT), as HAPI, medplum and fhirtest
// do.
func (c *Client) SubscribeTask(ctx context.Context, taskID string, s TaskSubscription) (id string, undo func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if !validID(taskID) {
		return "", noop, fmt.Errorf("fhir: subscribe task: invalid Task id %q", taskID)
	}
	if u, perr := url.Parse(s.Endpoint); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown, _, _ := strings.Cut(redact.URL(s.Endpoint), "?") // a query may hold a token
		return "", noop, fmt.Errorf("fhir: subscribe task: TaskSubscription.Endpoint %q is not an absolute http(s) URL", shown)
	}
	for _, h := range s.Header {
		if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" {
			return "", noop, errors.New(`fhir: subscribe task: a TaskSubscription.Header entry is not "Name: value"`)
		}
	}
	criteria := s.Criteria
	if criteria == "" {
		criteria = DefaultTaskCriteria
	}
	reason := s.Reason
	if reason == "" {
		reason = "CHT follow-up of Task " + taskID
	}
	id = subscription.ID(taskID, s.Endpoint)
	channel := map[string]any{"type": "rest-hook", "endpoint": s.Endpoint}
	if len(s.Header) > 0 {
		channel["header"] = s.Header
	}
	if s.Payload != "" {
		channel["payload"] = s.Payload
	}
	sub := map[string]any{"resourceType": "Subscription", "id": id, "status": "requested", "reason": reason,
		"criteria": subscription.Criteria(criteria, taskID), "channel": channel}
	var cur json.RawMessage
	err = c.Read(ctx, "Subscription", id, &cur)
	existed := err == nil
	switch {
	case existed:
		if subscriptionCurrent(cur, sub["criteria"].(string), s) {
			return id, noop, nil // made by an earlier call for this Task: not ours to undo
		}
		// Made by an earlier call with other settings (a rotated header,
		// another payload or criteria), changed on the server, or stopped
		// by it (off, error): written again with this call's settings. No
		// value of it is put in an error: the header holds the EMR's secret.
	case notFound(err):
	default:
		return "", noop, fmt.Errorf("fhir: subscribe task %s: %w", taskID, err)
	}
	if err := c.Update(ctx, "Subscription", id, sub, nil); err != nil {
		return "", noop, fmt.Errorf("fhir: subscribe task %s: %w", taskID, err)
	}
	if existed {
		return id, noop, nil // updated, but an earlier call's: not ours to undo
	}
	return id, func(ctx context.Context) error {
		err := c.Delete(ctx, "Subscription", id)
		if err != nil && !notFound(err) {
			return fmt.Errorf("fhir: remove Subscription %s of Task %s: %w", id, taskID, err)
		}
		return nil
	}, nil
}

// subscriptionCurrent reports whether the stored Subscription cur already is what SubscribeTask
// writes for s (with criteria its Task's): the same rest-hook channel (endpoint, payload, headers
// in order) and criteria, and a status the server notifies in (requested or active; a server sets
// off or error when it stops notifying).
func subscriptionCurrent(cur json.RawMessage, criteria string, s TaskSubscription) bool {
	var sub struct {
		Status   string `json:"status"`
		Criteria string `json:"criteria"`
		Channel  struct {
			Type     string   `json:"type"`
			Endpoint string   `json:"endpoint"`
			Payload  string   `json:"payload"`
			Header   []string `json:"header"`
		} `json:"channel"`
	}
	if json.Unmarshal(cur, &sub) != nil {
		return false
	}
	ch := sub.Channel
	return (sub.Status == "requested" || sub.Status == "active") && sub.Criteria == criteria &&
		ch.Type == "rest-hook" && ch.Endpoint == s.Endpoint && ch.Payload == s.Payload && slices.Equal(ch.Header, s.Header)
}

// TaskCheckpoint is where a [Client.PollTasks] poll ended: the newest meta.lastUpdated seen and the
// ids of the Tasks seen with exactly that instant. Store it (it marshals to JSON) and pass it to the
// next poll; the zero value polls from the beginning.
type TaskCheckpoint struct {
	LastUpdated time.Time `json:"lastUpdated"`
	IDs         []string  `json:"ids,omitempty"`
}

// PollTasks returns the Tasks changed since cp, oldest first, and the checkpoint to poll from
// next: the alternative to a [TaskSubscription] where the FHIR server sends no notifications.
// query narrows the search (e.g. status=completed,failed,rejected, or _id=a,b); PollTasks adds
// _lastUpdated, _sort=_lastUpdated and _count. It searches with _lastUpdated=ge (not gt) and skips
// the ids already seen at the checkpoint's instant, so a Task written in the same millisecond as
// the last one seen is not missed. It pages the same way, from the newest Tasks of each page,
// rather than by the server's next links: on a server whose links are offsets, a Task updated
// during the poll moves to the end and shifts the rest, and the Task that moved onto a page
// already read would be missed for good. A page shorter than _count ends the poll unless it links
// a next page (a server capping _count). More Tasks changed in one millisecond than the server
// returns in a page (HAPI gives a transaction's resources one lastUpdated) is an error. A Task
// changed again after a poll is returned again by the next one, and one changed during a poll
// may be returned twice by it.
func (c *Client) PollTasks(ctx context.Context, cp TaskCheckpoint, query url.Values) ([]json.RawMessage, TaskCheckpoint, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = slices.Clone(v)
	}
	q.Set("_sort", "_lastUpdated")
	count := 100
	var out []json.RawMessage
	next := cp
	returned := map[string]time.Time{} // the version of each Task returned by this poll
	for page := 0; ; page++ {
		if page > 10000 {
			return nil, cp, errors.New("fhir: poll tasks: more than 10000 pages")
		}
		if !next.LastUpdated.IsZero() {
			q.Set("_lastUpdated", "ge"+next.LastUpdated.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		}
		q.Set("_count", strconv.Itoa(count))
		var b searchPage
		if err := c.Search(ctx, "Task", q, &b); err != nil {
			return nil, cp, fmt.Errorf("fhir: poll tasks: %w", err)
		}
		// A page shorter than _count is the last one, unless the server
		// caps _count (HAPI's maximum page size, for one) and links a
		// next page.
		more := b.hasNext()
		from, added := next, 0
		for _, e := range b.Entry {
			var t struct {
				ID   string `json:"id"`
				Meta struct {
					LastUpdated string `json:"lastUpdated"`
				} `json:"meta"`
			}
			if err := json.Unmarshal(e.Resource, &t); err != nil || t.ID == "" {
				return nil, cp, fmt.Errorf("fhir: poll tasks: an entry is not a Task with an id")
			}
			at, err := time.Parse(time.RFC3339Nano, t.Meta.LastUpdated)
			if err != nil {
				return nil, cp, fmt.Errorf("fhir: poll tasks: Task %s has meta.lastUpdated %q", t.ID, t.Meta.LastUpdated)
			}
			if at.Equal(from.LastUpdated) && slices.Contains(from.IDs, t.ID) {
				continue // seen at the instant this page starts from
			}
			if v, ok := returned[t.ID]; ok && v.Equal(at) {
				continue // this version, returned by an earlier page
			}
			returned[t.ID] = at
			out = append(out, e.Resource)
			added++
			switch {
			case at.After(next.LastUpdated):
				next = TaskCheckpoint{LastUpdated: at, IDs: []string{t.ID}}
			case at.Equal(next.LastUpdated) && !slices.Contains(next.IDs, t.ID):
				next.IDs = append(slices.Clone(next.IDs), t.ID)
			}
		}
		switch {
		case len(b.Entry) < count && !more:
			return out, next, nil // the last page
		case added == 0 && (count >= 1000 || len(b.Entry) < count):
			return nil, cp, fmt.Errorf("fhir: poll tasks: more than %d Tasks changed in the millisecond of %s, more than the server "+
				"returns in a page: raise its page size", len(b.Entry), next.LastUpdated.UTC().Format(time.RFC3339Nano))
		case added == 0:
			count *= 10 // a page of Tasks seen, all of one instant: read more of it at once
		}
	}
}

// searchPage is one page of a searchset Bundle: its entries' resources and
// its links.
type searchPage struct {
	Link []struct {
		Relation string `json:"relation"`
	} `json:"link"`
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

// hasNext reports whether the page links a next page.
func (p *searchPage) hasNext() bool {
	for _, l := range p.Link {
		if l.Relation == "next" {
			return true
		}
	}
	return false
}
