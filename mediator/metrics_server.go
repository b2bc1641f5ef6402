package mediator

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics are the request-side metrics of a Mediator.
type serverMetrics struct {
	requests      *prometheus.CounterVec   // route, code, status
	duration      *prometheus.HistogramVec // route
	inFlight      prometheus.Gauge
	orchestration *prometheus.HistogramVec // name
	asyncUpdates  *prometheus.CounterVec   // result
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "requests_total",
			Help: "Requests handled, by route pattern, HTTP status code and OpenHIM transaction status.",
		}, []string{"route", "code", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "request_duration_seconds",
			Help:    "Time to handle a request, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "requests_in_flight",
			Help: "Requests being handled.",
		}),
		orchestration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "orchestration_duration_seconds",
			Help:    "Time until an outbound call's response headers (or error), by orchestration name.",
			Buckets: prometheus.DefBuckets,
		}, []string{"name"}),
		asyncUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "openhim", Subsystem: "mediator", Name: "async_updates_total",
			Help: "Transaction updates sent to core for asynchronous requests, by result (ok, error, refused: the transaction was not waiting for one).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.orchestration, m.asyncUpdates} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *serverMetrics) observeRequest(route string, code int, status Status, d time.Duration) {
	m.requests.WithLabelValues(route, codeLabel(code), string(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func (m *serverMetrics) observeOrchestration(name string, d time.Duration) {
	m.orchestration.WithLabelValues(name).Observe(d.Seconds())
}

var codeLabels = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func codeLabel(code int) string {
	if code >= 0 && code < len(codeLabels) {
		return codeLabels[code]
	}
	return strconv.Itoa(code)
}
