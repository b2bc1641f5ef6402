package mediator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of [Config].
const (
	DefaultListen          = ":8080"
	DefaultMaxBodyBytes    = 10 << 20
	DefaultShutdownTimeout = 30 * time.Second
)

// Default server timeouts of [Config] (documented there).
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 60 * time.Second
	defaultWriteTimeout      = 90 * time.Second
	defaultIdleTimeout       = 120 * time.Second
)

// Config configures a [Mediator]. Definition and Handler are required; the
// zero value of every other field is a usable default.
type Config struct {
	// Definition is registered with core; Definition.URN is also the
	// "x-mediator-urn" of every response.
	Definition openhim.Definition
	// Listen is the TCP address to serve on; "" means DefaultListen.
	// Ignored when Listener is set.
	Listen string
	// Listener, when set, is served instead of listening on Listen.
	Listener net.Listener
	// OpenHIM is the connection to core's API. An empty URL means
	// standalone mode: the mediator serves but does not register, for
	// local development.
	OpenHIM openhim.Config
	// HeartbeatInterval is the time between heartbeats; 0 means 10 s, a
	// negative value disables them. See [openhim.LifecycleConfig].
	HeartbeatInterval time.Duration
	// InstallChannels keeps Definition.DefaultChannelConfig installed in
	// core, and RestoreChannels puts back edited ones; see
	// [openhim.LifecycleConfig].
	InstallChannels, RestoreChannels bool
	// ConsoleConfig, usually an [*openhim.TypedConfig], is the configuration an
	// administrator edits in the OpenHIM console, wired with this one
	// field: New takes Definition.ConfigDefs and Definition.Config from it
	// (unless they are set) and every config core pushes goes to it,
	// before OnConfig.
	ConsoleConfig openhim.ConsoleConfig
	// OnConfig is called when core's config for the mediator changes
	// (including the first time). See [openhim.LifecycleConfig].
	OnConfig func(old, new map[string]any)
	// Auth is the authentication required of requests (every path but
	// /healthz and /readyz; /metrics too unless MetricsListen is set).
	// New refuses the zero value: set a method, or Open to serve the routes
	// open where nothing but core reaches them. When Auth.Username is set, New sends
	// the credentials on the Definition's endpoints and default channel
	// routes (see [openhim.Definition.WithCredentials]).
	Auth InboundAuth
	// TLSConfig, when set, makes the mediator serve HTTPS with it (it must
	// hold a certificate). With Auth.ClientCert, its ClientCAs verify
	// client certificates; New asks clients for one (ClientAuth
	// RequestClientCert, the certificate verified per request) unless
	// ClientAuth says otherwise, so that the probes stay reachable without
	// one, and a certificate that does not verify leaves the request to
	// the other credentials instead of failing the handshake.
	TLSConfig *tls.Config
	// MetricsListen, when set, is a separate TCP address serving /metrics
	// only, without authentication (for example "127.0.0.1:9090" for a
	// local Prometheus agent); the main address then treats /metrics as
	// any other path. When empty, /metrics is served on the main address
	// and requires Auth like the routes.
	MetricsListen string
	// Handler serves every path but /healthz, /readyz and /metrics. A
	// [HandlerFunc] answers with its result; any other http.Handler has
	// what it writes wrapped in an envelope (unless it writes an
	// application/json+openhim body itself); a body that is not UTF-8
	// text, or over Capture.BodyBudget, is answered 502 Failed (a HEAD
	// answer's body is dropped, as net/http drops it). It may be
	// an http.ServeMux:
	// its patterns label the metrics.
	Handler http.Handler
	// ReadyCheck, when set, is asked by /readyz once the mediator is serving and registered: an
	// error makes it answer 503 with the error as the reason, so a probe or an alert sees why (for
	// example that CHT's pushes to this mediator keep failing). It gets the request's context
	// with a 5 s deadline.
	ReadyCheck func(ctx context.Context) error
	// Logger receives request and lifecycle logs; nil discards.
	Logger *slog.Logger
	// Registry receives the metrics served at /metrics; nil means a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	// MaxBodyBytes limits request bodies: larger ones are answered 413
	// with a JSON error. 0 means DefaultMaxBodyBytes; negative, no limit.
	// It counts the bytes as they arrive: the mediator decodes no
	// Content-Encoding, and hands the handler the body as it came.
	MaxBodyBytes int64
	// ErrorBody formats the body of the answers the library makes for
	// errors: handler errors and panics, and the 413 for a body over
	// MaxBodyBytes (a FHIR mediator can answer an OperationOutcome). It
	// returns the Content-Type and the body. nil means application/json
	// {"error": "<message>"}.
	ErrorBody func(statusCode int, err error) (contentType string, body []byte)
	// Capture controls orchestration capture (body caps, budget, redacted
	// headers).
	Capture CaptureConfig
	// Server timeouts, as net/http.Server's; 0 means 10 s for
	// ReadHeaderTimeout, 60 s for ReadTimeout, 90 s for WriteTimeout (above
	// core's default route timeout of 60 s, so that core gives up first and
	// records the failure) and 120 s for IdleTimeout.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown Run does when its
	// context is done; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// Mediator serves the requests core routes to it and keeps it registered.
// Create one with [New]; start it with [Mediator.Run] (or
// [Mediator.ListenAndServe] and [Mediator.Shutdown]). A Mediator can't be
// reused after it is shut down. Its methods are safe for concurrent use.
type Mediator struct {
	cfg        Config
	log        *slog.Logger
	client     *openhim.Client
	lifecycle  *openhim.Lifecycle
	hc         *handlerConfig
	metrics    *serverMetrics
	metricsH   http.Handler
	async      *asyncRunner
	srv        *http.Server
	maxBody    int64
	auth       *inboundAuth // nil: no authentication
	metricsSrv *http.Server // nil: /metrics on the main address

	mu        sync.Mutex // guards ln, metricsLn, started, shutdown, lcCancel
	ln        net.Listener
	metricsLn net.Listener
	started   bool
	shutdown  bool
	lcCancel  context.CancelFunc
	lcDone    chan struct{}
	lcErr     error // set before lcDone is closed
}

// New validates cfg and returns a Mediator. It does no I/O.
func New(cfg Config) (*Mediator, error) {
	if cfg.Handler == nil {
		return nil, errors.New("mediator: Config.Handler is required")
	}
	if cfg.Definition.URN == "" {
		return nil, errors.New("mediator: Config.Definition.URN is required")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ReadHeaderTimeout", &cfg.ReadHeaderTimeout, defaultReadHeaderTimeout},
		{"ReadTimeout", &cfg.ReadTimeout, defaultReadTimeout},
		{"WriteTimeout", &cfg.WriteTimeout, defaultWriteTimeout},
		{"IdleTimeout", &cfg.IdleTimeout, defaultIdleTimeout},
		{"ShutdownTimeout", &cfg.ShutdownTimeout, DefaultShutdownTimeout},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("mediator: Config.%s must not be negative", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if err := cfg.Auth.validate(); err != nil {
		return nil, err
	}
	if cfg.TLSConfig != nil {
		tc := cfg.TLSConfig.Clone()
		if len(tc.Certificates) == 0 && tc.GetCertificate == nil && tc.GetConfigForClient == nil {
			return nil, errors.New("mediator: Config.TLSConfig has no certificate")
		}
		if cfg.Auth.ClientCert && tc.ClientAuth == tls.NoClientCert {
			// Asked for, verified by inboundAuth: a certificate that does
			// not verify (core sends its keystore's on every secured
			// route) then leaves the request to the other credentials,
			// where VerifyClientCertIfGiven would fail the handshake.
			tc.ClientAuth = tls.RequestClientCert
		}
		cfg.TLSConfig = tc
	}
	if cfg.Auth.ClientCert && (cfg.TLSConfig == nil || cfg.TLSConfig.ClientCAs == nil) {
		return nil, errors.New("mediator: Config.Auth.ClientCert needs Config.TLSConfig with ClientCAs")
	}
	cfg.Definition = cfg.Definition.WithCredentials(cfg.Auth.Username, cfg.Auth.Password)
	if cc := cfg.ConsoleConfig; cc != nil {
		if len(cfg.Definition.ConfigDefs) == 0 {
			cfg.Definition.ConfigDefs = cc.Defs()
		}
		if cfg.Definition.Config == nil {
			cfg.Definition.Config = cc.DefaultConfig()
		}
		next := cfg.OnConfig
		cfg.OnConfig = func(old, new map[string]any) {
			cc.OnConfig(old, new)
			if next != nil {
				next(old, new)
			}
		}
	}
	m := &Mediator{cfg: cfg, maxBody: cfg.MaxBodyBytes, lcDone: make(chan struct{})}
	if m.maxBody == 0 {
		m.maxBody = DefaultMaxBodyBytes
	}
	m.log = cfg.Logger
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var err error
	if m.metrics, err = newServerMetrics(reg); err != nil {
		return nil, fmt.Errorf("mediator: register metrics: %w", err)
	}
	m.metricsH = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	var clientCAs *x509.CertPool
	if cfg.TLSConfig != nil {
		clientCAs = cfg.TLSConfig.ClientCAs
	}
	m.auth = newInboundAuth(cfg.Auth, cfg.Definition.URN, clientCAs)
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.metricsH)
		m.metricsSrv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		}
	}
	if m.client, err = openhim.NewClient(cfg.OpenHIM, m.log); err != nil {
		return nil, err
	}
	m.lifecycle, err = openhim.NewLifecycle(openhim.LifecycleConfig{
		Client:            m.client,
		Definition:        cfg.Definition,
		HeartbeatInterval: cfg.HeartbeatInterval,
		InstallChannels:   cfg.InstallChannels,
		RestoreChannels:   cfg.RestoreChannels,
		OnConfig:          cfg.OnConfig,
		Logger:            m.log,
		Registerer:        reg,
	})
	if err != nil {
		return nil, err
	}
	var updater transactionUpdater
	if !m.client.Standalone() {
		updater = m.client
	}
	m.async = newAsyncRunner(updater, m.log, func(result string) { m.metrics.asyncUpdates.WithLabelValues(result).Inc() })
	m.async.pending = func() Status { return pendingStatus(m.lifecycle.CoreRelease()) }
	cc := cfg.Capture.compile()
	cc.observe = m.metrics.observeOrchestration
	m.hc = &handlerConfig{urn: cfg.Definition.URN, capture: cc, log: m.log, async: m.async, errorBody: cfg.ErrorBody}
	m.srv = &http.Server{
		Handler:           m,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		TLSConfig:         cfg.TLSConfig,
	}
	return m, nil
}

