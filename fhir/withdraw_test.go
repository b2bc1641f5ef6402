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
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/search"
)

// stubSearch answers every search with resources (and a next link when
// next is set), or err, and records the queries.
type stubSearch struct {
	resources []string
	next      bool
	err       error
	types     []string
	queries   []url.Values
}

func (s *stubSearch) Search(_ context.Context, typ string, q url.Values, out any) error {
	s.types, s.queries = append(s.types, typ), append(s.queries, q)
	if s.err != nil {
		return s.err
	}
	entries := make([]string, len(s.resources))
	for i, r := range s.resources {
		entries[i] = `{"resource":` + r + `}`
	}
	link := `[{"relation":"self","url":"x"}]`
	if s.next {
		link = `[{"relation":"self","url":"x"},{"relation":"next","url":"y"}]`
	}
	return json.Unmarshal([]byte(`{"resourceType":"Bundle","type":"searchset","link":`+link+
		`,"entry":[`+strings.Join(entries, ",")+`]}`), out)
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

// withdrawRig is a converter of the form "edited" and its reports.
type withdrawRig struct {
	m *Mapping
	c *Converter
}

func newWithdrawRig(t *testing.T) withdrawRig {
	t.Helper()
	m, err := ParseMapping([]byte(withdrawMapping))
	require.NoError(t, err)
	return withdrawRig{m: m, c: testConverter(t, Config{Mapping: m})}
}

// report is version rev of a report of the form "edited": kept is filled
// in, emptied blank, absent missing and count not an integer.
func (withdrawRig) report(t *testing.T, rev string) *cht.Report {
	t.Helper()
	var r cht.Report
	require.NoError(t, json.Unmarshal([]byte(`{"_id":"r1","_rev":"`+rev+`","type":"data_record","form":"edited",`+
		`"reported_date":1730355950419,"fields":{"patient_id":"p1","kept":"yes","emptied":" ","count":"many"}}`), &r))
	return &r
}

// obs is an Observation as a FHIR server answers it.
func obs(id, system, value, status string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"meta":{"versionId":"7","lastUpdated":"2026-01-01T00:00:00Z",`+
		`"tag":[{"code":"emr"}]},"identifier":[{"system":%q,"value":%q}],"status":%q,"code":{"text":"x"},"valueString":"old"}`,
		id, system, value, status)
}

// withdrawStale finds the Observations of the fields an edited report no
// longer converts (absent, empty, or a lenient value left out) by their
// identifiers, and updates only those of its own identifier system that
// are not withdrawn yet, once each, If-Match the version found.
func TestWithdrawStale(t *testing.T) {
	w := newWithdrawRig(t)
	sys := w.c.sys.Observation
	// The samply path (ReportBundle) and the push's direct one
	// (reportTransaction) leave out the same fields.
	for name, convert := range map[string]func(*cht.Report) (*Transaction, error){
		"samply": w.c.ReportBundle, "direct": w.c.reportTransaction,
	} {
		t.Run(name, func(t *testing.T) {
			r := w.report(t, "2-b")
			tx, err := convert(r)
			require.NoError(t, err)
			require.Len(t, tx.Warnings, 1, "the lenient count is left out")
			before := len(tx.Entries)
			s := &stubSearch{resources: []string{
				obs("o-emptied", sys, "r1/emptied", "final"),
				obs("o-count", sys, "r1/count", "final"),
				obs("o-absent", sys, "r1/absent", "entered-in-error"), // withdrawn before
				obs("o-kept", sys, "r1/kept", "final"),                // written by this version
				obs("o-foreign", "https://emr.example.org/obs", "r1/emptied", "final"),
				obs("o-emptied", sys, "r1/emptied", "final"), // listed twice
				`{"resourceType":"Patient","id":"p1"}`,
			}}
			require.NoError(t, w.c.withdrawStale(context.Background(), tx, r, s))
			require.Len(t, s.queries, 1)
			assert.Equal(t, []string{"Observation"}, s.types)
			assert.Equal(t, []string{sys + "|r1/absent", sys + "|r1/count", sys + "|r1/emptied"},
				splitAlternatives(s.queries[0].Get("identifier")), "sorted: the same search on every retry")
			assert.Equal(t, "40", s.queries[0].Get("_count"))

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
				assert.Equal(t, map[string]any{"tag": []any{map[string]any{"code": "emr"}}}, res["meta"],
					"the client's meta is kept, the server's is not")
			}
			b, err := tx.MarshalJSON()
			require.NoError(t, err)
			assert.Contains(t, string(b), `"request":{"method":"PUT","url":"Observation/o-emptied","ifMatch":"W/\"7\""}`)
		})
	}
}

func TestWithdrawStaleSearchesOnlyWhenNeeded(t *testing.T) {
	w := newWithdrawRig(t)
	for _, rev := range []string{"1-a", "", "x-y"} {
		r := w.report(t, rev)
		tx, err := w.c.ReportBundle(r)
		require.NoError(t, err)
		s := &stubSearch{}
		require.NoError(t, w.c.withdrawStale(context.Background(), tx, r, s))
		assert.Empty(t, s.queries, "rev %q: a first version wrote nothing earlier", rev)
	}

	var full cht.Report
	require.NoError(t, json.Unmarshal([]byte(`{"_id":"r2","_rev":"3-c","type":"data_record","form":"edited",`+
		`"fields":{"patient_id":"p1","kept":"a","emptied":"b","absent":"c","count":2}}`), &full))
	tx, err := w.c.ReportBundle(&full)
	require.NoError(t, err)
	s := &stubSearch{}
	require.NoError(t, w.c.withdrawStale(context.Background(), tx, &full, s))
	assert.Empty(t, s.queries, "every mapped field converted")

	cc := testConverter(t, Config{Mapping: w.m, Strategy: WriteConditionalCreate})
	r := w.report(t, "2-b")
	tx, err = cc.ReportBundle(r)
	require.NoError(t, err)
	require.NoError(t, cc.withdrawStale(context.Background(), tx, r, s))
	assert.Empty(t, s.queries, "conditional create propagates no edit, and would not make a withdrawn Observation final again")
}

// A form with many unfilled fields is searched searchBatch identifiers at
// a time, so that no URL grows past what servers accept; an answer with a
// next page, whose rest would stay final, and a failed search are errors
// naming the report.
func TestWithdrawStaleSearchFailures(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nforms:\n  - form: long\n    encounterType: {system: \"http://snomed.info/sct\", code: \"1\"}\n    fields:\n")
	for i := range 25 {
		fmt.Fprintf(&b, "      - {path: f%02d, code: {system: \"http://loinc.org\", code: \"%d-0\"}, type: string}\n", i, i)
	}
	m, err := ParseMapping([]byte(b.String()))
	require.NoError(t, err)
	c := testConverter(t, Config{Mapping: m})
	var r cht.Report
	require.NoError(t, json.Unmarshal([]byte(`{"_id":"r9","_rev":"2-a","type":"data_record","form":"long",`+
		`"fields":{"patient_id":"p1","f00":"x"}}`), &r))
	tx, err := c.ReportBundle(&r)
	require.NoError(t, err)

	s := &stubSearch{}
	require.NoError(t, c.withdrawStale(context.Background(), tx, &r, s))
	require.Len(t, s.queries, 3, "24 identifiers, 10 at a time")
	var all []string
	for _, q := range s.queries {
		alts := splitAlternatives(q.Get("identifier"))
		assert.LessOrEqual(t, len(alts), searchBatch)
		all = append(all, alts...)
	}
	assert.Len(t, all, 24)
	assert.Equal(t, c.sys.Observation+"|r9/f01", all[0])

	err = c.withdrawStale(context.Background(), tx, &r, &stubSearch{next: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "r9")
	assert.Contains(t, err.Error(), "more than one page")

	down := &ServerError{StatusCode: 503}
	err = c.withdrawStale(context.Background(), tx, &r, &stubSearch{err: down})
	require.ErrorIs(t, err, down)
	assert.Contains(t, err.Error(), "r9")
}

// staleObservations names each Observation it lists by the request of
// the entry that writes it in the transaction of a version that fills the
// field in (what the backfill orders its batches by), for both strategies
// that propagate edits; a report id and paths that need escaping included.
func TestStaleObservationsRequest(t *testing.T) {
	m, err := ParseMapping([]byte(`
version: 1
forms:
  - form: edited
    encounterType: {system: "http://snomed.info/sct", code: "439708006"}
    fields:
      - {path: kept, code: {system: "http://loinc.org", code: "1-1"}, type: string}
      - {path: "group.a b", code: {system: "http://loinc.org", code: "2-2"}, type: string}
      - {path: count, code: {system: "http://loinc.org", code: "4-4"}, type: integer, lenient: true}
`))
	require.NoError(t, err)
	doc := func(rev, fields string) *cht.Report {
		var r cht.Report
		require.NoError(t, json.Unmarshal([]byte(`{"_id":"r 1|x","_rev":"`+rev+`","type":"data_record","form":"edited",`+
			`"reported_date":1730355950419,"fields":{"patient_id":"p1",`+fields+`}}`), &r))
		return &r
	}
	for _, strategy := range []WriteStrategy{WritePut, WriteConditionalUpdate} {
		t.Run(strategy.String(), func(t *testing.T) {
			c := testConverter(t, Config{Mapping: m, Strategy: strategy})
			// The requests of the Observations of a version with every
			// field, by identifier value.
			tx, err := c.reportTransaction(doc("1-a", `"kept":"a","group":{"a b":"b"},"count":2`))
			require.NoError(t, err)
			b, err := tx.MarshalJSON()
			require.NoError(t, err)
			var bundle struct {
				Entry []struct {
					Resource struct {
						ResourceType string
						Identifier   []struct{ Value string }
					}
					Request json.RawMessage
				}
			}
			require.NoError(t, json.Unmarshal(b, &bundle))
			want := map[string]string{}
			for _, e := range bundle.Entry {
				if e.Resource.ResourceType == "Observation" {
					want[e.Resource.Identifier[0].Value] = string(e.Request)
				}
			}
			require.Len(t, want, 3)

			r := doc("2-b", `"kept":"a","count":"many"`)
			tx, err = c.reportTransaction(r)
			require.NoError(t, err)
			stale, err := c.staleObservations(tx, r)
			require.NoError(t, err)
			require.Len(t, stale, 2, "the emptied group and the lenient count")
			for _, st := range stale {
				assert.Equal(t, "r 1|x", st.Report)
				require.Contains(t, want, st.Identifier)
				assert.Equal(t, want[st.Identifier], st.Request, st.Identifier)
			}
			assert.Equal(t, []string{"r 1|x/count", "r 1|x/group.a b"}, []string{stale[0].Identifier, stale[1].Identifier})
		})
	}
}

// The Observations of several reports are searched together, searchBatch
// identifiers at a time, and each found is withdrawn; a failed search names
// the reports it searched for.
func TestWithdrawalsOfSeveralReports(t *testing.T) {
	w := newWithdrawRig(t)
	sys := w.c.sys.Observation
	var stale []direct.Stale
	for _, id := range []string{"r2", "r1"} {
		r := w.report(t, "2-b")
		r.ID = id
		tx, err := w.c.reportTransaction(r)
		require.NoError(t, err)
		st, err := w.c.staleObservations(tx, r)
		require.NoError(t, err)
		require.Len(t, st, 3)
		stale = append(stale, st...)
	}
	s := &stubSearch{resources: []string{
		obs("o-1", sys, "r1/emptied", "final"),
		obs("o-2", sys, "r2/count", "final"),
		obs("o-3", sys, "r2/kept", "final"), // not stale
	}}
	entries, err := w.c.withdrawals(context.Background(), s, stale)
	require.NoError(t, err)
	require.Len(t, s.queries, 1, "6 identifiers, one search")
	assert.Equal(t, []string{sys + "|r1/absent", sys + "|r1/count", sys + "|r1/emptied", sys + "|r2/absent",
		sys + "|r2/count", sys + "|r2/emptied"}, splitAlternatives(s.queries[0].Get("identifier")))
	require.Len(t, entries, 2)
	assert.Equal(t, "Observation/o-1", entries[0].Request.Url)
	assert.Equal(t, "Observation/o-2", entries[1].Request.Url)

	down := &ServerError{StatusCode: 503}
	_, err = w.c.withdrawals(context.Background(), &stubSearch{err: down}, stale)
	require.ErrorIs(t, err, down)
	assert.Contains(t, err.Error(), "r1, r2")
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
	assert.Equal(t, []string{`a\,b`, "c"}, splitAlternatives(search.Escape("a,b")+",c"))
}
