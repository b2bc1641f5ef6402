package settings

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/internal/redact"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// DefaultEnvPrefix is the prefix of the environment variables [Load] reads.
const DefaultEnvPrefix = "MEDIATOR"

// Secret is a string that never shows in logs or formatted output
// (LogValue, String and GoString redact it). Convert it with string(s).
type Secret string

// LogValue redacts the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// GoString redacts the secret.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// Mediator is the configuration of a mediator as a file or the environment
// gives it. Embed it, squashed, in a program's own settings struct:
//
//	type AppSettings struct {
//		settings.Mediator `mapstructure:",squash"`
//		CHT struct {
//			URL string `mapstructure:"url"` // MEDIATOR_CHT_URL
//		} `mapstructure:"cht"`
//	}
//
// Defaults are those of [Default].
type Mediator struct {
	// Listen is the address to serve on (MEDIATOR_LISTEN).
	Listen string `mapstructure:"listen"`
	// PublicHost is the host name core reaches the mediator at, the host
	// of the routes of [Mediator.Route] (MEDIATOR_PUBLIC_HOST).
	PublicHost string `mapstructure:"public_host"`
	// OpenHIM is the connection to core (MEDIATOR_OPENHIM_*).
	OpenHIM OpenHIM `mapstructure:"openhim"`
	// HeartbeatInterval between heartbeats; negative disables them
	// (MEDIATOR_HEARTBEAT_INTERVAL, e.g. "10s").
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
	// InstallChannels installs the default channels after registering
	// (MEDIATOR_INSTALL_CHANNELS).
	InstallChannels bool `mapstructure:"install_channels"`
	// RestoreChannels, with InstallChannels, puts back default channels
	// edited in core away from the definition; otherwise they are only
	// reported (MEDIATOR_RESTORE_CHANNELS).
	RestoreChannels bool `mapstructure:"restore_channels"`
	// MaxBodyBytes limits request bodies; negative means no limit
	// (MEDIATOR_MAX_BODY_BYTES).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// ShutdownTimeout bounds the graceful shutdown
	// (MEDIATOR_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// RedactHeaders are further headers redacted in orchestrations
	// (MEDIATOR_REDACT_HEADERS, comma-separated).
	RedactHeaders []string `mapstructure:"redact_headers"`
	// LogLevel is debug, info, warn or error (MEDIATOR_LOG_LEVEL); pass
	// it to the program's slog handler.
	LogLevel slog.Level `mapstructure:"log_level"`
	// Auth is what callers of the mediator's routes must send
	// (MEDIATOR_AUTH_*). [Mediator.Validate] requires one method, or
	// Auth.Disabled.
	Auth Auth `mapstructure:"auth"`
	// TLS makes the mediator serve HTTPS (MEDIATOR_TLS_*).
	TLS TLS `mapstructure:"tls"`
	// MetricsListen, when set, serves /metrics on this separate address
	// without authentication, and no longer on Listen
	// (MEDIATOR_METRICS_LISTEN, e.g. "127.0.0.1:9090").
	MetricsListen string `mapstructure:"metrics_listen"`
}

// Endpoint is a server a program calls, such as CHT or a FHIR server, and
// its credentials: a program's settings name it (cht.url, cht.username,
// cht.password for a field tagged "cht").
type Endpoint struct {
	URL      string `mapstructure:"url"`
	Username string `mapstructure:"username"`
	Password Secret `mapstructure:"password"`
}

// Validate checks the endpoint named key ("cht" for cht.url...): its URL
// must be an http(s) URL without credentials (they go in Username and
// Password), and is required when required is set. An error names the key
// and its variable.
func (e Endpoint) Validate(key string, required bool) error {
	name := key + ".url (" + EnvName(DefaultEnvPrefix, key+".url") + ")"
	if e.URL == "" {
		if required {
			return fmt.Errorf("settings: %s is required", name)
		}
		return nil
	}
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("settings: %s is not an http(s) URL: %s", name, redact.URL(e.URL))
	}
	if u.User != nil {
		// The URL also names the CHT instance in the FHIR identifiers the
		// converters write (fhir.Config.InstanceURL), which must not carry
		// credentials; and a URL is what logs and errors repeat.
		return fmt.Errorf("settings: %s holds credentials: set %s.username and %s.password (%s, %s) instead: %s",
			name, key, key, EnvName(DefaultEnvPrefix, key+".username"), EnvName(DefaultEnvPrefix, key+".password"), redact.URL(e.URL))
	}
	return nil
}

