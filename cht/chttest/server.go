package chttest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/release"
	"io"
	"log/slog"
	"maps"
	"math"
	mrand "math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default credentials of the admin user every server has unless
// Config.Users replaces it (CHT's development defaults).
const (
	AdminUsername = "medic"
	AdminPassword = "password"
)

// DefaultVersion is the CHT version the fake reports and whose routes it
// serves when Config.Version is empty.
const DefaultVersion = "5.2.0"

// Roles and permissions CHT checks.
const (
	RoleDBAdmin = "_admin"    // CouchDB server admin: online, every permission
	RoleAdmin   = "admin"     // online
	RoleOnline  = "mm-online" // added by CHT to users whose roles are not offline

	PermCreateRecords = "can_create_records"
	PermCreatePeople  = "can_create_people"
	PermCreatePlaces  = "can_create_places"
	PermUpdatePeople  = "can_update_people"
	PermUpdatePlaces  = "can_update_places"
	PermUpdateReports = "can_update_reports"
	PermEdit          = "can_edit"
	PermViewContacts  = "can_view_contacts"
	PermViewReports   = "can_view_reports"
)

// IntegrationPermissions are the permissions the reference recommends for an
// integration (mediator) account.
var IntegrationPermissions = []string{PermCreateRecords, PermViewContacts, PermViewReports, PermEdit,
	PermCreatePeople, PermCreatePlaces, PermUpdatePeople, PermUpdatePlaces, PermUpdateReports}

// User is a CHT user of the fake.
//
// A user is online when its roles include "_admin", "admin" or "mm-online"
// (CHT adds "mm-online" to users whose roles are not offline); offline users
// get 403 from hydrate, contacts-by-phone and the cht-datasource endpoints.
// Users with role "_admin" or "admin" hold every permission; others hold
// exactly Permissions; writes to /medic (PUT and DELETE of a doc, POST
// /medic/ and _bulk_docs) need can_edit, online or offline, as in CHT's
// API, and only users with role "_admin" or "admin" may write CHT's
// admin-only documents (settings, forms, _design docs...), as the medic
// database's validate_doc_update functions decide. An offline user reads
// only the documents of its Facility's subtree through /medic (_changes,
// _all_docs, doc GETs), as CHT's replication rules allow, writes a single
// document only there, and never its Facility's own document.
type User struct {
	Name        string
	Password    string
	Roles       []string
	Permissions []string
	// Facility is the place an offline user is assigned to (facility_id).
	Facility string
}

func (u *User) online() bool {
	return slices.ContainsFunc(u.Roles, func(r string) bool {
		return r == RoleDBAdmin || r == RoleAdmin || r == RoleOnline
	})
}

func (u *User) admin() bool {
	return slices.Contains(u.Roles, RoleDBAdmin) || slices.Contains(u.Roles, RoleAdmin)
}

func (u *User) can(perms ...string) bool {
	if u.admin() {
		return true
	}
	for _, p := range perms {
		if !slices.Contains(u.Permissions, p) {
			return false
		}
	}
	return true
}

func (u *User) canAny(perms ...string) bool {
	if u.admin() {
		return true
	}
	return slices.ContainsFunc(perms, func(p string) bool { return slices.Contains(u.Permissions, p) })
}

// ContactType is an entry of app_settings.contact_types.
type ContactType struct {
	ID      string   `json:"id"`
	Parents []string `json:"parents,omitempty"`
	Person  bool     `json:"person,omitempty"`
}

// DefaultContactTypes is CHT's default hierarchy.
var DefaultContactTypes = []ContactType{
	{ID: "district_hospital"},
	{ID: "health_center", Parents: []string{"district_hospital"}},
	{ID: "clinic", Parents: []string{"health_center"}},
	{ID: "person", Parents: []string{"district_hospital", "health_center", "clinic"}, Person: true},
}

// Config configures a fake CHT server. The zero value is usable.
type Config struct {
	// Version is reported by /api/deploy-info and gates routes as in the
	// reference's version matrix. "" means DefaultVersion.
	Version string
	// BasePath serves the API under a path prefix (e.g. "/cht") so that
	// clients that build absolute URLs are caught. URL includes it.
	BasePath string
	// Users replaces the default admin user (AdminUsername/AdminPassword).
	Users []User
	// Forms are the JSON forms of app_settings.forms, keyed by code. CHT
	// looks forms up by the upper-cased code, so keys must be upper case.
	// Decode them from app settings JSON to keep the field order that
	// compact SMS parsing depends on.
	Forms map[string]Form
	// Settings are the other app settings the fake reads (and GET
	// /api/v1/settings returns): forms_only_mode, transitions (only
	// update_clinics runs, and only when enabled), default_country_code and
	// phone_validation (phone normalisation), locale. Replace them later
	// with SetSettings.
	Settings map[string]any
	// ContactTypes is app_settings.contact_types; nil means
	// DefaultContactTypes.
	ContactTypes []ContactType
	// MaxBodyBytes limits request bodies (413 beyond); 0 means 32 MiB.
	MaxBodyBytes int64
	// MaxLongpoll bounds how long a _changes longpoll waits; 0 means 10 s.
	MaxLongpoll time.Duration
	// LoginRateLimit is how many 401/429 answers per client IP, user name
	// or password, in a window of 10 s from the first, are allowed before a
	// request with Basic credentials from that IP, or with that user name
	// or password, gets 429, as CHT does from 4.6 (requests with a session
	// cookie never do); 0 means 10, negative disables the limiter.
	LoginRateLimit int
	// Seed seeds the random source of probabilistic faults.
	Seed uint64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives one debug line per request; nil discards.
	Logger *slog.Logger
	// MaxRecordedRequests bounds the history Requests returns (the oldest
	// are dropped); 0 means 10000, negative records nothing. Long soak or
	// backfill runs keep memory flat this way.
	MaxRecordedRequests int
}

