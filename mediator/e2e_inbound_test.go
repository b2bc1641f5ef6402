package mediator_test

// End-to-end through the real OpenHIM core (OPENHIM_API_URL,
// OPENHIM_ROUTER_URL): a mediator that requires credentials is reached
// through a channel whose route carries them, refuses a direct call
// without them, and gets its default channel back after an administrator
// deletes it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

func TestE2EInboundAuthAndChannelHealing(t *testing.T) {
	cfg := openhimtest.RealCore(t)
	router := strings.TrimRight(os.Getenv("OPENHIM_ROUTER_URL"), "/")
	if router == "" {
		t.Skip("OPENHIM_ROUTER_URL not set")
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	suffix := fmt.Sprintf("e2e-inbound-%d-%s", time.Now().Unix(), hex.EncodeToString(nonce[:]))
	role, clientID, clientPW := "role-"+suffix, "client-"+suffix, "pw-"+suffix
	const routeUser, routePass = "openhim-route", "route-secret-e2e"

	reg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	route := openhim.Route{Name: "Route " + suffix, Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Primary: true, Type: "http"}
	channelName := "Channel " + suffix
	m, err := mediator.New(mediator.Config{
		Definition: openhim.Definition{URN: "urn:mediator:" + suffix, Version: "1.0.0", Name: "Inbound e2e " + suffix,
			Endpoints: []openhim.Route{route},
			DefaultChannelConfig: []openhim.Channel{{Name: channelName, URLPattern: "^/" + suffix + "$", Allow: []string{role},
				Methods: []string{"POST"}, Type: "http", Routes: []openhim.Route{route}}}},
		Listener:          ln,
		Registry:          reg,
		OpenHIM:           cfg,
		Auth:              mediator.InboundAuth{Username: routeUser, Password: routePass},
		InstallChannels:   true,
		HeartbeatInterval: 500 * time.Millisecond,
		Handler: mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
			return mediator.JSONResult(http.StatusOK, map[string]string{"hello": "authenticated"})
		}),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })
	require.Eventually(t, m.Ready, 30*time.Second, 100*time.Millisecond, "registered with core")

	api := m.Client()
	apiCtx, apiCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer apiCancel()
	storedChannel := func() map[string]any {
		var chans []map[string]any
		if api.Do(apiCtx, http.MethodGet, "/channels", nil, &chans) != nil {
			return nil
		}
		for _, c := range chans {
			if c["name"] == channelName {
				return c
			}
		}
		return nil
	}
	require.Eventually(t, func() bool { return storedChannel() != nil }, 30*time.Second, 250*time.Millisecond, "default channel installed")
	openhimtest.CreateClient(t, api, clientID, clientPW, role)

	// routed waits until core routes the request (its channel and client
	// caches refresh about every second: 401 on 4.x, 404 on 7.0.1+ until
	// then) and returns the answer.
	routed := func() (int, string) {
		return openhimtest.Routed(t, 45*time.Second, func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, router+"/"+suffix, strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/json")
			req.SetBasicAuth(clientID, clientPW)
			return req
		})
	}

	t.Run("route carries the credentials", func(t *testing.T) {
		code, body := routed()
		assert.Equal(t, http.StatusOK, code, body)
		assert.Contains(t, body, "authenticated")
	})
	t.Run("direct call without them", func(t *testing.T) {
		resp, err := http.Post("http://"+ln.Addr().String()+"/"+suffix, "application/json", strings.NewReader(`{}`))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic realm=")
	})
	t.Run("deleted default channel comes back", func(t *testing.T) {
		ch := storedChannel()
		require.NotNil(t, ch)
		id, _ := ch["_id"].(string)
		// The channel has a transaction now, so core 4.x keeps it as
		// status "deleted" (src/api/channels.js, removeChannel).
		require.NoError(t, api.Do(apiCtx, http.MethodDelete, "/channels/"+url.PathEscape(id), nil, nil))
		require.Eventually(t, func() bool {
			c := storedChannel()
			return c != nil && c["status"] == "enabled"
		}, 30*time.Second, 250*time.Millisecond, "the mediator put its default channel back")
		code, body := routed()
		assert.Equal(t, http.StatusOK, code, body)
		// What core stores of the channel (route credentials included)
		// matches the definition: nothing is reported as edited.
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range families {
			switch f.GetName() {
			case "openhim_mediator_default_channels_modified":
				assert.Zero(t, f.GetMetric()[0].GetGauge().GetValue())
			case "openhim_mediator_default_channels_installed":
				assert.Equal(t, 1.0, f.GetMetric()[0].GetGauge().GetValue())
			}
		}
	})
}
