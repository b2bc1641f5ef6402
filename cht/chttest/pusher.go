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
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of CHT's outbound push.
const (
	// OutboundTimeout is CHT's OUTBOUND_REQ_TIMEOUT.
	OutboundTimeout = 10 * time.Second
	// OutboundRetryInterval is how often Sentinel's scheduler retries
	// queued pushes.
	OutboundRetryInterval = 5 * time.Minute
)

// MapPath is a mapping value {"path": ..., "optional": ...}.
type MapPath struct {
	Path     string
	Optional bool
}

// MapExpr stands in for a mapping {"expr": ...}: CHT evaluates JavaScript,
// the pusher calls Expr. A nil result is undefined: omitted when Optional,
// a mapping error otherwise.
type MapExpr struct {
	Expr     func(doc map[string]any) (any, error)
	Optional bool
}

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
	// RelevantTo decides whether a doc is pushed; nil pushes every doc.
	RelevantTo func(doc map[string]any) bool
	// Mapping is CHT's mapping: destination object-path → source. A
	// source is a string path such as "doc.fields.height" (required), a
	// MapPath, a map{"path","optional"} as decoded from JSON, or a
	// MapExpr. Numeric destination segments create arrays.
	Mapping map[string]any
	// Map, if set, replaces Mapping: it returns the payload for a doc.
	Map func(doc map[string]any) (any, error)
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
	Server *Server
	// Source returns the current hydrated doc for queued retries (Sentinel
	// re-fetches and re-hydrates the doc). nil uses Server.HydratedDoc, or
	// else the last doc passed to Push.
	Source func(id string) (map[string]any, bool)
	// FromNow makes Run and Sync ignore changes made before the first call.
	FromNow bool
	// Logger receives one line per attempt; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
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
)

// Attempt records one evaluation of a doc by the pusher.
type Attempt struct {
	DocID string
	Push  string
	Time  time.Time
	// Retry is true for attempts made by RunQueue.
	Retry   bool
	Outcome Outcome
	// Payload is the mapped JSON body and Hash its SHA-256 over key-sorted
	// JSON (what CHT stores in the infodoc).
	Payload json.RawMessage
	Hash    string
	// StatusCode and Response are the destination's answer (0/nil when
	// not sent or on network errors).
	StatusCode int
	Response   []byte
	Duration   time.Duration
	Err        error
}

// OutboundPusher replays CHT's outbound push (mark_for_outbound and
// Sentinel's outbound schedule) against a destination.
type OutboundPusher struct {
	cfg    PusherConfig
	ver    version
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	attempts []Attempt
	queue    []string
	lastDoc  map[string]map[string]any
	sent     map[string]string // doc id -> hash of the last successful payload
	seq      int64
	seqInit  bool
	runMu    sync.Mutex // serialises Push, RunQueue and Sync, like Sentinel
}

