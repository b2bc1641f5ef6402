package cht

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/release"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/versionhook"
)

func init() {
	versionhook.Of = func(ctx context.Context, client any) (release.Version, bool, error) {
		c, ok := client.(*Client)
		if !ok || c == nil {
			return release.Version{}, false, nil
		}
		v, err := c.detectVersion(ctx, true)
		return v, true, err
	}
}

// versionTTL is how long a detection of the CHT version serves: the next
// need after it detects the version again, so that a client learns of an
// upgrade of CHT while it runs.
const versionTTL = 10 * time.Minute

// fetchVersion reads the CHT version (GET /api/deploy-info). /api/info is
// no use: it answers the version of the API's own package.json, "0.1.0"
// in every release (cht-core api/src/routing.js). /api/deploy-info
// answers the version of the installed build (shared-libs/server-info
// getDeployInfo: build_info's version, else deploy_info's build, else the
// ddoc's version, else "unknown"), to a logged-in user; a version that is
// no release (a branch build) falls back to build_info's base_version.
// The API caches that answer until an upgrade: cht-core 5.x reads it again
// when an upgrade finalizes (api/src/services/setup/upgrade-steps.js
// finalize calls getDeployInfo(true)), and a 4.x upgrade starts a new API
// (api/src/services/deploy-info.js caches it for the life of the process).
func (c *Client) fetchVersion(ctx context.Context, retry bool) (release.Version, error) {
	var body struct {
		Version     string `json:"version"`
		BaseVersion string `json:"base_version"`
	}
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/deploy-info", retry: retry}, &body); err != nil {
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

// supports reports whether the server supports f (see detectVersion).
func (c *Client) supports(ctx context.Context, f feature) (bool, error) {
	v, err := c.detectVersion(ctx, false)
	if err != nil {
		return false, err
	}
	return has(v, f), nil
}

// detectVersion returns the CHT version: Config.Version when set, else the
// version detected with GET /api/deploy-info. A detection serves for
// versionTTL, and the first caller after that detects it again while
// others go on with the version they have; with fresh the caller waits
// for a detection started after it asked (the Watch asks so at each read
// of the app settings). Until a detection succeeds, each caller makes its
// own, retried as any request, and gets its error. A detection again is
// not retried: when it fails the version last detected stays (a WARN line
// says so, once until one succeeds) and is detected again after
// versionTTL, or at the next fresh call.
func (c *Client) detectVersion(ctx context.Context, fresh bool) (release.Version, error) {
	asked := c.now()
	c.verMu.Lock()
	v, at, fixed := c.ver, c.verAt, c.verFixed
	c.verMu.Unlock()
	switch {
	case fixed, v != nil && !fresh && !versionStale(at, asked):
		return *v, nil
	case v == nil:
		// The first detection: each caller its own, as for any request.
	case !fresh:
		select {
		case c.verSlot <- struct{}{}:
		default:
			return *v, nil // another caller is detecting it again
		}
	default:
		select {
		case c.verSlot <- struct{}{}:
		case <-ctx.Done():
			return *v, nil
		}
	}
	if v != nil {
		defer func() { <-c.verSlot }()
		c.verMu.Lock()
		v, at = c.ver, c.verAt
		c.verMu.Unlock()
		if fresh && !at.Before(asked) || !fresh && !versionStale(at, c.now()) {
			return *v, nil // detected while this caller waited
		}
	}
	started := c.now()
	got, err := c.fetchVersion(ctx, v == nil)
	switch {
	case err != nil && v == nil:
		return release.Version{}, fmt.Errorf("cht: detect version: %w", err)
	case err != nil && ctx.Err() != nil:
		return *v, nil // the caller gave up, not CHT: the next one tries again
	case err != nil:
		c.verMu.Lock()
		c.verAt = started
		logged := c.verFailing
		c.verFailing = true
		c.verMu.Unlock()
		if !logged {
			c.log.Warn("cht: the CHT version cannot be detected again; the version last detected stays in use until it can",
				slog.String("version", v.String()), slog.Any("error", err))
		}
		return *v, nil
	}
	c.verMu.Lock()
	c.ver, c.verAt = &got, started
	failed := c.verFailing
	c.verFailing = false
	c.verMu.Unlock()
	switch {
	case v != nil && *v != got:
		c.log.Info("cht: the CHT version changed", slog.String("was", v.String()), slog.String("version", got.String()))
	case failed:
		c.log.Info("cht: the CHT version detected again", slog.String("version", got.String()))
	}
	return got, nil
}

// versionStale reports whether a detection started at `at` no longer
// serves at now.
func versionStale(at, now time.Time) bool {
	return now.Sub(at) >= versionTTL || now.Before(at)
}
