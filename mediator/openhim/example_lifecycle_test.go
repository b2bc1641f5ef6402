package openhim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

// ExampleLifecycle registers a mediator with a (fake) core in the
// background, receives its config with the first heartbeat and follows a
// change made in core.
func ExampleLifecycle() {
	core := openhimtest.NewServer(openhimtest.Config{}) // a real deployment uses https://openhim-core:8080
	defer core.Close()

	client, err := openhim.NewClient(openhim.Config{
		URL:        core.URL,
		Username:   openhimtest.RootUser,
		Password:   openhimtest.RootPassword,
		HTTPClient: core.Client(),
	}, nil)
	if err != nil {
		panic(err)
	}
	changes := make(chan map[string]any, 4)
	lc, err := openhim.NewLifecycle(openhim.LifecycleConfig{
		Client: client,
		Definition: openhim.Definition{
			URN: "urn:mediator:example", Version: "1.0.0", Name: "Example Mediator",
			Endpoints:  []openhim.Route{{Name: "Example", Host: "mediator", Port: 8000, Primary: true}},
			ConfigDefs: []openhim.ConfigDef{{Param: "greeting", Type: openhim.ConfigString}},
			Config:     map[string]any{"greeting": "hello"},
		},
		HeartbeatInterval: 50 * time.Millisecond,
		OnConfig:          func(old, new map[string]any) { changes <- new },
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lc.Run(ctx) }()

	fmt.Println("first config:", (<-changes)["greeting"])
	_ = core.SetConfig("urn:mediator:example", map[string]any{"greeting": "bonjour"}) // as the console does
	fmt.Println("changed to:", (<-changes)["greeting"])
	fmt.Println("registered:", lc.Registered())

	cancel()
	fmt.Println("Run returned:", <-done)
	// Output:
	// first config: hello
	// changed to: bonjour
	// registered: true
	// Run returned: <nil>
}

// ExampleTypedConfig derives configDefs from a struct and keeps a typed
// copy of the live config.
func ExampleTypedConfig() {
	type Settings struct {
		UpstreamURL string          `openhim:"upstreamUrl" display:"Upstream URL"`
		APIKey      settings.Secret `openhim:"apiKey,password"`
		Mode        string          `openhim:"mode" values:"fast,safe"`
		Timeout     time.Duration   `openhim:"timeout"`
	}
	settings, err := openhim.NewTypedConfig(Settings{UpstreamURL: "http://fhir:8080", Mode: "safe", Timeout: 5 * time.Second}, nil)
	if err != nil {
		panic(err)
	}
	settings.Subscribe(func(old, new Settings) {
		fmt.Printf("mode %s -> %s, key %v, timeout %v\n", old.Mode, new.Mode, new.APIKey, new.Timeout)
	})
	defs, _ := json.Marshal(settings.Defs())
	fmt.Println(string(defs))

	// Plug settings.OnConfig into LifecycleConfig.OnConfig; here we call it
	// as the Lifecycle would after a heartbeat.
	settings.OnConfig(nil, map[string]any{"mode": "fast", "apiKey": "s3cret", "timeout": "1m"})
	settings.OnConfig(nil, map[string]any{"mode": "turbo"}) // rejected: not an option
	fmt.Println("still:", settings.Load().Mode, "error:", settings.Err())
	// Output:
	// [{"param":"upstreamUrl","displayName":"Upstream URL","type":"string"},{"param":"apiKey","type":"password"},{"param":"mode","type":"option","values":["fast","safe"]},{"param":"timeout","type":"string"}]
	// mode safe -> fast, key REDACTED, timeout 1m0s
	// still: fast error: openhim: invalid config.mode: expected one of ["fast" "safe"]
}

// ExampleAPIError shows how core's answers surface as errors: a 400 keeps
// core's message, and sentinels match the status.
func ExampleAPIError() {
	core := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version7})
	defer core.Close()
	// Targeting core 8 skips the local host/port check that core 7 applies.
	client, _ := openhim.NewClient(openhim.Config{URL: core.URL, Username: openhimtest.RootUser,
		Password: openhimtest.RootPassword, CoreVersion: 8}, nil)
	err := client.Register(context.Background(), &openhim.Definition{URN: "urn:mediator:x", Version: "1.0.0", Name: "X",
		Endpoints: []openhim.Route{{Name: "no host"}}})
	var apiErr *openhim.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, errors.Is(err, openhim.ErrBadRequest))
	}
	_, err = client.GetMediator(context.Background(), "urn:mediator:unknown")
	fmt.Println(errors.Is(err, openhim.ErrNotFound))
	// Output:
	// 400 true
	// true
}

// ExampleDefinition_Validate checks a definition locally with the rules of
// the target core version before any network call.
func ExampleDefinition_Validate() {
	d := openhim.Definition{URN: "urn:mediator:x", Version: "1.0", Name: "X",
		Endpoints: []openhim.Route{{Name: "hl7", Type: "mllp", Host: "h", Port: 2575}}}
	fmt.Println(d.Validate(8))
	// Output:
	// openhim: invalid version: version is required; must be in SemVer form x.y.z (got "1.0"); openhim: invalid endpoints[0].type: route type "mllp" is not supported by core 8 (want http or kafka)
}

// ExampleClient shows the API client on its own: register, heartbeat with
// config:true, and read the stored definition back.
func ExampleClient() {
	started := time.Now()                                                            // a heartbeat carries the process uptime
	core := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version4}) // token auth only, like core 4.x
	defer core.Close()
	client, err := openhim.NewClient(openhim.Config{URL: core.URL, Username: openhimtest.RootUser,
		Password: openhimtest.RootPassword, CoreVersion: 4}, nil) // Auth "" (auto) falls back to token
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	def := &openhim.Definition{URN: "urn:mediator:client-example", Version: "1.0.0", Name: "Client Example",
		Endpoints:  []openhim.Route{{Name: "Client Example", Host: "mediator", Port: 8000}},
		ConfigDefs: []openhim.ConfigDef{{Param: "token", Type: openhim.ConfigPassword}},
		Config:     map[string]any{"token": "s3cret"}}
	if err := client.Register(ctx, def); err != nil {
		panic(err)
	}
	cfg, err := client.Heartbeat(ctx, def.URN, time.Since(started).Seconds(), true)
	if err != nil {
		panic(err)
	}
	fmt.Println("heartbeat config:", cfg["token"])
	stored, err := client.GetMediator(ctx, def.URN)
	if err != nil {
		panic(err)
	}
	fmt.Println("GET config:", stored.Config["token"])
	drift, _ := client.CheckRegistration(ctx, def)
	fmt.Println("drift:", drift)
	// Output:
	// heartbeat config: s3cret
	// GET config: **********
	// drift: no drift
}
