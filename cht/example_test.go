package cht_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// newExampleClient starts the demo fake CHT and a client for it.
func newExampleClient() (*chttest.Server, *cht.Client) {
	srv := chttest.NewDemoServer()
	c, err := cht.New(cht.Config{
		URL:        srv.URL,
		Username:   chttest.AdminUsername,
		Password:   chttest.AdminPassword,
		HTTPClient: srv.Client(),
	})
	if err != nil {
		log.Fatal(err)
	}
	return srv, c
}

func Example() {
	srv, c := newExampleClient()
	defer srv.Close()
	ctx := context.Background()

	p, err := c.Contacts.Get(ctx, chttest.DemoCHWID, &cht.GetOptions{WithLineage: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Name, "-", p.TypeID())
	for l := p.Parent; l != nil; l = l.Parent {
		fmt.Println("  in", l.Doc.Name, "("+l.Doc.TypeID()+")")
	}
	// Output:
	// Example CHW - person
	//   in Sigomere CHW Area (chw_area)
	//   in Ugunja Health Centre (health_center)
	//   in Siaya District (district_hospital)
}

func ExampleClient_Hydrate() {
	srv, c := newExampleClient()
	defer srv.Close()

	res, err := c.Hydrate(context.Background(), chttest.DemoDangerSignReportID, "no-such-doc")
	if err != nil {
		log.Fatal(err)
	}
	r, err := res.Docs[0].Report()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("form:", r.Form)
	fmt.Println("patient:", r.Patient.Name)
	fmt.Println("submitted by:", r.Contact.Name)
	fmt.Println("not found:", res.NotFound)
	// Output:
	// form: pregnancy_danger_sign
	// patient: Della Otieno
	// submitted by: Example CHW
	// not found: [no-such-doc]
}

func ExampleReport_Subject() {
	doc := `{"_id":"r1","type":"data_record","form":"interop_follow_up",
	  "fields":{"inputs":{"contact":{"_id":"p1"}},"vitals":{"temp":"38.5","fever":"yes"}},
	  "reported_date":1730355950419}`
	var r cht.Report
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		log.Fatal(err)
	}
	id, from, _ := r.Subject()
	temp, _ := r.Fields.Float("vitals.temp")
	fever, _ := r.Fields.Bool("vitals.fever")
	fmt.Println(id, "from", from)
	fmt.Println(temp, fever, r.ReportedDate)
	// Output:
	// p1 from fields.inputs.contact._id
	// 38.5 true 2024-10-31T06:25:50.419Z
}

func ExampleDecodeError() {
	var c cht.Contact
	err := json.Unmarshal([]byte(`{"_id":"a","reported_date":"yesterday"}`), &c)
	fmt.Println(err)
	err = json.Unmarshal([]byte(`{"_id":"a","parent":{"_id":"b","parent":{"_id":["x"]}}}`), &c)
	var de *cht.DecodeError
	if errors.As(err, &de) {
		fmt.Println("path:", de.Path)
	}
	// Output:
	// cht: decode reported_date: want milliseconds or an ISO 8601 date, got "yesterday"
	// path: parent.parent._id
}

func ExampleRecordsService_Submit() {
	srv, c := newExampleClient()
	defer srv.Close()
	ctx := context.Background()

	// The form code and keys are normalised as CHT would; ReadBack
	// surfaces the validation errors CHT stores while answering 200.
	res, err := c.Records.Submit(ctx, cht.Record{
		Form:   "height_weight",
		Fields: map[string]any{"Height": 172, "weight": 65},
	}, &cht.SubmitOptions{ReadBack: true})
	fmt.Println(res.Report.Form, errors.Is(err, cht.ErrInvalidRecord))
	for _, e := range res.Errors {
		fmt.Println(e.Code)
	}
	// Output:
	// HEIGHT_WEIGHT true
	// sys.missing_fields
}

func ExampleContactsService_All() {
	srv, c := newExampleClient()
	defer srv.Close()

	for p, err := range c.Contacts.All(context.Background(), cht.ListOptions{Type: "person", Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		if p.Role == "patient" {
			fmt.Println(p.Name)
		}
	}
	// Unordered output:
	// John Test
	// Della Otieno
	// Baby Otieno
}

func ExampleAPIError() {
	srv, c := newExampleClient()
	defer srv.Close()

	_, err := c.Reports.Get(context.Background(), "missing", nil)
	var apiErr *cht.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, errors.Is(err, cht.ErrNotFound))
	}
	// Output:
	// 404 true
}

func ExampleDocsService_All() {
	srv, c := newExampleClient()
	defer srv.Close()
	ctx := context.Background()

	// Backfill, keeping the last sequence as checkpoint.
	var checkpoint cht.Seq
	n := 0
	for ch, err := range c.Docs.All(ctx, cht.ChangesOptions{Limit: 5}) {
		if err != nil {
			log.Fatal(err)
		}
		n++
		checkpoint = ch.Seq
	}
	// Later: resume from the checkpoint.
	page, err := c.Docs.Changes(ctx, cht.ChangesOptions{Since: checkpoint})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "changes, then", len(page.Results))
	// Output:
	// 13 changes, then 0
}
