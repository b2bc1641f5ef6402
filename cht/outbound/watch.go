package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/cron"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/release"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/versionhook"
)

// defaultCacheFor is WatchConfig.CacheFor's default.
const defaultCacheFor = 15 * time.Second

// settingsCacheFor is how long one read of the app settings serves: they
// change rarely, and Sentinel's outbound schedule runs every 5 minutes
// anyway (sentinel/src/schedule/outbound.js).
const settingsCacheFor = 5 * time.Minute

// cronMajor.cronMinor is the first CHT release whose Sentinel honours a
// push's cron: before 4.5.0 sentinel/src/schedule/outbound.js execute
// batches every configured push and mark_for_outbound.js sends at once.
const cronMajor, cronMinor = 4, 5

// errVersionUnknown says that the Queue cannot tell the CHT release.
var errVersionUnknown = errors.New("the CHT version is unknown: the Queue is not a *cht.Client")

// Queue reads CHT's outbound queue; [cht.Client] implements it.
type Queue interface {
	OutboundQueue(ctx context.Context) ([]cht.OutboundTask, error)
}

// settingsReader reads CHT's app settings; [cht.Client] implements it
// ([cht.Client.AppSettings]). A Queue that also implements it lets a Watch
// learn the configured and the scheduled pushes itself.
type settingsReader interface {
	AppSettings(ctx context.Context) ([]byte, error)
}

// WatchConfig configures a [Watch]. The zero value is ready to use.
type WatchConfig struct {
	// CacheFor is how long one read of the queue serves scrapes; 0 means 15 s.
	CacheFor time.Duration
	// Timeout bounds one read of the queue during a scrape; 0 means 10 s.
	Timeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Scheduled names the pushes of app_settings.outbound that have a cron.
	// From CHT 4.5 a push outside its cron window is queued without being
	// tried (cht-core shared-libs/transitions/src/transitions/mark_for_outbound.js)
	// and Sentinel retries it only within the window
	// (sentinel/src/schedule/outbound.js execute; CHT 4.5 to 4.10 instead
	// drop it unsent at a run outside the window where another push is
	// due: batch hands singlePush only the due pushes, and singlePush
	// clears a push it has no configuration for), so its place in the
	// queue says nothing about failures: a document whose queue holds only
	// scheduled pushes counts in neither cht_outbound_queue_tasks nor the
	// oldest failure age. cht_outbound_queue_pushes still counts them, by
	// destination.
	//
	// Empty means: learn them from CHT, with the read of the app settings
	// that Configured describes (made even when Configured is given): the
	// pushes whose configuration has a member "cron" that is a string
	// cron-validator accepts, as CHT checks it (five fields of numbers, *,
	// ranges, lists and steps; see the Cron field of [Push]), and that
	// falls due. No other cron schedules a push, and such pushes count as
	// failures, which they are: "", null, false or 0 is no cron (the push
	// is retried every 5 minutes); a string CHT refuses (six fields,
	// @daily, MON, ...) is never due (the push is never sent); so is a
	// cron CHT accepts whose days exist in none of its months, such as
	// "0 0 31 2 *" (31 February), "0 0 30 2 *" or "0 0 31 4,6,9,11 *"
	// (but "0 0 29 2 *" falls due in leap years); a number, object, array
	// or true makes Sentinel's outbound schedule throw (no queued push is
	// sent). With Configured given, only the pushes it names are learned.
	//
	// CHT before 4.5 ignores cron, so there no push is scheduled. The Watch
	// takes the version from a Queue that is a *[cht.Client]: its
	// Config.Version, or the version it detects with GET /api/deploy-info
	// at each read of the app settings that finds a push with a cron, so
	// that an upgrade of CHT is taken into account within 5 minutes,
	// without a restart. When such a detection fails, the version detected
	// last stays in use (the client's Logger says so). With any other
	// Queue the version is unknown and, erring on the side of an alert, no
	// push is scheduled; so too until the version is first detected (it is
	// tried again at each read of the queue). A WARN line says so when a
	// push has a cron.
	//
	// Whenever the app settings are read, a push whose cron CHT accepts but
	// that never falls due gets a WARN line naming the push and the cron,
	// once while its cron stays the same.
	//
	// A non-empty Scheduled is used as it is.
	Scheduled []string
	// Configured names every push of app_settings.outbound (the whole
	// block, not only this mediator's); names in Scheduled count as
	// configured. A queued push named elsewhere was removed or renamed
	// after it failed. Sentinel never tries it again and, from CHT 4.11,
	// does not clear it either (cht-core sentinel/src/schedule/outbound.js:
	// batch skips queue entries without a configuration; before 4.11
	// singlePush clears them at its next run), so it counts only in
	// cht_outbound_queue_unconfigured_pushes, by destination.
	//
	// Empty means: learn them from CHT. When the Queue also reads app
	// settings, as [cht.Client] does ([cht.Client.AppSettings], GET
	// /api/v1/settings, which any logged-in user may read), the Watch takes
	// the keys of app_settings.outbound, read again every 5 minutes (or
	// CacheFor, when longer) alongside the queue, within the same Timeout;
	// a missing or null outbound configures none. If a read fails, or its
	// outbound is not an object, the scrape still succeeds: the names last
	// read stay in use (a WARN line says so), and until a first read
	// succeeds, or with a Queue that cannot read settings, the names are
	// unknown and every queued push counts as configured.
	// cht_outbound_queue_configured_known tells which.
	//
	// A non-empty Configured is used as it is; the settings are then read
	// only to learn Scheduled, when it is empty.
	Configured []string
	// Logger gets a WARN line with the error when the queue stops being
	// readable (cht_outbound_queue_up becomes 0) and an INFO line when it
	// is read again, and the same for the app settings; nil discards them.
	Logger *slog.Logger
}

