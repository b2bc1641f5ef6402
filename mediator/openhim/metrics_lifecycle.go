package openhim

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// lifecycleMetrics are the Prometheus metrics of a Lifecycle. All carry a
// constant "urn" label.
type lifecycleMetrics struct {
	registered   prometheus.Gauge
	attempts     *prometheus.CounterVec // label result: success, error, rejected, unauthorized
	hbDuration   prometheus.Histogram
	hbFailures   prometheus.Counter
	cfgVersion   prometheus.Gauge
	cfgChanges   prometheus.Counter
	defDrift     prometheus.Gauge
	channelsDone prometheus.Gauge
	// channelsModified counts default channels edited in core away
	// from the definition and left so.
	channelsModified prometheus.Gauge
}

// Registration attempt results (label "result").
const (
	resultSuccess      = "success"
	resultError        = "error"
	resultRejected     = "rejected"
	resultUnauthorized = "unauthorized"
)

func newLifecycleMetrics(reg prometheus.Registerer, urn string) (*lifecycleMetrics, error) {
	labels := prometheus.Labels{"urn": urn}
	m := &lifecycleMetrics{
		registered: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "registered",
			Help:        "1 when the mediator is registered with OpenHIM core, else 0.",
			ConstLabels: labels}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "registration_attempts_total",
			Help:        "Registration attempts (POST /mediators) by result: success, error (network or 5xx), rejected (400), unauthorized (401/403).",
			ConstLabels: labels}, []string{"result"}),
		hbDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "heartbeat_duration_seconds",
			Help:        "Latency of heartbeats to OpenHIM core, failed ones included.",
			Buckets:     []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			ConstLabels: labels}),
		hbFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "heartbeat_failures_total",
			Help: "Heartbeats that failed (network error or non-200).", ConstLabels: labels}),
		cfgVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "config_version",
			Help:        "Number of distinct configs received from core and applied by this process (0: none yet).",
			ConstLabels: labels}),
		cfgChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "config_changes_applied_total",
			Help: "Config changes received from core and passed to OnConfig.", ConstLabels: labels}),
		defDrift: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "definition_drift",
			Help:        "1 when core kept a different mediator definition than the one registered (bump the version), else 0.",
			ConstLabels: labels}),
		channelsDone: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "default_channels_installed",
			Help:        "1 when the last check found every default channel in core (installing or reinstalling what was missing or deleted), else 0.",
			ConstLabels: labels}),
		channelsModified: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "default_channels_modified",
			Help:        "Default channels that differ in core from the mediator's definition and were left so (restore_channels off).",
			ConstLabels: labels}),
	}
	for _, r := range []string{resultSuccess, resultError, resultRejected, resultUnauthorized} {
		m.attempts.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.registered = lcRegisterCollector(reg, m.registered, &err)
	m.attempts = lcRegisterCollector(reg, m.attempts, &err)
	m.hbDuration = lcRegisterCollector(reg, m.hbDuration, &err)
	m.hbFailures = lcRegisterCollector(reg, m.hbFailures, &err)
	m.cfgVersion = lcRegisterCollector(reg, m.cfgVersion, &err)
	m.cfgChanges = lcRegisterCollector(reg, m.cfgChanges, &err)
	m.defDrift = lcRegisterCollector(reg, m.defDrift, &err)
	m.channelsDone = lcRegisterCollector(reg, m.channelsDone, &err)
	m.channelsModified = lcRegisterCollector(reg, m.channelsModified, &err)
	if err != nil {
		return nil, fmt.Errorf("openhim: register lifecycle metrics: %w", err)
	}
	return m, nil
}

// lcRegisterCollector registers c, or returns the collector already registered under
// the same descriptor (two Lifecycles for the same URN on one registry).
func lcRegisterCollector[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}
