package openhimtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxAPIBody is api.maxPayloadSizeMB's default (50 MB, §1.6).
const maxAPIBody = 50 << 20

// writeText writes a Koa-style text/plain body.
func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// basicAuthWriter marks the answer to a Version8 request authenticated
// with basic auth: core 8's authenticateBasic (src/api/authentication.js)
// sets ctx.body = 'User Authenticated Successfully', which a handler that
// only sets a status leaves in place (see writeHandlerStatus).
type basicAuthWriter struct{ http.ResponseWriter }

// writeHandlerStatus is a handler's ctx.status = status without a body:
// Koa answers the status text, or, after core 8's basic auth, the body
// authenticateBasic set.
func writeHandlerStatus(w http.ResponseWriter, status int) {
	if _, ok := w.(basicAuthWriter); ok {
		writeText(w, status, "User Authenticated Successfully")
		return
	}
	writeStatus(w, status)
}

// writeStatus answers like Koa does when a status is set without a body:
// the status message is the body ("OK", "Created", "Not Found", …).
func writeStatus(w http.ResponseWriter, status int) {
	writeText(w, status, http.StatusText(status))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeText(w, http.StatusInternalServerError, "openhimtest: encode: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// bodyKey is the context key of the request body parsed by serveAPI.
type bodyKey struct{}

// requestBody is the body serveAPI parsed, as koa-bodyparser leaves it in
// ctx.request.body: the JSON value, or an empty object.
func requestBody(r *http.Request) any { return r.Context().Value(bodyKey{}) }

// rawBodyKey is the context key of the request body's bytes, kept for
// what needs JavaScript's key order (see decodeOrdered).
type rawBodyKey struct{}

// rawRequestBody is the body serveAPI read, as bytes.
func rawRequestBody(r *http.Request) []byte {
	b, _ := r.Context().Value(rawBodyKey{}).([]byte)
	return b
}

// readJSON mirrors koa-bodyparser: JSON is parsed only for a JSON content
// type; anything else (or an empty body) yields an empty object. It answers
// 413 to a body over the limit and 400 to malformed JSON, reporting false.
// As in co-body's strict mode (lib/json.js, parse), which koa-bodyparser
// uses by default, a JSON body must be an object or an array: null, a
// string, a number or only white space is a 400 too.
func readJSON(w http.ResponseWriter, r *http.Request) (v any, raw []byte, ok bool) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		writeStatus(w, http.StatusRequestEntityTooLarge)
		return nil, nil, false
	}
	if !strings.Contains(r.Header.Get("Content-Type"), "json") || len(b) == 0 {
		return map[string]any{}, nil, true
	}
	if t := bytes.TrimLeft(b, " \t\n\r"); len(t) == 0 || t[0] != '{' && t[0] != '[' || json.Unmarshal(b, &v) != nil {
		writeStatus(w, http.StatusBadRequest)
		return nil, nil, false
	}
	return v, b, true
}

