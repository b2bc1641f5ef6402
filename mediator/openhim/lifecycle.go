package openhim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [LifecycleConfig].
const (
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultRegisterRetryMin  = 1 * time.Second
	DefaultRegisterRetryMax  = 1 * time.Minute
)

// LifecycleConfig configures a [Lifecycle]. Only Client and Definition are
// required.
type LifecycleConfig struct {
	// Client talks to core. A standalone client (URL "") makes Run a no-op
	// that waits for its context.
	Client *Client
	// Definition is registered with core. It is validated by NewLifecycle
	// for the client's core version.
	Definition Definition
	// HeartbeatInterval is the time between heartbeats (±10% jitter);
	// 0 means DefaultHeartbeatInterval (10 s) and a negative value disables
	// heartbeats (and with them config updates and re-registration).
	HeartbeatInterval time.Duration
	// InstallChannels keeps Definition.DefaultChannelConfig installed:
	// after registering and then with every heartbeat, a channel missing
	// from core is installed, and one deleted in core (core 4 keeps it
	// with status "deleted") is put back as defined. A channel an
	// administrator edited is reported (a warning and the gauge
	// openhim_mediator_default_channels_modified) unless RestoreChannels
	// is set; a disabled one stays disabled.
	InstallChannels bool
	// RestoreChannels, with InstallChannels, also puts back a default
	// channel edited in core away from the definition (in a field core
	// stores), overwriting the edit; its status (enabled or disabled) is
	// kept.
	RestoreChannels bool
	// OnConfig is called with the previous and the new config every time
	// the config received from core changes, including the first time (old
	// is then nil). It runs on the heartbeat goroutine and must not block
	// for long; the maps are copies the callee may keep.
	OnConfig func(old, new map[string]any)
	// ConfigOnChangeOnly sends config:true only on the first heartbeat after
	// each registration and on the first successful one after a failed
	// one, and otherwise relies on core pushing a change once.
	// By default every heartbeat asks for the config and the Lifecycle
	// diffs it locally, so that every replica sees every change (core
	// pushes a change to only one of the heartbeats that follow it).
	ConfigOnChangeOnly bool
	// RegisterRetryMin and RegisterRetryMax bound the exponential backoff
	// (with jitter) between registration attempts while core is unreachable
	// or failing; 0 means 1 s and 1 min. After a 401/403 the Lifecycle
	// waits RegisterRetryMax, not to hammer core with bad credentials.
	RegisterRetryMin, RegisterRetryMax time.Duration
	// Logger receives progress and problems; nil discards.
	Logger *slog.Logger
	// Registerer receives the lifecycle metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

// Lifecycle registers a mediator with core in the background, keeps it
// alive with heartbeats, follows config changes and re-registers when core
// forgets the mediator. Create it with [NewLifecycle]; its methods are safe
// for concurrent use.
type Lifecycle struct {
	c            *Client
	def          Definition
	interval     time.Duration
	install      bool
	restore      bool
	onConfig     func(old, new map[string]any)
	onChangeOnly bool
	retryMin     time.Duration
	retryMax     time.Duration
	log          *slog.Logger
	metrics      *lifecycleMetrics
	running      atomic.Bool
	registered   atomic.Bool
	problem      atomic.Pointer[string] // why the mediator is not registered, for /readyz
	release      atomic.Pointer[string] // core's release (GET /about), once read

	mu         sync.Mutex // guards config, haveConfig, cfgVersion, drift
	config     map[string]any
	haveConfig bool
	cfgVersion int64
	drift      *DefinitionDrift

	// Used by the Run goroutine only.
	channelErr bool     // the last channel check failed
	modified   []string // default channels last reported as edited
}

// NewLifecycle validates cfg (including the Definition, for the client's
// core version) and returns a Lifecycle. It does no I/O.
func NewLifecycle(cfg LifecycleConfig) (*Lifecycle, error) {
	if cfg.Client == nil {
		return nil, errors.New("openhim: LifecycleConfig.Client is required")
	}
	if err := cfg.Definition.Validate(cfg.Client.coreVersion); err != nil {
		return nil, err
	}
	// Deep copy, so that later edits by the caller have no effect.
	var def Definition
	b, err := json.Marshal(cfg.Definition)
	if err == nil {
		err = json.Unmarshal(b, &def)
	}
	if err != nil {
		return nil, fmt.Errorf("openhim: LifecycleConfig.Definition: %w", err)
	}
	l := &Lifecycle{
		c:            cfg.Client,
		def:          def,
		interval:     cfg.HeartbeatInterval,
		install:      cfg.InstallChannels,
		restore:      cfg.RestoreChannels,
		onConfig:     cfg.OnConfig,
		onChangeOnly: cfg.ConfigOnChangeOnly,
		retryMin:     cfg.RegisterRetryMin,
		retryMax:     cfg.RegisterRetryMax,
		log:          cfg.Logger,
	}
	if l.interval == 0 {
		l.interval = DefaultHeartbeatInterval
	}
	if l.retryMin <= 0 {
		l.retryMin = DefaultRegisterRetryMin
	}
	if l.retryMax <= 0 {
		l.retryMax = DefaultRegisterRetryMax
	}
	if l.retryMax < l.retryMin {
		l.retryMax = l.retryMin
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.log = l.log.With("urn", def.URN)
	if l.metrics, err = newLifecycleMetrics(cfg.Registerer, def.URN); err != nil {
		return nil, err
	}
	return l, nil
}

// errReregister ends a heartbeat loop when core no longer knows the URN.
var errReregister = errors.New("openhim: mediator unknown to core")

// Run registers the mediator, retrying with backoff until core accepts it,
// then heartbeats until ctx is done, re-registering whenever a heartbeat
// gets a 404 (mediator deleted in core). Consecutive re-registrations with
// no successful heartbeat in between wait the registration retry backoff
// (RegisterRetryMin doubling up to RegisterRetryMax), so a core that keeps
// answering 404 is not hammered. The mediator can serve meanwhile:
// Run never waits for core before it returns and never gives up while
// core is unreachable.
//
// Run returns nil when ctx is done. It returns an error only if core
// rejects the registration with a 400 (the definition is invalid for this
// core; the error carries core's message) or if it is called twice.
func (l *Lifecycle) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("openhim: Lifecycle.Run called twice")
	}
	if l.c.Standalone() {
		l.log.InfoContext(ctx, "no OpenHIM core configured; running standalone")
		<-ctx.Done()
		return nil
	}
	started := time.Now()
	rereg := 0 // consecutive re-registrations without a successful heartbeat
	for {
		if err := l.register(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if l.interval < 0 {
			<-ctx.Done()
			return nil
		}
		beat, err := l.heartbeatLoop(ctx, started)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errReregister) {
			return err
		}
		if beat {
			rereg = 0
			continue
		}
		wait := retryBackoff(l.retryMin, l.retryMax, rereg)
		rereg++
		l.log.WarnContext(ctx, "openhim core keeps answering 404 to heartbeats right after registering; waiting before registering again",
			"retry_in", wait, "consecutive", rereg)
		if sleepOrDone(ctx, wait) != nil {
			return nil
		}
	}
}

