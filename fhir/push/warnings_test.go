package push_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// TestWarningsReachTheAnswerAndTheLog: a value of a lenient field that
// cannot be converted is left out, the rest is written, and the warning is
// in the push's answer (the OpenHIM transaction's response body inside a
// mediator) and in a WARN line naming the field but not the value.
func TestWarningsReachTheAnswerAndTheLog(t *testing.T) {
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	mapping, err := fhir.ParseMapping([]byte("contacts:\n  lenient: [date_of_birth, phone]\n"))
	require.NoError(t, err)
	conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: mapping, ContactTypes: cht.LegacyContactTypes()})
	require.NoError(t, err)
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	require.NoError(t, err)
	var logs bytes.Buffer
	h, err := push.New(push.Config{Converter: conv, FHIR: fc, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	for _, tt := range []struct {
		name  string
		doc   map[string]any
		warns []string // fields
	}{
		{"two lenient values dropped", map[string]any{"_id": "p-warn-1", "type": "person", "name": "Amina",
			"date_of_birth": "2099-13-45", "phone": "+2547\u0001"}, []string{"phone", "date_of_birth"}}, // in the order checked
		{"clean document", map[string]any{"_id": "p-warn-2", "type": "person", "name": "Baraka", "date_of_birth": "1990-04-05"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			body, err := json.Marshal(map[string]any{"doc": tt.doc})
			require.NoError(t, err)
			resp := postJSON(t, srv.URL+push.OutboundPath, body)
			b := readAll(t, resp)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
			var answer struct {
				OK       bool `json:"ok"`
				Warnings []struct{ Doc, Field, Reason string }
			}
			require.NoError(t, json.Unmarshal(b, &answer), "%s", b)
			assert.True(t, answer.OK)
			var fields []string
			for _, w := range answer.Warnings {
				assert.Equal(t, tt.doc["_id"], w.Doc)
				assert.NotEmpty(t, w.Reason)
				fields = append(fields, w.Field)
			}
			assert.Equal(t, tt.warns, fields, "answer %s", b)
			if tt.warns == nil {
				assert.Equal(t, "{\"ok\":true}\n", string(b), "an answer without warnings is CHT's usual one")
			}
			var logged []string
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var l struct{ Level, Field, Doc string }
				if line == "" || json.Unmarshal([]byte(line), &l) != nil || l.Level != "WARN" {
					continue
				}
				assert.Equal(t, tt.doc["_id"], l.Doc)
				logged = append(logged, l.Field)
			}
			assert.Equal(t, tt.warns, logged, "log:\n%s", logs.String())
			assert.NotContains(t, logs.String(), "2099-13-45", "values may be personal data: the log names the field")
		})
	}
	found, err := fhirSrv.Search("Patient", "identifier=p-warn-1")
	require.NoError(t, err)
	require.Len(t, found, 1, "the rest of the document is written")
	assert.NotContains(t, string(found[0]), "birthDate")
}

