package openhim_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// TestUpdateTransactionAsync runs the async pattern against the fake core:
// the mediator answers 202 "Processing", then completes the transaction
// with PUT /transactions/:id (retrying a transient 503).
func TestUpdateTransactionAsync(t *testing.T) {
	srv := openhimtest.NewServer(openhimtest.Config{})
	defer srv.Close()
	c := fakeLcClient(t, srv, openhim.Config{})
	ctx := context.Background()
	txIDs := make(chan string, 1)
	med := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		txIDs <- r.Header.Get("X-OpenHIM-TransactionID")
		w.Header().Set("Content-Type", "application/json+openhim")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"status":"Processing","response":{"status":202,"headers":{},"body":"accepted","timestamp":%q}}`,
			time.Now().UTC().Format(time.RFC3339Nano))
	}))
	defer med.Close()
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(med.URL, "http://"))
	port, _ := strconv.Atoi(portStr)
	channel := map[string]any{"name": "async", "urlPattern": "^/async$", "authType": "public", "type": "http", "methods": []string{"POST"},
		"routes": []map[string]any{{"name": "m", "host": "127.0.0.1", "port": port, "primary": true}}}
	if err := c.Do(ctx, http.MethodPost, "/channels", channel, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.RouterURL+"/async", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var txID string
	select {
	case txID = <-txIDs:
	case <-time.After(5 * time.Second):
		t.Fatal("request not routed")
	}
	if txID == "" {
		t.Fatal("no X-OpenHIM-TransactionID")
	}
	srv.FailNext(1, http.StatusServiceUnavailable)
	update := map[string]any{"status": "Successful", "response": map[string]any{"status": 200, "headers": map[string]any{},
		"body": "done", "timestamp": time.Now().UTC()}}
	if err := c.UpdateTransaction(ctx, txID, update); err != nil {
		t.Fatal(err)
	}
	tx, ok := srv.Transaction(txID)
	if !ok || tx.Status != "Successful" {
		t.Fatalf("transaction = %+v (found %v)", tx, ok)
	}
}
