package settings

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// appSettings is how a program extends the mediator settings.
type appSettings struct {
	Mediator `mapstructure:",squash"`
	CHT      struct {
		URL    string            `mapstructure:"url"`
		Labels map[string]string `mapstructure:"labels"`
	} `mapstructure:"cht"`
	FHIRURL string `mapstructure:"fhir_url"`
}

func TestLoadFileAndEnv(t *testing.T) {
	t.Setenv("MEDIATOR_OPENHIM_PASSWORD", "from-env")
	t.Setenv("MEDIATOR_HEARTBEAT_INTERVAL", "2s")
	t.Setenv("MEDIATOR_FHIR_URL", "http://fhir:8080/fhir")
	t.Setenv("MEDIATOR_REDACT_HEADERS", "X-Api-Key, X-Token")
	t.Setenv("MEDIATOR_SERVICE_HOST", "10.0.0.1") // set by Kubernetes; ignored

	cfg := appSettings{Mediator: Default()}
	require.NoError(t, Load("testdata/mediator.yaml", &cfg))
	assert.Equal(t, "127.0.0.1:9000", cfg.Listen, "file")
	assert.Equal(t, 2*time.Second, cfg.HeartbeatInterval, "env wins over file")
	assert.True(t, cfg.InstallChannels)
	assert.Equal(t, []string{"X-Api-Key", "X-Token"}, cfg.RedactHeaders, "comma-separated env list")
	assert.Equal(t, OpenHIM{URL: "https://openhim-core:8080", Username: "root@openhim.org", Password: "from-env",
		Auth: "token", InsecureSkipVerify: true, Timeout: 10 * time.Second, CoreVersion: 8}, cfg.OpenHIM)
	assert.Equal(t, "http://cht:5988", cfg.CHT.URL)
	assert.Equal(t, map[string]string{"anything": "goes"}, cfg.CHT.Labels)
	assert.Equal(t, "http://fhir:8080/fhir", cfg.FHIRURL)
	assert.Equal(t, int64(mediator.DefaultMaxBodyBytes), cfg.MaxBodyBytes, "default")
}

func TestLoadJSONAndDefaults(t *testing.T) {
	cfg := Default()
	require.NoError(t, Load("testdata/mediator.json", &cfg))
	want := Default()
	want.Listen = ":7000"
	want.OpenHIM.URL = "http://core:8080"
	want.OpenHIM.Timeout = 3 * time.Second
	want.OpenHIM.CoreVersion = 4
	want.Auth.Token = "route-token"
	assert.Equal(t, want, cfg)

	cfg = Default()
	assert.ErrorContains(t, Load("", &cfg), "auth.disabled (MEDIATOR_AUTH_DISABLED)",
		"the defaults alone leave the routes open, which serving refuses")
	t.Setenv("MEDIATOR_AUTH_DISABLED", "true")
	cfg = Default()
	require.NoError(t, Load("", &cfg))
	want = Default()
	want.Auth.Disabled = true
	assert.Equal(t, want, cfg, "no file: the defaults, and the variable")
}

