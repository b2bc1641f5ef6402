package cht

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// AppSettings returns the app settings (app_settings: contact_types, forms,
// outbound, transitions, ...) as the JSON object GET /api/v1/settings
// answers: the settings document's settings, as stored, without defaults
// (cht-core api/src/services/settings.js get). Any logged-in user may read
// them (api/src/controllers/settings.js get checks only that the user is
// logged in). [ParseContactTypes] reads the contact hierarchy from them. An
// answer that is not a JSON object is a *DecodeError.
func (c *Client) AppSettings(ctx context.Context) ([]byte, error) {
	body, err := c.settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("cht: app settings: %w", err)
	}
	var bad error
	if k := jsonKind(body); k != "object" {
		bad = decodeErr("", "want object, got %s", k)
	} else if !json.Valid(body) {
		bad = decodeErr("", "want object, got invalid JSON")
	}
	if bad != nil {
		return nil, fmt.Errorf("cht: app settings from %s/api/v1/settings: %w", c.baseText, bad)
	}
	return body, nil
}

// settings is the body of GET /api/v1/settings, which AppSettings and
// ContactTypes read.
func (c *Client) settings(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/settings", retry: true}, nil)
	if err != nil {
		return nil, err
	}
	return resp.body, nil
}
