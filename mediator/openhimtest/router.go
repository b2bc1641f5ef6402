package openhimtest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"html"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// writeRawBody answers a request the router refuses (401, 404) as core
// does: src/koaMiddleware.js rawBodyReader has set ctx.body to the
// request's raw body (a Buffer, truthy even when empty) before
// authorisation.js authorise only sets the status, so Koa sends the
// request's own body back as application/octet-stream (empty for a request
// without a body).
func writeRawBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Router limits.
const (
	maxRouterBody       = 50 << 20
	defaultRouteTimeout = 60 * time.Second // router.timeout
	internalErrorBody   = "An internal server error occurred"
	openhimContentType  = "application/json+openhim"
	transactionIDHeader = "X-OpenHIM-TransactionID"
	clientIDHeader      = "X-OpenHIM-ClientID"
)

// serveRouter is the HTTP router (core's port 5001): client authentication,
// channel matching and authorisation, a transaction per authorised request,
// forwarding to the primary route, and parsing of application/json+openhim
// answers (§5).
func (s *Server) serveRouter(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRouterBody))
	if err != nil {
		writeStatus(w, http.StatusRequestEntityTooLarge)
		return
	}
	client := s.authenticateRouterClient(r)
	// requestMatching picks the first enabled channel (priority order)
	// whose urlPattern and matchContentTypes match; authorisation then
	// answers 401 unless that channel is public or allows the client.
	ch := s.matchChannel(r, body)
	if ch == nil && s.cfg.Version >= Version7 {
		// authorisation.js, authorise: "Channel not found" is a 404
		// since 7.0.1 (4.x answers 401); like the 401 it stores no
		// transaction (messageStore runs after authorisation).
		writeRawBody(w, http.StatusNotFound, body)
		return
	}
	if ch == nil || !authorised(ch, client, remoteIP(r)) {
		w.Header().Set("WWW-Authenticate", "Basic")
		writeRawBody(w, http.StatusUnauthorized, body)
		return
	}
	// basicAuthentication and proxy middleware, before the transaction is
	// stored: core sets these keys with this exact case on Node's
	// lower-cased header object, so a client's own x-forwarded-for stays
	// beside core's X-Forwarded-For (both are forwarded).
	coreHeaders := [][2]string{}
	if client != nil {
		coreHeaders = append(coreHeaders, [2]string{clientIDHeader, client.ClientID})
	}
	coreHeaders = append(coreHeaders, [2]string{"X-Forwarded-For", remoteIP(r)}, [2]string{"X-Forwarded-Host", r.Host})
	stored := headerMap(r.Header, true)
	stored["host"] = r.Host
	for _, kv := range coreHeaders {
		stored[kv[0]] = kv[1]
		r.Header.Add(kv[0], kv[1])
	}

	start := s.now()
	// storeTransaction: Pending Async on an isAsynchronousProcess channel
	// (8.3.0 and later), Processing otherwise.
	async := s.asyncRouting && ch.IsAsynchronousProcess
	initial := "Processing"
	if async {
		initial = "Pending Async"
	}
	tx := &Transaction{
		ID:        s.newID(),
		ChannelID: ch.ID,
		ClientIP:  remoteIP(r),
		Status:    initial,
		CanRerun:  true,
		Request: &RequestDef{
			Host:        hostOnly(r.Host),
			Port:        portOf(r.Host),
			Path:        r.URL.Path,
			Headers:     stored,
			Querystring: r.URL.RawQuery,
			Body:        string(body),
			Method:      r.Method,
			Timestamp:   &start,
		},
	}
	if client != nil {
		tx.ClientID = client.ID
	}
	// storeTransaction: a channel with requestBody false stores the
	// request without its body.
	if bodyOff(ch.Extra["requestBody"]) || len(body) == 0 {
		tx.Request.Body = ""
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			tx.CanRerun = false
		}
	}
	var bodiesSize int // ctx.totalBodyLength
	if enforceMaxBodiesSize(&bodiesSize, &tx.Request.Body, false) {
		tx.CanRerun = false
	}
	s.mu.Lock()
	if m := s.cfg.MaxTransactions; m > 0 && len(s.txs) >= m {
		// Forget the older half at once: amortised O(1) per request.
		n := copy(s.txs, s.txs[len(s.txs)-m/2:])
		clear(s.txs[n:])
		s.txs = s.txs[:n]
	}
	s.txs = append(s.txs, tx)
	s.mu.Unlock()

	if len(ch.Methods) > 0 && !slices.Contains(ch.Methods, strings.ToUpper(r.Method)) {
		// Only reached on 4.x (from 7.0.1 matchChannel filters on the
		// method). router.isMethodAllowed: 405 with a text body; core never calls
		// setFinalStatus on this path, so the transaction stays Processing.
		msg := fmt.Sprintf("Request with method %s is not allowed. Only %s methods are allowed", r.Method, strings.Join(ch.Methods, ", "))
		now := s.now()
		s.mu.Lock()
		tx.Response = &ResponseDef{Status: http.StatusMethodNotAllowed, Headers: map[string]string{}, Body: msg, Timestamp: &now}
		s.mu.Unlock()
		writeText(w, http.StatusMethodNotAllowed, msg)
		return
	}

	res := s.forward(r, body, ch, tx.ID, start)
	if bodyOff(ch.Extra["responseBody"]) {
		// storeResponse and storeNonPrimaryResponse: a channel with
		// responseBody false stores the responses without their bodies
		// (orchestrations keep theirs).
		res.storedBody = ""
		for i := range res.secondary {
			if rr := res.secondary[i].Response; rr != nil {
				rr.Body = ""
			}
		}
	}

	s.mu.Lock()
	s.finishTransaction(tx, res, bodiesSize)
	s.mu.Unlock()

	for k, vs := range res.clientHeader {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	switch res.clientStatus {
	case http.StatusNoContent, http.StatusResetContent, http.StatusNotModified:
		// Koa's respond (lib/application.js) sets a null body for these
		// statuses, which removes Content-Type and Content-Length, after
		// core stored the response.
		w.Header().Del("Content-Type")
		w.WriteHeader(res.clientStatus)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(res.clientBody)))
	w.WriteHeader(res.clientStatus)
	if r.Method != http.MethodHead {
		_, _ = w.Write(res.clientBody)
	}
}

// Core's limit on the bodies one transaction stores: MAX_BODIES_SIZE
// (api.maxBodiesSizeMB, 15 by default) and api.truncateAppend.
const (
	maxBodiesSize  = 15 << 20
	truncateAppend = "\n[truncated ...]"
)

