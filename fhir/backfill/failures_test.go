package backfill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
)

// typedConverter converts the demo hierarchy plus the extra place types.
func typedConverter(t *testing.T, e *env, extra ...string) *fhir.Converter {
	t.Helper()
	ct := append([]chttest.ContactType(nil), chttest.DemoContactTypes...)
	for _, id := range extra {
		ct = append(ct, chttest.ContactType{ID: id})
	}
	settings, err := json.Marshal(map[string]any{"contact_types": ct})
	require.NoError(t, err)
	types, err := cht.ParseContactTypes(settings)
	require.NoError(t, err)
	conv, err := fhir.New(fhir.Config{ContactTypes: types, InstanceURL: e.cht.URL, Mapping: fhir.DefaultMapping()})
	require.NoError(t, err)
	return conv
}

// places puts n top-level places of contact type typ, ids prefix-0...
func places(t *testing.T, e *env, typ, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		ids = append(ids, id)
		require.NoError(t, e.cht.PutDocs(map[string]any{"_id": id, "type": "contact", "contact_type": typ, "name": "Place " + id}))
	}
	return ids
}

func failedIDs(fs []backfill.Failure) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.DocID)
	}
	return ids
}

// The checkpoint names the first MaxFailures failed documents; the list
// beside it names every one, with its reason.
func TestEveryFailureIsListed(t *testing.T) {
	e := newEnv(t, 1)
	bad := places(t, e, "clinic_annex", "annex", backfill.MaxFailures+20)
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.EqualValues(t, len(bad), sum.Failed)
	assert.Len(t, sum.Failures, backfill.MaxFailures)
	listed, err := backfill.ReadFailures(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.ElementsMatch(t, bad, failedIDs(listed))
	for _, f := range listed {
		assert.Contains(t, f.Reason, `doc "`+f.DocID+`" field "contact_type": not a contact type of the app`)
	}
	// A sync from the beginning starts a new list.
	require.NoError(t, os.Remove(e.cfg.CheckpointFile))
	e.cfg.Converter = typedConverter(t, e, "clinic_annex")
	sum, err = backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.Zero(t, sum.Failed)
	listed, err = backfill.ReadFailures(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.Empty(t, listed)
}

// After a fix, Retry writes the failed documents without reading the feed
// again: those it writes leave the list, those that fail again stay with
// their reason, and one deleted in CHT meanwhile is skipped.
func TestRetrySyncsTheFailedDocumentsAgain(t *testing.T) {
	e := newEnv(t, 1)
	fixed := places(t, e, "clinic_annex", "annex", 25)
	still := places(t, e, "mobile_unit", "unit", 3)
	gone := places(t, e, "clinic_annex", "gone", 1)
	e.cfg.BatchSize = 7 // the retry spans several batches
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	require.EqualValues(t, 29, sum.Failed)
	before := sum.Checkpoint
	require.NoError(t, e.cht.DeleteDoc(gone[0]))

	// The fix: the app's hierarchy, as CHT now configures it, has the type.
	e.cfg.Converter = typedConverter(t, e, "clinic_annex")
	changes := 0
	for _, r := range e.cht.Requests() {
		if strings.HasSuffix(r.Path, "/_changes") {
			changes++
		}
	}
	sum, err = backfill.Retry(context.Background(), e.cfg)
	require.NoError(t, err)
	after := 0
	for _, r := range e.cht.Requests() {
		if strings.HasSuffix(r.Path, "/_changes") {
			after++
		}
	}
	assert.Equal(t, changes, after, "Retry reads no feed")

	assert.EqualValues(t, 29, sum.Processed)
	assert.EqualValues(t, len(still), sum.FailedNow)
	assert.EqualValues(t, len(still), sum.Failed)
	assert.ElementsMatch(t, still, failedIDs(sum.Failures))
	assert.Equal(t, before.Converted+int64(len(fixed)), sum.Converted)
	assert.Equal(t, before.Seq, sum.Seq, "the checkpoint keeps its place in the feed")
	assert.Equal(t, before.Skipped["not found"]+1, sum.Skipped["not found"])
	listed, err := backfill.ReadFailures(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.ElementsMatch(t, still, failedIDs(listed))
	cp, err := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.Equal(t, sum.Checkpoint.Failed, cp.Failed)
	// The fixed places are on the FHIR server.
	written := map[string]bool{}
	for _, typ := range []string{"Location", "Organization"} {
		for _, r := range e.fhir.Resources(typ) {
			for _, id := range fixed {
				if strings.Contains(string(r), `"value":"`+id+`"`) {
					written[id] = true
				}
			}
		}
	}
	assert.Len(t, written, len(fixed))

	// Nothing left that a fix could write: a second Retry changes nothing.
	sum, err = backfill.Retry(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.EqualValues(t, len(still), sum.FailedNow)
}

// A crash while failures are appended can cut the last line, which no
// checkpoint counts yet; any other line that is not a failure is an error.
func TestReadFailures(t *testing.T) {
	dir := t.TempDir()
	cp := dir + "/checkpoint.json"
	write := func(s string) {
		require.NoError(t, os.WriteFile(cp+".failures", []byte(s), 0o644))
	}
	none, err := backfill.ReadFailures(cp)
	require.NoError(t, err)
	assert.Empty(t, none, "no file")

	write(`{"docId":"a","reason":"r1"}` + "\n" + `{"docId":"b","reason":"r2"}` + "\n" + `{"docId":"a","reason":"r3"}` + "\n" + `{"docId":"c","rea`)
	got, err := backfill.ReadFailures(cp)
	require.NoError(t, err)
	assert.Equal(t, []backfill.Failure{{DocID: "a", Reason: "r3"}, {DocID: "b", Reason: "r2"}}, got)

	write(`{"docId":"a","reason":"r1"}` + "\n" + `garbage` + "\n" + `{"docId":"b","reason":"r2"}` + "\n")
	_, err = backfill.ReadFailures(cp)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2")
}

// A failure list edited by hand is read as written: a line that is not a
// failure, the last one included when it ends with its newline (no crash
// cuts there), is an error naming the file, the line and the field,
// never left out (Retry would skip it); a last line without its newline
// that is a whole failure is listed.
func TestReadFailuresOfAHandEditedList(t *testing.T) {
	dir := t.TempDir()
	cp := filepath.Join(dir, "checkpoint.json")
	a, b := `{"docId":"a","reason":"r1"}`, `{"docId":"b","reason":"r2"}`
	tests := []struct {
		name, content string
		want          []string // the ids listed, or nil for an error
		err           string
	}{
		{"last line not a failure", a + "\n" + `{"docId":"b","rea` + "\n", nil, `line 2 is not a failure`},
		{"last line without docId", a + "\n" + `{"id":"b","reason":"r2"}` + "\n", nil, `line 2 is not a failure ("{\"id\":\"b\",\"reason\":\"r2\"}"): "docId" is missing or empty`},
		{"empty docId", `{"docId":"","reason":"r"}` + "\n" + a + "\n", nil, `line 1 is not a failure`},
		{"null line", "null\n" + a + "\n", nil, `"docId" is missing or empty`},
		{"reason of another type", `{"docId":"a","reason":5}` + "\n", nil, `line 1 is not a failure`},
		{"last line without its newline", a + "\n" + b, []string{"a", "b"}, ""},
		{"only line without its newline", a, []string{"a"}, ""},
		{"cut last line", a + "\n" + `{"docId":"b"`, []string{"a"}, ""},
		{"blank lines at the end", a + "\n\n\n", []string{"a"}, ""},
		{"blank lines between", a + "\n\n \t\n" + b + "\n", []string{"a", "b"}, ""},
		{"windows line ends", a + "\r\n" + b + "\r\n", []string{"a", "b"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(cp+".failures", []byte(tt.content), 0o644))
			got, err := backfill.ReadFailures(cp)
			if tt.want == nil {
				require.Error(t, err, "read as %v", got)
				assert.Contains(t, err.Error(), cp+".failures")
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, failedIDs(got))
		})
	}
}

// A list a resumed Run appends to stays readable. A crash can cut it in
// the middle of its last line (no checkpoint counts that failure yet): the
// Run cuts it back to its last whole line before it appends. A list edited
// by hand may end with a last line written without its newline, which is a
// failure, not a cut line (the Run ends it with its newline, so it stays
// listed and the next failure starts a line of its own), or with blank
// lines, which the appended lines then follow, and which list nothing.
func TestResumeAfterACutOrEditedList(t *testing.T) {
	tests := []struct {
		name, added string
		want        []string
	}{
		{"a line cut by a crash", `{"docId":"annex-9","rea`, nil},
		{"last line without its newline", `{"docId":"by-hand","reason":"added by hand"}`, []string{"by-hand"}},
		{"blank lines at the end", "\n \n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 1)
			places(t, e, "clinic_annex", "annex", 2)
			_, err := backfill.Run(context.Background(), e.cfg)
			require.NoError(t, err)
			f, err := os.OpenFile(e.cfg.CheckpointFile+".failures", os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.WriteString(tt.added)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			places(t, e, "clinic_annex", "later", 1)
			_, err = backfill.Run(context.Background(), e.cfg)
			require.NoError(t, err)
			got, err := backfill.ReadFailures(e.cfg.CheckpointFile)
			require.NoError(t, err)
			assert.ElementsMatch(t, append([]string{"annex-000", "annex-001", "later-000"}, tt.want...), failedIDs(got))
		})
	}
}

// A checkpoint written before the list existed names its first failures:
// a resumed Run starts the list with them, and Retry retries them (also
// without a Run in between); the count keeps what the list cannot name.
func TestFailuresOfAnOlderCheckpoint(t *testing.T) {
	for _, resume := range []bool{true, false} {
		t.Run(map[bool]string{true: "resumed", false: "retried at once"}[resume], func(t *testing.T) {
			e := newEnv(t, 1)
			still := places(t, e, "mobile_unit", "unit", 3)
			fixed := places(t, e, "clinic_annex", "annex", 2)
			_, err := backfill.Run(context.Background(), e.cfg)
			require.NoError(t, err)
			require.NoError(t, os.Remove(e.cfg.CheckpointFile+".failures")) // as an earlier version left it
			cp, err := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
			require.NoError(t, err)
			cp.Failed += 7 // failures past the checkpoint's MaxFailures names
			require.NoError(t, backfill.WriteCheckpoint(e.cfg.CheckpointFile, cp))
			if resume {
				places(t, e, "mobile_unit", "later", 1)
				still = append(still, "later-000")
				sum, err := backfill.Run(context.Background(), e.cfg)
				require.NoError(t, err)
				listed, err := backfill.ReadFailures(e.cfg.CheckpointFile)
				require.NoError(t, err)
				assert.ElementsMatch(t, append(append([]string{}, still...), fixed...), failedIDs(listed))
				require.EqualValues(t, 13, sum.Failed)
			}
			e.cfg.Converter = typedConverter(t, e, "clinic_annex")
			sum, err := backfill.Retry(context.Background(), e.cfg)
			require.NoError(t, err)
			assert.ElementsMatch(t, still, failedIDs(sum.Failures))
			assert.EqualValues(t, len(still)+7, sum.Failed, "the failures the list cannot name stay counted")
		})
	}
}

// A document CHT fails to hydrate (its hydrate API answers 500 for every
// request that names it: api/src/controllers/hydration.js) fails alone,
// listed with its reason, and the sync goes on past it; CHT failing as a
// whole (every hydrate a 500, as when its CouchDB is down, or a 503) stops
// the run before the page, as any error of CHT does, and no document is
// listed for it.
func TestDocumentCHTFailsToHydrate(t *testing.T) {
	const hydrate = "/api/v1/hydrate"
	tests := []struct {
		name    string
		fault   func(bad string) chttest.Fault
		wantErr bool
	}{
		{"one document fails alone", func(bad string) chttest.Fault {
			return chttest.Fault{DocID: bad, Status: http.StatusInternalServerError}
		}, false},
		{"CHT failing stops the run", func(string) chttest.Fault {
			return chttest.Fault{Path: hydrate, Status: http.StatusInternalServerError}
		}, true},
		{"CHT unavailable stops the run", func(string) chttest.Fault {
			return chttest.Fault{Path: hydrate, Status: http.StatusServiceUnavailable}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 5)
			feed, err := e.cfg.CHT.Docs.Changes(context.Background(), cht.ChangesOptions{})
			require.NoError(t, err)
			require.Greater(t, len(feed.Results), e.cfg.PageSize, "the feed spans pages")
			bad := feed.Results[10].ID // in the first page
			e.cht.InjectFault(tt.fault(bad))

			sum, err := backfill.Run(context.Background(), e.cfg)
			listed, lerr := backfill.ReadFailures(e.cfg.CheckpointFile)
			require.NoError(t, lerr)
			cp, cerr := backfill.ReadCheckpoint(e.cfg.CheckpointFile)
			require.NoError(t, cerr)
			if tt.wantErr {
				require.Error(t, err)
				assert.Zero(t, sum.Failed)
				assert.Empty(t, listed)
				assert.Empty(t, cp.Seq, "the checkpoint stays before the page")
				return
			}
			require.NoError(t, err)
			require.EqualValues(t, 1, sum.Failed, "failures %v", sum.Failures)
			assert.Equal(t, bad, sum.Failures[0].DocID)
			assert.Contains(t, sum.Failures[0].Reason, "500 Internal Server Error: Server error")
			assert.Equal(t, []string{bad}, failedIDs(listed))
			assert.EqualValues(t, e.docs, sum.Docs)
			assert.Equal(t, sum.Docs, sum.Converted+sum.Failed+sum.SkippedTotal())
			assert.Equal(t, feed.LastSeq, cp.Seq, "the checkpoint is past every document")
		})
	}
}

// Retry keeps listed a document CHT still fails to hydrate and writes the
// others; it writes it once CHT hydrates it. CHT failing as a whole stops
// Retry, which leaves the list as it was.
func TestRetryOfADocumentCHTFailsToHydrate(t *testing.T) {
	e := newEnv(t, 1)
	fixed := places(t, e, "clinic_annex", "annex", 3)
	bad := fixed[1]
	removeDocFault := e.cht.InjectFault(chttest.Fault{DocID: bad, Status: http.StatusInternalServerError})
	sum, err := backfill.Run(context.Background(), e.cfg)
	require.NoError(t, err)
	require.ElementsMatch(t, fixed, failedIDs(sum.Failures))
	e.cfg.Converter = typedConverter(t, e, "clinic_annex")

	removeOutage := e.cht.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: http.StatusInternalServerError})
	_, err = backfill.Retry(context.Background(), e.cfg)
	require.Error(t, err, "CHT fails to hydrate anything")
	listed, err := backfill.ReadFailures(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.ElementsMatch(t, fixed, failedIDs(listed), "the list stays as it was")
	removeOutage()

	sum, err = backfill.Retry(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.EqualValues(t, 1, sum.FailedNow)
	assert.Equal(t, []string{bad}, failedIDs(sum.Failures))
	assert.Contains(t, sum.Failures[0].Reason, "500 Internal Server Error: Server error")
	listed, err = backfill.ReadFailures(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.Equal(t, []string{bad}, failedIDs(listed))

	removeDocFault()
	sum, err = backfill.Retry(context.Background(), e.cfg)
	require.NoError(t, err)
	assert.Zero(t, sum.FailedNow)
	assert.Zero(t, sum.Failed)
	listed, err = backfill.ReadFailures(e.cfg.CheckpointFile)
	require.NoError(t, err)
	assert.Empty(t, listed)
}
