package backfill

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOrderWaitsOnlyForOtherContent: a batch waits for the older batches
// not yet done that carry one of its resources with other content, and
// for no other.
func TestOrderWaitsOnlyForOtherContent(t *testing.T) {
	type step struct {
		batch int64
		res   map[string]string // resource → content
		done  []int64           // batches done before this one enters
		waits []int64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"same content never waits", []step{
			{batch: 0, res: map[string]string{"Location/hc": "a", "Patient/p": "x"}},
			{batch: 1, res: map[string]string{"Location/hc": "a"}},
			{batch: 2, res: map[string]string{"Location/hc": "a", "Patient/q": "y"}},
		}},
		{"other resources never wait", []step{
			{batch: 0, res: map[string]string{"Patient/p": "x"}},
			{batch: 1, res: map[string]string{"Patient/q": "y"}},
		}},
		{"other content waits for the older batch", []step{
			{batch: 0, res: map[string]string{"Patient/p": "old", "Location/hc": "a"}},
			{batch: 1, res: map[string]string{"Location/hc": "a"}},
			{batch: 2, res: map[string]string{"Patient/p": "new", "Location/hc": "a"}, waits: []int64{0}},
		}},
		{"each older batch with other content", []step{
			{batch: 3, res: map[string]string{"Patient/p": "a"}},
			{batch: 4, res: map[string]string{"Patient/p": "b"}, waits: []int64{3}},
			{batch: 5, res: map[string]string{"Patient/p": "a", "Location/l": "c"}, waits: []int64{4}},
			{batch: 6, res: map[string]string{"Patient/p": "c", "Location/l": "d"}, waits: []int64{3, 4, 5}},
		}},
		{"done batches are forgotten", []step{
			{batch: 0, res: map[string]string{"Patient/p": "old"}},
			{batch: 1, res: map[string]string{"Patient/p": "new"}, done: []int64{0}},
			{batch: 2, res: map[string]string{"Patient/p": "newer"}, waits: []int64{1}},
		}},
		{"a batch with nothing to write", []step{
			{batch: 0, res: map[string]string{"Patient/p": "old"}},
			{batch: 1},
			{batch: 2, res: map[string]string{"Patient/p": "new"}, waits: []int64{0}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var waits []int64
			o := newOrder(tt.steps[0].batch, func(batch, older int64) { waits = append(waits, older) })
			// Canceled: a batch that has to wait returns at once.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			for _, s := range tt.steps {
				for _, d := range s.done {
					o.done(d)
				}
				var entries []entryKey
				for _, k := range slices.Sorted(maps.Keys(s.res)) {
					entries = append(entries, entryKey{key: k, entry: []byte(s.res[k])})
				}
				waits = nil
				err := o.enter(ctx, s.batch, entries)
				slices.Sort(waits)
				assert.Equal(t, s.waits, waits, "batch %d", s.batch)
				if len(s.waits) > 0 {
					assert.ErrorIs(t, err, context.Canceled, "batch %d", s.batch)
				} else {
					assert.NoError(t, err, "batch %d", s.batch)
				}
			}
			for _, s := range tt.steps {
				o.done(s.batch)
			}
			assert.Empty(t, o.claims, "resources of done batches")
			assert.Empty(t, o.batches)
		})
	}
}

// TestOrderEntersInBatchOrder: a batch that finished converting first
// enters after the older ones, and waits for the older one with other
// content until it is done.
func TestOrderEntersInBatchOrder(t *testing.T) {
	waiting := make(chan [2]int64, 1)
	o := newOrder(0, func(batch, older int64) { waiting <- [2]int64{batch, older} })
	ctx := context.Background()
	p := func(content string) []entryKey {
		return []entryKey{{key: "Patient/p", entry: []byte(content)}}
	}
	entered := make(chan error)
	go func() { entered <- o.enter(ctx, 1, p("new")) }()
	// Batch 1 cannot enter before batch 0, which then does not wait for it.
	require.NoError(t, o.enter(ctx, 0, p("old")))
	require.Equal(t, [2]int64{1, 0}, <-waiting)
	select {
	case err := <-entered:
		t.Fatalf("batch 1 entered before batch 0 was done: %v", err)
	default:
	}
	o.done(0)
	require.NoError(t, <-entered)
	o.done(1)
}

