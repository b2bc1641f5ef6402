package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
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
	bd, _ := txBundle(tx)
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
		{`{"id":"r","observations":[{"code":"a","valueInteger":3000000000}]}`, "observations.0", "not a 32-bit integer"},
		{`{"id":"r","observations":[{"code":"a","valueInteger":-2147483649}]}`, "observations.0", "not a 32-bit integer"},
		// A literal "a#2" would collide with the second "a".
		{`{"id":"r","observations":[{"code":"a","valueString":"x"},{"code":"a","valueString":"y"},{"code":"a#2","valueString":"z"}]}`, "observations.2.code", "contains '#'"},
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

// genPayload builds a random outbound payload, valid or not.
func genPayload(r *rand.Rand) *EncounterPayload {
	f := &filler{r: r}
	p := &EncounterPayload{ID: "r" + f.str(), PatientUUID: f.str(), ReportedDate: cht.Millis(r.Int64N(4e12))}
	if r.IntN(4) == 0 {
		p.Form = []string{"assessment", "HEIGHT_WEIGHT", "unknown"}[r.IntN(3)]
	}
	codes := []string{"weight", "height", "danger_signs", "a<b>&c", "x"}
	for range r.IntN(12) {
		o := PayloadObservation{Code: codes[r.IntN(len(codes))]}
		if r.IntN(3) == 0 {
			o.Label = f.str()
		}
		for range 1 + boolInt(r.IntN(40) == 0) - boolInt(r.IntN(40) == 0) {
			switch r.IntN(7) {
			case 0:
				q := &PayloadQuantity{Value: json.Number(f.number())}
				if r.IntN(2) == 0 {
					q.Unit, q.System, q.Code = "kg", ucumSystem, "kg"
				} else if r.IntN(2) == 0 {
					q.Code = "kg"
				}
				o.ValueQuantity = q
			case 1:
				o.ValueCode = ptr(f.str())
			case 2:
				o.ValueString = ptr(f.str())
			case 3:
				o.ValueBoolean = ptr(r.IntN(2) == 0)
			case 4:
				o.ValueInteger = ptr(r.IntN(100) - 50)
			case 5:
				o.ValueDateTime = ptr([]string{"2024-10-31", "2024-10-31T06:25:50.419Z", "2024-10-31T06:25:50+03:00", "bad"}[r.IntN(4)])
			case 6:
				o.ValueTime = ptr([]string{"06:25", "06:25:50", "23:59:59.5", "6pm"}[r.IntN(4)])
			}
		}
		p.Observations = append(p.Observations, o)
	}
	return p
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAppendPayloadBundleEquivalence: the direct writer and the typed path
// (ConvertPayload + MarshalJSON) give the same bytes and the same errors.
func TestAppendPayloadBundleEquivalence(t *testing.T) {
	ok := 0
	for _, strat := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
		c := testConverter(t, Config{Strategy: strat})
		for seed := range uint64(700) {
			p := genPayload(rand.New(rand.NewPCG(seed, 7)))
			if comparePayloadPaths(t, c, p) {
				ok++
			}
		}
	}
	if ok < 800 {
		t.Errorf("only %d of 2100 generated payloads converted; generator too weak", ok)
	}
}

func comparePayloadPaths(t *testing.T, c *Converter, p *EncounterPayload) bool {
	t.Helper()
	prefix := []byte("prefix")
	direct, derr := c.appendPayloadBundle(prefix, p)
	tx, terr := c.ConvertPayload(p)
	var typed []byte
	if terr == nil {
		typed, terr = appendJSON(prefix, tx)
	}
	if (derr == nil) != (terr == nil) || (derr != nil && derr.Error() != terr.Error()) {
		t.Fatalf("errors differ: direct %v, typed %v (%+v)", derr, terr, p)
	}
	if derr != nil {
		if string(direct) != "prefix" {
			t.Fatalf("dst changed on error: %q", direct)
		}
		return false
	}
	if !bytes.Equal(direct, typed) {
		t.Fatalf("outputs differ:\ndirect %s\ntyped  %s", direct, typed)
	}
	checkReferencesResolve(t, direct[len("prefix"):])
	return true
}

func FuzzPayloadBundleJSON(f *testing.F) {
	f.Add(readFile(f, "testdata/encounter-20obs.json"), uint8(0))
	f.Add(readFile(f, "../cht/testdata/outbound_encounter.json"), uint8(1))
	f.Add([]byte(`{"id":"r<&>","form":"assessment","observations":[{"code":"a","valueTime":"10:00"},{"code":"a","valueCode":"z"}]}`), uint8(2))
	convs := []*Converter{testConverter(f, Config{Strategy: WritePut}), testConverter(f, Config{Strategy: WriteConditionalUpdate}),
		testConverter(f, Config{Strategy: WriteConditionalCreate})}
	f.Fuzz(func(t *testing.T, data []byte, strat uint8) {
		c := convs[strat%3]
		got, gerr := c.PayloadBundleJSON(nil, data)
		p, err := DecodeEncounterPayload(data)
		if err != nil {
			if gerr == nil || gerr.Error() != err.Error() {
				t.Fatalf("PayloadBundleJSON error %v, decoder error %v", gerr, err)
			}
			return
		}
		want, werr := c.appendPayloadBundle(nil, p)
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() || !bytes.Equal(got, want) {
			t.Fatalf("PayloadBundleJSON differs from the decoded payload's bundle: %v %v\n%s\n%s", gerr, werr, got, want)
		}
		comparePayloadPaths(t, c, p)
	})
}

// txBundle returns the transaction as a samply Bundle (type transaction), with
// each resource marshalled into its entry.
func txBundle(t *Transaction) (*models.Bundle, error) {
	b := &models.Bundle{Type: models.BundleTypeTransaction, Entry: make([]models.BundleEntry, len(t.Entries))}
	for i := range t.Entries {
		e := &t.Entries[i]
		raw, err := Marshal(e.Resource)
		if err != nil {
			return nil, fmt.Errorf("fhir: bundle entry %d: %w", i, err)
		}
		rq := e.Request
		b.Entry[i] = models.BundleEntry{FullUrl: ptr(e.FullURL), Resource: raw, Request: &rq}
	}
	return b, nil
}
