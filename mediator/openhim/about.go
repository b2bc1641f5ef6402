package openhim

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// CoreRelease returns the release of the core the client talks to, as GET
// /about answers it (currentCoreVersion, e.g. "8.5.0"; every core from
// 4.0.5 on serves it to any authenticated user).
func (c *Client) CoreRelease(ctx context.Context) (string, error) {
	var about struct {
		CurrentCoreVersion string `json:"currentCoreVersion"`
	}
	if err := c.Do(ctx, http.MethodGet, "/about", nil, &about); err != nil {
		return "", err
	}
	if strings.TrimSpace(about.CurrentCoreVersion) == "" {
		return "", fmt.Errorf("openhim: GET %s: no currentCoreVersion", c.redactedURL("/about"))
	}
	return about.CurrentCoreVersion, nil
}
