package chttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// OutboundFromSettings turns an app_settings "outbound" block into one
// PusherConfig per push, in the order CHT walks them (Object.keys: as
// written, names that are array indexes first). raw is either the outbound
// object or a whole app_settings document holding it (any object with an
// "outbound" member). A whole document must enable the transition, as
// CHT's loadTransitions (shared-libs/transitions/src/transitions/index.js)
// runs mark_for_outbound only when transitions.mark_for_outbound is set
// and not {"disable": true}: otherwise CHT pushes nothing, and
// OutboundFromSettings returns an error saying so.
//
// relevant_to and mapping "expr" strings are JavaScript, run in a VM with
// doc in scope as CHT runs them; a push without relevant_to pushes
// nothing. Mapping keys are walked in the order CHT walks them.
//
// Secrets are read with creds by the destination's password_key (basic) or
// value_key (header), as CHT reads its credentials store; Server.Credential
// fits. As in CHT (outbound.js handleAuth) they are read again at every
// push: an unset credential ("Credentials for '<key>' have not been
// configured."), a missing auth type or an unknown one fails only that
// push, which is queued and retried, and setting the credential later
// makes the retry succeed. A missing destination, base_url or path, or a
// missing mapping, also fails every push of that config rather than the
// loading; mapping {} sends {}. muso-sih auth is not supported by the
// pusher and is an error.
//
// The returned configs have Name, URL, auth, relevance, Mapping and Cron
// set; set Server, Version, RetryInterval etc. before NewOutboundPusher.
func OutboundFromSettings(raw []byte, creds func(key string) (string, bool)) ([]PusherConfig, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("chttest: outbound settings: %w", err)
	}
	block := json.RawMessage(raw)
	if inner, ok := top["outbound"]; ok {
		if err := markForOutboundEnabled(top["transitions"]); err != nil {
			return nil, fmt.Errorf("chttest: outbound settings: %w", err)
		}
		top, block = nil, inner
		if err := json.Unmarshal(inner, &top); err != nil {
			return nil, fmt.Errorf("chttest: outbound settings: outbound: %w", err)
		}
	}
	// mark_for_outbound.js walks the pushes with Object.keys: document
	// order, array-index names first.
	order, err := objectKeys(map[string]json.RawMessage{"outbound": block}, "outbound")
	if err != nil {
		return nil, fmt.Errorf("chttest: outbound settings: %w", err)
	}
	names := make([]string, 0, len(top))
	for k := range top {
		names = append(names, k)
	}
	names = jsKeyOrder(names, order)
	out := make([]PusherConfig, 0, len(names))
	for _, name := range names {
		cfg, err := pushFromSettings(name, top[name], creds)
		if err != nil {
			return nil, fmt.Errorf("chttest: outbound settings: push %q: %w", name, err)
		}
		out = append(out, cfg)
	}
	return out, nil
}

// markForOutboundEnabled applies loadTransitions' test to
// app_settings.transitions: conf = transitions.mark_for_outbound; the
// transition runs when conf is truthy and conf.disable is not.
func markForOutboundEnabled(transitions json.RawMessage) error {
	var all map[string]any
	_ = json.Unmarshal(transitions, &all) // absent, null or not an object: no transitions
	if !transitionOn(all, "mark_for_outbound") {
		return errors.New(`transitions.mark_for_outbound is not enabled (absent, false or {"disable": true}): CHT runs no outbound push`)
	}
	return nil
}

