package backfill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// Sync a (fake) CHT instance to a (fake) FHIR server, resumably.
func ExampleRun() {
	chtSrv := chttest.NewDemoServer()
	defer chtSrv.Close()
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	defer fhirSrv.Close()
	dir, err := os.MkdirTemp("", "backfill")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	if err != nil {
		fmt.Println(err)
		return
	}
	mapping := fhir.DefaultMapping()
	// The app's contact hierarchy tells people from places.
	types, err := client.ContactTypes(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	conv, err := fhir.New(fhir.Config{ContactTypes: types, InstanceURL: chtSrv.URL, Mapping: mapping})
	if err != nil {
		fmt.Println(err)
		return
	}
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := backfill.Config{
		CHT:            client,
		Converter:      conv,
		FHIR:           fc,
		CheckpointFile: filepath.Join(dir, "checkpoint.json"),
	}
	sum, err := backfill.Run(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("converted %d of %d documents, %d failed\n", sum.Converted, sum.Docs, sum.Failed)
	fmt.Println("encounters:", fhirSrv.Count("Encounter"))

	// Run again: the checkpoint says everything is done.
	again, err := backfill.Run(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("second run processed:", again.Processed)
	// Output:
	// converted 13 of 13 documents, 0 failed
	// encounters: 3
	// second run processed: 0
}

// Write, after a fix, the documents a sync failed on.
func ExampleRetry() {
	chtSrv := chttest.NewDemoServer()
	defer chtSrv.Close()
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	defer fhirSrv.Close()
	dir, err := os.MkdirTemp("", "backfill")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	person := map[string]any{"_id": "amina", "type": "person", "name": "Amina",
		"date_of_birth": "12/07/1994", "parent": map[string]any{"_id": chttest.DemoHouseholdID}}
	if _, err := chtSrv.PutDoc(person); err != nil {
		fmt.Println(err)
		return
	}
	client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	if err != nil {
		fmt.Println(err)
		return
	}
	conv, err := fhir.New(fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: chtSrv.URL, Mapping: fhir.DefaultMapping()})
	if err != nil {
		fmt.Println(err)
		return
	}
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := backfill.Config{CHT: client, Converter: conv, FHIR: fc, CheckpointFile: filepath.Join(dir, "checkpoint.json")}
	sum, err := backfill.Run(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	failed, err := backfill.ReadFailures(cfg.CheckpointFile)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("failed:", sum.Failed, failed[0].DocID)

	// The fix, in CHT: a date of birth FHIR can carry.
	raw, _ := chtSrv.Doc("amina")
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		fmt.Println(err)
		return
	}
	doc["date_of_birth"] = "1994-07-12"
	if _, err := chtSrv.PutDoc(doc); err != nil {
		fmt.Println(err)
		return
	}
	sum, err = backfill.Retry(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("retried:", sum.Processed, "still failing:", sum.FailedNow)
	// Output:
	// failed: 1 amina
	// retried: 1 still failing: 0
}
