package openhimtest_test

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// TestCreateClient checks the client document CreateClient posts: core's
// router accepts basic auth when hex(sha512(password + passwordSalt))
// equals passwordHash (the e2e tests route through the real core 4.0.5
// with such clients); a refusal fails the test.
func TestCreateClient(t *testing.T) {
	var got map[string]any
	status := http.StatusCreated
	core := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/clients" {
			http.NotFound(w, r)
			return
		}
		got = nil
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(status)
	}))
	defer core.Close()
	c, err := openhim.NewClient(openhim.Config{URL: core.URL, Username: "u", Password: "p", Auth: openhim.AuthBasic, MaxRetries: -1}, nil)
	require.NoError(t, err)

	r := &recorder{TB: t}
	openhimtest.CreateClient(r, c, "emr", "s3cret", "emr-role", "other")
	assert.False(t, r.failed)
	assert.Equal(t, "emr", got["clientID"])
	assert.Equal(t, []any{"emr-role", "other"}, got["roles"])
	assert.Equal(t, "sha512", got["passwordAlgorithm"])
	salt, _ := got["passwordSalt"].(string)
	assert.NotEmpty(t, salt)
	sum := sha512.Sum512([]byte("s3cret" + salt))
	assert.Equal(t, hex.EncodeToString(sum[:]), got["passwordHash"])
	assert.NotContains(t, fmt.Sprint(got), "s3cret", "only the hash is sent")

	status = http.StatusConflict
	openhimtest.CreateClient(r, c, "emr", "s3cret")
	assert.True(t, r.failed, "a refusal fails the test")
}

// TestRouted: 401 and 404 (the router before its caches refresh) are
// retried, the first other answer is returned, and a router that never
// routes fails the test.
func TestRouted(t *testing.T) {
	newRouter := func(answers ...int) (*httptest.Server, *atomic.Int32) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := int(calls.Add(1)) - 1
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(answers[min(n, len(answers)-1)])
			_, _ = w.Write(b)
		}))
		t.Cleanup(srv.Close)
		return srv, &calls
	}
	newReq := func(srv *httptest.Server) func() *http.Request {
		return func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/x", strings.NewReader("payload"))
			return req
		}
	}
	router, calls := newRouter(http.StatusUnauthorized, http.StatusNotFound, http.StatusBadGateway)
	code, body := openhimtest.Routed(t, 10*time.Second, newReq(router))
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Equal(t, "payload", body, "each attempt sends a new request with its body")
	assert.Equal(t, int32(3), calls.Load())

	never, _ := newRouter(http.StatusNotFound)
	r := &recorder{TB: t}
	openhimtest.Routed(r, 500*time.Millisecond, newReq(never))
	assert.True(t, r.failed, "never routed")
}
