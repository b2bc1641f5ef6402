package openhim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/mediator/internal/semver"
)

// channelSync is what one pass over the default channels found and did.
type channelSync struct {
	installed   []string // missing from core: installed
	reinstalled []string // deleted in core (core 4 keeps them as status "deleted"): enabled again with the definition
	restored    []string // edited away from the definition: put back (restore on)
	modified    []string // edited away from the definition: reported (restore off)
}

// syncChannels makes the default channels of d exist in core: a missing
// one is installed (POST /mediators/:urn/channels), one core keeps as
// "deleted" is put back with the definition and status enabled (or the
// definition's disabled) (PUT /channels/:id: channel names are unique in
// core, so it cannot be installed anew). A channel that differs from the
// definition in a field core stores other than its status is put back when
// restore is set, and reported otherwise. The status of a channel not
// deleted is never changed: one an administrator disabled stays disabled,
// also when restore puts its other fields back.
func (c *Client) syncChannels(ctx context.Context, d *Definition, restore bool) (channelSync, error) {
	var r channelSync
	if len(d.DefaultChannelConfig) == 0 {
		return r, nil
	}
	var stored []map[string]any
	if err := c.Do(ctx, http.MethodGet, "/channels", nil, &stored); err != nil {
		return r, err
	}
	byName := make(map[string]map[string]any, len(stored))
	for _, ch := range stored {
		if name, _ := ch["name"].(string); name != "" {
			byName[name] = ch
		}
	}
	var missing []string
	for _, ch := range d.DefaultChannelConfig {
		s, ok := byName[ch.Name]
		if !ok {
			missing = append(missing, ch.Name)
			continue
		}
		want := channelDoc(ch)
		deleted := s["status"] == "deleted"
		if !deleted {
			// The status of a channel in use is the administrator's:
			// neither compared nor sent, so core keeps what it stores
			// (its PUT /channels/:id updates only the fields sent:
			// src/api/channels.js, updateChannel).
			delete(want, "status")
		} else if ch.Status == "" || ch.Status == "deleted" {
			want["status"] = "enabled"
		}
		if !deleted && subsetOf(want, s) {
			continue
		}
		if !deleted && !restore {
			r.modified = append(r.modified, ch.Name)
			continue
		}
		id, _ := s["_id"].(string)
		if id == "" {
			return r, fmt.Errorf("openhim: channel %q from core has no _id", ch.Name)
		}
		if err := c.Do(ctx, http.MethodPut, "/channels/"+url.PathEscape(id), want, nil); err != nil {
			return r, err
		}
		if deleted {
			r.reinstalled = append(r.reinstalled, ch.Name)
		} else {
			r.restored = append(r.restored, ch.Name)
		}
	}
	if len(missing) > 0 {
		if err := c.InstallChannels(ctx, d.URN, missing...); err != nil {
			return r, err
		}
		r.installed = missing
		if err := c.matchInstalled(ctx, d, missing); err != nil {
			return r, err
		}
	}
	return r, nil
}

// matchInstalled puts the channels named just installed back as d defines
// them where they differ. Core installs a default channel from the
// definition it stores (src/api/mediators.js, loadDefaultChannels), which is
// the one registered before when the mediator registered the same version
// again (core ignores that registration): for example without the route
// credentials the mediator has required since. A channel just installed is
// nobody's edit, so it is put back whatever restore_channels says.
func (c *Client) matchInstalled(ctx context.Context, d *Definition, names []string) error {
	var stored []map[string]any
	if err := c.Do(ctx, http.MethodGet, "/channels", nil, &stored); err != nil {
		return err
	}
	byName := make(map[string]map[string]any, len(stored))
	for _, s := range stored {
		name, _ := s["name"].(string)
		byName[name] = s
	}
	for _, ch := range d.DefaultChannelConfig {
		s, ok := byName[ch.Name]
		if !ok || !slices.Contains(names, ch.Name) {
			continue
		}
		want := channelDoc(ch)
		delete(want, "status") // as installed
		id, _ := s["_id"].(string)
		if id == "" || subsetOf(want, s) {
			continue
		}
		if err := c.Do(ctx, http.MethodPut, "/channels/"+url.PathEscape(id), want, nil); err != nil {
			return err
		}
	}
	return nil
}

// channelDoc is ch as the JSON object core is sent, its ObjectIds (route
// certificates, alert groups) lower-cased as core stores and returns them
// (mongoose casts a hex string to an ObjectId), so that a definition that
// writes them in upper case does not differ from its own channel forever.
func channelDoc(ch Channel) map[string]any {
	ch.Routes = slices.Clone(ch.Routes)
	for i := range ch.Routes {
		ch.Routes[i].Cert = strings.ToLower(ch.Routes[i].Cert)
	}
	ch.Alerts = slices.Clone(ch.Alerts)
	for i := range ch.Alerts {
		groups := slices.Clone(ch.Alerts[i].Groups)
		for j, g := range groups {
			if objectIDRE.MatchString(g) {
				groups[j] = strings.ToLower(g)
			}
		}
		ch.Alerts[i].Groups = groups
	}
	var m map[string]any
	b, _ := json.Marshal(ch) // a Channel always marshals
	_ = json.Unmarshal(b, &m)
	return m
}

// syncDefaultChannels runs one pass and logs and measures its outcome: a
// change to the channels is logged once, the gauges say how things stand.
func (l *Lifecycle) syncDefaultChannels(ctx context.Context) {
	// A replica of an older version (during a rolling deploy) does not put
	// back the channels of the newer one whose registration core keeps.
	behind := l.behindCore()
	r, err := l.c.syncChannels(ctx, &l.def, l.restore && !behind)
	if err != nil {
		if !l.channelErr {
			l.log.WarnContext(ctx, "could not check the default channels; will retry with the next heartbeat", "error", err)
		}
		l.channelErr = true
		l.metrics.channelsDone.Set(0)
		return
	}
	l.channelErr = false
	l.metrics.channelsDone.Set(1)
	l.metrics.channelsModified.Set(float64(len(r.modified)))
	if len(r.installed) > 0 {
		l.log.InfoContext(ctx, "installed default channels", "channels", r.installed)
	}
	if len(r.reinstalled) > 0 {
		l.log.WarnContext(ctx, "default channels were deleted in core; installed them again (install_channels)", "channels", r.reinstalled)
	}
	if len(r.restored) > 0 {
		l.log.WarnContext(ctx, "default channels were edited in core; put them back as defined (restore_channels)", "channels", r.restored)
	}
	switch {
	case slices.Equal(r.modified, l.modified) || len(r.modified) == 0:
	case behind && l.restore:
		l.log.WarnContext(ctx, "default channels differ in core from this mediator's definition, and core keeps a newer "+
			"version of the mediator (another replica?): left as they are", "channels", r.modified, "version", l.def.Version)
	default:
		l.log.WarnContext(ctx, "default channels differ in core from the mediator's definition; left as they are "+
			"(set restore_channels, MEDIATOR_RESTORE_CHANNELS, to put them back)", "channels", r.modified)
	}
	l.modified = r.modified
}

// behindCore reports whether core keeps a registration of the mediator of
// a higher version than this one's (see CheckRegistration).
func (l *Lifecycle) behindCore() bool {
	l.mu.Lock()
	d := l.drift
	l.mu.Unlock()
	if d == nil {
		return false
	}
	stored, ok1 := semver.Parse(d.StoredVersion)
	mine, ok2 := semver.Parse(l.def.Version)
	return ok1 && ok2 && semver.Compare(stored, mine) > 0
}
