package mediator

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := io.WriteString(zw, s)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// An envelope's body is a JSON string: a plain handler's answer that is not
// UTF-8 text (a compressed or binary upstream body) cannot be carried, and
// is answered 502 Failed naming the status the handler answered, not as a
// success with U+FFFD in place of its bytes.
func TestPlainHandlerBodyNotUTF8Fails(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		header   map[string]string
		body     []byte
		wantCode int
		want     string // in error.message, or the body when wantCode is 2xx
	}{
		{"gzip", 200, map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/json"},
			gzipped(t, `{"resourceType":"Patient"}`), 502, `Content-Encoding "gzip"`},
		{"binary created", 201, map[string]string{"Content-Type": "application/octet-stream"},
			[]byte{0x00, 0xff, 0xfe, 'x'}, 502, "answered 201"},
		{"cut in a rune", 404, nil, []byte("caf\xc3"), 502, "not UTF-8 text"},
		{"text", 200, map[string]string{"Content-Type": "text/plain"}, []byte("café ✓"), 200, "café ✓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.code)
				_, _ = w.Write(tt.body)
			})
			_, base := startMediator(t, Config{Handler: h})
			resp, err := http.Get(base + "/x")
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			require.Equal(t, tt.wantCode, env.Response.Status, "body %q", env.Response.Body)
			if tt.wantCode != 502 {
				assert.Equal(t, StatusSuccessful, env.Status)
				assert.Equal(t, tt.want, env.Response.Body)
				return
			}
			assert.Equal(t, StatusFailed, env.Status)
			require.NotNil(t, env.Error)
			assert.Contains(t, env.Error.Message, tt.want)
			assert.NotContains(t, env.Response.Body, "\uFFFD")
			assert.NotContains(t, strings.ToLower(strings.Join(keys(env.Response.Headers), ",")), "content-encoding")
		})
	}
}

// A HEAD answer goes out without a body or an envelope (writeHead), as
// net/http sends it: what a plain handler writes as its body is dropped, so
// a body over the budget or not UTF-8 text, which no one receives, does not
// turn the answer into a 502.
func TestPlainHandlerHeadAnswerHasNoBody(t *testing.T) {
	const budget = 64
	for name, body := range map[string][]byte{
		"text":        []byte("café"),
		"over budget": bytes.Repeat([]byte("x"), 4*budget),
		"binary":      {0x00, 0xff, 0xfe},
	} {
		t.Run(name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Found", "yes")
				w.Header().Set("Content-Type", "application/octet-stream")
				n, err := w.Write(body)
				assert.NoError(t, err)
				assert.Equal(t, len(body), n)
			})
			_, base := startMediator(t, Config{Handler: h, Capture: CaptureConfig{BodyBudget: budget}})
			req, err := http.NewRequest(http.MethodHead, base+"/x", nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "yes", resp.Header.Get("X-Found"))
			assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"), "no envelope")
		})
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A plain handler's answer is buffered to be wrapped in the envelope: past
// the transaction body budget (Capture.BodyBudget) its writes fail, nothing
// more is buffered, and the answer is 502 Failed. httputil.ReverseProxy
// aborts the handler when a write fails; that too is answered.
func TestPlainHandlerBodyOverBudgetFails(t *testing.T) {
	const budget = 1000
	chunk := []byte(strings.Repeat("a", 100))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 1000 { // 100 KB, far over the budget
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	upURL, err := url.Parse(up.URL)
	require.NoError(t, err)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(upURL) }, Transport: Transport(nil)}

	tests := []struct {
		name     string
		h        http.Handler
		wantCode int
	}{
		{"at the budget", writeChunks(chunk, budget/len(chunk)), 200},
		{"over the budget", writeChunks(chunk, budget/len(chunk)+1), 502},
		{"reverse proxy over the budget", proxy, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := startMediator(t, Config{Handler: tt.h, Capture: CaptureConfig{BodyBudget: budget}})
			resp, err := http.Get(base + "/x")
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			require.Equal(t, tt.wantCode, env.Response.Status, "%.200s", env.Response.Body)
			if tt.wantCode == 200 {
				assert.Len(t, env.Response.Body, budget)
				return
			}
			assert.Equal(t, StatusFailed, env.Status)
			require.NotNil(t, env.Error)
			assert.Contains(t, env.Error.Message, "over the transaction body budget of 1000 bytes")
		})
	}
}

