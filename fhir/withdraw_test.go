package fhir

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// stubSearch answers one search with resources, or err, and records the
// query.
type stubSearch struct {
	resources []string
	err       error
	typ       string
	query     url.Values
	calls     int
}

func (s *stubSearch) Search(_ context.Context, typ string, q url.Values, out any) error {
	s.calls++
	s.typ, s.query = typ, q
	if s.err != nil {
		return s.err
	}
	entries := make([]string, len(s.resources))
	for i, r := range s.resources {
		entries[i] = `{"resource":` + r + `}`
	}
	return json.Unmarshal([]byte(`{"resourceType":"Bundle","type":"searchset","entry":[`+strings.Join(entries, ",")+`]}`), out)
}

const withdrawMapping = `
version: 1
forms:
  - form: edited
    encounterType: {system: "http://snomed.info/sct", code: "439708006"}
    fields:
      - {path: kept, code: {system: "http://loinc.org", code: "1-1"}, type: string}
      - {path: emptied, code: {system: "http://loinc.org", code: "2-2"}, type: string}
      - {path: absent, code: {system: "http://loinc.org", code: "3-3"}, type: string}
      - {path: count, code: {system: "http://loinc.org", code: "4-4"}, type: integer, lenient: true}
`

// withdrawStale finds the Observations of the fields an edited report no
// longer converts (absent, empty, or a lenient value left out) by their
// identifiers, and updates only those of its own identifier system that
// are not withdrawn yet, If-Match the version found.
func TestWithdrawStale(t *testing.T) {
	m, err := ParseMapping([]byte(withdrawMapping))
	require.NoError(t, err)
	c := testConverter(t, Config{Mapping: m})
	sys := c.sys.Observation
	obs := func(id, system, value, status string) string {
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"meta":{"versionId":"7","tag":[{"code":"emr"}]},`+
			`"identifier":[{"system":%q,"value":%q}],"status":%q,"code":{"text":"x"},"valueString":"old"}`, id, system, value, status)
	}
	report := func(rev string) *cht.Report {
		var r cht.Report
		require.NoError(t, json.Unmarshal([]byte(`{"_id":"r1","_rev":"`+rev+`","type":"data_record","form":"edited",`+
			`"reported_date":1730355950419,"fields":{"patient_id":"p1","kept":"yes","emptied":" ","count":"many"}}`), &r))
		return &r
	}

	t.Run("an edited report", func(t *testing.T) {
		r := report("2-b")
		tx, err := c.ReportBundle(r)
		require.NoError(t, err)
		require.Len(t, tx.Warnings, 1, "the lenient count is left out")
		before := len(tx.Entries)
		s := &stubSearch{resources: []string{
			obs("o-emptied", sys, "r1/emptied", "final"),
			obs("o-count", sys, "r1/count", "final"),
			obs("o-absent", sys, "r1/absent", "entered-in-error"), // withdrawn before
			obs("o-kept", sys, "r1/kept", "final"),                // written by this version
			obs("o-foreign", "https://emr.example.org/obs", "r1/emptied", "final"),
			`{"resourceType":"Patient","id":"p1"}`,
		}}
		require.NoError(t, c.withdrawStale(context.Background(), tx, r, s))
		assert.Equal(t, 1, s.calls)
		assert.Equal(t, "Observation", s.typ)
		want := map[string]bool{sys + "|r1/emptied": true, sys + "|r1/absent": true, sys + "|r1/count": true}
		got := map[string]bool{}
		for _, v := range splitAlternatives(s.query.Get("identifier")) {
			got[v] = true
		}
		assert.Equal(t, want, got)
		assert.Equal(t, "16", s.query.Get("_count"))

		added := tx.Entries[before:]
		require.Len(t, added, 2)
		for i, id := range []string{"o-emptied", "o-count"} {
			e := added[i]
			assert.Equal(t, fhir.HTTPVerbPUT, e.Request.Method)
			assert.Equal(t, "Observation/"+id, e.Request.Url)
			require.NotNil(t, e.Request.IfMatch)
			assert.Equal(t, `W/"7"`, *e.Request.IfMatch)
			res := e.Resource.(map[string]any)
			assert.Equal(t, "entered-in-error", res["status"])
			assert.Equal(t, "old", res["valueString"], "the value withdrawn is kept")
			assert.Equal(t, map[string]any{"tag": []any{map[string]any{"code": "emr"}}}, res["meta"], "the client's meta is kept, the server's is not")
		}
		b, err := tx.MarshalJSON()
		require.NoError(t, err)
		assert.Contains(t, string(b), `"request":{"method":"PUT","url":"Observation/o-emptied","ifMatch":"W/\"7\""}`)
	})

	t.Run("nothing to look for", func(t *testing.T) {
		for _, rev := range []string{"1-a", "", "x-y"} {
			r := report(rev)
			tx, err := c.ReportBundle(r)
			require.NoError(t, err)
			s := &stubSearch{}
			require.NoError(t, c.withdrawStale(context.Background(), tx, r, s))
			assert.Zero(t, s.calls, "rev %q: a first version wrote nothing earlier", rev)
		}
		var full cht.Report
		require.NoError(t, json.Unmarshal([]byte(`{"_id":"r2","_rev":"3-c","type":"data_record","form":"edited",`+
			`"fields":{"patient_id":"p1","kept":"a","emptied":"b","absent":"c","count":2}}`), &full))
		tx, err := c.ReportBundle(&full)
		require.NoError(t, err)
		s := &stubSearch{}
		require.NoError(t, c.withdrawStale(context.Background(), tx, &full, s))
		assert.Zero(t, s.calls, "every mapped field converted")

		cc := testConverter(t, Config{Mapping: m, Strategy: WriteConditionalCreate})
		r := report("2-b")
		tx, err = cc.ReportBundle(r)
		require.NoError(t, err)
		require.NoError(t, cc.withdrawStale(context.Background(), tx, r, s))
		assert.Zero(t, s.calls, "conditional create propagates no edit, and would not make a withdrawn Observation final again")
	})

	t.Run("the search fails", func(t *testing.T) {
		r := report("2-b")
		tx, err := c.ReportBundle(r)
		require.NoError(t, err)
		down := &ServerError{StatusCode: 503}
		err = c.withdrawStale(context.Background(), tx, r, &stubSearch{err: down})
		require.ErrorIs(t, err, down)
		assert.Contains(t, err.Error(), "r1")
	})
}

// splitAlternatives splits a token search's value at its unescaped commas.
func splitAlternatives(v string) []string {
	var out []string
	cur := ""
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			cur += v[i : i+2]
			i++
		case v[i] == ',':
			out = append(out, cur)
			cur = ""
		default:
			cur += string(v[i])
		}
	}
	return append(out, cur)
}

func TestSearchEscape(t *testing.T) {
	for in, want := range map[string]string{
		"r1/vitals.weight": "r1/vitals.weight",
		`a,b|c$d\e`:        `a\,b\|c\$d\\e`,
		"":                 "",
	} {
		assert.Equal(t, want, searchEscape(in), in)
	}
	assert.Equal(t, []string{`a\,b`, "c"}, splitAlternatives(searchEscape("a,b")+",c"))
}
