package fhir

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// The checks of values typed by FHIR's primitive patterns
// (http://hl7.org/fhir/R4/datatypes.html), through both writers: the direct
// writer and the samply builders refuse the same values with a
// *ConversionError naming the field, and write the same resources.

// bothContact converts ct with the direct writer and the samply builders,
// checks that they agree and returns the samply result.
func bothContact(t *testing.T, c *Converter, ct *cht.Contact) (*Transaction, error) {
	t.Helper()
	dt, derr := c.contactTransaction(ct, nil)
	st, serr := c.ContactBundle(ct)
	sameResult(t, "contact "+ct.ID, dt, st, derr, serr)
	releaseTx(dt)
	return st, serr
}

// bothReport is bothContact for a report.
func bothReport(t *testing.T, c *Converter, r *cht.Report) (*Transaction, error) {
	t.Helper()
	dt, derr := c.reportTransaction(r)
	st, serr := c.ReportBundle(r)
	sameResult(t, "report "+r.ID, dt, st, derr, serr)
	releaseTx(dt)
	return st, serr
}

// bothPayload converts an encounter payload with PayloadBundleJSON and with
// ConvertPayload, checks that they agree and returns the bundle.
func bothPayload(t *testing.T, c *Converter, in string) ([]byte, error) {
	t.Helper()
	d, derr := c.PayloadBundleJSON(nil, []byte(in))
	p, serr := DecodeEncounterPayload([]byte(in))
	var s []byte
	if serr == nil {
		var tx *Transaction
		if tx, serr = c.ConvertPayload(p); serr == nil {
			s, serr = tx.MarshalJSON()
		}
	}
	if fmt.Sprint(derr) != fmt.Sprint(serr) || string(d) != string(s) {
		t.Fatalf("%s: direct %s, %v; samply %s, %v", in, d, derr, s, serr)
	}
	return d, derr
}

// wantField fails unless err is a *ConversionError naming field.
func wantField(t *testing.T, what string, err error, field string) {
	t.Helper()
	var ce *ConversionError
	if !errors.As(err, &ce) || ce.Field != field || !strings.Contains(err.Error(), field) {
		t.Errorf("%s: err = %v, want a *ConversionError naming %q", what, err, field)
	}
}

// fhirDateTimeRE is FHIR R4's dateTime pattern.
var fhirDateTimeRE = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)

// badDateTimes match what time.Parse(time.RFC3339Nano) accepts but FHIR's
// dateTime pattern does not, or name a day that does not exist.
var badDateTimes = []string{
	"2024-01-01T10:00:00,5Z",
	"2024-01-01T10:00:00+24:00",
	"2024-01-01T10:00:00+00:60",
	"2024-01-01T10:00:00+14:30",
	"2024-01-01T10:00:00-15:00",
	"2024-01-01T10:00:00.Z",
	"2024-02-30T10:00:00Z",
	"2024-01-01T24:00:00Z",
	"2024-01-01t10:00:00z",
	"0000-01-01T10:00:00Z",
}