// writeChunks writes chunk n times and stops at the first failed write,
// which must come only past the budget.
func writeChunks(chunk []byte, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := range n {
			if _, err := w.Write(chunk); err != nil {
				if i*len(chunk) < 1000 {
					panic("write failed within the budget")
				}
				return
			}
		}
	}
}

// A plain handler relaying a nested mediator's envelope (a reverse proxy
// through Transport) reports each downstream orchestration once: the
// recorded call merges them, grouped under it and with secret headers
// redacted, so the copies in the relayed envelope are not added again. A
// handler writing an envelope of its own keeps its orchestrations.
func TestRelayedNestedEnvelopeOrchestrationsOnce(t *testing.T) {
	const nested = `{"x-mediator-urn":"urn:mediator:down","status":"Successful",` +
		`"response":{"status":200,"headers":{},"body":"ok","timestamp":"2026-01-02T00:00:00.000Z"},` +
		`"orchestrations":[{"name":"inner","request":{"method":"GET","headers":{"Authorization":"Basic c2VjcmV0"},` +
		`"timestamp":"2026-01-02T00:00:00.000Z"},"response":{"status":200,"headers":{},"body":"x","timestamp":"2026-01-02T00:00:00.000Z"}}]}`
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		_, _ = io.WriteString(w, nested)
	}))
	t.Cleanup(down.Close)
	downURL, err := url.Parse(down.URL)
	require.NoError(t, err)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(downURL) }, Transport: Transport(nil)}
	own := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(WithOrchestration(r.Context(), "down"), http.MethodGet, down.URL, nil)
		resp, err := (&http.Client{Transport: Transport(nil)}).Do(req)
		if err != nil {
			panic(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.Header().Set("Content-Type", ContentType)
		_, _ = io.WriteString(w, `{"response":{"status":200,"body":"mine"},"orchestrations":[{"name":"own","request":{"method":"GET"}}]}`)
	})
	tests := []struct {
		name string
		h    http.Handler
		want []string // names, in any order
	}{
		{"reverse proxy", proxy, []string{"GET 127.0.0.1:" + downURL.Port(), "inner"}},
		{"own envelope", own, []string{"down", "inner", "own"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := startMediator(t, Config{Handler: tt.h})
			resp, err := http.Get(base + "/x")
			require.NoError(t, err)
			env := getEnvelope(t, resp)
			var names []string
			for _, o := range env.Orchestrations {
				names = append(names, o.Name)
				if o.Name == "inner" {
					assert.Equal(t, redacted, o.Request.Headers["Authorization"])
					assert.NotEmpty(t, o.Group)
				}
			}
			assert.ElementsMatch(t, tt.want, names)
		})
	}
}

// An answer of 204 or 304 keeps its envelope: net/http sends no body after
// those statuses, and core, finding application/json+openhim with an empty
// body, fails to parse it and answers its client 500 for work that was
// done, with auto-retry (openhim-core src/middleware/router.js: primary
// route, JSON.parse(response.body), then handleServerError). The envelope
// goes out with HTTP 200; core takes the status from it.
func TestBodylessStatusesKeepTheEnvelope(t *testing.T) {
	tests := []struct {
		name string
		h    http.Handler
		want int // response.status
	}{
		{"HandlerFunc without a result", HandlerFunc(func(*Request) (*Result, error) { return nil, nil }), 204},
		{"Result 304", HandlerFunc(func(*Request) (*Result, error) { return &Result{StatusCode: 304, Status: StatusSuccessful}, nil }), 304},
		{"plain handler 204", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }), 204},
		{"plain handler writing its own envelope", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ContentType)
			w.WriteHeader(204)
			_, _ = io.WriteString(w, `{"x-mediator-urn":"urn:mediator:own","status":"Successful","response":{"status":204,"headers":{},"body":"","timestamp":"2026-01-02T03:04:05Z"}}`)
		}), 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := startMediator(t, Config{Handler: tt.h})
			resp, err := http.Get(base + "/x")
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			env := getEnvelope(t, resp)
			assert.Equal(t, tt.want, env.Response.Status)
			assert.Equal(t, StatusSuccessful, env.Status)
		})
	}
}