// register loops until core accepts the registration, ctx is done or core
// rejects it with a 400. An outage is logged once, with the next retry
// time, and its end once; a configuration error (see [ErrConfig]) is
// logged as an error saying what to change whenever it changes, and
// retried every RegisterRetryMax (an administrator may fix core's side).
func (l *Lifecycle) register(ctx context.Context) error {
	var lastProblem string
	for try := 0; ; try++ {
		err := l.c.Register(ctx, &l.def)
		if err == nil {
			l.metrics.attempts.WithLabelValues(resultSuccess).Inc()
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := retryBackoff(l.retryMin, l.retryMax, try)
		var problem string
		switch {
		case errors.Is(err, ErrBadRequest) || errors.Is(err, ErrInvalid):
			l.metrics.attempts.WithLabelValues(resultRejected).Inc()
			l.log.ErrorContext(ctx, "openhim core rejected the mediator registration", "error", err)
			problem = "registration rejected by openhim core: " + err.Error()
			l.problem.Store(&problem)
			return fmt.Errorf("openhim: register %s: %w", l.def.URN, err)
		case errors.Is(err, ErrConfig) || isCredentialError(err):
			l.metrics.attempts.WithLabelValues(resultUnauthorized).Inc()
			wait = retryBackoff(l.retryMax, l.retryMax, 0)
			problem = "configuration error: " + configFix(err)
			if problem != lastProblem {
				l.log.ErrorContext(ctx, "cannot register with openhim core until a setting changes", "error", err,
					"retry_in", wait.Round(time.Millisecond).String(), "retry_at", time.Now().Add(wait).UTC().Format(time.RFC3339))
			}
		default:
			l.metrics.attempts.WithLabelValues(resultError).Inc()
			problem = "openhim core unreachable: " + err.Error()
			if lastProblem == "" {
				l.log.WarnContext(ctx, "openhim core unreachable; retrying registration until it answers", "error", err,
					"retry_in", wait.Round(time.Millisecond).String(), "retry_at", time.Now().Add(wait).UTC().Format(time.RFC3339))
			} else {
				l.log.DebugContext(ctx, "registration failed again", "error", err, "retry_in", wait.Round(time.Millisecond).String())
			}
		}
		lastProblem = problem
		l.problem.Store(&problem)
		if err := sleepOrDone(ctx, wait); err != nil {
			return err
		}
	}
	// Before registered, so that a ready mediator knows core's release.
	l.readRelease(ctx, slog.LevelInfo)
	l.problem.Store(nil)
	l.registered.Store(true)
	l.metrics.registered.Set(1)
	if lastProblem != "" {
		l.log.InfoContext(ctx, "registered with openhim core after a failure", "version", l.def.Version, "failure", lastProblem)
	} else {
		l.log.InfoContext(ctx, "registered with openhim core", "version", l.def.Version)
	}
	l.checkDrift(ctx)
	if l.install {
		l.syncDefaultChannels(ctx)
	}
	return nil
}

// releaseTimeout bounds a read of core's release: readiness waits for the
// first, which only refines the status of async answers.
const releaseTimeout = 5 * time.Second

// readRelease reads core's release (GET /about) into l.release, at each
// registration (core may have been upgraded) and, while unknown, after
// each heartbeat. A failure is logged at level; the release stays as it
// was.
func (l *Lifecycle) readRelease(ctx context.Context, level slog.Level) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	rel, err := l.c.CoreRelease(ctx)
	if err != nil {
		l.log.Log(ctx, level, "could not read openhim core's release (GET /about); async answers say Processing until it is read", "error", err)
		return
	}
	l.release.Store(&rel)
}

