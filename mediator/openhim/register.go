package openhim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// mediatorPath is /mediators/:urn with the URN path-escaped (core decodes
// the route parameter, so a "/" in a URN must travel as %2F).
func mediatorPath(urn string) string { return "/mediators/" + url.PathEscape(urn) }

// Register validates d for the client's core version and sends it with
// POST /mediators. Core answers 201 even when it ignored the document
// because it already stores the same or a higher version; use
// [Client.CheckRegistration] (the [Lifecycle] does) to detect that.
// A 400 ([ErrBadRequest]) carries core's validation message and is not
// retried; 401/403 are credential errors.
func (c *Client) Register(ctx context.Context, d *Definition) error {
	if err := d.Validate(c.coreVersion); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPost, "/mediators", d, nil)
}

// RegisteredMediator is the mediator document stored by core, as returned
// by GET /mediators/:urn. Password config values are masked by core as
// "**********".
type RegisteredMediator struct {
	Definition
	ID             string     `json:"_id,omitempty"`
	LastHeartbeat  *time.Time `json:"_lastHeartbeat,omitempty"`
	Uptime         *float64   `json:"_uptime,omitempty"`
	ConfigModified *time.Time `json:"_configModifiedTS,omitempty"`
	raw            map[string]any
}

// GetMediator returns the mediator stored under urn (GET /mediators/:urn).
// An unknown URN gives an error matching [ErrNotFound].
func (c *Client) GetMediator(ctx context.Context, urn string) (*RegisteredMediator, error) {
	var raw []byte
	if err := c.Do(ctx, http.MethodGet, mediatorPath(urn), nil, &raw); err != nil {
		return nil, err
	}
	m := &RegisteredMediator{}
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("openhim: GET %s: decode mediator: %w", c.redactedURL(mediatorPath(urn)), err)
	}
	if err := json.Unmarshal(raw, &m.raw); err != nil {
		return nil, fmt.Errorf("openhim: GET %s: decode mediator: %w", c.redactedURL(mediatorPath(urn)), err)
	}
	return m, nil
}

// Deregister deletes the mediator (DELETE /mediators/:urn). Core then
// forgets its stored config, so this is never done automatically. Core
// answers 200 even for an unknown URN.
func (c *Client) Deregister(ctx context.Context, urn string) error {
	return c.Do(ctx, http.MethodDelete, mediatorPath(urn), nil, nil)
}

// SetConfig replaces the mediator's config in core (PUT
// /mediators/:urn/config), as the console's "edit config" does. Core
// validates it against the stored configDefs (400 on failure) and pushes it
// to the mediator on its next heartbeat. Mainly for tools and tests.
func (c *Client) SetConfig(ctx context.Context, urn string, config map[string]any) error {
	if config == nil {
		config = map[string]any{}
	}
	return c.Do(ctx, http.MethodPut, mediatorPath(urn)+"/config", config, nil)
}

// ListChannels returns the channels stored in core (GET /channels).
func (c *Client) ListChannels(ctx context.Context) ([]Channel, error) {
	var chs []Channel
	if err := c.Do(ctx, http.MethodGet, "/channels", nil, &chs); err != nil {
		return nil, err
	}
	return chs, nil
}

// InstallChannels installs the named channels of the mediator's
// defaultChannelConfig (POST /mediators/:urn/channels); no names means all.
// Core does not make that POST idempotent: it saves each channel, and a
// name that already exists as a channel fails the call with a 500 (core
// 4.0.5 src/api/mediators.js, loadDefaultChannels, against the unique name
// index of src/model/channels.js; src/api/channels.js addChannel answers a
// POST /channels of a taken name with 400). So the POST is sent once, not
// retried, and when it fails (an error, or an answer lost after core saved
// the channels), InstallChannels lists the channels and counts those
// present by name as installed: it returns nil when all are, and otherwise
// the error naming the channels missing (or stored as deleted). A 4xx
// answer is core's refusal before it saved anything and is returned as is.
// See [Client.InstallMissingChannels] for installing only the missing ones.
func (c *Client) InstallChannels(ctx context.Context, urn string, names ...string) error {
	if names == nil {
		names = []string{}
	}
	_, err := c.call(ctx, http.MethodPost, mediatorPath(urn)+"/channels", names, false)
	var api *APIError
	if err == nil || ctx.Err() != nil || (errors.As(err, &api) && api.StatusCode < 500) || errors.Is(err, ErrNoCore) {
		return err // done, or refused by core before it saved anything
	}
	want := names
	if len(want) == 0 {
		m, gerr := c.GetMediator(ctx, urn)
		if gerr != nil {
			return err
		}
		for _, ch := range m.DefaultChannelConfig {
			want = append(want, ch.Name)
		}
	}
	if len(want) == 0 {
		return err
	}
	missing, lerr := c.missingChannels(ctx, want, true)
	if lerr != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (channels not installed: %s)", err, strings.Join(missing, ", "))
	}
	c.log.DebugContext(ctx, "openhim channel install failed, but core holds every channel", "error", err, "channels", want)
	return nil
}

