package openhimtest_test

import (
	"testing"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
	"github.com/stretchr/testify/assert"
)

// recorder is a testing.TB that records Skip and Fatal instead of ending
// the test, so RealCore's refusals can be checked.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Skip(...any)           { r.skipped = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestRealCore(t *testing.T) {
	tests := []struct {
		name, url, version, auth string
		skipped, failed          bool
		wantVersion              int
		wantAuth                 openhim.AuthScheme
	}{
		{name: "unset", skipped: true, wantVersion: 4},
		{name: "defaults", url: "https://core:8080", wantVersion: 4},
		{name: "8.5 with basic", url: "https://core:8080", version: "8.5.0", auth: "basic", wantVersion: 8, wantAuth: openhim.AuthBasic},
		{name: "bad version", url: "https://core:8080", version: "eight", failed: true, wantVersion: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OPENHIM_API_URL", tt.url)
			t.Setenv("OPENHIM_CORE_VERSION", tt.version)
			t.Setenv("OPENHIM_AUTH", tt.auth)
			r := &recorder{TB: t}
			cfg := openhimtest.RealCore(r)
			assert.Equal(t, tt.skipped, r.skipped, "skipped")
			assert.Equal(t, tt.failed, r.failed, "failed")
			assert.Equal(t, tt.wantVersion, cfg.CoreVersion)
			assert.Equal(t, tt.wantAuth, cfg.Auth)
			assert.True(t, cfg.InsecureSkipVerify)
		})
	}
}