// enforceMaxBodiesSize is core's utils.js enforceMaxBodiesSize: it adds
// the UTF-8 length of *body to *total, and when that goes over
// MAX_BODIES_SIZE cuts *body to what was left less the length of
// truncateAppend and appends it (or leaves only truncateAppend), counting
// what was left. It reports whether it cut. A string is cut with
// JavaScript's slice, in UTF-16 code units; a Buffer (buf) by bytes.
func enforceMaxBodiesSize(total *int, body *string, buf bool) bool {
	n := len(*body)
	if *total+n <= maxBodiesSize {
		*total += n
		return false
	}
	n = max(0, maxBodiesSize-*total)
	if n > len(truncateAppend) {
		if buf {
			*body = strings.ToValidUTF8((*body)[:n-len(truncateAppend)], "\uFFFD") + truncateAppend
		} else {
			*body = jsSlice(*body, n-len(truncateAppend)) + truncateAppend
		}
	} else {
		*body = truncateAppend
	}
	*total += n
	return true
}

// jsSlice is JavaScript's s.slice(0, n): the first n UTF-16 code units. A
// surrogate pair it splits leaves a lone surrogate, stored as U+FFFD.
func jsSlice(s string, n int) string {
	units := 0
	for i, r := range s {
		w := 1
		if r >= 0x10000 {
			w = 2
		}
		if units+w > n {
			if units < n {
				return s[:i] + "\uFFFD"
			}
			return s[:i]
		}
		units += w
	}
	return s
}

// bodyOff reports whether a channel's requestBody or responseBody is
// false as core tests it (=== false, after Mongoose cast the stored value
// to a Boolean).
func bodyOff(v any) bool {
	switch x := v.(type) {
	case bool:
		return !x
	case string:
		return x == "false" || x == "0"
	case float64:
		return x == 0
	}
	return false
}

// routeResult is what forwarding produced.
type routeResult struct {
	clientStatus int
	clientHeader http.Header
	clientBody   []byte

	err           error          // primary route failure (handleServerError)
	mediator      map[string]any // parsed json+openhim body (ctx.mediatorResponse)
	coreOrch      Orchestration  // core's own orchestration for the primary route
	storedBody    string         // ctx.response.body.toString()
	respTimestamp *time.Time     // ctx.response.timestamp
	secondary     []RouteMetadata
}

func (s *Server) authenticateRouterClient(r *http.Request) *RouterClient {
	id, pw, ok := r.BasicAuth()
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		if c.ClientID != id {
			continue
		}
		var h hash.Hash
		switch strings.ToLower(c.PasswordAlgorithm) {
		case "sha512", "":
			h = sha512.New()
		case "sha256":
			h = sha256.New()
		case "sha1":
			h = sha1.New()
		case "md5":
			h = md5.New()
		default:
			return nil
		}
		h.Write([]byte(pw + c.PasswordSalt)) // cryptoCompare: update(pass), update(salt)
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(h.Sum(nil))), []byte(strings.ToLower(c.PasswordHash))) == 1 {
			cp := *c
			return &cp
		}
		return nil
	}
	return nil
}

// matchChannel returns the first enabled channel, in priority order, whose
// urlPattern (an unanchored regexp tested against the path) and
// matchContentTypes match, as core's requestMatching does. From 7.0.1 the
// method must be one of the channel's methods too (requestMatching.js,
// matchMethod: channel.methods.find(...), so a channel without methods
// matches nothing). Authorisation is checked afterwards on that channel
// only.
func (s *Server) matchChannel(r *http.Request, body []byte) *Channel {
	s.mu.Lock()
	channels := make([]Channel, 0, len(s.channels))
	for _, c := range s.channels {
		channels = append(channels, cloneJSON(*c))
	}
	s.mu.Unlock()
	slices.SortStableFunc(channels, func(a, b Channel) int {
		pa, pb := a.Priority, b.Priority
		if pa == 0 {
			pa = 1 << 30
		}
		if pb == 0 {
			pb = 1 << 30
		}
		return pa - pb
	})
	ct := strings.TrimSpace(strings.SplitN(r.Header.Get("Content-Type"), ";", 2)[0])
	for i := range channels {
		c := &channels[i]
		if c.Status != "" && c.Status != "enabled" {
			continue
		}
		re, err := regexp.Compile(c.URLPattern)
		if err != nil || !re.MatchString(r.URL.Path) {
			continue
		}
		if len(c.MatchContentTypes) > 0 && (ct == "" || !slices.Contains(c.MatchContentTypes, ct)) {
			continue
		}
		if !matchContent(c, body) {
			continue
		}
		if s.cfg.Version >= Version7 && !slices.Contains(c.Methods, strings.ToUpper(r.Method)) {
			continue
		}
		return c
	}
	return nil
}

// matchContent is core's requestMatching.js matchContent (every version):
// matchContentRegex tested against the raw body (unanchored); else
// matchContentJson with matchContentValue (matchJsonPath: the value at the
// dotted path, as a string, equals the value); else a channel with only a
// match expression matches nothing; else any body matches.
// matchContentXpath is not modelled: such a channel matches nothing. Where
// core would throw (an invalid regexp, a body that is not JSON, a missing
// value), the fake does not match.
func matchContent(c *Channel, body []byte) bool {
	regex, _ := c.Extra["matchContentRegex"].(string)
	xpath, _ := c.Extra["matchContentXpath"].(string)
	jsonPath, _ := c.Extra["matchContentJson"].(string)
	value, _ := c.Extra["matchContentValue"].(string)
	switch {
	case regex != "":
		re, err := regexp.Compile(regex)
		return err == nil && re.Match(body)
	case xpath != "" && value != "":
		return false
	case jsonPath != "" && value != "":
		var doc any
		if json.Unmarshal(body, &doc) != nil {
			return false
		}
		v, ok := jsonPathValue(doc, jsonPath)
		return ok && v != nil && jsString(v) == value
	case xpath != "" || jsonPath != "":
		return false
	}
	return true
}

var jsonIndexRe = regexp.MustCompile(`\[(\w+)\]`)

// jsonPathValue is core's getJSONValByString: "[i]" becomes ".i", a
// leading dot is dropped, and each part must be a key of the object (or an
// index of the array) reached so far.
func jsonPathValue(doc any, path string) (any, bool) {
	path = strings.TrimPrefix(jsonIndexRe.ReplaceAllString(path, ".$1"), ".")
	for _, part := range strings.Split(path, ".") {
		switch x := doc.(type) {
		case map[string]any:
			v, ok := x[part]
			if !ok {
				return nil, false
			}
			doc = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) || strconv.Itoa(i) != part {
				return nil, false
			}
			doc = x[i]
		default:
			return nil, false
		}
	}
	return doc, true
}

