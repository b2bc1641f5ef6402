package settings

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// writeSelfSigned writes a self-signed certificate and its key as PEM
// files and returns their paths.
func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mediator"},
		DNSNames: []string{"mediator"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

func TestLoadInboundAuthAndTLS(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t)
	for k, v := range map[string]string{
		"MEDIATOR_AUTH_USERNAME": "openhim", "MEDIATOR_AUTH_PASSWORD": "route-pass", "MEDIATOR_AUTH_TOKEN": "tok-123",
		"MEDIATOR_TLS_CERT_FILE": certFile, "MEDIATOR_TLS_KEY_FILE": keyFile, "MEDIATOR_TLS_CLIENT_CA_FILE": certFile,
		"MEDIATOR_METRICS_LISTEN": "127.0.0.1:9090", "MEDIATOR_LOG_LEVEL": "debug",
	} {
		t.Setenv(k, v)
	}
	cfg := Default()
	require.NoError(t, Load("", &cfg))
	assert.Equal(t, Auth{Username: "openhim", Password: "route-pass", Token: "tok-123"}, cfg.Auth)
	assert.Equal(t, TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: certFile}, cfg.TLS)
	assert.Equal(t, slog.LevelDebug, cfg.LogLevel)

	var mc mediator.Config
	require.NoError(t, cfg.Apply(&mc))
	assert.Equal(t, mediator.InboundAuth{Username: "openhim", Password: "route-pass", Token: "tok-123", ClientCert: true}, mc.Auth)
	assert.Equal(t, "127.0.0.1:9090", mc.MetricsListen)
	require.NotNil(t, mc.TLSConfig)
	assert.Len(t, mc.TLSConfig.Certificates, 1)
	assert.NotNil(t, mc.TLSConfig.ClientCAs)
	assert.Equal(t, tls.NoClientCert, mc.TLSConfig.ClientAuth, "left to mediator.New, which asks for a certificate and verifies it per request")

	// What the settings log and print names the methods, never the secrets.
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("config", "settings", cfg)
	out := b.String() + fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
	for _, secret := range []string{"route-pass", "tok-123"} {
		assert.NotContains(t, out, secret)
	}
	assert.Contains(t, b.String(), `basic (username \"openhim\"), bearer token, client certificate`)
	assert.Contains(t, b.String(), `"log_level":"DEBUG"`)
}

