package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// newPatientID is the person the demo registers in CHT.
const newPatientID = "d3m0-0000-4a1b-8c2d-amina-wanjiru"

// summary is what the demo proves; CI checks its last line.
type summary struct {
	Pushes          int
	PushesOK        int
	FHIRResources   map[string]int
	Transactions    int
	TransactionsOK  int
	Orchestrations  int
	ReverseRequests int
	TaskRecords     int
	Elapsed         time.Duration
}

// runFlows drives CHT's outbound pushes through the OpenHIM router to the
// cht-to-fhir mediator, then the reverse flow, printing what happens.
func (d *demo) runFlows(ctx context.Context, out io.Writer) (*summary, error) {
	sum := &summary{}
	pusher, err := chttest.NewOutboundPusher(chttest.PusherConfig{
		Name:     "cht_to_fhir",
		URL:      d.core.RouterURL + push.OutboundPath,
		Username: chtClientID,
		Password: chtClientPW,
		Mapping:  map[string]any{"doc": "doc"},
		Server:   d.cht,
		Logger:   d.log,
	})
	if err != nil {
		return nil, err
	}

	fmt.Fprintln(out, "== 1. A CHW registers a new patient in CHT; CHT's outbound push goes through OpenHIM to the cht-to-fhir mediator")
	if _, err := d.cht.PutDoc(newPatient()); err != nil {
		return nil, err
	}
	if err := d.push(ctx, out, pusher, newPatientID, sum); err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "\n== 2. The CHW submits an under-5 assessment for a child; the report is pushed the same way")
	if err := d.push(ctx, out, pusher, chttest.DemoAssessmentReportID, sum); err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "\n== 3. CHT pushes the same report again (as it does after a lost answer): nothing is duplicated")
	before := d.fhir.Counts()
	if err := d.repush(ctx, out, pusher, chttest.DemoAssessmentReportID, sum); err != nil {
		return nil, err
	}
	if after := d.fhir.Counts(); !mapsEqual(before, after) {
		return nil, fmt.Errorf("a repeated push changed the FHIR server's contents: %v → %v", before, after)
	}
	fmt.Fprintln(out, "   FHIR server unchanged:", formatCounts(d.fhir.Counts()))

	fmt.Fprintln(out, "\n== What reached the FHIR server")
	d.printFHIR(out)
	sum.FHIRResources = d.fhir.Counts()

	fmt.Fprintln(out, "\n== The OpenHIM transactions, with the mediator's orchestrations")
	for _, tx := range d.core.Transactions() {
		sum.Transactions++
		if tx.Status == "Successful" {
			sum.TransactionsOK++
		}
		sum.Orchestrations += len(tx.Orchestrations)
		d.printTransaction(out, tx)
	}

	if err := d.runReverse(ctx, out, sum); err != nil {
		return nil, err
	}
	return sum, nil
}

// push marks a document for outbound, as CHT does after a change, and waits
// for the answer.
func (d *demo) push(ctx context.Context, out io.Writer, p *chttest.OutboundPusher, id string, sum *summary) error {
	sum.Pushes++
	att, err := p.PushID(ctx, id)
	if err != nil {
		return fmt.Errorf("push %s: %w (answer %d: %s)", id, err, att.StatusCode, att.Response)
	}
	sum.PushesOK++
	fmt.Fprintf(out, "   push %s → %s (HTTP %d)\n", id, att.Outcome, att.StatusCode)
	return nil
}

// repush sends the last payload of id again, bypassing CHT's "same payload
// hash" check, the way a retry after a lost answer arrives.
func (d *demo) repush(ctx context.Context, out io.Writer, p *chttest.OutboundPusher, id string, sum *summary) error {
	attempts := p.Attempts()
	for i := len(attempts) - 1; i >= 0; i-- {
		a := attempts[i]
		if a.DocID != id || a.Payload == nil {
			continue
		}
		sum.Pushes++
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.core.RouterURL+push.OutboundPath, bytes.NewReader(a.Payload))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(chtClientID, chtClientPW)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("re-push %s: %w", id, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("re-push %s: HTTP %d: %s", id, resp.StatusCode, body)
		}
		sum.PushesOK++
		fmt.Fprintf(out, "   push %s again → HTTP %d\n", id, resp.StatusCode)
		return nil
	}
	return fmt.Errorf("no earlier push of %s", id)
}

// newPatient is the person a CHW registers in the demo.
func newPatient() map[string]any {
	return map[string]any{
		"_id":           newPatientID,
		"type":          "person",
		"name":          "Amina Wanjiru",
		"sex":           "female",
		"date_of_birth": "1996-04-12",
		"phone":         "+254712000111",
		"patient_id":    "14001",
		"reported_date": time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC).UnixMilli(),
		"parent": map[string]any{"_id": chttest.DemoHouseholdID, "parent": map[string]any{
			"_id": chttest.DemoCHWAreaID, "parent": map[string]any{
				"_id": chttest.DemoHealthCentreID, "parent": map[string]any{"_id": chttest.DemoDistrictID}}}},
	}
}

