package openhim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// UpdateTransaction updates a transaction in core (PUT /transactions/:id),
// typically to finish an asynchronous request after the mediator answered
// 202: id is the request's X-OpenHIM-TransactionID, update a partial
// transaction (status, response, orchestrations, properties, error) that
// marshals to a JSON object. Network errors and 5xx are retried with
// backoff (the update is a plain overwrite, so retrying is safe). Core
// answers an unknown id with a 500 "Could not update transaction via the
// API: TypeError: ... of null", not a 404; that answer is not retried and
// the error matches [ErrNotFound] (and [ErrServer]). Core requires admin rights
// (channel-manage-* with RBAC).
func (c *Client) UpdateTransaction(ctx context.Context, id string, update any) error {
	if id == "" {
		return &ValidationError{Field: "id", Reason: "transaction id is required"}
	}
	if update == nil {
		return errors.New("openhim: UpdateTransaction: update is nil")
	}
	err := c.Do(ctx, http.MethodPut, "/transactions/"+url.PathEscape(id), update, nil)
	var api *APIError
	if errors.As(err, &api) && isUnknownTransaction(api.StatusCode, api.Message) {
		return &unknownTransactionError{api}
	}
	return err
}

// unknownTransactionPrefix starts core's answer to PUT /transactions/:id
// for an id it has no transaction for.
const unknownTransactionPrefix = "Could not update transaction via the API: TypeError: Cannot read propert"

// isUnknownTransaction recognises core's answer to PUT /transactions/:id
// of an unknown id. Core's src/api/transactions.js, updateTransaction
// (v4.0.5 and v8.5.0) never answers 404: TransactionModelAPI.findOne
// returns null, calculateTransactionBodiesByteLength(null) (or, for an
// update with an error, transaction.channelID) throws a TypeError inside
// the try, and the catch answers 500 "Could not update transaction via the
// API: TypeError: Cannot read property 'body' of null" (Node 12 and older;
// Node 16+ says "Cannot read properties of null (reading 'body')").
// Retrying cannot help.
func isUnknownTransaction(status int, msg string) bool {
	return status == http.StatusInternalServerError && strings.HasPrefix(msg, unknownTransactionPrefix) &&
		strings.Contains(msg, " of null")
}

// unknownTransactionError is core's 500 to the update of an unknown
// transaction; it matches ErrNotFound as well as the *APIError's ErrServer.
type unknownTransactionError struct{ api *APIError }

func (e *unknownTransactionError) Error() string {
	return e.api.Error() + " (core has no transaction with this id)"
}

func (e *unknownTransactionError) Is(target error) bool { return target == ErrNotFound }
func (e *unknownTransactionError) Unwrap() error        { return e.api }
