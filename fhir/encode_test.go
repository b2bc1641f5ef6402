package fhir

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// filler fills samply values with random data via reflection, so that the
// equivalence tests cover every field of every type the encoder handles,
// including the ones it falls back on.
type filler struct {
	r *rand.Rand
	// pUnsupported is the probability of filling extension/narrative-like
	// fields, which force the encoding/json fallback.
	pUnsupported float64
}

var numberType = reflect.TypeFor[json.Number]()
var rawType = reflect.TypeFor[json.RawMessage]()

var nastyStrings = []string{
	"", "a", "Zoë", "<div>&amp;</div>", "line\nbreak\ttab", "quote\"back\\slash", "\u2028\u2029",
	"\x00\x01\x1f", "bad utf8 \xff\xfe", "emoji 😀", "\b\f", "日本語", "urn:uuid:6ba7b811-9dad-11d1-80b4-00c04fd430c8",
}

func (f *filler) str() string {
	if f.r.IntN(3) == 0 {
		return nastyStrings[f.r.IntN(len(nastyStrings))]
	}
	n := f.r.IntN(12)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0x20 + f.r.IntN(0x7f-0x20))
	}
	return string(b)
}

func (f *filler) number() string {
	switch f.r.IntN(6) {
	case 0:
		return "0"
	case 1:
		return "-" + strconv.Itoa(f.r.IntN(1000))
	case 2:
		return "37.50"
	case 3:
		return "1e-7"
	case 4:
		return strconv.FormatFloat(f.r.NormFloat64()*1000, 'f', -1, 64)
	}
	return strconv.Itoa(f.r.IntN(100000))
}

