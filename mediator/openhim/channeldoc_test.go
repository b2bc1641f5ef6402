package openhim

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Core stores a route's cert and an alert's groups as ObjectIds (mongoose
// casts the hex string, src/model/channels.js: cert and groups are
// Schema.Types.ObjectId) and answers them lower-cased. A definition that
// writes them in upper case must still equal its channel as core returns
// it, or the channel would be reported (or put back) at every heartbeat.
func TestChannelDocObjectIDsAsCoreStoresThem(t *testing.T) {
	const certID, groupID = "5F3E2A1B0C9D8E7F6A5B4C3D", "AA00bb11CC22dd33EE44ff55"
	ch := Channel{Name: "C", URLPattern: "^/c$", Routes: []Route{{Name: "R", Host: "h", Port: 1, Primary: true, Secured: true, Cert: certID}},
		Alerts: []Alert{{Condition: "status", Status: "500", Groups: []string{groupID}}}}
	doc := channelDoc(ch)

	var stored map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{"_id":"x","name":"C","urlPattern":"^/c$","status":"enabled",
		"routes":[{"_id":"r","name":"R","host":"h","port":1,"primary":true,"secured":true,"cert":"5f3e2a1b0c9d8e7f6a5b4c3d"}],
		"alerts":[{"condition":"status","status":"500","groups":["aa00bb11cc22dd33ee44ff55"],"users":[]}]}`), &stored))
	assert.True(t, subsetOf(doc, stored), "the definition equals core's copy: %v", doc)
	assert.Equal(t, certID, ch.Routes[0].Cert, "the caller's definition is not modified")
	assert.Equal(t, groupID, ch.Alerts[0].Groups[0])

	d := Definition{URN: "urn:x", Version: "1.0.0", Name: "X", Endpoints: []Route{{Name: "R", Host: "h", Port: 1, Primary: true}},
		DefaultChannelConfig: []Channel{{Name: "C", URLPattern: "^/c$", Routes: []Route{{Name: "R", Host: "h", Port: 1, Primary: true}},
			Alerts: []Alert{{Condition: "status", Groups: []string{"admins"}}}}}}
	assert.ErrorContains(t, d.Validate(4), "alerts[0].groups[0]", "a group is an ObjectId, which core casts or refuses")
}
