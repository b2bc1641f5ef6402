package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testClient returns a client for srv with fast retries.
func testClient(t *testing.T, srv *httptest.Server, cfg ClientConfig) *Client {
	t.Helper()
	cfg.BaseURL = srv.URL + "/fhir"
	c, err := NewClient(cfg)
	require.NoError(t, err)
	c.rc.SetRetryWaitTime(time.Millisecond).SetRetryMaxWaitTime(5 * time.Millisecond)
	return c
}

// answer builds a transaction-response with the given entry statuses.
func answer(statuses ...string) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"transaction-response","entry":[`)
	for i, s := range statuses {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"response":{"status":%q,"location":"Patient/%d/_history/1"}}`, s, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

func bundleOf(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"resource":{"resourceType":"Patient","id":"p%d","name":[{"text":"x[]{}"}]},"request":{"method":"PUT","url":"Patient/p%d"}}`, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func TestTransactionSendsBundleAndChecksAnswer(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/fhir+json")
		io.WriteString(w, answer("201 Created", "200 OK"))
	}))
	defer srv.Close()
	c := testClient(t, srv, ClientConfig{Username: "u", Password: "secret"})
	require.NoError(t, c.Transaction(context.Background(), bundleOf(2)))
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "/fhir", got.URL.Path)
	assert.Equal(t, "application/fhir+json; charset=utf-8", got.Header.Get("Content-Type"), "R4 http.html#mime-type")
	assert.Equal(t, "application/fhir+json", got.Header.Get("Accept"))
	assert.Equal(t, "return=minimal", got.Header.Get("Prefer"))
	user, pass, ok := got.BasicAuth()
	assert.True(t, ok)
	assert.Equal(t, "u", user)
	assert.Equal(t, "secret", pass)
	assert.Equal(t, bundleOf(2), body)
}

func TestTransactionAnswerIsChecked(t *testing.T) {
	outcome := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"HAPI-0550: version conflict"}]}`
	tests := []struct {
		name        string
		status      int
		body        string
		entries     int
		entry       int
		entryStatus int
		reason      string
	}{
		{"non-2xx with outcome", 400, outcome, 1, -1, 0, "HAPI-0550: version conflict"},
		{"non-2xx with details.text", 422, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"bad code"}}]}`, 1, -1, 0, "bad code"},
		{"medplum style", 400, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"structure","details":{"text":"Missing required property"},"expression":["Observation.status"],"diagnostics":"Bundle.entry[0].resource"},{"severity":"error","code":"processing","diagnostics":"second"}]}`, 1, -1, 0, "Bundle.entry[0].resource; Missing required property; second"},
		{"non-2xx plain text", 401, "Unauthorized\n  go away", 1, -1, 0, "Unauthorized go away"},
		{"failed entry", 200, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}},{"response":{"status":"412 Precondition Failed","outcome":` + outcome + `}}]}`, 2, 1, 412, "HAPI-0550: version conflict"},
		{"entry without response", 200, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"fullUrl":"x"}]}`, 1, 0, 0, "entry has no response"},
		{"unparseable entry status", 200, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"ok"}}]}`, 1, 0, 0, `entry status "ok"`},
		{"too few entries", 200, answer("201 Created"), 2, -1, 0, "answer has 1 entries, want 2"},
		{"batch-response", 200, `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"200 OK"}}]}`, 1, -1, 0, "answer is a Bundle batch-response"},
		{"not JSON", 200, `<html>proxy</html>`, 1, -1, 0, "answer is not a JSON object"},
		{"truncated", 200, answer("201 Created")[:60], 1, -1, 0, "answer is not"},
		{"OperationOutcome with 200", 200, outcome, 1, -1, 0, "answer is a OperationOutcome (none)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			err := testClient(t, srv, ClientConfig{}).Transaction(context.Background(), bundleOf(tt.entries))
			var se *ServerError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.status, se.StatusCode)
			assert.Equal(t, tt.entry, se.Entry)
			assert.Equal(t, tt.entryStatus, se.EntryStatus)
			assert.Contains(t, se.Reason, tt.reason)
			assert.Contains(t, err.Error(), srv.URL+"/fhir")
			if tt.entryStatus != 0 {
				require.NotNil(t, se.Outcome)
			}
		})
	}
}

// A transaction whose answer is far larger than any read limit is checked
// in full: a 10,000-entry answer with each resource returned (about 20 MB)
// is a success, not a failure that makes the sender retry forever.
func TestTransactionLargeAnswerIsASuccess(t *testing.T) {
	const n = 10000
	pad := strings.Repeat("x", 2000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[`)
		for i := range n {
			if i > 0 {
				io.WriteString(w, ",")
			}
			fmt.Fprintf(w, `{"resource":{"resourceType":"Observation","id":"o%d","note":[{"text":%q}]},"response":{"status":"201 Created"}}`, i, pad)
		}
		io.WriteString(w, `],"link":[{"relation":"self","url":"x"}]}`)
	}))
	defer srv.Close()
	c := testClient(t, srv, ClientConfig{MaxResponseBytes: 1 << 20})
	require.NoError(t, c.Transaction(context.Background(), bundleOf(n)))
}

