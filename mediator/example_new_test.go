package mediator_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// ExampleNew is the smallest complete mediator: it registers with core,
// heartbeats, serves one route, and follows the config an administrator
// changes in the OpenHIM console. Here core is the fake from openhimtest; in
// production, URL is core's API (https://openhim-core:8080).
func ExampleNew() {
	core := openhimtest.NewServer(openhimtest.Config{})
	defer core.Close()

	// The mediator's settings as the OpenHIM console edits them: configDefs
	// are derived from the struct, and changes arrive typed.
	type Settings struct {
		Greeting string `openhim:"greeting" display:"Greeting"`
	}
	settings, err := openhim.NewTypedConfig(Settings{Greeting: "hello"}, nil)
	if err != nil {
		panic(err)
	}
	changed := make(chan Settings, 4)
	settings.Subscribe(func(_, new Settings) { changed <- new })

	m, err := mediator.New(mediator.Config{
		// The credentials core's route sends: New puts them on the
		// Definition's endpoints and default channel routes.
		Auth: mediator.InboundAuth{Username: "openhim-route", Password: "change-me"},
		Definition: openhim.Definition{
			URN: "urn:mediator:hello", Version: "1.0.0", Name: "Hello",
			Endpoints: []openhim.Route{{Name: "Hello", Host: "localhost", Port: 8000, Primary: true}},
		},
		ConsoleConfig: settings, // its configDefs, defaults and live updates
		Listen:        "127.0.0.1:0",
		OpenHIM: openhim.Config{
			URL: core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
		},
		HeartbeatInterval: 50 * time.Millisecond,
		Handler: mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
			return mediator.JSONResult(http.StatusOK, map[string]string{"message": settings.Load().Greeting})
		}),
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }() // serves, registers, heartbeats

	for !m.Ready() { // registered with core
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("registered; greeting:", settings.Load().Greeting)
	if err := core.SetConfig("urn:mediator:hello", map[string]any{"greeting": "habari"}); err != nil { // an admin edits it
		panic(err)
	}
	for s := range changed { // the first value is the config core held at registration
		if s.Greeting != "hello" {
			fmt.Println("config changed to:", s.Greeting)
			break
		}
	}

	cancel() // graceful shutdown: drains requests, stops heartbeats
	fmt.Println("stopped:", <-done)
	// Output:
	// registered; greeting: hello
	// config changed to: habari
	// stopped: <nil>
}