func TestLoadEnvOnly(t *testing.T) {
	for k, v := range map[string]string{
		"MEDIATOR_LISTEN": ":1234", "MEDIATOR_OPENHIM_URL": "https://core:8080", "MEDIATOR_OPENHIM_USERNAME": "u",
		"MEDIATOR_OPENHIM_PASSWORD": "p", "MEDIATOR_OPENHIM_AUTH": "basic", "MEDIATOR_OPENHIM_INSECURE_SKIP_VERIFY": "true",
		"MEDIATOR_OPENHIM_CA_FILE": "/ca.pem", "MEDIATOR_HEARTBEAT_INTERVAL": "-1s", "MEDIATOR_AUTH_TOKEN": "route-token",
	} {
		t.Setenv(k, v)
	}
	cfg := Default()
	require.NoError(t, Load("", &cfg))
	assert.Equal(t, ":1234", cfg.Listen)
	assert.Equal(t, OpenHIM{URL: "https://core:8080", Username: "u", Password: "p", Auth: "basic",
		InsecureSkipVerify: true, CAFile: "/ca.pem", Timeout: 10 * time.Second, CoreVersion: 8}, cfg.OpenHIM)
	assert.Equal(t, -time.Second, cfg.HeartbeatInterval)

	var mc mediator.Config
	require.NoError(t, cfg.Apply(&mc))
	assert.Equal(t, ":1234", mc.Listen)
	assert.Equal(t, "p", mc.OpenHIM.Password)
	assert.Equal(t, openhim.AuthBasic, mc.OpenHIM.Auth)
	assert.Equal(t, -time.Second, mc.HeartbeatInterval)
	assert.Equal(t, mediator.InboundAuth{Token: "route-token"}, mc.Auth)
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		wantErr    []string
	}{
		{"unknown key", "testdata/unknown.yaml", nil, []string{"unknown key", "openhim.urll"}},
		{"bad bool in file", "testdata/bad-bool.yaml", nil, []string{"insecure_skip_verify"}},
		{"bare number duration", "testdata/bare-duration.yaml", nil, []string{"heartbeat_interval", "ambiguous"}},
		{"bad auth", "testdata/bad-auth.json", nil, []string{"openhim.auth (MEDIATOR_OPENHIM_AUTH)", "kerberos"}},
		{"bad duration in env", "", map[string]string{"MEDIATOR_OPENHIM_TIMEOUT": "soon"}, []string{"openhim.timeout", "not a duration"}},
		{"bad int in env", "", map[string]string{"MEDIATOR_MAX_BODY_BYTES": "lots"}, []string{"max_body_bytes"}},
		{"bad url in env", "", map[string]string{"MEDIATOR_OPENHIM_URL": "ftp://user:secret@core"}, []string{"openhim.url", "ftp://user:xxxxx@core"}},
		{"missing file", "testdata/nope.yaml", nil, []string{"testdata/nope.yaml"}},
		{"unsupported type", "testdata/x.toml", nil, []string{"unsupported file type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg := Default()
			err := Load(tt.file, &cfg)
			require.Error(t, err)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "secret", "secrets never in errors")
		})
	}
	assert.ErrorContains(t, Load("", Default()), "pointer to a struct")
}

func TestEnvName(t *testing.T) {
	assert.Equal(t, "MEDIATOR_OPENHIM_INSECURE_SKIP_VERIFY", EnvName("MEDIATOR", "openhim.insecure_skip_verify"))
	assert.Equal(t, "APP_CHT_URL", EnvName("APP", "cht.url"))
}

func TestSecretsNotLogged(t *testing.T) {
	cfg := Default()
	cfg.OpenHIM.URL = "https://admin:urlpass@core:8080"
	cfg.OpenHIM.Password = "hunter2"
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "settings", cfg, "pw", cfg.OpenHIM.Password)
	out := b.String() + fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.OpenHIM.Password)
	assert.NotContains(t, out, "hunter2")
	assert.NotContains(t, out, "urlpass")
	assert.Contains(t, b.String(), "REDACTED")
}