func TestTransactionRetriesTransientFailuresOnly(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		wantErr  bool
		calls    int32
	}{
		{"503 then 200", []int{503, 200}, false, 2},
		{"429 then 502 then 200", []int{429, 502, 200}, false, 3},
		{"500 is not retried", []int{500, 200}, true, 1},
		{"400 is not retried", []int{400, 200}, true, 1},
		{"gives up after MaxRetries", []int{503, 503, 503, 200}, true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := calls.Add(1) - 1
				body, _ := io.ReadAll(r.Body)
				if !bytes.Equal(body, bundleOf(1)) {
					t.Errorf("attempt %d sent %q", i, body)
				}
				st := tt.statuses[min(int(i), len(tt.statuses)-1)]
				w.WriteHeader(st)
				if st == 200 {
					io.WriteString(w, answer("200 OK"))
				} else {
					fmt.Fprintf(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"attempt %d"}]}`, i)
				}
			}))
			defer srv.Close()
			err := testClient(t, srv, ClientConfig{}).Transaction(context.Background(), bundleOf(1))
			assert.Equal(t, tt.calls, calls.Load())
			if !tt.wantErr {
				require.NoError(t, err)
				return
			}
			var se *ServerError
			require.ErrorAs(t, err, &se)
			// The last answer is reported, with its outcome.
			assert.Equal(t, fmt.Sprintf("attempt %d", calls.Load()-1), se.Reason)
		})
	}
}

// TestTransactionWithIfMatchIsNotRetriedAfterALostAnswer: a transaction
// with a version-aware entry (If-Match) that the server applied before its
// answer was lost (a proxy's 504, a timeout) would fail its retry: the
// version has moved, and HAPI answers 409 (BaseHapiFhirResourceDao.update,
// ResourceVersionConflictException), others 412. So it is retried only
// when the server did not process it (429, 503), as Create; the same
// bundle without If-Match is retried.
func TestTransactionWithIfMatchIsNotRetriedAfterALostAnswer(t *testing.T) {
	ifMatch := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Task","id":"t1",` +
		`"status":"completed","intent":"order"},"request":{"method":"PUT","url":"Task/t1","ifMatch":"W/\"1\""}}]}`)
	tests := []struct {
		name    string
		bundle  []byte
		first   int // the first attempt's answer
		calls   int32
		wantErr int // status of the *ServerError, 0 = none
	}{
		{"If-Match, 504", ifMatch, http.StatusGatewayTimeout, 1, http.StatusGatewayTimeout},
		{"If-Match, 502", ifMatch, http.StatusBadGateway, 1, http.StatusBadGateway},
		{"If-Match, 503: not processed", ifMatch, http.StatusServiceUnavailable, 2, 0},
		{"If-Match, 429: not processed", ifMatch, http.StatusTooManyRequests, 2, 0},
		{"without If-Match, 504", bundleOf(1), http.StatusGatewayTimeout, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					w.WriteHeader(tt.first)
					return
				}
				io.WriteString(w, answer("200 OK"))
			}))
			defer srv.Close()
			err := testClient(t, srv, ClientConfig{}).Transaction(context.Background(), tt.bundle)
			assert.Equal(t, tt.calls, calls.Load())
			if tt.wantErr == 0 {
				require.NoError(t, err)
				return
			}
			var se *ServerError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.wantErr, se.StatusCode, "the lost answer is reported, not a conflict of the retry")
		})
	}
}