// NewOutboundPusher validates cfg and returns a pusher. It does no I/O.
func NewOutboundPusher(cfg PusherConfig) (*OutboundPusher, error) {
	if cfg.URL == "" {
		return nil, errors.New("chttest: outbound: URL is required")
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("chttest: outbound: URL %q must be absolute http(s)", cfg.URL)
	}
	if cfg.Map == nil && len(cfg.Mapping) == 0 {
		return nil, errors.New("chttest: outbound: Mapping or Map is required")
	}
	for dest, src := range cfg.Mapping {
		if err := checkMapSource(src); err != nil {
			return nil, fmt.Errorf("chttest: outbound: mapping %q: %w", dest, err)
		}
	}
	if cfg.Name == "" {
		cfg.Name = "chttest"
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	v, err := parseVersion(cfg.Version)
	if err != nil {
		return nil, err
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
	if !v.atLeast(4, 17) {
		// request-promise-native does not follow redirects on POST.
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	p := &OutboundPusher{cfg: cfg, ver: v, client: client, log: cfg.Logger,
		lastDoc: make(map[string]map[string]any), sent: make(map[string]string)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

func checkMapSource(src any) error {
	switch t := src.(type) {
	case string:
		if t == "" {
			return errors.New("empty path")
		}
	case MapPath:
		if t.Path == "" {
			return errors.New("empty path")
		}
	case MapExpr:
		if t.Expr == nil {
			return errors.New("nil Expr")
		}
	case map[string]any:
		if _, ok := t["expr"]; ok {
			return errors.New(`"expr" is JavaScript and cannot be evaluated by chttest; use MapExpr or PusherConfig.Map`)
		}
		if p, _ := t["path"].(string); p == "" {
			return errors.New(`object source needs a "path"`)
		}
	default:
		return fmt.Errorf("unsupported source type %T", src)
	}
	return nil
}

// Push evaluates doc as mark_for_outbound does right after a change: skip
// it when not relevant (or deleted), map it, skip it when the payload hash
// equals the last successful push of that doc, otherwise POST it. A failed
// push queues the doc for RunQueue (once: an existing task is not topped
// up). The returned error is the failure, if any.
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
	p.mu.Lock()
	p.lastDoc[id] = d
	p.mu.Unlock()
	if del, _ := d["_deleted"].(bool); del || (p.cfg.RelevantTo != nil && !p.cfg.RelevantTo(d)) {
		a.Outcome = OutcomeNotRelevant
		if retry {
			// The config no longer applies: CHT drops the queue entry.
			p.dequeue(id)
		}
		return p.record(a), nil
	}
	payload, err := p.mapDoc(d)
	if err != nil {
		a.Outcome, a.Err = OutcomeMappingError, err
		p.enqueue(id)
		return p.record(a), err
	}
	body, err := json.Marshal(payload)
	if err != nil {
		a.Outcome, a.Err = OutcomeMappingError, fmt.Errorf("chttest: outbound: encode payload: %w", err)
		p.enqueue(id)
		return p.record(a), a.Err
	}
	a.Payload = body
	a.Hash = PayloadHash(payload)
	p.mu.Lock()
	already := p.sent[id] == a.Hash
	p.mu.Unlock()
	if already {
		a.Outcome = OutcomeAlreadySent
		p.dequeue(id)
		return p.record(a), nil
	}
	start := time.Now()
	a.StatusCode, a.Response, err = p.send(ctx, body)
	a.Duration = time.Since(start)
	if err != nil {
		a.Outcome, a.Err = OutcomeFailed, err
		p.enqueue(id)
		return p.record(a), err
	}
	a.Outcome = OutcomeSent
	p.mu.Lock()
	p.sent[id] = a.Hash
	p.mu.Unlock()
	p.dequeue(id)
	return p.record(a), nil
}

func (p *OutboundPusher) record(a Attempt) Attempt {
	p.mu.Lock()
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

func (p *OutboundPusher) enqueue(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.queue, id) {
		p.queue = append(p.queue, id)
	}
}

func (p *OutboundPusher) dequeue(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.queue, id); i >= 0 {
		p.queue = slices.Delete(p.queue, i, i+1)
	}
}

// send POSTs body and applies CHT's success rules.
func (p *OutboundPusher) send(ctx context.Context, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("chttest: outbound: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	switch {
	case p.cfg.AuthHeader != "":
		req.Header.Set("Authorization", p.cfg.AuthHeader)
	case p.cfg.Username != "":
		req.SetBasicAuth(p.cfg.Username, p.cfg.Password)
	}
	if p.ver.atLeast(4, 18) {
		req.Header.Set("User-Agent", "Community Health Toolkit/"+p.ver.String()+" ("+runtime.GOOS+","+runtime.GOARCH+")")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("chttest: outbound: push %s: %w", p.cfg.Name, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, rb, fmt.Errorf("chttest: outbound: read response: %w", err)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if p.ver.atLeast(4, 17) {
		ok = ok || (resp.StatusCode > 300 && resp.StatusCode < 399)
		if ok && strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "application/json") && !json.Valid(rb) {
			return resp.StatusCode, rb, fmt.Errorf("chttest: outbound: push %s: status %d with an invalid JSON body", p.cfg.Name, resp.StatusCode)
		}
	}
	if !ok {
		return resp.StatusCode, rb, fmt.Errorf("chttest: outbound: Failed to push to %s, server responsed with %d", p.cfg.Name, resp.StatusCode)
	}
	return resp.StatusCode, rb, nil
}

// RunQueue is one run of Sentinel's outbound schedule: for each queued doc,
// in order, re-fetch the current doc (dropping the task if it is gone),
// map it and retry it. Successes leave the queue. It returns an error
// listing the pushes that failed again (they stay queued).
func (p *OutboundPusher) RunQueue(ctx context.Context) error {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	p.mu.Lock()
	ids := slices.Clone(p.queue)
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
			p.dequeue(id)
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
		d, ok := p.cfg.Server.HydratedDoc(ch.id)
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
// It returns nil when ctx is cancelled.
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

// Attempts returns every attempt so far, oldest first.
func (p *OutboundPusher) Attempts() []Attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.attempts)
}

// Queue returns the ids of docs waiting for a retry, in queue order.
func (p *OutboundPusher) Queue() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.queue)
}

// SentHash returns the hash of the last payload successfully pushed for a
// doc (the infodoc's completed_tasks entry).
func (p *OutboundPusher) SentHash(docID string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, ok := p.sent[docID]
	return h, ok
}

// CountOutcome counts the attempts with outcome o.
func (p *OutboundPusher) CountOutcome(o Outcome) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.attempts {
		if a.Outcome == o {
			n++
		}
	}
	return n
}