// Auth is the inbound authentication of the mediator's routes: a caller
// is let in with any one of the configured credentials. /healthz and
// /readyz stay open.
type Auth struct {
	// Username and Password are required as HTTP basic authentication,
	// as an OpenHIM route sends its username and password
	// (MEDIATOR_AUTH_USERNAME, MEDIATOR_AUTH_PASSWORD).
	Username string `mapstructure:"username"`
	Password Secret `mapstructure:"password"`
	// Token is accepted as "Authorization: Bearer <token>", as a CHT
	// outbound destination with header auth sends it
	// (MEDIATOR_AUTH_TOKEN).
	Token Secret `mapstructure:"token"`
	// Disabled, when true, lets a mediator with none of the methods
	// above (nor tls.client_ca_file) start with its routes open to any
	// caller that reaches listen (MEDIATOR_AUTH_DISABLED). Set it only
	// when nothing but core can reach listen.
	Disabled bool `mapstructure:"disabled"`
}

// TLS is the mediator's HTTPS certificate and, optionally, the CA that
// signs the client certificates it accepts.
type TLS struct {
	// CertFile and KeyFile are the server's PEM certificate (chain) and
	// key (MEDIATOR_TLS_CERT_FILE, MEDIATOR_TLS_KEY_FILE).
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ClientCAFile, when set, is a PEM bundle of CAs: a client
	// certificate they sign is accepted in place of other credentials
	// (mutual TLS; MEDIATOR_TLS_CLIENT_CA_FILE).
	ClientCAFile string `mapstructure:"client_ca_file"`
}

// OpenHIM is the connection to core's API.
type OpenHIM struct {
	// URL of core's API; "" runs the mediator standalone
	// (MEDIATOR_OPENHIM_URL).
	URL string `mapstructure:"url"`
	// Username and Password of the core user (MEDIATOR_OPENHIM_USERNAME,
	// MEDIATOR_OPENHIM_PASSWORD).
	Username string `mapstructure:"username"`
	Password Secret `mapstructure:"password"`
	// Auth is basic, token, session or auto (MEDIATOR_OPENHIM_AUTH).
	Auth string `mapstructure:"auth"`
	// InsecureSkipVerify turns TLS verification off
	// (MEDIATOR_OPENHIM_INSECURE_SKIP_VERIFY).
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
	// CAFile is a PEM bundle to trust (MEDIATOR_OPENHIM_CA_FILE).
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are a client certificate
	// (MEDIATOR_OPENHIM_CERT_FILE, MEDIATOR_OPENHIM_KEY_FILE).
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// Timeout of each API call (MEDIATOR_OPENHIM_TIMEOUT).
	Timeout time.Duration `mapstructure:"timeout"`
	// CoreVersion is core's major version, for validation
	// (MEDIATOR_OPENHIM_CORE_VERSION).
	CoreVersion int `mapstructure:"core_version"`
}

// Default returns the default settings. This is the one place they are
// defined:
//
//	listen               ":8080"
//	public_host          "localhost"
//	heartbeat_interval   10s
//	install_channels     false
//	restore_channels     false
//	max_body_bytes       10485760 (10 MiB)
//	shutdown_timeout     30s
//	redact_headers       none (Authorization, Proxy-Authorization, Cookie and Set-Cookie always are)
//	openhim.url          "" (standalone)
//	openhim.auth         "auto"
//	openhim.timeout      10s
//	openhim.core_version 8
//	log_level            info
//	auth, tls            none (plain HTTP; Validate then wants auth.disabled)
//	metrics_listen       "" (/metrics on listen)
func Default() Mediator {
	return Mediator{
		Listen:            mediator.DefaultListen,
		PublicHost:        "localhost",
		HeartbeatInterval: 10 * time.Second,
		MaxBodyBytes:      mediator.DefaultMaxBodyBytes,
		ShutdownTimeout:   mediator.DefaultShutdownTimeout,
		RedactHeaders:     []string{},
		OpenHIM: OpenHIM{
			Auth:        string(openhim.AuthAuto),
			Timeout:     10 * time.Second,
			CoreVersion: 8,
		},
	}
}

