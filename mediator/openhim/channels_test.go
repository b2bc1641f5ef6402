package openhim_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDefaultChannelsHeal: with install_channels, a default channel that
// an administrator deletes comes back at the next heartbeat, whether core
// removed it or kept it as status "deleted" (core does that when the
// channel has transactions: src/api/channels.js, removeChannel). An edited
// channel is reported, or put back with restore_channels. The gauges say
// how things stand.
func TestDefaultChannelsHeal(t *testing.T) {
	for _, restore := range []bool{false, true} {
		t.Run(map[bool]string{false: "report edits", true: "restore edits"}[restore], func(t *testing.T) {
			testDefaultChannelsHeal(t, restore)
		})
	}
}

func testDefaultChannelsHeal(t *testing.T, restore bool) {
	core := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4})
	t.Cleanup(core.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	route := openhim.Route{Name: "Heal Route", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Primary: true, Type: "http"}
	reg := prometheus.NewRegistry()
	logs := &lockedBuffer{}
	m, err := mediator.New(mediator.Config{
		Auth: mediator.InboundAuth{Open: true},
		Definition: openhim.Definition{URN: "urn:mediator:heal", Version: "1.0.0", Name: "Heal",
			Endpoints: []openhim.Route{route},
			DefaultChannelConfig: []openhim.Channel{{Name: "Heal Channel", URLPattern: "^/heal$", Allow: []string{"heal"},
				Methods: []string{"GET"}, Type: "http", Routes: []openhim.Route{route}}}},
		Listener: ln,
		OpenHIM: openhim.Config{URL: core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
			CoreVersion: 4, HTTPClient: core.Client()},
		InstallChannels:   true,
		RestoreChannels:   restore,
		HeartbeatInterval: 50 * time.Millisecond,
		Registry:          reg,
		Logger:            slog.New(slog.NewJSONHandler(logs, nil)),
		Handler: mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
			return &mediator.Result{Body: []byte("ok")}, nil
		}),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })

	gauge := func(name string) float64 {
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() == name {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	channel := func() *openhimtest.Channel {
		for _, c := range core.Channels() {
			if c.Name == "Heal Channel" {
				return &c
			}
		}
		return nil
	}
	admin, err := openhim.NewClient(openhim.Config{URL: core.URL, Username: openhimtest.RootUser,
		Password: openhimtest.RootPassword, CoreVersion: 4, HTTPClient: core.Client()}, nil)
	require.NoError(t, err)
	do := func(method, path string, body any) {
		t.Helper()
		require.NoError(t, admin.Do(context.Background(), method, path, body, nil))
	}

	require.Eventually(t, func() bool { return channel() != nil }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return gauge("openhim_mediator_default_channels_installed") == 1 }, 5*time.Second, 10*time.Millisecond)

	// A transaction on the channel, so that core keeps it as "deleted".
	core.AddClient("heal-client", "heal-pw", "heal")
	req, _ := http.NewRequest(http.MethodGet, core.RouterURL+"/heal", nil)
	req.SetBasicAuth("heal-client", "heal-pw")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	first := channel().ID
	do(http.MethodDelete, "/channels/"+first, nil)
	require.Eventually(t, func() bool { c := channel(); return c != nil && c.Status == "enabled" }, 5*time.Second, 10*time.Millisecond,
		"a channel core keeps as deleted is enabled again")
	assert.Equal(t, first, channel().ID, "the same channel, put back (names are unique in core)")
	// The log line follows the PUT that enables the channel.
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "default channels were deleted in core; installed them again")
	},
		5*time.Second, 10*time.Millisecond, "%s", logs.String())
	assert.Equal(t, 1.0, gauge("openhim_mediator_default_channels_installed"))

	// Edited away from the definition.
	do(http.MethodPut, "/channels/"+first, map[string]any{"urlPattern": "^/elsewhere$"})
	if restore {
		require.Eventually(t, func() bool { return channel().URLPattern == "^/heal$" }, 5*time.Second, 10*time.Millisecond)
		require.Eventually(t, func() bool { return strings.Contains(logs.String(), "put them back as defined (restore_channels)") },
			5*time.Second, 10*time.Millisecond, "%s", logs.String())
		assert.Equal(t, 0.0, gauge("openhim_mediator_default_channels_modified"))
	} else {
		require.Eventually(t, func() bool { return gauge("openhim_mediator_default_channels_modified") == 1 }, 5*time.Second, 10*time.Millisecond)
		assert.Equal(t, "^/elsewhere$", channel().URLPattern, "an edit is left alone without restore_channels")
		time.Sleep(200 * time.Millisecond) // several heartbeats: reported once
		assert.Equal(t, 1, strings.Count(logs.String(), "differ in core from the mediator's definition"))
	}
}