// Request is a request the fake received, as recorded by Server.Requests.
type Request struct {
	Method string
	// Path is relative to the base path, e.g. "/api/v1/hydrate".
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// User is the authenticated user name, "" if none.
	User string
	// Status is the status code the fake answered.
	Status int
	Time   time.Time
}

// Server is a running fake CHT API. It is safe for concurrent use.
type Server struct {
	// URL is the base URL, including Config.BasePath, with no trailing slash.
	URL string

	ts       *httptest.Server
	cfg      Config
	ver      atomic.Pointer[release.Version] // the version emulated; SetVersion changes it
	store    *store
	sentinel *store // medic-sentinel: Sentinel's task:outbound:* docs
	log      *slog.Logger
	personTy map[string]bool
	types    map[string]ContactType

	mu       sync.Mutex
	users    map[string]*User
	sessions map[string]string // AuthSession -> user name
	reqs     []Request
	faults   []*faultState
	rng      *mrand.Rand
	failures map[string]rateWindow // rate-limit key -> its window
	creds    map[string]string
	settings map[string]any
	forms    map[string]Form   // app_settings.forms (Config.Forms, then PUT /api/v1/settings)
	replay   int64             // sequences the next resumed _changes goes back
	pushers  []*OutboundPusher // following this server: the API's mark_for_outbound runs them too

	taskMu sync.Mutex               // serialises changes to the outbound tasks
	tasks  map[string]*outboundTask // doc id -> its task:outbound document, as written

	closing   chan struct{} // closed by Close: ends longpolls and latency faults
	closeOnce sync.Once
}

// NewServer starts a fake CHT server; the zero Config gives the defaults. The
// server is running when NewServer returns. It panics if the Config is
// invalid (as httptest.NewServer panics when it cannot listen).
func NewServer(cfg Config) *Server {
	s, err := newServer(cfg)
	if err != nil {
		panic(err)
	}
	s.ts = httptest.NewUnstartedServer(s)
	s.ts.Config.ReadHeaderTimeout = 10 * time.Second
	s.ts.Config.ReadTimeout = time.Minute
	s.ts.Config.IdleTimeout = time.Minute
	s.ts.Start()
	s.URL = s.ts.URL + s.cfg.BasePath
	return s
}

func newServer(c Config) (*Server, error) {
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	v, err := release.Parse(c.Version)
	if err != nil {
		return nil, fmt.Errorf("chttest: Config.Version: %w", err)
	}
	c.BasePath = strings.TrimRight(c.BasePath, "/")
	if c.BasePath != "" && !strings.HasPrefix(c.BasePath, "/") {
		c.BasePath = "/" + c.BasePath
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 32 << 20
	}
	if c.MaxLongpoll <= 0 {
		c.MaxLongpoll = 10 * time.Second
	}
	if c.LoginRateLimit == 0 {
		c.LoginRateLimit = 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxRecordedRequests == 0 {
		c.MaxRecordedRequests = 10000
	}
	if c.ContactTypes == nil {
		c.ContactTypes = DefaultContactTypes
	}
	if c.Users == nil {
		c.Users = []User{{Name: AdminUsername, Password: AdminPassword, Roles: []string{RoleDBAdmin}}}
	}
	s := &Server{
		cfg:      c,
		store:    newStore(),
		sentinel: newStore(),
		log:      c.Logger,
		personTy: map[string]bool{"person": true},
		types:    make(map[string]ContactType),
		users:    make(map[string]*User),
		sessions: make(map[string]string),
		rng:      mrand.New(mrand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15)),
		failures: make(map[string]rateWindow),
		creds:    make(map[string]string),
		settings: maps.Clone(c.Settings),
		forms:    maps.Clone(c.Forms),
		closing:  make(chan struct{}),
	}
	s.ver.Store(&v)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, t := range c.ContactTypes {
		if t.ID == "" {
			return nil, errors.New("chttest: contact type with empty id")
		}
		s.types[t.ID] = t
		if t.Person {
			s.personTy[t.ID] = true
		}
	}
	for _, u := range c.Users {
		if u.Name == "" {
			return nil, errors.New("chttest: user with empty name")
		}
		u.Roles = slices.Clone(u.Roles)
		u.Permissions = slices.Clone(u.Permissions)
		s.users[u.Name] = &u
	}
	return s, nil
}

// Client returns an HTTP client for the server (no credentials set).
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Close shuts the server down, blocking until in-flight requests finish;
// pending longpolls and injected latencies end at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.ts.Close()
}

// Version returns the CHT version the server emulates.
func (s *Server) Version() string { return s.version().String() }

// version is the CHT version the server emulates now.
func (s *Server) version() release.Version { return *s.ver.Load() }