// checkDrift reads the stored definition and warns if core kept another.
func (l *Lifecycle) checkDrift(ctx context.Context) {
	drift, err := l.c.CheckRegistration(ctx, &l.def)
	if err != nil {
		l.log.WarnContext(ctx, "could not read the stored mediator definition back", "error", err)
		return
	}
	l.mu.Lock()
	l.drift = drift
	l.mu.Unlock()
	if drift == nil {
		l.metrics.defDrift.Set(0)
		return
	}
	l.metrics.defDrift.Set(1)
	l.log.WarnContext(ctx, "openhim core kept a different mediator definition; bump Definition.Version to update it",
		"registered_version", l.def.Version, "stored_version", drift.StoredVersion, "differing_fields", drift.Fields)
}

// heartbeatLoop heartbeats until ctx is done (nil) or core answers 404
// (errReregister). beat reports whether a heartbeat succeeded.
func (l *Lifecycle) heartbeatLoop(ctx context.Context, started time.Time) (beat bool, err error) {
	// askConfig: with ConfigOnChangeOnly, whether the next heartbeat asks
	// for the config anyway. It does on the first heartbeat and on the
	// first one after a failure: a failed heartbeat may have reached core,
	// which pushes a change only once (src/api/mediators.js heartbeat moves
	// _lastHeartbeat whether or not its answer arrives).
	askConfig := true
	failures := 0 // consecutive, to keep an outage from flooding the log
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return beat, nil
		case <-timer.C:
		}
		wantConfig := askConfig || !l.onChangeOnly
		uptime := processUptime()
		if uptime < 0 { // a fake clock (testing/synctest) started before the process
			uptime = time.Since(started).Seconds()
		}
		t0 := time.Now()
		cfg, err := l.c.Heartbeat(ctx, l.def.URN, uptime, wantConfig)
		l.metrics.hbDuration.Observe(time.Since(t0).Seconds())
		if err != nil {
			if ctx.Err() != nil {
				return beat, nil
			}
			l.metrics.hbFailures.Inc()
			if errors.Is(err, ErrNotFound) {
				l.registered.Store(false)
				l.metrics.registered.Set(0)
				l.log.WarnContext(ctx, "openhim core does not know the mediator (deleted?); registering again")
				return beat, errReregister
			}
			failures++
			askConfig = true
			next := jitter(l.interval)
			timer.Reset(next)
			switch {
			case failures > 1 && failures%warnEvery != 0:
				l.log.DebugContext(ctx, "heartbeat failed", "error", err, "consecutive_failures", failures)
			case errors.Is(err, ErrConfig):
				l.log.ErrorContext(ctx, "openhim core refuses heartbeats until a setting changes", "error", err,
					"consecutive_failures", failures, "retry_at", time.Now().Add(next).UTC().Format(time.RFC3339))
			default:
				l.log.WarnContext(ctx, "heartbeat failed; retrying until openhim core answers", "error", err,
					"consecutive_failures", failures, "retry_in", next.Round(time.Millisecond).String(),
					"retry_at", time.Now().Add(next).UTC().Format(time.RFC3339))
			}
			continue
		}
		beat = true
		if failures > 0 {
			l.log.InfoContext(ctx, "heartbeats to openhim core resumed", "after_failures", failures)
			failures = 0
		}
		askConfig = false
		l.applyConfig(cfg, wantConfig)
		if l.install {
			l.syncDefaultChannels(ctx)
		}
		if l.release.Load() == nil {
			l.readRelease(ctx, slog.LevelDebug) // the read after registering failed
		}
		timer.Reset(jitter(l.interval))
	}
}

