package mediator

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// InboundAuth is the authentication a [Mediator] requires of the requests
// routed to it: every path but /healthz and /readyz, and /metrics unless
// [Config.MetricsListen] serves it elsewhere. A request is let in when it
// satisfies one of the configured methods. [New] refuses the zero value:
// set a method, or Open.
// Secrets are compared in constant time and never logged.
type InboundAuth struct {
	// Username and Password, when Username is set, are accepted as HTTP
	// basic authentication: what an OpenHIM route sends when its username
	// and password are set (see [openhim.Definition.WithCredentials]), and what a
	// CHT outbound destination with "basic" auth sends.
	Username, Password string
	// Token, when set, is accepted as "Authorization: Bearer <Token>": what
	// a CHT outbound destination with "header" auth sends when its
	// credential is "Bearer <Token>".
	Token string
	// ClientCert accepts a request whose TLS client certificate verifies
	// against [Config.TLSConfig]'s ClientCAs (mutual TLS).
	ClientCert bool
	// Open, when true, lets a mediator with none of the methods above serve
	// its routes to anyone who reaches its address: for one that nothing but
	// core can reach. [New] refuses a Config with neither a method nor Open,
	// and with both. /healthz and /readyz are open either way.
	Open bool
}

// enabled reports whether any method is configured.
func (a InboundAuth) enabled() bool { return a.Username != "" || a.Token != "" || a.ClientCert }

// String describes the configured methods without their secrets.
func (a InboundAuth) String() string {
	var methods []string
	if a.Username != "" {
		methods = append(methods, "basic (username "+strconv.Quote(a.Username)+")")
	}
	if a.Token != "" {
		methods = append(methods, "bearer token")
	}
	if a.ClientCert {
		methods = append(methods, "client certificate")
	}
	if len(methods) == 0 {
		if a.Open {
			return "none (open)"
		}
		return "none"
	}
	return strings.Join(methods, ", ")
}

// GoString is String, so %#v does not print the secrets either.
func (a InboundAuth) GoString() string { return "mediator.InboundAuth{" + a.String() + "}" }

// LogValue logs the configured methods without their secrets.
func (a InboundAuth) LogValue() slog.Value { return slog.StringValue(a.String()) }

func (a InboundAuth) validate() error {
	if a.Username == "" && a.Password != "" {
		return errors.New("mediator: InboundAuth.Password is set without a Username")
	}
	if a.Username != "" && a.Password == "" {
		return errors.New("mediator: InboundAuth.Username is set without a Password")
	}
	if strings.Contains(a.Username, ":") {
		return errors.New("mediator: InboundAuth.Username must not contain ':' (HTTP basic authentication cannot carry it)")
	}
	if a.Open && a.enabled() {
		return errors.New("mediator: InboundAuth.Open is set together with credentials: unset one or the other")
	}
	if !a.Open && !a.enabled() {
		return errors.New("mediator: Config.Auth sets no credentials, so the mediator's routes would be open to anyone who " +
			"reaches it: set Username and Password (what core's route sends, see openhim.Definition.WithCredentials), " +
			"Token or ClientCert; or set Open to serve them open")
	}
	return nil
}

// inboundAuth checks requests against an InboundAuth. The secrets are kept
// as SHA-256 digests so that comparisons take the same time whatever the
// length or content of what a caller sends.
type inboundAuth struct {
	basic      bool
	user, pass [sha256.Size]byte
	bearer     bool
	token      [sha256.Size]byte
	clientCert bool
	clientCAs  *x509.CertPool // verifies a certificate the handshake did not
	challenge  []string       // WWW-Authenticate values
}

func newInboundAuth(a InboundAuth, realm string, clientCAs *x509.CertPool) *inboundAuth {
	if !a.enabled() {
		return nil
	}
	ia := &inboundAuth{clientCert: a.ClientCert, clientCAs: clientCAs}
	realm = strconv.Quote(realm)
	if a.Username != "" {
		ia.basic = true
		ia.user, ia.pass = sha256.Sum256([]byte(a.Username)), sha256.Sum256([]byte(a.Password))
		ia.challenge = append(ia.challenge, "Basic realm="+realm+`, charset="UTF-8"`)
	}
	if a.Token != "" {
		ia.bearer = true
		ia.token = sha256.Sum256([]byte(a.Token))
		ia.challenge = append(ia.challenge, "Bearer realm="+realm)
	}
	if len(ia.challenge) == 0 { // client certificates only
		ia.challenge = append(ia.challenge, "Mutual realm="+realm)
	}
	return ia
}

// allow reports whether r carries accepted credentials.
func (ia *inboundAuth) allow(r *http.Request) bool {
	if ia == nil {
		return true
	}
	if ia.clientCert && r.TLS != nil && (len(r.TLS.VerifiedChains) > 0 || ia.verifies(r.TLS.PeerCertificates)) {
		return true
	}
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case ia.basic && strings.EqualFold(scheme, "Basic"):
		user, pass, ok := r.BasicAuth()
		if !ok {
			return false
		}
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		// Both compared, whatever the first gives.
		return subtle.ConstantTimeCompare(u[:], ia.user[:])&subtle.ConstantTimeCompare(p[:], ia.pass[:]) == 1
	case ia.bearer && strings.EqualFold(scheme, "Bearer"):
		t := sha256.Sum256([]byte(cred))
		return subtle.ConstantTimeCompare(t[:], ia.token[:]) == 1
	}
	return false
}

// verifies reports whether certs, a client's chain the handshake requested
// but did not verify (tls.RequestClientCert, see New), verifies against
// the client CAs for client authentication. A chain that does not is no
// credential, and the request's other credentials are checked instead.
func (ia *inboundAuth) verifies(certs []*x509.Certificate) bool {
	if len(certs) == 0 || ia.clientCAs == nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: ia.clientCAs, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

// refuseEnvelope answers a transaction 401 with the challenges, both on
// the response and in the envelope (core passes the envelope's headers on
// to its client).
func (ia *inboundAuth) refuseEnvelope(w http.ResponseWriter, rec *recorder) {
	rec.txn.direct = true
	env := rec.errorEnvelope(errUnauthenticated, "")
	for _, c := range ia.challenge {
		w.Header().Add("WWW-Authenticate", c)
	}
	env.Response.Headers["WWW-Authenticate"] = strings.Join(ia.challenge, ", ")
	rec.write(w, env)
	rec.txn.errMsg = errUnauthenticated.Error() // logged as a warning, without the credentials
}

// refuse answers with the challenges, outside any envelope (for
// /metrics).
func (ia *inboundAuth) refuse(w http.ResponseWriter) {
	for _, c := range ia.challenge {
		w.Header().Add("WWW-Authenticate", c)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(errorBody(errUnauthenticated.Error()))
}

// errUnauthenticated is the message of a refused request: it never says
// which part of the credentials was wrong.
var errUnauthenticated = &StatusError{StatusCode: http.StatusUnauthorized,
	Err: errors.New("authentication required: send the credentials configured for this mediator")}
