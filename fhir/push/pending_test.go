package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
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
)

// Pending refuses pushes (503) and is not ready while CHT does not answer
// GET /api/v1/settings, writes nothing meanwhile, and converts with the
// app's contact types once it has read them. The demo app declares a
// "household" place type that the legacy hierarchy does not know, so a
// guess would refuse (or mis-convert) a household member's report.
func TestPendingWaitsForTheContactTypes(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	remove := chtSrv.InjectFault(chttest.Fault{Method: "GET", Path: "/api/v1/settings", Status: http.StatusInternalServerError})

	chtClient, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername,
		Password: chttest.AdminPassword, MaxRetries: -1})
	require.NoError(t, err)
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	require.NoError(t, err)
	var logs bytes.Buffer
	p, err := NewPending(fhir.Config{InstanceURL: chtSrv.URL, Mapping: fhir.DefaultMapping()},
		Config{FHIR: fhirClient, CHT: chtClient, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	require.NoError(t, err)
	p.retry = 50 * time.Millisecond
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)

	doc, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	body, err := json.Marshal(map[string]any{"doc": doc})
	require.NoError(t, err)
	post := func() (int, string) {
		resp, err := http.Post(srv.URL+OutboundPath, "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	err = p.Ready(context.Background())
	require.ErrorIs(t, err, ErrContactTypesUnread)
	time.Sleep(60 * time.Millisecond)
	status, answer := post()
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, answer, "contact types (app_settings.contact_types) are not read from CHT yet")
	assert.Contains(t, answer, "500", "the cause")
	status, _ = post() // within the retry interval: no new read, still refused
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, 0, fhirSrv.Count("Encounter"), "nothing written while refusing")
	assert.Equal(t, 1, strings.Count(logs.String(), `"level":"WARN"`), "one warning per outage: %s", logs.String())

	remove()
	require.Eventually(t, func() bool { return p.Ready(context.Background()) == nil }, 5*time.Second, 20*time.Millisecond)
	status, answer = post()
	require.Equal(t, http.StatusOK, status, answer)
	assert.Equal(t, 1, fhirSrv.Count("Encounter"))
	assert.Contains(t, logs.String(), "taking pushes")
}

// A configuration error stops the program at start; only the read waits.
// Without CHT, or with contact types given, pushes are taken at once.
func TestNewPending(t *testing.T) {
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: "http://127.0.0.1:1/fhir"})
	require.NoError(t, err)
	chtClient, err := cht.New(cht.Config{URL: "http://127.0.0.1:1", Username: "u", Password: "p", MaxRetries: -1})
	require.NoError(t, err)
	_, err = NewPending(fhir.Config{Mapping: fhir.DefaultMapping()}, Config{FHIR: fhirClient, CHT: chtClient})
	require.Error(t, err, "no InstanceURL")
	assert.False(t, errors.Is(err, ErrContactTypesUnread))

	types, err := cht.ParseContactTypes([]byte(`{"contact_types":[{"id":"clinic"},{"id":"person","parents":["clinic"],"person":true}]}`))
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		conv  fhir.Config
		cfg   Config
		ready bool
	}{
		{"legacy hierarchy without CHT", fhir.Config{InstanceURL: "https://cht.example.org"}, Config{FHIR: fhirClient}, true},
		{"contact types from a file", fhir.Config{InstanceURL: "https://cht.example.org", ContactTypes: types}, Config{FHIR: fhirClient, CHT: chtClient}, true},
		{"read from an unreachable CHT", fhir.Config{InstanceURL: "https://cht.example.org"}, Config{FHIR: fhirClient, CHT: chtClient}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPending(tc.conv, tc.cfg)
			require.NoError(t, err)
			err = p.Ready(context.Background())
			if tc.ready {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrContactTypesUnread)
			}
		})
	}
}