// authorised mirrors core's authorise: IP whitelist, then authType public
// or the client's clientID or one of its roles in allow.
func authorised(c *Channel, client *RouterClient, ip string) bool {
	if len(c.Whitelist) > 0 && !slices.Contains(c.Whitelist, ip) {
		return false
	}
	return c.AuthType == "public" || clientAllowed(c, client)
}

func clientAllowed(c *Channel, client *RouterClient) bool {
	if client == nil {
		return false
	}
	if slices.Contains(c.Allow, client.ClientID) {
		return true
	}
	for _, role := range client.Roles {
		if slices.Contains(c.Allow, role) {
			return true
		}
	}
	return false
}

// sent is the outcome of one request to a route.
type sent struct {
	orch   Orchestration // core's orchestration of the route
	status int
	header http.Header
	body   []byte
	recvAt time.Time
	err    error
}

// sendRoute sends the request to one route as core's sendHttpRequest does
// (§5.5): path from route.path, pathTransform or the request; the query
// string; the body only for POST and PUT (and PATCH from 8.4.2); the
// client's headers without Host and (unless forwardAuthHeader)
// Authorization, plus X-OpenHIM-TransactionID; basic auth from the route;
// https when secured; timeout channel.timeout ?? 60 s.
func (s *Server) sendRoute(r *http.Request, body []byte, ch *Channel, route *Route, txID string, reqTime time.Time) sent {
	scheme := "http"
	if route.Secured {
		scheme = "https"
	}
	path := r.URL.Path
	switch {
	case route.Path != "":
		path = route.Path
	case route.PathTransform != "":
		path = transformPath(path, route.PathTransform)
	}
	target := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(route.Host, strconv.Itoa(route.Port)), path)
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	// router.js copies channel.timeout onto each route; routes have no
	// timeout of their own.
	timeout := defaultRouteTimeout
	if ch.Timeout > 0 {
		timeout = time.Duration(ch.Timeout) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	var reqBody io.Reader
	// router.js sendHttpRequest writes the body for POST and PUT only up
	// to 8.4.0; 8.4.2 and later also for PATCH.
	sendBody := r.Method == http.MethodPost || r.Method == http.MethodPut ||
		(s.patchBodies && r.Method == http.MethodPatch)
	if sendBody {
		reqBody = bytes.NewReader(body)
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, target, reqBody)
	if err != nil {
		return sent{err: err}
	}
	if sendBody && r.ContentLength < 0 {
		// constructOptionsObject forwards the client's headers, its
		// Transfer-Encoding: chunked among them, and node's http.request
		// then sends the body chunked, without a Content-Length.
		out.ContentLength = -1
	}
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "host" || (lk == "authorization" && !route.ForwardAuthHeader) {
			continue
		}
		out.Header[k] = slices.Clone(vs)
	}
	out.Header.Set(transactionIDHeader, txID)
	// router.js sets options.auth only when the route has both a username
	// and a password, and node's http client sends it only when the
	// request has no authorization header: a forwarded one wins.
	if route.Username != "" && route.Password != "" && out.Header.Get("Authorization") == "" {
		out.SetBasicAuth(route.Username, route.Password)
	}
	// core's buildOrchestration: options.path already carries the query
	// string, and the timestamp is the transaction's request timestamp.
	orchPath := path
	if r.URL.RawQuery != "" {
		orchPath += "?" + r.URL.RawQuery
	}
	res := sent{orch: Orchestration{
		Name: route.Name,
		Request: &RequestDef{
			Host:      route.Host,
			Port:      strconv.Itoa(route.Port),
			Path:      orchPath,
			Headers:   headerMap(out.Header, false),
			Method:    r.Method,
			Timestamp: &reqTime,
		},
	}}
	// buildOrchestration records ctx.body, the request's raw body, for
	// every method, whether or not sendHttpRequest sent it.
	res.orch.Request.Body = string(body)
	resp, err := s.routeClient.Do(out)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("Request took longer than %dms", timeout.Milliseconds())
		}
		res.err = err
		res.orch.Error = &ErrorDef{Message: err.Error()}
		return res
	}
	defer resp.Body.Close()
	rb, err := decodeBody(resp)
	if err != nil {
		res.err = err
		res.orch.Error = &ErrorDef{Message: err.Error()}
		return res
	}
	res.recvAt = s.now()
	res.status, res.header, res.body = resp.StatusCode, resp.Header, rb
	res.orch.Response = &ResponseDef{
		Status:    resp.StatusCode,
		Headers:   headerMap(resp.Header, false),
		Body:      string(rb),
		Timestamp: &res.recvAt,
	}
	return res
}

// forward sends the request to the channel's enabled routes: the primary
// one decides the client's answer (§5.1–§5.2), the others are recorded in
// the transaction's routes.
func (s *Server) forward(r *http.Request, body []byte, ch *Channel, txID string, reqTime time.Time) routeResult {
	var primary *Route
	n := 0
	for i := range ch.Routes {
		rt := &ch.Routes[i]
		if rt.Primary && rt.Status != "disabled" {
			n++
			primary = rt
		}
	}
	if n > 1 {
		return s.failResult(errors.New("Cannot route transaction: Channel contains multiple primary routes and only one primary is allowed"), sent{})
	}
	var res routeResult
	if primary == nil {
		// No primary: core answers with whatever Koa has, a 404.
		res = routeResult{clientStatus: http.StatusNotFound, clientHeader: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			clientBody: []byte("Not Found"), storedBody: "Not Found"}
	} else {
		res = s.primaryResult(s.sendRoute(r, body, ch, primary, txID, reqTime), txID, r.Header.Get("Accept"))
		if s.asyncRouting && ch.IsAsynchronousProcess && res.err == nil && res.clientStatus < 400 {
			res.clientStatus = http.StatusAccepted
		}
	}
	// Core 8's sendRequestToRoutes runs the routes with
	// waitPrimaryResponse after the others, and each only when
	// matchCodeOfPrimaryResponse accepts the status of the answer
	// (ctx.response.status); earlier cores have neither field.
	var after []*Route
	for i := range ch.Routes {
		rt := &ch.Routes[i]
		if rt.Primary || rt.Status == "disabled" {
			continue
		}
		if s.cfg.Version >= Version8 && rt.WaitPrimaryResponse {
			after = append(after, rt)
			continue
		}
		res.secondary = append(res.secondary, s.secondaryResult(s.sendRoute(r, body, ch, rt, txID, reqTime), rt, reqTime))
	}
	for _, rt := range after {
		if matchCodeOfPrimaryResponse(rt.StatusCodesCheck, res.clientStatus) {
			res.secondary = append(res.secondary, s.secondaryResult(s.sendRoute(r, body, ch, rt, txID, reqTime), rt, reqTime))
		}
	}
	return res
}