// ListenPort is the port of Listen, which a mediator's registration
// endpoints name so that core can reach it. A missing or zero port (":0")
// is an error naming the key: core needs a fixed port.
func (m Mediator) ListenPort() (int, error) {
	_, text, err := net.SplitHostPort(m.Listen)
	if err == nil {
		if port, perr := strconv.Atoi(text); perr == nil && port > 0 && port <= 65535 {
			return port, nil
		}
	}
	return 0, fmt.Errorf("settings: listen (%s) %q: a fixed port is needed so core can reach the mediator",
		EnvName(DefaultEnvPrefix, "listen"), m.Listen)
}

// Route is a route of the mediator's registration named name: to
// PublicHost at the port of Listen, over HTTPS when tls.cert_file is set.
// Its error is that of [Mediator.ListenPort].
func (m Mediator) Route(name string) (openhim.Route, error) {
	port, err := m.ListenPort()
	if err != nil {
		return openhim.Route{}, err
	}
	if err := m.checkPublicHost(true); err != nil {
		return openhim.Route{}, err
	}
	return openhim.Route{Name: name, Type: "http", Host: m.PublicHost, Port: port, Primary: true,
		Secured: m.TLS.CertFile != ""}, nil
}

// checkPublicHost checks that public_host is a bare host name or IP
// address, as core's routes want it: no scheme, port, path or credentials
// (the port is listen's). Empty is an error when required, that is when
// routes are registered or printed.
func (m Mediator) checkPublicHost(required bool) error {
	name := "public_host (" + EnvName(DefaultEnvPrefix, "public_host") + ")"
	h := m.PublicHost
	if h == "" {
		if required {
			return fmt.Errorf("settings: %s must not be empty: core's routes to the mediator use it", name)
		}
		return nil
	}
	if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")) != nil {
		return nil
	}
	for _, r := range h {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("settings: %s %s: want a bare host name or IP address such as my-mediator or 10.0.0.5, "+
				"without scheme, port or path (the port is listen's)", name, strconv.Quote(redact.URL(h)))
		}
	}
	return nil
}

// Validate checks the values. Each problem names the key and its
// environment variable; several are reported on one line, separated by
// "; ".
//
// The routes must ask callers for credentials: auth.username and
// auth.password, auth.token or tls.client_ca_file, unless auth.disabled
// is true; and for the channel install_channels installs, credentials
// core's route can send (basic auth or a client certificate, not only a
// token).
func (m Mediator) Validate() error { return m.validate(true) }

