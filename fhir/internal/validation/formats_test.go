package validation

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// An edge case of a FHIR primitive: the converter refuses the input with a
// *fhir.ConversionError naming field, or its output validates.
type edge struct {
	name, field string
	convert     func(c *fhir.Converter) ([]byte, error)
}

func contactEdge(name, field string, ct cht.Contact) edge {
	return edge{name, field, func(c *fhir.Converter) ([]byte, error) {
		tx, err := c.ContactBundle(&ct)
		if err != nil {
			return nil, err
		}
		return fhir.Marshal(tx)
	}}
}

func reportEdge(name, field string, r cht.Report) edge {
	return edge{name, field, func(c *fhir.Converter) ([]byte, error) {
		tx, err := c.ReportBundle(&r)
		if err != nil {
			return nil, err
		}
		return fhir.Marshal(tx)
	}}
}

// payloadEdge converts with PayloadBundleJSON; the fhir package's tests
// hold ConvertPayload to the same answer.
func payloadEdge(name, field, in string) edge {
	return edge{name, field, func(c *fhir.Converter) ([]byte, error) {
		return c.PayloadBundleJSON(nil, []byte(in))
	}}
}

// checkEdges runs every edge under every write strategy. refused says
// whether the edge must be refused (true) or must validate (false).
func checkEdges(t *testing.T, edges []edge, refused bool) {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	for _, strat := range []fhir.WriteStrategy{fhir.WritePut, fhir.WriteConditionalUpdate, fhir.WriteConditionalCreate} {
		c := converter(t, strat)
		for _, e := range edges {
			b, err := e.convert(c)
			var ce *fhir.ConversionError
			switch {
			case refused && (!errors.As(err, &ce) || ce.Field != e.field || !strings.Contains(err.Error(), e.field)):
				t.Errorf("%v %s: err = %v, want a *fhir.ConversionError naming %q", strat, e.name, err, e.field)
			case !refused && err != nil:
				t.Errorf("%v %s: %v", strat, e.name, err)
			case !refused:
				validate(t, u, strat.String()+" "+e.name, b)
			}
		}
	}
}

func dodEdge(dod string) edge {
	return contactEdge("date_of_death "+dod, "date_of_death", cht.Contact{ID: "p-1", Type: "person", Name: "Amina", DateOfDeath: dod})
}

func labourOnsetEdge(v string) edge {
	return reportEdge("labour_onset "+v, "fields.labour_onset", cht.Report{ID: "delivery-1", Form: "DELIVERY",
		ReportedDate: 1730355950419, Fields: cht.Fields{"patient_uuid": "p1", "labour_onset": v}})
}

func valueDateTimeEdge(v string) edge {
	return payloadEdge("valueDateTime "+v, "observations.0",
		`{"id":"e1","patient_uuid":"p1","reported_date":1730355950419,"observations":[{"code":"w","valueDateTime":"`+v+`"}]}`)
}

// TestDateTimeEdges: date-times that time.Parse takes but FHIR's dateTime
// pattern does not are refused; those at the pattern's limits validate.
func TestDateTimeEdges(t *testing.T) {
	var bad, good []edge
	for _, v := range []string{"2024-01-01T10:00:00,5Z", "2024-01-01T10:00:00+24:00", "2024-01-01T10:00:00+00:60",
		"2024-01-01T10:00:00+14:30", "2024-01-01T10:00:00-14:01", "2024-10-29T22:15:00,000+03:00"} {
		bad = append(bad, dodEdge(v), labourOnsetEdge(v), valueDateTimeEdge(v))
	}
	for _, v := range []string{"2024-01-01T10:00:00.5Z", "2024-01-01T10:00:00+14:00", "2024-01-01T10:00:00-13:59",
		"2024-01-01T10:00:00.000000000001-00:00", "2024-02-29"} {
		good = append(good, dodEdge(v), labourOnsetEdge(v), valueDateTimeEdge(v))
	}
	checkEdges(t, bad, true)
	checkEdges(t, good, false)
}