// Client returns the core API client (standalone when no URL is set).
func (m *Mediator) Client() *openhim.Client { return m.client }

// Standalone reports whether the mediator runs without core.
func (m *Mediator) Standalone() bool { return m.client.Standalone() }

// Ready reports what /readyz says: the mediator is serving and, unless
// standalone, registered with core.
func (m *Mediator) Ready() bool {
	m.mu.Lock()
	serving := m.ln != nil && !m.shutdown
	m.mu.Unlock()
	return serving && (m.Standalone() || m.lifecycle.Registered())
}

// Addr returns the address the mediator listens on, or nil before it
// starts listening.
func (m *Mediator) Addr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// Run serves and keeps the mediator registered until ctx is done (use
// signal.NotifyContext for SIGINT and SIGTERM), then shuts down
// gracefully: it stops accepting requests, drains in-flight and async
// ones for up to Config.ShutdownTimeout, and stops heartbeats. It returns
// nil after a clean shutdown, the listen error, or the lifecycle's error
// if core rejects the registration.
func (m *Mediator) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- m.ListenAndServe() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	case <-m.lcDone:
		if err = m.lcErr; err != nil {
			m.log.ErrorContext(ctx, "mediator: lifecycle failed; shutting down", "error", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.ShutdownTimeout)
	defer cancel()
	serr := m.Shutdown(sctx)
	if err == nil {
		select {
		case e := <-serveErr:
			if !errors.Is(e, http.ErrServerClosed) {
				err = e
			}
		default:
		}
	}
	return errors.Join(err, serr)
}