func TestListenPort(t *testing.T) {
	tests := []struct {
		listen string
		want   int
		err    bool
	}{
		{":8601", 8601, false},
		{"127.0.0.1:5002", 5002, false},
		{"[::1]:9000", 9000, false},
		{":0", 0, true},
		{"localhost", 0, true},
		{":http", 0, true},
		{":70000", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			m := Default()
			m.Listen = tt.listen
			got, err := m.ListenPort()
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), "MEDIATOR_LISTEN") {
					t.Fatalf("ListenPort() = %d, %v; want an error naming MEDIATOR_LISTEN", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ListenPort() = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestEndpointValidate(t *testing.T) {
	for _, tt := range []struct {
		e        Endpoint
		required bool
		want     string
	}{
		{Endpoint{}, true, "settings: cht.url (MEDIATOR_CHT_URL) is required"},
		{Endpoint{}, false, ""},
		{Endpoint{URL: "cht.example.org"}, false, "settings: cht.url (MEDIATOR_CHT_URL) is not an http(s) URL: cht.example.org"},
		{Endpoint{URL: "ftp://admin:pw@cht.example.org"}, true, "ftp://admin:xxxxx@cht.example.org"},
		{Endpoint{URL: "https://cht.example.org"}, true, ""},
		// fhir.New refuses an InstanceURL with credentials, and the examples
		// take it from cht.url: the settings name the fields to use instead.
		{Endpoint{URL: "https://medic:s3cret@cht.example.org"}, true,
			"settings: cht.url (MEDIATOR_CHT_URL) holds credentials: set cht.username and cht.password (MEDIATOR_CHT_USERNAME, MEDIATOR_CHT_PASSWORD) instead: https://medic:xxxxx@cht.example.org"},
		{Endpoint{URL: "https://medic@cht.example.org"}, false, "holds credentials"},
	} {
		err := tt.e.Validate("cht", tt.required)
		if tt.want == "" {
			assert.NoError(t, err, tt.e.URL)
			continue
		}
		require.Error(t, err)
		assert.Contains(t, err.Error(), tt.want)
		assert.NotContains(t, err.Error(), "pw@")
	}
}

// A URL of any shape is reported without its password: in Validate's
// errors, in Effective (the "starting" log line), in String and in
// Endpoint.Validate. url.Parse reads "admin:s3cret@core" as scheme
// "admin" with an opaque part, so URL.Redacted alone would print it.
func TestURLPasswordHiddenWhateverTheShape(t *testing.T) {
	for _, raw := range []string{
		"admin:s3cret@core:8080",
		"//admin:s3cret@core:8080",
		"http//admin:s3cret@core:8080",
		"ftp://admin:s3cret@core",
		"http://admin:s3/cret@core",
		"https://admin:s3cret@core:8080",
	} {
		t.Run(raw, func(t *testing.T) {
			s := Default()
			s.OpenHIM.URL = raw
			s.OpenHIM.Username = "admin"
			var out strings.Builder
			if err := s.Validate(); err != nil {
				out.WriteString(err.Error())
			}
			slog.New(slog.NewJSONHandler(&out, nil)).Info("starting", "config", Effective(&s))
			fmt.Fprintf(&out, "%v %+v %#v", s, s, s)
			if err := (Endpoint{URL: raw}).Validate("cht", true); err != nil {
				out.WriteString(err.Error())
			}
			if strings.Contains(out.String(), "s3") {
				t.Errorf("password shown: %s", out.String())
			}
		})
	}
}

// public_host is the host of core's routes to the mediator: a scheme, port,
// path or credentials in it make a route core cannot use, and an empty one
// a route with no host. Validate refuses them naming the key (empty only
// when the mediator registers), and so do Route and --print-openhim-config.
func TestPublicHostIsABareHostName(t *testing.T) {
	for _, tt := range []struct {
		host, openhimURL string
		ok               bool
	}{
		{"my-mediator", "https://core:8080", true},
		{"mediator.example.org", "https://core:8080", true},
		{"cht_to_fhir", "https://core:8080", true},
		{"10.0.0.5", "https://core:8080", true},
		{"::1", "https://core:8080", true},
		{"[fd00::5]", "https://core:8080", true},
		{"", "", true}, // standalone: no routes
		{"", "https://core:8080", false},
		{"http://my-mediator", "", false},
		{"my-mediator:8601", "", false},
		{"my-mediator/fhir", "", false},
		{"user:pw@my-mediator", "", false},
		{"my mediator", "", false},
	} {
		t.Run(tt.host, func(t *testing.T) {
			m := Default()
			m.PublicHost, m.OpenHIM.URL = tt.host, tt.openhimURL
			m.Auth.Disabled = true
			err := m.Validate()
			_, rerr := m.Route("r")
			if tt.ok {
				assert.NoError(t, err)
				if tt.host != "" {
					assert.NoError(t, rerr)
				}
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "public_host (MEDIATOR_PUBLIC_HOST)")
			assert.NotContains(t, err.Error(), "pw@")
			require.Error(t, rerr, "Route")
			assert.Contains(t, rerr.Error(), "public_host (MEDIATOR_PUBLIC_HOST)")
		})
	}
	_, err := Default().Route("r")
	assert.NoError(t, err, "the default, localhost")
	m := Default()
	m.PublicHost = ""
	_, err = m.Route("r")
	assert.ErrorContains(t, err, "public_host (MEDIATOR_PUBLIC_HOST) must not be empty")
}
