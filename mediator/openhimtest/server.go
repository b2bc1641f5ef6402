package openhimtest

import (
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/internal/semver"
)

// Version selects the behaviour profile of a core major version.
type Version int

// Core version profiles. The differences are in API authentication (§1) and
// in route validation (§6).
const (
	// Version4 is openhim-core 4.0.5 (npm's only version): token auth only,
	// basic auth is answered 401; routes need host and port and have type
	// http|tcp|mllp.
	Version4 Version = 4
	// Version7 is openhim-core 7.1: basic and token auth (basic is tried
	// first when an Authorization header is present); ≤7 route rules.
	// With a Release of 7.2.0 or later it authenticates as Version8 does
	// (7.2 brought passport and koa-session, src/koaApi.js and
	// src/api/authentication.js), except that its session cookie is
	// always Secure (7.2 gives koa-session secure: true; api.secureCookie
	// came with 8.0), so InsecureSessionCookie does not apply.
	Version7 Version = 7
	// Version8 is openhim-core 8.x (passport): basic, local session
	// (POST /authenticate/local) and token; when one of the four token
	// headers (auth-username, auth-ts, auth-salt, auth-token) is non-empty
	// only token auth is tried. Over plain http token auth fails as a
	// session login does (see Config.InsecureSessionCookie). Routes have
	// type http|kafka and optional host and port.
	Version8 Version = 8
)

// Default credentials of core's root user (src/server.js rootUser).
const (
	RootUser     = "root@openhim.org"
	RootPassword = "openhim-password"
	// rootSalt is the root user's salt hard-coded in core.
	rootSalt = "d9bcb40e-ae65-478f-962e-5e5e5e7d0a01"
)

// Config configures a fake core. The zero value is a Version8 core on plain
// HTTP with the root user.
type Config struct {
	// Version is the core version profile; 0 means Version8.
	Version Version
	// TLS serves the API over HTTPS with httptest's certificate (which,
	// unlike core's default certificate, has SANs); Client trusts it.
	TLS bool
	// InsecureSessionCookie mimics core's api.secureCookie: false, so that
	// the Version8 profile gives a session (POST /authenticate/local) over
	// plain http too, in a cookie not marked Secure (core 7.2 has no such
	// setting: its cookie is always Secure). By default, as core
	// (config/default.json api.secureCookie: true, given to koa-session in
	// src/koaApi.js), a session login, a token-authenticated request and
	// GET /logout over plain http fail with 500 "Internal Server Error":
	// koa-session cannot set the cookie. With TLS they succeed either way.
	InsecureSessionCookie bool
	// AuthWindow is api.authWindowSeconds for token auth; 0 means 10s.
	AuthWindow time.Duration
	// BasePath serves the API under a path prefix (e.g. "/openhim") so that
	// absolute-URL bugs show up; "" serves it at the root like core.
	BasePath string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RouteTLS is the TLS configuration the router uses for secured routes;
	// nil means the system roots (core uses rejectUnauthorized: true).
	RouteTLS *tls.Config
	// Logger receives request logs; nil discards them.
	Logger *slog.Logger
	// Release is the core release GET /about answers (currentCoreVersion);
	// "" means the profile's: "4.0.5", "7.1.0" or "8.5.0". In the Version7
	// profile, 7.2.0 and later authenticate as 7.2 did (see Version7). In
	// the Version8 profile, an earlier release also routes as it did: no "Pending
	// Async" for an isAsynchronousProcess channel before 8.3.0, no PATCH
	// body forwarded before 8.4.2.
	Release string
	// MaxTransactions bounds how many transactions the server keeps (the
	// most recent ones; core keeps all of them in MongoDB); 0 keeps all.
	// Long load runs set it so that the fake's memory stays flat.
	MaxTransactions int
}

// Server is a running fake OpenHIM core: an API server and a router, each an
// httptest server on loopback. All methods are safe for concurrent use.
type Server struct {
	// URL is the API base URL (scheme://host:port[BasePath]), without a
	// trailing slash.
	URL string
	// RouterURL is the HTTP router base URL (core's port 5001), without a
	// trailing slash.
	RouterURL string

	cfg    Config
	logger *slog.Logger
	// What the router does as cfg.Release did (worked out once, not per
	// request): route isAsynchronousProcess channels (from 8.3.0) and
	// forward PATCH bodies (from 8.4.2).
	asyncRouting, patchBodies bool
	// passport: core 7.2 and later's passport authentication, sessions
	// and GET /me, POST /authenticate/local and GET /logout.
	passport bool
	apiAddr  string
	rtrAddr  string
	certPool *x509.CertPool

	lifeMu sync.Mutex // serialises Start/Stop/Close
	api    *httptest.Server
	router *httptest.Server
	closed bool

	down atomic.Bool

	mu         sync.Mutex
	users      map[string]*user // by lower-case email
	sessions   map[string]string
	mediators  []*storedMediator
	channels   []*Channel
	clients    []*RouterClient
	txs        []*Transaction
	heartbeats map[string][]Heartbeat
	pushes     map[string][]ConfigPush
	failN      int
	failStatus int

	routeClient *http.Client
	client      *http.Client
	started     time.Time
	idCounter   atomic.Uint32
	idRandom    [5]byte
}

