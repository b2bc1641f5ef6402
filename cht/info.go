package cht

import (
	"context"
	"fmt"
	"net/http"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/release"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/versionhook"
)

func init() {
	versionhook.Of = func(ctx context.Context, client any) (release.Version, bool, error) {
		c, ok := client.(*Client)
		if !ok || c == nil {
			return release.Version{}, false, nil
		}
		v, err := c.detectVersion(ctx)
		return v, true, err
	}
}

// fetchVersion reads the CHT version (GET /api/deploy-info) and caches it
// for feature detection. /api/info is no use: it answers the version of
// the API's own package.json, "0.1.0" in every release (cht-core
// api/src/routing.js). /api/deploy-info answers the version of the
// installed build (shared-libs/server-info getDeployInfo: build_info's
// version, else deploy_info's build, else the ddoc's version, else
// "unknown"), to a logged-in user; a version that is no release (a
// branch build) falls back to build_info's base_version.
func (c *Client) fetchVersion(ctx context.Context) (release.Version, error) {
	var body struct {
		Version     string `json:"version"`
		BaseVersion string `json:"base_version"`
	}
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/deploy-info", retry: true}, &body); err != nil {
		return release.Version{}, err
	}
	v, err := release.Parse(body.Version)
	if err != nil && body.BaseVersion != "" {
		v, err = release.Parse(body.BaseVersion)
	}
	if err != nil {
		return release.Version{}, fmt.Errorf("cht: /api/deploy-info names no release (version %q, base_version %q): set Config.Version: %w",
			body.Version, body.BaseVersion, err)
	}
	c.verMu.Lock()
	c.version = &v
	c.verMu.Unlock()
	return v, nil
}

// feature is an API capability that depends on the CHT version.
type feature int

// Features and the CHT version that introduced them (cht-api.md §3.10).
const (
	featureHydrate         feature = iota // 3.9: /api/v1/hydrate
	featureContactsByPhone                // 3.10: /api/v1/contacts-by-phone
	featurePersonGet                      // 4.9: GET /api/v1/person/:uuid
	featurePlaceGet                       // 4.10: GET /api/v1/place/:uuid
	featurePersonList                     // 4.11: GET /api/v1/person?type=
	featurePlaceList                      // 4.12: GET /api/v1/place?type=
	featureContactGet                     // 4.18: GET /api/v1/contact/:uuid
	featureReportGet                      // 4.18: GET /api/v1/report/:uuid
	featureReportLineage                  // 4.22: GET /api/v1/report/:uuid?with_lineage=true
	featureCreateV2                       // 5.2: POST /api/v1/person, /api/v1/place
)

var featureSince = map[feature][2]int{
	featureHydrate:         {3, 9},
	featureContactsByPhone: {3, 10},
	featurePersonGet:       {4, 9},
	featurePlaceGet:        {4, 10},
	featurePersonList:      {4, 11},
	featurePlaceList:       {4, 12},
	featureContactGet:      {4, 18},
	featureReportGet:       {4, 18},
	featureReportLineage:   {4, 22},
	featureCreateV2:        {5, 2},
}

// has reports whether version v supports feature f.
func has(v release.Version, f feature) bool {
	s, ok := featureSince[f]
	return ok && v.AtLeast(s[0], s[1])
}

// supports reports whether the server supports f, detecting the version
// on first use (or using Config.Version).
func (c *Client) supports(ctx context.Context, f feature) (bool, error) {
	v, err := c.detectVersion(ctx)
	if err != nil {
		return false, err
	}
	return has(v, f), nil
}

// detectVersion returns the server version, detected once and cached.
func (c *Client) detectVersion(ctx context.Context) (release.Version, error) {
	c.verMu.Lock()
	v := c.version
	c.verMu.Unlock()
	if v != nil {
		return *v, nil
	}
	v2, err := c.fetchVersion(ctx)
	if err != nil {
		return release.Version{}, fmt.Errorf("cht: detect version: %w", err)
	}
	return v2, nil
}