// SetVersion makes the server emulate another CHT version from its next
// request on, as an upgrade (or a downgrade) of CHT does under clients that
// keep running: /api/deploy-info reports it and routes are gated by it.
// The data, users and settings stay. Outbound pushers keep their own
// PusherConfig.Version. version is read as Config.Version is; "" means
// DefaultVersion.
func (s *Server) SetVersion(version string) error {
	if version == "" {
		version = DefaultVersion
	}
	v, err := release.Parse(version)
	if err != nil {
		return fmt.Errorf("chttest: SetVersion: %w", err)
	}
	s.ver.Store(&v)
	return nil
}

// AddUser adds or replaces a user.
func (s *Server) AddUser(u User) {
	u.Roles = slices.Clone(u.Roles)
	u.Permissions = slices.Clone(u.Permissions)
	s.mu.Lock()
	s.users[u.Name] = &u
	s.mu.Unlock()
}

// SetCredential stores a secret as CHT's credentials store does
// (PUT /api/v1/credentials/<key>).
func (s *Server) SetCredential(key, secret string) {
	s.mu.Lock()
	s.creds[key] = secret
	s.mu.Unlock()
}

// Credential returns a secret stored with SetCredential or through the API.
func (s *Server) Credential(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.creds[key]
	return v, ok
}

// Requests returns a copy of the requests received so far (at most
// Config.MaxRecordedRequests, the most recent), oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.reqs = nil
	s.mu.Unlock()
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// ctxUser is the per-request state.
type reqCtx struct {
	w    *statusWriter
	r    *http.Request
	path string // relative to base path
	body []byte
	user *User
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ServeHTTP serves the fake API. NewServer already serves it on URL; use
// ServeHTTP to mount the fake elsewhere.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	c := &reqCtx{w: sw, r: r}
	rec := Request{Method: r.Method, Query: r.URL.Query(), Header: r.Header.Clone(), Time: s.now()}
	defer func() {
		rec.Status = sw.status
		if c.user != nil {
			rec.User = c.user.Name
		}
		rec.Body = c.body
		if keep := s.cfg.MaxRecordedRequests; keep > 0 {
			s.mu.Lock()
			if len(s.reqs) >= keep {
				n := copy(s.reqs, s.reqs[len(s.reqs)-keep+1:])
				clear(s.reqs[n:])
				s.reqs = s.reqs[:n]
			}
			s.reqs = append(s.reqs, rec)
			s.mu.Unlock()
		}
		s.log.Debug("chttest request", "method", r.Method, "path", rec.Path, "status", sw.status)
	}()

	p := r.URL.Path
	if s.cfg.BasePath != "" {
		if p != s.cfg.BasePath && !strings.HasPrefix(p, s.cfg.BasePath+"/") {
			rec.Path = p
			couchError(sw, http.StatusNotFound, "not_found", "missing (outside the fake's base path "+s.cfg.BasePath+")")
			return
		}
		p = strings.TrimPrefix(p, s.cfg.BasePath)
	}
	if p == "" {
		p = "/"
	}
	c.path = p
	rec.Path = p

	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
		if err != nil {
			couchError(sw, http.StatusBadRequest, "bad_request", "cannot read body: "+err.Error())
			return
		}
		if int64(len(b)) > s.cfg.MaxBodyBytes {
			c.body = b[:0]
			if strings.HasPrefix(p, "/api/") || parsedDocWrite(r, p) {
				// body-parser's limit error (entity.too.large), answered by
				// api/src/server-utils.js serverError.
				s.apiError(c, http.StatusRequestEntityTooLarge, "Payload Too Large", nil)
			} else {
				// CouchDB's max_http_request_size (chttpd error_info).
				couchError(sw, http.StatusRequestEntityTooLarge, "too_large", "the request entity is too large")
			}
			return
		}
		c.body = b
	}

	if s.applyFaults(c) {
		return
	}
	if s.rateLimited(c) {
		return
	}
	s.route(c)
	if sw.status == http.StatusUnauthorized || sw.status == http.StatusTooManyRequests {
		s.consumeRateLimit(c)
	}
}

// parsedDocWrite reports whether the request is a write api/src/routing.js
// parses with jsonParser (limit 32mb) before it proxies it to CouchDB: a
// JSON PUT of a doc, POST /medic/ and _bulk_docs. CHT sets CouchDB's
// max_http_request_size to 4 GB (couchdb/10-docker-default.ini), so the
// API's limit is the one such a write meets.
func parsedDocWrite(r *http.Request, p string) bool {
	if !isJSON(r) {
		return false
	}
	switch r.Method {
	case http.MethodPut:
		return strings.HasPrefix(p, "/medic/")
	case http.MethodPost:
		return p == "/medic" || p == "/medic/" || strings.HasPrefix(p, "/medic/_bulk_docs")
	}
	return false
}

// --- responses ---

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "chttest: encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// couchError writes a CouchDB-style error {"error","reason"}.
func couchError(w http.ResponseWriter, code int, errName, reason string) {
	writeJSON(w, code, map[string]any{"error": errName, "reason": reason})
}