// A 2xx answer is never retried, even when it fails the check: the server
// may have stored the data, and the caller decides.
func TestTransactionBadSuccessIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[]}`)
	}))
	defer srv.Close()
	err := testClient(t, srv, ClientConfig{}).Transaction(context.Background(), bundleOf(1))
	require.Error(t, err)
	assert.EqualValues(t, 1, calls.Load())
}

// hangUp is a handler that closes the connection without answering.
func hangUp(calls *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

func TestCreateIsNotRetriedAfterANetworkErrorButUpdateIs(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(hangUp(&calls))
	defer srv.Close()
	c := testClient(t, srv, ClientConfig{MaxRetries: 2})
	err := c.Create(context.Background(), "Task", []byte(`{"resourceType":"Task"}`), nil)
	require.Error(t, err)
	var se *ServerError
	assert.False(t, errors.As(err, &se), "a network error is not a ServerError")
	assert.EqualValues(t, 1, calls.Load(), "a POST that may have created a resource is not repeated")

	calls.Store(0)
	err = c.Update(context.Background(), "Task", "t1", []byte(`{"resourceType":"Task","id":"t1"}`), nil)
	require.Error(t, err)
	assert.EqualValues(t, 3, calls.Load(), "an idempotent PUT is retried")
}

func TestReadSearchCreateUpdateDelete(t *testing.T) {
	var log []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		log = append(log, r.Method+" "+r.URL.RequestURI()+" "+string(body)+" "+r.Header.Get("Prefer"))
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/fhir/Patient/missing":
			w.WriteHeader(404)
			io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"Resource Patient/missing is not known"}]}`)
		case r.Method == http.MethodGet && r.URL.Path == "/fhir/Patient/p1":
			io.WriteString(w, `{"resourceType":"Patient","id":"p1","active":true}`)
		case r.Method == http.MethodGet && r.URL.Path == "/fhir/Task":
			io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","total":0}`)
		case r.Method == http.MethodPost:
			w.WriteHeader(201)
			io.WriteString(w, `{"resourceType":"Task","id":"server-id","status":"requested","intent":"order"}`)
		case r.Method == http.MethodPut:
			w.Write(body)
		case r.Method == http.MethodDelete:
			w.WriteHeader(204)
		}
	}))
	defer srv.Close()
	c := testClient(t, srv, ClientConfig{})
	ctx := context.Background()

	var p models.Patient
	require.NoError(t, c.Read(ctx, "Patient", "p1", &p))
	assert.Equal(t, "p1", *p.Id)
	var raw json.RawMessage
	require.NoError(t, c.Read(ctx, "Patient", "p1", &raw))
	assert.JSONEq(t, `{"resourceType":"Patient","id":"p1","active":true}`, string(raw))

	err := c.Read(ctx, "Patient", "missing", &p)
	var se *ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 404, se.StatusCode)
	assert.Equal(t, "Resource Patient/missing is not known", se.Reason)

	var b models.Bundle
	require.NoError(t, c.Search(ctx, "Task", url.Values{"status": {"requested"}, "owner": {"Practitioner/a b"}}, &b))
	assert.Equal(t, models.BundleTypeSearchset, b.Type)

	var task models.Task
	status := models.TaskStatusRequested
	require.NoError(t, c.Create(ctx, "Task", models.Task{Status: status, Intent: "order"}, &task))
	assert.Equal(t, "server-id", *task.Id)
	require.NoError(t, c.Update(ctx, "Task", "t1", []byte(`{"resourceType":"Task","id":"t1"}`), nil))
	require.NoError(t, c.Delete(ctx, "Task", "t1"))

	assert.Equal(t, []string{
		"GET /fhir/Patient/p1  ",
		"GET /fhir/Patient/p1  ",
		"GET /fhir/Patient/missing  ",
		"GET /fhir/Task?owner=Practitioner%2Fa+b&status=requested  ",
		`POST /fhir/Task {"status":"requested","intent":"order","resourceType":"Task"} `,
		`PUT /fhir/Task/t1 {"resourceType":"Task","id":"t1"} return=minimal`,
		"DELETE /fhir/Task/t1  ",
	}, log)
}