// jsUnescape mirrors JavaScript's unescape (core calls it on URNs after the
// router already decoded the path segment): %XX and %uXXXX sequences are
// decoded, invalid ones left as they are.
func jsUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+5 < len(s) && s[i+1] == 'u' {
				if n, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil {
					b.WriteRune(rune(n))
					i += 5
					continue
				}
			}
			if i+2 < len(s) {
				if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
					b.WriteRune(rune(n)) // Latin-1, as unescape does
					i += 2
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pathSegments splits the escaped path and decodes each segment once, so a
// %2F inside a URN stays inside its segment.
func pathSegments(escaped string) []string {
	parts := strings.Split(strings.Trim(escaped, "/"), "/")
	for i, p := range parts {
		if d, err := url.PathUnescape(p); err == nil {
			parts[i] = d
		}
	}
	return parts
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		writeStatus(w, http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	if s.failN > 0 {
		s.failN--
		status := s.failStatus
		s.mu.Unlock()
		writeStatus(w, status)
		return
	}
	s.mu.Unlock()

	escaped := r.URL.EscapedPath()
	if s.cfg.BasePath != "" {
		if escaped != s.cfg.BasePath && !strings.HasPrefix(escaped, s.cfg.BasePath+"/") {
			writeStatus(w, http.StatusNotFound)
			return
		}
		escaped = strings.TrimPrefix(escaped, s.cfg.BasePath)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
	// koa-bodyparser is mounted before every route and the auth middleware
	// (src/koaApi.js, app.use(bodyParser(...)) in 4.0.5 and 8.x alike): a
	// malformed or oversized JSON body is refused, whoever sends it.
	body, raw, ok := readJSON(w, r)
	if !ok {
		return
	}
	ctx := context.WithValue(r.Context(), bodyKey{}, body)
	r = r.WithContext(context.WithValue(ctx, rawBodyKey{}, raw))
	seg := pathSegments(escaped)
	s.logger.Debug("openhimtest: api request", "method", r.Method, "path", escaped)

	// Public routes, mounted before the auth middleware (§1).
	switch {
	case r.Method == http.MethodGet && len(seg) == 1 && seg[0] == "heartbeat":
		s.handleCoreHeartbeat(w)
		return
	case r.Method == http.MethodGet && len(seg) == 2 && seg[0] == "authenticate":
		s.handleAuthenticateSalt(w, jsUnescape(seg[1]))
		return
	case s.passport && r.Method == http.MethodPost && len(seg) == 2 && seg[0] == "authenticate" && seg[1] == "local":
		s.handleLocalLogin(w, r)
		return
	case s.passport && r.Method == http.MethodGet && len(seg) == 1 && seg[0] == "me":
		s.handleMe(w, r)
		return
	}

	u, via := s.authenticate(r)
	if u == nil {
		writeStatus(w, http.StatusUnauthorized)
		return
	}
	// core 8 (src/koaApi.js) mounts /logout after the auth middleware.
	logout := s.passport && r.Method == http.MethodGet && len(seg) == 1 && seg[0] == "logout"
	if s.sessionCommitFails(logout, via) {
		// The handler runs (its changes stay), then koa-session's commit
		// throws: Koa answers 500 instead of the handler's answer.
		defer writeText(w, http.StatusInternalServerError, "Internal Server Error")
		w = httptest.NewRecorder()
	}
	if s.passport && via == authBasic {
		w = basicAuthWriter{w}
	}
	if logout {
		s.handleLogout(w, r)
		return
	}

	m := r.Method
	switch {
	case seg[0] == "about" && len(seg) == 1 && m == http.MethodGet:
		// src/api/about.js, getAboutInformation (any authenticated user).
		writeJSON(w, http.StatusOK, map[string]string{"currentCoreVersion": s.cfg.Release, "serverTimezone": "UTC"})
	case seg[0] == "mediators":
		s.routeMediators(w, r, u, seg)
	case seg[0] == "channels" && len(seg) == 1 && m == http.MethodGet:
		s.handleGetChannels(w, u)
	case seg[0] == "channels" && len(seg) == 1 && m == http.MethodPost:
		s.handleAddChannel(w, r, u)
	case seg[0] == "channels" && len(seg) == 2 && m == http.MethodGet:
		s.handleGetChannel(w, u, seg[1])
	case seg[0] == "channels" && len(seg) == 2 && m == http.MethodPut:
		s.handleUpdateChannel(w, r, u, seg[1])
	case seg[0] == "channels" && len(seg) == 2 && m == http.MethodDelete:
		s.handleRemoveChannel(w, u, seg[1])
	case seg[0] == "clients" && len(seg) == 1 && m == http.MethodPost:
		s.handleAddClient(w, r, u)
	case seg[0] == "clients" && len(seg) == 1 && m == http.MethodGet:
		s.handleGetClients(w, u)
	case seg[0] == "transactions" && len(seg) == 1 && m == http.MethodGet:
		s.handleGetTransactions(w, r, u)
	case seg[0] == "transactions" && len(seg) == 2 && m == http.MethodGet:
		s.handleGetTransaction(w, u, seg[1])
	case seg[0] == "transactions" && len(seg) == 2 && m == http.MethodPut:
		s.handleUpdateTransaction(w, r, u, seg[1])
	default:
		writeStatus(w, http.StatusNotFound)
	}
}

func (s *Server) routeMediators(w http.ResponseWriter, r *http.Request, u *user, seg []string) {
	m := r.Method
	var urn string
	if len(seg) > 1 {
		urn = jsUnescape(seg[1])
	}
	var fn string
	var h func()
	switch {
	case len(seg) == 1 && m == http.MethodGet:
		fn, h = "getAllMediators", func() { s.handleGetMediators(w) }
	case len(seg) == 1 && m == http.MethodPost:
		fn, h = "addMediator", func() { s.handleAddMediator(w, r, u) }
	case len(seg) == 2 && m == http.MethodGet:
		fn, h = "getMediator", func() { s.handleGetMediator(w, urn) }
	case len(seg) == 2 && m == http.MethodDelete:
		fn, h = "removeMediator", func() { s.handleRemoveMediator(w, u, urn) }
	case len(seg) == 3 && seg[2] == "heartbeat" && m == http.MethodPost:
		// core's texts for heartbeat, setConfig and loadDefaultChannels
		// all say removeMediator.
		fn, h = "removeMediator", func() { s.handleHeartbeat(w, r, urn) }
	case len(seg) == 3 && seg[2] == "config" && m == http.MethodPut:
		fn, h = "removeMediator", func() { s.handleSetConfig(w, r, urn) }
	case len(seg) == 3 && seg[2] == "channels" && m == http.MethodPost:
		fn, h = "removeMediator", func() { s.handleLoadDefaultChannels(w, r, u, urn) }
	default:
		writeStatus(w, http.StatusNotFound)
		return
	}
	if notAdmin(w, u, fn) {
		return
	}
	h()
}

// notAdmin answers core's 403 to a user outside the admin group
// (authorisation.inGroup('admin', ctx.authenticated) in the handler named
// fn) and reports whether it did.
func notAdmin(w http.ResponseWriter, u *user, fn string) bool {
	if u.admin() {
		return false
	}
	writeText(w, http.StatusForbidden, fmt.Sprintf("User %s is not an admin, API access to %s denied.", u.email, fn))
	return true
}

// handleCoreHeartbeat is the public GET /heartbeat (§3 "How offline is
// determined").
func (s *Server) handleCoreHeartbeat(w http.ResponseWriter) {
	now := s.now()
	out := map[string]any{"master": now.Sub(s.started).Seconds()}
	meds := map[string]any{}
	s.mu.Lock()
	for _, m := range s.mediators {
		if m.LastHeartbeat != nil && m.Uptime != nil && now.Sub(*m.LastHeartbeat) <= 60*time.Second {
			meds[m.URN] = *m.Uptime
		} else {
			meds[m.URN] = nil
		}
	}
	s.mu.Unlock()
	if len(meds) > 0 { // core creates the key with the first mediator
		out["mediators"] = meds
	}
	out["now"] = now.UnixMilli()
	writeJSON(w, http.StatusOK, out)
}

// findMediator returns the stored mediator; s.mu must be held.
func (s *Server) findMediator(urn string) *storedMediator {
	for _, m := range s.mediators {
		if m.URN == urn {
			return m
		}
	}
	return nil
}

func (s *Server) handleGetMediators(w http.ResponseWriter) {
	s.mu.Lock()
	out := cloneJSON(s.mediators)
	s.mu.Unlock()
	if out == nil {
		out = []*storedMediator{}
	}
	// Core calls maskPasswords on the array, so the list is NOT masked
	// (§2.2 "Other mediator endpoints").
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetMediator(w http.ResponseWriter, urn string) {
	s.mu.Lock()
	m := s.findMediator(urn)
	var out *storedMediator
	if m != nil {
		out = cloneJSON(m)
	}
	s.mu.Unlock()
	if out == nil {
		writeHandlerStatus(w, http.StatusNotFound)
		return
	}
	maskPasswords(out.ConfigDefs, out.Config)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRemoveMediator(w http.ResponseWriter, u *user, urn string) {
	s.mu.Lock()
	s.mediators = slices.DeleteFunc(s.mediators, func(m *storedMediator) bool { return m.URN == urn })
	s.mu.Unlock()
	writeText(w, http.StatusOK, fmt.Sprintf("Mediator with urn %s has been successfully removed by %s", urn, u.email))
}

// mediatorKeys are the MediatorSchema paths a registration may set.
var mediatorKeys = []string{"urn", "version", "name", "description", "endpoints", "defaultChannelConfig", "configDefs", "config"}

// handleAddMediator is POST /mediators (§2).
func (s *Server) handleAddMediator(w http.ResponseWriter, r *http.Request, u *user) {
	body := requestBody(r)
	doc, _ := body.(map[string]any)
	if doc == nil {
		doc = map[string]any{}
	}
	status, msg := s.addMediator(doc)
	if msg != "" {
		writeText(w, status, "Could not add Mediator via the API: "+msg)
		return
	}
	s.logger.Info("openhimtest: mediator registered", "urn", doc["urn"], "user", u.email)
	writeHandlerStatus(w, status)
}

// addMediator applies core's addMediator to a decoded body and returns the
// status and, on failure, the error text.
func (s *Server) addMediator(doc map[string]any) (int, string) {
	fail := func(err error) (int, string) {
		var ve *validationError
		if errors.As(err, &ve) {
			return http.StatusBadRequest, err.Error()
		}
		return http.StatusInternalServerError, err.Error()
	}
	if !jsTruthy(doc["urn"]) {
		return fail(vErr("URN is required"))
	}
	vs, _ := doc["version"].(string)
	newVer, ok := parseSemver(vs)
	if !ok {
		return fail(vErr("Version is required. Must be in SemVer form x.y.z"))
	}
	var defs []configDef
	if rawDefs, present := doc["configDefs"]; present && jsTruthy(rawDefs) {
		if err := remarshal(rawDefs, &defs); err != nil {
			return fail(vErr("Mediator validation failed: configDefs: Cast to Array failed for value %q at path \"configDefs\"", jsString(rawDefs)))
		}
		for _, d := range defs {
			if err := validateConfigDef(d); err != nil {
				return fail(err)
			}
		}
		if cfg, isMap := doc["config"].(map[string]any); isMap {
			if err := validateConfig(defs, cfg); err != nil {
				return fail(err)
			}
		}
	}
	urn := jsString(doc["urn"])

	s.mu.Lock()
	defer s.mu.Unlock()
	existing := s.findMediator(urn)
	if existing != nil {
		oldVer, ok := parseSemver(existing.Version)
		if !ok {
			return fail(fmt.Errorf("TypeError: Invalid Version: %s", existing.Version))
		}
		if !semverGreater(newVer, oldVer) {
			return http.StatusCreated, "" // §2.2 step 4: 201, nothing changed
		}
		if err := castMediator(doc, s.cfg.Version, false); err != nil {
			return fail(err)
		}
		// §2.2 step 3: existing non-null config values win for the
		// params of the new config; params only in the old are dropped.
		if newCfg, isMap := doc["config"].(map[string]any); isMap && existing.Config != nil {
			for p := range newCfg {
				if v, ok := existing.Config[p]; ok && v != nil {
					newCfg[p] = v
				}
			}
		}
		var cur map[string]any
		if err := remarshal(existing, &cur); err != nil {
			return fail(err)
		}
		for _, k := range mediatorKeys {
			if v, ok := doc[k]; ok {
				cur[k] = v
			}
		}
		var updated storedMediator
		if err := remarshal(cur, &updated); err != nil {
			return fail(vErr("Mediator validation failed: %v", err))
		}
		if c, present := doc["config"]; present {
			updated.Config, _ = c.(map[string]any)
			if updated.Config == nil && c != nil {
				updated.Config = existing.Config
			}
		}
		applyMediatorDefaults(&updated)
		*existing = updated // _configModifiedTS not bumped
		return http.StatusCreated, ""
	}
	if eps, _ := doc["endpoints"].([]any); len(eps) < 1 {
		return fail(vErr("At least 1 endpoint is required"))
	}
	if err := castMediator(doc, s.cfg.Version, true); err != nil {
		return fail(err)
	}
	clean := map[string]any{}
	for _, k := range mediatorKeys {
		if v, ok := doc[k]; ok {
			clean[k] = v
		}
	}
	var m storedMediator
	if err := remarshal(clean, &m); err != nil {
		return fail(vErr("Mediator validation failed: %v", err))
	}
	if len(m.Config) == 0 {
		m.Config = nil // Mongoose minimize drops an empty config on save
	}
	m.ID = s.newID()
	applyMediatorDefaults(&m)
	s.mediators = append(s.mediators, &m)
	return http.StatusCreated, ""
}

func applyMediatorDefaults(m *storedMediator) {
	for i := range m.Endpoints {
		routeDefaults(&m.Endpoints[i])
	}
	for i := range m.DefaultChannelConfig {
		channelDefaults(&m.DefaultChannelConfig[i])
	}
	if m.Endpoints == nil {
		m.Endpoints = []Route{}
	}
	if m.DefaultChannelConfig == nil {
		m.DefaultChannelConfig = []Channel{}
	}
	if m.ConfigDefs == nil {
		m.ConfigDefs = []configDef{}
	}
}

func routeDefaults(r *Route) {
	if r.Type == "" {
		r.Type = "http"
	}
	if r.Status == "" {
		r.Status = "enabled"
	}
}

func channelDefaults(c *Channel) {
	if c.Type == "" {
		c.Type = "http"
	}
	if c.AuthType == "" {
		c.AuthType = "private"
	}
	if c.Status == "" {
		c.Status = "enabled"
	}
	if c.Allow == nil {
		c.Allow = []string{}
	}
	if c.Routes == nil {
		c.Routes = []Route{}
	}
	for i := range c.Routes {
		routeDefaults(&c.Routes[i])
	}
}

func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// handleHeartbeat is POST /mediators/:urn/heartbeat (§3).
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request, urn string) {
	body := requestBody(r)
	s.mu.Lock()
	m := s.findMediator(urn)
	if m == nil {
		s.mu.Unlock()
		writeHandlerStatus(w, http.StatusNotFound)
		return
	}
	hb, _ := body.(map[string]any)
	rawUptime, present := hb["uptime"]
	if !present || rawUptime == nil {
		s.mu.Unlock()
		writeHandlerStatus(w, http.StatusBadRequest)
		return
	}
	uptime, castOK := toNumber(rawUptime)
	if !castOK {
		s.mu.Unlock()
		writeText(w, http.StatusInternalServerError, fmt.Sprintf(
			"Could not process mediator heartbeat (urn: %s): CastError: Cast to number failed for value \"%s\" at path \"_uptime\"", urn, jsString(rawUptime)))
		return
	}
	requested := hb["config"] == true
	modified := m.ConfigModifiedTS != nil && m.LastHeartbeat != nil && m.ConfigModifiedTS.After(*m.LastHeartbeat)
	push := modified || requested

	var respBody string
	var cfg map[string]any
	if push {
		if m.Config == nil {
			respBody = "OK" // Koa's status message for an undefined body (#548)
		} else {
			cfg = cloneJSON(m.Config)
			b, _ := json.Marshal(cfg)
			respBody = string(b)
		}
	}
	now := s.now()
	m.LastHeartbeat = &now
	m.Uptime = &uptime
	s.heartbeats[urn] = append(s.heartbeats[urn], Heartbeat{
		Time: now, Uptime: uptime, ConfigRequested: requested, ConfigPushed: push, Body: respBody,
	})
	if push {
		s.pushes[urn] = append(s.pushes[urn], ConfigPush{
			Time: now, Heartbeat: len(s.heartbeats[urn]) - 1, Requested: requested, Config: cfg,
		})
	}
	s.mu.Unlock()
	if cfg != nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(respBody)))
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, respBody)
		return
	}
	writeText(w, http.StatusOK, respBody)
}

func toNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case string:
		t := strings.TrimSpace(x)
		if t == "" {
			return 0, true
		}
		f, err := strconv.ParseFloat(t, 64)
		return f, err == nil
	}
	return 0, false
}

// handleSetConfig is PUT /mediators/:urn/config (§4).
func (s *Server) handleSetConfig(w http.ResponseWriter, r *http.Request, urn string) {
	body := requestBody(r)
	cfg, isMap := body.(map[string]any)
	if !isMap {
		writeText(w, http.StatusBadRequest, "openhimtest: config must be a JSON object")
		return
	}
	status, msg := s.setConfig(urn, cfg)
	if msg != "" {
		writeText(w, status, msg)
		return
	}
	writeHandlerStatus(w, status)
}

func (s *Server) setConfig(urn string, cfg map[string]any) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMediator(urn)
	if m == nil {
		return http.StatusNotFound, "No mediator found for this urn."
	}
	restoreMaskedPasswords(m.ConfigDefs, cfg, m.Config)
	if err := validateConfig(m.ConfigDefs, cfg); err != nil {
		var ve *validationError
		errors.As(err, &ve)
		return http.StatusBadRequest, ve.msg
	}
	now := s.now()
	m.Config = cfg
	m.ConfigModifiedTS = &now
	return http.StatusOK, ""
}