// Set-Cookie goes into the envelope as a JSON array of cookies: core's
// router hands it to setCookiesOnContext, which walks it as an array
// (openhim-core src/middleware/router.js, 4.0.5 and 8.5.0); a string is
// walked character by character, and the "=" makes koa's cookies.set throw,
// so core answered its client 500. Other headers stay strings.
func TestSetCookieIsAnArray(t *testing.T) {
	tests := []struct {
		name    string
		cookies []string
		want    string
	}{
		{"one", []string{"AWSALB=abc; Path=/"}, `"Set-Cookie":["AWSALB=abc; Path=/"]`},
		{"two", []string{"a=1; Path=/; Expires=Wed, 09 Jun 2027 10:18:14 GMT", "b=2"},
			`"Set-Cookie":["a=1; Path=/; Expires=Wed, 09 Jun 2027 10:18:14 GMT","b=2"]`},
	}
	for _, tt := range tests {
		for _, kind := range []string{"plain", "Result"} {
			t.Run(tt.name+" "+kind, func(t *testing.T) {
				var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("X-Other", "a, b")
					for _, c := range tt.cookies {
						w.Header().Add("Set-Cookie", c)
					}
				})
				if kind == "Result" {
					h = HandlerFunc(func(*Request) (*Result, error) {
						return &Result{StatusCode: 200, Header: http.Header{"Set-Cookie": tt.cookies, "X-Other": {"a, b"}}}, nil
					})
				}
				_, base := startMediator(t, Config{Handler: h})
				resp, err := http.Get(base + "/x")
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				assert.Contains(t, string(body), tt.want)
				assert.Contains(t, string(body), `"X-Other":"a, b"`)
				env, err := ParseEnvelope(body)
				require.NoError(t, err)
				assert.Equal(t, strings.Join(tt.cookies, "\n"), env.Response.Headers["Set-Cookie"], "read back one cookie per line")
			})
		}
	}
}

// A HEAD request is answered with the status and headers and no envelope:
// net/http sends no body with a HEAD answer, and core, finding
// application/json+openhim without one, fails to parse it and answers its
// client 500 (openhim-core src/middleware/router.js, JSON.parse then
// handleServerError). A plain answer core passes on as it is.
func TestHeadIsAnsweredWithoutAnEnvelope(t *testing.T) {
	tests := []struct {
		name string
		h    http.Handler
		want int
	}{
		{"HandlerFunc", HandlerFunc(func(*Request) (*Result, error) {
			return &Result{StatusCode: 200, Header: http.Header{"Content-Type": {"application/fhir+json"}, "X-Found": {"yes"},
				"Set-Cookie": {"a=1", "b=2"}}}, nil
		}), 200},
		{"plain handler", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Header().Set("X-Found", "yes")
			w.Header()["Set-Cookie"] = []string{"a=1", "b=2"}
			w.WriteHeader(200)
		}), 200},
		{"nested mediator's envelope", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ContentType)
			w.Header().Set("X-Found", "yes")
			w.Header()["Set-Cookie"] = []string{"a=1", "b=2"}
			w.WriteHeader(200)
		}), 200},
		{"error", HandlerFunc(func(*Request) (*Result, error) {
			return nil, Errorf(http.StatusNotFound, "no such thing")
		}), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := startMediator(t, Config{Handler: tt.h})
			resp, err := http.Head(base + "/x")
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
			assert.NotContains(t, resp.Header.Get("Content-Type"), ContentType)
			if tt.want == 200 {
				assert.Equal(t, "yes", resp.Header.Get("X-Found"))
				assert.Equal(t, []string{"a=1", "b=2"}, resp.Header.Values("Set-Cookie"))
			}
		})
	}
}

// A handler's error that wraps a *url.Error (what an http.Client returns)
// reaches core's client, core's stored transaction and the log without the
// URL's query secrets or password: net/http hides only the password.
func TestHandlerErrorTextHidesURLSecrets(t *testing.T) {
	failing := func(*Request) (*Result, error) {
		return nil, fmt.Errorf("read upstream: %w", &url.Error{Op: "Get",
			URL: "https://user:pw-s3cret@upstream.example.org/api?id=1&access_token=tok-s3cret", Err: errors.New("connection refused")})
	}
	_, base := startMediator(t, Config{Handler: HandlerFunc(failing),
		ReadyCheck: func(context.Context) error { _, err := failing(nil); return err }})
	resp, err := http.Get(base + "/x")
	require.NoError(t, err)
	env := getEnvelope(t, resp)
	require.NotNil(t, env.Error)
	for _, text := range []string{env.Response.Body, env.Error.Message} {
		assert.Contains(t, text, "upstream.example.org/api?id=1")
		assert.NotContains(t, text, "s3cret")
	}
	ready, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	b, _ := io.ReadAll(ready.Body)
	ready.Body.Close()
	assert.Contains(t, string(b), "upstream.example.org")
	assert.NotContains(t, string(b), "s3cret")
}