// warnEvery rate-limits the warnings of an outage: the first failed
// heartbeat and every warnEvery-th in a row are logged at WARN (ERROR for
// a configuration error), the others at DEBUG.
const warnEvery = 30

// configFix is what to change for a configuration error, or its text.
func configFix(err error) string {
	var ce *configError
	if errors.As(err, &ce) {
		return ce.fix
	}
	return err.Error()
}

// Problem says why the mediator is not registered (what /readyz answers),
// or "" when it is.
func (l *Lifecycle) Problem() string {
	if l.registered.Load() {
		return ""
	}
	if p := l.problem.Load(); p != nil {
		return *p
	}
	return "not registered with OpenHIM core yet"
}

// jitter spreads d uniformly over [0.9d, 1.1d].
func jitter(d time.Duration) time.Duration {
	spread := d / 5
	if spread <= 0 {
		return d
	}
	return d - spread/2 + rand.N(spread+1)
}

// applyConfig diffs a heartbeat's config against the current one and calls
// OnConfig on a change. A nil cfg (empty or "OK" body) is no change, except
// in answer to the first config request, where it means "no config".
func (l *Lifecycle) applyConfig(cfg map[string]any, requested bool) {
	l.mu.Lock()
	if cfg == nil {
		if l.haveConfig || !requested {
			l.mu.Unlock()
			return
		}
		cfg = map[string]any{}
	}
	if l.haveConfig && reflect.DeepEqual(cfg, l.config) {
		l.mu.Unlock()
		return
	}
	old := l.config
	l.config = cfg
	l.haveConfig = true
	l.cfgVersion++
	version := l.cfgVersion
	l.mu.Unlock()
	l.metrics.cfgVersion.Set(float64(version))
	l.metrics.cfgChanges.Inc()
	l.log.Info("config received from openhim core", "config_version", version)
	if l.onConfig != nil {
		l.onConfig(cfgCopyMap(old), cfgCopyMap(cfg))
	}
}

// Registered reports whether core has accepted the registration (and has
// not since answered a heartbeat with 404).
func (l *Lifecycle) Registered() bool { return l.registered.Load() }

// CoreRelease returns the release of core ("8.5.0") as read at the last
// registration (or, when that read failed, after a later heartbeat), or
// "" before it is read.
func (l *Lifecycle) CoreRelease() string {
	if rel := l.release.Load(); rel != nil {
		return *rel
	}
	return ""
}

// Config returns a copy of the latest config received from core, or nil
// before the first heartbeat answered.
func (l *Lifecycle) Config() map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return cfgCopyMap(l.config)
}

// ConfigVersion counts the distinct configs received (0: none yet).
func (l *Lifecycle) ConfigVersion() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfgVersion
}

// Drift returns how the definition stored in core differs from ours after
// the last registration, or nil if core stores ours (or it is unknown).
func (l *Lifecycle) Drift() *DefinitionDrift {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.drift
}

// Definition returns the registered definition.
func (l *Lifecycle) Definition() Definition {
	d := l.def
	d.Config = cfgCopyMap(d.Config)
	return d
}

// Deregister deletes the mediator from core (DELETE /mediators/:urn),
// which also destroys the config stored there. It is never called
// automatically. Stop Run first: a running Lifecycle re-registers when
// its next heartbeat gets a 404.
func (l *Lifecycle) Deregister(ctx context.Context) error {
	if err := l.c.Deregister(ctx, l.def.URN); err != nil {
		return err
	}
	l.registered.Store(false)
	l.metrics.registered.Set(0)
	return nil
}

// retryBackoff returns the wait before retry number try (0-based): exponential
// from min, capped at max, with "equal jitter" (uniform in [d/2, d]).
func retryBackoff(min, max time.Duration, try int) time.Duration {
	d := max
	if try < 62 {
		if e := min << uint(try); e > 0 && e < max {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleepOrDone waits d or until ctx is done.
func sleepOrDone(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
