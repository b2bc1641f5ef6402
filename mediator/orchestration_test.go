package mediator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-resty/resty/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// upstream answers with the echo of what it received and some headers.
func upstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/nested":
			data, err := os.ReadFile(filepath.Join("testdata", "serving", "nested-envelope.json"))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("Content-Type", ContentType+"; charset=utf-8")
			_, _ = w.Write(data)
			return
		case "/fail":
			http.Error(w, "upstream broke", http.StatusBadGateway)
			return
		}
		w.Header().Set("Set-Cookie", "session=secret")
		w.Header().Set("X.Dotted", "d")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "got %d bytes: %s", len(body), body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTransportRecords(t *testing.T) {
	srv := upstream(t)
	u, _ := url.Parse(srv.URL)
	client := &http.Client{Transport: Transport(nil)}
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{MaxBodyBytes: 16, RedactHeaders: []string{"x-api-key"}})

	longBody := strings.Repeat("x", 40)
	req, err := http.NewRequestWithContext(WithOrchestrationGroup(ctx, "save", "cht"), http.MethodPost,
		srv.URL+"/path/a?q=1&access_token=s3cr3t&r=2", strings.NewReader(longBody))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Basic c2VjcmV0")
	req.Header.Set("Cookie", "c=secret")
	req.Header.Set("X-Api-Key", "k3y")
	req.Header.Set("X-Trace", "t1")
	resp, err := client.Do(req)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, "got 40 bytes: "+longBody, string(got), "caller and upstream get the full bodies")
	assert.Equal(t, "Basic c2VjcmV0", req.Header.Get("Authorization"), "the caller's request is not modified")

	list := orchs()
	require.Len(t, list, 1)
	o := list[0]
	assert.Equal(t, "save", o.Name)
	assert.Equal(t, "cht", o.Group)
	assert.Equal(t, OrchestrationRequest{
		Host: u.Hostname(), Port: u.Port(), Path: "/path/a", Querystring: "q=1&access_token=xxxxx&r=2", Method: "POST",
		Headers: map[string]string{"Authorization": redacted, "Cookie": redacted, "X-Api-Key": redacted,
			"X-Trace": "t1"},
		Body:      strings.Repeat("x", 16) + truncateMarker,
		Timestamp: o.Request.Timestamp,
	}, o.Request)
	require.NotNil(t, o.Response)
	assert.Equal(t, 200, o.Response.Status)
	assert.Equal(t, redacted, o.Response.Headers["Set-Cookie"])
	assert.Equal(t, "got 40 bytes: xx"+truncateMarker, o.Response.Body)
	assert.False(t, o.Request.Timestamp.IsZero())
	assert.False(t, o.Response.Timestamp.Before(o.Request.Timestamp))
	assert.Nil(t, o.Error)
}

func TestTransportDefaultNameAndPort(t *testing.T) {
	srv := upstream(t)
	u, _ := url.Parse(srv.URL)
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/fail", nil)
	resp, err := (&http.Client{Transport: Transport(nil)}).Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	o := orchs()[0]
	assert.Equal(t, "GET "+u.Host, o.Name)
	assert.Equal(t, 502, o.Response.Status)
	assert.Equal(t, "upstream broke\n", o.Response.Body)
	assert.Equal(t, StatusCompletedWithErrors, computeStatus(200, orchs()))
}

type failingTransport struct{ closed bool }

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		f.closed = r.Body.Close() == nil
	}
	return nil, errors.New("dial tcp 10.0.0.1:443: connect: connection refused")
}

func TestTransportError(t *testing.T) {
	ft := &failingTransport{}
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{})
	req, _ := http.NewRequestWithContext(WithOrchestration(ctx, "fhir"), http.MethodPut, "https://fhir.example/Patient/1", strings.NewReader("{}"))
	_, err := Transport(ft).RoundTrip(req)
	require.Error(t, err)
	assert.True(t, ft.closed, "request body closed")
	o := orchs()[0]
	assert.Equal(t, "fhir", o.Name)
	assert.Equal(t, "443", o.Request.Port)
	assert.Nil(t, o.Response)
	require.NotNil(t, o.Error)
	assert.Contains(t, o.Error.Message, "connection refused")
}

// rewindingTransport reads the body, then rewinds it with GetBody and sends
// it again, as http.Transport does to retry on a fresh connection.
type rewindingTransport struct{ sent []string }