// TestRestoreKeepsADisabledChannelDisabled: a default channel's status is
// the administrator's. One disabled (and edited in the same PUT) gets its
// other fields back with restore_channels but stays disabled, and a
// channel that differs only by its status is not reported as modified,
// even when the definition says enabled. Core's PUT /channels/:id updates
// only the fields sent (src/api/channels.js, updateChannel:
// findChannelByIdAndUpdate), so the restore PUT leaves status out.
func TestRestoreKeepsADisabledChannelDisabled(t *testing.T) {
	for _, restore := range []bool{false, true} {
		t.Run(map[bool]string{false: "report edits", true: "restore edits"}[restore], func(t *testing.T) {
			core := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4})
			t.Cleanup(core.Close)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			route := openhim.Route{Name: "Off Route", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Primary: true, Type: "http"}
			reg := prometheus.NewRegistry()
			m, err := mediator.New(mediator.Config{
				Auth: mediator.InboundAuth{Open: true},
				Definition: openhim.Definition{URN: "urn:mediator:off", Version: "1.0.0", Name: "Off",
					Endpoints: []openhim.Route{route},
					DefaultChannelConfig: []openhim.Channel{{Name: "Off Channel", URLPattern: "^/off$", Allow: []string{"off"},
						Methods: []string{"GET"}, Type: "http", Status: "enabled", Routes: []openhim.Route{route}}}},
				Listener: ln,
				OpenHIM: openhim.Config{URL: core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
					CoreVersion: 4, HTTPClient: core.Client()},
				InstallChannels: true, RestoreChannels: restore,
				HeartbeatInterval: 20 * time.Millisecond,
				Registry:          reg,
				Logger:            slog.New(slog.DiscardHandler),
				Handler: mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
					return &mediator.Result{Body: []byte("ok")}, nil
				}),
			})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx) }()
			t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })
			gauge := func(name string) float64 {
				families, err := reg.Gather()
				require.NoError(t, err)
				for _, f := range families {
					if f.GetName() == name {
						return f.GetMetric()[0].GetGauge().GetValue()
					}
				}
				return -1
			}
			modified := func() float64 { return gauge("openhim_mediator_default_channels_modified") }
			channel := func() *openhimtest.Channel {
				for _, c := range core.Channels() {
					if c.Name == "Off Channel" {
						return &c
					}
				}
				return nil
			}
			// Edit only once the pass that installed the channel is over:
			// it puts a channel it has just installed back as defined
			// (matchInstalled), so an edit made between the install and
			// that put would be undone. 30 s: a heartbeat every 20 ms
			// checks the channels, but a CI machine under load can starve
			// the loop for seconds.
			require.Eventually(t, func() bool {
				return channel() != nil && gauge("openhim_mediator_default_channels_installed") == 1 && modified() == 0
			}, 30*time.Second, 10*time.Millisecond)
			admin, err := openhim.NewClient(openhim.Config{URL: core.URL, Username: openhimtest.RootUser,
				Password: openhimtest.RootPassword, CoreVersion: 4, HTTPClient: core.Client()}, nil)
			require.NoError(t, err)
			id := channel().ID
			require.NoError(t, admin.Do(context.Background(), http.MethodPut, "/channels/"+id,
				map[string]any{"status": "disabled", "urlPattern": "^/elsewhere$"}, nil))
			if restore {
				require.Eventually(t, func() bool { return channel().URLPattern == "^/off$" }, 30*time.Second, 10*time.Millisecond, "restored")
			} else {
				require.Eventually(t, func() bool { return modified() == 1 }, 30*time.Second, 10*time.Millisecond, "reported")
				require.NoError(t, admin.Do(context.Background(), http.MethodPut, "/channels/"+id,
					map[string]any{"urlPattern": "^/off$"}, nil))
				require.Eventually(t, func() bool { return modified() == 0 }, 30*time.Second, 10*time.Millisecond,
					"a channel that differs only by its status is not modified")
			}
			time.Sleep(100 * time.Millisecond) // several heartbeats
			assert.Equal(t, "disabled", channel().Status, "an administrator's disable must survive")
			assert.Equal(t, 0.0, modified())
		})
	}
}

