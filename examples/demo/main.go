// Command demo runs the whole CHT ⇄ OpenHIM ⇄ FHIR flow in one process, with
// no external servers: a fake OpenHIM core with its router
// (mediator/openhimtest), a fake CHT seeded with a small health system
// (cht/chttest), an in-memory FHIR server (fhir/fhirtest), and the
// cht-to-fhir and fhir-to-cht mediators of this repository.
//
//	go run ./examples/demo           # run the flow, print what happened, exit
//	go run ./examples/demo --serve   # keep everything running for curl
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run is main without the process.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	serve := fs.Bool("serve", false, "keep the servers and mediators running and print their URLs and credentials")
	verbose := fs.Bool("v", false, "log the mediators' requests to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // --help printed the usage
		}
		return err
	}
	start := time.Now()
	d, err := startDemo(ctx, *verbose)
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