// handleLoadDefaultChannels is POST /mediators/:urn/channels (§2.2 step 5).
func (s *Server) handleLoadDefaultChannels(w http.ResponseWriter, r *http.Request, u *user, urn string) {
	body := requestBody(r)
	var names []string
	if arr, isArr := body.([]any); isArr {
		for _, n := range arr {
			names = append(names, jsString(n))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMediator(urn)
	if m == nil {
		writeText(w, http.StatusNotFound, "No mediator found for this urn.")
		return
	}
	toSave := m.DefaultChannelConfig
	if len(names) > 0 {
		toSave = nil
		for _, c := range m.DefaultChannelConfig {
			if slices.Contains(names, c.Name) {
				toSave = append(toSave, c)
			}
		}
		if len(toSave) < len(names) {
			writeText(w, http.StatusBadRequest, fmt.Sprintf("Could not load mediator default channel config, one or more channels in the request body not found in the mediator config (urn: %s)", urn))
			return
		}
	}
	var firstErr error
	for _, c := range toSave {
		c = cloneJSON(c)
		c.Extra = mergeExtra(c.Extra, map[string]any{"updatedBy": map[string]any{"name": u.email}})
		if err := s.saveChannel(c); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		writeText(w, http.StatusInternalServerError, fmt.Sprintf("Could not load mediator default channel config (urn: %s): %v", urn, firstErr))
		return
	}
	writeHandlerStatus(w, http.StatusCreated)
}

func mergeExtra(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// saveChannel is new Channel(c).save(): schema validation and the unique
// name index. s.mu must be held.
func (s *Server) saveChannel(c Channel) error {
	var doc map[string]any
	if err := remarshal(c, &doc); err != nil {
		return err
	}
	se := &schemaErrors{model: "Channel"}
	validateChannel(se, doc, "", s.cfg.Version)
	if err := se.err(); err != nil {
		return err
	}
	for _, e := range s.channels {
		if e.Name == c.Name {
			return fmt.Errorf("MongoError: E11000 duplicate key error collection: openhim.channels index: name_1 dup key: { : %q }", c.Name)
		}
	}
	channelDefaults(&c)
	c.ID = s.newID()
	s.channels = append(s.channels, &c)
	return nil
}

// channelVisible mirrors getUserViewableChannels: admins see all, others the
// channels whose txViewAcl names one of their groups.
func channelVisible(u *user, c *Channel) bool {
	if u.admin() {
		return true
	}
	for _, g := range u.groups {
		if slices.Contains(c.TxViewACL, g) {
			return true
		}
	}
	return false
}

func (s *Server) handleGetChannels(w http.ResponseWriter, u *user) {
	s.mu.Lock()
	out := []Channel{}
	for _, c := range s.channels {
		if channelVisible(u, c) {
			out = append(out, cloneJSON(*c))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetChannel(w http.ResponseWriter, u *user, id string) {
	id = jsUnescape(id)
	s.mu.Lock()
	var found *Channel
	for _, c := range s.channels {
		if c.ID == id {
			cp := cloneJSON(*c)
			found = &cp
		}
	}
	s.mu.Unlock()
	switch {
	case found == nil:
		writeText(w, http.StatusNotFound, fmt.Sprintf("We could not find a channel with Id:'%s'.", id))
	case !channelVisible(u, found):
		writeText(w, http.StatusForbidden, fmt.Sprintf("Access denied to channel with Id: '%s'.", id))
	default:
		writeJSON(w, http.StatusOK, found)
	}
}

func (s *Server) handleRemoveChannel(w http.ResponseWriter, u *user, id string) {
	if notAdmin(w, u, "removeChannel") {
		return
	}
	id = jsUnescape(id)
	s.mu.Lock()
	// api/channels.js, removeChannel: a channel with transactions is only
	// flagged status "deleted" (it stays listed); one without is removed.
	used := slices.ContainsFunc(s.txs, func(t *Transaction) bool { return t.ChannelID == id })
	if used {
		for _, c := range s.channels {
			if c.ID == id {
				c.Status = "deleted"
			}
		}
	} else {
		s.channels = slices.DeleteFunc(s.channels, func(c *Channel) bool { return c.ID == id })
	}
	s.mu.Unlock()
	writeText(w, http.StatusOK, "The channel was successfully deleted")
}

// handleUpdateChannel is PUT /channels/:id: the body's fields are set on
// the stored channel (channel.set), then core's checks and the schema run.
func (s *Server) handleUpdateChannel(w http.ResponseWriter, r *http.Request, u *user, id string) {
	if notAdmin(w, u, "updateChannel") {
		return
	}
	id = jsUnescape(id)
	body := requestBody(r)
	upd, _ := body.(map[string]any)
	if upd == nil {
		writeStatus(w, http.StatusBadRequest)
		return
	}
	delete(upd, "_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	var target *Channel
	for _, c := range s.channels {
		if c.ID == id {
			target = c
		}
	}
	if target == nil {
		// core's updateChannel (src/api/channels.js, v4.0.5 to v8.5.0)
		// calls ChannelModel.findById(id) and updatedChannel.set(...)
		// outside its try: the TypeError (or CastError) reaches Koa's
		// default error handler, which hides a 5xx error's message.
		writeText(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	var doc map[string]any
	if err := remarshal(target, &doc); err != nil {
		writeText(w, http.StatusInternalServerError, err.Error())
		return
	}
	for k, v := range upd {
		doc[k] = v
	}
	se := &schemaErrors{model: "Channel"}
	validateChannel(se, doc, "", s.cfg.Version)
	var c Channel
	if err := se.err(); err != nil || remarshal(doc, &c) != nil {
		writeText(w, http.StatusInternalServerError, fmt.Sprintf("Could not update channel by id: %s via the API: %v", id, err))
		return
	}
	if msg := s.channelRules(&c); msg != "" {
		writeText(w, http.StatusBadRequest, msg)
		return
	}
	// updateChannel checks the stored channel with the body set on it
	// (Mongoose has cast a numeric string by then).
	if !maxBodyDaysValid(doc, true) {
		writeText(w, http.StatusBadRequest, maxBodyAgeMessage)
		return
	}
	for _, e := range s.channels {
		if e.ID != id && e.Name == c.Name {
			writeText(w, http.StatusInternalServerError, fmt.Sprintf("Could not update channel by id: %s via the API: MongoError: E11000 duplicate key error collection: openhim.channels index: name_1 dup key: { : %q }", id, c.Name))
			return
		}
	}
	channelDefaults(&c)
	c.ID = id
	*target = c
	writeText(w, http.StatusOK, "The channel was successfully updated")
}

// handleAddChannel is POST /channels (core src/api/channels.js addChannel).
func (s *Server) handleAddChannel(w http.ResponseWriter, r *http.Request, u *user) {
	if notAdmin(w, u, "addChannel") {
		return
	}
	body := requestBody(r)
	doc, _ := body.(map[string]any)
	if doc == nil {
		writeStatus(w, http.StatusBadRequest) // a JSON array, not a channel
		return
	}
	// new ChannelModel(body) casts first (numeric strings to numbers);
	// schema errors are reported by save(), after addChannel's own checks.
	se := &schemaErrors{model: "Channel"}
	validateChannel(se, doc, "", s.cfg.Version)
	var c Channel
	if err := remarshal(doc, &c); err != nil {
		msg := fmt.Sprint(se.err())
		if se.err() == nil {
			msg = "ValidationError: " + err.Error()
		}
		writeText(w, http.StatusBadRequest, "Could not add channel via the API: "+msg)
		return
	}
	c.Extra = mergeExtra(c.Extra, map[string]any{"updatedBy": map[string]any{"name": u.email}})
	if msg := s.channelRules(&c); msg != "" {
		writeText(w, http.StatusBadRequest, msg)
		return
	}
	// addChannel checks the request body itself, uncast.
	if !maxBodyDaysValid(doc, false) {
		writeText(w, http.StatusBadRequest, maxBodyAgeMessage)
		return
	}
	s.mu.Lock()
	err := s.saveChannel(c)
	s.mu.Unlock()
	if err != nil {
		writeText(w, http.StatusBadRequest, "Could not add channel via the API: "+err.Error())
		return
	}
	writeText(w, http.StatusCreated, "Channel successfully created")
}

// maxBodyAgeMessage is core's MAX_BODY_AGE_MESSAGE (src/api/channels.js).
const maxBodyAgeMessage = "Channel property maxBodyAgeDays has to be a number that's valid and requestBody or responseBody must be true."

// maxBodyDaysValid is core's isMaxBodyDaysValid (src/api/channels.js,
// v4.0.5 to v8.5.0): no maxBodyAgeDays, or requestBody or responseBody
// truthy and a number with 0 < maxBodyAgeDays < 36500. cast applies
// Mongoose's Number cast of a numeric string first (updateChannel checks
// the Mongoose document; addChannel the raw body). POST
// /mediators/:urn/channels does not check it.
func maxBodyDaysValid(doc map[string]any, cast bool) bool {
	v := doc["maxBodyAgeDays"]
	if v == nil {
		return true
	}
	if !jsTruthy(doc["requestBody"]) && !jsTruthy(doc["responseBody"]) {
		return false
	}
	if str, ok := v.(string); ok && cast && strings.TrimSpace(str) != "" {
		v = jsNumber(str)
	}
	n, ok := v.(float64)
	return ok && n > 0 && n < 36500
}

// pathTransformRe is core's isPathValid test (unanchored).
var pathTransformRe = regexp.MustCompile(`s/.*/.*`)

// channelRules are addChannel's explicit checks before save().
func (s *Server) channelRules(c *Channel) string {
	for _, r := range c.Routes {
		if (r.Path != "" && r.PathTransform != "") || (r.PathTransform != "" && !validPathTransform(r.PathTransform)) {
			return "Channel cannot have both path and pathTransform. pathTransform must be of the form s/from/to[/g]"
		}
	}
	if c.Priority != 0 && c.Priority < 1 {
		return "Channel priority cannot be below 1 (= Highest priority)"
	}
	if len(c.Methods) > 0 {
		if c.Type != "" && !strings.Contains(strings.ToLower(c.Type), "http") {
			return "Channel method can't be defined if channel type is not http"
		}
		count := map[string]int{}
		var repeats []string
		for _, m := range c.Methods {
			count[m]++
			if count[m] == 2 {
				repeats = append(repeats, m)
			}
		}
		if len(repeats) > 0 {
			slices.Sort(repeats)
			return "Channel methods can't be repeated. Repeated methods are " + strings.Join(repeats, ", ")
		}
	}
	if c.Timeout < 0 || c.Timeout > 3600000 {
		return "Channel property timeoutSeconds has to be a number greater than 1 and less than an 3600"
	}
	primaries := 0
	for _, r := range c.Routes {
		if r.Primary && r.Status != "disabled" {
			primaries++
		}
	}
	if primaries == 0 {
		return "Channel must have a primary route"
	}
	if primaries > 1 {
		return "Channel cannot have a multiple primary routes"
	}
	return ""
}

func validPathTransform(t string) bool { return pathTransformRe.MatchString(t) }

// handleAddClient is POST /clients.
func (s *Server) handleAddClient(w http.ResponseWriter, r *http.Request, u *user) {
	if notAdmin(w, u, "addClient") {
		return
	}
	body := requestBody(r)
	var c RouterClient
	if remarshal(body, &c) != nil {
		writeStatus(w, http.StatusBadRequest) // a JSON array, not a client
		return
	}
	se := &schemaErrors{model: "Client"}
	if c.ClientID == "" {
		se.add("clientID", "Path `clientID` is required.")
	}
	if c.Name == "" {
		se.add("name", "Path `name` is required.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ClientID != "" {
		conflict := false
		for _, ch := range s.channels {
			conflict = conflict || slices.Contains(ch.Allow, c.ClientID)
		}
		for _, e := range s.clients {
			conflict = conflict || slices.Contains(e.Roles, c.ClientID)
		}
		if conflict {
			writeText(w, http.StatusConflict, fmt.Sprintf("A role name conflicts with clientID '%s'. A role name cannot be the same as a clientID.", c.ClientID))
			return
		}
		if s.cfg.Version >= Version7 {
			// api/clients.js, addClient (5.x and later): with a
			// clientID, clientData.roles.includes(clientID) runs before
			// validation; a missing roles throws (Koa answers 500).
			if c.Roles == nil {
				writeText(w, http.StatusInternalServerError, "Internal Server Error")
				return
			}
			if slices.Contains(c.Roles, c.ClientID) {
				writeText(w, http.StatusBadRequest, fmt.Sprintf("ClientID '%s' cannot be the same as a role name.", c.ClientID))
				return
			}
		}
	}
	// core answers 400 with the bare error message here (no prefix).
	if msg := se.message(); msg != "" {
		writeText(w, http.StatusBadRequest, msg)
		return
	}
	for _, e := range s.clients {
		if e.ClientID == c.ClientID {
			writeText(w, http.StatusBadRequest, fmt.Sprintf("E11000 duplicate key error collection: openhim.clients index: clientID_1 dup key: { : %q }", c.ClientID))
			return
		}
	}
	c.ID = s.newID()
	s.clients = append(s.clients, &c)
	writeText(w, http.StatusCreated, "Client successfully created")
}

func (s *Server) handleGetClients(w http.ResponseWriter, u *user) {
	if notAdmin(w, u, "getClients") {
		return
	}
	s.mu.Lock()
	out := []RouterClient{}
	for _, c := range s.clients {
		cp := *c
		cp.PasswordHash, cp.PasswordSalt = "", ""
		out = append(out, cp)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}