// ListenAndServe listens on Config.Listen (or serves Config.Listener),
// starts the lifecycle (registration and heartbeats) and serves until
// [Mediator.Shutdown], after which it returns http.ErrServerClosed.
func (m *Mediator) ListenAndServe() error {
	ln := m.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", m.cfg.Listen); err != nil {
			return fmt.Errorf("mediator: listen: %w", err)
		}
	}
	return m.Serve(ln)
}

// Serve is like [Mediator.ListenAndServe] on ln.
func (m *Mediator) Serve(ln net.Listener) error {
	m.mu.Lock()
	if m.started || m.shutdown {
		m.mu.Unlock()
		ln.Close()
		if m.shutdown {
			return http.ErrServerClosed
		}
		return errors.New("mediator: already serving")
	}
	if m.metricsSrv != nil {
		mln, err := net.Listen("tcp", m.cfg.MetricsListen)
		if err != nil {
			m.mu.Unlock()
			ln.Close()
			return fmt.Errorf("mediator: listen for metrics: %w", err)
		}
		m.metricsLn = mln
		go func() { _ = m.metricsSrv.Serve(mln) }()
	}
	m.started = true
	m.ln = ln
	lctx, cancel := context.WithCancel(context.Background())
	m.lcCancel = cancel
	m.mu.Unlock()

	go func() {
		defer close(m.lcDone)
		m.lcErr = m.lifecycle.Run(lctx)
	}()
	attrs := []any{"addr", ln.Addr().String(), "urn", m.cfg.Definition.URN, "standalone", m.Standalone(),
		"tls", m.cfg.TLSConfig != nil, "auth", m.cfg.Auth}
	if m.metricsLn != nil {
		attrs = append(attrs, "metrics_addr", m.metricsLn.Addr().String())
	}
	m.log.Info("mediator: serving", attrs...)
	if !m.cfg.Auth.enabled() {
		m.log.Warn("mediator: Auth.Open: anyone who reaches " + ln.Addr().String() + " can call the mediator's routes")
	}
	if m.cfg.TLSConfig != nil {
		return m.srv.ServeTLS(ln, "", "")
	}
	return m.srv.Serve(ln)
}