// Ids that are not FHIR ids never reach the server: a caller's value cannot
// address another path.
func TestInvalidIDsAreRefusedBeforeAnyRequest(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := testClient(t, srv, ClientConfig{})
	for _, id := range []string{"../../_users", "a/b", "..", "a%00b", "_design", strings.Repeat("a", 65), "a b", "é"} {
		assert.Error(t, c.Read(context.Background(), "Patient", id, nil), id)
		assert.Error(t, c.Delete(context.Background(), "Patient", id), id)
	}
	assert.Error(t, c.Read(context.Background(), "Patient/x", "1", nil))
	assert.EqualValues(t, 0, calls.Load())
}

func TestResponseLimitAppliesToReads(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"resourceType":"Patient","id":"p","text":{"div":"`+strings.Repeat("x", 2000)+`"}}`)
	}))
	defer srv.Close()
	err := testClient(t, srv, ClientConfig{MaxResponseBytes: 1000}).Read(context.Background(), "Patient", "p", nil)
	assert.ErrorContains(t, err, "answer larger than 1000 bytes")
}

// A 2xx answer to a write that is over MaxResponseBytes does not make the
// write a failure: the server did it, and a caller told otherwise would
// retry it (a second resource for a Create). The answer is left unread.
func TestResponseLimitDoesNotFailADoneWrite(t *testing.T) {
	big := `{"resourceType":"Task","id":"t1","text":{"div":"` + strings.Repeat("x", 2000) + `"}}`
	var writes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writes.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, big)
	}))
	defer srv.Close()
	c := testClient(t, srv, ClientConfig{MaxResponseBytes: 1000})
	ctx := context.Background()
	task := []byte(`{"resourceType":"Task","status":"requested","intent":"order"}`)
	tests := []struct {
		name  string
		write func(out any) error
	}{
		{"Create", func(out any) error { return c.Create(ctx, "Task", task, out) }},
		{"Update", func(out any) error { return c.Update(ctx, "Task", "t1", task, out) }},
	}
	for _, tt := range tests {
		for _, withOut := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s out=%v", tt.name, withOut), func(t *testing.T) {
				writes.Store(0)
				var raw json.RawMessage
				var out any
				if withOut {
					out = &raw
				}
				require.NoError(t, tt.write(out))
				assert.Empty(t, raw, "the answer is left unread")
				assert.EqualValues(t, 1, writes.Load(), "written once")
			})
		}
	}
	var raw json.RawMessage
	assert.ErrorContains(t, c.Read(ctx, "Task", "t1", &raw), "answer larger than 1000 bytes", "a read still fails")
}

// countingTransport stands in for mediator.Transport: the client must send
// every call through the configured HTTPClient.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestHTTPClientIsUsedAndNotModified(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, answer("200 OK"))
	}))
	defer srv.Close()
	tr := &countingTransport{}
	hc := &http.Client{Transport: tr}
	c := testClient(t, srv, ClientConfig{HTTPClient: hc, Timeout: time.Second})
	require.NoError(t, c.Transaction(context.Background(), bundleOf(1)))
	assert.EqualValues(t, 1, tr.n.Load())
	assert.Zero(t, hc.Timeout, "the caller's client is copied, not changed")
}

func TestClientConfigRedactsThePassword(t *testing.T) {
	var buf bytes.Buffer
	cfg := ClientConfig{BaseURL: "https://user:urlpass@fhir.example.org/fhir", Username: "u", Password: "s3cret"}
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("start", "fhir", cfg)
	assert.NotContains(t, buf.String(), "s3cret")
	assert.NotContains(t, buf.String(), "urlpass")
	assert.Contains(t, buf.String(), `"base_url":"https://fhir.example.org/fhir"`)

	_, err := NewClient(ClientConfig{BaseURL: "fhir.example.org"})
	assert.ErrorContains(t, err, "want an absolute http(s) URL")
}

func TestURLCredentialsAuthenticateAndStayOutOfErrors(t *testing.T) {
	var user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ = r.BasicAuth()
		w.WriteHeader(500)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("me", "pw-in-url")
	c, err := NewClient(ClientConfig{BaseURL: u.String() + "/fhir"})
	require.NoError(t, err)
	err = c.Transaction(context.Background(), bundleOf(1))
	require.Error(t, err)
	assert.Equal(t, "me", user)
	assert.Equal(t, "pw-in-url", pass)
	assert.NotContains(t, err.Error(), "pw-in-url")
}

// countEntries counts a bundle's entries and those HAPI FHIR would merge
// into an earlier one (BaseTransactionProcessor.consolidateDuplicateConditionals:
// key method|url|ifNoneExist; a PUT with a fullUrl and a URL with search
// parameters, a POST with a fullUrl other than its URL and an ifNoneExist).
func TestCountEntries(t *testing.T) {
	entry := func(fullURL, method, url, ifNoneExist string) string {
		e := `{"resource":{"resourceType":"Patient"},"request":{"method":"` + method + `","url":"` + url + `"`
		if ifNoneExist != "" {
			e += `,"ifNoneExist":"` + ifNoneExist + `"`
		}
		e += `}`
		if fullURL != "" {
			e += `,"fullUrl":"` + fullURL + `"`
		}
		return e + `}`
	}
	bundle := func(entries ...string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`)
	}
	putP := entry("urn:uuid:1", "PUT", "Patient?identifier=s|1", "")
	postP := entry("urn:uuid:2", "POST", "Patient", "identifier=s|1")
	tests := []struct {
		name       string
		bundle     []byte
		n, repeats int
	}{
		{"plain", bundleOf(3), 3, 0},
		{"no entry", []byte(`{"resourceType":"Bundle","type":"transaction"}`), 0, 0},
		{"null entry", []byte(`{"resourceType":"Bundle","entry":null}`), 0, 0},
		{"not JSON", []byte(`{"entry":[`), -1, 0},
		{"entries of other types count", []byte(`{"entry":[null,1,{"fullUrl":5,"request":"x"}]}`), 3, 0},
		{"conditional update repeated", bundle(putP, putP, putP), 3, 2},
		{"conditional create repeated", bundle(postP, entry("urn:uuid:3", "POST", "Patient", "identifier=s|1")), 2, 1},
		{"update and create of one identifier differ", bundle(putP, postP), 2, 0},
		{"other parameters differ", bundle(putP, entry("urn:uuid:4", "PUT", "Patient?identifier=s|2", "")), 2, 0},
		{"without fullUrl not merged", bundle(entry("", "PUT", "Patient?identifier=s|1", ""), entry("", "PUT", "Patient?identifier=s|1", "")), 2, 0},
		{"update by id not merged", bundle(entry("urn:uuid:1", "PUT", "Patient/1", ""), entry("urn:uuid:2", "PUT", "Patient/1", "")), 2, 0},
		{"empty query not merged", bundle(entry("urn:uuid:1", "PUT", "Patient?", ""), entry("urn:uuid:2", "PUT", "Patient?", "")), 2, 0},
		{"create without ifNoneExist not merged", bundle(entry("urn:uuid:1", "POST", "Patient", ""), entry("urn:uuid:2", "POST", "Patient", "")), 2, 0},
		// HAPI discards a repeat unwritten: one with other content is not
		// applied, and one without a resource is not merged.
		{"repeat with another resource not counted", bundle(putP, strings.Replace(putP, `"Patient"}`, `"Patient","active":true}`, 1)), 2, 0},
		{"repeat without resource not counted", bundle(putP, `{"fullUrl":"urn:uuid:5","request":{"method":"PUT","url":"Patient?identifier=s|1"}}`), 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, repeats := countEntries(tt.bundle)
			assert.Equal(t, tt.n, n, "entries")
			assert.Equal(t, tt.repeats, repeats, "repeats")
		})
	}
}