// Watch is a prometheus.Collector of CHT's outbound queue. It is safe for concurrent use.
//
// It is deliberately not a readiness check: pushes that keep failing are what an alert is for (see
// the package documentation), and a mediator taken out of service because they fail could never
// receive the retries that would empty the queue.
type Watch struct {
	q   Queue
	cfg WatchConfig

	mu      sync.Mutex
	readAt  time.Time
	tasks   []cht.OutboundTask
	readErr error

	settings    settingsReader      // nil: Configured and Scheduled are given, or q cannot read settings
	configured  map[string]struct{} // the configured pushes; nil: unknown
	scheduled   map[string]struct{} // the pushes with a cron Sentinel honours; nil: none
	neverDue    map[string]string   // push -> its cron that never falls due, as last read (and warned of)
	settingsAt  time.Time           // when the settings were last read (zero: never)
	settingsErr error               // the last read's error
	versionErr  error               // why the crons read last were not trusted; nil: they were, or there were none

	up, tasksDesc, pushes, unconfigured, oldest, known *prometheus.Desc
}

// NewWatch returns a Watch reading q.
func NewWatch(q Queue, cfg WatchConfig) *Watch {
	if cfg.CacheFor <= 0 {
		cfg.CacheFor = defaultCacheFor
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watch{q: q, cfg: cfg,
		up:           prometheus.NewDesc("cht_outbound_queue_up", "1 when the last read of CHT's outbound queue (Sentinel's task:outbound documents) succeeded.", nil, nil),
		tasksDesc:    prometheus.NewDesc("cht_outbound_queue_tasks", "Documents whose outbound pushes are queued for retry after failing (pushes waiting for their cron window, and pushes no longer configured, aside).", nil, nil),
		pushes:       prometheus.NewDesc("cht_outbound_queue_pushes", "Outbound pushes waiting, by destination (app_settings.outbound key): for retry after failing, or for the destination's cron window.", []string{"destination"}, nil),
		unconfigured: prometheus.NewDesc("cht_outbound_queue_unconfigured_pushes", "Queued outbound pushes, by destination, no longer in app_settings.outbound: Sentinel never tries them again, and from CHT 4.11 leaves them queued.", []string{"destination"}, nil),
		oldest:       prometheus.NewDesc("cht_outbound_queue_oldest_failure_age_seconds", "Age of the oldest queued outbound push that failed (when its task was created; pushes waiting for their cron window, and pushes no longer configured, aside); 0 when none.", nil, nil),
		known:        prometheus.NewDesc("cht_outbound_queue_configured_known", "1 when the pushes of app_settings.outbound are known (given, or read from CHT's app settings), so that pushes no longer configured are told apart; 0 when every queued push counts as configured.", nil, nil),
	}
	if len(cfg.Configured) > 0 {
		w.configured = setOf(cfg.Configured)
	}
	if len(cfg.Scheduled) > 0 {
		w.scheduled = setOf(cfg.Scheduled)
	}
	if sr, ok := q.(settingsReader); ok && (w.learnsConfigured() || w.learnsScheduled()) {
		w.settings = sr
	}
	return w
}

func setOf(names []string) map[string]struct{} {
	s := make(map[string]struct{}, len(names))
	for _, name := range names {
		s[name] = struct{}{}
	}
	return s
}

// learnsConfigured and learnsScheduled report whether the configured and
// the scheduled pushes are read from the app settings.
func (w *Watch) learnsConfigured() bool { return len(w.cfg.Configured) == 0 }
func (w *Watch) learnsScheduled() bool  { return len(w.cfg.Scheduled) == 0 }

// stale reports whether a read made at `at` no longer serves at now.
func stale(at, now time.Time, ttl time.Duration) bool {
	return at.IsZero() || now.Sub(at) >= ttl || now.Before(at)
}

// read returns the queue, reading it when the cached read is older than
// CacheFor, the configured pushes (nil: unknown) and the scheduled ones
// (nil: none), reading the app settings when they are older than
// settingsCacheFor (CacheFor after a failed read, or while the CHT version
// cannot be detected). The queue and the settings are read at once (the
// version after the settings, when needed), within one Timeout.
func (w *Watch) read(ctx context.Context) (tasks []cht.OutboundTask, configured, scheduled map[string]struct{}, now time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now = w.cfg.Now()
	settingsTTL := max(settingsCacheFor, w.cfg.CacheFor)
	if w.settingsErr != nil || (w.versionErr != nil && !errors.Is(w.versionErr, errVersionUnknown)) {
		settingsTTL = w.cfg.CacheFor
	}
	readQueue := stale(w.readAt, now, w.cfg.CacheFor)
	readSettings := w.settings != nil && stale(w.settingsAt, now, settingsTTL)
	if !readQueue && !readSettings {
		return w.tasks, w.configured, w.scheduled, now, w.readErr
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	// The reader ends with ctx, when the scrape does (cht.Client honours it).
	settingsDone := make(chan settingsRead, 1)
	versionDone := make(chan versionRead, 1)
	if readSettings {
		go w.readSettings(ctx, settingsDone, versionDone)
	}
	if readQueue {
		failed := w.readErr != nil
		w.tasks, w.readErr = w.q.OutboundQueue(ctx)
		w.readAt = now
		switch {
		case w.readErr != nil && !failed:
			w.cfg.Logger.Warn("cht: outbound queue cannot be read; cht_outbound_queue_up is 0 until it is", "error", w.readErr)
		case w.readErr == nil && failed:
			w.cfg.Logger.Info("cht: outbound queue read again")
		}
	}
	if readSettings {
		r, ok := awaitRead(ctx, settingsDone) // done, even if the queue read used up the Timeout
		if !ok {
			r.err = fmt.Errorf("cht: app settings: %w", ctx.Err())
		}
		var v versionRead
		if w.needsVersion(r) {
			if v, ok = awaitRead(ctx, versionDone); !ok {
				v = versionRead{known: true, err: fmt.Errorf("cht: detect version: %w", ctx.Err())}
			}
		}
		w.takeSettings(now, r, v)
	}
	return w.tasks, w.configured, w.scheduled, now, w.readErr
}

// readSettings reads the app settings into settingsDone, then, when they
// name pushes with a cron (see needsVersion), the CHT version into
// versionDone.
func (w *Watch) readSettings(ctx context.Context, settingsDone chan<- settingsRead, versionDone chan<- versionRead) {
	p, err := readPushes(ctx, w.settings)
	r := settingsRead{p, err}
	settingsDone <- r
	if !w.needsVersion(r) {
		return
	}
	var v versionRead
	if versionhook.Of != nil {
		v.v, v.known, v.err = versionhook.Of(ctx, w.q)
	}
	versionDone <- v
}

// needsVersion reports whether the scheduled pushes of r depend on the
// CHT version: they are learned, and some push has a cron.
func (w *Watch) needsVersion(r settingsRead) bool {
	return w.learnsScheduled() && r.err == nil && len(r.pushes.crons) > 0
}

// settingsRead is one read of the app settings; versionRead is one
// detection of the CHT version.
type (
	settingsRead struct {
		pushes outboundPushes
		err    error
	}
	versionRead struct {
		v     release.Version
		known bool // false: the Queue cannot tell
		err   error
	}
)

// awaitRead returns what ch delivers, or false when ctx ends first; a value
// delivered already wins over an ended ctx.
func awaitRead[T any](ctx context.Context, ch <-chan T) (T, bool) {
	select {
	case v := <-ch:
		return v, true
	default:
	}
	select {
	case v := <-ch:
		return v, true
	case <-ctx.Done():
		var zero T
		return zero, false
	}
}

// takeSettings takes in a read of the app settings made at now, and v, the
// version of CHT, and logs what changes.
func (w *Watch) takeSettings(now time.Time, r settingsRead, v versionRead) {
	failed := w.settingsErr != nil
	w.settingsAt, w.settingsErr = now, r.err
	if r.err != nil {
		switch {
		case failed:
			// logged when it started failing
		case !w.learnsConfigured() && w.scheduled != nil:
			w.cfg.Logger.Warn("cht: app settings cannot be read; the outbound pushes scheduled when they last were still count as scheduled", "error", r.err)
		case !w.learnsConfigured():
			w.cfg.Logger.Warn("cht: app settings cannot be read; outbound pushes with a cron count as failures until they are", "error", r.err)
		case w.configured != nil:
			w.cfg.Logger.Warn("cht: app settings cannot be read; the outbound pushes configured when they last were still count as configured", "error", r.err)
		default:
			w.cfg.Logger.Warn("cht: app settings cannot be read; every queued outbound push counts as configured (cht_outbound_queue_configured_known is 0) until they are", "error", r.err)
		}
		return
	}
	if w.learnsConfigured() {
		w.configured = r.pushes.names
		if failed {
			w.cfg.Logger.Info("cht: app settings read again; the configured outbound pushes are known", "pushes", len(r.pushes.names))
		}
	} else if failed {
		w.cfg.Logger.Info("cht: app settings read again; the outbound pushes with a cron are known", "cron", len(r.pushes.crons))
	}
	w.warnNeverDue(r.pushes.never)
	if !w.learnsScheduled() {
		return
	}
	scheduled, err := scheduledPushes(r.pushes.crons, w.configured, v)
	w.scheduled = scheduled
	switch wasErr := w.versionErr; {
	case err != nil && wasErr == nil && errors.Is(err, errVersionUnknown):
		w.cfg.Logger.Warn("cht: the CHT version is unknown, so outbound pushes with a cron count as failures: CHT before 4.5 ignores cron; name them in WatchConfig.Scheduled", "error", err)
	case err != nil && wasErr == nil:
		w.cfg.Logger.Warn("cht: the CHT version cannot be detected; outbound pushes with a cron count as failures until it is (CHT before 4.5 ignores cron)", "error", err)
	case err == nil && wasErr != nil && len(r.pushes.crons) > 0:
		w.cfg.Logger.Info("cht: CHT version detected; outbound pushes with a cron count as scheduled from CHT 4.5", "version", v.v.String(), "scheduled", len(scheduled))
	}
	w.versionErr = err
}

// warnNeverDue logs a WARN line for each push of never, those whose cron
// CHT accepts but that never falls due, that is configured (or every one,
// while the configured pushes are unknown) and was not in the last read
// with the same cron.
func (w *Watch) warnNeverDue(never map[string]string) {
	names := make([]string, 0, len(never))
	for name, expr := range never {
		if w.neverDue[name] != expr && (w.configured == nil || has(w.configured, name)) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		w.cfg.Logger.Warn("cht: an outbound push's cron never falls due: CHT 4.5 and later never send the push and keep its tasks queued; fix the cron in app_settings.outbound",
			"push", name, "cron", never[name], "error", cron.Due(never[name]))
	}
	w.neverDue = never
}

// scheduledPushes returns the pushes of crons, those whose cron Sentinel
// honours from CHT 4.5, that are scheduled on CHT v: none before 4.5,
// and, with configured given, only those it names. With a version that is
// unknown or cannot be detected, none, and the error says why.
func scheduledPushes(crons, configured map[string]struct{}, v versionRead) (map[string]struct{}, error) {
	switch {
	case len(crons) == 0:
		return nil, nil
	case v.err != nil:
		return nil, v.err
	case !v.known:
		return nil, errVersionUnknown
	case !v.v.AtLeast(cronMajor, cronMinor):
		return nil, nil // cron is ignored: its pushes are tried at once and retried every 5 minutes
	}
	s := make(map[string]struct{}, len(crons))
	for name := range crons {
		if configured == nil || has(configured, name) {
			s[name] = struct{}{}
		}
	}
	return s, nil
}

// outboundPushes is what the Watch reads of app_settings.outbound.
type outboundPushes struct {
	names map[string]struct{} // its keys: the configured pushes
	crons map[string]struct{} // the pushes whose cron Sentinel honours (from CHT 4.5)
	never map[string]string   // the pushes whose cron Sentinel accepts but that never falls due: push -> cron
}

// readPushes reads the app settings with r and returns the keys of
// app_settings.outbound, the pushes Sentinel knows (sentinel/src/config.js
// loads the settings document's settings, as GET /api/v1/settings answers
// them, and sentinel/src/schedule/outbound.js takes config.get('outbound')
// || {}), those with a cron it honours (see acceptedCron) and those whose
// accepted cron never falls due ([cron.Due]). A missing or null outbound
// configures none.
func readPushes(ctx context.Context, r settingsReader) (outboundPushes, error) {
	raw, err := r.AppSettings(ctx)
	if err != nil {
		return outboundPushes{}, err
	}
	var settings map[string]json.RawMessage
	if err := json.Unmarshal(raw, &settings); err != nil {
		return outboundPushes{}, fmt.Errorf("cht: app settings: %w", err)
	}
	p := outboundPushes{names: map[string]struct{}{}, crons: map[string]struct{}{}, never: map[string]string{}}
	block, ok := settings["outbound"]
	if !ok || string(block) == "null" {
		return p, nil
	}
	var pushes map[string]json.RawMessage
	if err := json.Unmarshal(block, &pushes); err != nil || pushes == nil {
		return outboundPushes{}, fmt.Errorf("cht: app settings: outbound is not an object: %.40s", block)
	}
	for name, conf := range pushes {
		p.names[name] = struct{}{}
		expr, ok := acceptedCron(conf)
		switch {
		case !ok:
		case cron.Due(expr) != nil:
			p.never[name] = expr // Sentinel honours it, and never sends the push
		default:
			p.crons[name] = struct{}{}
		}
	}
	return p, nil
}

// acceptedCron returns the cron of the push configuration conf, and
// whether Sentinel (CHT 4.5 and later) honours it, that is, sends the
// push only within its windows. sentinel/src/schedule/outbound.js execute (and
// shared-libs/transitions/src/transitions/mark_for_outbound.js
// markForOutbound alike) tests `!config.cron ||
// isWithinTimeFrame(config.cron, ...)`, and isWithinTimeFrame
// (shared-libs/transitions/src/lib/utils.js) first asks cron-validator's
// isValidCron, which calls cron.trim(). So:
//   - a member "cron" (exactly: JavaScript names are case-sensitive) that
//     is falsy (missing, "", null, false, 0) is no cron: the push is
//     tried every 5 minutes;
//   - a string isValidCron refuses is never due: the push is never sent;
//   - any other truthy value has no trim: isValidCron throws, and with it
//     Sentinel's whole outbound schedule, so no queued push is sent;
//   - a string isValidCron accepts is a schedule (later.js reads it with
//     the same fields, white space collapsed), though one that never
//     ticks (such as "0 0 31 2 *", see [cron.Due]) makes
//     isWithinTimeFrame answer false at every run: the push is never sent.
//
// A conf that is not an object has no cron (and null makes execute throw).
func acceptedCron(conf json.RawMessage) (string, bool) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(conf, &members); err != nil {
		return "", false
	}
	raw, ok := members["cron"]
	if !ok {
		return "", false
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false
	}
	expr, ok := v.(string)
	return expr, ok && expr != "" && cron.Check(expr) == nil
}

// summary is what the metrics say about a queue.
type summary struct {
	tasks        int
	byDest       map[string]int // configured pushes
	unconfigured map[string]int
	oldest       time.Duration
}

// summarize sums up tasks; a task whose queue holds only pushes of
// scheduled or unconfigured destinations is not a failure. With configured
// nil (unknown) every push counts as configured.
func summarize(tasks []cht.OutboundTask, now time.Time, scheduled, configured map[string]struct{}) summary {
	s := summary{byDest: map[string]int{}, unconfigured: map[string]int{}}
	var first time.Time
	for _, t := range tasks {
		failed := false
		for _, push := range t.Queue {
			switch {
			case has(scheduled, push):
				s.byDest[push]++ // waiting for its cron window
			case configured != nil && !has(configured, push):
				s.unconfigured[push]++ // Sentinel no longer tries it
			default:
				s.byDest[push]++
				failed = true
			}
		}
		if !failed {
			continue // nothing queued (Sentinel deletes the task), or nothing Sentinel retries
		}
		s.tasks++
		if c := t.Created.Time(); !c.IsZero() && (first.IsZero() || c.Before(first)) {
			first = c
		}
	}
	if !first.IsZero() && now.After(first) {
		s.oldest = now.Sub(first)
	}
	return s
}

// has reports whether set holds name.
func has(set map[string]struct{}, name string) bool {
	_, ok := set[name]
	return ok
}

// Describe implements prometheus.Collector.
func (w *Watch) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.up
	ch <- w.tasksDesc
	ch <- w.pushes
	ch <- w.unconfigured
	ch <- w.oldest
	ch <- w.known
}

