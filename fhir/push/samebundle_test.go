package push_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// postedBodies is a FHIR server that keeps the body of every transaction
// posted to it and accepts it with one 201 entry per entry sent.
type postedBodies struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (p *postedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.bodies = append(p.bodies, b)
	p.mu.Unlock()
	var bundle struct{ Entry []json.RawMessage }
	if err := json.Unmarshal(b, &bundle); err != nil {
		return nil, fmt.Errorf("posted bundle is not JSON: %w", err)
	}
	entries := strings.TrimSuffix(strings.Repeat(`{"response":{"status":"201 Created"}},`, len(bundle.Entry)), ",")
	return answer(r, []byte(`{"resourceType":"Bundle","type":"transaction-response","entry":[`+entries+`]}`), "application/fhir+json"), nil
}

func (p *postedBodies) take() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.bodies
	p.bodies = nil
	return out
}

// TestPostedBundleIsTheConvertersBundle: the bundle the handler posts for
// a pushed contact or report (written straight to JSON) is byte for byte
// the JSON of the converter's ContactBundle or ReportBundle (built as
// samply values) for the same document, and a document the converter
// refuses is answered 422 with nothing posted.
func TestPostedBundleIsTheConvertersBundle(t *testing.T) {
	mapping, err := fhir.LoadMapping("../testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lenient, err := fhir.ParseMapping([]byte("contacts:\n  lenient: [date_of_birth, phone]\n"))
	if err != nil {
		t.Fatal(err)
	}
	types := func(file string) cht.ContactTypes {
		settings, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := cht.ParseContactTypes(settings)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	docs := func(files ...string) []json.RawMessage {
		var out []json.RawMessage
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(f) == "docs.json" {
				var list []json.RawMessage
				if err := json.Unmarshal(b, &list); err != nil {
					t.Fatal(err)
				}
				out = append(out, list...)
				continue
			}
			out = append(out, b)
		}
		return out
	}
	contacts := []string{"../../cht/testdata/person_hydrated.json", "../../cht/testdata/person_configurable.json",
		"../testdata/person_with_lineage.json", "../testdata/person_openmrs_example.json",
		"../testdata/place_clinic.json", "../testdata/place_health_center.json"}
	reports := []string{"../testdata/report_assessment_hydrated.json", "../testdata/report_records_api.json",
		"../testdata/report_xform.json"}
	all := append(append([]string{}, contacts...), reports...)
	setups := []struct {
		name string
		cfg  fhir.Config
		docs []json.RawMessage
	}{
		{"configurable", fhir.Config{Mapping: mapping, ContactTypes: types("../../cht/testdata/app_settings_configurable.json")}, docs(all...)},
		{"legacy", fhir.Config{Mapping: mapping, ContactTypes: cht.LegacyContactTypes()}, docs(all...)},
		{"legacy put-free", fhir.Config{Mapping: mapping, ContactTypes: cht.LegacyContactTypes(), Strategy: fhir.WriteConditionalUpdate}, docs(all...)},
		{"realapp", fhir.Config{Mapping: mapping, ContactTypes: types("../testdata/realapp/app_settings.json")}, docs("../testdata/realapp/docs.json")},
		{"lenient", fhir.Config{Mapping: lenient, ContactTypes: cht.LegacyContactTypes()}, []json.RawMessage{
			json.RawMessage(`{"_id":"p-warn-1","type":"person","name":"Amina","date_of_birth":"2099-13-45","phone":"+2547\u0001",` +
				`"parent":{"_id":"hc-1","type":"health_center","name":"HC","parent":{"_id":"dh-1","type":"district_hospital","name":"DH"}}}`),
			json.RawMessage(`{"_id":"p-bad-1","type":"person","name":"Baraka","sex":"unknown-value","date_of_birth":"1990-02-31"}`),
		}},
	}
	counts := map[string]int{}
	for _, s := range setups {
		s.cfg.InstanceURL = "https://cht.example.org"
		conv, err := fhir.New(s.cfg)
		if err != nil {
			t.Fatal(err)
		}
		server := &postedBodies{}
		fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: "http://fhir.invalid/fhir", MaxRetries: -1, HTTPClient: &http.Client{Transport: server}})
		if err != nil {
			t.Fatal(err)
		}
		h, err := push.New(push.Config{Converter: conv, FHIR: fc})
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range s.docs {
			what := fmt.Sprintf("%s doc %d", s.name, i)
			p := &outbound.Payload{Doc: doc}
			var want *fhir.Transaction
			var convErr error
			if p.DocType() == "data_record" {
				r, err := p.Report()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				want, convErr = conv.ReportBundle(r)
			} else {
				c, err := p.Contact()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				want, convErr = conv.ContactBundle(c)
			}
			req := httptest.NewRequest(http.MethodPost, push.OutboundPath, bytes.NewReader(append(append([]byte(`{"doc":`), doc...), '}')))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			posted := server.take()
			if convErr != nil {
				if rec.Code != http.StatusUnprocessableEntity || len(posted) != 0 {
					t.Fatalf("%s: the converter refuses it (%v); the handler answered %d %s and posted %d bundles", what, convErr, rec.Code, rec.Body, len(posted))
				}
				counts["refused"]++
				continue
			}
			if rec.Code != http.StatusOK || len(posted) != 1 {
				t.Fatalf("%s: answered %d %s, posted %d bundles", what, rec.Code, rec.Body, len(posted))
			}
			wantJSON, err := want.MarshalJSON()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if !bytes.Equal(posted[0], wantJSON) {
				t.Fatalf("%s: posted bundle differs from the converter's:\nposted    %s\nconverter %s", what, posted[0], wantJSON)
			}
			if got := strings.Count(rec.Body.String(), `"field"`); got != len(want.Warnings) {
				t.Fatalf("%s: answer %s has %d warnings, the converter gives %d", what, rec.Body, got, len(want.Warnings))
			}
			kind := "contact"
			if p.DocType() == "data_record" {
				kind = "report"
			}
			counts[kind]++
			counts[kind+" entries"] += want.Len()
			counts["warned"] += min(len(want.Warnings), 1)
		}
	}
	t.Logf("%v", counts)
	// Enough of each kind to mean something: people and places with
	// their lineage, reports, warnings and refusals.
	if counts["contact"] < 20 || counts["contact entries"] < 35 || counts["report"] < 6 || counts["warned"] < 1 || counts["refused"] < 1 {
		t.Errorf("too few documents compared: %v", counts)
	}
}