// HAPI FHIR merges repeated conditional entries into the first of their
// kind and leaves their answers out (BaseTransactionProcessor.transaction
// removes the empty answer entries): a 2xx answer with an entry fewer per
// repeat, all succeeded, applied every entry. Any other shortfall, or a
// failed entry, is still a failure.
func TestTransactionOfRepeatedConditionalEntriesOnHAPI(t *testing.T) {
	put := `{"fullUrl":"urn:uuid:%d","resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient?identifier=s|1"}}`
	bundle := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` + fmt.Sprintf(put, 1) + "," + fmt.Sprintf(put, 2) + "," +
		`{"resource":{"resourceType":"Patient","id":"p"},"request":{"method":"PUT","url":"Patient/p"}}]}`)
	tests := []struct {
		name   string
		answer string
		ok     bool
	}{
		{"HAPI's answer: the repeat left out", answer("200 OK", "201 Created"), true},
		{"every entry answered", answer("200 OK", "200 OK", "201 Created"), true},
		{"one entry answered", answer("200 OK"), false},
		{"an entry failed", answer("200 OK", "412 Precondition Failed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, tt.answer)
			}))
			defer srv.Close()
			err := testClient(t, srv, ClientConfig{}).Transaction(context.Background(), bundle)
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			var se *ServerError
			assert.ErrorAs(t, err, &se)
		})
	}
}

// HAPI FHIR discards a repeated conditional entry unwritten: when its
// resource is not the first entry's, the answer that leaves it out is a
// failure, its content never stored.
func TestTransactionOfRepeatWithOtherContentOnHAPIFails(t *testing.T) {
	bundle := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","gender":"male"},"request":{"method":"PUT","url":"Patient?identifier=s|1"}},` +
		`{"fullUrl":"urn:uuid:2","resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"PUT","url":"Patient?identifier=s|1"}}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, answer("200 OK"))
	}))
	defer srv.Close()
	err := testClient(t, srv, ClientConfig{}).Transaction(context.Background(), bundle)
	var se *ServerError
	assert.ErrorAs(t, err, &se)
}

// A 2xx answer to a write whose body cannot be read to its end (the
// connection drops half way) or decoded does not make the write a failure
// either: the server did it, and a caller told otherwise would retry it (a
// second resource for a Create). A read still fails.
func TestUnreadableAnswerDoesNotFailADoneWrite(t *testing.T) {
	const cut = "cut" // the body stops half way
	var writes atomic.Int32
	var answerBody atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			writes.Add(1)
		}
		io.Copy(io.Discard, r.Body)
		body := answerBody.Load().(string)
		if body != cut {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, body)
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 201 Created\r\nContent-Type: application/fhir+json\r\nContent-Length: 200\r\n\r\n" + `{"resourceType":"Task","id":"t`)
		buf.Flush()
	}))
	defer srv.Close()
	var logged bytes.Buffer
	c := testClient(t, srv, ClientConfig{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	ctx := context.Background()
	task := []byte(`{"resourceType":"Task","status":"requested","intent":"order"}`)
	tests := []struct {
		name   string
		answer string
		write  func(out any) error
	}{
		{"Create cut short", cut, func(out any) error { return c.Create(ctx, "Task", task, out) }},
		{"Update cut short", cut, func(out any) error { return c.Update(ctx, "Task", "t1", task, out) }},
		{"Delete cut short", cut, func(any) error { return c.Delete(ctx, "Task", "t1") }},
		{"Create not decodable", `{"resourceType":"Task","id":7}`, func(out any) error { return c.Create(ctx, "Task", task, out) }},
		{"Update not JSON", `<html>Created</html>`, func(out any) error { return c.Update(ctx, "Task", "t1", task, out) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answerBody.Store(tt.answer)
			writes.Store(0)
			logged.Reset()
			var out models.Task
			require.NoError(t, tt.write(&out))
			assert.EqualValues(t, 1, writes.Load(), "written once")
			assert.Contains(t, logged.String(), "level=WARN msg=\"fhir: the write succeeded but its answer could not be")
		})
	}
	answerBody.Store(cut)
	var raw json.RawMessage
	assert.Error(t, c.Read(ctx, "Task", "t1", &raw), "a read still fails")
	answerBody.Store(`{"resourceType":"Task","id":7}`)
	var out models.Task
	assert.Error(t, c.Read(ctx, "Task", "t1", &out), "a read still fails")
}

// A redirect that would turn a write into a GET (301, 302 and 303, which
// net/http follows with GET and no body, as for an http → https redirect
// in front of the server) is not followed: the write was not done, and the
// 2xx answer to the GET must not be taken for it. The redirect is returned
// as a *ServerError. A redirect that keeps the method (307, 308) is
// followed with the body.
func TestRedirectThatDropsAWriteIsNotFollowed(t *testing.T) {
	var writes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /fhir<status>/path redirects to /moved/path with <status>.
		if rest, ok := strings.CutPrefix(r.URL.Path, "/fhir"); ok {
			code, path, _ := strings.Cut(rest, "/")
			status, _ := strconv.Atoi(code)
			http.Redirect(w, r, "/moved/"+path, status)
			return
		}
		if r.Method != http.MethodGet {
			writes.Add(1)
		}
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/moved/Task":
			io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","total":0}`)
		case r.Method == http.MethodGet:
			io.WriteString(w, `{"resourceType":"Task","id":"t1","status":"requested","intent":"order"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/moved/":
			io.WriteString(w, answer("200 OK"))
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			w.Write(body)
		case r.Method == http.MethodPut:
			w.Write(body)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	task := []byte(`{"resourceType":"Task","status":"requested","intent":"order"}`)
	for _, status := range []int{301, 302, 303, 307, 308} {
		c, err := NewClient(ClientConfig{BaseURL: srv.URL + "/fhir" + strconv.Itoa(status), MaxRetries: -1})
		require.NoError(t, err)
		tests := []struct {
			name  string
			write func() error
		}{
			{"Create", func() error { return c.Create(ctx, "Task", task, nil) }},
			{"Update", func() error { return c.Update(ctx, "Task", "t1", task, nil) }},
			{"Delete", func() error { return c.Delete(ctx, "Task", "t1") }},
			{"Transaction", func() error { return c.Transaction(ctx, bundleOf(1)) }},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s %d", tt.name, status), func(t *testing.T) {
				writes.Store(0)
				err := tt.write()
				if status == 307 || status == 308 {
					require.NoError(t, err)
					assert.EqualValues(t, 1, writes.Load(), "followed with the method and body")
					return
				}
				var se *ServerError
				require.ErrorAs(t, err, &se, "a write that was not done is no success")
				assert.Equal(t, status, se.StatusCode)
				assert.Contains(t, se.Reason, `redirected to "/moved/`)
				assert.EqualValues(t, 0, writes.Load())
			})
		}
	}
	c, err := NewClient(ClientConfig{BaseURL: srv.URL + "/moved", MaxRetries: -1})
	require.NoError(t, err)
	assert.NoError(t, c.Read(ctx, "Task", "t1", nil), "the server works without redirects")
}