func TestApplyTLSErrorsNameTheKey(t *testing.T) {
	certFile, keyFile := writeSelfSigned(t)
	tests := []struct {
		name    string
		tls     TLS
		wantErr string
	}{
		{"missing cert", TLS{CertFile: "/nonexistent/cert.pem", KeyFile: keyFile}, "MEDIATOR_TLS_CERT_FILE"},
		{"key of no cert", TLS{CertFile: certFile, KeyFile: certFile}, "tls.key_file (MEDIATOR_TLS_KEY_FILE)"},
		{"missing client CA", TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: "/nonexistent/ca.pem"}, "MEDIATOR_TLS_CLIENT_CA_FILE"},
		{"client CA not PEM", TLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: "testdata/mediator.yaml"}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Default()
			m.TLS = tt.tls
			var mc mediator.Config
			err := m.Apply(&mc)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestValidateInboundSettings(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Mediator)
		wantErr string
	}{
		{"no credentials", func(*Mediator) {}, "settings: the mediator's routes would be open to anyone who reaches listen: " +
			"set auth.username (MEDIATOR_AUTH_USERNAME) and auth.password (MEDIATOR_AUTH_PASSWORD), the credentials core's route will send " +
			"(or auth.token (MEDIATOR_AUTH_TOKEN), for callers that do not go through core, or tls.client_ca_file (MEDIATOR_TLS_CLIENT_CA_FILE)); " +
			"to serve them open because nothing but core can reach listen, set auth.disabled (MEDIATOR_AUTH_DISABLED) to true"},
		{"disabled, yet a token", func(m *Mediator) { m.Auth.Disabled, m.Auth.Token = true, "t" },
			"auth.disabled (MEDIATOR_AUTH_DISABLED) is true, yet credentials are set"},
		{"disabled, yet a client CA", func(m *Mediator) {
			m.Auth.Disabled, m.TLS.CertFile, m.TLS.KeyFile, m.TLS.ClientCAFile = true, "c.pem", "k.pem", "ca.pem"
		}, "auth.disabled (MEDIATOR_AUTH_DISABLED) is true, yet credentials are set"},
		{"only a token for the channel it installs", func(m *Mediator) {
			m.Auth.Token, m.InstallChannels, m.OpenHIM.URL = "t", true, "https://core:8080"
		}, "auth.token (MEDIATOR_AUTH_TOKEN) alone: core's route sends basic auth, not a token"},
		{"username without password", func(m *Mediator) { m.Auth.Username = "u" }, "auth.username (MEDIATOR_AUTH_USERNAME) and auth.password (MEDIATOR_AUTH_PASSWORD) go together"},
		{"password without username", func(m *Mediator) { m.Auth.Password = "p" }, "go together"},
		{"colon in username", func(m *Mediator) { m.Auth.Username, m.Auth.Password = "a:b", "p" }, "must not contain ':'"},
		{"cert without key", func(m *Mediator) { m.TLS.CertFile = "c.pem" }, "tls.cert_file (MEDIATOR_TLS_CERT_FILE) and tls.key_file"},
		{"client CA without TLS", func(m *Mediator) { m.TLS.ClientCAFile = "ca.pem" }, "MEDIATOR_TLS_CLIENT_CA_FILE) needs tls.cert_file"},
		{"metrics on the main address", func(m *Mediator) { m.MetricsListen = m.Listen }, "metrics_listen (MEDIATOR_METRICS_LISTEN) must differ"},
		{"a core that does not exist", func(m *Mediator) { m.OpenHIM.CoreVersion = 9 },
			"openhim.core_version (MEDIATOR_OPENHIM_CORE_VERSION) is 9; want the major version of your core: 4 to 8"},
		{"a negative core version", func(m *Mediator) { m.OpenHIM.CoreVersion = -1 }, "openhim.core_version (MEDIATOR_OPENHIM_CORE_VERSION) is -1"},
		// openhim-core 4.0.5 src/middleware/router.js: secureProtocol 'TLSv1_method'.
		{"HTTPS routes with core 4", func(m *Mediator) {
			m.TLS.CertFile, m.TLS.KeyFile, m.OpenHIM.CoreVersion = "c.pem", "k.pem", 4
		}, "tls.cert_file (MEDIATOR_TLS_CERT_FILE): core 4 reaches an HTTPS route with TLS 1.0 only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Default()
			tt.edit(&m)
			err := m.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
	for name, edit := range map[string]func(*Mediator){
		"basic": func(m *Mediator) { m.Auth = Auth{Username: "u", Password: "p"} },
		"token": func(m *Mediator) { m.Auth.Token = "t" },
		"token and basic for core": func(m *Mediator) {
			m.Auth, m.InstallChannels, m.OpenHIM.URL = Auth{Username: "u", Password: "p", Token: "t"}, true, "https://core:8080"
		},
		"disabled": func(m *Mediator) { m.Auth.Disabled = true },
		"disabled, installing the channel": func(m *Mediator) {
			m.Auth.Disabled, m.InstallChannels, m.OpenHIM.URL = true, true, "https://core:8080"
		},
		"client certificates": func(m *Mediator) { // core 8, the default, speaks TLS 1.2
			m.TLS.CertFile, m.TLS.KeyFile, m.TLS.ClientCAFile = "c.pem", "k.pem", "ca.pem"
		},
	} {
		m := Default()
		edit(&m)
		assert.NoError(t, m.Validate(), name)
		// What mediator.New accepts: a method or Open, never both.
		a := m.InboundAuth()
		assert.NotEqual(t, a.Open, a.Username != "" || a.Token != "" || a.ClientCert, name)
	}
}

func TestLoadLogLevel(t *testing.T) {
	tests := []struct {
		env     string
		want    slog.Level
		wantErr string
	}{
		{"debug", slog.LevelDebug, ""},
		{"INFO", slog.LevelInfo, ""},
		{"warn", slog.LevelWarn, ""},
		{" error ", slog.LevelError, ""},
		{"", slog.LevelInfo, ""},
		{"verbose", 0, `"log_level" (MEDIATOR_LOG_LEVEL): "verbose" is not a log level: want debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv("MEDIATOR_LOG_LEVEL", tt.env)
			t.Setenv("MEDIATOR_AUTH_DISABLED", "true")
			cfg := Default()
			err := Load("", &cfg)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "slog", "no Go package or type names")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg.LogLevel)
		})
	}
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "m.yaml")
		require.NoError(t, os.WriteFile(path, []byte("log_level: warn\nauth:\n  disabled: true\n"), 0o600))
		cfg := Default()
		require.NoError(t, Load(path, &cfg))
		assert.Equal(t, slog.LevelWarn, cfg.LogLevel)
	})
}

// TestEmptyEnvOverridesFile: MEDIATOR_X= (set, empty) replaces the file's
// value, so a deployment can clear a setting the file sets.
func TestEmptyEnvOverridesFile(t *testing.T) {
	t.Setenv("MEDIATOR_OPENHIM_USERNAME", "")
	t.Setenv("MEDIATOR_CHT_URL", "")
	t.Setenv("MEDIATOR_HEARTBEAT_INTERVAL", "")
	t.Setenv("MEDIATOR_INSTALL_CHANNELS", "")
	t.Setenv("MEDIATOR_REDACT_HEADERS", "")
	cfg := appSettings{Mediator: Default()}
	require.NoError(t, Load("testdata/mediator.yaml", &cfg))
	assert.Empty(t, cfg.OpenHIM.Username)
	assert.Empty(t, cfg.CHT.URL)
	assert.Zero(t, cfg.HeartbeatInterval)
	assert.False(t, cfg.InstallChannels)
	assert.Empty(t, cfg.RedactHeaders)
	assert.Equal(t, "127.0.0.1:9000", cfg.Listen, "unset variables leave the file's value")
}

// TestValidateOneLine: several problems are one line, each naming the key
// and its variable, never a Go type.
func TestValidateOneLine(t *testing.T) {
	m := Default()
	m.Auth.Disabled = true
	m.Listen = ""
	m.OpenHIM.Auth = "kerberos"
	m.OpenHIM.Timeout = -time.Second
	err := m.Validate()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\n")
	assert.Equal(t, `settings: listen (MEDIATOR_LISTEN) must not be empty; `+
		`openhim.auth (MEDIATOR_OPENHIM_AUTH) is "kerberos"; want basic, token, session or auto; `+
		`openhim.timeout (MEDIATOR_OPENHIM_TIMEOUT) must not be negative`, err.Error())
	var errs Errors
	require.ErrorAs(t, err, &errs)
	assert.Len(t, errs, 3)

	// A program's own checks join the embedded settings' on the same line.
	joined := Errors{m.Validate(), errors.New("cht.url (MEDIATOR_CHT_URL) is required"), nil}.Err()
	assert.NotContains(t, joined.Error(), "\n")
	assert.True(t, strings.HasSuffix(joined.Error(), "; cht.url (MEDIATOR_CHT_URL) is required"))
	open := Default()
	open.Auth.Disabled = true
	assert.NoError(t, Errors{nil, open.Validate()}.Err())
}

func TestEffective(t *testing.T) {
	type app struct {
		Mediator `mapstructure:",squash"`
		CHT      struct {
			URL      string `mapstructure:"url"`
			Password Secret `mapstructure:"password"`
		} `mapstructure:"cht"`
		APIToken string            `mapstructure:"api_token"`
		APIKey   string            `mapstructure:"fhir_api_key"`
		Pass     string            `mapstructure:"pass"`
		Creds    string            `mapstructure:"credentials"`
		Headers  map[string]string `mapstructure:"headers"`
		Notify   struct {
			Endpoint string `mapstructure:"endpoint"`
		} `mapstructure:"notify"`
	}
	cfg := app{Mediator: Default()}
	cfg.OpenHIM.URL = "https://root:urlpass@core:8080"
	cfg.OpenHIM.Password = "core-pass"
	cfg.Auth = Auth{Username: "route", Password: "route-pass", Token: "tok-1"}
	cfg.CHT.URL = "https://cht.example.org?access_token=query-token"
	cfg.CHT.Password = "cht-pass"
	cfg.Notify.Endpoint = "https://emr.example.org/hook?key=query-key&x=1"
	cfg.APIToken = "plain-token"
	cfg.APIKey, cfg.Pass, cfg.Creds = "plain-api-key", "plain-pass", "plain-creds"
	cfg.TLS.KeyFile = "/etc/mediator/key.pem"
	cfg.Headers = map[string]string{"X-Key": "header-secret"}

	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("starting", "config", Effective(&cfg))
	out := b.String()
	for _, secret := range []string{"urlpass", "core-pass", "route-pass", "tok-1", "cht-pass", "plain-token", "header-secret",
		"plain-api-key", "plain-pass", "plain-creds",
		"query-token", "query-key"} {
		assert.NotContains(t, out, secret)
	}
	for _, want := range []string{`"heartbeat_interval":"10s"`, `"openhim.timeout":"10s"`, `"log_level":"INFO"`,
		`"cht.url":"https://cht.example.org?access_token=xxxxx"`, `"notify.endpoint":"https://emr.example.org/hook?key=xxxxx&x=1"`, `"openhim.url":"https://root:xxxxx@core:8080"`, `"auth.username":"route"`,
		`"auth.password":"REDACTED"`, `"listen":":8080"`, `"install_channels":"false"`, `"api_token":"REDACTED"`,
		`"tls.key_file":"/etc/mediator/key.pem"`} {
		assert.Contains(t, out, want)
	}
}