func TestFHIRDateTime(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // "" when refused
	}{
		{"2024", "2024"},
		{"2024-05", "2024-05"},
		{"2024-02-29", "2024-02-29"},
		{" 2024-05-01T10:00:00+03:00 ", "2024-05-01T10:00:00+03:00"},
		{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"},
		{"2024-05-01T10:00:00.1234567890123Z", "2024-05-01T10:00:00.1234567890123Z"},
		{"2024-05-01T23:59:59-14:00", "2024-05-01T23:59:59-14:00"},
		{"2024-05-01T00:00:00+13:59", "2024-05-01T00:00:00+13:59"},
		{"2024-05-01T00:00:00-00:00", "2024-05-01T00:00:00-00:00"},
		{"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"},
		{"9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"},
		{"2024-05-01T10:00Z", ""},    // seconds are required
		{"2024-05-01T10:00:00", ""},  // and a zone
		{"2024-05-01T10:00:60Z", ""}, // a leap second, which time.Parse refused before
		{"2024-05-01 10:00:00Z", ""},
		{"2024-05-01T10:00:00+0300", ""},
		{"2024-05-01T10:00:00.5+03:00x", ""},
		{"10000-01-01T00:00:00Z", ""},
	} {
		got, ok := fhirDateTime(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("fhirDateTime(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
	for _, s := range badDateTimes {
		if got, ok := fhirDateTime(s); ok {
			t.Errorf("fhirDateTime(%q) = %q, true; want refused", s, got)
		}
		if got, ok := fhirDate(s); ok {
			t.Errorf("fhirDate(%q) = %q, true; want refused", s, got)
		}
	}
	// Strings in the shape of a date-time: accepted exactly when FHIR's
	// pattern matches and the day and second exist.
	r := rand.New(rand.NewPCG(5, 6))
	const alphabet = "0123456789+-:.,TZ "
	b := []byte("2024-02-29T23:59:59.5+14:00")
	for range 300_000 {
		s := append([]byte(nil), b[:20+r.IntN(8)]...)
		for range 1 + r.IntN(3) {
			s[r.IntN(len(s))] = alphabet[r.IntN(len(alphabet))]
		}
		_, got := fhirDateTime(string(s))
		want := fhirDateTimeRE.Match(s)
		if want && len(s) > 10 {
			_, err := time.Parse(time.RFC3339Nano, string(s))
			want = err == nil
		}
		if got != want {
			t.Fatalf("fhirDateTime(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestDateTimeFieldsRefuseWhatFHIRRefuses: a date-time FHIR's pattern
// refuses is a *ConversionError naming the field in date_of_death, a form
// field typed dateTime and a payload's valueDateTime; a lenient
// date_of_death is dropped with a warning, the person still deceased.
func TestDateTimeFieldsRefuseWhatFHIRRefuses(t *testing.T) {
	for _, strat := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
		c := testConverter(t, Config{Strategy: strat})
		m, err := LoadMapping("testdata/mapping.yaml")
		if err != nil {
			t.Fatal(err)
		}
		m.Contacts.Lenient = []string{"date_of_death"}
		lc := testConverter(t, Config{Strategy: strat, Mapping: m})
		for _, s := range badDateTimes {
			what := fmt.Sprintf("%v %q", strat, s)
			_, err := bothContact(t, c, &cht.Contact{ID: "p-1", Type: "person", Name: "Amina", DateOfDeath: s})
			wantField(t, what+" date_of_death", err, "date_of_death")
			tx, err := bothContact(t, lc, &cht.Contact{ID: "p-1", Type: "person", Name: "Amina", DateOfDeath: s})
			if err != nil || len(tx.Warnings) != 1 {
				t.Errorf("%s lenient date_of_death: %v, warnings %v", what, err, tx)
			} else if b, _ := tx.MarshalJSON(); !strings.Contains(string(b), `"deceasedBoolean":true`) {
				t.Errorf("%s lenient date_of_death: %s", what, b)
			}
			_, err = bothReport(t, c, &cht.Report{ID: "r1", Form: "DELIVERY", ReportedDate: 1730355950419,
				Fields: cht.Fields{"patient_uuid": "p1", "labour_onset": s}})
			wantField(t, what+" labour_onset", err, "fields.labour_onset")
			_, err = bothPayload(t, c, `{"id":"e1","patient_uuid":"p1","reported_date":1730355950419,"observations":[{"code":"w","valueDateTime":"`+s+`"}]}`)
			wantField(t, what+" valueDateTime", err, "observations.0")
		}
	}
}

// TestConditionalURLsEscapeTokenValues: the identifier value of a
// conditional update's url and a conditional create's ifNoneExist has the
// characters FHIR search gives a meaning to escaped by a backslash before
// it is query-escaped (http://hl7.org/fhir/R4/search.html#escaping), in
// contacts, reports and payloads, written directly or with samply.
func TestConditionalURLsEscapeTokenValues(t *testing.T) {
	const docSys = "https%3A%2F%2Fcht.example.org%2Fmedic"
	const obsSys = "https%3A%2F%2Fcht.example.org%2Fobservation"
	for _, tt := range []struct{ id, want string }{
		{`p,1`, `p%5C%2C1`},
		{`p|1`, `p%5C%7C1`},
		{`p$1`, `p%5C%241`},
		{`p\1`, `p%5C%5C1`},
		{`p\|1`, `p%5C%5C%5C%7C1`},
		{`a b,c`, `a+b%5C%2Cc`},
	} {
		for _, strat := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
			c := testConverter(t, Config{Strategy: strat})
			what := fmt.Sprintf("%v %q", strat, tt.id)
			tx, err := bothContact(t, c, &cht.Contact{ID: tt.id, Type: "person", Name: "Amina"})
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			b, _ := tx.MarshalJSON()
			tx, err = bothReport(t, c, &cht.Report{ID: tt.id, Form: "HEIGHT_WEIGHT", ReportedDate: 1730355950419,
				Fields: cht.Fields{"patient_uuid": "p1", "height": "170"}})
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			rb, _ := tx.MarshalJSON()
			pb, err := bothPayload(t, c, `{"id":"`+strings.ReplaceAll(tt.id, `\`, `\\`)+`","patient_uuid":"p1","reported_date":1730355950419,"observations":[{"code":"w,$|\\","valueBoolean":true}]}`)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			var want []string
			switch strat {
			case WriteConditionalUpdate:
				want = []string{
					`"url":"Patient?identifier=` + docSys + `|` + tt.want + `"`,
					`"url":"Encounter?identifier=` + docSys + `|` + tt.want + `"`,
					`"url":"Observation?identifier=` + obsSys + `|` + tt.want + `%2Fheight"`,
				}
			case WriteConditionalCreate:
				want = []string{
					`"ifNoneExist":"identifier=` + docSys + `|` + tt.want + `"`,
					`"ifNoneExist":"identifier=` + docSys + `|` + tt.want + `"`,
					`"ifNoneExist":"identifier=` + obsSys + `|` + tt.want + `%2Fheight"`,
				}
			}
			got := []string{string(b), string(rb), string(rb)}
			for i, w := range want {
				if !strings.Contains(got[i], w) {
					t.Errorf("%s: no %s in\n%s", what, w, got[i])
				}
			}
			if strat != WritePut && !strings.Contains(string(pb), tt.want+`%2Fw%5C%2C%5C%24%5C%7C%5C%5C"`) {
				t.Errorf("%s: payload observation key not escaped:\n%s", what, pb)
			}
		}
	}
}

// TestReferencedIDsAreChecked: the _ids of ancestors that are not
// hydrated, and of a report's submitter, are written as references
// (Location.partOf, serviceProvider, participant, performer) and so must be
// FHIR strings as a converted document's _id must.
func TestReferencedIDsAreChecked(t *testing.T) {
	lin := func(ids ...string) *cht.Lineage {
		var l *cht.Lineage
		for i := len(ids) - 1; i >= 0; i-- {
			l = &cht.Lineage{ID: ids[i], Parent: l}
		}
		return l
	}
	report := func(contact *cht.Contact) *cht.Report {
		return &cht.Report{ID: "r1", Form: "HEIGHT_WEIGHT", ReportedDate: 1730355950419, Contact: contact,
			Fields: cht.Fields{"patient_uuid": "p1", "height": "170"}}
	}
	tests := []struct {
		name    string
		contact *cht.Contact
		report  *cht.Report
		field   string
	}{
		{"place parent", &cht.Contact{ID: "hh-1", Type: "clinic", Name: "HH", Parent: lin("hc\x01")}, nil, "parent._id"},
		{"place parent NUL", &cht.Contact{ID: "hh-1", Type: "clinic", Name: "HH", Parent: lin("hc\x00")}, nil, "parent._id"},
		{"place grandparent", &cht.Contact{ID: "hh-1", Type: "clinic", Name: "HH", Parent: lin("hc-1", "d\x7f")}, nil, "parent.parent._id"},
		{"health center parent", &cht.Contact{ID: "hc-1", Type: "health_center", Name: "HC", Parent: lin("d\x1f")}, nil, "parent._id"},
		{"person parent", &cht.Contact{ID: "p-1", Type: "person", Name: "Amina", Parent: lin("hh\x01", "hc-1")}, nil, "parent._id"},
		{"person parent invalid UTF-8", &cht.Contact{ID: "p-1", Type: "person", Name: "Amina", Parent: lin("hh-1", "hc\xff")}, nil, "parent.parent._id"},
		{"submitter not hydrated", nil, report(&cht.Contact{ID: "chw\x01"}), "contact._id"},
		{"submitter hydrated", nil, report(&cht.Contact{ID: "chw\x01", Type: "person", Name: "CHW"}), "contact._id"},
		{"submitter's parent", nil, report(&cht.Contact{ID: "chw-1", Parent: lin("hh\x01")}), "contact.parent._id"},
		{"hydrated submitter's grandparent", nil, report(&cht.Contact{ID: "chw-1", Type: "person", Name: "CHW", Parent: lin("hh-1", "hc\x02")}), "contact.parent.parent._id"},
	}
	for _, strat := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
		c := testConverter(t, Config{Strategy: strat})
		for _, tt := range tests {
			var err error
			if tt.contact != nil {
				_, err = bothContact(t, c, tt.contact)
			} else {
				_, err = bothReport(t, c, tt.report)
			}
			wantField(t, fmt.Sprintf("%v %s", strat, tt.name), err, tt.field)
		}
	}
}

// fhirTimeRE is FHIR R4's time pattern.
var fhirTimeRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$`)

// badTimes are what time.Parse with layout 15:04:05 takes but FHIR's time
// pattern does not.
var badTimes = []string{"9:30:00.0", "9:30:00", "04:30:05,5", "04:30:05.", "4:30", "04:30:5", "24:00:00", "12:60:00"}

func TestIsTime(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"00:00", true}, {"23:59", true}, {"23:59:59", true}, {"09:30:00.0", true}, {"23:59:59.1234567890", true},
		{"12:00:60", false}, {"12:00:00Z", false}, {"12:00:00+03:00", false}, {" 12:00:00", false}, {"", false},
	} {
		if got := isTime(tt.in); got != tt.ok {
			t.Errorf("isTime(%q) = %v, want %v", tt.in, got, tt.ok)
		}
	}
	for _, s := range badTimes {
		if isTime(s) {
			t.Errorf("isTime(%q) = true", s)
		}
	}
	// Strings in the shape of a time: accepted exactly when FHIR's pattern
	// matches (hh:mm, then written with :00, too) without a leap second.
	r := rand.New(rand.NewPCG(7, 8))
	const alphabet = "0123456789:.,6 "
	b := []byte("23:59:59.125")
	for range 200_000 {
		s := append([]byte(nil), b[:4+r.IntN(9)]...)
		for range 1 + r.IntN(2) {
			s[r.IntN(len(s))] = alphabet[r.IntN(len(alphabet))]
		}
		want := fhirTimeRE.Match(s) && string(s[6:8]) != "60" || len(s) == 5 && fhirTimeRE.Match(append(s, ":00"...))
		if got := isTime(string(s)); got != want {
			t.Fatalf("isTime(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestTimeFieldsRefuseWhatFHIRRefuses: a form field typed time and a
// payload's valueTime refuse what FHIR's time pattern does, naming the
// field, in both writers.
func TestTimeFieldsRefuseWhatFHIRRefuses(t *testing.T) {
	for _, strat := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
		c := testConverter(t, Config{Strategy: strat})
		for _, s := range badTimes {
			what := fmt.Sprintf("%v %q", strat, s)
			_, err := bothReport(t, c, &cht.Report{ID: "r1", Form: "DELIVERY", ReportedDate: 1730355950419,
				Fields: cht.Fields{"patient_uuid": "p1", "birth_time": s}})
			wantField(t, what+" birth_time", err, "fields.birth_time")
			_, err = bothPayload(t, c, `{"id":"e1","patient_uuid":"p1","reported_date":1730355950419,"observations":[{"code":"w","valueTime":"`+s+`"}]}`)
			wantField(t, what+" valueTime", err, "observations.0")
		}
		for _, s := range []string{"09:30", "09:30:00.0"} {
			if _, err := bothReport(t, c, &cht.Report{ID: "r1", Form: "DELIVERY", ReportedDate: 1730355950419,
				Fields: cht.Fields{"patient_uuid": "p1", "birth_time": s}}); err != nil {
				t.Errorf("%v birth_time %q: %v", strat, s, err)
			}
		}
	}
}

// XForms store every time answer with the device's UTC offset
// (enketo-core src/js/types.js time.convert: hh:mm:ss.sss±hh:mm). FHIR's
// time has no zone: a field typed time keeps the time as entered and drops
// the offset, in both writers; a malformed offset is still refused.
func TestXFormTimes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"09:30:00.000+03:00", "09:30:00.000"},
		{"23:59:59.999-11:30", "23:59:59.999"},
		{"09:30:00+03:00", "09:30:00"},
		{"09:30:00Z", "09:30:00"},
		{"09:30", "09:30:00"},
		{"09:30:00.000+24:00", ""},
		{"09:30:00.000+03:60", ""},
		{"09:30:00.000+0300", ""},
		{"+03:00", ""},
		{"9:30:00.000+03:00", ""},
	}
	c := testConverter(t, Config{})
	for _, tt := range tests {
		got, ok := xformTime(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("xformTime(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
		tx, err := bothReport(t, c, &cht.Report{ID: "r1", Form: "DELIVERY", ReportedDate: 1730355950419,
			Fields: cht.Fields{"patient_uuid": "p1", "birth_time": tt.in}})
		if tt.want == "" {
			wantField(t, tt.in, err, "fields.birth_time")
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		b, err := tx.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"valueTime":"`+tt.want+`"`) {
			t.Errorf("%q: no valueTime %q in %s", tt.in, tt.want, b)
		}
	}
}

// A report whose only subject is the contact its XForm was opened on
// (fields.inputs.contact._id; CHT's hydration does not read it, so no
// place or patient is filled) is about a place when that contact's type
// or contact_type, as the form copies them, is a place type: its subject
// is then a Location, not a Patient that would not exist.
func TestInputsContactPlaceIsALocation(t *testing.T) {
	c := testConverter(t, Config{})
	tests := []struct {
		contact map[string]any
		want    string // resource type of the subject reference
	}{
		{map[string]any{"_id": "c1", "type": "clinic"}, "Location"},
		{map[string]any{"_id": "c1", "type": "person"}, "Patient"},
		{map[string]any{"_id": "c1"}, "Patient"},
	}
	for _, tt := range tests {
		tx, err := bothReport(t, c, &cht.Report{ID: "r1", Form: "DELIVERY", ReportedDate: 1730355950419,
			Fields: cht.Fields{"inputs": map[string]any{"contact": tt.contact}, "birth_time": "09:30"}})
		if err != nil {
			t.Fatalf("%v: %v", tt.contact, err)
		}
		b, err := tx.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		other := map[string]string{"Location": "Patient", "Patient": "Location"}[tt.want]
		if !strings.Contains(string(b), `"`+tt.want+`/`) || strings.Contains(string(b), `"reference":"`+other+`/`) {
			t.Errorf("%v: subject is not a %s: %s", tt.contact, tt.want, b)
		}
	}
}

func TestIsCode(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"fever", true}, {"8310-5", true}, {"fever high", true}, {"a b c", true}, {"é", true}, {"x\u200by", true},
		{"", false}, {" fever", false}, {"fever ", false}, {"fever  high", false}, {"a\tb", false},
		{"a\nb", false}, {"a\rb", false}, {"a\u00a0b", false}, {"a\u2028b", false}, {"a\u3000b", false}, {" ", false},
	} {
		if got := isCode(tt.in); got != tt.ok {
			t.Errorf("isCode(%q) = %v, want %v", tt.in, got, tt.ok)
		}
	}
	// Random strings: isCode and isURI agree with their definitions.
	r := rand.New(rand.NewPCG(9, 10))
	const alphabet = "ab-_/: \t\v\x00\x1f\x20\x21\x7e\x7f\x80\xa0\xc2\xe2\x80\xa8\xff"
	for range 300_000 {
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = "code-x_1"[r.IntN(8)]
			if r.IntN(6) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		s := string(b)
		otherSpace := strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) && r != ' ' })
		wantCode := s != "" && !otherSpace && s[0] != ' ' && s[len(s)-1] != ' ' && !strings.Contains(s, "  ")
		if got := isCode(s); got != wantCode {
			t.Fatalf("isCode(%q) = %v, want %v", s, got, wantCode)
		}
		if got, want := isURI(s), !strings.ContainsFunc(s, unicode.IsSpace); got != want {
			t.Fatalf("isURI(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestPayloadCodesRefuseWhatFHIRRefuses: an observation code, valueCode
// or valueQuantity.code that is not a FHIR code, or a valueQuantity.system
// with white space, is refused naming the observation, in both writers.
func TestPayloadCodesRefuseWhatFHIRRefuses(t *testing.T) {
	obs := func(o string) string {
		return `{"id":"e1","patient_uuid":"p1","reported_date":1730355950419,"observations":[{"code":"ok","valueBoolean":true},` + o + `]}`
	}
	tests := []struct{ in, field, reason string }{
		{obs(`{"code":" fever","valueBoolean":true}`), "observations.1.code", "not a FHIR code"},
		{obs(`{"code":"fever ","valueBoolean":true}`), "observations.1.code", "not a FHIR code"},
		{obs(`{"code":"fever  high","valueBoolean":true}`), "observations.1.code", "not a FHIR code"},
		{obs(`{"code":"fever\thigh","valueBoolean":true}`), "observations.1.code", "not a FHIR code"},
		{obs(`{"code":"fever\u00a0high","valueBoolean":true}`), "observations.1.code", "not a FHIR code"},
		{obs(`{"code":"w","valueQuantity":{"value":1,"unit":"kg","system":"http://unitsofmeasure.org","code":"k  g"}}`), "observations.1", "valueQuantity.code"},
		{obs(`{"code":"w","valueQuantity":{"value":1,"unit":"kg","system":"http://unitsofmeasure.org","code":" kg"}}`), "observations.1", "valueQuantity.code"},
		{obs(`{"code":"w","valueQuantity":{"value":1,"unit":"kg","system":"http://units of measure","code":"kg"}}`), "observations.1", "valueQuantity.system"},
		{obs(`{"code":"w","valueCode":"a\tb"}`), "observations.1", "valueCode"},
		{obs(`{"code":"w","valueCode":"pos "}`), "observations.1", "valueCode"},
	}
	for _, strat := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
		c := testConverter(t, Config{Strategy: strat})
		for _, tt := range tests {
			_, err := bothPayload(t, c, tt.in)
			wantField(t, fmt.Sprintf("%v %s", strat, tt.in), err, tt.field)
			if err != nil && !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("%v %s: %v does not say %q", strat, tt.in, err, tt.reason)
			}
		}
		for _, o := range []string{`{"code":"fever high","valueCode":"very high"}`,
			`{"code":"w","valueQuantity":{"value":1,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`} {
			if _, err := bothPayload(t, c, obs(o)); err != nil {
				t.Errorf("%v %s: %v", strat, o, err)
			}
		}
	}
}