// matchCodeOfPrimaryResponse is core 8's (src/middleware/router.js): no
// statusCodesCheck accepts any status; otherwise the comma-separated codes
// are tried in order, a number equal to the status accepts it, and the
// first code with a '*' decides alone, by comparing its first character
// with the status's first digit ("5**" accepts 500-599; a later code is
// never reached).
func matchCodeOfPrimaryResponse(check string, status int) bool {
	if check == "" {
		return true
	}
	st := strconv.Itoa(status)
	for _, code := range strings.Split(check, ",") {
		if n := jsNumber(code); !math.IsNaN(n) && n == float64(status) {
			return true
		}
		if strings.Contains(code, "*") {
			return st[0] == code[0]
		}
	}
	return false
}

// primaryResult interprets the primary route's answer.
func (s *Server) primaryResult(sr sent, txID, accept string) routeResult {
	if sr.err != nil {
		return s.failResult(sr.err, sr)
	}
	res := routeResult{coreOrch: sr.orch}
	if strings.Contains(sr.header.Get("Content-Type"), openhimContentType) {
		var m map[string]any
		if err := json.Unmarshal(sr.body, &m); err != nil {
			return s.failResult(fmt.Errorf("SyntaxError: %v", err), sr)
		}
		mr, ok := m["response"].(map[string]any)
		if !ok {
			res := s.failResult(errors.New("TypeError: Cannot read property 'status' of undefined"), sr)
			res.mediator = m // ctx.mediatorResponse was already set
			return res
		}
		res.mediator = m
		if ts, ok := parseDateValue(mr["timestamp"]); ok {
			res.respTimestamp = &ts
		}
		var hs map[string]any
		if h, ok := mr["headers"].(map[string]any); ok {
			hs = h
		}
		code, err := s.koaStatus(mr["status"])
		if err != nil {
			// Koa's status setter throws; sendRequestToRoutes' catch
			// calls handleServerError.
			res := s.failResult(err, sr)
			res.mediator = m
			return res
		}
		if err := s.setKoaResponse(&res, code, mr["body"], hs, mr["headers"] != nil, txID, accept); err != nil {
			res := s.failResult(err, sr)
			res.mediator = m // ctx.mediatorResponse was already set
			return res
		}
		return res
	}
	if !s.validFinalStatus(sr.status) {
		return s.failResult(fmt.Errorf("invalid status code: %d", sr.status), sr)
	}
	recv := sr.recvAt
	res.respTimestamp = &recv
	hs := map[string]any{}
	for k, vs := range sr.header {
		if strings.EqualFold(k, "Set-Cookie") { // Node keeps set-cookie as an array
			cookies := make([]any, len(vs))
			for i, c := range vs {
				cookies[i] = c
			}
			hs["set-cookie"] = cookies
			continue
		}
		hs[strings.ToLower(k)] = strings.Join(vs, ", ")
	}
	if err := s.setKoaResponse(&res, sr.status, string(sr.body), hs, true, txID, accept); err != nil {
		return s.failResult(err, sr)
	}
	return res
}

// secondaryResult builds a routes[] entry as buildNonPrimarySendRequestPromise
// does: a json+openhim answer contributes its response, orchestrations,
// properties and x-mediator-urn; its status and error are ignored.
func (s *Server) secondaryResult(sr sent, rt *Route, reqTime time.Time) RouteMetadata {
	req := *sr.orch.Request
	req.Path = strings.SplitN(req.Path, "?", 2)[0]
	req.Body = ""
	req.Querystring = ""
	if i := strings.Index(sr.orch.Request.Path, "?"); i >= 0 {
		req.Querystring = sr.orch.Request.Path[i+1:]
	}
	rm := RouteMetadata{Name: rt.Name, Request: &req}
	// The catch of buildNonPrimarySendRequestPromise (handleServerError):
	// the route gets an error, and storeNonPrimaryResponse status 500.
	failed := func(err error) RouteMetadata {
		rm.Error = &ErrorDef{Message: err.Error()}
		rm.Response = &ResponseDef{Status: http.StatusInternalServerError, Timestamp: &reqTime}
		return rm
	}
	if sr.err != nil {
		return failed(sr.err)
	}
	recv := sr.recvAt
	if strings.Contains(sr.header.Get("Content-Type"), openhimContentType) {
		var v any
		if err := json.Unmarshal(sr.body, &v); err != nil {
			return failed(fmt.Errorf("SyntaxError: %v", err)) // JSON.parse throws
		}
		if v == nil {
			return failed(errors.New("TypeError: Cannot read property 'x-mediator-urn' of null"))
		}
		m, _ := v.(map[string]any) // another JSON value has none of the fields
		if urn, ok := m["x-mediator-urn"]; ok {
			rm.MediatorURN = jsString(urn)
		}
		for _, o := range asSlice(m["orchestrations"]) {
			var parsed Orchestration
			om, _ := o.(map[string]any)
			if remarshal(castOrchestration(om), &parsed) == nil {
				rm.Orchestrations = append(rm.Orchestrations, parsed)
			}
		}
		rm.Properties, _ = m["properties"].(map[string]any)
		if mr, ok := m["response"].(map[string]any); ok {
			var resp ResponseDef
			if remarshal(castOrchestration(map[string]any{"response": mr})["response"], &resp) == nil {
				rm.Response = &resp
			}
		}
		if rm.Response == nil {
			// storeNonPrimaryResponse's default for a route without a
			// response.
			rm.Response = &ResponseDef{Status: http.StatusInternalServerError, Timestamp: &reqTime}
		}
		return rm
	}
	rm.Response = &ResponseDef{Status: sr.status, Headers: headerMap(sr.header, false), Body: string(sr.body), Timestamp: &recv}
	rm.rawBody = true
	return rm
}

func asSlice(v any) []any {
	a, _ := v.([]any)
	return a
}

