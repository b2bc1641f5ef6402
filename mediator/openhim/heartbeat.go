package openhim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// processStart approximates the process start for the heartbeat uptime.
var processStart = time.Now()

// processUptime returns the process uptime in seconds, the value core
// expects in a heartbeat's uptime (not the host's uptime).
func processUptime() float64 { return time.Since(processStart).Seconds() }

// Heartbeat sends one heartbeat (POST /mediators/:urn/heartbeat) with the
// given uptime in seconds. With wantConfig, core answers with the stored
// config (with unmasked passwords). It is not retried: heartbeats are
// periodic.
//
// Core answers 200 with one of several bodies; Heartbeat maps them to:
//   - an empty body or "OK" (core's answer when the mediator has no
//     config): nil, nil
//   - a JSON object, including {}: the config, nil
//
// An unknown URN (for example deleted in the console) gives an error
// matching [ErrNotFound]: register again.
func (c *Client) Heartbeat(ctx context.Context, urn string, uptime float64, wantConfig bool) (map[string]any, error) {
	body := struct {
		Uptime float64 `json:"uptime"`
		Config bool    `json:"config,omitempty"`
	}{uptime, wantConfig}
	path := mediatorPath(urn) + "/heartbeat"
	resp, err := c.call(ctx, http.MethodPost, path, body, false)
	if err != nil {
		return nil, err
	}
	cfg, err := parseHeartbeatBody(resp.body)
	if err != nil {
		return nil, fmt.Errorf("openhim: POST %s: %w", c.redactedURL(path), err)
	}
	return cfg, nil
}

// parseHeartbeatBody accepts every 200 body core sends: "", "OK", or a
// JSON object (the config).
func parseHeartbeatBody(b []byte) (map[string]any, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.EqualFold(b, []byte("OK")) {
		return nil, nil
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil || cfg == nil {
		return nil, fmt.Errorf("heartbeat response is neither empty, OK nor a JSON object (%d bytes)", len(b))
	}
	return cfg, nil
}
