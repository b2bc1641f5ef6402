package chttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	chtcron "github.com/cht-interop/openhim-mediator-go/cht/internal/cron"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/release"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// Defaults of CHT's outbound push.
const (
	// OutboundTimeout is CHT's OUTBOUND_REQ_TIMEOUT.
	OutboundTimeout = 10 * time.Second
	// OutboundRetryInterval is how often Sentinel's scheduler retries
	// queued pushes.
	OutboundRetryInterval = 5 * time.Minute
)

// PusherConfig configures an OutboundPusher. It mirrors one entry of
// app_settings.outbound.
type PusherConfig struct {
	// Name is the push name (the key under app_settings.outbound).
	Name string
	// URL is the destination: urlJoin(base_url, path).
	URL string
	// Username and Password give basic auth (auth.type "basic"; Password
	// is the secret CHT reads from its credentials store under
	// password_key). Empty Username sends no basic auth.
	Username, Password string
	// AuthHeader, if set, is sent verbatim as Authorization (auth.type
	// "header").
	AuthHeader string
	// RelevantTo decides in Go whether a doc is pushed; nil pushes every
	// doc. Configurations read by OutboundFromSettings evaluate
	// relevant_to as JavaScript instead (and push nothing without it, as
	// CHT).
	RelevantTo func(doc map[string]any) bool
	// Mapping is CHT's mapping: destination object-path → source. A
	// source is a string path such as "doc.fields.height" (required), a
	// outbound.MapValue (path or JavaScript expr, optional or not), or a
	// map{"path"|"expr","optional"} as decoded from JSON. Expressions run
	// in a JavaScript VM with doc in scope, as CHT runs them. Numeric
	// destination segments create arrays.
	Mapping map[string]any
	// Map, if set, replaces Mapping: it returns the payload for a doc.
	Map func(doc map[string]any) (any, error)
	// Cron, if set, is the push's cron expression (CHT 4.5+, UTC): pushes
	// happen only within 5 minutes of one of its ticks; outside that
	// window a doc is queued, and queued docs wait for the window. A cron
	// that cron-validator 1.3.1 refuses (six fields, @daily, MON, ?, 7...)
	// is never due, as in CHT: the doc is queued and never sent, and each
	// attempt carries the error CHT logs. CHT evaluates the cron with
	// later.js, which requires every field to match: "0 9 1 * 1" ticks
	// only on a Monday that is the 1st (classic cron: the 1st or any
	// Monday). A cron whose days exist in none of its months ("0 0 31 2 *",
	// "0 0 31 4,6,9,11 *") never ticks: the doc is queued and never sent,
	// without an error, as in CHT. Before 4.5 Cron is ignored and pushes
	// are sent at once.
	Cron string
	// Version is the CHT version whose rules apply: from 4.17 a 3xx
	// answer also counts as success and redirects are followed, and a
	// JSON content type with an invalid body fails the push; from 4.18 a
	// User-Agent is sent. "" means DefaultVersion.
	Version string
	// Timeout per request; 0 means OutboundTimeout (10 s).
	Timeout time.Duration
	// RetryInterval is how often Run retries the queue; 0 means
	// OutboundRetryInterval (5 min). Tests use milliseconds.
	RetryInterval time.Duration
	// HTTPClient supplies the transport (and TLS settings); nil uses
	// http.DefaultTransport.
	HTTPClient *http.Client
	// Server, if set, is the fake CHT the pusher follows in Run and Sync
	// (as Sentinel follows the medic changes feed), and the default Source.
	// Pushers following one server share its outbound tasks as the pushes
	// of one app_settings outbound block do: the failures of one change (a
	// revision of a doc) go into one task, whose queue lists the pushes
	// outside their cron window first and then the failed sends, each in
	// the order the pushers were created, and a retry that succeeds
	// removes the entry Sentinel removes (see RunQueue).
	// When the server's app settings enable mark_for_outbound, its records
	// API (JSON and SMS reports) also runs the pusher before it saves the
	// report, as CHT's API does (see Server.apiMarkForOutbound): that first
	// push maps the hydrated report without _rev.
	Server *Server
	// Source returns the current hydrated doc for queued retries (Sentinel
	// re-fetches and re-hydrates the doc). nil uses Server.HydratedDoc, or
	// else the last doc passed to Push.
	Source func(id string) (map[string]any, bool)
	// FromNow makes Run and Sync ignore changes made before the first call
	// of either. Run takes that checkpoint when it starts, so after
	// go p.Run(ctx) a change made at once may or may not count as made
	// before: call Sync first to take it at a known point.
	FromNow bool
	// Logger receives one line per attempt; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// MaxAttempts bounds how many attempts Attempts keeps (the most
	// recent ones); 0 keeps every attempt. Long runs set it so that the
	// pusher's memory stays flat. CountOutcome counts every attempt
	// regardless.
	MaxAttempts int

	// Set by OutboundFromSettings: relevant_to as JavaScript, the
	// mapping's key order in app_settings, the auth CHT resolves at every
	// push, and configuration errors CHT meets at every push.
	relevantJS   *jsProgram
	fromSettings bool
	mappingOrder []string
	settingsAuth *outbound.Auth
	creds        func(key string) (string, bool)
	sendErr      error // destination: urlJoin throws
	mappingErr   error // mapping: Object.keys throws
}