// validFinalStatus is Koa's status setter (lib/response.js): koa 2.3.0
// (core 4.0.5) wants a code the statuses module lists; koa 2.13/2.15
// (core 7.1, 8.x) any integer from 100 to 999. 1xx codes are refused on
// every version (they cannot be a final response).
func (s *Server) validFinalStatus(code int) bool {
	if s.cfg.Version >= Version7 {
		return code >= 200 && code <= 999
	}
	// statuses 1.3.1 (codes.json) lists every code Go has a text for,
	// and 306 and 509.
	return code >= 200 && (http.StatusText(code) != "" || code == 306 || code == 509)
}

// koaStatus is the envelope's response.status as core's setKoaResponse
// (src/middleware/router.js) assigns it to ctx.response.status: a string
// is parseInt-ed only when !isNaN(status) (so "200abc" stays a string and
// "" becomes NaN); anything that is not then an integer Koa accepts
// (missing, null, a boolean, 200.5, an unlisted code on 4.0.5) makes Koa's
// status setter throw.
func (s *Server) koaStatus(v any) (int, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		if math.IsNaN(jsNumber(x)) {
			return 0, fmt.Errorf("AssertionError: status code must be a number")
		}
		n, ok := jsParseInt(x)
		if !ok {
			return 0, fmt.Errorf("AssertionError: invalid status code: NaN")
		}
		f = n
	default:
		return 0, fmt.Errorf("AssertionError: status code must be a number")
	}
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("AssertionError: invalid status code: %v", f)
	}
	code := int(f)
	if f < 0 || f > 1e4 || !s.validFinalStatus(code) {
		return 0, fmt.Errorf("AssertionError: invalid status code: %v", f)
	}
	return code, nil
}

