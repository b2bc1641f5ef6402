package outbound

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// defaultCacheFor is WatchConfig.CacheFor's default.
const defaultCacheFor = 15 * time.Second

// Queue reads CHT's outbound queue; [cht.Client] implements it.
type Queue interface {
	OutboundQueue(ctx context.Context) ([]cht.OutboundTask, error)
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
	// configured. Empty means unknown: every queued push counts as
	// configured. A queued push named elsewhere was removed or renamed
	// after it failed. Sentinel never tries it again and, from CHT 4.11,
	// does not clear it either (cht-core sentinel/src/schedule/outbound.js:
	// batch skips queue entries without a configuration; before 4.11
	// singlePush clears them at its next run), so it counts only in
	// cht_outbound_queue_unconfigured_pushes, by destination.
	Configured []string
	// Logger gets a WARN line with the error when the queue stops being
	// readable (cht_outbound_queue_up becomes 0) and an INFO line when it
	// is read again; nil discards them.
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

	up, tasksDesc, pushes, unconfigured, oldest *prometheus.Desc
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
	return &Watch{q: q, cfg: cfg,
		up:           prometheus.NewDesc("cht_outbound_queue_up", "1 when the last read of CHT's outbound queue (Sentinel's task:outbound documents) succeeded.", nil, nil),
		tasksDesc:    prometheus.NewDesc("cht_outbound_queue_tasks", "Documents whose outbound pushes are queued for retry after failing (pushes waiting for their cron window, and pushes no longer configured, aside).", nil, nil),
		pushes:       prometheus.NewDesc("cht_outbound_queue_pushes", "Outbound pushes waiting, by destination (app_settings.outbound key): for retry after failing, or for the destination's cron window.", []string{"destination"}, nil),
		unconfigured: prometheus.NewDesc("cht_outbound_queue_unconfigured_pushes", "Queued outbound pushes, by destination, no longer in app_settings.outbound: Sentinel never tries them again, and from CHT 4.11 leaves them queued.", []string{"destination"}, nil),
		oldest:       prometheus.NewDesc("cht_outbound_queue_oldest_failure_age_seconds", "Age of the oldest queued outbound push that failed (when its task was created; pushes waiting for their cron window, and pushes no longer configured, aside); 0 when none.", nil, nil),
	}
}

// read returns the queue, reading it when the cached read is older than CacheFor.
func (w *Watch) read(ctx context.Context) ([]cht.OutboundTask, time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Now()
	if w.readAt.IsZero() || now.Sub(w.readAt) >= w.cfg.CacheFor || now.Before(w.readAt) {
		ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
		defer cancel()
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
	return w.tasks, now, w.readErr
}

// summary is what the metrics say about a queue.
type summary struct {
	tasks        int
	byDest       map[string]int // configured pushes
	unconfigured map[string]int
	oldest       time.Duration
}

// summarize sums up tasks; a task whose queue holds only pushes of
// scheduled or unconfigured destinations is not a failure. Without
// configured names every push counts as configured.
func summarize(tasks []cht.OutboundTask, now time.Time, scheduled, configured []string) summary {
	s := summary{byDest: map[string]int{}, unconfigured: map[string]int{}}
	var first time.Time
	for _, t := range tasks {
		failed := false
		for _, push := range t.Queue {
			switch {
			case slices.Contains(scheduled, push):
				s.byDest[push]++ // waiting for its cron window
			case len(configured) > 0 && !slices.Contains(configured, push):
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

// Describe implements prometheus.Collector.
func (w *Watch) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.up
	ch <- w.tasksDesc
	ch <- w.pushes
	ch <- w.unconfigured
	ch <- w.oldest
}

// Collect implements prometheus.Collector. When the queue cannot be read only
// cht_outbound_queue_up (0) is sent.
func (w *Watch) Collect(ch chan<- prometheus.Metric) {
	tasks, now, err := w.read(context.Background())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(w.up, prometheus.GaugeValue, 0)
		return
	}
	s := summarize(tasks, now, w.cfg.Scheduled, w.cfg.Configured)
	ch <- prometheus.MustNewConstMetric(w.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(w.tasksDesc, prometheus.GaugeValue, float64(s.tasks))
	byDestination(ch, w.pushes, s.byDest)
	byDestination(ch, w.unconfigured, s.unconfigured)
	ch <- prometheus.MustNewConstMetric(w.oldest, prometheus.GaugeValue, s.oldest.Seconds())
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
