package soak

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// Known secret values. The wrong ones are secrets too: a typo in a password
// is usually one character away from the real one.
const (
	openhimUser      = "ops@example.org"
	openhimSecret    = "oh-Secret-7f3a9c1e"
	openhimWrong     = "oh-Wrong-55d0a2b7"
	chtUser          = "openhim"
	chtSecret        = "cht-Secret-b8e4d2f6"
	chtWrong         = "cht-Wrong-0c9a7e31"
	fhirUser         = "fhir-writer"
	fhirSecret       = "fhir-Secret-3d6b9a0c"
	fhirWrong        = "fhir-Wrong-e2f1c8d4"
	routerSecretUsed = routerPassword
)

// secretLog is a concurrency-safe buffer for a JSON slog handler.
type secretLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *secretLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *secretLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// tokenRecorder records the OpenHIM token headers the mediator sends.
type tokenRecorder struct {
	mu     sync.Mutex
	tokens []string
}

func (r *tokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if tok := req.Header.Get("auth-token"); tok != "" {
		r.mu.Lock()
		r.tokens = append(r.tokens, tok)
		r.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (r *tokenRecorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

// basicAuthProxy serves h behind basic auth user:password (401 otherwise),
// as a FHIR server with credentials would.
func basicAuthProxy(t testing.TB, h http.Handler, user, password string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","diagnostics":"Unauthorized"}]}`)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// forbidden is every form in which a secret could leak.
func forbidden(tokens []string) map[string]string {
	out := map[string]string{}
	for _, s := range []struct{ user, pass string }{
		{openhimUser, openhimSecret}, {openhimUser, openhimWrong},
		{chtUser, chtSecret}, {chtUser, chtWrong},
		{fhirUser, fhirSecret}, {fhirUser, fhirWrong},
		{routerClient, routerSecretUsed},
	} {
		out["password "+s.pass] = s.pass
		out["basic auth of "+s.pass] = base64.StdEncoding.EncodeToString([]byte(s.user + ":" + s.pass))
	}
	for i, tok := range tokens {
		out[fmt.Sprintf("OpenHIM token #%d", i)] = tok
	}
	return out
}

// findSecrets describes each secret found in text, with its context.
func findSecrets(text string, secrets map[string]string) []string {
	var found []string
	for name, s := range secrets {
		if i := strings.Index(text, s); i >= 0 {
			lo, hi := max(0, i-120), min(len(text), i+len(s)+40)
			found = append(found, fmt.Sprintf("the %s: …%s…", name, text[lo:hi]))
		}
	}
	return found
}

// assertNoSecrets fails for each secret found in text.
func assertNoSecrets(t *testing.T, where, text string, secrets map[string]string) {
	t.Helper()
	for _, f := range findSecrets(text, secrets) {
		t.Errorf("%s leak %s", where, f)
	}
}

// TestSecretsNeverLogged runs the cht-to-fhir mediator and the backfill
// with known passwords through bad credentials, 5xx answers and timeouts,
// and searches every log line, error, answer and stored transaction for the
// passwords, their basic-auth encodings and the OpenHIM tokens.
func TestSecretsNeverLogged(t *testing.T) {
	logs := new(secretLog)
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var texts []string // errors and answers seen by callers

	// Token auth over plain http needs a core whose session cookie is not
	// Secure (api.secureCookie: false): core 8 logs a token user into a
	// session too, and fails every such call over http otherwise.
	core := newCore(t, openhimtest.Config{InsecureSessionCookie: true})
	core.AddUser(openhimUser, openhimSecret, "admin")
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1,
		Users: []chttest.User{{Name: chtUser, Password: chtSecret, Roles: []string{"admin"}}, {Name: chttest.AdminUsername, Password: chttest.AdminPassword, Roles: []string{"_admin"}}}})
	t.Cleanup(chtSrv.Close)
	_, err := chtSrv.SeedSynthetic(chttest.Synthetic{Households: 4, PeoplePerHousehold: 2, ReportsPerPerson: 2, Seed: 9})
	require.NoError(t, err)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	fhirProxy := basicAuthProxy(t, fhirSrv.Handler, fhirUser, fhirSecret)
	fhirURL := fhirProxy.URL + fhirSrv.BasePath()
	tokens := new(tokenRecorder)

	// Faults: FHIR 5xx and timeouts, CHT 503 on hydrate.
	require.NoError(t, fhirSrv.SetFaults(fhirtest.Faults{FailRate: 0.3, TimeoutRate: 0.1, Hang: 50 * time.Millisecond, Seed: 1}))
	chtSrv.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: http.StatusServiceUnavailable, Probability: 0.3})

	scenarios := []struct {
		name                       string
		openhimPass, chtPass, fPwd string
	}{
		{"wrong passwords everywhere", openhimWrong, chtWrong, fhirWrong},
		{"right passwords with faults", openhimSecret, chtSecret, fhirSecret},
	}
	for _, sc := range scenarios {
		h, _ := newBridge(t, bridgeConfig{CHTURL: chtSrv.URL, CHTUser: chtUser, CHTPassword: sc.chtPass,
			FHIRURL: fhirURL, FHIRUser: fhirUser, FHIRPassword: sc.fPwd, Logger: logger})
		m, base := newMediator(t, h, openhim.Config{URL: core.URL, Username: openhimUser, Password: sc.openhimPass,
			Auth: openhim.AuthScheme("token"), Timeout: time.Second, HTTPClient: &http.Client{Transport: tokens}},
			50*time.Millisecond, logger)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		if sc.openhimPass == openhimSecret {
			require.Eventually(t, func() bool { return len(core.Heartbeats(chtToFHIRURN)) > 2 }, 10*time.Second, 10*time.Millisecond)
		}
		// Push straight to the mediator (core's router is not needed
		// to see what the mediator logs and answers).
		p, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "secrets", URL: base + push.OutboundPath,
			Map: mixedPayload, RelevantTo: relevant, Server: chtSrv, Timeout: 5 * time.Second, Logger: logger})
		require.NoError(t, err)
		_, err = p.Sync(context.Background())
		if err != nil {
			texts = append(texts, err.Error())
		}
		for _, a := range p.Attempts() {
			texts = append(texts, string(a.Response))
			if a.Err != nil {
				texts = append(texts, a.Err.Error())
			}
		}
		time.Sleep(300 * time.Millisecond) // registration attempts and heartbeats
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			texts = append(texts, err.Error())
		}
	}

	// The backfill, with the wrong and then the right FHIR password.
	mapping := fhir.DefaultMapping()
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: chtSrv.URL, Mapping: mapping})
	require.NoError(t, err)
	for _, pw := range []struct{ cht, fhir string }{{chtWrong, fhirSecret}, {chtSecret, fhirWrong}, {chtSecret, fhirSecret}} {
		client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chtUser, Password: string(pw.cht), Logger: logger,
			RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
		require.NoError(t, err)
		fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirURL, Username: fhirUser, Password: pw.fhir,
			Timeout: time.Second, MaxRetries: -1, Logger: logger})
		require.NoError(t, err)
		sum, err := backfill.Run(context.Background(), backfill.Config{CHT: client, Converter: conv, FHIR: fc,
			CheckpointFile: filepath.Join(t.TempDir(), "cp.json"), MaxAttempts: 3, RetryWait: time.Millisecond, Logger: logger})
		if err != nil {
			texts = append(texts, err.Error())
		}
		if sum != nil {
			data, _ := json.Marshal(sum)
			texts = append(texts, string(data))
		}
	}

	txs, err := json.Marshal(core.Transactions())
	require.NoError(t, err)
	texts = append(texts, string(txs))

	all := logs.String()
	require.NotEmpty(t, tokens.list(), "token auth was used")
	for _, want := range []string{"401", "503"} {
		assert.Contains(t, all, want, "the run went through the failures it is meant to test")
	}
	secrets := forbidden(tokens.list())
	// The search finds what it looks for.
	leak := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(fhirUser+":"+fhirSecret)) + " auth-token: " + tokens.list()[0]
	require.Len(t, findSecrets(leak, secrets), 2)
	t.Logf("searched %d bytes of logs and %d errors and answers for %d secrets", len(all), len(texts), len(secrets))
	assertNoSecrets(t, "the logs", all, secrets)
	assertNoSecrets(t, "errors and answers", strings.Join(texts, "\n"), secrets)
}
