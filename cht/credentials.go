package cht

import (
	"context"
	"fmt"
	"net/http"
)

// SetCredential stores secret in CHT's credentials store under key with
// PUT /api/v1/credentials/<key> (CHT 4.0+; the user must be a database
// admin: role "_admin", or from CHT 5.1 role "admin"). Outbound pushes reference it as auth.password_key or
// auth.value_key. Setting the same value again is harmless, so the call
// is retried like a read.
func (c *Client) SetCredential(ctx context.Context, key, secret string) error {
	if key == "" || secret == "" {
		return fmt.Errorf("cht: set credential: key and secret are required")
	}
	_, err := c.do(ctx, request{
		method: http.MethodPut, path: "/api/v1/credentials/" + escapeID(key),
		body: []byte(secret), ctype: "text/plain", retry: true,
	}, nil)
	if err != nil {
		return fmt.Errorf("cht: set credential %q: %w", key, err)
	}
	return nil
}
