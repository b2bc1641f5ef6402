package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func TestDecodeEncounterPayload(t *testing.T) {
	data := readFile(t, "testdata/encounter-20obs.json")
	got, err := DecodeEncounterPayload(data)
	if err != nil {
		t.Fatal(err)
	}
	var want EncounterPayload
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("hand-written decoder differs from encoding/json:\n%+v\n%+v", got, want)
	}
	if len(got.Observations) != 20 || got.ReportedDate != 1730355950419 {
		t.Errorf("decoded %+v", got)
	}
}

func TestDecodeEncounterPayloadErrors(t *testing.T) {
	for _, tt := range []struct{ in, field string }{
		{`{"id": 5}`, "id"},
		{`{"id":"a","observations":[{"code":"x","valueInteger":1.5}]}`, "observations.0"},
		{`{"id":"a","observations":[{"code":"x"},{"code":"y","valueBoolean":"yes"}]}`, "observations.1"},
		{`{"id":"a","reported_date":"last tuesday"}`, "reported_date"},
		{`{"id":"a"} x`, "id"},
		{`{"id":"a\u"}`, "id"},
	} {
		_, err := DecodeEncounterPayload([]byte(tt.in))
		var ce *ConversionError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%s: err = %v, want field %q", tt.in, err, tt.field)
		}
	}
}

// FuzzDecodeEncounterPayload checks the hand-written decoder against
// encoding/json: whenever encoding/json decodes a payload (with the same
// integer limits), the results match, and the decoder never panics.
func FuzzDecodeEncounterPayload(f *testing.F) {
	f.Add(readFile(f, "testdata/encounter-20obs.json"))
	f.Add(readFile(f, "../cht/testdata/outbound_encounter.json"))
	f.Add([]byte(`{"id":"a\"\u00e9\ud83d\ude00","observations":[{"code":"c","valueString":"x\\ny","extra":{"a":[1,{}]}}]}`))
	f.Add([]byte(`{"id":"x","reported_date":"2024-10-31T06:25:50.419Z","observations":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeEncounterPayload(data)
		var want EncounterPayload
		werr := json.Unmarshal(data, &want)
		if err != nil || werr != nil {
			return // error behaviour differs legitimately (dates, duplicate keys, ...)
		}
		if !bytes.Equal(mustJSON(t, got), mustJSON(t, &want)) {
			t.Fatalf("decoders differ:\n%s\n%s", mustJSON(t, got), mustJSON(t, &want))
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConvertPayload(t *testing.T) {
	c := testConverter(t, Config{})
	p, err := DecodeEncounterPayload(readFile(t, "testdata/encounter-20obs.json"))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := c.ConvertPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	if tx.Len() != 21 {
		t.Fatalf("%d entries, want 21", tx.Len())
	}
	checkBundleReferences(t, tx)
	var kinds []string
	for _, e := range tx.Entries[1:] {
		o := e.Resource.(*models.Observation)
		switch {
		case o.ValueQuantity != nil:
			kinds = append(kinds, "q")
			if *o.ValueQuantity.System != ucumSystem {
				t.Errorf("quantity %+v", o.ValueQuantity)
			}
		case o.ValueCodeableConcept != nil:
			kinds = append(kinds, "c")
			if *o.ValueCodeableConcept.Coding[0].System != testInstance+"/codes" {
				t.Errorf("valueCode system %s", *o.ValueCodeableConcept.Coding[0].System)
			}
		case o.ValueString != nil:
			kinds = append(kinds, "s")
		case o.ValueBoolean != nil:
			kinds = append(kinds, "b")
		case o.ValueInteger != nil:
			kinds = append(kinds, "i")
		}
		if *o.Subject.Reference != "Patient/"+c.ID("Patient", p.PatientUUID) {
			t.Errorf("subject %s", *o.Subject.Reference)
		}
	}
	if got := strings.Join(kinds, ""); got != "qqqqqcccccssssbbbiii" {
		t.Errorf("value kinds %s", got)
	}
	// The typed result, the samply Bundle and the one-call fast path agree.
	a, err := tx.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.PayloadBundleJSON(nil, readFile(t, "testdata/encounter-20obs.json"))
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := tx.Bundle()
	ref, _ := json.Marshal(bd)
	if !bytes.Equal(a, b) || !bytes.Equal(a, ref) {
		t.Error("PayloadBundleJSON, Transaction.MarshalJSON and json.Marshal(Bundle) differ")
	}
}

func TestConvertPayloadErrors(t *testing.T) {
	c := testConverter(t, Config{})
	for _, tt := range []struct{ in, field, reason string }{
		{`{"observations":[]}`, "id", "no id"},
		{`{"id":"r","observations":[{"valueString":"x"}]}`, "observations.0.code", "missing code"},
		{`{"id":"r","observations":[{"code":"a"}]}`, "observations.0", "no value"},
		{`{"id":"r","observations":[{"code":"a","valueString":"x","valueBoolean":true}]}`, "observations.0", "value[x] allows one"},
		{`{"id":"r","observations":[{"code":"a","valueQuantity":{"value":1,"code":"kg"}}]}`, "observations.0", "qty-3"},
		{`{"id":"r","observations":[{"code":"a","valueDateTime":"31/10/2024"}]}`, "observations.0", "not a FHIR dateTime"},
		{`{"id":"r","observations":[{"code":"a","valueCode":""}]}`, "observations.0", "valueCode is empty"},
	} {
		_, err := c.PayloadBundleJSON(nil, []byte(tt.in))
		var ce *ConversionError
		if !errors.As(err, &ce) || ce.Field != tt.field || !strings.Contains(ce.Reason, tt.reason) {
			t.Errorf("%s: err = %v, want %s: %s", tt.in, err, tt.field, tt.reason)
		}
	}
	// Duplicate codes get distinct ids.
	tx, err := c.ConvertPayload(&EncounterPayload{ID: "r", Observations: []PayloadObservation{
		{Code: "a", ValueString: ptr("1")}, {Code: "a", ValueString: ptr("2")}}})
	if err != nil {
		t.Fatal(err)
	}
	if tx.Entries[1].FullURL == tx.Entries[2].FullURL {
		t.Error("duplicate codes share an id")
	}
}