// Outcome is the result of one push attempt.
type Outcome string

// Outcomes of a push attempt.
const (
	OutcomeSent         Outcome = "sent"          // destination accepted it
	OutcomeFailed       Outcome = "failed"        // HTTP or network failure; queued for retry
	OutcomeMappingError Outcome = "mapping_error" // mapping failed; queued (CHT retries forever)
	OutcomeAlreadySent  Outcome = "already_sent"  // same payload hash as the last success; not sent
	OutcomeNotRelevant  Outcome = "not_relevant"  // RelevantTo false or doc deleted
	OutcomeDropped      Outcome = "dropped"       // queued doc no longer exists; task deleted
	OutcomeQueued       Outcome = "queued"        // outside the cron window; queued without sending
)

// Attempt records one evaluation of a doc by the pusher.
type Attempt struct {
	DocID string
	Push  string
	Time  time.Time
	// Retry is true for attempts made by RunQueue.
	Retry   bool
	Outcome Outcome
	// Payload is the mapped JSON body and Hash the hash CHT stores in the
	// infodoc for it (see PayloadHash).
	Payload json.RawMessage
	Hash    string
	// StatusCode and Response are the destination's answer (0/nil when
	// not sent or on network errors); Response keeps at most its first
	// MiB.
	StatusCode int
	Response   []byte
	Duration   time.Duration
	Err        error
}

// OutboundPusher replays CHT's outbound push (mark_for_outbound and
// Sentinel's outbound schedule) against a destination.
type OutboundPusher struct {
	cfg     PusherConfig
	ver     release.Version
	sources []mapSource // cfg.Mapping, normalised and compiled
	cron    *cron.SpecSchedule
	cronErr error // cron refused by cron-validator: never due
	never   bool  // cron accepted, but its days exist in none of its months: never due
	client  *http.Client
	log     *slog.Logger

	mu       sync.Mutex
	attempts []Attempt
	outcomes map[Outcome]int
	queue    []queued         // retry order; entries whose id left inQueue are stale
	inQueue  map[string]int64 // doc id -> ticket of its live queue entry
	ticket   int64
	lastDoc  map[string]map[string]any // only without Source
	sent     map[string]string         // doc id -> hash of the last successful payload
	seq      int64
	seqInit  bool
	rank     int        // place among the pushers following cfg.Server
	runMu    sync.Mutex // serialises Push, RunQueue and Sync, like Sentinel
}