// validate is Validate; serving false leaves out the check that the
// routes ask for credentials, for a program that only prints.
func (m Mediator) validate(serving bool) error {
	var errs Errors
	key := func(k string) string { return k + " (" + EnvName(DefaultEnvPrefix, k) + ")" }
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("settings: "+format, args...)) }
	if m.Listen == "" {
		add("%s must not be empty", key("listen"))
	}
	if err := m.checkPublicHost(m.OpenHIM.URL != ""); err != nil {
		errs = append(errs, err)
	}
	switch openhim.AuthScheme(m.OpenHIM.Auth) {
	case "", openhim.AuthAuto, openhim.AuthBasic, openhim.AuthToken, openhim.AuthSession:
	default:
		add("%s is %q; want basic, token, session or auto", key("openhim.auth"), m.OpenHIM.Auth)
	}
	if m.OpenHIM.URL != "" {
		u, err := url.Parse(m.OpenHIM.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("%s is not an http(s) URL: %s", key("openhim.url"), redact.URL(m.OpenHIM.URL))
		}
	}
	if (m.OpenHIM.CertFile == "") != (m.OpenHIM.KeyFile == "") {
		add("%s and %s go together", key("openhim.cert_file"), key("openhim.key_file"))
	}
	if m.OpenHIM.Timeout < 0 {
		add("%s must not be negative", key("openhim.timeout"))
	}
	if m.ShutdownTimeout < 0 {
		add("%s must not be negative", key("shutdown_timeout"))
	}
	if v := m.OpenHIM.CoreVersion; v < 0 || (v > 0 && v < 4) || v > 8 {
		// Core's majors with this API are 4 to 8; 0 means the default.
		add("%s is %d; want the major version of your core: 4 to 8", key("openhim.core_version"), v)
	}
	if (m.Auth.Username == "") != (m.Auth.Password == "") {
		add("%s and %s go together", key("auth.username"), key("auth.password"))
	}
	if strings.Contains(m.Auth.Username, ":") {
		add("%s must not contain ':'", key("auth.username"))
	}
	methods := m.Auth.Username != "" || m.Auth.Password != "" || m.Auth.Token != "" || m.TLS.ClientCAFile != ""
	switch {
	case m.Auth.Disabled && methods:
		add("%s is true, yet credentials are set (auth.username, auth.token or tls.client_ca_file): unset one or the other", key("auth.disabled"))
	case serving && !m.Auth.Disabled && !methods:
		add("the mediator's routes would be open to anyone who reaches listen: set %s and %s, the credentials "+
			"core's route will send (or %s, for callers that do not go through core, or %s); to serve them open "+
			"because nothing but core can reach listen, set %s to true", key("auth.username"), key("auth.password"),
			key("auth.token"), key("tls.client_ca_file"), key("auth.disabled"))
	case serving && m.InstallChannels && m.OpenHIM.URL != "" && m.Auth.Token != "" && m.Auth.Username == "" && m.TLS.ClientCAFile == "":
		// Only a token: the route of the channel installed sends basic
		// auth (or a client certificate), never a bearer token.
		add("%s alone: core's route sends basic auth, not a token, so every request of the channel install_channels "+
			"installs would be refused 401; set %s and %s for core's route (the token stays for callers that do not go through core)",
			key("auth.token"), key("auth.username"), key("auth.password"))
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		add("%s and %s go together", key("tls.cert_file"), key("tls.key_file"))
	}
	if m.TLS.CertFile != "" && m.OpenHIM.CoreVersion > 0 && m.OpenHIM.CoreVersion < 5 {
		// openhim-core 4.x src/middleware/router.js sends a secured route's
		// requests with secureProtocol 'TLSv1_method' (TLS 1.0 only; gone
		// in 5.0.0), which this server refuses: every routed request would fail.
		add("%s: core %d reaches an HTTPS route with TLS 1.0 only, which the mediator refuses; serve plain HTTP on a private network, or use core 5 or later",
			key("tls.cert_file"), m.OpenHIM.CoreVersion)
	}
	if m.TLS.ClientCAFile != "" && m.TLS.CertFile == "" {
		add("%s needs tls.cert_file and tls.key_file: client certificates travel over HTTPS", key("tls.client_ca_file"))
	}
	if m.MetricsListen != "" && m.MetricsListen == m.Listen {
		add("%s must differ from listen", key("metrics_listen"))
	}
	if m.RestoreChannels && !m.InstallChannels {
		add("%s needs install_channels (MEDIATOR_INSTALL_CHANNELS)", key("restore_channels"))
	}
	return errs.Err()
}

// Errors are several problems with the settings, reported on one line
// (a log line stays one line). A program's Validate can collect its own
// checks and the embedded [Mediator]'s in one.
type Errors []error