// Shutdown stops the mediator gracefully: it stops accepting requests,
// waits for in-flight and async requests until ctx is done, and stops the
// lifecycle (heartbeats). Async work still running at ctx's deadline is
// cancelled; Shutdown then waits up to 5 s more for its final transaction
// updates (reporting it as Failed) before returning ctx.Err(). The mediator is not deregistered from core
// (that would destroy its stored config).
func (m *Mediator) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.shutdown = true
	started := m.started
	cancel := m.lcCancel
	m.mu.Unlock()
	err := m.srv.Shutdown(ctx)
	if m.metricsSrv != nil {
		err = errors.Join(err, m.metricsSrv.Shutdown(ctx))
	}
	err = errors.Join(err, m.async.shutdown(ctx))
	if started {
		cancel()
		<-m.lcDone
	}
	m.log.Info("mediator: stopped", "error", err)
	return err
}

// ServeHTTP serves /healthz (liveness), /readyz (readiness), /metrics
// (Prometheus) and, for every other path, Config.Handler, recording the
// transaction and answering it as an envelope.
func (m *Mediator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		writeProbe(w, r, http.StatusOK, `{"status":"ok"}`)
	case "/readyz":
		if !m.Ready() {
			m.mu.Lock()
			reason := "not serving yet"
			if m.shutdown {
				reason = "shutting down"
			} else if m.ln != nil {
				reason = m.lifecycle.Problem()
			}
			m.mu.Unlock()
			writeProbe(w, r, http.StatusServiceUnavailable, string(append(append([]byte(`{"status":"not ready","reason":`),
				appendString(nil, reason)...), '}')))
			return
		}
		if check := m.cfg.ReadyCheck; check != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			err := check(ctx)
			cancel()
			if err != nil {
				writeProbe(w, r, http.StatusServiceUnavailable, string(append(append([]byte(`{"status":"not ready","reason":`),
					appendString(nil, errorText(err))...), '}')))
				return
			}
		}
		writeProbe(w, r, http.StatusOK, `{"status":"ready"}`)
	case "/metrics":
		if m.metricsSrv != nil {
			m.serveTransaction(w, r)
			return
		}
		if !m.auth.allow(r) {
			m.auth.refuse(w)
			return
		}
		m.metricsH.ServeHTTP(w, r)
	default:
		m.serveTransaction(w, r)
	}
}

func writeProbe(w http.ResponseWriter, r *http.Request, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}
