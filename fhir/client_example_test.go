package fhir_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// A transaction is a success only when the server applied every entry; a
// refusal is a *fhir.ServerError with the server's reason.
func ExampleClient_Transaction() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Observation.status is required"}]}`)
	}))
	defer srv.Close()

	// In a mediator, pass HTTPClient: &http.Client{Transport: mediator.Transport(nil)}
	// so that each call is recorded as an orchestration.
	c, err := fhir.NewClient(fhir.ClientConfig{BaseURL: srv.URL + "/fhir"})
	if err != nil {
		panic(err)
	}
	bundle := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","id":"o1"},"request":{"method":"PUT","url":"Observation/o1"}}]}`)
	err = c.Transaction(context.Background(), bundle)
	var se *fhir.ServerError
	if errors.As(err, &se) {
		fmt.Println(se.StatusCode, se.Reason)
	}
	// Output: 422 Observation.status is required
}