// Error joins the messages with "; ", saying "settings: " once.
func (e Errors) Error() string {
	msgs := make([]string, 0, len(e))
	for i, err := range e {
		msg := err.Error()
		if i > 0 {
			msg = strings.TrimPrefix(msg, "settings: ") // said once, at the start
		}
		msgs = append(msgs, msg)
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (e Errors) Unwrap() []error { return e }

// Err returns nil when there are no errors, else e; nested Errors (and
// errors.Join results) are flattened, nil errors dropped.
func (e Errors) Err() error {
	var flat Errors
	var walk func(err error)
	walk = func(err error) {
		switch x := err.(type) {
		case nil:
		case Errors:
			for _, y := range x {
				walk(y)
			}
		case interface{ Unwrap() []error }:
			for _, y := range x.Unwrap() {
				walk(y)
			}
		default:
			flat = append(flat, err)
		}
	}
	for _, err := range e {
		walk(err)
	}
	if len(flat) == 0 {
		return nil
	}
	return flat
}

// OpenHIMConfig returns the core connection settings as the mediator
// package wants them.
func (m Mediator) OpenHIMConfig() openhim.Config {
	o := m.OpenHIM
	return openhim.Config{
		URL: o.URL, Username: o.Username, Password: string(o.Password), Auth: openhim.AuthScheme(o.Auth),
		InsecureSkipVerify: o.InsecureSkipVerify, CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile,
		Timeout: o.Timeout, CoreVersion: o.CoreVersion,
	}
}

// InboundAuth returns the authentication the mediator requires, as the
// mediator package wants it. Print the route credentials and CHT outbound
// auth from it (see [openhim.Definition.WithCredentials]) so that what
// core and CHT send matches what the mediator checks.
func (m Mediator) InboundAuth() mediator.InboundAuth {
	return mediator.InboundAuth{Username: m.Auth.Username, Password: string(m.Auth.Password),
		Token: string(m.Auth.Token), ClientCert: m.TLS.ClientCAFile != "", Open: m.Auth.Disabled}
}

// Apply copies the settings into cfg (Listen, OpenHIM, HeartbeatInterval,
// InstallChannels, MaxBodyBytes, ShutdownTimeout, Capture.RedactHeaders,
// Auth, TLSConfig and MetricsListen), leaving its other fields alone. It
// reads the TLS files; an error names the key.
func (m Mediator) Apply(cfg *mediator.Config) error {
	tc, err := m.TLS.config()
	if err != nil {
		return err
	}
	cfg.Listen = m.Listen
	cfg.OpenHIM = m.OpenHIMConfig()
	cfg.HeartbeatInterval = m.HeartbeatInterval
	cfg.InstallChannels = m.InstallChannels
	cfg.RestoreChannels = m.RestoreChannels
	cfg.MaxBodyBytes = m.MaxBodyBytes
	cfg.ShutdownTimeout = m.ShutdownTimeout
	cfg.Capture.RedactHeaders = append([]string(nil), m.RedactHeaders...)
	cfg.Auth = m.InboundAuth()
	cfg.TLSConfig = tc
	cfg.MetricsListen = m.MetricsListen
	return nil
}

// config loads the files into a server TLS configuration; nil without a
// certificate.
func (t TLS) config() (*tls.Config, error) {
	if t.CertFile == "" && t.KeyFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("settings: tls.cert_file (%s) and tls.key_file (%s): %w",
			EnvName(DefaultEnvPrefix, "tls.cert_file"), EnvName(DefaultEnvPrefix, "tls.key_file"), err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("settings: tls.client_ca_file (%s): %w", EnvName(DefaultEnvPrefix, "tls.client_ca_file"), err)
		}
		tc.ClientCAs = x509.NewCertPool()
		if !tc.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("settings: tls.client_ca_file (%s) %s: no PEM certificate in it",
				EnvName(DefaultEnvPrefix, "tls.client_ca_file"), t.ClientCAFile)
		}
		// ClientAuth is left to mediator.New, which asks for a certificate
		// and verifies it per request (see mediator.Config.TLSConfig).
	}
	return tc, nil
}

// LogValue logs the settings without secrets.
func (m Mediator) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen", m.Listen),
		slog.String("public_host", m.PublicHost),
		slog.String("openhim.url", redact.URL(m.OpenHIM.URL)),
		slog.String("openhim.username", m.OpenHIM.Username),
		slog.String("openhim.auth", m.OpenHIM.Auth),
		slog.Bool("openhim.insecure_skip_verify", m.OpenHIM.InsecureSkipVerify),
		slog.String("heartbeat_interval", m.HeartbeatInterval.String()),
		slog.Bool("install_channels", m.InstallChannels),
		slog.Bool("restore_channels", m.RestoreChannels),
		slog.String("log_level", m.LogLevel.String()),
		slog.Any("auth", m.InboundAuth()),
		slog.String("tls.cert_file", m.TLS.CertFile),
		slog.String("tls.client_ca_file", m.TLS.ClientCAFile),
		slog.String("metrics_listen", m.MetricsListen),
	)
}

// String formats the settings without secrets.
func (m Mediator) String() string {
	return fmt.Sprintf("{Listen:%s PublicHost:%s OpenHIM:%s HeartbeatInterval:%s InstallChannels:%t RestoreChannels:%t MaxBodyBytes:%d ShutdownTimeout:%s RedactHeaders:%v LogLevel:%s Auth:%s TLS:%+v MetricsListen:%s}",
		m.Listen, m.PublicHost, m.OpenHIM, m.HeartbeatInterval, m.InstallChannels, m.RestoreChannels, m.MaxBodyBytes, m.ShutdownTimeout, m.RedactHeaders,
		m.LogLevel, m.InboundAuth(), m.TLS, m.MetricsListen)
}

// GoString formats the settings without secrets.
func (m Mediator) GoString() string { return "settings.Mediator" + m.String() }

// String formats the connection settings without secrets (the password
// and any password in the URL are redacted).
func (o OpenHIM) String() string {
	return fmt.Sprintf("{URL:%s Username:%s Password:%s Auth:%s InsecureSkipVerify:%t CAFile:%s CertFile:%s KeyFile:%s Timeout:%s CoreVersion:%d}",
		redact.URL(o.URL), o.Username, o.Password, o.Auth, o.InsecureSkipVerify, o.CAFile, o.CertFile, o.KeyFile, o.Timeout, o.CoreVersion)
}

