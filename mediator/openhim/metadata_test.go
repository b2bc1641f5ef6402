package openhim_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

func TestMetadataFor(t *testing.T) {
	a := openhim.Definition{URN: "urn:a", Version: "1.0.0", Name: "A",
		DefaultChannelConfig: []openhim.Channel{{Name: "A1", URLPattern: "^/a$"}, {Name: "A2", URLPattern: "^/a2$"}}}
	b := openhim.Definition{URN: "urn:b", Version: "2.0.0", Name: "B",
		DefaultChannelConfig: []openhim.Channel{{Name: "B1", URLPattern: "^/b$"}}}

	data, err := json.Marshal(openhim.MetadataFor(a, b))
	require.NoError(t, err)
	var doc map[string][]map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	require.Len(t, doc, 2, "only core's two collections: %s", data)
	var urns, channels []any
	for _, m := range doc["Mediators"] {
		urns = append(urns, m["urn"])
	}
	for _, c := range doc["Channels"] {
		channels = append(channels, c["name"])
	}
	assert.Equal(t, []any{"urn:a", "urn:b"}, urns)
	assert.Equal(t, []any{"A1", "A2", "B1"}, channels, "every default channel, in order")
}

// TestMetadataForWithoutChannels: a mediator without default channels is
// imported alone. Core imports every member of the document and answers
// 500 to a null one (src/api/metadata.js, handleMetadataPost:
// Array.from(insertObject[key])), which would fail the mediator's import.
func TestMetadataForWithoutChannels(t *testing.T) {
	data, err := json.Marshal(openhim.MetadataFor(openhim.Definition{URN: "urn:a", Version: "1.0.0", Name: "A"}))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	assert.NotContains(t, doc, "Channels", "%s", data)
	assert.IsType(t, []any{}, doc["Mediators"], "%s", data)
}