func (rt *rewindingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	rt.sent = append(rt.sent, string(b))
	body, err := r.GetBody()
	if err != nil {
		return nil, err
	}
	b, _ = io.ReadAll(body)
	body.Close()
	rt.sent = append(rt.sent, string(b))
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
}

func TestTransportRecordsRewoundBodyOnce(t *testing.T) {
	rt := &rewindingTransport{}
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://up/x", strings.NewReader("payload"))
	resp, err := Transport(rt).RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"payload", "payload"}, rt.sent)
	assert.Equal(t, "payload", orchs()[0].Request.Body)
}

func TestTransportWithoutRecorderPassesThrough(t *testing.T) {
	srv := upstream(t)
	resp, err := (&http.Client{Transport: Transport(nil)}).Get(srv.URL + "/x")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "got 0 bytes: ", string(b))
	assert.Nil(t, Orchestrations(context.Background()))
}

func TestTransportMergesNestedEnvelope(t *testing.T) {
	srv := upstream(t)
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{MaxBodyBytes: 8})
	req, _ := http.NewRequestWithContext(WithOrchestration(ctx, "downstream mediator"), http.MethodGet, srv.URL+"/nested", nil)
	resp, err := (&http.Client{Transport: Transport(nil)}).Do(req)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(raw), "x-mediator-urn", "the caller gets the envelope")

	list := orchs()
	require.Len(t, list, 2)
	// The nested one started (2026-01-02) before ours (now): ordered by start.
	assert.Equal(t, "downstream lookup", list[0].Name)
	assert.Equal(t, "downstream mediator", list[0].Group)
	assert.Equal(t, "name=ann&access_token=xxxxx", list[0].Request.Querystring, "a nested mediator's query secrets are masked too")
	assert.Equal(t, "downstream mediator", list[1].Name)
	assert.Equal(t, `{"id":"abc"}`, list[1].Response.Body, "nested envelope replaced by its response body")

	env := &Envelope{Orchestrations: list}
	require.NoError(t, env.Normalize("urn:x", list[1].Request.Timestamp))
	assert.Equal(t, map[string]string{"x\uff0ecustom\uff04key": "v"}, env.Orchestrations[0].Response.Headers)
}

func TestTransportConcurrent(t *testing.T) {
	srv := upstream(t)
	client := &http.Client{Transport: Transport(nil)}
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(WithOrchestration(ctx, fmt.Sprint("call ", i)), http.MethodPost, srv.URL, strings.NewReader(fmt.Sprint(i)))
			resp, err := client.Do(req)
			if assert.NoError(t, err) {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	list := orchs()
	require.Len(t, list, 8)
	names := map[string]bool{}
	for _, o := range list {
		names[o.Name] = true
		assert.Equal(t, "got 1 bytes: "+o.Request.Body, o.Response.Body)
	}
	assert.Len(t, names, 8)
}

func TestTransportWithResty(t *testing.T) {
	srv := upstream(t)
	client := resty.New().SetTransport(Transport(nil)).SetBaseURL(srv.URL)
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{})
	resp, err := client.R().SetContext(WithOrchestration(ctx, "resty call")).SetBody("hello").Post("/r")
	require.NoError(t, err)
	assert.Equal(t, "got 5 bytes: hello", resp.String())
	list := orchs()
	require.Len(t, list, 1)
	assert.Equal(t, "resty call", list[0].Name)
	assert.Equal(t, "hello", list[0].Request.Body)
	assert.Equal(t, "got 5 bytes: hello", list[0].Response.Body)
}

func TestAddOrchestration(t *testing.T) {
	assert.False(t, AddOrchestration(context.Background(), Orchestration{Name: "x"}))
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{})
	require.True(t, AddOrchestration(ctx, Orchestration{Name: "queue publish", Request: OrchestrationRequest{Body: "m"}}))
	list := orchs()
	require.Len(t, list, 1)
	assert.Equal(t, "m", list[0].Request.Body)
	assert.False(t, list[0].Request.Timestamp.IsZero())
}