// NewOutboundPusher validates cfg and returns a pusher. It does no I/O.
func NewOutboundPusher(cfg PusherConfig) (*OutboundPusher, error) {
	// A configuration read from app settings fails per push where CHT
	// does (a bad URL when it sends, a missing mapping when it maps).
	if cfg.URL == "" && !cfg.fromSettings {
		return nil, errors.New("chttest: outbound: URL is required")
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") && !cfg.fromSettings {
		return nil, fmt.Errorf("chttest: outbound: URL %q must be absolute http(s)", cfg.URL)
	}
	if cfg.Map == nil && len(cfg.Mapping) == 0 && !cfg.fromSettings {
		return nil, errors.New("chttest: outbound: Mapping or Map is required")
	}
	sources, err := compileMapping(cfg.Mapping, cfg.mappingOrder)
	if err != nil {
		return nil, fmt.Errorf("chttest: outbound: %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = "chttest"
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	v, err := release.Parse(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("chttest: PusherConfig.Version: %w", err)
	}
	var sched *cron.SpecSchedule
	var cronErr error
	var never bool
	// mark_for_outbound.js and schedule/outbound.js read config.cron only
	// from 4.5.0; an empty cron is falsy (no cron).
	if cfg.Cron != "" && v.AtLeast(4, 5) {
		if cronErr = chtcron.Check(cfg.Cron); cronErr != nil {
			// utils.js isWithinTimeFrame: logger.error and false.
			cronErr = fmt.Errorf("chttest: outbound: %s: Outbound push failed: invalid cron expression: %w", cfg.Name, cronErr)
		} else if sched, err = parseCron(cfg.Cron); err != nil {
			return nil, fmt.Errorf("chttest: outbound: cron %q: %w", cfg.Cron, err)
		}
		never = chtcron.Due(cfg.Cron) != nil
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = OutboundTimeout
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = OutboundRetryInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Source == nil && cfg.Server != nil {
		cfg.Source = cfg.Server.HydratedDoc
	}
	client := &http.Client{Timeout: cfg.Timeout}
	if cfg.HTTPClient != nil {
		client.Transport = cfg.HTTPClient.Transport
		client.Jar = cfg.HTTPClient.Jar
	}
	if !v.AtLeast(4, 17) {
		// request-promise-native does not follow redirects on POST.
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	p := &OutboundPusher{cfg: cfg, ver: v, sources: sources, cron: sched, cronErr: cronErr, never: never, client: client, log: cfg.Logger,
		lastDoc: make(map[string]map[string]any), sent: make(map[string]string),
		outcomes: make(map[Outcome]int), inQueue: make(map[string]int64)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Server != nil {
		cfg.Server.mu.Lock()
		p.rank = len(cfg.Server.pushers)
		cfg.Server.pushers = append(cfg.Server.pushers, p)
		cfg.Server.mu.Unlock()
	}
	return p, nil
}

// compileMapping normalises a mapping as outbound.js
// normaliseSourceConfiguration does and compiles its expressions, in the
// order CHT walks the keys.
func compileMapping(mapping map[string]any, order []string) ([]mapSource, error) {
	keys := make([]string, 0, len(mapping))
	for k := range mapping {
		keys = append(keys, k)
	}
	out := make([]mapSource, 0, len(keys))
	for _, dest := range jsKeyOrder(keys, order) {
		var mv outbound.MapValue
		switch t := mapping[dest].(type) {
		case string:
			mv = outbound.MapPath(t)
		case outbound.MapValue:
			mv = t
		case map[string]any:
			b, err := json.Marshal(t)
			if err == nil {
				err = json.Unmarshal(b, &mv)
			}
			if err != nil {
				return nil, fmt.Errorf("mapping %q: %w", dest, err)
			}
		default:
			return nil, fmt.Errorf("mapping %q: unsupported source type %T", dest, t)
		}
		s := mapSource{dest: dest, path: mv.Path, required: !mv.Optional}
		if _, isStr := mapping[dest].(string); isStr {
			s.required = true
		}
		switch {
		case mv.Expr != "":
			p, err := compileJS(mv.Expr)
			if err != nil {
				return nil, fmt.Errorf("mapping %q: expr: %w", dest, err)
			}
			s.expr = p
		case mv.Path == "":
			return nil, fmt.Errorf("mapping %q: either 'expr' or 'path' is required", dest)
		}
		out = append(out, s)
	}
	return out, nil
}

// Push evaluates doc as mark_for_outbound does right after a change: skip
// it when not relevant (or deleted), map it, skip it when the payload hash
// equals the last successful push of that doc, otherwise POST it. A failed
// push queues the doc for RunQueue. With a Server the doc's task collects
// the failed pushes of the revision that created it (pushers following the
// server that push the same _rev) and no other: a failure of another
// revision while the task exists is not queued, as in CHT. The returned
// error is the failure, if any.
func (p *OutboundPusher) Push(ctx context.Context, doc any) (Attempt, error) {
	d, err := toDocValue(doc)
	if err != nil {
		return Attempt{}, fmt.Errorf("chttest: outbound: %w", err)
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	return p.push(ctx, d, false)
}

// PushID pushes the current doc with id as returned by Source (the
// hydrated doc, as Sentinel loads it).
func (p *OutboundPusher) PushID(ctx context.Context, id string) (Attempt, error) {
	if p.cfg.Source == nil {
		return Attempt{}, errors.New("chttest: outbound: PushID needs Source or Server")
	}
	d, ok := p.cfg.Source(id)
	if !ok {
		return Attempt{}, fmt.Errorf("chttest: outbound: doc %q not found", id)
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	return p.push(ctx, d, false)
}

func (p *OutboundPusher) push(ctx context.Context, d map[string]any, retry bool) (Attempt, error) {
	id := str(d["_id"])
	a := Attempt{DocID: id, Push: p.cfg.Name, Time: p.cfg.Now(), Retry: retry}
	// queue notes a failure of the real-time push (mark_for_outbound);
	// a retry that fails stays where it is in the task.
	queue := func(failed bool) {
		if !retry {
			p.enqueue(id, changeOf(d), taskOrder{failed: failed, rank: p.rank})
		}
	}
	if p.cfg.Source == nil {
		// RunQueue retries this copy; with a Source it re-fetches instead,
		// so nothing is kept (a long run would hold every doc).
		p.mu.Lock()
		p.lastDoc[id] = d
		p.mu.Unlock()
	}
	var js *jsDoc
	if p.cfg.Map == nil || p.cfg.relevantJS != nil {
		var err error
		if js, err = newJSDoc(d); err != nil {
			a.Outcome, a.Err = OutcomeMappingError, fmt.Errorf("chttest: outbound: %w", err)
			queue(true)
			return p.record(a), a.Err
		}
	}
	if !retry {
		// mark_for_outbound.js relevantTo evaluates every push's
		// relevant_to before any is sent: one that throws fails the
		// transition for the doc (transitions/index.js applyTransition
		// catches it), so no push of that change goes out.
		if err := p.siblingThrows(js, d); err != nil {
			a.Outcome, a.Err = OutcomeNotRelevant, err
			return p.record(a), err
		}
		// Sentinel's schedule never re-checks relevance: a queued doc is
		// retried until it is sent or deleted.
		relevant, err := p.relevant(js, d)
		if err != nil || !relevant {
			a.Outcome, a.Err = OutcomeNotRelevant, err
			return p.record(a), err
		}
		if !p.due() {
			// mark_for_outbound: outside the cron window (or with a cron
			// CHT refuses) the push is queued without an attempt.
			a.Outcome, a.Err = OutcomeQueued, p.cronErr
			queue(false)
			return p.record(a), a.Err
		}
	}
	body, err := p.mapDoc(js, d)
	if err != nil {
		a.Outcome, a.Err = OutcomeMappingError, err
		queue(true)
		return p.record(a), err
	}
	a.Payload = body
	if a.Hash, err = payloadHash(body); err != nil {
		a.Outcome, a.Err = OutcomeMappingError, fmt.Errorf("chttest: outbound: hash payload: %w", err)
		queue(true)
		return p.record(a), a.Err
	}
	p.mu.Lock()
	already := p.sent[id] == a.Hash
	p.mu.Unlock()
	if already {
		a.Outcome = OutcomeAlreadySent
		if retry {
			p.dequeue(id)
		}
		return p.record(a), nil
	}
	start := time.Now()
	a.StatusCode, a.Response, err = p.send(ctx, body)
	a.Duration = time.Since(start)
	if err != nil {
		a.Outcome, a.Err = OutcomeFailed, err
		queue(true)
		return p.record(a), err
	}
	a.Outcome = OutcomeSent
	p.mu.Lock()
	p.sent[id] = a.Hash
	p.mu.Unlock()
	if retry {
		// A live push leaves a queued task as it is
		// (mark_for_outbound.js markForOutbound only saves the completed
		// task): the next run of Sentinel's schedule finds the payload
		// sent and removes it (schedule/outbound.js singlePush).
		p.dequeue(id)
	}
	return p.record(a), nil
}

// relevant applies RelevantTo, or relevant_to as JavaScript for a
// configuration read from app settings (no relevant_to: never relevant).
// A deleted doc is never pushed (Sentinel runs no transitions on it).
func (p *OutboundPusher) relevant(js *jsDoc, d map[string]any) (bool, error) {
	if del, _ := d["_deleted"].(bool); del {
		return false, nil
	}
	switch {
	case p.cfg.RelevantTo != nil:
		return p.cfg.RelevantTo(d), nil
	case p.cfg.relevantJS != nil:
		ok, err := js.truthy(p.cfg.relevantJS)
		if err != nil {
			return false, fmt.Errorf("chttest: outbound: %s relevant_to: %w", p.cfg.Name, err)
		}
		return ok, nil
	}
	return !p.cfg.fromSettings, nil
}

// siblingThrows returns the error of the first other push read from the
// same app settings, following the same Server, whose relevant_to throws
// for d (see push); nil when none does.
func (p *OutboundPusher) siblingThrows(js *jsDoc, d map[string]any) error {
	srv := p.cfg.Server
	if srv == nil || !p.cfg.fromSettings || js == nil {
		return nil
	}
	if del, _ := d["_deleted"].(bool); del {
		return nil
	}
	srv.mu.Lock()
	pushers := slices.Clone(srv.pushers)
	srv.mu.Unlock()
	for _, q := range pushers {
		if q == p || !q.cfg.fromSettings || q.cfg.relevantJS == nil {
			continue
		}
		if _, err := js.truthy(q.cfg.relevantJS); err != nil {
			return fmt.Errorf("chttest: outbound: %s relevant_to: %w (CHT then pushes none of this change)", q.cfg.Name, err)
		}
	}
	return nil
}

// due reports whether the push may be sent now: no cron, or now within 5
// minutes of one of its ticks (transitions lib isWithinTimeFrame). A cron
// cron-validator refuses is never due, and so is one with no tick at all
// (see internal/cron.Due: later.js's next and prev give up on dates that
// match nothing, and isWithinTimeFrame answers false without a log line).
//
// CHT reads the cron with later.js (later.parse.cron), whose schedule
// requires every field to match: with both day of month and day of week
// restricted, a day is a tick only when it matches both, not either as
// in classic cron (robfig/cron's dayMatches). The fake walks robfig's
// ticks, a superset, and keeps those later.js keeps.
func (p *OutboundPusher) due() bool {
	if p.cronErr != nil {
		p.log.Error("chttest outbound", "push", p.cfg.Name, "err", p.cronErr)
		return false
	}
	if p.cron == nil {
		return true
	}
	if p.never {
		return false
	}
	now := p.cfg.Now().UTC()
	end := now.Add(cronWindow)
	for t := p.cron.Next(now.Add(-cronWindow - time.Second)); !t.IsZero() && !t.After(end); t = p.cron.Next(t) {
		if laterDayMatches(p.cron, t) {
			return true
		}
	}
	return false
}

// parseCron reads a five-field cron (one cron-validator accepts) for
// robfig/cron's Next, whose ticks due filters with laterDayMatches. The
// minutes and hours are later.js's (internal/cron.TimeOfDay), which read
// an end of 0 ("0-0") as the field's maximum where robfig reads 0.
func parseCron(expr string) (*cron.SpecSchedule, error) {
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, err
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("unsupported schedule %T", s)
	}
	spec.Minute, spec.Hour = chtcron.TimeOfDay(expr)
	return spec, nil
}

// laterDayMatches reports whether t's day is a tick day for later.js: its
// day of month and its day of week both match (an unrestricted field
// matches every day).
func laterDayMatches(s *cron.SpecSchedule, t time.Time) bool {
	return s.Dom&(1<<uint(t.Day())) != 0 && s.Dow&(1<<uint(t.Weekday())) != 0
}

// cronWindow is Sentinel's TIME_FRAME_DURATION around a cron tick.
const cronWindow = 5 * time.Minute

func (p *OutboundPusher) record(a Attempt) Attempt {
	p.mu.Lock()
	p.outcomes[a.Outcome]++
	if m := p.cfg.MaxAttempts; m > 0 && len(p.attempts) >= m {
		// Drop the older half at once: amortised O(1) per attempt.
		n := copy(p.attempts, p.attempts[len(p.attempts)-m/2:])
		clear(p.attempts[n:])
		p.attempts = p.attempts[:n]
	}
	p.attempts = append(p.attempts, a)
	p.mu.Unlock()
	lvl := slog.LevelDebug
	if a.Err != nil {
		lvl = slog.LevelWarn
	}
	p.log.Log(context.Background(), lvl, "chttest outbound", "push", a.Push, "doc", a.DocID,
		"outcome", string(a.Outcome), "status", a.StatusCode, "retry", a.Retry, "err", a.Err)
	return a
}

// queued is one retry queue entry.
type queued struct {
	id     string
	ticket int64
}

// changeOf names the change of doc d whose pushes share one outbound
// task: its _rev, or, for a doc without one (the records API's pass
// before the report is saved, which runs every pusher on the same doc, or
// a doc handed to Push), its content, so that two different rev-less
// docs of one id are two changes, as in CHT.
func changeOf(d map[string]any) string {
	if rev, ok := d["_rev"].(string); ok && rev != "" {
		return rev
	}
	b, err := json.Marshal(d) // keys sorted: equal docs, equal bytes
	if err != nil {
		return ""
	}
	h := sha256.Sum256(b)
	return "content:" + hex.EncodeToString(h[:])
}

// enqueue and dequeue are O(1) (amortised): a long run queues thousands of
// docs, and a linear search per push made it quadratic.
//
// enqueue queues id after the real-time push of its revision change
// failed; ord is the push's place in a new task's queue.
func (p *OutboundPusher) enqueue(id, change string, ord taskOrder) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.inQueue[id]; ok {
		if p.holds(id) {
			return
		}
		p.forget(id) // another push's success took this entry out of the task
	}
	if srv := p.cfg.Server; srv != nil && !srv.addOutboundTask(id, p.cfg.Name, change, ord, p.cfg.Now()) {
		return // a task of another change exists: Sentinel does not top it up
	}
	p.ticket++
	p.inQueue[id] = p.ticket
	p.queue = append(p.queue, queued{id, p.ticket})
}

// dequeue is a retry that found id sent. With a Server it removes the
// entry Sentinel removes from the task (Server.completeOutboundTask): if
// that was another push's entry, this push stays queued.
func (p *OutboundPusher) dequeue(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if srv := p.cfg.Server; srv != nil && srv.completeOutboundTask(id, p.cfg.Name) {
		return
	}
	p.forget(id)
}

// forget removes id from this pusher's queue; p.mu is held.
func (p *OutboundPusher) forget(id string) {
	if _, ok := p.inQueue[id]; !ok {
		return
	}
	delete(p.inQueue, id)
	if len(p.queue) > 2*len(p.inQueue)+16 {
		p.queue = p.liveQueue()
	}
}

// holds reports whether id's task still lists this push (always true
// without a Server); p.mu is held.
func (p *OutboundPusher) holds(id string) bool {
	srv := p.cfg.Server
	return srv == nil || srv.outboundTaskHolds(id, p.cfg.Name)
}

// liveQueue returns the live queue entries in order; p.mu is held.
func (p *OutboundPusher) liveQueue() []queued {
	out := make([]queued, 0, len(p.inQueue))
	for _, q := range p.queue {
		if p.inQueue[q.id] == q.ticket {
			out = append(out, q)
		}
	}
	return out
}

// queueIDs returns the ids waiting for a retry, in order, and forgets
// those whose task no longer lists this push (another push's success
// removed its entry, or the task was deleted); p.mu is held.
func (p *OutboundPusher) queueIDs() []string {
	ids := make([]string, 0, len(p.inQueue))
	var gone []string
	for _, q := range p.liveQueue() {
		if !p.holds(q.id) {
			gone = append(gone, q.id)
			continue
		}
		ids = append(ids, q.id)
	}
	for _, id := range gone {
		p.forget(id)
	}
	return ids
}

// send POSTs body and applies CHT's success rules. As outbound.js
// sendPayload, it joins the URL and resolves the auth (handleAuth, reading
// the credential store) at every push, so a configuration error fails
// only this push.
func (p *OutboundPusher) send(ctx context.Context, body []byte) (int, []byte, error) {
	if p.cfg.sendErr != nil {
		return 0, nil, fmt.Errorf("chttest: outbound: Failed to push to %s: %w", p.cfg.Name, p.cfg.sendErr)
	}
	user, pass, header := p.cfg.Username, p.cfg.Password, p.cfg.AuthHeader
	if a := p.cfg.settingsAuth; a != nil {
		var err error
		if user, pass, header, err = resolveAuth(a, p.cfg.creds); err != nil {
			return 0, nil, fmt.Errorf("chttest: outbound: Failed to push to %s: %w", p.cfg.Name, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("chttest: outbound: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	switch {
	case header != "":
		req.Header.Set("Authorization", header)
	case user != "":
		req.SetBasicAuth(user, pass)
	}
	if p.ver.AtLeast(4, 18) {
		// 4.18 shared-libs/outbound/src/outbound.js getUserAgent: CHT_AGENT
		// 'CHT'; from 4.19 shared-libs/couch-request getUserAgent: CHT_AGENT
		// 'Community Health Toolkit'.
		agent := "CHT/"
		if p.ver.AtLeast(4, 19) {
			agent = "Community Health Toolkit/"
		}
		req.Header.Set("User-Agent", agent+p.ver.String()+" ("+runtime.GOOS+","+nodeArch(runtime.GOARCH)+")")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("chttest: outbound: push %s: %w", p.cfg.Name, err)
	}
	defer resp.Body.Close()
	// CHT reads the whole answer (couch-request getResponseBody:
	// response.json() or response.text()); the fake reads up to
	// maxPushResponse and keeps the first maxKeptResponse in the attempt.
	all, err := io.ReadAll(io.LimitReader(resp.Body, maxPushResponse+1))
	cut := len(all) > maxPushResponse
	rb := keptResponse(all)
	if err != nil {
		return resp.StatusCode, rb, fmt.Errorf("chttest: outbound: read response: %w", err)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if p.ver.AtLeast(4, 17) {
		ok = ok || (resp.StatusCode > 300 && resp.StatusCode < 399)
		// couch-request getResponseBody: receiveJson =
		// contentType?.startsWith('application/json'), case-sensitive.
		// An answer cut at maxPushResponse is not judged.
		if ok && !cut && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && !json.Valid(all) {
			return resp.StatusCode, rb, fmt.Errorf("chttest: outbound: push %s: status %d with an invalid JSON body", p.cfg.Name, resp.StatusCode)
		}
	}
	if !ok {
		return resp.StatusCode, rb, fmt.Errorf("chttest: outbound: Failed to push to %s, server responsed with %d", p.cfg.Name, resp.StatusCode)
	}
	return resp.StatusCode, rb, nil
}

// Bounds on a destination's answer to a push.
const (
	// maxPushResponse is how much of an answer send reads and checks as
	// JSON; beyond it the answer is not judged (CHT reads it all).
	maxPushResponse = 64 << 20
	// maxKeptResponse is how much of an answer Attempt.Response keeps.
	maxKeptResponse = 1 << 20
)

// keptResponse returns the first maxKeptResponse bytes of an answer, in a
// copy when cut so that the attempt does not hold the whole answer.
func keptResponse(b []byte) []byte {
	if len(b) <= maxKeptResponse {
		return b
	}
	return slices.Clone(b[:maxKeptResponse])
}

// RunQueue is one run of Sentinel's outbound schedule for this push: for
// each queued doc, in order, re-fetch the current doc (deleting the task,
// with every push it lists, if the doc is gone), map it and retry it.
// Successes leave the queue. It returns an error listing the pushes that
// failed again (they stay queued).
//
// With a Server, a success removes from the doc's task the entry Sentinel
// removes (removeConfigKeyFromTask: queue.splice(name, 1), index 0 for a
// name that is no number): with several pushes queued that may be another
// push's entry, which is then never retried, while this push stays queued
// and the next run finds it sent. One run of Sentinel's schedule takes the
// tasks in doc id order and tries every due push a task listed when the
// run began, in the queue's order; RunQueue retries one push's docs, in
// the order they failed, so the pushers' RunQueue calls one after the
// other retry the same pushes in another order, and a push whose entry an
// earlier success removed is not tried (see docs/fidelity.md).
func (p *OutboundPusher) RunQueue(ctx context.Context) error {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if !p.due() {
		return nil // queued pushes wait for the cron window
	}
	p.mu.Lock()
	ids := p.queueIDs()
	p.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		var d map[string]any
		var ok bool
		if p.cfg.Source != nil {
			d, ok = p.cfg.Source(id)
		} else {
			p.mu.Lock()
			d, ok = p.lastDoc[id]
			p.mu.Unlock()
		}
		if !ok {
			p.mu.Lock()
			if srv := p.cfg.Server; srv != nil {
				srv.dropOutboundTask(id)
			}
			p.forget(id)
			p.mu.Unlock()
			p.record(Attempt{DocID: id, Push: p.cfg.Name, Time: p.cfg.Now(), Retry: true, Outcome: OutcomeDropped})
			continue
		}
		if _, err := p.push(ctx, d, true); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("chttest: outbound: %d of %d queued pushes failed: %w", len(errs), len(ids), errors.Join(errs...))
	}
	return nil
}

// Sync pushes every change of the followed Server since the last call
// (each changed doc once, hydrated, deleted docs skipped), like one pass of
// Sentinel over the changes feed. It needs PusherConfig.Server. It returns
// the number of docs evaluated and the failures joined.
func (p *OutboundPusher) Sync(ctx context.Context) (int, error) {
	if p.cfg.Server == nil {
		return 0, errors.New("chttest: outbound: Sync needs PusherConfig.Server")
	}
	p.runMu.Lock()
	defer p.runMu.Unlock()
	n, _, err := p.syncLocked(ctx)
	return n, err
}

func (p *OutboundPusher) syncLocked(ctx context.Context) (int, <-chan struct{}, error) {
	st := p.cfg.Server.store
	if !p.seqInit {
		p.seqInit = true
		if p.cfg.FromNow {
			p.seq = st.lastSeq()
		}
	}
	changes, last, changed := st.changesSince(p.seq, 0)
	var errs []error
	n := 0
	for _, ch := range changes {
		if err := ctx.Err(); err != nil {
			return n, changed, err
		}
		p.seq = ch.seq
		if ch.deleted {
			continue
		}
		// transitions/index.js processChange: lineage.fetchHydratedDoc.
		d, ok := p.cfg.Server.fetchHydratedDoc(ch.id)
		if !ok {
			continue
		}
		n++
		if _, err := p.push(ctx, d, false); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ch.id, err))
		}
	}
	p.seq = max(p.seq, last)
	return n, changed, errors.Join(errs...)
}

// Run drives pushes until ctx is done: with a Server it follows its changes
// (Sync on every change), and it runs the retry queue every RetryInterval.
// It returns nil when ctx is cancelled. With PusherConfig.FromNow, call
// Sync before starting Run in a goroutine (see FromNow).
func (p *OutboundPusher) Run(ctx context.Context) error {
	ticker := time.NewTicker(p.cfg.RetryInterval)
	defer ticker.Stop()
	for {
		var changed <-chan struct{}
		if p.cfg.Server != nil {
			p.runMu.Lock()
			_, changed, _ = p.syncLocked(ctx)
			p.runMu.Unlock()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-ticker.C:
			_ = p.RunQueue(ctx)
		}
	}
}

// Attempts returns the attempts so far, oldest first: every attempt, or
// with PusherConfig.MaxAttempts at least the most recent MaxAttempts/2.
func (p *OutboundPusher) Attempts() []Attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.attempts)
}

// Queue returns the ids of docs waiting for a retry, in queue order. With
// a Server these are the docs whose task lists this push.
func (p *OutboundPusher) Queue() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queueIDs()
}

// SentHash returns the hash of the last payload successfully pushed for a
// doc (the infodoc's completed_tasks entry).
func (p *OutboundPusher) SentHash(docID string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, ok := p.sent[docID]
	return h, ok
}

// CountOutcome counts the attempts with outcome o, including those
// Attempts no longer keeps (PusherConfig.MaxAttempts).
func (p *OutboundPusher) CountOutcome(o Outcome) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outcomes[o]
}

// PayloadHash returns the hash CHT stores for a pushed payload and
// compares to decide whether it was already sent: SHA-256 (hex) of the
// payload's JSON with object keys sorted (outbound.js hash and
// orderedStringify). payload is JSON bytes (as Attempt.Payload) or a Go
// value, encoded as JSON.stringify would encode it.
func PayloadHash(payload any) (string, error) {
	body, err := encodePayload(payload)
	if err != nil {
		return "", err
	}
	return payloadHash(body)
}

// encodePayload encodes a Go payload as JSON.stringify does (no HTML escaping).
func encodePayload(payload any) ([]byte, error) {
	switch t := payload.(type) {
	case json.RawMessage:
		return t, nil
	case []byte:
		return t, nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(payload); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// nodeArch names a GOARCH as Node's os.arch() does.
func nodeArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x64"
	case "386":
		return "ia32"
	}
	return goarch
}

// mapDoc applies Map or the mapping and returns the JSON body.
func (p *OutboundPusher) mapDoc(js *jsDoc, d map[string]any) ([]byte, error) {
	if p.cfg.mappingErr != nil {
		return nil, fmt.Errorf("chttest: outbound: %s: %w", p.cfg.Name, p.cfg.mappingErr)
	}
	if p.cfg.Map != nil {
		v, err := p.cfg.Map(d)
		if err != nil {
			return nil, fmt.Errorf("chttest: outbound: map: %w", err)
		}
		body, err := encodePayload(v)
		if err != nil {
			return nil, fmt.Errorf("chttest: outbound: encode payload: %w", err)
		}
		return body, nil
	}
	body, err := js.mapPayload(p.cfg.Name, p.sources)
	if err != nil {
		return nil, fmt.Errorf("chttest: outbound: %w", err)
	}
	return body, nil
}

// ApplyMapping returns the payload CHT builds for doc with mapping (see
// PusherConfig.Mapping), as the JSON it would send: sources are resolved
// against {doc} with object-path semantics, expressions run as
// JavaScript, a missing required value is an error and a missing optional
// one is omitted.
func ApplyMapping(mapping map[string]any, doc map[string]any) (json.RawMessage, error) {
	sources, err := compileMapping(mapping, nil)
	if err != nil {
		return nil, fmt.Errorf("chttest: outbound: %w", err)
	}
	js, err := newJSDoc(doc)
	if err != nil {
		return nil, fmt.Errorf("chttest: outbound: %w", err)
	}
	body, err := js.mapPayload("mapping", sources)
	if err != nil {
		return nil, fmt.Errorf("chttest: outbound: %w", err)
	}
	return body, nil
}

// deepCopy copies JSON-like maps and slices.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}

// LogValue redacts the secrets, so a logged config shows no password or
// Authorization value.
func (c PusherConfig) LogValue() slog.Value {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "[REDACTED]"
	}
	return slog.GroupValue(slog.String("name", c.Name), slog.String("url", c.URL),
		slog.String("username", c.Username), slog.String("password", redact(c.Password)),
		slog.String("auth_header", redact(c.AuthHeader)), slog.String("version", c.Version))
}