// printFHIR lists the stored resources, one line each.
func (d *demo) printFHIR(out io.Writer) {
	for _, typ := range []string{"Patient", "Practitioner", "Organization", "Location", "Encounter", "Observation", "ServiceRequest"} {
		for _, raw := range d.fhir.Resources(typ) {
			fmt.Fprintf(out, "   %-12s %s\n", typ, describe(raw))
		}
	}
	fmt.Fprintln(out, "   total:", formatCounts(d.fhir.Counts()))
}

// describe summarises one FHIR resource.
func describe(raw json.RawMessage) string {
	var r struct {
		ID   string `json:"id"`
		Name json.RawMessage
		Code *struct {
			Coding []struct{ Code, Display string }
			Text   string
		}
		Type []struct {
			Coding []struct{ Code, Display string }
		}
		ValueQuantity *struct {
			Value float64
			Unit  string
		}
		ValueBoolean         *bool
		ValueString          *string
		ValueCodeableConcept *struct {
			Coding []struct{ Code, Display string }
		}
		Period *struct{ Start string }
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return "(undecodable)"
	}
	var parts []string
	if len(r.Name) > 0 {
		var names []struct{ Text string }
		var name string
		if json.Unmarshal(r.Name, &names) == nil && len(names) > 0 {
			name = names[0].Text
		} else {
			_ = json.Unmarshal(r.Name, &name)
		}
		parts = append(parts, fmt.Sprintf("%q", name))
	}
	if r.Code != nil && len(r.Code.Coding) > 0 {
		c := r.Code.Coding[0]
		label := c.Display
		if label == "" {
			label = c.Code
		}
		parts = append(parts, label)
	}
	switch {
	case r.ValueQuantity != nil:
		parts = append(parts, fmt.Sprintf("= %g %s", r.ValueQuantity.Value, r.ValueQuantity.Unit))
	case r.ValueBoolean != nil:
		parts = append(parts, fmt.Sprintf("= %t", *r.ValueBoolean))
	case r.ValueString != nil:
		parts = append(parts, fmt.Sprintf("= %q", *r.ValueString))
	case r.ValueCodeableConcept != nil && len(r.ValueCodeableConcept.Coding) > 0:
		c := r.ValueCodeableConcept.Coding[0]
		parts = append(parts, "= "+firstNonEmpty(c.Display, c.Code))
	}
	if len(r.Type) > 0 && len(r.Type[0].Coding) > 0 && r.Code == nil {
		parts = append(parts, firstNonEmpty(r.Type[0].Coding[0].Display, r.Type[0].Coding[0].Code))
	}
	if r.Period != nil && r.Period.Start != "" {
		parts = append(parts, "on "+r.Period.Start)
	}
	return r.ID + "  " + strings.Join(parts, " ")
}

// printTransaction prints a transaction and its orchestrations compactly,
// the client by its name (core records its _id).
func (d *demo) printTransaction(out io.Writer, tx openhimtest.Transaction) {
	client := tx.ClientID
	for _, c := range d.core.Clients() {
		if c.ID == tx.ClientID {
			client = c.Name
		}
	}
	method, path := "", ""
	if tx.Request != nil {
		method, path = tx.Request.Method, tx.Request.Path
	}
	status := 0
	if tx.Response != nil {
		status = tx.Response.Status
	}
	fmt.Fprintf(out, "   %s %s %s by client %q → %s (HTTP %d, mediator %s)\n",
		tx.ID, method, path, client, tx.Status, status, tx.MediatorURN)
	for _, o := range tx.Orchestrations {
		code, took := 0, ""
		if o.Response != nil {
			code = o.Response.Status
			if o.Request != nil && o.Request.Timestamp != nil && o.Response.Timestamp != nil {
				took = o.Response.Timestamp.Sub(*o.Request.Timestamp).Round(100 * time.Microsecond).String()
			}
		}
		target := ""
		if o.Request != nil {
			target = o.Request.Method + " " + o.Request.Path
		}
		fmt.Fprintf(out, "      orchestration %-18q %-40s → %d %s\n", o.Name, target, code, took)
	}
}

func formatCounts(c map[string]int) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c[k]))
	}
	return strings.Join(parts, " ")
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// print writes the summary; its last line starts with "demo: OK".
func (s *summary) print(out io.Writer) {
	total := 0
	for _, n := range s.FHIRResources {
		total += n
	}
	fmt.Fprintf(out, "\n== Summary\n")
	fmt.Fprintf(out, "   CHT pushes through OpenHIM:     %d/%d answered 2xx\n", s.PushesOK, s.Pushes)
	fmt.Fprintf(out, "   FHIR resources stored:          %d (%s)\n", total, formatCounts(s.FHIRResources))
	fmt.Fprintf(out, "   OpenHIM transactions:           %d/%d Successful, %d orchestrations recorded\n", s.TransactionsOK, s.Transactions, s.Orchestrations)
	fmt.Fprintf(out, "   EMR requests to CHT:            %d, CHT task records created: %d\n", s.ReverseRequests, s.TaskRecords)
	fmt.Fprintf(out, "demo: OK in %s: %s, %s, %s, %s\n", s.Elapsed.Round(time.Millisecond), count(s.PushesOK, "push", "pushes"),
		count(total, "FHIR resource", "FHIR resources"), count(s.Transactions, "transaction", "transactions"),
		count(s.TaskRecords, "task record", "task records"))
}

// count is "1 thing" or "n things".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