// Contact types read from CHT are read again after the refresh interval, so
// a contact type added to the app is converted without a restart; a failed
// new read keeps the types read before.
func TestPendingRefreshesTheContactTypes(t *testing.T) {
	var mu sync.Mutex
	settings := `{"contact_types":[{"id":"c_area"},{"id":"c_patient","person":true,"parents":["c_area"]}]}`
	failing, failed, stalled := false, 0, 0
	var stall chan struct{} // while set, CHT answers once it is closed
	chtSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if wait := stall; wait != nil {
			stalled++
			mu.Unlock()
			<-wait
			mu.Lock()
		}
		defer mu.Unlock()
		if r.URL.Path != "/api/v1/settings" || failing {
			failed++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, settings)
	}))
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	chtClient, err := cht.New(cht.Config{URL: chtSrv.URL, Username: "u", Password: "p", MaxRetries: -1})
	require.NoError(t, err)
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	require.NoError(t, err)
	p, err := NewPending(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: fhir.DefaultMapping()},
		Config{FHIR: fhirClient, CHT: chtClient})
	require.NoError(t, err)
	p.retry, p.refresh = time.Millisecond, 50*time.Millisecond
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	post := func(contactType string) int {
		body := `{"doc":{"_id":"` + contactType + `-1","type":"contact","contact_type":"` + contactType + `","name":"Ann"}}`
		resp, err := http.Post(srv.URL+OutboundPath, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}

	require.Equal(t, http.StatusOK, post("c_patient"))
	require.Equal(t, http.StatusUnprocessableEntity, post("c_chw"), "not a contact type of the app yet")

	mu.Lock()
	settings = `{"contact_types":[{"id":"c_area"},{"id":"c_patient","person":true,"parents":["c_area"]},` +
		`{"id":"c_chw","person":true,"parents":["c_area"]}]}`
	mu.Unlock()
	assert.Eventually(t, func() bool { return post("c_chw") == http.StatusOK }, 5*time.Second, 20*time.Millisecond,
		"the added contact type is converted once the types are read again")

	// A slow CHT holds up neither pushes nor the readiness check: the
	// types are read again in the background (pending.go refreshIfDue).
	release := make(chan struct{})
	mu.Lock()
	stall = release
	mu.Unlock()
	time.Sleep(2 * p.refresh) // due again
	answered := make(chan int, 1)
	go func() { answered <- post("c_chw") }()
	select {
	case code := <-answered:
		assert.Equal(t, http.StatusOK, code, "answered with the types in use while CHT is read")
	case <-time.After(5 * time.Second):
		t.Error("the push waited for the new read of the contact types")
	}
	assert.NoError(t, p.Ready(context.Background()))
	assert.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stalled == 1
	}, 5*time.Second, time.Millisecond, "one read of CHT, stalled")
	mu.Lock()
	assert.Equal(t, 1, stalled, "and no second read while it is stalled")
	stall = nil
	failing = true
	mu.Unlock()
	close(release) // the stalled read now fails

	time.Sleep(2 * p.refresh) // due again; the read fails
	assert.Equal(t, http.StatusOK, post("c_chw"), "a failed new read keeps the types read before")
	assert.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failed > 0
	}, 5*time.Second, 10*time.Millisecond, "the types were read again, and the read failed")
	assert.Equal(t, http.StatusOK, post("c_chw"), "and are still in use")
	assert.NoError(t, p.Ready(context.Background()))
}

// pendingAs is a Pending reading chtSrv as its admin with password, and no
// FHIR server behind it.
func pendingAs(t *testing.T, chtSrv *chttest.Server, password string) *Pending {
	t.Helper()
	chtClient, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: password, MaxRetries: -1})
	require.NoError(t, err)
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: "http://fhir.invalid", MaxRetries: -1})
	require.NoError(t, err)
	p, err := NewPending(fhir.Config{InstanceURL: chtSrv.URL, Mapping: fhir.DefaultMapping()}, Config{FHIR: fhirClient, CHT: chtClient})
	require.NoError(t, err)
	return p
}

// Ready returns at its context's deadline while CHT is slow to answer the
// settings (the mediator gives its readiness check 5 s; the read may take
// 10); the read goes on, and once it is done Ready is nil.
func TestPendingReadyHonoursItsContext(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	chtSrv.InjectFault(chttest.Fault{Method: "GET", Path: "/api/v1/settings", Latency: time.Second, Count: 1})
	p := pendingAs(t, chtSrv, chttest.AdminPassword)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// The read takes a second and then succeeds: only a Ready that stopped
	// waiting at its deadline returns this error.
	err := p.Ready(ctx)
	require.ErrorIs(t, err, ErrContactTypesUnread)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return p.Ready(context.Background()) == nil }, 5*time.Second, 20*time.Millisecond)
}

// A push that comes while the contact types are being read waits for them
// within its own deadline, not before it: CHT stops waiting for an answer
// after 10 s (cht-core shared-libs/outbound/src/outbound.js,
// OUTBOUND_REQ_TIMEOUT), so a push answered after the read plus a whole
// deadline would count as failed at CHT however it ended. Here the read
// takes 3 s and the deadline is 300 ms.
func TestPendingPushDeadlineIncludesTheRead(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	chtSrv.InjectFault(chttest.Fault{Method: "GET", Path: "/api/v1/settings", Latency: 3 * time.Second, Count: 1})
	chtClient, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername,
		Password: chttest.AdminPassword, MaxRetries: -1})
	require.NoError(t, err)
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	require.NoError(t, err)
	p, err := NewPending(fhir.Config{InstanceURL: chtSrv.URL, Mapping: fhir.DefaultMapping()},
		Config{FHIR: fhirClient, CHT: chtClient, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	doc, ok := chtSrv.HydratedDoc(chttest.DemoHeightWeightReportID)
	require.True(t, ok)
	body, err := json.Marshal(map[string]any{"doc": doc})
	require.NoError(t, err)

	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, pushRequestOf(body))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "still reading them")
	assert.Equal(t, 0, fhirSrv.Count("Encounter"))
	// The read goes on; the next push is converted.
	require.Eventually(t, func() bool { return p.Ready(context.Background()) == nil }, 10*time.Second, 20*time.Millisecond)
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, pushRequestOf(body))
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, 1, fhirSrv.Count("Encounter"))
}

// CHT refusing the mediator's credentials is named as such in Ready's
// error (the readiness reason and the warning), not only as an HTTP status.
func TestPendingNamesRefusedCredentials(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	err := pendingAs(t, chtSrv, "wrong").Ready(context.Background())
	require.ErrorIs(t, err, ErrContactTypesUnread)
	require.ErrorIs(t, err, cht.ErrUnauthorized)
	assert.Contains(t, err.Error(), "check the CHT user name and password")
}

// pushRequestOf is a push of body as CHT sends it.
func pushRequestOf(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, OutboundPath, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}