// GoString formats the connection settings without secrets.
func (o OpenHIM) GoString() string { return "settings.OpenHIM" + o.String() }

// Options configure [LoadWith].
type Options struct {
	// File is a YAML (.yaml, .yml) or JSON (.json) file; "" reads none.
	File string
	// EnvPrefix prefixes the environment variables; "" means
	// DefaultEnvPrefix. A nested key joins its parts with "_": key
	// "openhim.url" is read from MEDIATOR_OPENHIM_URL.
	EnvPrefix string
}

// Load reads settings into dst, a pointer to a struct with mapstructure
// tags (such as [Mediator], or a program's struct embedding it), from the
// file at path ("" for none) and from MEDIATOR_* environment variables,
// which win over the file. What dst holds before the call is the default
// (start from [Default]). Every leaf key has its variable, derived from the
// struct: key "openhim.ca_file" is MEDIATOR_OPENHIM_CA_FILE. Lists come from
// the environment comma-separated, durations as Go durations ("10s").
//
// A key in the file that dst does not have, and a value that does not fit
// its field, are errors naming the key. File values are not converted: a
// YAML number or boolean for a string field (password: 012345) is refused,
// to be quoted, and so are a number for a boolean and a fraction for a
// whole number. Environment variables, always text, are parsed as their
// field's type. Environment variables with the
// prefix that match no key are ignored (platforms such as Kubernetes set
// some). If dst has a Validate() error method, Load returns its error.
func Load(path string, dst any) error {
	return LoadWith(Options{File: path}, dst)
}

// LoadWith is [Load] with options.
func LoadWith(opts Options, dst any) error { return loadWith(opts, dst, true) }

// loadWith is LoadWith, calling dst's Validate only when validate is set.
func loadWith(opts Options, dst any, validate bool) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("settings: destination must be a non-nil pointer to a struct, not %T", dst)
	}
	prefix := opts.EnvPrefix
	if prefix == "" {
		prefix = DefaultEnvPrefix
	}
	leaves := map[string]reflect.Value{}
	collectLeaves(rv.Elem(), "", leaves)

	v := viper.New()
	v.AllowEmptyEnv(true) // MEDIATOR_X= (empty) overrides the file
	keys := make([]string, 0, len(leaves))
	for k := range leaves {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.SetDefault(k, leaves[k].Interface())
		if err := v.BindEnv(k, EnvName(prefix, k)); err != nil {
			return fmt.Errorf("settings: bind %s: %w", k, err)
		}
	}
	if opts.File != "" {
		switch ext := strings.ToLower(filepath.Ext(opts.File)); ext {
		case ".yaml", ".yml":
			v.SetConfigType("yaml")
		case ".json":
			v.SetConfigType("json")
		default:
			return fmt.Errorf("settings: %s: unsupported file type %q (want .yaml, .yml or .json)", opts.File, ext)
		}
		v.SetConfigFile(opts.File)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("settings: read %s: %w", opts.File, err)
		}
		var unknown []string
		for _, k := range v.AllKeys() {
			if !known(k, leaves) {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("settings: %s: unknown key(s) %q", opts.File, unknown)
		}
	}
	err := v.Unmarshal(dst, func(c *mapstructure.DecoderConfig) {
		// Not weakly typed: that would turn password: 012345 into "5349"
		// and install_channels: 1 into true. scalarHook reads the
		// environment's strings instead, and refuses a file value of
		// another type.
		c.WeaklyTypedInput = false
		c.DecodeHook = mapstructure.ComposeDecodeHookFunc(durationHook, levelHook, sliceHook, scalarHook)
	})
	if err != nil {
		return &decodeError{msg: decodeMessage(err.Error(), prefix), err: err}
	}
	if val, ok := dst.(interface{ Validate() error }); ok && validate {
		return Errors{val.Validate()}.Err() // one line, even from errors.Join
	}
	return nil
}

// decodeError rewords mapstructure's multi-line message into one line
// naming each key and its environment variable.
type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.err }