// jsNumber is JavaScript's Number(string) for the forms a status takes:
// surrounding whitespace is ignored, "" is 0, decimal, exponent and
// 0x/0o/0b forms parse; anything else is NaN.
func jsNumber(s string) float64 {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0
	}
	if len(t) > 2 && t[0] == '0' {
		base := 0
		switch t[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			if n, err := strconv.ParseUint(t[2:], base, 64); err == nil {
				return float64(n)
			}
			return math.NaN()
		}
	}
	switch t {
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if strings.ContainsAny(t, "xXpP_") {
		return math.NaN()
	}
	switch strings.ToLower(strings.TrimLeft(t, "+-")) {
	case "inf", "infinity", "nan": // not JavaScript number syntax in these spellings
		return math.NaN()
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// jsParseInt is parseInt(s, 10): leading whitespace, an optional sign, then
// the decimal digits up to the first other character; none is NaN.
func jsParseInt(s string) (float64, bool) {
	t := strings.TrimLeft(s, " \t\n\r\v\f")
	neg := false
	if t != "" && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	end := 0
	for end < len(t) && t[end] >= '0' && t[end] <= '9' {
		end++
	}
	if end == 0 {
		return 0, false
	}
	f, _ := strconv.ParseFloat(t[:end], 64)
	if neg {
		f = -f
	}
	return f, true
}

// setKoaResponse mirrors core's setKoaResponse plus Koa's body handling: a
// string body is sent as is (text/plain, or text/html when it starts with
// '<'); an object or number body is sent as JSON but stored with
// toString() ("[object Object]"); a missing or null body makes the answer
// a 204 without a body. X-OpenHIM-TransactionID is added when headers are
// non-null; content-length, content-encoding and transfer-encoding are
// dropped. A content-type goes through Koa's type setter (koaType); a
// location on a 3xx answer through Koa's redirect (koaRedirect).
func (s *Server) setKoaResponse(res *routeResult, status int, body any, headers map[string]any, hasHeaders bool, txID, accept string) error {
	res.clientStatus = status
	res.clientHeader = http.Header{}
	switch b := body.(type) {
	case nil:
		// Koa's body setter (lib/response.js, koa 2.3.0 and 2.15.0): a
		// null or undefined body makes the status 204 unless it is
		// already one without a body, and removes Content-Type.
		if status != http.StatusNoContent && status != http.StatusResetContent && status != http.StatusNotModified {
			res.clientStatus = http.StatusNoContent
		}
		res.clientBody = nil
		res.storedBody = ""
	case string:
		res.clientBody = []byte(b)
		res.storedBody = b
		if strings.HasPrefix(strings.TrimSpace(b), "<") {
			res.clientHeader.Set("Content-Type", "text/html; charset=utf-8")
		} else {
			res.clientHeader.Set("Content-Type", "text/plain; charset=utf-8")
		}
	default:
		j, _ := json.Marshal(b)
		res.clientBody = j
		res.storedBody = jsString(b)
		res.clientHeader.Set("Content-Type", "application/json; charset=utf-8")
	}
	if hasHeaders {
		if headers == nil {
			headers = map[string]any{}
		}
		headers[transactionIDHeader] = txID
	}
	for _, k := range sortedKeys(headers) {
		v := headers[k]
		switch strings.ToLower(k) {
		case "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive":
			continue
		case "set-cookie":
			// setCookiesOnContext walks the value as an array. A string is
			// walked character by character: "=" parses (cookie 0.3.1) to
			// a cookie with an empty name, which koa's cookies.set refuses
			// with a TypeError, caught by handleServerError.
			switch c := v.(type) {
			case []any:
				for _, c := range c {
					cookies, err := koaCookies(jsString(c), s.now())
					if err != nil {
						return err
					}
					for _, h := range cookies {
						res.clientHeader.Add("Set-Cookie", h)
					}
				}
			case string:
				if strings.Contains(c, "=") {
					return errors.New("TypeError: argument name is invalid")
				}
			}
			continue
		case "content-type":
			if t := s.koaType(v); t != "" {
				res.clientHeader.Set("Content-Type", t)
			} else {
				res.clientHeader.Del("Content-Type")
			}
			continue
		case "location":
			if status >= 300 && status < 400 {
				koaRedirect(res, jsString(v), accept)
				continue
			}
		}
		res.clientHeader.Set(k, jsString(v))
	}
	return nil
}

// koaRedirect is Koa's response.redirect (lib/response.js, koa 2.3.0 and
// 2.15.0), which core's setKoaResponse calls for a location header on a
// 3xx answer: Location is set, a status that is not a redirect status
// (304, 306) becomes 302, and the body is replaced - HTML when the client
// accepts html (a request without Accept does), text otherwise. Core
// stores that body (messageStore.js storeResponse reads ctx.response.body).
// cookiePairs splits a cookie string as cookie 0.3.1's pairSplitRegExp.
var cookiePairs = regexp.MustCompile(`; *`)

// cookieName is what the cookies module accepts as a cookie name
// (fieldContentRegExp, less its RESTRICTED_NAME_CHARS_REGEXP).
var cookieName = regexp.MustCompile(`^[\x21\x23-\x2b\x2d-\x3a\x3c\x3e-\x5a\x5c-\x7e\x80-\xff]+$`)

// koaCookies is the Set-Cookie headers core sends for one cookie string of
// a set-cookie array, as setCookiesOnContext makes them: cookie 0.3.1
// parse splits it on ";" into name=value pairs (a pair without "=", such as
// a bare HttpOnly or Secure, is dropped); path, domain, expires, max-age,
// httponly, secure, signed and overwrite become options (path and httpOnly
// default to false) and every other pair a cookie, which koa's cookies
// module writes as "name=value" then "; path=", "; expires=" (max-age
// milliseconds after now, the module's maxage; the epoch for an empty
// value), "; domain=" and "; httponly". A secure or signed option throws
// (the router is plain HTTP and has no keys), as does an invalid name:
// errors core's handleServerError catches.
func koaCookies(raw string, now time.Time) ([]string, error) {
	var path, domain, expires string
	httpOnly := false
	type pair struct{ k, v string }
	var vals []pair
	seen := map[string]bool{}
	for _, p := range cookiePairs.Split(raw, -1) {
		eq := strings.IndexByte(p, '=')
		if eq < 0 {
			continue
		}
		k, v := strings.TrimSpace(p[:eq]), strings.TrimSpace(p[eq+1:])
		if len(v) >= 2 && v[0] == '"' {
			v = v[1 : len(v)-1]
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		switch strings.ToLower(k) {
		case "path":
			path = v
		case "domain":
			domain = v
		case "expires":
			if t, err := http.ParseTime(v); err == nil {
				expires = t.UTC().Format(http.TimeFormat)
			}
		case "max-age":
			if ms, err := strconv.Atoi(v); err == nil && ms != 0 {
				expires = now.Add(time.Duration(ms) * time.Millisecond).UTC().Format(http.TimeFormat)
			}
		case "httponly":
			httpOnly = v != ""
		case "secure":
			if v != "" {
				return nil, errors.New("Error: Cannot send secure cookie over unencrypted connection")
			}
		case "signed":
			if v != "" {
				return nil, errors.New("Error: .keys required for signed cookies")
			}
		case "overwrite":
		default:
			vals = append(vals, pair{k, v})
		}
	}
	out := make([]string, 0, len(vals))
	for _, c := range vals {
		if !cookieName.MatchString(c.k) {
			return nil, errors.New("TypeError: argument name is invalid")
		}
		h, exp := c.k+"="+c.v, expires
		if c.v == "" {
			exp = time.Unix(0, 0).UTC().Format(http.TimeFormat)
		}
		if path != "" {
			h += "; path=" + path
		}
		if exp != "" {
			h += "; expires=" + exp
		}
		if domain != "" {
			h += "; domain=" + domain
		}
		if httpOnly {
			h += "; httponly"
		}
		out = append(out, h)
	}
	return out, nil
}

func koaRedirect(res *routeResult, url, accept string) {
	res.clientHeader.Set("Location", url)
	switch res.clientStatus {
	case 300, 301, 302, 303, 305, 307, 308:
	default:
		res.clientStatus = http.StatusFound
	}
	var body string
	if acceptsHTML(accept) {
		e := html.EscapeString(url)
		body = `Redirecting to <a href="` + e + `">` + e + `</a>.`
		res.clientHeader.Set("Content-Type", "text/html; charset=utf-8")
	} else {
		body = "Redirecting to " + url + "."
		res.clientHeader.Set("Content-Type", "text/plain; charset=utf-8")
	}
	res.clientBody = []byte(body)
	res.storedBody = body
}

// acceptsHTML approximates Koa's ctx.accepts('html') (negotiator): no
// Accept header, or a text/html, text/* or */* range with q > 0.
func acceptsHTML(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		fields := strings.Split(part, ";")
		mt := strings.ToLower(strings.TrimSpace(fields[0]))
		if mt != "text/html" && mt != "text/*" && mt != "*/*" {
			continue
		}
		q := 1.0
		for _, p := range fields[1:] {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				q, _ = strconv.ParseFloat(v, 64)
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}

// koaType is Koa's response.type setter (lib/response.js) as core's
// setKoaResponse uses it for a content-type header: mime-types'
// contentType adds the charset mime-db gives the type (UTF-8 for
// application/json; for application/fhir+json only from mime-db 1.44,
// core 7.1) or UTF-8 for any text/* type, lower-cased, unless the value
// already names a charset. A value that is not a string, or not a type
// mime-types knows, removes the header ("" here).
func (s *Server) koaType(v any) string {
	str, ok := v.(string)
	if !ok || str == "" {
		return ""
	}
	mt := str
	if !strings.Contains(str, "/") {
		// mime-types' lookup by extension; the common ones only.
		mt = mimeExtensions[strings.ToLower(strings.TrimPrefix(str, "."))]
		if mt == "" {
			return ""
		}
	}
	if strings.Contains(mt, "charset") {
		return mt
	}
	base := strings.ToLower(strings.TrimSpace(strings.FieldsFunc(mt, func(r rune) bool { return r == ';' || r == ' ' })[0]))
	cs := mimeDBCharsets[base]
	if cs == "" && s.cfg.Version >= Version7 && (s.cfg.Version < Version8 || base != "application/cap+xml") {
		cs = mimeDBCharsetsSince144[base] // 1.52.0 dropped application/cap+xml
	}
	if cs == "" && s.cfg.Version >= Version8 {
		cs = mimeDBCharsetsSince152[base]
	}
	if cs == "" && strings.HasPrefix(base, "text/") {
		cs = "utf-8"
	}
	if cs == "" {
		return mt
	}
	return mt + "; charset=" + cs
}

// mimeExtensions maps the extensions mime-types' lookup is likeliest to
// meet in a content-type header to mime-db's type.
var mimeExtensions = map[string]string{
	"json": "application/json", "xml": "application/xml", "html": "text/html", "htm": "text/html",
	"txt": "text/plain", "text": "text/plain", "js": "application/javascript", "css": "text/css", "csv": "text/csv",
}

// The non-text types mime-db gives a charset: in 1.30.0 (core 4.0.5's
// lock file), added by 1.44.0 (core 7.1.0) and by 1.52.0 (core 8.5.0).
var (
	mimeDBCharsets = map[string]string{
		"application/javascript": "utf-8", "application/json": "utf-8", "application/manifest+json": "utf-8",
	}
	mimeDBCharsetsSince144 = map[string]string{
		"application/3gpdash-qoe-report+xml": "utf-8", "application/beep+xml": "utf-8", "application/cap+xml": "utf-8",
		"application/fhir+json": "utf-8", "application/fhir+xml": "utf-8", "application/im-iscomposing+xml": "utf-8",
		"application/msc-ivr+xml": "utf-8", "application/msc-mixer+xml": "utf-8", "application/news-checkgroups": "us-ascii",
		"application/news-groupinfo": "us-ascii", "application/pidf+xml": "utf-8", "application/pidf-diff+xml": "utf-8",
		"application/poc-settings+xml": "utf-8", "application/vnd.omads-email+xml": "utf-8", "application/vnd.omads-file+xml": "utf-8",
		"application/vnd.omads-folder+xml": "utf-8", "application/vnd.syncml+xml": "utf-8", "application/vnd.syncml.dm+wbxml": "utf-8",
		"application/vnd.syncml.dm+xml": "utf-8", "application/vnd.syncml.dmddf+xml": "utf-8", "application/vnd.syncml.dmtnds+xml": "utf-8",
		"application/vnd.wap.wbxml": "utf-8",
	}
	mimeDBCharsetsSince152 = map[string]string{
		"application/elm+json": "utf-8", "application/emergencycalldata.cap+xml": "utf-8", "application/prs.cyn": "7-bit",
		"application/vnd.hl7cda+xml": "utf-8", "application/vnd.hl7v2+xml": "utf-8",
	}
)

// failResult is core's handleServerError: the client gets 500 "An internal
// server error occurred", the transaction an error and autoRetry.
func (s *Server) failResult(err error, sr sent) routeResult {
	now := s.now()
	return routeResult{
		err:           err,
		clientStatus:  http.StatusInternalServerError,
		clientHeader:  http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		clientBody:    []byte(internalErrorBody),
		storedBody:    internalErrorBody,
		respTimestamp: &now,
		coreOrch:      sr.orch,
	}
}

// finishTransaction stores the outcome as core's storeResponse (one
// validated update: response, error, orchestrations, properties and, on
// 4.0.5, the mediator's status) and setFinalStatus do. s.mu must be held.
// bodiesSize is what the request body counted against MAX_BODIES_SIZE.
func (s *Server) finishTransaction(tx *Transaction, res routeResult, bodiesSize int) {
	initial := tx.Status // as storeTransaction stored it
	resp := &ResponseDef{
		Status:    res.clientStatus,
		Headers:   headerMap(res.clientHeader, true),
		Body:      res.storedBody,
		Timestamp: res.respTimestamp,
	}
	enforceMaxBodiesSize(&bodiesSize, &resp.Body, false)
	var orchs []Orchestration
	var props map[string]any
	var txErr *ErrorDef
	var mediatorStatus string
	if res.err != nil {
		txErr = &ErrorDef{Message: res.err.Error()}
	}
	if m := res.mediator; m != nil {
		if urn, ok := m["x-mediator-urn"]; ok {
			tx.MediatorURN = jsString(urn)
		}
		mediatorStatus, _ = m["status"].(string)
		if mr, ok := m["response"].(map[string]any); ok && mr["timestamp"] == nil {
			tx.MetricsSkipped = true
		}
		raw, _ := m["orchestrations"].([]any)
		for i, o := range raw {
			om, _ := o.(map[string]any)
			// 4.0.5 (mongoose 4.13) stores such orchestrations: update
			// validators do not check required paths inside array
			// items. Later cores reject the whole update (§5.2).
			if reason := orchestrationInvalid(om); reason != "" && tx.MetadataError == "" && s.cfg.Version >= Version7 {
				tx.MetadataError = fmt.Sprintf("orchestrations.%d.%s", i, reason)
			}
			var parsed Orchestration
			if err := remarshal(castOrchestration(om), &parsed); err != nil && tx.MetadataError == "" && s.cfg.Version >= Version7 {
				tx.MetadataError = fmt.Sprintf("orchestrations.%d: %v", i, err)
			}
			orchs = append(orchs, parsed)
		}
		props, _ = m["properties"].(map[string]any)
		if e, ok := m["error"].(map[string]any); ok && res.err == nil {
			txErr = &ErrorDef{Message: jsString(e["message"])}
			if st, ok := e["stack"]; ok && st != nil {
				txErr.Stack = jsString(st)
			}
		}
	}
	// truncateOrchestrationBodies: the mediator's orchestrations, then
	// core's own, whose bodies are Buffers (cut by bytes).
	nMediator := len(orchs)
	if res.coreOrch.Name != "" {
		orchs = append(orchs, res.coreOrch)
	}
	for i := range orchs {
		buf := i >= nMediator
		if q := orchs[i].Request; q != nil && q.Body != "" {
			enforceMaxBodiesSize(&bodiesSize, &q.Body, buf)
		}
		if r := orchs[i].Response; r != nil && r.Body != "" {
			enforceMaxBodiesSize(&bodiesSize, &r.Body, buf)
		}
	}
	// storeNonPrimaryResponse, for each secondary route with a response
	// body (a Buffer unless the route answered an envelope).
	for i := range res.secondary {
		if r := res.secondary[i].Response; r != nil {
			enforceMaxBodiesSize(&bodiesSize, &r.Body, res.secondary[i].rawBody)
		}
	}
	tx.Routes = res.secondary
	// ctx.routes, which setFinalStatus reads: before 7.1.0 the catch of
	// buildNonPrimarySendRequestPromise (a route that failed) does not
	// push the route, which is stored all the same.
	var statusRoutes []RouteMetadata
	routeFailed := false // handleServerError set ctx.autoRetry
	for _, r := range res.secondary {
		if r.Error != nil {
			routeFailed = true
			if s.cfg.Version < Version7 {
				continue
			}
		}
		statusRoutes = append(statusRoutes, r)
	}
	saved := tx.MetadataError == ""
	if saved {
		tx.Response = resp
		tx.Orchestrations = orchs
		tx.Properties = props
		tx.Error = txErr
		if mediatorStatus != "" {
			tx.Status = mediatorStatus
		}
	}
	if txErr != nil || routeFailed {
		tx.AutoRetry = true // setFinalStatus' own update
	}
	tx.Core4Crash = s.cfg.Version == Version4 && (mediatorStatus == "" || tx.AutoRetry)
	switch {
	case mediatorStatus != "":
		// setFinalStatus leaves the status to storeResponse; on 4.0.5 it
		// is part of the update that failed, so it stays Processing.
		if s.cfg.Version >= Version7 {
			tx.Status = mediatorStatus
		}
	default:
		tx.Status = computeStatus(res.clientStatus, statusRoutes, initial)
	}
}

// computeStatus is setFinalStatus (§5.3) for a transaction stored with
// status initial: primary 5xx → Failed; else a secondary 5xx → Completed
// with error(s); primary 2xx with all routes 2xx → Successful (Pending
// Async on an asynchronous channel, whose initial status it is); primary
// 4xx with all routes 2xx → Completed; anything else still Processing →
// Completed, still Pending Async stays so.
func computeStatus(code int, routes []RouteMetadata, initial string) string {
	if code >= 500 && code <= 599 {
		return "Failed"
	}
	status := initial
	routeFailures, routeSuccess := false, true
	for _, r := range routes {
		st := 0
		if r.Response != nil {
			st = r.Response.Status
		}
		if st >= 500 && st <= 599 {
			routeFailures = true
		}
		if st < 200 || st > 299 {
			routeSuccess = false
		}
	}
	if routeFailures {
		status = "Completed with error(s)"
	}
	if code >= 200 && code <= 299 && routeSuccess {
		status = "Successful"
		if initial == "Pending Async" {
			status = "Pending Async"
		}
	}
	if code >= 400 && code <= 499 && routeSuccess {
		status = "Completed"
	}
	if status == "Processing" {
		status = "Completed"
	}
	return status
}

// orchestrationInvalid returns why Mongoose's validation of an orchestration
// fails (name and request.timestamp are required), or "".
func orchestrationInvalid(o map[string]any) string {
	if o == nil || !jsTruthy(o["name"]) {
		return "name: Path `name` is required."
	}
	req, _ := o["request"].(map[string]any)
	if req == nil || req["timestamp"] == nil || req["timestamp"] == "" {
		return "request.timestamp: Path `request.timestamp` is required."
	}
	if _, ok := parseDateValue(req["timestamp"]); !ok {
		return "request.timestamp: Cast to Date failed"
	}
	return ""
}

// castOrchestration converts an orchestration as Mongoose would before
// decoding it into Orchestration: bodies to strings, dates parsed, header
// values to strings.
func castOrchestration(o map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range o {
		out[k] = v
	}
	for _, part := range []string{"request", "response"} {
		sub, ok := o[part].(map[string]any)
		if !ok {
			delete(out, part)
			continue
		}
		c := map[string]any{}
		for k, v := range sub {
			switch k {
			case "body", "host", "path", "querystring", "method":
				c[k] = bodyString(v)
			case "port":
				c[k] = jsString(v)
			case "status":
				c[k] = statusOf(v)
			case "timestamp":
				if t, ok := parseDateValue(v); ok {
					c[k] = t
				}
			case "headers":
				hs := map[string]any{}
				if m, ok := v.(map[string]any); ok {
					for hk, hv := range m {
						hs[hk] = jsString(hv)
					}
				}
				c[k] = hs
			}
		}
		out[part] = c
	}
	if e, ok := o["error"].(map[string]any); ok {
		out["error"] = map[string]any{"message": jsString(e["message"]), "stack": jsString(e["stack"])}
		if e["stack"] == nil {
			delete(out["error"].(map[string]any), "stack")
		}
	} else {
		delete(out, "error")
	}
	if g, ok := o["group"]; ok {
		out["group"] = jsString(g)
	}
	out["name"] = jsString(o["name"])
	return out
}

// parseDateValue mirrors Mongoose's Date cast: a date string or epoch ms.
func parseDateValue(v any) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return time.Time{}, false
		}
		t, ok := parseJSDate(x)
		return t.UTC(), ok
	case float64:
		// Beyond years 0–9999 the value cannot round-trip through JSON;
		// treat it as an invalid date.
		if x < -62167219200000 || x > 253402300799999 || math.IsNaN(x) {
			return time.Time{}, false
		}
		return time.UnixMilli(int64(x)).UTC(), true
	}
	return time.Time{}, false
}

// statusOf approximates the Number cast of a stored orchestration or route
// response status: a numeric string is read as a number (the primary
// route's status goes through koaStatus instead).
func statusOf(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case string:
		t := strings.TrimSpace(x)
		end := 0
		for end < len(t) && t[end] >= '0' && t[end] <= '9' {
			end++
		}
		if n, err := strconv.Atoi(t[:end]); err == nil {
			return n
		}
	}
	return http.StatusOK
}