type user struct {
	email        string
	groups       []string
	passwordSalt string
	passwordHash string // hex(sha512(salt + password))
	localOnly    bool   // v8 user without a token passport
}

func (u *user) admin() bool {
	for _, g := range u.groups {
		if g == "admin" {
			return true
		}
	}
	return false
}

// NewServer starts and returns a fake core (API and router). The caller must
// Close it.
func NewServer(cfg Config) *Server {
	if cfg.Version == 0 {
		cfg.Version = Version8
	}
	if cfg.AuthWindow == 0 {
		cfg.AuthWindow = 10 * time.Second
	}
	if cfg.Release == "" {
		cfg.Release = map[Version]string{Version4: "4.0.5", Version7: "7.1.0", Version8: "8.5.0"}[cfg.Version]
	}
	cfg.BasePath = strings.TrimRight(cfg.BasePath, "/")
	if cfg.BasePath != "" && !strings.HasPrefix(cfg.BasePath, "/") {
		cfg.BasePath = "/" + cfg.BasePath
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:        cfg,
		logger:     logger,
		users:      map[string]*user{},
		sessions:   map[string]string{},
		heartbeats: map[string][]Heartbeat{},
		pushes:     map[string][]ConfigPush{},
		started:    cfg.Now(),
		passport:   cfg.Version >= Version8 || cfg.Version == Version7 && semver.AtLeast(cfg.Release, "7.2.0"),
		// router.js: isAsynchronousProcess from 8.3.0 (src/model/
		// channels.js); sendHttpRequest writes a PATCH body from 8.4.2.
		asyncRouting: cfg.Version >= Version8 && semver.AtLeast(cfg.Release, "8.3.0"),
		patchBodies:  cfg.Version >= Version8 && semver.AtLeast(cfg.Release, "8.4.2"),
	}
	_, _ = rand.Read(s.idRandom[:])
	s.users[RootUser] = &user{
		email:        RootUser,
		groups:       []string{"admin"},
		passwordSalt: rootSalt,
		passwordHash: sha512Hex(rootSalt + RootPassword),
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.RouteTLS
	s.routeClient = &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	if err := s.start("127.0.0.1:0", "127.0.0.1:0"); err != nil {
		panic(fmt.Sprintf("openhimtest: failed to listen: %v", err))
	}
	s.client = s.newClient()
	return s
}

// NewTLSServer is NewServer with cfg.TLS set.
func NewTLSServer(cfg Config) *Server {
	cfg.TLS = true
	return NewServer(cfg)
}

func (s *Server) start(apiAddr, rtrAddr string) error {
	apiLn, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return err
	}
	rtrLn, err := net.Listen("tcp", rtrAddr)
	if err != nil {
		apiLn.Close()
		return err
	}
	api := httptest.NewUnstartedServer(http.HandlerFunc(s.serveAPI))
	api.Listener.Close()
	api.Listener = apiLn
	setTimeouts(api.Config)
	// Server errors (e.g. TLS handshakes a test provokes on purpose) go to
	// the injected logger at debug level instead of stderr.
	api.Config.ErrorLog = slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug)
	router := httptest.NewUnstartedServer(http.HandlerFunc(s.serveRouter))
	router.Listener.Close()
	router.Listener = rtrLn
	setTimeouts(router.Config)
	router.Config.ErrorLog = slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug)
	router.Config.WriteTimeout = 0 // the route timeout governs
	if s.cfg.TLS {
		api.StartTLS()
	} else {
		api.Start()
	}
	router.Start()
	s.api, s.router = api, router
	if s.URL == "" {
		// First start only: a restart reuses the addresses, and the fields
		// must not be written while tests read them.
		if s.cfg.TLS {
			pool := x509.NewCertPool()
			pool.AddCert(api.Certificate()) // httptest's fixed certificate
			s.certPool = pool
		}
		s.apiAddr, s.rtrAddr = apiLn.Addr().String(), rtrLn.Addr().String()
		s.URL = api.URL + s.cfg.BasePath
		s.RouterURL = router.URL
	}
	return nil
}