func decodeMessage(s, prefix string) string {
	_, rest, found := strings.Cut(s, "error(s):")
	if !found {
		return "settings: " + s
	}
	var parts []string
	for _, line := range strings.Split(rest, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "'") {
			if key, msg, ok := strings.Cut(line[1:], "'"); ok {
				line = fmt.Sprintf("%q (%s): %s", key, EnvName(prefix, key), strings.TrimSpace(msg))
			}
		}
		parts = append(parts, line)
	}
	return "settings: " + strings.Join(parts, "; ")
}

// EnvName returns the environment variable of key: prefix, "_", and the
// key upper-cased with "." replaced by "_".
func EnvName(prefix, key string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

var durationType = reflect.TypeFor[time.Duration]()

// durationHook parses durations from strings and refuses bare numbers
// (is 10 seconds or nanoseconds?), except 0.
func durationHook(f, t reflect.Type, data any) (any, error) {
	if t != durationType {
		return data, nil
	}
	switch f.Kind() {
	case reflect.String:
		text := strings.TrimSpace(data.(string))
		if text == "" { // an empty variable: the zero value
			return time.Duration(0), nil
		}
		d, err := time.ParseDuration(text)
		if err != nil {
			return nil, fmt.Errorf("not a duration (want e.g. \"10s\"): %w", err)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		if reflect.ValueOf(data).IsZero() {
			return time.Duration(0), nil
		}
		if f == durationType { // a default
			return data, nil
		}
		return nil, fmt.Errorf("a bare number is ambiguous; write a duration such as \"%vs\"", data)
	}
	return data, nil
}

var levelType = reflect.TypeFor[slog.Level]()

// levelHook parses log levels by name (debug, info, warn, error).
func levelHook(f, t reflect.Type, data any) (any, error) {
	if t != levelType || f == levelType {
		return data, nil
	}
	if f.Kind() != reflect.String {
		return nil, errors.New("want debug, info, warn or error")
	}
	text := strings.TrimSpace(data.(string))
	if text == "" {
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(text)); err != nil {
		return nil, fmt.Errorf("%q is not a log level: want debug, info, warn or error", text)
	}
	return l, nil
}

// sliceHook splits a comma-separated string into a list, trimming spaces.
func sliceHook(f, t reflect.Type, data any) (any, error) {
	if f.Kind() != reflect.String || t.Kind() != reflect.Slice {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

// scalarHook decodes the scalar fields (strings, booleans, numbers; not
// durations or log levels, which have their own hooks). A string, as every
// environment variable is, is parsed as the field's type ("" is its zero
// value, as an empty variable clears the file's value). A value of another
// type, which only the file gives, must be of the field's type: a number is
// no string (quote it: YAML reads password: 012345 as the octal number
// 5349), a number no boolean, a fraction no whole number. Errors never
// show the value, which may be a secret.
func scalarHook(f, t reflect.Type, data any) (any, error) {
	if data == nil || t == durationType || t == levelType {
		return data, nil
	}
	in := reflect.ValueOf(data)
	if f.Kind() == reflect.String && t.Kind() != reflect.String {
		return parseScalar(strings.TrimSpace(in.String()), t)
	}
	switch t.Kind() {
	case reflect.String:
		if f.Kind() != reflect.String {
			return nil, fmt.Errorf("want a string, not %s: quote the value (\"...\")", kindName(f))
		}
	case reflect.Bool:
		if f.Kind() != reflect.Bool {
			return nil, fmt.Errorf("want true or false, not %s", kindName(f))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var n int64
		switch {
		case in.CanInt():
			n = in.Int()
		case in.CanUint() && in.Uint() <= math.MaxInt64:
			n = int64(in.Uint())
		case in.CanFloat() && in.Float() == math.Trunc(in.Float()) && math.Abs(in.Float()) < 1<<63:
			n = int64(in.Float())
		case in.CanFloat() || in.CanUint():
			return nil, errors.New("want a whole number in range")
		default:
			return nil, fmt.Errorf("want a whole number, not %s", kindName(f))
		}
		if reflect.Zero(t).OverflowInt(n) {
			return nil, errors.New("want a whole number in range")
		}
		return n, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var n uint64
		switch {
		case in.CanUint():
			n = in.Uint()
		case in.CanInt() && in.Int() >= 0:
			n = uint64(in.Int())
		case in.CanFloat() && in.Float() == math.Trunc(in.Float()) && in.Float() >= 0 && in.Float() < 1<<64:
			n = uint64(in.Float())
		case in.CanFloat() || in.CanInt():
			return nil, errors.New("want a whole number, not negative, in range")
		default:
			return nil, fmt.Errorf("want a whole number, not %s", kindName(f))
		}
		if reflect.Zero(t).OverflowUint(n) {
			return nil, errors.New("want a whole number in range")
		}
		return n, nil
	case reflect.Float32, reflect.Float64:
		switch {
		case in.CanFloat():
			return in.Float(), nil
		case in.CanInt():
			return float64(in.Int()), nil
		case in.CanUint():
			return float64(in.Uint()), nil
		}
		return nil, fmt.Errorf("want a number, not %s", kindName(f))
	}
	return data, nil
}

// parseScalar parses text (an environment variable's, or a quoted file
// value) as a t; "" is its zero value.
func parseScalar(text string, t reflect.Type) (any, error) {
	out := reflect.New(t).Elem()
	if text == "" {
		return out.Interface(), nil
	}
	switch t.Kind() {
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, errors.New("want true or false")
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(text, 10, t.Bits())
		if err != nil {
			return nil, errors.New("want a whole number in range")
		}
		out.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(text, 10, t.Bits())
		if err != nil {
			return nil, errors.New("want a whole number, not negative, in range")
		}
		out.SetUint(n)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(text, t.Bits())
		if err != nil {
			return nil, errors.New("want a number")
		}
		out.SetFloat(x)
	default: // lists, maps and structs: mapstructure says what it wants
		return text, nil
	}
	return out.Interface(), nil
}

// kindName names a file value's type in an error.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a map"
	}
	return "a " + t.Kind().String()
}

// collectLeaves maps each leaf key of a struct to its field value:
// structs (except time types) nest with ".", ",squash" embeds flatten.
func collectLeaves(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("mapstructure")
		name, rest, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		squash := strings.Contains(rest, "squash")
		if name == "" && !squash {
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				squash = true
			} else {
				name = strings.ToLower(f.Name)
			}
		}
		if squash && fv.Kind() == reflect.Struct {
			collectLeaves(fv, prefix, out)
			continue
		}
		key := prefix + strings.ToLower(name)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Time]() {
			collectLeaves(fv, key+".", out)
			continue
		}
		out[key] = fv
	}
}