// TestMappingCodesMustBeFHIRCodes: ParseMapping and Validate refuse, with
// a *MappingError naming the form and field, a code that is not a FHIR
// code and a system that is not a FHIR uri, wherever the mapping gives
// one: the field's code, its categories, its values' codes, a quantity's
// unit (written as valueQuantity.code), valueSystem, the form's
// encounterType and categories.
func TestMappingCodesMustBeFHIRCodes(t *testing.T) {
	field := func(f string) string { return "version: 1\nforms:\n  - form: F\n    fields:\n      - " + f + "\n" }
	tests := []struct{ name, in, field, reason string }{
		{"code double space", field(`{path: t, code: {system: "http://loinc.org", code: "8310-5  x"}, type: decimal}`), "t", `code "8310-5  x" has white space`},
		{"code tab", field(`{path: t, code: {system: "http://loinc.org", code: "a\tb"}, type: decimal}`), "t", "not a FHIR code"},
		{"code no-break space", field(`{path: t, code: {system: "http://loinc.org", code: "a\u00a0b"}, type: decimal}`), "t", "not a FHIR code"},
		{"system with space", field(`{path: t, code: {system: "my codes", code: "x"}, type: decimal}`), "t", `code system "my codes" contains white space`},
		{"value code", field(`{path: t, code: {system: "http://loinc.org", code: "x"}, type: codeable, values: {yes: {system: "s:x", code: "a  b"}}}`), "t", `value "yes" "a  b" has white space`},
		{"value system", field(`{path: t, code: {system: "http://loinc.org", code: "x"}, type: codeable, values: {yes: {system: "s x", code: "a"}}}`), "t", "not a FHIR uri"},
		{"valueSystem", field(`{path: t, code: {system: "http://loinc.org", code: "x"}, type: codeable, valueSystem: "s x"}`), "t", "valueSystem"},
		{"unit", field(`{path: t, code: {system: "http://loinc.org", code: "x"}, type: quantity, unit: "k  g"}`), "t", `unit "k  g"`},
		{"category", field(`{path: t, code: {system: "http://loinc.org", code: "x"}, type: decimal, category: [{system: "s:c", code: "vital  signs"}]}`), "t", "category"},
		{"encounterType", "version: 1\nforms:\n  - form: F\n    encounterType: {system: \"s:e\", code: \"home  visit\"}\n    fields: []\n", "", "encounterType"},
		{"form category", "version: 1\nforms:\n  - form: F\n    category: [{system: \"s:c\", code: \" x\"}]\n    fields: []\n", "", "category"},
	}
	for _, tt := range tests {
		_, err := ParseMapping([]byte(tt.in))
		var me *MappingError
		if !errors.As(err, &me) || me.Form != "F" || me.Field != tt.field || !strings.Contains(me.Reason, tt.reason) {
			t.Errorf("%s: err = %v, want a *MappingError for form F field %q saying %q", tt.name, err, tt.field, tt.reason)
		}
	}
	// Single spaces inside a code are a FHIR code; a unit with one is
	// accepted too.
	m, err := ParseMapping([]byte(field(`{path: t, code: {system: "http://loinc.org", code: "a b"}, type: quantity, unit: "k g"}`)))
	if err != nil {
		t.Fatal(err)
	}
	// Validate checks a mapping built in Go the same way.
	m.Forms[0].Fields[0].Code.Code = "a  b"
	var me *MappingError
	if err := m.Validate(); !errors.As(err, &me) || me.Field != "t" {
		t.Errorf("Validate: %v", err)
	}
}

