package fhirtest

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBasePath is the path under which the server answers, as the real e2e server does.
const DefaultBasePath = "/fhir/R4"

// DefaultMaxBodyBytes is the default request body limit (16 MiB, as the real e2e server).
const DefaultMaxBodyBytes = 16 << 20

// Config configures a [Handler] or [Server]. The zero value is ready to use.
type Config struct {
	// BasePath is the URL path of the FHIR base; "" means [DefaultBasePath]. It must start with "/"
	// and not end with "/".
	BasePath string
	// MaxBodyBytes limits request bodies; larger ones are answered 413. 0 means
	// [DefaultMaxBodyBytes]; a negative value is an error.
	MaxBodyBytes int64
	// Strict rejects empty strings, arrays and objects (FHIR invariant ele-1) with 400 instead of
	// silently dropping them as the real server does.
	Strict bool
	// RequestLog is how many of the most recent requests [Handler.Requests] keeps; 0 means 1000 and
	// a negative value keeps none (for load tests).
	RequestLog int
	// Now returns the time used for meta.lastUpdated; nil means time.Now.
	Now func() time.Time
	// NotifyClient sends the rest-hook notifications of active Subscriptions; nil means a client
	// with a 10 s timeout. Set it to reach TLS endpoints of httptest servers.
	NotifyClient *http.Client
	// ReferentialIntegrity refuses (400, rolled back) a transaction after which a resource it
	// wrote holds a literal reference ("Type/id") to a resource the server does not have, as HAPI
	// FHIR does with its default enforce_referential_integrity_on_write (HAPI-1094) and as servers
	// that are facades over an EMR's database do. References by identifier only, to absolute URLs
	// and to contained resources are not checked.
	ReferentialIntegrity bool
	// Gone answers a read of a deleted resource (GET [type]/[id], and a vread of its deleted
	// version, also as a GET entry of a batch or transaction) 410 Gone, as the FHIR specification
	// has it (R4 http.html#read: a GET for a deleted resource returns 410 Gone, one for an unknown
	// resource 404 Not Found) and HAPI FHIR does (BaseHapiFhirResourceDao read: a deleted entity
	// is a ResourceGoneException, 410). A resource that never existed stays 404. Without it a
	// deleted resource reads 404, as the e2e suite's server (medplum's in-memory repository) and
	// servers that keep no record of deletions answer.
	Gone bool
}

// Handler is the in-memory FHIR R4 server as an http.Handler, for mounting in a mux or a real
// listener. Most tests use [Server], which embeds it. A Handler is safe for concurrent use.
type Handler struct {
	basePath string
	maxBody  int64
	strict   bool
	refInteg bool // Config.ReferentialIntegrity
	gone     bool // Config.Gone
	logSize  int
	now      func() time.Time

	mu sync.RWMutex // guards st
	st *store

	faults faultState

	reqMu sync.Mutex // guards reqs and reqN
	reqs  []Request  // ring buffer of logSize entries
	reqN  int        // number of requests logged since the last Reset

	held atomic.Int64 // requests held by timeout faults

	dirty        atomic.Bool   // st.changed is not empty
	gen          atomic.Uint64 // incremented by Reset, with mu and noteMu held
	notifyClient *http.Client
	noteMu       sync.Mutex // guards queue, delivering, stopped, notes and noteSignal; deliverWG.Add
	queue        []delivery
	delivering   bool
	stopped      bool // set by Close: no delivery goroutine is started any more
	notes        []Notification
	noteSignal   chan struct{} // closed and replaced when a notification is added to notes
	deliverWG    sync.WaitGroup

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: releases hung requests
}

// NewHandler returns a Handler configured by cfg, or an error naming the invalid field.
func NewHandler(cfg Config) (*Handler, error) {
	var errs []error
	if cfg.BasePath == "" {
		cfg.BasePath = DefaultBasePath
	}
	if !strings.HasPrefix(cfg.BasePath, "/") || (len(cfg.BasePath) > 1 && strings.HasSuffix(cfg.BasePath, "/")) {
		errs = append(errs, fmt.Errorf("fhirtest: Config.BasePath %q must start with / and not end with /", cfg.BasePath))
	}
	if cfg.BasePath == "/" {
		cfg.BasePath = ""
	}
	switch {
	case cfg.MaxBodyBytes < 0:
		errs = append(errs, fmt.Errorf("fhirtest: Config.MaxBodyBytes %d is negative", cfg.MaxBodyBytes))
	case cfg.MaxBodyBytes == 0:
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	switch {
	case cfg.RequestLog == 0:
		cfg.RequestLog = 1000
	case cfg.RequestLog < 0:
		cfg.RequestLog = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NotifyClient == nil {
		cfg.NotifyClient = &http.Client{Timeout: 10 * time.Second}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &Handler{
		basePath:     cfg.BasePath,
		maxBody:      cfg.MaxBodyBytes,
		strict:       cfg.Strict,
		refInteg:     cfg.ReferentialIntegrity,
		gone:         cfg.Gone,
		logSize:      cfg.RequestLog,
		now:          cfg.Now,
		notifyClient: cfg.NotifyClient,
		noteSignal:   make(chan struct{}),
		closed:       make(chan struct{}),
	}
	h.st = newStore(&h.dirty)
	return h, nil
}

// BasePath returns the URL path of the FHIR base, e.g. "/fhir/R4".
func (h *Handler) BasePath() string { return h.basePath }

// Close releases requests held by timeout faults, cancels the notification being sent and waits
// for the delivery goroutine to stop. The Handler keeps serving afterwards, without holding
// requests or sending notifications: a notification due then is recorded at once, before the write
// is answered, with an Err saying it was not sent. It is safe to call more than once.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.closed) })
	h.noteMu.Lock()
	h.stopped = true
	h.noteMu.Unlock()
	h.deliverWG.Wait()
}

// Server is an in-memory FHIR R4 server listening on a loopback port, like httptest.Server. Use
// [Server.URL] as the FHIR base URL and [Server.Client] as the HTTP client.
type Server struct {
	*Handler

	// URL is the FHIR base URL, e.g. http://127.0.0.1:41234/fhir/R4, without a trailing slash.
	URL string

	ts *httptest.Server
}

// NewServer starts a Server configured by cfg; the zero Config gives the defaults. Like
// httptest.NewServer it panics when it cannot start, here also when cfg is invalid (the message
// names the field). The caller must call Close.
func NewServer(cfg Config) *Server {
	h, err := NewHandler(cfg)
	if err != nil {
		panic(err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ReadHeaderTimeout = 10 * time.Second
	ts.Config.IdleTimeout = time.Minute
	ts.Start()
	return &Server{Handler: h, URL: ts.URL + h.basePath, ts: ts}
}

// Client returns an HTTP client for the server, with a 30 s timeout.
func (s *Server) Client() *http.Client {
	c := *s.ts.Client()
	c.Timeout = 30 * time.Second
	return &c
}

// Close releases held requests, shuts the server down and blocks until all requests have finished.
func (s *Server) Close() {
	s.Handler.Close()
	s.ts.Close()
}

// CloseClientConnections forcibly closes the open client connections, simulating a network failure.
func (s *Server) CloseClientConnections() { s.ts.CloseClientConnections() }