// InstallMissingChannels idempotently installs the channels of d's
// DefaultChannelConfig whose names do not exist in core yet (it lists
// GET /channels first), as d defines them: core installs from the
// definition it stores, so a channel installed that differs from d (core
// kept an earlier registration of the same version) is updated to d. It
// returns the names it installed.
func (c *Client) InstallMissingChannels(ctx context.Context, d *Definition) ([]string, error) {
	if len(d.DefaultChannelConfig) == 0 {
		return nil, nil
	}
	want := make([]string, len(d.DefaultChannelConfig))
	for i, ch := range d.DefaultChannelConfig {
		want[i] = ch.Name
	}
	missing, err := c.missingChannels(ctx, want, false)
	if err != nil {
		return nil, err
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if err := c.InstallChannels(ctx, d.URN, missing...); err != nil {
		return nil, err
	}
	return missing, c.matchInstalled(ctx, d, missing)
}

// DefinitionDrift describes how the definition stored in core differs from the one
// a mediator registered.
type DefinitionDrift struct {
	// StoredVersion is the version core keeps.
	StoredVersion string
	// Fields lists the top-level fields that differ (name, description,
	// endpoints, defaultChannelConfig, configDefs). Empty when only the
	// version differs.
	Fields []string
}

// String summarises the drift.
func (d *DefinitionDrift) String() string {
	if d == nil {
		return "no drift"
	}
	return fmt.Sprintf("core keeps version %s (differing fields: %v)", d.StoredVersion, d.Fields)
}

// CheckRegistration reads the stored definition after a registration and
// reports whether core kept a different one: core answers 201 but ignores
// a registration whose version is not greater than the stored one. It
// returns nil when core stores d (fields core adds, such as defaults and
// ids, are ignored; config is not compared because core keeps existing
// values on purpose).
func (c *Client) CheckRegistration(ctx context.Context, d *Definition) (*DefinitionDrift, error) {
	stored, err := c.GetMediator(ctx, d.URN)
	if err != nil {
		return nil, err
	}
	return compareStored(d, stored), nil
}

func compareStored(d *Definition, stored *RegisteredMediator) *DefinitionDrift {
	var want map[string]any
	b, _ := json.Marshal(d) // a Definition always marshals
	_ = json.Unmarshal(b, &want)
	var fields []string
	for _, k := range []string{"name", "description", "endpoints", "defaultChannelConfig", "configDefs"} {
		if !subsetOf(want[k], stored.raw[k]) {
			fields = append(fields, k)
		}
	}
	cmp, ok := compareVersions(d.Version, stored.Version)
	if ok && cmp == 0 && len(fields) == 0 {
		return nil
	}
	return &DefinitionDrift{StoredVersion: stored.Version, Fields: fields}
}

// subsetOf reports whether every value set in want equals the value in
// got, for the object members got has; got may carry extra fields (core's
// defaults and _id) and lack those its schema does not know. Arrays must
// have the same length.
func subsetOf(want, got any) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			gv, stored := g[k]
			if !stored {
				if routeCredential(k, v) {
					return false // a route core holds without credentials
				}
				// Core drops what its schema (of that version) lacks,
				// so only what it stored can differ.
				continue
			}
			if !subsetOf(v, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !subsetOf(w[i], g[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(want, got)
	}
}

// routeCredential reports whether k is a route's username or password with
// a value: members every core's schema has (src/model/channels.js RouteDef,
// 4.0.5 to 8.5.0), so a route stored without them lacks the credentials
// the mediator now requires, and every routed request would fail with 401.
func routeCredential(k string, v any) bool {
	s, _ := v.(string)
	return (k == "username" || k == "password") && s != ""
}

// missingChannels lists core's channels (GET /channels) and returns the
// names of want it does not hold; with deletedMissing, a channel core
// stores as deleted counts as missing.
func (c *Client) missingChannels(ctx context.Context, want []string, deletedMissing bool) ([]string, error) {
	existing, err := c.ListChannels(ctx)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(existing))
	for _, ch := range existing {
		have[ch.Name] = !deletedMissing || ch.Status != "deleted"
	}
	var missing []string
	for _, name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	return missing, nil
}