func pushFromSettings(name string, raw json.RawMessage, creds func(string) (string, bool)) (PusherConfig, error) {
	var sp outbound.Push
	if err := json.Unmarshal(raw, &sp); err != nil {
		return PusherConfig{}, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return PusherConfig{}, err
	}
	cfg := PusherConfig{Name: name, Cron: sp.Cron, fromSettings: true}
	// outbound.js sendPayload: urlJoin(base_url, path) throws for a
	// missing destination, base_url or path, at every push.
	var dest map[string]json.RawMessage
	_ = json.Unmarshal(top["destination"], &dest)
	switch {
	case dest == nil:
		cfg.sendErr = errors.New("TypeError: Cannot read properties of undefined (reading 'base_url')")
	case !jsonString(dest["base_url"]):
		cfg.sendErr = fmt.Errorf("TypeError: Url must be a string. Received %s", jsValueText(dest["base_url"]))
	case !jsonString(dest["path"]):
		cfg.sendErr = fmt.Errorf("TypeError: Url must be a string. Received %s", jsValueText(dest["path"]))
	default:
		cfg.URL = urlJoin(sp.Destination.BaseURL, sp.Destination.Path)
	}
	if a := sp.Destination.Auth; a != nil {
		if strings.EqualFold(a.Type, "muso-sih") {
			return cfg, errors.New("auth type muso-sih is not supported by chttest")
		}
		// outbound.js handleAuth runs at every push: a missing credential
		// or a bad auth type fails only this push, which is retried.
		cfg.settingsAuth, cfg.creds = a, creds
		cfg.Username, cfg.Password, cfg.AuthHeader, _ = resolveAuth(a, creds)
	}
	if sp.RelevantTo != "" {
		p, err := compileJS(sp.RelevantTo)
		if err != nil {
			return cfg, fmt.Errorf("relevant_to: %w", err)
		}
		cfg.relevantJS = p
	}
	if m := bytes.TrimSpace(top["mapping"]); len(m) == 0 || string(m) == "null" {
		// mapDocumentToPayload: Object.keys(config.mapping) throws at
		// every push; mapping {} sends {}.
		cfg.mappingErr = errors.New("TypeError: Cannot convert undefined or null to object")
		return cfg, nil
	}
	cfg.Mapping = make(map[string]any, len(sp.Mapping))
	for dest, v := range sp.Mapping {
		cfg.Mapping[dest] = v
	}
	order, err := objectKeys(top, "mapping")
	if err != nil {
		return cfg, err
	}
	cfg.mappingOrder = order
	if _, err := compileMapping(cfg.Mapping, order); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// resolveAuth is outbound.js handleAuth (validateAuthConfig,
// handleBasicAuth, handleHeaderAuth, fetchPassword): it reads the secret
// from creds and returns basic auth or the Authorization header, or CHT's
// error.
func resolveAuth(a *outbound.Auth, creds func(string) (string, bool)) (user, pass, header string, err error) {
	secret := func(key string) (string, error) {
		v, ok := "", false
		if creds != nil {
			v, ok = creds(key)
		}
		if !ok || v == "" {
			return "", fmt.Errorf("Credentials for '%s' have not been configured. See the Outbound documentation.", key)
		}
		return v, nil
	}
	switch strings.ToLower(a.Type) {
	case "":
		return "", "", "", errors.New("No auth.type, either declare the type or omit the auth property")
	case "basic":
		pw, err := secret(a.PasswordKey)
		return a.Username, pw, "", err
	case "header":
		if !strings.EqualFold(a.Name, "authorization") {
			return "", "", "", fmt.Errorf("Unsupported header name '%s'. Supported: authorization", a.Name)
		}
		v, err := secret(a.ValueKey)
		return "", "", v, err
	}
	return "", "", "", fmt.Errorf("Invalid auth type '%s'. Supported: basic, header, muso-sih", a.Type)
}

// jsonString reports whether raw is a JSON string.
func jsonString(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '"'
}

// jsValueText is how url-join's 'Received ' + value prints a non-string
// JSON value.
func jsValueText(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) == 0:
		return "undefined"
	case t[0] == '{':
		return "[object Object]"
	}
	return string(t)
}

// urlJoin is url-join 4.0.1 (the version cht-core 4.3 to 5.2 lock)
// normalize over [base, path], as outbound.js sendPayload calls it: a
// plain protocol first part is merged with the next, the protocol gets
// its two slashes, empty parts are skipped, slashes between parts become
// one, the last part keeps one trailing slash, a slash before ?, & or #
// goes, and every ? after the first becomes &.
func urlJoin(parts ...string) string {
	if len(parts) == 0 {
		return ""
	}
	parts = slices.Clone(parts)
	if len(parts) > 1 && urlJoinPlainProto.MatchString(parts[0]) {
		parts = append([]string{parts[0] + parts[1]}, parts[2:]...)
	}
	if urlJoinFile.MatchString(parts[0]) {
		parts[0] = replaceFirst(urlJoinProto, parts[0], "${1}:///")
	} else {
		parts[0] = replaceFirst(urlJoinProto, parts[0], "${1}://")
	}
	out := make([]string, 0, len(parts))
	for i, c := range parts {
		if c == "" {
			continue
		}
		if i > 0 {
			c = strings.TrimLeft(c, "/")
		}
		if i < len(parts)-1 {
			c = strings.TrimRight(c, "/")
		} else if t := strings.TrimRight(c, "/"); t != c {
			c = t + "/"
		}
		out = append(out, c)
	}
	str := urlJoinSlashBefore.ReplaceAllString(strings.Join(out, "/"), "${1}")
	q := strings.Split(str, "?")
	str = q[0]
	if len(q) > 1 {
		str += "?" + strings.Join(q[1:], "&")
	}
	return str
}

var (
	urlJoinPlainProto  = regexp.MustCompile(`^[^/:]+:/*$`)
	urlJoinFile        = regexp.MustCompile(`^file:///`)
	urlJoinProto       = regexp.MustCompile(`^([^/:]+):/*`)
	urlJoinSlashBefore = regexp.MustCompile(`/(\?|&|#[^!])`)
)

// replaceFirst is String.prototype.replace with a regexp without the g flag.
func replaceFirst(re *regexp.Regexp, s, repl string) string {
	m := re.FindStringSubmatchIndex(s)
	if m == nil {
		return s
	}
	return s[:m[0]] + string(re.ExpandString(nil, repl, s, m)) + s[m[1]:]
}
