package soak

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// hostileLimit is the body limit the mediators of this test run with.
const hostileLimit = 64 << 10

// hostileReadTimeout is the servers' ReadTimeout in this test.
const hostileReadTimeout = 500 * time.Millisecond

// entryPoint is one HTTP route of an example mediator.
type entryPoint struct {
	mediator, method, path string
	valid                  string // a well-formed body of the route (its content is irrelevant)
}

// serveHostile starts both example mediators, standalone, with small
// limits and timeouts, and returns their base URLs.
func serveHostile(t *testing.T) map[string]string {
	chtSrv := chttest.NewDemoServer(chttest.Config{MaxRecordedRequests: -1})
	t.Cleanup(chtSrv.Close)
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	logger := slog.New(slog.DiscardHandler)

	serve := func(def func(string, int) openhim.Definition, h http.Handler, errorBody func(int, error) (string, []byte)) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		m, err := mediator.New(mediator.Config{
			Auth:       mediator.InboundAuth{Open: true},
			Definition: def("127.0.0.1", ln.Addr().(*net.TCPAddr).Port),
			Listener:   ln, Handler: h, Logger: logger, MaxBodyBytes: hostileLimit, ErrorBody: errorBody,
			ReadHeaderTimeout: hostileReadTimeout, ReadTimeout: hostileReadTimeout,
		})
		require.NoError(t, err)
		runMediator(t, m)
		return "http://" + ln.Addr().String()
	}

	// cht-to-fhir, wired as examples/cht-to-fhir/main.go does.
	c2f, _ := newBridge(t, bridgeConfig{CHTURL: chtSrv.URL, CHTUser: chttest.AdminUsername,
		CHTPassword: chttest.AdminPassword, FHIRURL: fhirSrv.URL})

	// fhir-to-cht, wired as examples/fhir-to-cht/main.go does: the
	// mediator's own refusals are OperationOutcomes too.
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: chtSrv.URL, Mapping: fhir.DefaultMapping(),
		Inbound: fhir.InboundConfig{ParentPlace: chttest.DemoCHWAreaID}})
	require.NoError(t, err)
	client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	f2c, err := tocht.New(tocht.Config{Converter: conv, CHT: client, MaxBodyBytes: hostileLimit, Logger: logger})
	require.NoError(t, err)

	return map[string]string{
		"cht-to-fhir": serve(chtToFHIRDefinition, c2f, nil),
		"fhir-to-cht": serve(tocht.Definition, f2c.Handler(), tocht.ErrorBody),
	}
}

var entryPoints = []entryPoint{
	{"cht-to-fhir", http.MethodPost, "/cht/outbound", `{"doc":{"_id":"r1","type":"data_record","form":"HEIGHT_WEIGHT","fields":{}}}`},
	{"cht-to-fhir", http.MethodPost, "/cht/encounter", `{"id":"r1","patient_id":"p1","observations":[]}`},
	{"fhir-to-cht", http.MethodPost, "/fhir/Patient", `{"resourceType":"Patient","name":[{"family":"X"}]}`},
	{"fhir-to-cht", http.MethodPut, "/fhir/Patient/p1", `{"resourceType":"Patient","id":"p1"}`},
	{"fhir-to-cht", http.MethodPost, "/fhir/ServiceRequest", `{"resourceType":"ServiceRequest","status":"active","intent":"order"}`},
	{"fhir-to-cht", http.MethodPut, "/fhir/ServiceRequest/s1", `{"resourceType":"ServiceRequest","id":"s1"}`},
	{"fhir-to-cht", http.MethodPost, "/fhir/Task", `{"resourceType":"Task","status":"requested","intent":"order"}`},
	{"fhir-to-cht", http.MethodPut, "/fhir/Task/t1", `{"resourceType":"Task","id":"t1"}`},
	{"fhir-to-cht", http.MethodPost, "/fhir/Observation", `{"resourceType":"Observation","status":"final"}`},
	{"fhir-to-cht", http.MethodPut, "/fhir/Observation/o1", `{"resourceType":"Observation","id":"o1"}`},
	{"fhir-to-cht", http.MethodPost, "/fhir", `{"resourceType":"Bundle","type":"transaction","entry":[]}`},
	{"fhir-to-cht", http.MethodPost, "/fhir/Bundle", `{"resourceType":"Bundle","type":"batch","entry":[]}`},
}