func setTimeouts(srv *http.Server) {
	srv.ReadHeaderTimeout = 10 * time.Second
	srv.ReadTimeout = 60 * time.Second
	srv.WriteTimeout = 60 * time.Second
	srv.IdleTimeout = 60 * time.Second
}

// Close shuts the servers down and blocks until all outstanding requests
// have completed. Stored state is discarded with the Server.
func (s *Server) Close() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.api != nil {
		s.api.Close()
		s.router.Close()
		s.api, s.router = nil, nil
	}
	s.routeClient.CloseIdleConnections()
	s.client.CloseIdleConnections()
}

// Stop closes the API and router listeners (clients get "connection
// refused") but keeps all state, like a core whose process died while its
// database survives. Start brings it back on the same addresses.
func (s *Server) Stop() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed || s.api == nil {
		return
	}
	s.api.CloseClientConnections()
	s.api.Close()
	s.router.Close()
	s.api, s.router = nil, nil
	s.mu.Lock()
	s.sessions = map[string]string{} // sessions live in core's memory store here
	s.mu.Unlock()
}

// Start reopens the listeners stopped by Stop on the same addresses, so URL
// and RouterURL stay valid. It is a no-op when the server is running.
func (s *Server) Start() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return fmt.Errorf("openhimtest: server closed")
	}
	if s.api != nil {
		return nil
	}
	var err error
	for range 50 { // the old socket may linger briefly
		if err = s.start(s.apiAddr, s.rtrAddr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("openhimtest: restart: %w", err)
}

// Restart is Stop followed by Start: core restarted mid-run.
func (s *Server) Restart() error {
	s.Stop()
	return s.Start()
}

// SetDown makes the API (not the router) drop every connection without an
// answer while down is true, like a core that is unreachable behind a proxy.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// FailNext makes the next n authenticated or unauthenticated API requests
// fail with the given status (e.g. 500 or 503) and body "Internal Server
// Error"-style text, before any other processing.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// Client returns an HTTP client configured for the API server: it trusts
// the TLS certificate when Config.TLS is set, and has a 30 s timeout. Like
// httptest.Server.Client, it is the same client on every call; Close
// closes its idle connections.
func (s *Server) Client() *http.Client { return s.client }

func (s *Server) newClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.certPool != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: s.certPool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Certificate returns the API's TLS certificate, or nil without TLS.
func (s *Server) Certificate() *x509.Certificate {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if !s.cfg.TLS || s.api == nil {
		return nil
	}
	return s.api.Certificate()
}

// Version returns the server's core version profile.
func (s *Server) Version() Version { return s.cfg.Version }

// AddUser adds (or replaces) an API user with a token passport, as core ≤7.1
// stores users: sha512(salt+password). Pass "admin" among groups for a user
// that may use /mediators.
func (s *Server) AddUser(email, password string, groups ...string) {
	salt := newSalt()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToLower(email)] = &user{
		email:        email,
		groups:       append([]string(nil), groups...),
		passwordSalt: salt,
		passwordHash: sha512Hex(salt + password),
	}
}

// AddClient adds a router client with a sha512 password hash, like
// POST /clients with passwordAlgorithm "sha512", passwordSalt and
// passwordHash = hex(sha512(password + salt)) (core's basicAuthentication
// hashes the password first, then the salt). Roles may be named in
// channels' allow lists.
func (s *Server) AddClient(clientID, password string, roles ...string) {
	salt := newSalt()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = append(s.clients, &RouterClient{
		ID:                s.newID(),
		ClientID:          clientID,
		Name:              clientID,
		Roles:             append([]string(nil), roles...),
		PasswordAlgorithm: "sha512",
		PasswordSalt:      salt,
		PasswordHash:      sha512Hex(password + salt),
	})
}

// newID returns a Mongo ObjectId-like 24-hex-digit id. s.mu need not be held.
func (s *Server) newID() string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[:4], uint32(s.cfg.Now().Unix()))
	copy(b[4:9], s.idRandom[:])
	c := s.idCounter.Add(1)
	b[9], b[10], b[11] = byte(c>>16), byte(c>>8), byte(c)
	return hex.EncodeToString(b[:])
}

func (s *Server) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

func sha512Hex(s string) string {
	h := sha512.Sum512([]byte(s))
	return hex.EncodeToString(h[:])
}

func newSalt() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