// Collect implements prometheus.Collector. When the queue cannot be read only
// cht_outbound_queue_up (0) is sent.
func (w *Watch) Collect(ch chan<- prometheus.Metric) {
	tasks, configured, scheduled, now, err := w.read(context.Background())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(w.up, prometheus.GaugeValue, 0)
		return
	}
	s := summarize(tasks, now, scheduled, configured)
	ch <- prometheus.MustNewConstMetric(w.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(w.tasksDesc, prometheus.GaugeValue, float64(s.tasks))
	byDestination(ch, w.pushes, s.byDest)
	byDestination(ch, w.unconfigured, s.unconfigured)
	ch <- prometheus.MustNewConstMetric(w.oldest, prometheus.GaugeValue, s.oldest.Seconds())
	known := 0.0
	if configured != nil {
		known = 1
	}
	ch <- prometheus.MustNewConstMetric(w.known, prometheus.GaugeValue, known)
}

// byDestination sends one series of desc per destination of counts, in name order.
func byDestination(ch chan<- prometheus.Metric, desc *prometheus.Desc, counts map[string]int) {
	dests := make([]string, 0, len(counts))
	for d := range counts {
		dests = append(dests, d)
	}
	slices.Sort(dests)
	for _, d := range dests {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(counts[d]), d)
	}
}