// TestMembersThatAreNotValid: a member that is not valid where the rest of
// the document is (a *cht.DecodeError with Member set) no longer stops the
// push at decoding: one the conversion writes to FHIR is refused as any
// unusable value (422 naming it), or left out with a warning when its
// field is lenient, and one it never reads is ignored. CHT stores such
// values as sent (shared-libs/contacts/src/people.js validatePerson checks
// only that name is a string), and its outbound (shared-libs/outbound
// outbound.js send; sentinel/src/schedule/outbound.js singlePush) keeps a
// push not answered 2xx queued and sends the same document again: refused
// at decoding, a note with a NUL kept the document from FHIR for good. A
// push that is not valid JSON is still refused (400).
func TestMembersThatAreNotValid(t *testing.T) {
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	strictURL, lenientURL := strictAndLenient(t, fhirSrv)

	household := `{"_id":"hh-1","type":"clinic","name":"Otieno Household","phone":254700000000,"parent":{"_id":"hc-1"}}`
	for _, tt := range []struct {
		name    string
		url     string
		doc     string
		status  int
		field   string // of the error or the warning
		written bool
	}{
		{"phone stored as a number", strictURL, `{"_id":"p-m-1","type":"person","name":"Amina","phone":254712345678}`,
			http.StatusUnprocessableEntity, "phone", false},
		{"phone stored as a number, lenient", lenientURL, `{"_id":"p-m-2","type":"person","name":"Amina","phone":254712345678}`,
			http.StatusOK, "phone", true},
		{"name with a NUL", lenientURL, `{"_id":"p-m-3","type":"person","name":"Ami\u0000na"}`,
			http.StatusUnprocessableEntity, "name", false},
		{"NUL in notes, never converted", strictURL, `{"_id":"p-m-4","type":"person","name":"Baraka","notes":"x\u0000y","meta":{"x":"\ud800"}}`,
			http.StatusOK, "", true},
		{"the household's phone a number", strictURL, `{"_id":"p-m-5","type":"person","name":"Chebet","parent":` + household + `}`,
			http.StatusUnprocessableEntity, "parent.phone", false},
		{"the household's phone a number, lenient", lenientURL, `{"_id":"p-m-6","type":"person","name":"Chebet","parent":` + household + `}`,
			http.StatusOK, "phone", true}, // a warning names the document it is about: hh-1
		{"not valid JSON", strictURL, `{"_id":"p-m-7","type":"person","name":"Dalmas","phone":}`, http.StatusBadRequest, "", false},
		// Members whose loss would change what is written without a word
		// are still refused as the push arrives.
		{"a parent's _id a number", lenientURL, `{"_id":"p-m-8","type":"person","name":"Esther","parent":{"_id":5}}`,
			http.StatusBadRequest, "", false},
		{"role a number", lenientURL, `{"_id":"p-m-9","type":"person","name":"Faith","role":5}`, http.StatusBadRequest, "", false},
		{"reported_date a word", lenientURL, `{"_id":"p-m-10","type":"person","name":"Gitau","reported_date":"yesterday"}`,
			http.StatusBadRequest, "", false},
		{"the CHW of the area's phone a number", strictURL, `{"_id":"p-m-11","type":"person","name":"Halima","parent":` +
			`{"_id":"hh-2","type":"clinic","name":"H","parent":{"_id":"hc-2","type":"health_center","name":"HC",` +
			`"contact":{"_id":"chw-2","type":"person","name":"CHW","phone":254700000001,"parent":{"_id":"hc-2"}}}}}`,
			http.StatusBadRequest, "", false}, // a place's primary contact is not checked by the conversion
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := postJSON(t, tt.url+push.OutboundPath, []byte(`{"doc":`+tt.doc+`}`))
			b := readAll(t, resp)
			require.Equal(t, tt.status, resp.StatusCode, "%s", b)
			id := tt.doc[len(`{"_id":"`):strings.Index(tt.doc, `","type"`)]
			found, err := fhirSrv.Search("Patient", "identifier="+id)
			require.NoError(t, err)
			if !tt.written {
				assert.Empty(t, found, "nothing written")
				if tt.field != "" {
					assert.Contains(t, string(b), `field \"`+tt.field+`\"`, "the error names the member")
				}
				return
			}
			require.Len(t, found, 1, "the document is written")
			var answer struct {
				Warnings []struct{ Doc, Field, Reason string }
			}
			require.NoError(t, json.Unmarshal(b, &answer), "%s", b)
			var fields []string
			for _, w := range answer.Warnings {
				fields = append(fields, w.Field)
			}
			if tt.field == "" {
				assert.Empty(t, fields, "answer %s", b)
			} else {
				assert.Equal(t, []string{tt.field}, fields, "answer %s", b)
			}
			assert.NotContains(t, string(found[0]), "telecom", "no phone reached FHIR")
			if strings.Contains(tt.doc, `"hh-1"`) {
				places, err := fhirSrv.Search("Location", "identifier=hh-1")
				require.NoError(t, err)
				require.Len(t, places, 1, "the household is written")
				assert.NotContains(t, string(places[0]), "telecom", "without its phone")
			}
		})
	}
}