// wantsJSON mirrors express' req.accepts(['text','json']) === 'json'.
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return false
	}
	type match struct {
		q    float64
		spec int
		idx  int
	}
	best := func(typ, sub string) (m match, ok bool) {
		m.idx = math.MaxInt
		idx := 0
		for _, line := range accept {
			for part := range strings.SplitSeq(line, ",") {
				fields := strings.Split(strings.TrimSpace(part), ";")
				mt := strings.ToLower(strings.TrimSpace(fields[0]))
				q := 1.0
				for _, f := range fields[1:] {
					if k, v, ok := strings.Cut(strings.TrimSpace(f), "="); ok && strings.TrimSpace(k) == "q" {
						if fv, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
							q = fv
						}
					}
				}
				t, st, _ := strings.Cut(mt, "/")
				spec := -1
				switch {
				case t == typ && st == sub:
					spec = 2
				case t == typ && st == "*":
					spec = 1
				case t == "*" && st == "*":
					spec = 0
				}
				if spec >= 0 && (!ok || spec > m.spec) {
					m, ok = match{q: q, spec: spec, idx: idx}, true
				}
				idx++
			}
		}
		return m, ok && m.q > 0
	}
	tm, tok := best("text", "plain")
	jm, jok := best("application", "json")
	switch {
	case !jok:
		return false
	case !tok:
		return true
	case jm.q != tm.q:
		return jm.q > tm.q
	case jm.spec != tm.spec:
		return jm.spec > tm.spec
	default:
		return jm.idx < tm.idx
	}
}

