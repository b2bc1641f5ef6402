package fhir

import (
	"errors"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonscan"
)

// The encounter payload decoder refuses what a FHIR string may not hold,
// naming the key, instead of writing it to FHIR: invalid UTF-8 and lone
// surrogates (which encoding/json turns into U+FFFD) and control characters
// but tab, CR and LF. The FHIR answer's scanner stays lenient: a stored
// transaction is never failed over the server's text.
func TestDecodeEncounterPayloadRefusesWhatFHIRStringsCannotHold(t *testing.T) {
	for _, tt := range []struct{ in, field, reason string }{
		{`{"id":"a\u0000b"}`, "id", "control character U+0000"},
		{`{"id":"a","patient_uuid":"p\u001f"}`, "patient_uuid", "control character U+001F"},
		{`{"id":"a","form":"f\b"}`, "form", `control character \b`},
		{"{\"id\":\"a\xff\"}", "id", "invalid UTF-8"},
		{"{\"id\":\"a\\n\xc3\"}", "id", "invalid UTF-8"},
		{`{"id":"a\ud800"}`, "id", "lone surrogate"},
		{`{"id":"a","observations":[{"code":"c","valueString":"x\u0007"}]}`, "observations.0", "control character U+0007"},
		{"{\"id\":\"a\",\"observations\":[{\"code\":\"c\",\"valueCode\":\"pos\xe2\x28\"}]}", "observations.0", "invalid UTF-8"},
	} {
		_, err := DecodeEncounterPayload([]byte(tt.in))
		var ce *ConversionError
		if !errors.As(err, &ce) || ce.Field != tt.field || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("%q: err = %v, want field %q and %q", tt.in, err, tt.field, tt.reason)
		}
	}
	p, err := DecodeEncounterPayload([]byte(`{"id":"a\tb\r\nc \u00e9\ud83d\ude00 ` + "é" + `"}`))
	if err != nil || p.ID != "a\tb\r\nc é😀 é" {
		t.Errorf("tab, CR, LF and characters: %+v, %v", p, err)
	}
	d := &scanner{jsonscan.New("\"a\xffb\\u0001\"", false)}
	if got := d.Str(); d.Err() != nil || got != "a\uFFFDb\x01" {
		t.Errorf("lenient scanner: %q, %v", got, d.Err())
	}
}