func (f *filler) raw() json.RawMessage {
	switch f.r.IntN(4) {
	case 0:
		return json.RawMessage(`{"resourceType":"Patient","id":"p1"}`)
	case 1:
		return json.RawMessage("{ \"a\" : [1, 2 ,\"<x>\"] }")
	case 2:
		return json.RawMessage(`{"s":"\u2028 & more"}`)
	}
	return json.RawMessage(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}`)
}

func isUnsupportedName(name string) bool {
	switch name {
	case "Extension", "ModifierExtension", "Contained", "Signature", "Search", "Address", "Photo",
		"Note", "Component", "ReferenceRange", "HoursOfOperation", "Qualification",
		"Contact", "Hospitalization", "Diagnosis", "Location", "StatusHistory", "ClassHistory", "Length",
		"ValueRange", "ValueRatio", "ValueSampledData", "EffectiveTiming", "Specimen", "Device",
		"ImplicitRules", "Language", "MaritalStatus", "MultipleBirthBoolean", "MultipleBirthInteger",
		"Communication", "EpisodeOfCare", "Appointment", "ReasonReference", "Account", "OperationalStatus",
		"PhysicalType", "AvailabilityExceptions", "Endpoint":
		return true
	}
	return false
}

func (f *filler) fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if depth > 5 || f.r.IntN(3) == 0 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(v.Elem(), depth+1)
	case reflect.Slice:
		if v.Type() == rawType {
			if f.r.IntN(4) != 0 {
				v.Set(reflect.ValueOf(f.raw()))
			}
			return
		}
		if depth > 5 || f.r.IntN(3) == 0 {
			return
		}
		n := f.r.IntN(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			f.fill(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			name := t.Field(i).Name
			ft := t.Field(i).Type
			unsupported := isUnsupportedName(name) ||
				ft == reflect.TypeFor[*models.Narrative]() || ft == reflect.TypeFor[[]models.PatientLink]()
			if unsupported && f.r.Float64() >= f.pUnsupported {
				continue
			}
			if name == "Location" && t == reflect.TypeFor[models.BundleEntryResponse]() {
				f.fill(v.Field(i), depth+1)
				continue
			}
			f.fill(v.Field(i), depth+1)
		}
	case reflect.String:
		if v.Type() == numberType {
			v.SetString(f.number())
			return
		}
		v.SetString(f.str())
	case reflect.Bool:
		v.SetBool(f.r.IntN(2) == 0)
	case reflect.Int:
		// Enums are ints; include out-of-range values ("<unknown>").
		v.SetInt(int64(f.r.IntN(9)))
	case reflect.Int64, reflect.Int32:
		v.SetInt(int64(f.r.IntN(2000) - 1000))
	case reflect.Float64:
		v.SetFloat(f.r.Float64())
	}
}

func samplyTypes() []any {
	return []any{
		&models.Observation{}, &models.Encounter{}, &models.Patient{}, &models.Practitioner{},
		&models.Location{}, &models.Organization{}, &models.OperationOutcome{}, &models.Bundle{},
	}
}

// TestAppendJSONEquivalence proves the fast encoder writes exactly what
// encoding/json writes for the samply types, over many generated values.
func TestAppendJSONEquivalence(t *testing.T) {
	fast, total, big := 0, 0, 0
	for seed := range uint64(3000) {
		f := &filler{r: rand.New(rand.NewPCG(seed, 42)), pUnsupported: 0.02}
		for _, proto := range samplyTypes() {
			v := reflect.New(reflect.TypeOf(proto).Elem())
			f.fill(v.Elem(), 0)
			res := v.Interface()
			want, wantErr := json.Marshal(res)
			got, gotErr := Marshal(res)
			if (wantErr != nil) != (gotErr != nil) {
				t.Fatalf("seed %d %T: error mismatch: encoding/json %v, fast %v", seed, res, wantErr, gotErr)
			}
			if wantErr != nil {
				continue
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("seed %d %T:\nfast: %s\njson: %s", seed, res, got, want)
			}
			total++
			if _, err := appendResource(nil, res); err == nil {
				fast++
			}
			if len(want) > 500 {
				big++
			}
			// The value receiver path too.
			got2, err := Marshal(v.Elem().Interface())
			if err != nil || !bytes.Equal(got2, want) {
				t.Fatalf("seed %d %T (value): %v\n%s", seed, res, err, got2)
			}
		}
	}
	// Guard against a vacuous test: most cases must take the fast path, and
	// many must be rich.
	if fast < total/2 || big < total/4 {
		t.Errorf("generator too weak: %d of %d on the fast path, %d larger than 500 bytes", fast, total, big)
	}
	t.Logf("%d values, %d on the fast path, %d larger than 500 bytes", total, fast, big)
}

// TestAppendJSONFastPathUsed checks that the resources the converters
// produce do not fall back to encoding/json.
func TestAppendJSONFastPathUsed(t *testing.T) {
	c := testConverter(t, Config{})
	tx, err := c.ReportBundle(loadReport(t, "testdata/report_assessment_hydrated.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range tx.Entries {
		if _, err := appendResource(nil, e.Resource); err != nil {
			t.Errorf("entry %d (%T): fast path not used: %v", i, e.Resource, err)
		}
	}
	if _, err := appendResource(nil, NewOperationOutcome()); err != nil {
		t.Errorf("OperationOutcome: fast path not used: %v", err)
	}
}

func TestAppendJSONErrors(t *testing.T) {
	bad := json.Number("12abc")
	o := &models.Observation{Code: models.CodeableConcept{Text: ptr("x")}, ValueQuantity: &models.Quantity{Value: &bad}}
	if _, err := json.Marshal(o); err == nil {
		t.Fatal("encoding/json accepted an invalid number")
	}
	dst := []byte("prefix")
	out, err := appendJSON(dst, o)
	if err == nil {
		t.Fatal("AppendJSON accepted an invalid number")
	}
	if string(out) != "prefix" {
		t.Errorf("dst modified on error: %q", out)
	}
	if !strings.Contains(err.Error(), "12abc") {
		t.Errorf("error does not name the value: %v", err)
	}
	// Unknown types fall back to encoding/json.
	got, err := Marshal(&models.Task{Status: models.TaskStatusReady, Intent: "order"})
	if err != nil || !strings.Contains(string(got), `"resourceType":"Task"`) {
		t.Errorf("Task fallback: %s %v", got, err)
	}
}

// FuzzAppendJSON decodes arbitrary JSON into samply resources and requires
// the fast encoder to agree with encoding/json byte for byte.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Observation","status":"final","code":{"text":"<x>"},"valueQuantity":{"value":37.50,"unit":"Cel"}}`,
		`{"resourceType":"Patient","name":[{"text":"Zoë \u2028","given":["a"]}],"gender":"female","deceasedBoolean":true}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:x","resource":{"a":1},"request":{"method":"PUT","url":"Patient/1"}}]}`,
		`{"resourceType":"Encounter","status":"finished","class":{"code":"HH"},"participant":[{"individual":{"reference":"Practitioner/1"}}]}`,
		`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","expression":["Patient.name"]}]}`,
		`{"resourceType":"Location","name":"x","partOf":{"reference":"Location/1"},"extension":[{"url":"u","valueString":"v"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, proto := range samplyTypes() {
			v := reflect.New(reflect.TypeOf(proto).Elem())
			if err := json.Unmarshal(data, v.Interface()); err != nil {
				continue
			}
			want, wantErr := json.Marshal(v.Interface())
			got, gotErr := Marshal(v.Interface())
			if (wantErr != nil) != (gotErr != nil) {
				t.Fatalf("%T: error mismatch: %v vs %v", proto, wantErr, gotErr)
			}
			if wantErr == nil && !bytes.Equal(got, want) {
				t.Fatalf("%T:\nfast: %s\njson: %s", proto, got, want)
			}
		}
	})
}

// TestOutputPresized: a caller passing nil (or using MarshalJSON) gets its
// output allocated once at the right size, not grown by copying.
func TestOutputPresized(t *testing.T) {
	c := testConverter(t, Config{})
	payload := readFile(t, "testdata/encounter-20obs.json")
	r := loadReport(t, "testdata/report_assessment_hydrated.json")
	if _, err := c.PayloadBundleJSON(nil, payload); err != nil { // learns the size
		t.Fatal(err)
	}
	if tx, err := c.ReportBundle(r); err != nil { // learns the size
		t.Fatal(err)
	} else if _, err := tx.MarshalJSON(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		out, err := c.PayloadBundleJSON(nil, payload)
		if err != nil {
			t.Fatal(err)
		}
		if cap(out) > len(out)+len(out)/4+512 {
			t.Errorf("PayloadBundleJSON(nil): len %d cap %d", len(out), cap(out))
		}
		tx, err := c.ReportBundle(r)
		if err != nil {
			t.Fatal(err)
		}
		body, err := tx.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if cap(body) > len(body)+len(body)/4+512 {
			t.Errorf("MarshalJSON: len %d cap %d", len(body), cap(body))
		}
	}
	tx, err := c.ReportBundle(r)
	if err != nil {
		t.Fatal(err)
	}
	// The output and the copy of the Transaction header MarshalJSON's value
	// receiver makes.
	if n := testing.AllocsPerRun(20, func() { _, _ = tx.MarshalJSON() }); n > 2 {
		t.Errorf("MarshalJSON of a report bundle: %v allocations, want 2", n)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = c.PayloadBundleJSON(nil, payload) }); n > 40 {
		t.Errorf("PayloadBundleJSON(nil): %v allocations", n)
	}
	// A single resource is allocated once, at the size of the last of its type.
	pt, err := c.Patient(r.Patient)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Marshal(pt); err != nil { // learns the size
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = Marshal(pt) }); n > 1 {
		t.Errorf("Marshal(patient): %v allocations, want 1", n)
	}
}