// TestMemberErrorsOfReports: the same for a report: its CHW's phone
// stored as a number fails it as that member (contact.phone) unless phone
// is lenient; a mapped form field that is not valid fails as that field's
// conversion error, since its Observation cannot be written without it.
func TestMemberErrorsOfReports(t *testing.T) {
	fhirSrv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(fhirSrv.Close)
	strictURL, lenientURL := strictAndLenient(t, fhirSrv)

	// report is a HEIGHT_WEIGHT report; more holds members of its own.
	report := func(id, height, contactPhone string, more ...string) []byte {
		date := `"reported_date":1730355950419`
		if strings.Contains(strings.Join(more, ""), `"reported_date"`) {
			date = `"_rev":"1-a"`
		}
		return []byte(`{"doc":{"_id":"` + id + `","type":"data_record","form":"HEIGHT_WEIGHT",` + strings.Join(more, "") +
			`"fields":{"patient_id":"p-1","height":` + height + `,"weight":61.5},` +
			`"contact":{"_id":"chw-1","type":"person","name":"CHW","phone":` + contactPhone + `,"parent":{"_id":"hc-1"}},` +
			date + `}}`)
	}
	for _, tt := range []struct {
		name   string
		url    string
		id     string
		body   []byte
		status int
		field  string // of the error, or of the warning (which names its document)
	}{
		{"the CHW's phone a number", strictURL, "r-m-1", report("r-m-1", "168", "254712000333"), http.StatusUnprocessableEntity, "contact.phone"},
		{"the CHW's phone a number, lenient", lenientURL, "r-m-2", report("r-m-2", "168", "254712000333"), http.StatusOK, "phone"}, // of doc chw-1
		{"a NUL in a mapped field", lenientURL, "r-m-3", report("r-m-3", `"16\u00008"`, `"+254712000333"`), http.StatusUnprocessableEntity, "height"},
		{"the patient's household name a number", lenientURL, "r-m-4", report("r-m-4", "168", `"+254712000333"`,
			`"patient":{"_id":"p-1","type":"person","name":"P","parent":{"_id":"hh-3","type":"clinic","name":5,"parent":{"_id":"hc-1"}}},`),
			http.StatusUnprocessableEntity, "patient.parent.name"},
		// Members of the report itself are still refused as it arrives.
		{"reported_date a word", lenientURL, "r-m-5", report("r-m-5", "168", `"+254712000333"`, `"reported_date":"yesterday",`),
			http.StatusBadRequest, "reported_date"},
		{"the CHW a number", lenientURL, "r-m-6", []byte(`{"doc":{"_id":"r-m-6","type":"data_record","form":"HEIGHT_WEIGHT",` +
			`"fields":{"patient_id":"p-1","height":168},"contact":12,"reported_date":1730355950419}}`), http.StatusBadRequest, "contact"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := postJSON(t, tt.url+push.OutboundPath, tt.body)
			b := readAll(t, resp)
			require.Equal(t, tt.status, resp.StatusCode, "%s", b)
			found, err := fhirSrv.Search("Encounter", "identifier="+tt.id)
			require.NoError(t, err)
			if tt.status != http.StatusOK {
				assert.Contains(t, string(b), tt.field, "the error names the field")
				assert.Empty(t, found, "nothing written")
				return
			}
			require.Len(t, found, 1)
			var answer struct{ Warnings []struct{ Doc, Field string } }
			require.NoError(t, json.Unmarshal(b, &answer), "%s", b)
			var fields []string
			for _, w := range answer.Warnings {
				fields = append(fields, w.Field)
			}
			assert.Equal(t, []string{tt.field}, fields, "answer %s", b)
		})
	}
}

// strictAndLenient serves two push handlers writing to fhirSrv, both with
// the default mapping, the second with contacts.lenient [phone]; it
// returns their URLs.
func strictAndLenient(t *testing.T, fhirSrv *fhirtest.Server) (strictURL, lenientURL string) {
	t.Helper()
	fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: fhirSrv.URL, MaxRetries: -1})
	require.NoError(t, err)
	serve := func(lenient []string) string {
		m := fhir.DefaultMapping()
		m.Contacts.Lenient = lenient
		conv, err := fhir.New(fhir.Config{InstanceURL: "https://cht.example.org", Mapping: m, ContactTypes: cht.LegacyContactTypes()})
		require.NoError(t, err)
		h, err := push.New(push.Config{Converter: conv, FHIR: fc, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	return serve(nil), serve([]string{"phone"})
}
