package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// defaultCacheFor is WatchConfig.CacheFor's default.
const defaultCacheFor = 15 * time.Second

// settingsCacheFor is how long one read of the app settings serves: they
// change rarely, and Sentinel's outbound schedule runs every 5 minutes
// anyway (sentinel/src/schedule/outbound.js).
const settingsCacheFor = 5 * time.Minute

// Queue reads CHT's outbound queue; [cht.Client] implements it.
type Queue interface {
	OutboundQueue(ctx context.Context) ([]cht.OutboundTask, error)
}

// settingsReader reads CHT's app settings; [cht.Client] implements it
// ([cht.Client.AppSettings]). A Queue that also implements it lets a Watch
// learn the configured pushes itself.
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
	// CHT queues a push outside its cron window without trying it
	// (cht-core shared-libs/transitions/src/transitions/mark_for_outbound.js),
	// so its place in the queue says nothing about failures: a document
	// whose queue holds only scheduled pushes counts in neither
	// cht_outbound_queue_tasks nor the oldest failure age.
	// cht_outbound_queue_pushes still counts them, by destination.
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
	// A non-empty Configured is used as it is and the settings are not read.
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

	settings    settingsReader      // nil: Configured is given, or q cannot read settings
	configured  map[string]struct{} // the configured pushes; nil: unknown
	settingsAt  time.Time           // when the settings were last read (zero: never)
	settingsErr error               // the last read's error

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
		w.configured = make(map[string]struct{}, len(cfg.Configured))
		for _, name := range cfg.Configured {
			w.configured[name] = struct{}{}
		}
	} else if sr, ok := q.(settingsReader); ok {
		w.settings = sr
	}
	return w
}

// stale reports whether a read made at `at` no longer serves at now.
func stale(at, now time.Time, ttl time.Duration) bool {
	return at.IsZero() || now.Sub(at) >= ttl || now.Before(at)
}

// read returns the queue, reading it when the cached read is older than
// CacheFor, and the configured pushes (nil: unknown), reading the app
// settings when they are older than settingsCacheFor (CacheFor after a
// failed read). Both reads run at once, within one Timeout.
func (w *Watch) read(ctx context.Context) ([]cht.OutboundTask, map[string]struct{}, time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Now()
	settingsTTL := max(settingsCacheFor, w.cfg.CacheFor)
	if w.settingsErr != nil {
		settingsTTL = w.cfg.CacheFor
	}
	readQueue := stale(w.readAt, now, w.cfg.CacheFor)
	readSettings := w.settings != nil && stale(w.settingsAt, now, settingsTTL)
	if !readQueue && !readSettings {
		return w.tasks, w.configured, now, w.readErr
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	type settingsRead struct {
		names map[string]struct{}
		err   error
	}
	settingsDone := make(chan settingsRead, 1) // the reader may outlive the scrape if it ignores ctx
	if readSettings {
		go func() {
			names, err := configuredPushes(ctx, w.settings)
			settingsDone <- settingsRead{names, err}
		}()
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
		var r settingsRead
		select {
		case r = <-settingsDone: // done, even if the queue read used up the Timeout
		default:
			select {
			case r = <-settingsDone:
			case <-ctx.Done():
				r.err = fmt.Errorf("cht: app settings: %w", ctx.Err())
			}
		}
		names, namesErr := r.names, r.err
		failed := w.settingsErr != nil
		w.settingsAt, w.settingsErr = now, namesErr
		switch {
		case namesErr == nil:
			w.configured = names
			if failed {
				w.cfg.Logger.Info("cht: app settings read again; the configured outbound pushes are known", "pushes", len(names))
			}
		case failed:
			// logged when it started failing
		case w.configured != nil:
			w.cfg.Logger.Warn("cht: app settings cannot be read; the outbound pushes configured when they last were still count as configured", "error", namesErr)
		default:
			w.cfg.Logger.Warn("cht: app settings cannot be read; every queued outbound push counts as configured (cht_outbound_queue_configured_known is 0) until they are", "error", namesErr)
		}
	}
	return w.tasks, w.configured, now, w.readErr
}

// configuredPushes reads the app settings with r and returns the keys of
// app_settings.outbound: the pushes Sentinel knows (sentinel/src/config.js
// loads the settings document's settings, as GET /api/v1/settings answers
// them, and sentinel/src/schedule/outbound.js takes config.get('outbound')
// || {}). A missing or null outbound configures none.
func configuredPushes(ctx context.Context, r settingsReader) (map[string]struct{}, error) {
	raw, err := r.AppSettings(ctx)
	if err != nil {
		return nil, err
	}
	var settings map[string]json.RawMessage
	if err := json.Unmarshal(raw, &settings); err != nil {
		return nil, fmt.Errorf("cht: app settings: %w", err)
	}
	names := map[string]struct{}{}
	block, ok := settings["outbound"]
	if !ok || string(block) == "null" {
		return names, nil
	}
	var pushes map[string]json.RawMessage
	if err := json.Unmarshal(block, &pushes); err != nil || pushes == nil {
		return nil, fmt.Errorf("cht: app settings: outbound is not an object: %.40s", block)
	}
	for name := range pushes {
		names[name] = struct{}{}
	}
	return names, nil
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
func summarize(tasks []cht.OutboundTask, now time.Time, scheduled []string, configured map[string]struct{}) summary {
	s := summary{byDest: map[string]int{}, unconfigured: map[string]int{}}
	var first time.Time
	for _, t := range tasks {
		failed := false
		for _, push := range t.Queue {
			switch {
			case slices.Contains(scheduled, push):
				s.byDest[push]++ // waiting for its cron window
			case configured != nil && !isConfigured(configured, push):
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

func isConfigured(configured map[string]struct{}, push string) bool {
	_, ok := configured[push]
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
	tasks, configured, now, err := w.read(context.Background())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(w.up, prometheus.GaugeValue, 0)
		return
	}
	s := summarize(tasks, now, w.cfg.Scheduled, configured)
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
