package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// Credentials of the demo's OpenHIM clients.
const (
	chtClientID = "cht-outbound" // not a role a channel allows: core refuses that (409)
	chtClientPW = "cht-demo-password"
	emrClientID = "emr"
	emrClientPW = "emr-demo-password"
	// What each mediator requires of the requests routed to it, and the
	// route of its channel sends.
	routeUser    = "openhim-route"
	routePW      = "route-demo-password"
	instanceURL  = "https://cht.demo.example"
	readyTimeout = 10 * time.Second
)

// demo holds the running fakes and mediators.
type demo struct {
	core      *openhimtest.Server
	cht       *chttest.Server
	fhir      *fhirtest.Server
	emr       *emr // the EMR's notification endpoint (referral.go)
	conv      *fhir.Converter
	types     cht.ContactTypes // the app's contact hierarchy, as loaded from CHT
	mediators []*runningMediator
	log       *slog.Logger
}

type runningMediator struct {
	name string
	m    *mediator.Mediator
	stop context.CancelFunc
	done chan error
}

// startDemo starts the fakes and both mediators, and waits until the
// mediators are registered with their channels installed.
func startDemo(ctx context.Context, log *slog.Logger) (_ *demo, err error) {
	d := &demo{
		core: openhimtest.NewServer(openhimtest.Config{}),
		cht:  chttest.NewDemoServer(),
		fhir: fhirtest.NewServer(fhirtest.Config{}),
		emr:  newEMR(),
		log:  log,
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	// The getting-started guide stores CHT's credential as "admin", CHT's
	// usual administrator, and its mediator reads CHT as the online user
	// "openhim" (cht.username of examples/cht-to-fhir/config.yaml): the
	// fake has both too, for --serve.
	d.cht.AddUser(chttest.User{Name: chtAdminUser, Password: chttest.AdminPassword, Roles: []string{chttest.RoleDBAdmin}})
	d.cht.AddUser(chttest.User{Name: chtMediatorUser, Password: chttest.AdminPassword, Roles: []string{chttest.RoleAdmin}})
	d.core.AddClient(chtClientID, chtClientPW, chtRole)

	mapping := fhir.DefaultMapping()
	if err := withReferral(mapping); err != nil {
		return nil, err
	}
	chtClient, err := cht.New(cht.Config{
		URL: d.cht.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		HTTPClient: &http.Client{Transport: mediator.Transport(nil)}, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	// The app's contact hierarchy (app_settings.contact_types) tells people
	// from places.
	d.types, err = chtClient.ContactTypes(ctx)
	if err != nil {
		return nil, err
	}
	d.conv, err = fhir.New(fhir.Config{
		InstanceURL:  instanceURL,
		Mapping:      mapping,
		ContactTypes: d.types,
		Inbound:      fhir.InboundConfig{ParentPlace: chttest.DemoHouseholdID},
	})
	if err != nil {
		return nil, err
	}

	// CHT → FHIR.
	fhirClient, err := fhir.NewClient(fhir.ClientConfig{BaseURL: d.fhir.URL,
		HTTPClient: &http.Client{Transport: mediator.Transport(nil)}, Logger: log})
	if err != nil {
		return nil, err
	}
	h, err := push.New(push.Config{Converter: d.conv, FHIR: fhirClient, CHT: chtClient,
		Orchestrate: mediator.WithOrchestration, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := d.startMediator(ctx, "cht-to-fhir", chtToFHIRDefinition, h); err != nil {
		return nil, err
	}
	if err := d.startReverse(ctx, chtClient); err != nil {
		return nil, err
	}
	return d, d.waitReady(ctx)
}

// startMediator runs one mediator on a loopback port, registering with the
// fake core and installing its default channel.
func (d *demo) startMediator(ctx context.Context, name string, def func(host string, port int) openhim.Definition, h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	m, err := mediator.New(mediator.Config{
		Definition: def("127.0.0.1", ln.Addr().(*net.TCPAddr).Port),
		Listener:   ln,
		OpenHIM: openhim.Config{
			URL: d.core.URL, Username: openhimtest.RootUser, Password: openhimtest.RootPassword,
		},
		HeartbeatInterval: time.Second,
		InstallChannels:   true,
		Auth:              mediator.InboundAuth{Username: routeUser, Password: routePW},
		Handler:           h,
		Logger:            d.log.With("mediator", name),
	})
	if err != nil {
		ln.Close()
		return err
	}
	mctx, stop := context.WithCancel(ctx)
	rm := &runningMediator{name: name, m: m, stop: stop, done: make(chan error, 1)}
	go func() { rm.done <- m.Run(mctx) }()
	d.mediators = append(d.mediators, rm)
	return nil
}

// waitReady waits until every mediator is registered and its channel is
// installed in core.
func (d *demo) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		ready := len(d.core.Channels()) >= len(d.mediators)
		for _, rm := range d.mediators {
			ready = ready && rm.m.Ready()
		}
		if ready {
			// Core's channel cache refreshes about once a second.
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("mediators did not register with the fake OpenHIM core in time")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops the mediators (gracefully) and the fakes.
func (d *demo) Close() {
	for _, rm := range d.mediators {
		rm.stop()
		select {
		case <-rm.done:
		case <-time.After(5 * time.Second):
		}
	}
	for _, c := range []interface{ Close() }{d.core, d.cht, d.fhir} {
		if c != nil {
			c.Close()
		}
	}
	if d.emr != nil {
		d.emr.Close()
	}
}

// chtAdminUser is the fake CHT's second administrator, named as the guide
// names CHT's; chtMediatorUser is the CHT user of the guide's mediator.
const (
	chtAdminUser    = "admin"
	chtMediatorUser = "openhim"
)

// examplePush is a push of a new person as CHT sends it: {"doc": the
// hydrated document}, the shape of the guide's test push.
const examplePush = `{"doc":{"_id":"p-123","_rev":"1-a","type":"person","name":"Test Person","sex":"female",` +
	`"date_of_birth":"1990-01-01","reported_date":1730355950419,"parent":{"_id":"hh-1","_rev":"1-b","type":"contact",` +
	`"contact_type":"household","name":"Test Household","parent":{"_id":"area-1"}}}}`

// printEndpoints tells a user how to reach everything in --serve mode.
func (d *demo) printEndpoints(out io.Writer) {
	fmt.Fprintf(out, `
Serving until Ctrl-C:
  OpenHIM API      %s   (user %s, password %s)
  OpenHIM router   %s   (client %s/%s for /cht/*, %s/%s for /fhir/*)
  CHT API (fake)   %s   (users %s, %s and %s, password %s)
  FHIR server      %s
`, d.core.URL, openhimtest.RootUser, openhimtest.RootPassword,
		d.core.RouterURL, chtClientID, chtClientPW, emrClientID, emrClientPW,
		d.cht.URL, chttest.AdminUsername, chtAdminUser, chtMediatorUser, chttest.AdminPassword, d.fhir.URL)
	for _, rm := range d.mediators {
		fmt.Fprintf(out, "  mediator %-12s http://%s   (user %s, password %s: what the channel's route sends)\n",
			rm.name, rm.m.Addr(), routeUser, routePW)
	}
	fmt.Fprintf(out, `
Try (the push is what CHT sends, as in docs/getting-started.md):
  curl -s %s/Patient | head -c 600
  curl -s -u %s:%s -H 'Content-Type: application/json' %s/cht/outbound \
    -d '%s'
`, d.fhir.URL, chtClientID, chtClientPW, d.core.RouterURL, examplePush)
}
