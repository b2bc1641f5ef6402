package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/tocht"
)

// taskForm is the records form the converter submits for ServiceRequests
// (fhir.InboundConfig.TaskForm, stored upper-case as the records API does).
const taskForm = "INTEROP_FOLLOW_UP"

// startReverse starts the fhir-to-cht mediator and the EMR's OpenHIM client.
func (d *demo) startReverse(ctx context.Context, c *cht.Client) error {
	b, err := tocht.New(tocht.Config{Converter: d.conv, ContactTypes: d.types, CHT: c, FHIRURL: d.fhir.URL, Logger: d.log, NotifyEMR: d.emr.notify()})
	if err != nil {
		return err
	}
	d.core.AddClient(emrClientID, emrClientPW, tocht.ClientRole)
	return d.startMediator(ctx, "fhir-to-cht", tocht.Definition, b.Handler())
}

// serviceRequest is the EMR's lost-to-follow-up request for the patient
// cht-to-fhir wrote to the FHIR server.
func (d *demo) serviceRequest() []byte {
	return []byte(fmt.Sprintf(`{
  "resourceType": "ServiceRequest",
  "id": "ltfu-2025-0042",
  "identifier": [{"system": "https://emr.demo.example/service-request", "value": "LTFU-2025-0042"}],
  "status": "active",
  "intent": "order",
  "code": {"text": "Follow up: missed ANC visit"},
  "reasonCode": [{"text": "Missed ANC appointment on 2025-03-10"}],
  "subject": {"reference": "Patient/%s"},
  "occurrenceDateTime": "2025-03-21",
  "authoredOn": "2025-03-15T08:00:00Z"
}`, d.conv.ID("Patient", newPatientID)))
}

// runReverse sends an EMR's lost-to-follow-up ServiceRequest through OpenHIM
// to the fhir-to-cht mediator (twice, as a retrying EMR would) and shows the
// CHT record that raises the CHW's task.
func (d *demo) runReverse(ctx context.Context, out io.Writer, sum *summary) error {
	fmt.Fprintln(out, "\n== 4. The EMR reports the patient lost to follow-up: a FHIR ServiceRequest through OpenHIM to the fhir-to-cht mediator (sent twice)")
	before := len(d.core.Transactions())
	for range 2 {
		sum.ReverseRequests++
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.core.RouterURL+tocht.BasePath+"/ServiceRequest", bytes.NewReader(d.serviceRequest()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		req.SetBasicAuth(emrClientID, emrClientPW)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("EMR request: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("EMR request answered %d: %s", resp.StatusCode, body)
		}
		fmt.Fprintf(out, "   POST /fhir/ServiceRequest → HTTP %d\n", resp.StatusCode)
	}
	for _, tx := range d.core.Transactions()[before:] {
		sum.Transactions++
		if tx.Status == "Successful" {
			sum.TransactionsOK++
		}
		sum.Orchestrations += len(tx.Orchestrations)
		d.printTransaction(out, tx)
	}

	fmt.Fprintln(out, "\n== The CHT record that raises the CHW's follow-up task")
	for _, raw := range d.cht.Reports(taskForm) {
		var r struct {
			ID     string         `json:"_id"`
			Form   string         `json:"form"`
			Fields map[string]any `json:"fields"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		if r.Fields["patient_uuid"] != newPatientID {
			continue
		}
		sum.TaskRecords++
		keys := make([]string, 0, len(r.Fields))
		for k := range r.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(out, "   %s form %s\n", r.ID, r.Form)
		for _, k := range keys {
			fmt.Fprintf(out, "      %-20s %v\n", k, r.Fields[k])
		}
	}
	if sum.TaskRecords != 1 {
		return fmt.Errorf("expected one follow-up record for the patient in CHT, found %d", sum.TaskRecords)
	}
	return nil
}
