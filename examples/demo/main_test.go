package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// TestDemo runs the quick start and checks what it claims against what
// happened.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, &out, slog.New(slog.DiscardHandler)))
	text := out.String()

	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	m := regexp.MustCompile(`^demo: OK in \S+: (\d+) pushes, (\d+) FHIR resources, (\d+) transactions, (1 task record|\d+ task records)$`).FindStringSubmatch(last)
	require.NotNil(t, m, "summary line: %q", last)
	num := func(i int) int { n, _ := strconv.Atoi(m[i]); return n }
	assert.Equal(t, 3, num(1), "pushes")
	assert.Equal(t, 18, num(2), "FHIR resources: 2 patients, 2 practitioners, 2 organizations, 4 locations, 1 encounter, 7 observations")
	assert.Equal(t, 5, num(3), "one OpenHIM transaction per push and per EMR request")
	assert.Equal(t, "1 task record", m[4], "the ServiceRequest sent twice raised one CHT record, said in the singular")

	assert.Contains(t, text, `"Amina Wanjiru"`, "the new patient reached the FHIR server")
	assert.Contains(t, text, "Body temperature = 38.9 °C")
	assert.Contains(t, text, "5/5 Successful")
	assert.Contains(t, text, "patient_uuid         "+newPatientID, "the task record names the patient")
	assert.Contains(t, text, `orchestration "FHIR transaction"`)
	assert.NotContains(t, text, "Failed")
	assert.Contains(t, text, `POST /cht/outbound by client "cht-outbound"`, "clients by name")
	assert.Contains(t, text, `POST /fhir/ServiceRequest by client "emr"`)
	assert.NotRegexp(t, `by client "[0-9a-f]{24}"`, text, "never a raw core _id")
}

// count says "1 thing", not "1 things".
func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0 task records", 1: "1 task record", 2: "2 task records"} {
		assert.Equal(t, want, count(n, "task record", "task records"))
	}
}

// The curl that --serve suggests works as printed: a push in the guide's
// {"doc": ...} shape, as the CHT client, through core's router.
func TestServeSuggestsAWorkingPush(t *testing.T) {
	d, err := startDemo(context.Background(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer d.Close()
	var out bytes.Buffer
	d.printEndpoints(&out)
	m := regexp.MustCompile(`curl -s -u ([^:]+):(\S+) -H 'Content-Type: application/json' (\S+/cht/outbound) \\\n\s+-d '([^']+)'`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	assert.True(t, strings.HasPrefix(m[4], `{"doc":{`), "the guide's payload shape")
	req, err := http.NewRequest(http.MethodPost, m[3], strings.NewReader(m[4]))
	require.NoError(t, err)
	req.SetBasicAuth(m[1], m[2])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, 1, d.fhir.Count("Patient"), "the person reached the FHIR server")
}

// The mediators ask for credentials, and the routes of the channels they
// installed in core send them: nothing reaches a mediator without them.
func TestMediatorsRequireTheRouteCredentials(t *testing.T) {
	d, err := startDemo(context.Background(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer d.Close()
	channels := d.core.Channels()
	require.Len(t, channels, 2)
	for _, ch := range channels {
		require.Len(t, ch.Routes, 1, ch.Name)
		r := ch.Routes[0]
		assert.Equal(t, routeUser, r.Username, ch.Name)
		resp, err := http.Post(fmt.Sprintf("http://%s:%d/cht/outbound", r.Host, r.Port), "application/json", strings.NewReader(`{}`))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s without the route's credentials", ch.Name)
	}
}

// The fake CHT that --serve prints answers its users with the password
// printed: its own, the guide's administrator "admin", and the CHT user of
// the guide's mediator (cht.username of examples/cht-to-fhir/config.yaml,
// which the guide's step 4 runs with).
func TestServePrintsWorkingCHTUsers(t *testing.T) {
	d, err := startDemo(context.Background(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer d.Close()
	var out bytes.Buffer
	d.printEndpoints(&out)
	m := regexp.MustCompile(`CHT API \(fake\)\s+(\S+)\s+\(users (\S+), (\S+) and (\S+), password (\S+)\)`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	for _, user := range m[2:5] {
		req, err := http.NewRequest(http.MethodGet, m[1]+"/api/v1/settings", nil)
		require.NoError(t, err)
		req.SetBasicAuth(user, m[5])
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "user %s", user)
	}
	assert.Equal(t, "admin", m[3])
	raw, err := os.ReadFile("../cht-to-fhir/config.yaml")
	require.NoError(t, err)
	var cfg struct {
		CHT struct{ Username string } `yaml:"cht"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	require.NotEmpty(t, cfg.CHT.Username)
	assert.Equal(t, cfg.CHT.Username, m[4], "the guide's mediator reads CHT as this user")
}

func TestDemoRejectsUnknownFlags(t *testing.T) {
	err := run(context.Background(), []string{"--nope"}, new(bytes.Buffer), slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope")
}

// The core that --serve prints already holds what the getting-started
// guide's steps 5 and 6 set up for the reader's own cht-to-fhir mediator,
// which is why the guide says it cannot stand in for the reader's core:
// the demo's mediator under the example's URN and version (main.go of
// examples/cht-to-fhir), its channel "CHT to FHIR", and the client
// cht-outbound.
func TestServeCoreHoldsTheGuidesMediator(t *testing.T) {
	d, err := startDemo(context.Background(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer d.Close()
	src, err := os.ReadFile("../cht-to-fhir/main.go")
	require.NoError(t, err)
	v := regexp.MustCompile(`(?m)^const version = "([^"]+)"`).FindSubmatch(src)
	require.NotNil(t, v, "examples/cht-to-fhir/main.go declares no version")
	m, ok := d.core.Mediator("urn:mediator:cht-to-fhir")
	require.True(t, ok, "the demo's core has no urn:mediator:cht-to-fhir")
	assert.Equal(t, string(v[1]), m.Version, "the guide's mediator would replace the demo's definition")
	assert.True(t, slices.ContainsFunc(d.core.Channels(), func(c openhimtest.Channel) bool { return c.Name == "CHT to FHIR" }))
	assert.True(t, slices.ContainsFunc(d.core.Clients(), func(c openhimtest.RouterClient) bool { return c.ClientID == "cht-outbound" }))
}
