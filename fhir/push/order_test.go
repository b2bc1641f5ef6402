package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// slowCommit plays a FHIR server that takes long over one transaction and
// commits it whether or not the client still waits: the first POST of a
// Bundle is applied when release is closed, and answered then if the
// client is still there. Other requests pass at once.
type slowCommit struct {
	next     http.RoundTripper
	release  chan struct{}
	held     chan struct{} // closed when the slow transaction arrived
	done     chan struct{} // closed once it was applied
	mu       sync.Mutex
	used     bool
	answered bool // the client got the slow transaction's answer
}

func (s *slowCommit) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	slow := !s.used && r.Method == http.MethodPost
	s.used = s.used || slow
	s.mu.Unlock()
	if !slow {
		return s.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	close(s.held)
	apply := func(ctx context.Context) (*http.Response, error) {
		defer close(s.done)
		req := r.Clone(ctx)
		req.Body = io.NopCloser(bytes.NewReader(body))
		return s.next.RoundTrip(req)
	}
	select {
	case <-s.release:
		resp, err := apply(r.Context())
		s.mu.Lock()
		s.answered = err == nil
		s.mu.Unlock()
		return resp, err
	case <-r.Context().Done():
		go func() { // the server goes on and commits
			<-s.release
			if resp, err := apply(context.Background()); err == nil {
				resp.Body.Close()
			}
		}()
		return nil, r.Context().Err()
	}
}

// A write the handler gave up on at its deadline that the FHIR server
// commits later must not end up over a newer version of the document. CHT
// pushes the edited document at once (shared-libs/transitions
// mark_for_outbound.js), and its scheduled retry of the failed push maps
// the current document and drops it when it equals the last push that
// succeeded (shared-libs/outbound/src/outbound.js send, alreadySent): if
// the newer version were written before the late commit and answered 200,
// nothing would ever write it again. So the handler writes one push of a
// document at a time, and lets a write it gave up on run to the server's
// answer before the next push of that document converts and writes.
func TestLateCommitDoesNotOverwriteANewerVersion(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	slow := &slowCommit{next: http.DefaultTransport, release: make(chan struct{}), held: make(chan struct{}), done: make(chan struct{})}
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1, HTTPClient: &http.Client{Transport: slow}})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: converter(t), FHIR: fc, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{Name: "cht_to_fhir", URL: srv.URL + push.OutboundPath,
		Mapping: map[string]any{"doc": "doc"}, Server: chtSrv})
	require.NoError(t, err)
	ctx := context.Background()
	id := chttest.DemoPatientID

	// Version 1: the server holds its transaction past the deadline.
	att, _ := pusher.PushID(ctx, id)
	assert.Equal(t, chttest.OutcomeFailed, att.Outcome, "version 1 answered %d", att.StatusCode)
	<-slow.held

	// Version 2, edited meanwhile, pushed at once.
	raw, ok := chtSrv.Doc(id)
	require.True(t, ok)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	doc["name"] = "John Test, edited"
	_, err = chtSrv.PutDoc(doc)
	require.NoError(t, err)
	att, _ = pusher.PushID(ctx, id)
	assert.Equal(t, chttest.OutcomeFailed, att.Outcome,
		"version 2 must wait for version 1's write, still at the server; answered %d", att.StatusCode)

	// The server commits version 1; then Sentinel's schedule retries.
	close(slow.release)
	<-slow.done
	require.Eventually(t, func() bool {
		_ = pusher.RunQueue(ctx)
		return len(pusher.Queue()) == 0
	}, 5*time.Second, 50*time.Millisecond, "the retry of the queued push succeeds")

	patients := fhirSrv.Resources("Patient")
	require.Len(t, patients, 1)
	assert.Contains(t, string(patients[0]), "John Test, edited", "FHIR holds the newest version")
	slow.mu.Lock()
	defer slow.mu.Unlock()
	assert.True(t, slow.answered, "the handler waited for the server's answer to the write it gave up on")
}

// heldHydrate holds the answer of the first hydrate call until release
// is closed, so that a later push's fetch can end first.
type heldHydrate struct {
	next    http.RoundTripper
	release chan struct{}
	held    chan struct{} // closed when the first answer is held
	once    sync.Once
}

func (h *heldHydrate) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(r)
	first := false
	h.once.Do(func() { first = true })
	if first && err == nil {
		close(h.held)
		<-h.release
	}
	return resp, err
}

// Two pushes that only name the document ({"id", "rev"}, the mapping of
// the cht-interoperability mediators) are each fetched when they have the
// document's turn: the second, of an edited version, cannot fetch and
// write the newer version first and then have the first push write the
// older version it fetched over it, both answered 200 (CHT would then send
// neither again).
func TestIDPushesFetchInTheirTurn(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	held := &heldHydrate{next: http.DefaultTransport, release: make(chan struct{}), held: make(chan struct{})}
	chtc, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		MaxRetries: -1, Version: chttest.DefaultVersion, HTTPClient: &http.Client{Transport: held}})
	require.NoError(t, err)
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: converter(t), FHIR: fc, CHT: chtc, Timeout: 5 * time.Second})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	id := chttest.DemoPatientID
	post := func() <-chan int {
		status := make(chan int, 1)
		go func() {
			resp, err := http.Post(srv.URL+push.OutboundPath, "application/json", strings.NewReader(`{"id":"`+id+`"}`))
			if err != nil {
				t.Error(err)
				status <- 0
				return
			}
			resp.Body.Close()
			status <- resp.StatusCode
		}()
		return status
	}

	first := post()
	<-held.held // its fetch read version 1 and is held
	raw, ok := chtSrv.Doc(id)
	require.True(t, ok)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	doc["name"] = "John Test, edited"
	_, err = chtSrv.PutDoc(doc)
	require.NoError(t, err)
	second := post()
	time.Sleep(200 * time.Millisecond) // the second push is under way
	close(held.release)
	assert.Equal(t, http.StatusOK, <-first)
	assert.Equal(t, http.StatusOK, <-second)

	patients := fhirSrv.Resources("Patient")
	require.Len(t, patients, 1)
	assert.Contains(t, string(patients[0]), "John Test, edited", "FHIR holds the newest version")
}
