// Command demo runs the whole CHT ⇄ OpenHIM ⇄ FHIR flow in one process, with
// no external servers: a fake OpenHIM core with its router
// (mediator/openhimtest), a fake CHT seeded with a small health system
// (cht/chttest), an in-memory FHIR server (fhir/fhirtest), and the
// cht-to-fhir and fhir-to-cht mediators of this repository.
//
//	go run ./examples/demo           # run the flow, print what happened, exit
//	go run ./examples/demo --serve   # keep everything running for curl
//
// --help lists its flags.
package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/settings"
)

func main() { settings.Main("demo", logLevel, run) }

var logLevel = new(slog.LevelVar) // --log-level

// run is main without the process.
func run(ctx context.Context, args []string, out io.Writer, logger *slog.Logger) error {
	cli := settings.NewCLI("demo", "1.0.0", nil)
	cli.Level = logLevel
	serve := cli.Flags.Bool("serve", false, "keep the servers and mediators running and print their URLs and credentials")
	verbose := cli.Flags.Bool("v", false, "log the mediators' requests to stderr")
	if done, err := cli.Parse(args, out, nil); done || err != nil {
		return err
	}
	start := time.Now()
	if !*verbose {
		logger = slog.New(slog.DiscardHandler)
	}
	d, err := startDemo(ctx, logger)
	if err != nil {
		return err
	}
	defer d.Close()

	sum, err := d.runFlows(ctx, out)
	if err != nil {
		return err
	}
	if err := d.runReferral(ctx, out); err != nil {
		return err
	}
	sum.Elapsed = time.Since(start)
	sum.print(out)

	if *serve {
		d.printEndpoints(out)
		<-ctx.Done()
	}
	return nil
}
