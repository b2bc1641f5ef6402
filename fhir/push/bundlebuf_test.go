package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// pushKey marks the context of one push's FHIR transaction (every attempt
// of it): Config.Orchestrate sets a new token per transaction.
type pushKey struct{}

// lateReader is a transport that reads the body of a transaction's first
// attempt only once release is closed, after answering 503 at once: as
// net/http's transport may keep writing a body after a server answered
// early. The later attempts go to next.
type lateReader struct {
	next    http.RoundTripper
	release chan struct{}
	wg      sync.WaitGroup

	mu   sync.Mutex
	seen map[*int]bool
	late []string // bodies read after release
	errs []error
}

func (l *lateReader) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, _ := r.Context().Value(pushKey{}).(*int)
	l.mu.Lock()
	first := tok != nil && !l.seen[tok]
	l.seen[tok] = true
	l.mu.Unlock()
	if !first {
		return l.next.RoundTrip(r)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		<-l.release
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			l.errs = append(l.errs, err)
			return
		}
		l.late = append(l.late, string(b))
	}()
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		Body: http.NoBody, Request: r}, nil
}

// The bundle buffers the handler reuses go back to its pool only once
// nothing reads them: a body still to be read by the transport when the
// push has been answered (and later pushes have been written) is the
// bundle of its own push, not of a later one.
func TestBundleBuffersNotReusedWhileRead(t *testing.T) {
	var mu sync.Mutex
	var accepted []string // bodies the FHIR server answered 200
	fhirSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		accepted = append(accepted, string(b))
		mu.Unlock()
		n := bytes.Count(b, []byte(`"request":{`))
		entries := strings.TrimSuffix(strings.Repeat(`{"response":{"status":"201 Created"}},`, n), ",")
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[`+entries+`]}`)
	}))
	defer fhirSrv.Close()

	lr := &lateReader{next: http.DefaultTransport, release: make(chan struct{}), seen: map[*int]bool{}}
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, HTTPClient: &http.Client{Transport: lr}})
	require.NoError(t, err)
	m, err := fhir.LoadMapping("../testdata/mapping.yaml")
	require.NoError(t, err)
	conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: m})
	require.NoError(t, err)
	h, err := push.New(push.Config{Converter: conv, FHIR: fc,
		Orchestrate: func(ctx context.Context, _ string) context.Context {
			return context.WithValue(ctx, pushKey{}, new(int))
		}})
	require.NoError(t, err)

	payload, err := os.ReadFile("../testdata/encounter-20obs.json")
	require.NoError(t, err)
	report, err := os.ReadFile("../testdata/report_assessment_hydrated.json")
	require.NoError(t, err)
	withID := func(doc []byte, key, id string) []byte {
		var v map[string]any
		require.NoError(t, json.Unmarshal(doc, &v))
		v[key] = id
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return b
	}

	// Two rounds: the second round's bundles would be written into the
	// first round's buffers if these went back to the pool too early.
	const perRound = 4
	pushes := 0
	for round := range 2 {
		var wg sync.WaitGroup
		for i := range perRound {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", round*perRound+i)
			for _, req := range []struct{ path, body string }{
				{push.EncounterPath, string(withID(payload, "id", id))},
				{push.OutboundPath, `{"doc":` + string(withID(report, "_id", id)) + `}`},
			} {
				pushes++
				wg.Go(func() {
					r := httptest.NewRequest(http.MethodPost, req.path, strings.NewReader(req.body))
					r.Header.Set("Content-Type", "application/json")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					if rec.Code != http.StatusOK {
						t.Errorf("%s: status %d: %s", req.path, rec.Code, rec.Body)
					}
				})
			}
		}
		wg.Wait()
	}
	close(lr.release)
	lr.wg.Wait()

	require.Empty(t, lr.errs)
	require.Len(t, accepted, pushes)
	require.Len(t, lr.late, pushes)
	slices.Sort(accepted)
	require.Len(t, slices.Compact(slices.Clone(accepted)), pushes, "every push writes a bundle of its own")
	slices.Sort(lr.late)
	for i := range accepted { // the diff of two bundles is too long to show
		if lr.late[i] != accepted[i] {
			t.Fatalf("a body read late (%d bytes) is not the bundle of its push (%d bytes)", len(lr.late[i]), len(accepted[i]))
		}
	}
}