// A redirect to another host or port, or from https to http, is not
// followed, whatever its method: net/http would send the body (patient
// data) there, and the basic-auth credentials to a host of the same name,
// over plain http too. Only http → https on the same host name is.
func TestRedirectElsewhereIsNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		io.WriteString(w, `{"resourceType":"Task","id":"t1","status":"requested","intent":"order"}`)
	}))
	defer other.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect) // to plain http
	}))
	defer secure.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect) // to another port
	}))
	defer plain.Close()
	ctx := context.Background()
	for name, srv := range map[string]*httptest.Server{"https to http": secure, "another port": plain} {
		t.Run(name, func(t *testing.T) {
			elsewhere.Store(0)
			c, err := NewClient(ClientConfig{BaseURL: srv.URL, Username: "u", Password: "p", MaxRetries: -1, HTTPClient: srv.Client()})
			require.NoError(t, err)
			for _, call := range []func() error{
				func() error { return c.Read(ctx, "Task", "t1", nil) },
				func() error {
					return c.Update(ctx, "Task", "t1", []byte(`{"resourceType":"Task","status":"requested","intent":"order"}`), nil)
				},
			} {
				var se *ServerError
				require.ErrorAs(t, call(), &se)
				assert.Equal(t, http.StatusTemporaryRedirect, se.StatusCode)
			}
			assert.Zero(t, elsewhere.Load(), "nothing reached the other server")
		})
	}
}