// bodyString mirrors storing a value into a String path / toString():
// objects become "[object Object]" (the reason to send body as a string).
func bodyString(v any) string {
	if v == nil {
		return ""
	}
	return jsString(v)
}

// transformPath applies a sed-like s/from/to[/g] (with \/ escapes) as core's
// transformPath does.
func transformPath(path, transform string) string {
	t := strings.TrimPrefix(transform, "s/")
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] == '\\' && i+1 < len(t) && t[i+1] == '/' {
			cur.WriteByte('/')
			i++
			continue
		}
		if t[i] == '/' {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(t[i])
	}
	parts = append(parts, cur.String())
	if len(parts) < 2 {
		return path
	}
	re, err := regexp.Compile(parts[0])
	if err != nil {
		return path
	}
	to := parts[1]
	if len(parts) > 2 && strings.Contains(parts[2], "g") {
		return re.ReplaceAllString(path, to)
	}
	done := false
	return re.ReplaceAllStringFunc(path, func(m string) string {
		if done {
			return m
		}
		done = true
		return re.ReplaceAllString(m, to)
	})
}

func decodeBody(resp *http.Response) ([]byte, error) {
	var rd io.Reader = resp.Body
	switch strings.ToLower(resp.Header.Get("Content-Encoding")) {
	case "gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = zr
	case "deflate":
		fr := flate.NewReader(resp.Body)
		defer fr.Close()
		rd = fr
	}
	return io.ReadAll(io.LimitReader(rd, maxRouterBody))
}

// headerMap converts headers as Node sees them: lower-case names, values
// joined; topLevel escapes the first '.' and '$' of each key as core does
// for transaction (not orchestration) headers.
func headerMap(h http.Header, topLevel bool) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		key := strings.ToLower(k)
		if topLevel {
			key = strings.Replace(key, ".", "\uff0e", 1)
			key = strings.Replace(key, "$", "\uff04", 1)
		}
		out[key] = strings.Join(vs, ", ")
	}
	return out
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func hostOnly(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return h
}

func portOf(hostport string) string {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	return p
}