// TestNonFiniteGeolocation: a NaN or infinite latitude, longitude or
// altitude (possible in Go, not in JSON) is a geolocation problem: a
// *ConversionError naming geolocation, or, lenient, dropped with a
// warning, in contacts and reports, in both writers.
func TestNonFiniteGeolocation(t *testing.T) {
	nan, inf, ninf := math.NaN(), math.Inf(1), math.Inf(-1)
	geo := func(lat, lon float64, alt *float64) *cht.Geolocation {
		return &cht.Geolocation{Latitude: &lat, Longitude: &lon, Altitude: alt}
	}
	tests := []struct {
		name   string
		g      *cht.Geolocation
		reason string
	}{
		{"NaN latitude", geo(nan, 36.8, nil), "not NaN"},
		{"NaN longitude", geo(-1.3, nan, nil), "not NaN"},
		{"+Inf latitude", geo(inf, 36.8, nil), "latitude is outside"},
		{"-Inf longitude", geo(-1.3, ninf, nil), "longitude is outside"},
		{"+Inf altitude", geo(-1.3, 36.8, &inf), "altitude is not a finite number"},
		{"-Inf altitude", geo(-1.3, 36.8, &ninf), "altitude is not a finite number"},
		{"NaN altitude", geo(-1.3, 36.8, &nan), "altitude is not a finite number"},
	}
	m, err := LoadMapping("testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m.Contacts.Lenient = []string{"geolocation"}
	for _, strat := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
		c := testConverter(t, Config{Strategy: strat})
		lc := testConverter(t, Config{Strategy: strat, Mapping: m})
		for _, tt := range tests {
			what := fmt.Sprintf("%v %s", strat, tt.name)
			place := &cht.Contact{ID: "hc-1", Type: "health_center", Name: "HC", Geolocation: tt.g}
			r := &cht.Report{ID: "r1", Form: "HEIGHT_WEIGHT", ReportedDate: 1730355950419, Geolocation: tt.g,
				Fields: cht.Fields{"patient_uuid": "p1", "height": "170"}}
			_, err := bothContact(t, c, place)
			wantField(t, what+" contact", err, "geolocation")
			if err != nil && !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("%s contact: %v does not say %q", what, err, tt.reason)
			}
			_, err = bothReport(t, c, r)
			wantField(t, what+" report", err, "geolocation")
			for _, conv := range []func() (*Transaction, error){
				func() (*Transaction, error) { return bothContact(t, lc, place) },
				func() (*Transaction, error) { return bothReport(t, lc, r) },
			} {
				tx, err := conv()
				if err != nil || len(tx.Warnings) != 1 {
					t.Fatalf("%s lenient: %v", what, err)
				}
				if b, err := tx.MarshalJSON(); err != nil || strings.Contains(string(b), `"position"`) {
					t.Errorf("%s lenient: %v %s", what, err, b)
				}
			}
		}
	}
}
