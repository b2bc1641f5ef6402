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
