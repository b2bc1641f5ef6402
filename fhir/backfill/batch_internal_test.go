package backfill

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// TestBatchBundleBuildsSharedResourcesOnce: a batch builds each contact
// resource its documents share once, and its bundle is byte for byte the
// bundle of the documents' whole transactions merged, for batches of
// several sizes, with a document that fails conversion among them.
func TestBatchBundleBuildsSharedResourcesOnce(t *testing.T) {
	srv := chttest.NewDemoServer()
	t.Cleanup(srv.Close)
	_, err := srv.SeedSynthetic(chttest.Synthetic{Households: 6, PeoplePerHousehold: 3, ReportsPerPerson: 2, Seed: 2})
	require.NoError(t, err)
	client, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword})
	require.NoError(t, err)
	settings, err := json.Marshal(map[string]any{"contact_types": chttest.DemoContactTypes})
	require.NoError(t, err)
	types, err := cht.ParseContactTypes(settings)
	require.NoError(t, err)
	conv, err := fhir.New(fhir.Config{ContactTypes: types, InstanceURL: srv.URL, Mapping: fhir.DefaultMapping()})
	require.NoError(t, err)

	var docs []cht.HydratedDoc
	for ch, err := range client.Docs.AllHydrated(context.Background(), cht.ChangesOptions{}) {
		require.NoError(t, err)
		if ch.Hydrated != nil {
			docs = append(docs, *ch.Hydrated)
		}
	}
	require.Greater(t, len(docs), 60)
	// A contact of a type the app does not have fails, after its lineage
	// was planned: the documents converted after it (those before it in
	// the batch) still carry that lineage.
	bad := cht.HydratedDoc{ID: "bad", Doc: json.RawMessage(`{"_id":"bad","_rev":"1-a","type":"contact","contact_type":"nope",
		"parent":` + string(parentOf(t, docs)) + `}`)}
	docs = append(docs, bad)

	for _, size := range []int{2, 9, 25, len(docs)} {
		for from := 0; from < len(docs); from += size {
			batch := docs[from:min(from+size, len(docs))]
			var whole, shared []converted
			entries, sharedEntries := 0, 0
			for i, o := range convertAll(conv, batch) {
				whole1 := convert(conv, &batch[i], nil)
				tx, skip, err := whole1.tx, whole1.skip, whole1.err
				tx2, skip2, err2 := o.tx, o.skip, o.err
				require.Equal(t, err == nil, err2 == nil, "%s: %v / %v", batch[i].ID, err, err2)
				require.Equal(t, skip, skip2)
				if err != nil || skip != "" {
					continue
				}
				whole = append(whole, converted{doc: &batch[i], tx: tx})
				shared = append(shared, converted{doc: &batch[i], tx: tx2})
				entries += tx.Len()
				sharedEntries += tx2.Len()
			}
			if len(whole) == 0 {
				continue
			}
			want, n, err := encode(whole)
			require.NoError(t, err)
			got, n2, err := encode(shared)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got), "batch of %d from %d", size, from)
			require.Equal(t, n, n2)
			// bundleKeys reads the entries encoding/json reads.
			keys, err := bundleKeys(got)
			require.NoError(t, err)
			var bundle struct{ Entry []json.RawMessage }
			require.NoError(t, json.Unmarshal(got, &bundle))
			require.Len(t, keys, len(bundle.Entry))
			for i, raw := range bundle.Entry {
				var en struct{ Request json.RawMessage }
				require.NoError(t, json.Unmarshal(raw, &en))
				require.Equal(t, string(raw), string(keys[i].entry))
				require.Equal(t, string(en.Request), keys[i].key)
			}
			if len(whole) > 9 {
				require.Less(t, n, entries, "documents of a batch share resources")
				require.Less(t, sharedEntries, entries, "shared resources are built once")
			}
		}
	}
}

// parentOf returns the hydrated parent of the first person of docs.
func parentOf(t *testing.T, docs []cht.HydratedDoc) json.RawMessage {
	t.Helper()
	for _, d := range docs {
		if d.Type() != "person" {
			continue
		}
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(d.Doc, &m))
		if p := m["parent"]; len(p) > 0 {
			return p
		}
	}
	t.Fatal("no person")
	return nil
}