func TestBundleKeys(t *testing.T) {
	entry := func(url, name string) string {
		return `{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","name":[{"text":"` + name + `"}]},"request":{"method":"PUT","url":"` + url + `"}}`
	}
	tests := []struct {
		name   string
		bundle string
		keys   []string
		same   [][2]int // entries with the same bytes
		err    bool
	}{
		{name: "entries", bundle: `{"type":"transaction","entry":[` + entry("Patient/a", "A") + `,` + entry("Patient/b", "A") + `,` + entry("Patient/a", "A") + `],"resourceType":"Bundle"}`,
			keys: []string{`{"method":"PUT","url":"Patient/a"}`, `{"method":"PUT","url":"Patient/b"}`, `{"method":"PUT","url":"Patient/a"}`},
			same: [][2]int{{0, 2}}},
		{name: "strings with brackets and escapes", bundle: ` { "resourceType" : "Bundle", "entry" : [ ` + entry("Patient/a", `x\"]}{[`) + ` , {"request": {"method":"POST","url":"Patient","ifNoneExist":"identifier=s|\"v\""}, "n": -1.5e3, "t": true, "z": null} ] } `,
			keys: []string{`{"method":"PUT","url":"Patient/a"}`, `{"method":"POST","url":"Patient","ifNoneExist":"identifier=s|\"v\""}`}},
		{name: "escaped backslash before a quote", bundle: `{"entry":[` + entry("Patient/a", `a\\`) + `,` + entry("Patient/b", `\\\"`) + `]}`,
			keys: []string{`{"method":"PUT","url":"Patient/a"}`, `{"method":"PUT","url":"Patient/b"}`}},
		{name: "entry without a request", bundle: `{"entry":[{"fullUrl":"urn:uuid:1","resource":{}}]}`},
		{name: "no entries", bundle: `{"type":"transaction","resourceType":"Bundle"}`},
		{name: "truncated", bundle: `{"entry":[` + entry("Patient/a", "A")[:40], err: true},
		{name: "unterminated string", bundle: `{"entry":[{"request":"x`, err: true},
		{name: "string ending in an escaped quote", bundle: `{"entry":[{"request":"x\"}]}`, err: true},
		{name: "entry not an object", bundle: `{"entry":[1]}`, err: true},
		{name: "not an object", bundle: `["Bundle"]`, err: true},
		{name: "empty", bundle: ``, err: true},
		{name: "entry null or not an array", bundle: `{"entry":null,"a":{"entry":[{"request":{}}]},"entry":{"request":{}}}`},
		{name: "every entry array, the last request of an entry", bundle: `{"entry":[{"request":{}}],"entry":[{"request":{"a":1},"request":{"b":2}}]}`,
			keys: []string{`{}`, `{"b":2}`}},
		{name: "any value as request", bundle: `{"entry":[{"request":null},{"request":"x"},{"request":[1,2]}]}`,
			keys: []string{`null`, `"x"`, `[1,2]`}},
		{name: "white space around entries", bundle: `{"entry":[ {"request":{}} ,` + "\n\t" + `{"request":{}}` + "\r\n" + `]}`,
			keys: []string{`{}`, `{}`}, same: [][2]int{{0, 1}}},
		{name: "trailing data", bundle: `{"entry":[{"request":{}}]} x`, err: true},
		{name: "second object", bundle: `{} {}`, err: true},
		{name: "entry null", bundle: `{"entry":[null]}`, err: true},
		{name: "trailing comma", bundle: `{"entry":[{"request":{}},]}`, err: true},
		{name: "missing comma", bundle: `{"entry":[{"request":{}} {"request":{}}]}`, err: true},
		{name: "double comma", bundle: `{"a":1,,"entry":[]}`, err: true},
		{name: "missing colon", bundle: `{"a" 1}`, err: true},
		{name: "missing value", bundle: `{"a":}`, err: true},
		{name: "unquoted key", bundle: `{a:1}`, err: true},
		{name: "bad literal", bundle: `{"entry":[{"request":tru}]}`, err: true},
		{name: "bad number", bundle: `{"entry":[{"request":01}]}`, err: true},
		{name: "bad escape", bundle: `{"entry":[{"request":"a\qb"}]}`, err: true},
		{name: "short unicode escape", bundle: `{"entry":[{"request":"\u12"}]}`, err: true},
		{name: "control character", bundle: "{\"entry\":[{\"request\":\"a\x01\"}]}", err: true},
		{name: "mismatched brackets", bundle: `{"entry":[{"request":{"a":[}]}]}`, err: true},
		{name: "too deep", bundle: `{"entry":[{"request":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}]}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bundleKeys([]byte(tt.bundle))
			if tt.err {
				assert.True(t, errors.Is(err, errBundleSyntax), "%v", err)
				return
			}
			require.NoError(t, err)
			var keys []string
			for _, k := range got {
				keys = append(keys, k.key)
			}
			assert.Equal(t, tt.keys, keys)
			for i := range got {
				for j := i + 1; j < len(got); j++ {
					assert.Equal(t, slices.Contains(tt.same, [2]int{i, j}), string(got[i].entry) == string(got[j].entry), "entries %d and %d", i, j)
				}
			}
		})
	}
}