// TestHostileInput sends every entry point of the example mediators an
// oversized body (with and without Content-Length), malformed JSON and a
// wrong content type, and checks the status and that the answer says what
// is wrong.
func TestHostileInput(t *testing.T) {
	bases := serveHostile(t)
	big := `{"doc":{"_id":"x","pad":"` + strings.Repeat("a", 3*hostileLimit) + `"}}`
	cases := []struct {
		name        string
		contentType string
		body        func(ep entryPoint) string
		chunked     bool
		status      int
		mention     []string // the answer mentions one of these
	}{
		{"oversized body", "application/json", func(entryPoint) string { return big }, false,
			http.StatusRequestEntityTooLarge, []string{"large", "limit", "bytes"}},
		{"oversized chunked body", "application/json", func(entryPoint) string { return big }, true,
			http.StatusRequestEntityTooLarge, []string{"large", "limit", "bytes"}},
		{"malformed JSON", "application/json", func(ep entryPoint) string { return ep.valid[:len(ep.valid)/2] }, false,
			http.StatusBadRequest, []string{"JSON", "json", "unexpected end"}},
		{"not an object", "application/json", func(entryPoint) string { return `[1,2,3]` }, false,
			http.StatusBadRequest, []string{"object", "array", "JSON", "json", "resourceType", "payload"}},
		{"wrong content type", "text/plain", func(ep entryPoint) string { return ep.valid }, false,
			http.StatusUnsupportedMediaType, []string{"content type", "Content-Type", "text/plain"}},
	}
	for _, ep := range entryPoints {
		for _, tc := range cases {
			t.Run(ep.mediator+" "+ep.method+" "+ep.path+" "+tc.name, func(t *testing.T) {
				var body io.Reader = strings.NewReader(tc.body(ep))
				if tc.chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
				req, err := http.NewRequest(ep.method, bases[ep.mediator]+ep.path, body)
				require.NoError(t, err)
				req.Header.Set("Content-Type", tc.contentType)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				answer, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				assert.Equal(t, tc.status, resp.StatusCode, "%s", answer)
				assert.True(t, mentionsAny(string(answer), tc.mention), "answer %s names the problem (one of %q)", answer, tc.mention)
			})
		}
	}
}

func mentionsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// TestSlowClientTimesOut sends the headers of a request and then stalls
// the body: the server's ReadTimeout must end the request instead of
// holding the connection (and a goroutine) forever.
func TestSlowClientTimesOut(t *testing.T) {
	bases := serveHostile(t)
	for _, ep := range entryPoints {
		t.Run(ep.mediator+" "+ep.method+" "+ep.path, func(t *testing.T) {
			t.Parallel()
			addr := strings.TrimPrefix(bases[ep.mediator], "http://")
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer conn.Close()
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n%s",
				ep.method, ep.path, addr, ep.valid[:10])
			// Generous bound: the test fails only if the server hangs.
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
			start := time.Now()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err == nil {
				defer resp.Body.Close()
				answer, _ := io.ReadAll(resp.Body)
				// The handler saw a read error: a client error, never 2xx.
				assert.GreaterOrEqual(t, resp.StatusCode, 400, "%s", answer)
				assert.Less(t, resp.StatusCode, 500, "a stalled client is the client's fault: %s", answer)
			} else {
				var ne net.Error
				if assert.ErrorAs(t, err, &ne) {
					assert.False(t, ne.Timeout(), "the server held the connection for %v", time.Since(start))
				}
				// Closed without an answer (EOF / reset): the timeout did its work.
			}
			t.Logf("ended after %v", time.Since(start).Round(10*time.Millisecond))
		})
	}
}