// A channel installed while core keeps an earlier registration of the same
// version (core ignores the new one: src/api/mediators.js, addMediator)
// comes out of core's stored copy (loadDefaultChannels). The mediator puts
// it as its own definition has it: here with the route credentials it
// started to require without raising its version, which core's copy lacks
// and without which every routed request would be refused.
func TestInstalledChannelFollowsTheDefinition(t *testing.T) {
	core := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4})
	t.Cleanup(core.Close)
	route := openhim.Route{Name: "R", Host: "mediator", Port: 8601, Primary: true, Type: "http"}
	def := openhim.Definition{URN: "urn:mediator:creds", Version: "1.0.0", Name: "Creds", Endpoints: []openhim.Route{route},
		DefaultChannelConfig: []openhim.Channel{{Name: "Creds Channel", URLPattern: "^/creds$", Allow: []string{"c"},
			Methods: []string{"POST"}, Type: "http", Routes: []openhim.Route{route}}}}
	c, err := openhim.NewClient(openhim.Config{URL: core.URL, Username: openhimtest.RootUser,
		Password: openhimtest.RootPassword, CoreVersion: 4, HTTPClient: core.Client()}, nil)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, c.Register(ctx, &def))

	// The same version again, now with credentials: core keeps the first.
	withCreds := def.WithCredentials("openhim-route", "route-secret")
	require.NoError(t, c.Register(ctx, &withCreds))
	installed, err := c.InstallMissingChannels(ctx, &withCreds)
	require.NoError(t, err)
	assert.Equal(t, []string{"Creds Channel"}, installed)
	chs := core.Channels()
	require.Len(t, chs, 1)
	require.Len(t, chs[0].Routes, 1)
	assert.Equal(t, "openhim-route", chs[0].Routes[0].Username)
	assert.Equal(t, "route-secret", chs[0].Routes[0].Password)
}

// During a rolling deploy the replicas of the older version do not put
// back, with restore_channels, the channels of the newer version whose
// registration core keeps: they report the difference once instead.
func TestOlderReplicaDoesNotRestoreTheNewersChannels(t *testing.T) {
	core := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4})
	t.Cleanup(core.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	route := openhim.Route{Name: "R", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Primary: true, Type: "http"}
	def := func(version, pattern string) openhim.Definition {
		return openhim.Definition{URN: "urn:mediator:rolling", Version: version, Name: "Rolling", Endpoints: []openhim.Route{route},
			DefaultChannelConfig: []openhim.Channel{{Name: "Rolling Channel", URLPattern: pattern, Allow: []string{"r"},
				Methods: []string{"POST"}, Type: "http", Routes: []openhim.Route{route}}}}
	}
	admin, err := openhim.NewClient(openhim.Config{URL: core.URL, Username: openhimtest.RootUser,
		Password: openhimtest.RootPassword, CoreVersion: 4, HTTPClient: core.Client()}, nil)
	require.NoError(t, err)
	newer := def("2.0.0", "^/v2$")
	require.NoError(t, admin.Register(context.Background(), &newer))
	_, err = admin.InstallMissingChannels(context.Background(), &newer)
	require.NoError(t, err)

	logs := &lockedBuffer{}
	m, err := mediator.New(mediator.Config{
		Auth:       mediator.InboundAuth{Open: true},
		Definition: def("1.0.0", "^/v1$"),
		Listener:   ln,
		OpenHIM: openhim.Config{URL: core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
			CoreVersion: 4, HTTPClient: core.Client()},
		InstallChannels: true, RestoreChannels: true, HeartbeatInterval: 20 * time.Millisecond,
		Registry: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
		Handler:  mediator.HandlerFunc(func(*mediator.Request) (*mediator.Result, error) { return &mediator.Result{}, nil }),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "core keeps a newer version of the mediator") },
		5*time.Second, 10*time.Millisecond, "%s", logs.String())
	time.Sleep(100 * time.Millisecond) // several heartbeats
	chs := core.Channels()
	require.Len(t, chs, 1)
	assert.Equal(t, "^/v2$", chs[0].URLPattern, "the newer version's channel stays")
	assert.NotContains(t, logs.String(), "put them back as defined")
	assert.Equal(t, 1, strings.Count(logs.String(), "core keeps a newer version of the mediator"))
}
