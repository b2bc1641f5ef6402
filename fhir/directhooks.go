package fhir

import (
	"context"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/direct"
)

// The buffer-reusing paths of fhir/push; see package direct.
func init() {
	direct.PostTransaction = func(client any, ctx context.Context, bundle []byte, n int, done func()) error {
		return client.(*Client).transactionDone(ctx, bundle, n, done)
	}
	direct.Outlive = outlive
	direct.AppendTransaction = func(dst []byte, tx any) ([]byte, error) {
		return appendJSON(dst, tx.(*Transaction))
	}
	direct.Release = func(tx any) { tx.(*Transaction).release() }
}
