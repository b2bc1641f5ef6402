package backfill_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/backfill"
)

// countingWriter records the bundles written and the most written at once.
type countingWriter struct {
	mu       sync.Mutex
	inFlight int
	max      int
	bundles  []string
}

func (w *countingWriter) WriteBundle(_ context.Context, _ string, b []byte) error {
	w.mu.Lock()
	w.inFlight++
	w.max = max(w.max, w.inFlight)
	w.bundles = append(w.bundles, string(b))
	w.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // long enough for other workers to start
	w.mu.Lock()
	w.inFlight--
	w.mu.Unlock()
	return nil
}

// runOn runs the backfill of chtSrv with conv and Workers workers into a
// countingWriter, logging to the returned buffer.
func runOn(t *testing.T, chtSrv *chttest.Server, conv *fhir.Converter, workers int) (*backfill.Summary, *countingWriter, *bytes.Buffer) {
	t.Helper()
	client, err := cht.New(cht.Config{URL: chtSrv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	var logs bytes.Buffer
	w := &countingWriter{}
	sum, err := backfill.Run(context.Background(), backfill.Config{CHT: client, Converter: conv, Writer: w,
		CheckpointFile: filepath.Join(t.TempDir(), "checkpoint.json"), BatchSize: 10, Workers: workers, PageSize: 50,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	return sum, w, &logs
}

func demoConverter(t *testing.T, chtSrv *chttest.Server, configure func(*fhir.Config)) *fhir.Converter {
	t.Helper()
	cfg := fhir.Config{ContactTypes: chttest.DemoTypes(), InstanceURL: chtSrv.URL, Mapping: fhir.DefaultMapping()}
	if configure != nil {
		configure(&cfg)
	}
	conv, err := fhir.New(cfg)
	require.NoError(t, err)
	return conv
}

// Messages are data_record documents without a form: an SMS that matched
// no form (cht-core api/src/services/records.js getDataRecord leaves form
// undefined) and a message sent from CHT's Messages tab
// (webapp/src/ts/services/send-message.service.ts: form null,
// kujua_message true). They are skipped, not failed: a deployment with SMS
// has thousands, and counting them as failures made every sync exit 1.
func TestMessagesAreSkipped(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	require.NoError(t, chtSrv.PutDocs(
		map[string]any{"_id": "sms-in", "type": "data_record", "from": "+254712345679", "reported_date": 1,
			"sms_message": map[string]any{"message": "hello", "from": "+254712345679"}},
		map[string]any{"_id": "sms-out", "type": "data_record", "form": nil, "kujua_message": true, "reported_date": 2,
			"tasks": []any{map[string]any{"messages": []any{map[string]any{"to": "+254712345679", "message": "hi"}}}}},
	))
	sum, _, _ := runOn(t, chtSrv, demoConverter(t, chtSrv, nil), 2)
	assert.Equal(t, int64(2), sum.Skipped["no form (a message)"], "skipped %v", sum.Skipped)
	assert.Zero(t, sum.Failed, "failures %v", sum.Failures)
}

// A lenient field's value that cannot be converted is left out of FHIR and
// logged as a warning naming the document and the field, never the value.
func TestLenientWarningsAreLogged(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	_, err := chtSrv.PutDoc(map[string]any{"_id": "bad-dob", "type": "person", "name": "Bad Dob",
		"date_of_birth": "1990-13-45", "parent": map[string]any{"_id": chttest.DemoHouseholdID}})
	require.NoError(t, err)
	conv := demoConverter(t, chtSrv, func(c *fhir.Config) {
		m := fhir.DefaultMapping()
		m.Contacts.Lenient = []string{"date_of_birth"}
		c.Mapping = m
	})
	sum, w, logs := runOn(t, chtSrv, conv, 2)
	assert.Zero(t, sum.Failed, "failures %v", sum.Failures)
	warned := lenientWarnings(logs.String())
	require.Len(t, warned, 1, "%s", logs)
	assert.Contains(t, warned[0], "doc=bad-dob")
	assert.Contains(t, warned[0], "field=date_of_birth")
	assert.NotContains(t, logs.String(), "1990-13-45", "the value is logged")
	assert.NotContains(t, strings.Join(w.bundles, ""), "1990-13-45", "the value reached FHIR")
}

// With a conditional write strategy the bundles are written one at a time:
// the documents of a feed share resources (a CHW, their places), and two
// conditional writes of the same new resource in parallel can both create
// it on many FHIR servers.
func TestConditionalStrategiesWriteOneBundleAtATime(t *testing.T) {
	tests := []struct {
		strategy fhir.WriteStrategy
		parallel bool // more than one bundle in flight at once
	}{
		{fhir.WritePut, true},
		{fhir.WriteConditionalUpdate, false},
		{fhir.WriteConditionalCreate, false},
	}
	for _, tt := range tests {
		t.Run(tt.strategy.String(), func(t *testing.T) {
			chtSrv := chttest.NewDemoServer()
			t.Cleanup(chtSrv.Close)
			_, err := chtSrv.SeedSynthetic(chttest.Synthetic{Households: 30, PeoplePerHousehold: 3, ReportsPerPerson: 2, Seed: 1})
			require.NoError(t, err)
			conv := demoConverter(t, chtSrv, func(c *fhir.Config) { c.Strategy = tt.strategy })
			sum, w, _ := runOn(t, chtSrv, conv, 4)
			assert.Equal(t, sum.Docs, sum.Converted+sum.SkippedTotal(), "failures %v", sum.Failures)
			if tt.parallel {
				assert.Greater(t, w.max, 1, "PUT writes in parallel")
			} else {
				assert.Equal(t, 1, w.max, "bundles in flight at once")
			}
		})
	}
}

// A document whose hydrated copy cannot be read (nested deeper than the
// decoder allows) fails alone, under its own id; the rest of its page is
// written and the sync goes on past it.
func TestUnreadableDocumentFailsAlone(t *testing.T) {
	chtSrv := chttest.NewDemoServer()
	t.Cleanup(chtSrv.Close)
	deep := map[string]any{}
	for range 70 {
		deep = map[string]any{"x": deep}
	}
	_, err := chtSrv.PutDoc(map[string]any{"_id": "too-deep", "type": "person", "name": "Deep", "x": deep,
		"parent": map[string]any{"_id": chttest.DemoHouseholdID}})
	require.NoError(t, err)
	sum, _, _ := runOn(t, chtSrv, demoConverter(t, chtSrv, nil), 2)
	require.Equal(t, int64(1), sum.Failed, "failures %v", sum.Failures)
	assert.Equal(t, "too-deep", sum.Failures[0].DocID)
	assert.Contains(t, sum.Failures[0].Reason, "nested too deeply")
	assert.Equal(t, sum.Docs, sum.Converted+sum.Failed+sum.SkippedTotal())
	assert.Equal(t, int64(len(chtSrv.Docs())), sum.Docs)
}

// TestMembersThatAreNotValid: a member that is not valid where the rest of
// the document is (a *cht.DecodeError with Member set: here a phone CHT
// stored as a number, which shared-libs/contacts/src/people.js
// validatePerson lets through) is refused by the conversion as any
// unusable value, naming it, or left out with a warning when its field is
// lenient, as fhir/push does; a member the conversion never writes (a
// NUL in notes) does not stop the document. A copy that cannot be decoded
// at all still fails (TestUnreadableDocumentFailsAlone).
func TestMembersThatAreNotValid(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		t.Run(fmt.Sprintf("lenient %v", lenient), func(t *testing.T) {
			chtSrv := chttest.NewDemoServer()
			t.Cleanup(chtSrv.Close)
			parent := map[string]any{"_id": chttest.DemoHouseholdID}
			require.NoError(t, chtSrv.PutDocs(
				map[string]any{"_id": "num-phone", "type": "person", "name": "Numeric Phone", "phone": 254712345678, "parent": parent},
				map[string]any{"_id": "nul-notes", "type": "person", "name": "Nul Notes", "notes": "x\u0000y", "parent": parent},
			))
			conv := demoConverter(t, chtSrv, func(c *fhir.Config) {
				if lenient {
					m := fhir.DefaultMapping()
					m.Contacts.Lenient = []string{"phone"}
					c.Mapping = m
				}
			})
			sum, w, logs := runOn(t, chtSrv, conv, 2)
			bundles := strings.Join(w.bundles, "")
			assert.Contains(t, bundles, "Nul Notes", "a member never written stops nothing")
			assert.NotContains(t, logs.String(), "254712345678", "the log holds the value")
			if !lenient {
				require.Equal(t, int64(1), sum.Failed, "failures %v", sum.Failures)
				assert.Equal(t, "num-phone", sum.Failures[0].DocID)
				assert.Contains(t, sum.Failures[0].Reason, `field "phone"`)
				assert.NotContains(t, bundles, "Numeric Phone")
				return
			}
			assert.Zero(t, sum.Failed, "failures %v", sum.Failures)
			assert.Contains(t, bundles, "Numeric Phone", "the person reached FHIR")
			warned := lenientWarnings(logs.String())
			require.Len(t, warned, 1, "%s", logs)
			assert.Contains(t, warned[0], "doc=num-phone")
			assert.Contains(t, warned[0], "field=phone")
		})
	}
}

// lenientWarnings returns the lines of logs that warn of a value left out.
func lenientWarnings(logs string) []string {
	var warned []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "lenient field") {
			warned = append(warned, line)
		}
	}
	return warned
}
