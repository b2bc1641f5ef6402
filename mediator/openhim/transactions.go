package openhim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// UpdateTransaction updates a transaction in core (PUT /transactions/:id),
// typically to finish an asynchronous request after the mediator answered
// 202: id is the request's X-OpenHIM-TransactionID, update a partial
// transaction (status, response, orchestrations, properties, error) that
// marshals to a JSON object. Network errors and 5xx are retried with
// backoff (the update is a plain overwrite, so retrying is safe); an
// unknown id gives an error matching [ErrNotFound]. Core requires admin
// rights (channel-manage-* with RBAC).
func (c *Client) UpdateTransaction(ctx context.Context, id string, update any) error {
	if id == "" {
		return &ValidationError{Field: "id", Reason: "transaction id is required"}
	}
	if update == nil {
		return errors.New("openhim: UpdateTransaction: update is nil")
	}
	return c.Do(ctx, http.MethodPut, "/transactions/"+url.PathEscape(id), update, nil)
}