// PayloadHash returns the SHA-256 (hex) of the key-sorted JSON of payload,
// the hash CHT compares to decide whether a payload was already sent.
func PayloadHash(payload any) string {
	b, err := json.Marshal(payload) // encoding/json sorts map keys
	if err != nil {
		return ""
	}
	if v, err := decodeAny(b); err == nil {
		b, _ = json.Marshal(v) // re-encode structs with sorted keys
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// mapDoc applies Map or Mapping.
func (p *OutboundPusher) mapDoc(d map[string]any) (any, error) {
	if p.cfg.Map != nil {
		v, err := p.cfg.Map(d)
		if err != nil {
			return nil, fmt.Errorf("chttest: outbound: map: %w", err)
		}
		return v, nil
	}
	return ApplyMapping(p.cfg.Mapping, d)
}

// ApplyMapping applies a CHT outbound mapping to doc (see
// PusherConfig.Mapping): sources are resolved against {"doc": doc} with
// object-path semantics; a missing required value is an error; optional
// missing values are omitted.
func ApplyMapping(mapping map[string]any, doc map[string]any) (map[string]any, error) {
	ctx := map[string]any{"doc": doc}
	keys := make([]string, 0, len(mapping))
	for k := range mapping {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := map[string]any{}
	for _, dest := range keys {
		var v any
		var found, optional bool
		var srcPath string
		switch t := mapping[dest].(type) {
		case string:
			srcPath = t
		case MapPath:
			srcPath, optional = t.Path, t.Optional
		case map[string]any:
			srcPath, _ = t["path"].(string)
			optional, _ = t["optional"].(bool)
			if _, ok := t["expr"]; ok {
				return nil, fmt.Errorf("chttest: outbound: mapping %q: expr is not supported", dest)
			}
		case MapExpr:
			r, err := t.Expr(doc)
			if err != nil {
				return nil, fmt.Errorf("chttest: outbound: mapping %q: expr: %w", dest, err)
			}
			v, found, optional = r, r != nil, t.Optional
			srcPath = "<expr>"
		default:
			return nil, fmt.Errorf("chttest: outbound: mapping %q: unsupported source %T", dest, t)
		}
		if srcPath != "<expr>" {
			v, found = getPath(ctx, srcPath)
		}
		// Copy so that later destinations cannot write into the source doc
		// (or create cycles through an aliased object).
		v = deepCopy(v)
		if !found {
			if optional {
				continue
			}
			return nil, fmt.Errorf("chttest: outbound: mapping error for %q: JSON path %q not found", dest, srcPath)
		}
		r, err := setPath(out, strings.Split(dest, "."), v)
		if err != nil {
			return nil, fmt.Errorf("chttest: outbound: mapping %q: %w", dest, err)
		}
		out = r.(map[string]any)
	}
	return out, nil
}

// getPath is object-path get: numeric segments index arrays; a missing
// segment is undefined (found false). JSON null is found.
func getPath(v any, path string) (any, bool) {
	cur := v
	for seg := range strings.SplitSeq(path, ".") {
		switch t := cur.(type) {
		case map[string]any:
			x, ok := t[seg]
			if !ok {
				return nil, false
			}
			cur = x
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			cur = t[i]
		case string:
			if seg == "length" {
				cur = json.Number(strconv.Itoa(len(t)))
				continue
			}
			return nil, false
		default:
			return nil, false
		}
	}
	return cur, true
}

// setPath is object-path set: missing containers are created, as arrays
// when the next segment is numeric.
func setPath(cur any, segs []string, v any) (any, error) {
	if len(segs) == 0 {
		return v, nil
	}
	seg := segs[0]
	idx, numErr := strconv.Atoi(seg)
	isIdx := numErr == nil && idx >= 0
	if cur == nil {
		if isIdx {
			cur = []any{}
		} else {
			cur = map[string]any{}
		}
	}
	switch t := cur.(type) {
	case map[string]any:
		r, err := setPath(t[seg], segs[1:], v)
		if err != nil {
			return nil, err
		}
		t[seg] = r
		return t, nil
	case []any:
		if !isIdx {
			return nil, fmt.Errorf("segment %q on an array", seg)
		}
		if idx > 1<<16 {
			return nil, fmt.Errorf("array index %d too large", idx)
		}
		for len(t) <= idx {
			t = append(t, nil)
		}
		r, err := setPath(t[idx], segs[1:], v)
		if err != nil {
			return nil, err
		}
		t[idx] = r
		return t, nil
	default:
		return nil, fmt.Errorf("segment %q on a %T", seg, cur)
	}
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