// TestConfigsRedactSecrets: a ClientConfig or TaskSubscription printed,
// formatted or logged (also inside another struct) shows what a reader
// needs but not its secrets: the password, credentials embedded in
// BaseURL, the values of the notification headers (the EMR's credentials).
func TestConfigsRedactSecrets(t *testing.T) {
	tests := []struct {
		name           string
		v              any
		secrets, shown []string
	}{
		{"ClientConfig",
			ClientConfig{BaseURL: "https://fhiruser:urlpass@fhir.example.org/fhir", Username: "mediator", Password: "s3cret", MaxRetries: 3},
			[]string{"s3cret", "urlpass"}, []string{"mediator", "fhir.example.org", "REDACTED"}},
		{"ClientConfig, URL without scheme",
			ClientConfig{BaseURL: "fhiruser:urlpass@fhir.example.org/fhir", Username: "mediator", Password: "s3cret"},
			[]string{"s3cret", "urlpass"}, []string{"mediator", "fhir.example.org", "REDACTED"}},
		{"TaskSubscription",
			TaskSubscription{Endpoint: "https://emr.example.org/events", Header: []string{"Authorization: Bearer emrtoken", "no-colon-secret"}},
			[]string{"emrtoken", "no-colon-secret"}, []string{"emr.example.org", "Authorization: REDACTED"}},
		{"TaskSubscription, credentials in the endpoint",
			TaskSubscription{Endpoint: "https://emr:hookpass@emr.example.org/events"},
			[]string{"hookpass"}, []string{"emr.example.org/events"}},
	}
	for _, tt := range tests {
		before, err := json.Marshal(tt.v)
		require.NoError(t, err)
		ptr := reflect.New(reflect.TypeOf(tt.v))
		ptr.Elem().Set(reflect.ValueOf(tt.v))
		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("start", "v", tt.v)
		slog.New(slog.NewJSONHandler(&js, nil)).Info("start", "v", tt.v)
		nested := struct {
			Name string
			V    any
		}{"m", tt.v}
		outputs := map[string]string{
			"%v":         fmt.Sprintf("%v", tt.v),
			"%+v":        fmt.Sprintf("%+v", tt.v),
			"%s":         fmt.Sprintf("%s", tt.v),
			"%#v":        fmt.Sprintf("%#v", tt.v),
			"pointer %v": fmt.Sprintf("%v", ptr.Interface()),
			"nested %+v": fmt.Sprintf("%+v", nested),
			"nested %#v": fmt.Sprintf("%#v", nested),
			"slog text":  text.String(),
			"slog json":  js.String(),
		}
		for name, out := range outputs {
			for _, secret := range tt.secrets {
				if strings.Contains(out, secret) {
					t.Errorf("%s %s leaks %q: %s", tt.name, name, secret, out)
				}
			}
			for _, want := range tt.shown {
				if !strings.Contains(out, want) {
					t.Errorf("%s %s hides %q, which a reader needs: %s", tt.name, name, want, out)
				}
			}
		}
		if after, _ := json.Marshal(tt.v); !bytes.Equal(after, before) {
			t.Errorf("formatting changed the %s: %s, was %s", tt.name, after, before)
		}
	}
	// A base URL without "//" is refused without showing its password.
	_, err := NewClient(ClientConfig{BaseURL: "fhiruser:urlpass@fhir.example.org/fhir"})
	if err == nil || strings.Contains(err.Error(), "urlpass") || !strings.Contains(err.Error(), "fhir.example.org") {
		t.Errorf("NewClient with a URL without scheme: %v", err)
	}
}

// A 2xx answer to a transaction that breaks off before its end is a
// failure (nothing shows every entry applied), and says that the server
// answered 2xx: it has probably committed the transaction, which can be
// sent again safely.
func TestTransactionAnswerCutOffSaysItWas2xx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 4000\r\n\r\n" +
			`{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}},`)
		_ = buf.Flush()
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{BaseURL: srv.URL, MaxRetries: -1})
	require.NoError(t, err)
	err = c.Transaction(context.Background(), bundleOf(2))
	var se *ServerError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusOK, se.StatusCode)
	assert.Contains(t, se.Reason, "the server answered 2xx, so the transaction was probably applied")
}
