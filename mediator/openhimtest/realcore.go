package openhimtest

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// RealCore returns the API settings of a real OpenHIM core for end-to-end
// tests, read from the environment: OPENHIM_API_URL, OPENHIM_USERNAME and
// OPENHIM_PASSWORD, OPENHIM_CORE_VERSION (the major version whose rules
// apply; default 4) and OPENHIM_AUTH (the API auth scheme; default auto).
// It skips tb when OPENHIM_API_URL is not set and fails it when
// OPENHIM_CORE_VERSION is not a version.
//
// Core's default certificate has no subject alternative name, which Go
// cannot verify, so the settings skip TLS verification: use them only in
// tests against a core on your own machine.
func RealCore(tb testing.TB) openhim.Config {
	tb.Helper()
	cfg := openhim.Config{
		URL:                os.Getenv("OPENHIM_API_URL"),
		Username:           os.Getenv("OPENHIM_USERNAME"),
		Password:           os.Getenv("OPENHIM_PASSWORD"),
		Auth:               openhim.AuthScheme(os.Getenv("OPENHIM_AUTH")),
		CoreVersion:        4,
		InsecureSkipVerify: true,
		Timeout:            15 * time.Second,
	}
	if cfg.URL == "" {
		tb.Skip("OPENHIM_API_URL is not set: no real OpenHIM core to test against")
	}
	if s := os.Getenv("OPENHIM_CORE_VERSION"); s != "" {
		n, err := strconv.Atoi(strings.SplitN(s, ".", 2)[0])
		if err != nil || n < 1 {
			tb.Fatalf("openhimtest: OPENHIM_CORE_VERSION %q is not a version such as 4 or 8.5", s)
			return cfg
		}
		cfg.CoreVersion = n
	}
	return cfg
}
