package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
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
//
// The order holds across a new read of the app's contact types too:
// push.Pending reads them again every few minutes and then serves with a
// new Handler, while a push of the Handler before may still be writing.
func TestLateCommitDoesNotOverwriteANewerVersion(t *testing.T) {
	for _, tt := range []struct {
		name    string
		refresh time.Duration // rigOptions.refresh: 0 serves a Handler
	}{
		{"one handler", 0},
		{"across a new read of the contact types", 20 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			slow := &slowCommit{release: make(chan struct{}), held: make(chan struct{}), done: make(chan struct{})}
			r := newRigOpts(t, rigOptions{timeout: 300 * time.Millisecond, refresh: tt.refresh,
				fhirWrap: func(next http.RoundTripper) http.RoundTripper { slow.next = next; return slow }})
			ctx := context.Background()
			id := chttest.DemoPatientID

			// Version 1: the server holds its transaction past the deadline.
			att, _ := r.pusher.PushID(ctx, id)
			assert.Equal(t, chttest.OutcomeFailed, att.Outcome, "version 1 answered %d", att.StatusCode)
			<-slow.held
			if r.pending != nil {
				before := push.PendingHandler(r.pending)
				require.NotNil(t, before)
				require.Eventually(t, func() bool {
					_ = r.pending.Ready(ctx) // starts a new read once due
					return push.PendingHandler(r.pending) != before
				}, 5*time.Second, 5*time.Millisecond, "the contact types are read again")
			}

			// Version 2, edited meanwhile, pushed at once.
			rename(t, r.cht, id, "John Test, edited")
			att, _ = r.pusher.PushID(ctx, id)
			assert.Equal(t, chttest.OutcomeFailed, att.Outcome,
				"version 2 must wait for version 1's write, still at the server; answered %d", att.StatusCode)

			// The server commits version 1; then Sentinel's schedule retries.
			close(slow.release)
			<-slow.done
			require.Eventually(t, func() bool {
				_ = r.pusher.RunQueue(ctx)
				return len(r.pusher.Queue()) == 0
			}, 5*time.Second, 50*time.Millisecond, "the retry of the queued push succeeds")

			assertNewest(t, r.fhir, "John Test, edited")
			slow.mu.Lock()
			defer slow.mu.Unlock()
			assert.True(t, slow.answered, "the handler waited for the server's answer to the write it gave up on")
		})
	}
}

// heldHydrate holds the answer of the first hydrate call until release
// is closed, so that a later push's fetch can end first. Other calls
// pass.
type heldHydrate struct {
	next    http.RoundTripper
	release chan struct{}
	held    chan struct{} // closed when the first answer is held
	once    sync.Once
}

func (h *heldHydrate) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(r)
	if !strings.Contains(r.URL.Path, "hydrate") {
		return resp, err
	}
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
	held := &heldHydrate{release: make(chan struct{}), held: make(chan struct{})}
	r := newRigOpts(t, rigOptions{withCHT: true, timeout: 5 * time.Second,
		chtWrap: func(next http.RoundTripper) http.RoundTripper { held.next = next; return held }})
	id := chttest.DemoPatientID
	post := func() <-chan int {
		status := make(chan int, 1)
		go func() {
			resp, err := http.Post(r.srv.URL+push.OutboundPath, "application/json", strings.NewReader(`{"id":"`+id+`"}`))
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
	rename(t, r.cht, id, "John Test, edited")
	second := post()
	time.Sleep(200 * time.Millisecond) // the second push is under way
	close(held.release)
	assert.Equal(t, http.StatusOK, <-first)
	assert.Equal(t, http.StatusOK, <-second)

	assertNewest(t, r.fhir, "John Test, edited")
}

// rename edits the name of the person id in CHT: a new version of it.
func rename(t *testing.T, srv *chttest.Server, id, name string) {
	t.Helper()
	raw, ok := srv.Doc(id)
	require.True(t, ok)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	doc["name"] = name
	_, err := srv.PutDoc(doc)
	require.NoError(t, err)
}

// assertNewest checks that the FHIR server holds one Patient, of the
// version named name.
func assertNewest(t *testing.T, srv *fhirtest.Server, name string) {
	t.Helper()
	patients := srv.Resources("Patient")
	require.Len(t, patients, 1)
	assert.Contains(t, string(patients[0]), name, "FHIR holds the newest version")
}

// The encounter payloads of one report are written in order too: CHT
// pushes the payload of each version of the report (the mapping names the
// report's _id as the payload's id), and a transaction the handler gave up
// on at its deadline that the FHIR server commits later must not end up
// over the payload of a newer version.
func TestLateEncounterCommitDoesNotOverwriteANewerVersion(t *testing.T) {
	slow := &slowCommit{release: make(chan struct{}), held: make(chan struct{}), done: make(chan struct{})}
	r := newRigOpts(t, rigOptions{timeout: 300 * time.Millisecond,
		fhirWrap: func(next http.RoundTripper) http.RoundTripper { slow.next = next; return slow }})
	v1, err := os.ReadFile("testdata/encounter-payload.json")
	require.NoError(t, err)
	v2 := bytes.Replace(v1, []byte(`"value":62.4`), []byte(`"value":63.9`), 1)
	require.NotEqual(t, v1, v2)
	post := func(body []byte) int {
		resp := postJSON(t, r.srv.URL+push.EncounterPath, body)
		readAll(t, resp)
		return resp.StatusCode
	}

	first := make(chan int, 1)
	go func() { first <- post(v1) }() // the server holds its transaction
	<-slow.held
	second := post(v2)
	assert.NotEqual(t, http.StatusOK, second, "version 2 must wait for version 1's write, still at the server")
	close(slow.release)
	<-slow.done
	assert.Equal(t, http.StatusOK, <-first, "version 1 is answered once the server answered its write, past its deadline")
	// The sender sends version 2 again until it is answered 2xx.
	assert.Eventually(t, func() bool { return second == http.StatusOK || post(v2) == http.StatusOK },
		5*time.Second, 50*time.Millisecond)

	weights := 0
	for _, o := range r.fhir.Resources("Observation") {
		if bytes.Contains(o, []byte(`"kg"`)) {
			weights++
			assert.Contains(t, string(o), `"value":63.9`, "FHIR holds the newest version")
		}
	}
	assert.Equal(t, 1, weights)
}
