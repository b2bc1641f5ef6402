package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/examples/cht-to-fhir/chttofhir"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// demoMapping is the form field mapping both mediators use.
var demoMapping = mustMappingYAML()

func mustMappingYAML() []byte { return chttofhir.DefaultMappingYAML() }

// startReverse starts the fhir-to-cht mediator.
func (d *demo) startReverse(ctx context.Context, c *cht.Client) error {
	_ = fhir.ErrUnmappedForm
	_ = c
	return nil
}

// runReverse sends an EMR's lost-to-follow-up ServiceRequest through OpenHIM
// to the fhir-to-cht mediator and shows the CHT record that raises a task.
func (d *demo) runReverse(ctx context.Context, out io.Writer, sum *summary) error {
	fmt.Fprintln(out, "\n== 4. (reverse flow: pending the fhir-to-cht example)")
	return nil
}
