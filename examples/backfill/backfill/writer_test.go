package backfill_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cht-interop/openhim-mediator-go/examples/backfill/backfill"
	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// A 200 transaction-response is a commit only when it has one 2xx entry per
// posted entry.
func TestFHIRWriterChecksTransactionResponseEntries(t *testing.T) {
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
		name      string
		answer    string
		wantErr   bool
		permanent bool
	}{
		{"all entries 2xx", answer(entry("201 Created"), entry("200 OK")), false, false},
		{"entry rejected", answer(entry("201 Created"), entry("400 Bad Request")), true, true},
		{"entry failed on the server", answer(entry("201 Created"), entry("500 Internal Server Error")), true, false},
		{"fewer entries", answer(entry("201 Created")), true, false},
		{"entry without response", answer(entry("201 Created"), `{}`), true, false},
		{"not a transaction-response", `{"resourceType":"Bundle","type":"batch-response","entry":[]}`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/fhir+json")
				_, _ = w.Write([]byte(tt.answer))
			}))
			defer srv.Close()
			err := (&backfill.FHIRWriter{URL: srv.URL}).WriteBundle(context.Background(), "batch-000001", []byte(posted))
			if !tt.wantErr {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var we *backfill.WriteError
			require.ErrorAs(t, err, &we)
			assert.Equal(t, tt.permanent, we.Permanent(), "permanent: %v", err)
			assert.False(t, we.Fatal(), "fatal: %v", err)
			var te *fhir.TransactionError
			assert.True(t, errors.As(err, &te), "wraps the *fhir.TransactionError: %v", err)
		})
	}
}
