package openhim_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
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

// TestUpdateUnknownTransaction: core's src/api/transactions.js,
// updateTransaction (v4.0.5, v8.5.0) answers an unknown id with 500 "Could
// not update transaction via the API: TypeError: Cannot read property
// 'body' of null" (findOne returns null; calculateTransactionBodiesByteLength
// or, for an update with an error, transaction.channelID throws inside the
// try). The client does not retry it and reports ErrNotFound; a plain 500
// is still retried.
func TestUpdateUnknownTransaction(t *testing.T) {
	tests := []struct {
		name   string
		update map[string]any
	}{
		{name: "status", update: map[string]any{"status": "Successful"}},
		{name: "with an error (hasError)", update: map[string]any{"status": "Failed", "error": map[string]any{"message": "x"}}},
	}
	for _, v := range []openhimtest.Version{openhimtest.Version4, openhimtest.Version8} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("v%d/%s", v, tt.name), func(t *testing.T) {
				srv := openhimtest.NewServer(openhimtest.Config{Version: v})
				defer srv.Close()
				var puts atomic.Int32
				hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					resp, err := srv.Client().Transport.RoundTrip(r)
					if err == nil && r.Method == http.MethodPut && resp.StatusCode == http.StatusInternalServerError {
						puts.Add(1)
					}
					return resp, err
				})}
				c := fakeLcClient(t, srv, openhim.Config{CoreVersion: int(v), HTTPClient: hc, MaxRetries: 3})
				err := c.UpdateTransaction(context.Background(), "0123456789abcdef01234567", tt.update)
				if !errors.Is(err, openhim.ErrNotFound) {
					t.Errorf("err = %v; want ErrNotFound", err)
				}
				var api *openhim.APIError
				if !errors.As(err, &api) || api.StatusCode != http.StatusInternalServerError {
					t.Errorf("err = %v; want core's 500 as an *APIError", err)
				}
				if n := puts.Load(); n != 1 {
					t.Errorf("core answered the PUT 500 %d times; that answer to an unknown id is final", n)
				}
			})
		}
	}
	t.Run("other 500 is retried", func(t *testing.T) {
		srv := openhimtest.NewServer(openhimtest.Config{})
		defer srv.Close()
		c := fakeLcClient(t, srv, openhim.Config{MaxRetries: 2})
		srv.FailNext(3, http.StatusInternalServerError)
		err := c.UpdateTransaction(context.Background(), "0123456789abcdef01234567", map[string]any{"status": "Successful"})
		if errors.Is(err, openhim.ErrNotFound) || !errors.Is(err, openhim.ErrServer) {
			t.Errorf("err = %v; want a plain ErrServer", err)
		}
	})
}
