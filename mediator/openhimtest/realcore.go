package openhimtest

import (
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
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

// Routed sends the requests newRequest makes (a new one each time, with
// its body) to a real core's router until core routes one, and returns
// that answer's status and body. While core's router does not know a new
// channel or client yet it answers 401 (core 4) or 404 (core 7.0.1 and
// later); those answers and transport errors are retried every 300 ms. It
// fails tb when timeout passes first.
func Routed(tb testing.TB, timeout time.Duration, newRequest func() *http.Request) (int, string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		code, body, err := routeOnce(newRequest())
		switch {
		case err != nil:
			last = err.Error()
		case code != http.StatusUnauthorized && code != http.StatusNotFound:
			return code, body
		default:
			last = fmt.Sprintf("%d %s", code, body)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("openhimtest: core did not route the request within %v; last answer: %s", timeout, last)
			return 0, ""
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func routeOnce(req *http.Request) (int, string, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
