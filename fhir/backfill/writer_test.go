package backfill

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// The FHIR client's answer decides what Run does with a bundle: commit it,
// split it (permanent: the content was rejected), stop (fatal: the
// configuration is wrong) or retry it.
func TestWriteOutcomes(t *testing.T) {
	const posted = `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient/a"}},` +
		`{"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient/b"}}]}`
	entry := func(status string) string { return `{"response":{"status":"` + status + `"}}` }
	answer := func(entries ...string) string {
		s := `{"resourceType":"Bundle","type":"transaction-response","entry":[`
		for i, e := range entries {
			if i > 0 {
				s += ","
			}
			s += e
		}
		return s + `]}`
	}
	tests := []struct {
		name             string
		status           int
		answer           string
		wantErr          bool
		permanent, fatal bool
	}{
		{"all entries 2xx", 200, answer(entry("201 Created"), entry("200 OK")), false, false, false},
		{"entry rejected", 200, answer(entry("201 Created"), entry("400 Bad Request")), true, true, false},
		{"entry conflict is retried", 200, answer(entry("201 Created"), entry("412 Precondition Failed")), true, false, false},
		{"entry failed on the server", 200, answer(entry("201 Created"), entry("500 Internal Server Error")), true, false, false},
		{"fewer entries", 200, answer(entry("201 Created")), true, false, false},
		{"entry without response", 200, answer(entry("201 Created"), `{}`), true, false, false},
		{"not a transaction-response", 200, `{"resourceType":"Bundle","type":"batch-response","entry":[]}`, true, false, false},
		{"bundle rejected", 422, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad"}]}`, true, true, false},
		{"bad credentials", 401, `Unauthorized`, true, false, true},
		{"wrong URL", 404, `Not Found`, true, false, true},
		{"version conflict", 409, ``, true, false, false},
		{"server error", 500, ``, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/fhir+json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.answer)
			}))
			defer srv.Close()
			fc, err := fhir.NewClient(fhir.ClientConfig{BaseURL: srv.URL, MaxRetries: -1})
			require.NoError(t, err)
			err = clientWriter{fc}.WriteBundle(context.Background(), "batch-000001", []byte(posted))
			if !tt.wantErr {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.permanent, isPermanent(err), "permanent: %v", err)
			assert.Equal(t, tt.fatal, isFatal(err), "fatal: %v", err)
		})
	}
}