// TestSearchCharactersInIDsValidate: ids holding the characters FHIR
// search escapes (\ , | $) convert to resources and conditional requests
// that validate under every write strategy.
func TestSearchCharactersInIDsValidate(t *testing.T) {
	var good []edge
	for _, id := range []string{`p,1`, `p|1`, `p$1`, `p\1`, `p\|1`} {
		good = append(good,
			contactEdge("contact "+id, "", cht.Contact{ID: id, Type: "person", Name: "Amina"}),
			reportEdge("report "+id, "", cht.Report{ID: id, Form: "HEIGHT_WEIGHT", ReportedDate: 1730355950419,
				Fields: cht.Fields{"patient_uuid": "p1", "height": "170"}}),
			payloadEdge("payload "+id, "", `{"id":"`+strings.ReplaceAll(id, `\`, `\\`)+`","patient_uuid":"p1","reported_date":1730355950419,"observations":[{"code":"w,1","valueBoolean":true}]}`))
	}
	checkEdges(t, good, false)
}

// TestControlCharactersInReferencedIDs: a control character in the _id of
// a parent that is not hydrated, or of a report's submitter, is refused
// naming the member; plain ids there validate.
func TestControlCharactersInReferencedIDs(t *testing.T) {
	place := func(parent string) cht.Contact {
		return cht.Contact{ID: "hh-1", Type: "clinic", Name: "HH", Parent: &cht.Lineage{ID: parent}}
	}
	report := func(contact string) cht.Report {
		return cht.Report{ID: "r1", Form: "HEIGHT_WEIGHT", ReportedDate: 1730355950419, Contact: &cht.Contact{ID: contact},
			Fields: cht.Fields{"patient_uuid": "p1", "height": "170"}}
	}
	checkEdges(t, []edge{
		contactEdge("place parent", "parent._id", place("hc\u0001")),
		reportEdge("report contact", "contact._id", report("chw\u0001")),
	}, true)
	checkEdges(t, []edge{
		contactEdge("place parent", "", place("hc-1")),
		reportEdge("report contact", "", report("chw-1")),
	}, false)
}

func birthTimeEdge(v string) edge {
	return reportEdge("birth_time "+v, "fields.birth_time", cht.Report{ID: "delivery-1", Form: "DELIVERY",
		ReportedDate: 1730355950419, Fields: cht.Fields{"patient_uuid": "p1", "birth_time": v}})
}

func valueTimeEdge(v string) edge {
	return payloadEdge("valueTime "+v, "observations.0",
		`{"id":"e1","patient_uuid":"p1","reported_date":1730355950419,"observations":[{"code":"w","valueTime":"`+v+`"}]}`)
}

// TestTimeEdges: times that time.Parse takes but FHIR's time pattern does
// not (a one-digit hour, a comma before the fraction) are refused; those
// at the pattern's limits validate.
func TestTimeEdges(t *testing.T) {
	var bad, good []edge
	for _, v := range []string{"9:30:00.0", "9:30", "04:30:05,5"} {
		bad = append(bad, birthTimeEdge(v), valueTimeEdge(v))
	}
	for _, v := range []string{"09:30", "23:59:59.1234567890", "00:00:00"} {
		good = append(good, birthTimeEdge(v), valueTimeEdge(v))
	}
	checkEdges(t, bad, true)
	checkEdges(t, good, false)
}

func payloadObs(o string) string {
	return `{"id":"e1","patient_uuid":"p1","reported_date":1730355950419,"observations":[` + o + `]}`
}

// TestPayloadCodeEdges: observation codes, valueCode and
// valueQuantity.code that are not FHIR codes are refused naming the
// observation; codes with single inner spaces validate.
func TestPayloadCodeEdges(t *testing.T) {
	checkEdges(t, []edge{
		payloadEdge("code double space", "observations.0.code", payloadObs(`{"code":"fever  high","valueBoolean":true}`)),
		payloadEdge("code lead space", "observations.0.code", payloadObs(`{"code":" fever","valueBoolean":true}`)),
		payloadEdge("valueCode tab", "observations.0", payloadObs(`{"code":"fever","valueCode":"a\tb"}`)),
		payloadEdge("unit code space", "observations.0", payloadObs(`{"code":"w","valueQuantity":{"value":1,"unit":"kg","system":"http://unitsofmeasure.org","code":"k  g"}}`)),
		payloadEdge("unit system space", "observations.0", payloadObs(`{"code":"w","valueQuantity":{"value":1,"unit":"kg","system":"http://units of measure","code":"kg"}}`)),
	}, true)
	checkEdges(t, []edge{
		payloadEdge("code one space", "", payloadObs(`{"code":"fever high","valueCode":"very high"}`)),
		payloadEdge("unit code", "", payloadObs(`{"code":"w","valueQuantity":{"value":1,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`)),
	}, false)
}

// TestMappingCodeEdges: a mapping whose codes would write Codings FHIR
// refuses is itself refused with a *fhir.MappingError naming the field; one
// with single spaces inside its codes converts to resources that validate.
func TestMappingCodeEdges(t *testing.T) {
	field := func(f string) string { return "version: 1\nforms:\n  - form: F\n    fields:\n      - " + f + "\n" }
	for name, y := range map[string]string{
		"code double space": field(`{path: t, code: {system: "http://loinc.org", code: "8310-5  x"}, type: decimal}`),
		"system with space": field(`{path: t, code: {system: "my codes", code: "x"}, type: decimal}`),
		"unit double space": field(`{path: t, code: {system: "http://loinc.org", code: "x"}, type: quantity, unit: "k  g"}`),
		"value code":        field(`{path: t, code: {system: "http://loinc.org", code: "x"}, type: codeable, values: {yes: {system: "s:x", code: "a  b"}}}`),
	} {
		_, err := fhir.ParseMapping([]byte(y))
		var me *fhir.MappingError
		if !errors.As(err, &me) || me.Field != "t" {
			t.Errorf("%s: err = %v, want a *fhir.MappingError naming field t", name, err)
		}
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ mapping, value string }{
		"unit one space":  {field(`{path: t, code: {system: "http://loinc.org", code: "a b"}, type: quantity, unit: "k g"}`), "37.5"},
		"value one space": {field(`{path: t, code: {system: "http://loinc.org", code: "x"}, type: codeable, values: {yes: {system: "s:x", code: "a b"}}}`), "yes"},
	} {
		m, err := fhir.ParseMapping([]byte(tc.mapping))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: m, Strategy: fhir.WritePut})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tx, err := c.ReportBundle(&cht.Report{ID: "r1", Form: "F", ReportedDate: 1730355950419, Fields: cht.Fields{"patient_uuid": "p1", "t": tc.value}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := fhir.Marshal(tx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		validate(t, u, name, b)
	}
}

// TestNonFiniteGeolocationEdges: a NaN or infinite coordinate set in Go is
// refused naming geolocation; finite ones at the limits validate.
func TestNonFiniteGeolocationEdges(t *testing.T) {
	place := func(lat, lon float64, alt *float64) cht.Contact {
		return cht.Contact{ID: "hc-1", Type: "health_center", Name: "HC",
			Geolocation: &cht.Geolocation{Latitude: &lat, Longitude: &lon, Altitude: alt}}
	}
	report := func(lat, lon float64, alt *float64) cht.Report {
		return cht.Report{ID: "r1", Form: "HEIGHT_WEIGHT", ReportedDate: 1730355950419,
			Geolocation: &cht.Geolocation{Latitude: &lat, Longitude: &lon, Altitude: alt},
			Fields:      cht.Fields{"patient_uuid": "p1", "height": "170"}}
	}
	nan, inf, alt := math.NaN(), math.Inf(1), -430.5
	checkEdges(t, []edge{
		contactEdge("NaN latitude", "geolocation", place(nan, 36.8, nil)),
		contactEdge("Inf altitude", "geolocation", place(1, 36.8, &inf)),
		reportEdge("NaN longitude", "geolocation", report(1, nan, nil)),
		reportEdge("NaN altitude", "geolocation", report(1, 2, &nan)),
	}, true)
	checkEdges(t, []edge{
		contactEdge("limits", "", place(-90, 180, &alt)),
		reportEdge("limits", "", report(90, -180, &alt)),
	}, false)
}