// apiError writes CHT's serverUtils error: JSON {"code","error","details"}
// when the client accepts JSON, text/plain otherwise.
func (s *Server) apiError(c *reqCtx, code int, msg string, details any) {
	if wantsJSON(c.r) {
		body := map[string]any{"code": code, "error": msg}
		if details != nil {
			body["details"] = details
		}
		writeJSON(c.w, code, body)
		return
	}
	text := msg
	if details != nil {
		b, _ := json.Marshal(details)
		text = msg + ": " + string(b)
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.WriteHeader(code)
	_, _ = io.WriteString(c.w, text)
}

// serverError is how CHT answers a PublicError: 500 "Server error" with the
// message as details.
func (s *Server) serverError(c *reqCtx, msg string) {
	s.apiError(c, http.StatusInternalServerError, "Server error", msg)
}

func (s *Server) forbidden(c *reqCtx) {
	s.apiError(c, http.StatusForbidden, "Insufficient privileges", nil)
}

func (s *Server) offlineForbidden(c *reqCtx) {
	writeJSON(c.w, http.StatusForbidden, map[string]any{"code": 403, "error": "forbidden",
		"details": "Offline users are not allowed access to this endpoint"})
}

func (s *Server) notLoggedIn(c *reqCtx) {
	c.w.Header().Set("WWW-Authenticate", `Basic realm="Medic Web Services"`)
	if wantsJSON(c.r) {
		writeJSON(c.w, http.StatusUnauthorized, map[string]any{"code": 401, "error": "unauthorized"})
		return
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(c.w, "not logged in")
}

// --- auth ---

// authenticate resolves the user from basic auth or the AuthSession cookie.
// It answers 401 itself and returns false when that fails.
func (s *Server) authenticate(c *reqCtx) bool {
	if name, pass, ok := c.r.BasicAuth(); ok {
		s.mu.Lock()
		u := s.users[name]
		s.mu.Unlock()
		if u == nil || u.Password != pass {
			s.notLoggedIn(c)
			return false
		}
		c.user = u
		return true
	}
	if ck, err := c.r.Cookie("AuthSession"); err == nil {
		s.mu.Lock()
		u := s.users[s.sessions[ck.Value]]
		s.mu.Unlock()
		if u != nil {
			c.user = u
			return true
		}
	}
	s.notLoggedIn(c)
	return false
}

// rateWindow is the state of one key of CHT's RateLimiterMemory
// (rate-limiter-flexible): the points consumed in a window that starts
// with the first of them and lasts rateWindowLength, however many follow.
type rateWindow struct {
	start  time.Time
	points int
}

// rateWindowLength is api/src/services/rate-limit.js failedLoginLimit's
// duration.
const rateWindowLength = 10 * time.Second

// rateLimits reports whether the server has CHT's rate limiter
// (api/src/middleware/rate-limiter.js, from cht-core 4.6.0).
func (s *Server) rateLimits() bool { return s.cfg.LoginRateLimit >= 0 && s.version().AtLeast(4, 6) }

// rateKeys is api/src/services/rate-limit.js getKeys: the client's IP,
// and the user name and password of Basic credentials as
// auth.basicAuthCredentials splits them (the password ends at its first
// colon). The keys of a parsed body's user and password, which only
// /medic/login has, are not modelled: the fake has no such route.
func (s *Server) rateKeys(c *reqCtx) []string {
	host, _, err := net.SplitHostPort(c.r.RemoteAddr)
	if err != nil {
		host = c.r.RemoteAddr
	}
	keys := []string{host}
	if name, pass, ok := c.r.BasicAuth(); ok {
		pass, _, _ = strings.Cut(pass, ":")
		for _, k := range []string{name, pass} {
			if k != "" {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// rateLimited is api/src/middleware/rate-limiter.js: a request that logs
// in (isLoggingIn: Basic credentials; the middleware runs before any body
// parser, so a body's user never counts) is refused while one of its keys
// has LoginRateLimit points in its window, with serverUtils.rateLimited's
// 429 "Too Many Requests". Requests with a session cookie, the session
// login POST /_session among them, are never refused. A refusal consumes
// no point: the middleware answers before it registers the handler that
// counts 401 and 429 answers (consumeRateLimit).
func (s *Server) rateLimited(c *reqCtx) bool {
	if !s.rateLimits() {
		return false
	}
	if name, _, ok := c.r.BasicAuth(); !ok || name == "" {
		return false
	}
	now := s.now()
	s.mu.Lock()
	limited := false
	for _, k := range s.rateKeys(c) {
		if w, ok := s.failures[k]; ok && now.Before(w.start.Add(rateWindowLength)) && w.points >= s.cfg.LoginRateLimit {
			limited = true
		}
	}
	s.mu.Unlock()
	if limited {
		s.apiError(c, http.StatusTooManyRequests, "Too Many Requests", nil)
	}
	return limited
}

// consumeRateLimit is rate-limit.js consume, which the rate limiter runs
// when a request it let through is answered 401 or 429: a point for each
// key, in the key's window or in a new one when that has ended.
func (s *Server) consumeRateLimit(c *reqCtx) {
	if !s.rateLimits() {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.rateKeys(c) {
		w, ok := s.failures[k]
		if !ok || !now.Before(w.start.Add(rateWindowLength)) {
			w = rateWindow{start: now}
		}
		w.points++
		s.failures[k] = w
	}
}

func (s *Server) handleSession(c *reqCtx) {
	switch c.r.Method {
	case http.MethodPost:
		var name, pass string
		ct := mediaType(c.r)
		switch ct {
		case "application/json":
			var body struct {
				Name     string `json:"name"`
				Password string `json:"password"`
			}
			if err := json.Unmarshal(c.body, &body); err != nil {
				couchError(c.w, http.StatusBadRequest, "bad_request", "invalid UTF-8 JSON")
				return
			}
			name, pass = body.Name, body.Password
		case "application/x-www-form-urlencoded":
			v, err := url.ParseQuery(string(c.body))
			if err != nil {
				couchError(c.w, http.StatusBadRequest, "bad_request", "invalid form body")
				return
			}
			name, pass = v.Get("name"), v.Get("password")
		default:
			couchError(c.w, http.StatusUnsupportedMediaType, "bad_content_type",
				"Content-Type must be application/x-www-form-urlencoded or application/json")
			return
		}
		s.mu.Lock()
		u := s.users[name]
		s.mu.Unlock()
		if u == nil || u.Password != pass {
			// api/src/routing.js: /_session is proxied, and
			// proxy.on('proxyRes') answers CouchDB's 401 with
			// serverUtils.notLoggedIn, not CouchDB's body.
			s.notLoggedIn(c)
			return
		}
		tok := make([]byte, 16)
		_, _ = rand.Read(tok)
		sess := hex.EncodeToString(tok)
		s.mu.Lock()
		s.sessions[sess] = name
		s.mu.Unlock()
		c.user = u
		http.SetCookie(c.w, &http.Cookie{Name: "AuthSession", Value: sess, Path: "/", HttpOnly: true})
		writeJSON(c.w, http.StatusOK, map[string]any{"ok": true, "name": u.Name, "roles": u.Roles})
	case http.MethodGet:
		ctx := map[string]any{"name": nil, "roles": []string{}}
		if name, pass, ok := c.r.BasicAuth(); ok {
			s.mu.Lock()
			u := s.users[name]
			s.mu.Unlock()
			if u == nil || u.Password != pass {
				s.notLoggedIn(c) // as for POST
				return
			}
			c.user = u
		} else if ck, err := c.r.Cookie("AuthSession"); err == nil {
			s.mu.Lock()
			c.user = s.users[s.sessions[ck.Value]]
			s.mu.Unlock()
		}
		if c.user != nil {
			ctx = map[string]any{"name": c.user.Name, "roles": c.user.Roles}
		}
		writeJSON(c.w, http.StatusOK, map[string]any{"ok": true, "userCtx": ctx})
	case http.MethodDelete:
		if ck, err := c.r.Cookie("AuthSession"); err == nil {
			s.mu.Lock()
			delete(s.sessions, ck.Value)
			s.mu.Unlock()
		}
		http.SetCookie(c.w, &http.Cookie{Name: "AuthSession", Value: "", Path: "/", MaxAge: -1})
		writeJSON(c.w, http.StatusOK, map[string]any{"ok": true})
	default:
		couchError(c.w, http.StatusMethodNotAllowed, "method_not_allowed", "Only DELETE,GET,HEAD,POST allowed")
	}
}

// mediaType returns the lower-cased media type of the request without
// parameters.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// isJSON mirrors body-parser / req.is('json'): application/json or +json,
// any parameters.
func isJSON(r *http.Request) bool {
	mt := mediaType(r)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// bodyParserJSON is body-parser's json() as api/src/routing.js jsonParser
// runs it before the route's handler: for a JSON content type, a body of
// length 0 is {}, and one whose first non-blank character is not { or [
// (strict mode: a body of blanks included) or that does not parse is an
// error, which the API's last error middleware (api/server.js,
// serverUtils.serverError) answers 500 "Server error". It reports false
// when it has answered.
func (s *Server) bodyParserJSON(c *reqCtx) bool {
	if !isJSON(c.r) {
		return true
	}
	if len(c.body) == 0 {
		return true
	}
	t := strings.TrimLeft(string(c.body), " \t\n\r")
	if t != "" && (t[0] == '{' || t[0] == '[') {
		if _, err := decodeAny(c.body); err == nil {
			return true
		}
	}
	s.apiError(c, http.StatusInternalServerError, "Server error", nil)
	return false
}

// strictJSON is CHT's handleJsonRequest: jsonParser runs first
// (bodyParserJSON), then the Content-Type must be exactly
// "application/json".
func (s *Server) strictJSON(c *reqCtx) bool {
	if !s.bodyParserJSON(c) {
		return false
	}
	if c.r.Header.Get("Content-Type") != "application/json" {
		s.apiError(c, http.StatusBadRequest, "Content-Type must be application/json", nil)
		return false
	}
	return true
}

// --- routing ---

type route struct {
	method  string
	pattern string // segments; "{}" matches one segment
	since   [2]int // minimum version major, minor
	auth    bool
	online  bool
	h       func(s *Server, c *reqCtx, params []string)
}

// after520 gates the routes cht-core added after tag 5.2.0 (commit
// 7c8bf5e855: GET /api/v1/contact and /api/v1/report, POST
// /api/v1/{contact,report}/summary; api/src/routing.js). Tag 5.2.0 and
// branch 5.2.x do not have them; builds of master that do still report
// 5.2.0, so the fake serves them from the next minor version.
var after520 = [2]int{5, 3}

var routes = []route{
	{"GET", "/api/info", [2]int{0, 0}, false, false, (*Server).handleInfo},
	{"GET", "/api/deploy-info", [2]int{0, 0}, true, false, (*Server).handleDeployInfo},
	{"GET", "/api/v1/settings", [2]int{0, 0}, true, false, (*Server).handleSettings},
	{"PUT", "/api/v1/settings", [2]int{0, 0}, true, false, (*Server).handleSettingsPut},
	{"GET", hydratePath, [2]int{3, 9}, true, true, (*Server).handleHydrate},
	{"POST", hydratePath, [2]int{3, 9}, true, true, (*Server).handleHydrate},
	{"POST", "/api/v1/records", [2]int{0, 0}, true, false, (*Server).handleRecordsV1},
	{"POST", "/api/v2/records", [2]int{0, 0}, true, false, (*Server).handleRecordsV2},
	{"POST", "/api/v1/people", [2]int{0, 0}, true, false, (*Server).handleLegacyPeople},
	{"POST", "/api/v1/places", [2]int{0, 0}, true, false, (*Server).handleLegacyPlaces},
	{"POST", "/api/v1/places/{}", [2]int{0, 0}, true, false, (*Server).handleLegacyPlaceUpdate},
	{"GET", "/api/v1/contacts-by-phone", [2]int{3, 10}, true, true, (*Server).handleContactsByPhone},
	{"POST", "/api/v1/contacts-by-phone", [2]int{3, 10}, true, true, (*Server).handleContactsByPhone},
	{"PUT", "/api/v1/credentials/{}", [2]int{4, 0}, true, true, (*Server).handleCredentials},
	{"GET", "/api/v1/person", [2]int{4, 11}, true, true, kindList(kindPerson)},
	{"POST", "/api/v1/person", [2]int{5, 2}, true, false, kindCreate(kindPerson)},
	{"GET", "/api/v1/person/{}", [2]int{4, 9}, true, true, kindGet(kindPerson)},
	{"PUT", "/api/v1/person/{}", [2]int{5, 2}, true, true, kindUpdate(kindPerson)},
	{"GET", "/api/v1/place", [2]int{4, 12}, true, true, kindList(kindPlace)},
	{"POST", "/api/v1/place", [2]int{5, 2}, true, false, kindCreate(kindPlace)},
	{"GET", "/api/v1/place/{}", [2]int{4, 10}, true, true, kindGet(kindPlace)},
	{"PUT", "/api/v1/place/{}", [2]int{5, 2}, true, true, kindUpdate(kindPlace)},
	{"GET", "/api/v1/contact", after520, true, true, kindGetAll(kindContact)},
	{"POST", "/api/v1/contact/summary", after520, true, true, kindSummaries(kindContact)},
	{"GET", "/api/v1/contact/uuid", [2]int{4, 18}, true, true, kindUUIDs(kindContact)},
	{"GET", "/api/v1/contact/{}", [2]int{4, 18}, true, true, kindGet(kindContact)},
	{"GET", "/api/v1/report", after520, true, true, kindGetAll(kindReport)},
	{"POST", "/api/v1/report/summary", after520, true, true, kindSummaries(kindReport)},
	{"GET", "/api/v1/report/uuid", [2]int{4, 18}, true, true, kindUUIDs(kindReport)},
	{"GET", "/api/v1/report/{}", [2]int{4, 18}, true, true, kindGet(kindReport)},
	{"POST", "/api/v1/report", [2]int{5, 2}, true, true, kindCreate(kindReport)},
	{"PUT", "/api/v1/report/{}", [2]int{5, 2}, true, true, kindUpdate(kindReport)},
	{"GET", "/medic-sentinel/_all_docs", [2]int{0, 0}, true, false, (*Server).handleSentinelAllDocs},
	{"POST", "/medic-sentinel/_all_docs", [2]int{0, 0}, true, false, (*Server).handleSentinelAllDocs},
	{"GET", "/medic-sentinel/{}", [2]int{0, 0}, true, false, (*Server).handleSentinelDocGet},
	{"GET", "/medic", [2]int{0, 0}, true, false, (*Server).handleDBInfo},
	{"POST", "/medic", [2]int{0, 0}, true, false, (*Server).handleDBPost},
	{"GET", "/medic/_changes", [2]int{0, 0}, true, false, (*Server).handleChanges},
	{"POST", "/medic/_changes", [2]int{0, 0}, true, false, (*Server).handleChanges},
	{"GET", "/medic/_all_docs", [2]int{0, 0}, true, false, (*Server).handleAllDocs},
	{"POST", "/medic/_all_docs", [2]int{0, 0}, true, false, (*Server).handleAllDocs},
	{"POST", "/medic/_bulk_docs", [2]int{0, 0}, true, false, (*Server).handleBulkDocs},
	{"GET", "/medic/_design/{}/_view/{}", [2]int{0, 0}, true, true, (*Server).handleView},
	{"GET", "/medic/{}", [2]int{0, 0}, true, false, (*Server).handleDocGet},
	{"PUT", "/medic/{}", [2]int{0, 0}, true, false, (*Server).handleDocPut},
	{"DELETE", "/medic/{}", [2]int{0, 0}, true, false, (*Server).handleDocDelete},
}

func matchRoute(pattern, p string) ([]string, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(p, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var params []string
	for i := range ps {
		if ps[i] == "{}" {
			if xs[i] == "" {
				return nil, false
			}
			params = append(params, xs[i])
			continue
		}
		if ps[i] != xs[i] {
			return nil, false
		}
	}
	return params, true
}

func (s *Server) route(c *reqCtx) {
	if c.path == "/_session" {
		s.handleSession(c)
		return
	}
	// Path segments arrive escaped in RawPath (e.g. document ids with "/").
	p := c.path
	if c.r.URL.RawPath != "" {
		p = strings.TrimPrefix(c.r.URL.RawPath, s.cfg.BasePath)
	}
	methodMismatch := false
	for _, rt := range routes {
		params, ok := matchRoute(rt.pattern, p)
		if !ok {
			continue
		}
		// "/medic/_changes" must not be taken as a document id.
		if rt.pattern == "/medic/{}" && strings.HasPrefix(params[0], "_") && !strings.HasPrefix(params[0], "_design") {
			continue
		}
		if rt.method != c.r.Method && !(rt.method == "GET" && c.r.Method == http.MethodHead) {
			methodMismatch = true
			continue
		}
		if !s.version().AtLeast(rt.since[0], rt.since[1]) {
			break // route does not exist in this version
		}
		for i, prm := range params {
			if u, err := url.PathUnescape(prm); err == nil {
				params[i] = u
			}
		}
		if rt.auth && !s.authenticate(c) {
			return
		}
		if rt.online && !c.user.online() {
			if rt.method == http.MethodGet && datasourceRead(rt.pattern) {
				s.forbidden(c)
			} else {
				s.offlineForbidden(c)
			}
			return
		}
		if !s.offlineWriteAllowed(c, rt, params) {
			// api/src/controllers/db-doc.js permissionsError
			writeJSON(c.w, http.StatusForbidden, map[string]any{"error": "forbidden", "reason": "Insufficient privileges"})
			return
		}
		if canEditGuarded(rt, c) && !c.user.can(PermEdit) {
			s.forbidden(c)
			return
		}
		rt.h(s, c, params)
		return
	}
	if methodMismatch && strings.HasPrefix(c.path, "/medic/") {
		couchError(c.w, http.StatusMethodNotAllowed, "method_not_allowed", "Only GET,HEAD,PUT,DELETE allowed")
		return
	}
	if strings.HasPrefix(p, "/api/") {
		// API passes a path it has no route for to CouchDB
		// (api/src/routing.js ends with the proxy), where "api" is
		// taken as a database name.
		couchError(c.w, http.StatusNotFound, "not_found", "Database does not exist.")
		return
	}
	couchError(c.w, http.StatusNotFound, "not_found", "missing")
}

// datasourceRead reports whether pattern is a read of the cht-datasource
// API (GET /api/v1/person, place, contact and report, by id or listed),
// which api/src/routing.js serves without the offline firewall: the
// controllers refuse an offline user themselves, as they refuse a user
// without can_view_contacts or can_view_reports, with 403 "Insufficient
// privileges" (api/src/controllers/person.js and the others:
// checkUserPermissions with isOnlineOnly in 4.9 to 4.18,
// auth.assertPermissions with isOnline in 5.2).
func datasourceRead(pattern string) bool {
	for _, p := range []string{"/api/v1/person", "/api/v1/place", "/api/v1/contact", "/api/v1/report"} {
		if pattern == p || strings.HasPrefix(pattern, p+"/") {
			return true
		}
	}
	return false
}

// canEditGuarded reports whether CHT's API lets the request reach CouchDB
// only through canEdit (api/src/routing.js: app.put, app.post and
// app.delete on editPath, the medic database's path prefix followed by
// anything, which answer 403 "Insufficient privileges" unless
// auth.check(req, 'can_edit') passes; a database admin always passes).
// Online and offline users alike get there: the doc and _bulk_docs routes
// before it only filter what an offline user may write. POST _changes and
// _all_docs never get there (they are answered or proxied before), nor
// does POST /medic without a trailing slash, which editPath does not
// match.
func canEditGuarded(rt route, c *reqCtx) bool {
	switch c.r.Method {
	case http.MethodPut, http.MethodPost, http.MethodDelete:
	default:
		return false
	}
	switch rt.pattern {
	case "/medic/_changes", "/medic/_all_docs":
		return false
	}
	return strings.HasPrefix(c.path, "/medic/")
}

// --- small handlers ---

// handleInfo is GET /api/info: the version of the API's package.json,
// which is "0.1.0" in every release (api/src/routing.js; api/package.json),
// not the CHT version.
func (s *Server) handleInfo(c *reqCtx, _ []string) {
	writeJSON(c.w, http.StatusOK, map[string]any{"version": "0.1.0"})
}

// handleDeployInfo is GET /api/deploy-info, for a logged-in user: the
// installed build (shared-libs/server-info getDeployInfo merges the
// ddoc's build_info and deploy_info, version the release).
func (s *Server) handleDeployInfo(c *reqCtx, _ []string) {
	v := s.version().String()
	writeJSON(c.w, http.StatusOK, map[string]any{"timestamp": s.now().UnixMilli(), "user": "chttest",
		"version": v, "base_version": v})
}

// SetSettings replaces the app settings returned by GET /api/v1/settings
// (forms and contact_types are always added from Config).
func (s *Server) SetSettings(settings map[string]any) {
	s.mu.Lock()
	s.settings = maps.Clone(settings)
	s.mu.Unlock()
}

// form returns the JSON form with the code.
func (s *Server) form(code string) (Form, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.forms[code]
	return f, ok
}

func (s *Server) allForms() map[string]Form {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.forms)
}

// handleSettingsPut is PUT /api/v1/settings (api/src/controllers/settings.js
// put; can_edit and can_configure): each top-level member given replaces
// the stored one (CHT merges nested objects unless ?replace=1), "forms"
// replaces the JSON forms.
func (s *Server) handleSettingsPut(c *reqCtx, _ []string) {
	if !s.strictJSON(c) {
		return
	}
	if !c.user.can(PermEdit, "can_configure") {
		s.forbidden(c)
		return
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(c.body, &body); err != nil {
		s.apiError(c, http.StatusBadRequest, "Invalid JSON: "+err.Error(), nil)
		return
	}
	var forms map[string]Form
	if raw, ok := body["forms"]; ok {
		if err := json.Unmarshal(raw, &forms); err != nil {
			s.apiError(c, http.StatusBadRequest, "forms: "+err.Error(), nil)
			return
		}
	}
	s.mu.Lock()
	if s.settings == nil {
		s.settings = map[string]any{}
	}
	for k, raw := range body {
		if k == "forms" {
			s.forms = forms
			continue
		}
		if k == "contact_types" {
			continue // fixed by Config.ContactTypes
		}
		var v any
		_ = json.Unmarshal(raw, &v)
		s.settings[k] = v
	}
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, map[string]any{"success": true, "updated": true})
}

func (s *Server) handleSettings(c *reqCtx, _ []string) {
	s.mu.Lock()
	out := maps.Clone(s.settings)
	s.mu.Unlock()
	if out == nil {
		out = map[string]any{}
	}
	forms := s.allForms()
	if forms == nil {
		forms = map[string]Form{}
	}
	out["forms"] = forms
	out["contact_types"] = s.cfg.ContactTypes
	writeJSON(c.w, http.StatusOK, out)
}

func (s *Server) handleCredentials(c *reqCtx, params []string) {
	// api/src/routing.js parses the body with textParser only (text/plain,
	// application/xml, text/csv): any other type leaves it {}, and
	// controllers/credentials.js put refuses an empty body before it
	// checks the user.
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if len(c.body) == 0 || (mt != "text/plain" && mt != "application/xml" && mt != "text/csv") {
		s.apiError(c, http.StatusBadRequest, "Missing required request body", nil)
		return
	}
	// controllers/credentials.js checkAuth: auth.isDbAdmin, user-management
	// roles.js isDbAdmin, is role "_admin", and from 5.1.0 "admin" too
	// (DB_ADMIN_ROLES).
	if !slices.Contains(c.user.Roles, RoleDBAdmin) && !(s.version().AtLeast(5, 1) && slices.Contains(c.user.Roles, RoleAdmin)) {
		s.apiError(c, http.StatusForbidden, "Insufficient permissions", nil)
		return
	}
	s.SetCredential(params[0], string(c.body))
	writeJSON(c.w, http.StatusOK, map[string]any{"ok": true})
}

// newCouchID returns a CouchDB-style id: 32 hex characters.
func newCouchID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newUUID returns a UUIDv4, or a UUIDv7 from CHT 5.0 on.
func (s *Server) newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	if s.version().AtLeast(5, 0) {
		ms := uint64(s.now().UnixMilli())
		for i := range 6 {
			b[i] = byte(ms >> (40 - 8*i))
		}
		b[6] = b[6]&0x0f | 0x70
	} else {
		b[6] = b[6]&0x0f | 0x40
	}
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:])
}

// jsonBody decodes the request body as a JSON object when the content type
// is JSON (as body-parser does); otherwise it returns nil. Its numbers are
// JavaScript's (decodeJS): the API builds and saves its documents from
// the parsed body.
func jsonBody(c *reqCtx) (map[string]any, error) {
	if !isJSON(c.r) || len(bytes.TrimSpace(c.body)) == 0 {
		return nil, nil
	}
	v, err := decodeJS(c.body)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// LogValue redacts the password.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", u.Name), slog.Any("roles", u.Roles), slog.String("password", "[REDACTED]"))
}