// TestTransportSnapshotWhileCalling takes snapshots while calls with known
// body lengths are in flight: under -race, any body buffer assigned outside
// the recorder's lock after the record is published is reported.
func TestTransportSnapshotWhileCalling(t *testing.T) {
	srv := upstream(t)
	client := &http.Client{Transport: Transport(nil)}
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{})
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, o := range Orchestrations(ctx) {
					_ = o.Request.Body
				}
			}
		})
	}
	const calls = 40
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			body := fmt.Sprint("body ", i)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(body))
			resp, err := client.Do(req)
			if assert.NoError(t, err) {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	list := orchs()
	require.Len(t, list, calls)
	for _, o := range list {
		assert.Equal(t, fmt.Sprintf("got %d bytes: %s", len(o.Request.Body), o.Request.Body), o.Response.Body)
	}
}

// TestTransportRedactsNonCanonicalHeaders checks that secrets are redacted
// whatever the case of the header key and of the configured names, in our
// orchestrations and in those merged from a nested envelope.
func TestTransportRedactsNonCanonicalHeaders(t *testing.T) {
	nested := `{"x-mediator-urn":"urn:mediator:down","status":"Successful",
		"response":{"status":200,"body":"ok","timestamp":"2026-01-02T03:04:05Z"},
		"orchestrations":[{"name":"inner","request":{"method":"GET","headers":{"authorization":"Bearer in","x-api-key":"k-in","x-trace":"t"},"timestamp":"2026-01-02T03:04:04Z"},
		"response":{"status":200,"headers":{"set-cookie":"s=in","X-Custom-Secret":"c-in"},"timestamp":"2026-01-02T03:04:05Z"}}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		_, _ = io.WriteString(w, nested)
	}))
	t.Cleanup(srv.Close)
	ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{RedactHeaders: []string{"x-api-key", "X-CUSTOM-SECRET"}})
	req, err := http.NewRequestWithContext(WithOrchestration(ctx, "outer"), http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	req.Header["authorization"] = []string{"Bearer out"}
	req.Header["x-api-key"] = []string{"k-out"}
	req.Header["cookie"] = []string{"c=out"}
	req.Header["x-trace"] = []string{"t"}
	resp, err := (&http.Client{Transport: Transport(nil)}).Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())

	list := orchs()
	require.Len(t, list, 2)
	byName := map[string]Orchestration{}
	for _, o := range list {
		byName[o.Name] = o
	}
	tests := []struct {
		name string
		got  map[string]string
		want map[string]string
	}{
		{"outer request", byName["outer"].Request.Headers, map[string]string{
			"authorization": redacted, "x-api-key": redacted, "cookie": redacted, "x-trace": "t"}},
		{"nested request", byName["inner"].Request.Headers, map[string]string{
			"authorization": redacted, "x-api-key": redacted, "x-trace": "t"}},
		{"nested response", byName["inner"].Response.Headers, map[string]string{
			"set-cookie": redacted, "X-Custom-Secret": redacted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.want {
				assert.Equal(t, v, tt.got[k], k)
			}
		})
	}
}

// TestTransportWithoutBodies: a call made with WithoutBodies is recorded
// with its name, status and redacted headers but neither body, also when
// the answer is a nested mediator's envelope (whose orchestrations would
// carry bodies of their own); the caller still gets the whole body.
func TestTransportWithoutBodies(t *testing.T) {
	srv := upstream(t)
	for _, tc := range []struct{ path, want string }{
		{"/token", "got 20 bytes: client_secret=s3cret"},
		{"/nested", "x-mediator-urn"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			ctx, orchs := RecordOrchestrations(context.Background(), CaptureConfig{})
			ctx = WithoutBodies(WithOrchestration(ctx, "token"))
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+tc.path, strings.NewReader("client_secret=s3cret"))
			require.NoError(t, err)
			resp, err := (&http.Client{Transport: Transport(nil)}).Do(req)
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			assert.Contains(t, string(got), tc.want, "the caller gets the whole body")

			list := orchs()
			require.Len(t, list, 1, "recorded once, nothing merged")
			o := list[0]
			assert.Equal(t, "token", o.Name)
			assert.Empty(t, o.Request.Body)
			require.NotNil(t, o.Response)
			assert.Equal(t, http.StatusOK, o.Response.Status)
			assert.Empty(t, o.Response.Body)
			if tc.path == "/token" {
				assert.Equal(t, redacted, o.Response.Headers["Set-Cookie"])
			}
		})
	}
}
