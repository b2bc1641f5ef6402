package settings

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A file value of the wrong type is refused naming the key, not converted:
// weak typing turned the YAML number 012345 (octal) into the password
// "5349", true into "1", 1.5 bytes into 1 and the number 1 into true. The
// error does not show the value, which may be a password.
func TestWrongTypedFileValuesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"octal-looking password", "openhim:\n  password: 012345\n",
			[]string{`"openhim.password" (MEDIATOR_OPENHIM_PASSWORD)`, "want a string", "quote"}},
		{"hex-looking password", "openhim:\n  password: 0x1F\n",
			[]string{`"openhim.password" (MEDIATOR_OPENHIM_PASSWORD)`, "want a string", "quote"}},
		{"boolean password", "auth:\n  username: u\n  password: true\n",
			[]string{`"auth.password" (MEDIATOR_AUTH_PASSWORD)`, "want a string, not a boolean", "quote"}},
		{"fractional max_body_bytes", "max_body_bytes: 1.5\n",
			[]string{`"max_body_bytes" (MEDIATOR_MAX_BODY_BYTES)`, "whole number"}},
		{"number as bool", "install_channels: 1\n",
			[]string{`"install_channels" (MEDIATOR_INSTALL_CHANNELS)`, "want true or false"}},
		{"bool as number", "openhim:\n  core_version: true\n",
			[]string{`"openhim.core_version" (MEDIATOR_OPENHIM_CORE_VERSION)`, "whole number"}},
		{"number in a list", "redact_headers: [1]\n", []string{"redact_headers", "want a string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml), 0o600))
			m := Default()
			err := Load(p, &m)
			require.Error(t, err, "accepted %q: password=%q max_body_bytes=%d install_channels=%t",
				tc.yaml, string(m.OpenHIM.Password), m.MaxBodyBytes, m.InstallChannels)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			for _, secret := range []string{"5349", "012345", "31", "0x1F"} {
				assert.NotContains(t, err.Error(), secret, "the value is not shown")
			}
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

// The same values written as the file's own types, quoted, and as a JSON
// file's numbers (JSON has no integers) are read.
func TestRightTypedFileValuesAreRead(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(yml, []byte("openhim:\n  password: \"012345\"\n  core_version: 7\n"+
		"max_body_bytes: 2048\ninstall_channels: true\nrestore_channels: \"true\"\nauth:\n  disabled: true\n"), 0o600))
	m := Default()
	require.NoError(t, Load(yml, &m))
	assert.Equal(t, Secret("012345"), m.OpenHIM.Password)
	assert.Equal(t, 7, m.OpenHIM.CoreVersion)
	assert.Equal(t, int64(2048), m.MaxBodyBytes)
	assert.True(t, m.InstallChannels)
	assert.True(t, m.RestoreChannels, "a quoted boolean is read as the environment's")

	js := filepath.Join(dir, "c.json")
	require.NoError(t, os.WriteFile(js, []byte(`{"max_body_bytes": 4096, "openhim": {"core_version": 5}, "auth": {"disabled": true}}`), 0o600))
	m = Default()
	require.NoError(t, Load(js, &m))
	assert.Equal(t, int64(4096), m.MaxBodyBytes)
	assert.Equal(t, 5, m.OpenHIM.CoreVersion)

	require.NoError(t, os.WriteFile(js, []byte(`{"max_body_bytes": 1.5}`), 0o600))
	assert.ErrorContains(t, Load(js, new(Mediator)), "max_body_bytes")
}

// Every variable is read, whatever its field's type: environment values are
// strings, and with weak typing off each is parsed as its field's type.
func TestEveryVariableIsRead(t *testing.T) {
	type app struct {
		Mediator `mapstructure:",squash"`
		Extra    struct {
			Count   uint16  `mapstructure:"count"`
			Ratio   float64 `mapstructure:"ratio"`
			Small   int8    `mapstructure:"small"`
			Enabled bool    `mapstructure:"enabled"`
		} `mapstructure:"extra"`
	}
	values := map[reflect.Kind]string{reflect.String: "s", reflect.Bool: "true", reflect.Int: "7", reflect.Int8: "-7",
		reflect.Int64: "7", reflect.Uint16: "7", reflect.Float64: "0.5", reflect.Slice: "A, B"}
	var probe app
	leaves := map[string]reflect.Value{}
	collectLeaves(reflect.ValueOf(&probe).Elem(), "", leaves)
	want := map[string]string{}
	for k, v := range leaves {
		text, ok := values[v.Kind()]
		switch {
		case v.Type() == durationType:
			text = "7s"
		case v.Type() == levelType:
			text = "warn"
		case !ok:
			t.Fatalf("%s: no test value for %s", k, v.Type())
		}
		t.Setenv(EnvName(DefaultEnvPrefix, k), text)
		want[k] = text
	}
	got := app{Mediator: Default()}
	require.NoError(t, loadWith(Options{}, &got, false))
	leaves = map[string]reflect.Value{}
	collectLeaves(reflect.ValueOf(&got).Elem(), "", leaves)
	for k, v := range leaves {
		s := fmt.Sprint(v.Interface())
		switch {
		case v.Kind() == reflect.String:
			s = v.String() // a Secret prints redacted
		case v.Type() == levelType:
			s = strings.ToLower(s)
		case v.Kind() == reflect.Slice:
			s = strings.Join(v.Interface().([]string), ", ")
		}
		assert.Equal(t, want[k], s, "%s (%s)", k, EnvName(DefaultEnvPrefix, k))
	}

	for k, text := range map[string]string{"max_body_bytes": "1.5", "install_channels": "1.0", "extra.small": "300",
		"extra.count": "-1", "openhim.core_version": "0x10"} {
		t.Run(k+"="+text, func(t *testing.T) {
			t.Setenv(EnvName(DefaultEnvPrefix, k), text)
			err := loadWith(Options{}, &app{Mediator: Default()}, false)
			require.Error(t, err)
			assert.Contains(t, err.Error(), EnvName(DefaultEnvPrefix, k))
		})
	}
}