// known reports whether k is a leaf key or lies under a map-typed leaf.
func known(k string, leaves map[string]reflect.Value) bool {
	if _, ok := leaves[k]; ok {
		return true
	}
	for p := k; ; {
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return false
		}
		p = p[:i]
		if lv, ok := leaves[p]; ok && lv.Kind() == reflect.Map {
			return true
		}
	}
}

// Effective returns the whole configuration in cfg (a struct, or a pointer
// to one, as [Load] fills it) as a log value: every key with its value,
// durations as "10s", secrets redacted ([Secret] values, string values of
// keys that name a password, token or secret, and in URLs their passwords
// and the values of query parameters such as token=, access_token=, key=
// or password=).
// Log it once at start-up:
//
//	logger.Info("mediator starting", "config", settings.Effective(&cfg))
func Effective(cfg any) slog.Value {
	rv := reflect.ValueOf(cfg)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return slog.StringValue(fmt.Sprintf("(not a settings struct: %T)", cfg))
	}
	leaves := map[string]reflect.Value{}
	collectLeaves(rv, "", leaves)
	keys := make([]string, 0, len(leaves))
	for k := range leaves {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.String(k, effectiveValue(k, leaves[k])))
	}
	return slog.GroupValue(attrs...)
}

var secretType = reflect.TypeFor[Secret]()

func effectiveValue(key string, v reflect.Value) string {
	last := key[strings.LastIndexByte(key, '.')+1:]
	switch {
	case v.Type() == secretType || (v.Kind() == reflect.String && isSecretName(last)):
		return Secret(v.String()).String()
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Type() == levelType:
		return slog.Level(v.Int()).String()
	case v.Kind() == reflect.String && (last == "url" || strings.HasSuffix(last, "_url") || strings.Contains(v.String(), "://")):
		// Any URL, such as notify_emr.endpoint: its password and the
		// secrets of its query string (?access_token=...) are hidden.
		return redact.URL(v.String())
	case v.Kind() == reflect.Map:
		return fmt.Sprintf("(%d entries)", v.Len()) // values may be secrets
	}
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprint(v.Interface())
}

func isSecretName(name string) bool {
	name = strings.ToLower(name)
	if name == "pass" || name == "pwd" || name == "key" {
		return true
	}
	for _, w := range []string{"password", "passwd", "token", "secret", "api_key", "apikey", "credential", "private_key"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
