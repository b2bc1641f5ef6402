package push_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/push"
)

// The outbound block makes CHT push what the handler converts: chttest's
// pusher runs relevant_to and the mapping as CHT does (JavaScript over the
// documents of the demo app) and sends the mapped reports and the people,
// whole, and nothing else.
func TestOutboundPushesMappedReportsAndPeople(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{} // type or form → pushes
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Doc struct {
				Type        string `json:"type"`
				Form        string `json:"form"`
				ContactType string `json:"contact_type"`
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		u, pw, _ := r.BasicAuth()
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != push.OutboundPath || u != "cht-outbound" || pw != "pw" {
			got["wrong destination"]++
		}
		switch {
		case p.Doc.Form != "":
			got[p.Doc.Form]++
		case p.Doc.ContactType != "":
			got[p.Doc.ContactType]++
		default:
			got[p.Doc.Type]++
		}
	}))
	defer rcv.Close()
	cht := chttest.NewDemoServer()
	defer cht.Close()
	cht.SetCredential("openhim_cht_to_fhir", "pw")

	oc, err := push.Outbound(rcv.URL+push.OutboundPath, "cht-outbound", "openhim_cht_to_fhir", fhir.DefaultMapping())
	require.NoError(t, err)
	raw, err := oc.AppSettings()
	require.NoError(t, err)
	pushes, err := chttest.OutboundFromSettings(raw, cht.Credential)
	require.NoError(t, err)
	require.Len(t, pushes, 2)
	for _, cfg := range pushes {
		cfg.Server = cht
		p, err := chttest.NewOutboundPusher(cfg)
		require.NoError(t, err)
		_, err = p.Sync(context.Background())
		require.NoError(t, err)
	}
	assert.Positive(t, got["HEIGHT_WEIGHT"], "a mapped form: %v", got)
	assert.Positive(t, got["person"], "people: %v", got)
	for k := range got {
		if _, mapped := fhir.DefaultMapping().Form(k); k != "person" && !mapped {
			t.Errorf("pushed %q, which the handler does not convert (%v)", k, got)
		}
	}

	_, err = push.Outbound("openhim:5000", "u", "k", fhir.DefaultMapping())
	require.ErrorContains(t, err, "http(s) URL")
}
