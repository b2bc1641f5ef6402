package openhimtest

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"net/http"
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

// CreateClient adds a client application to the real core that c talks to
// (POST /clients): clientID with roles, authenticated on core's router by
// HTTP basic authentication with password. Core stores
// hex(sha512(password + passwordSalt)) and checks it that way
// (openhim-core-js src/middleware/basicAuthentication.js); the salt is
// random. It fails tb when core refuses the client.
//
// Core's router knows a new channel and a new client only after it
// refreshes its caches, about every second: until then it answers 401
// (core 4) or 404 (core 7.0.1 and later), so a test retries its first
// routed request while it gets those.
func CreateClient(tb testing.TB, c *openhim.Client, clientID, password string, roles ...string) {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	salt := hex.EncodeToString(b[:])
	sum := sha512.Sum512([]byte(password + salt))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.Do(ctx, http.MethodPost, "/clients", map[string]any{
		"clientID": clientID, "name": clientID, "roles": append([]string{}, roles...),
		"passwordAlgorithm": "sha512", "passwordHash": hex.EncodeToString(sum[:]), "passwordSalt": salt,
	}, nil)
	if err != nil {
		tb.Fatalf("openhimtest: create client %q in core: %v", clientID, err)
	}
}
