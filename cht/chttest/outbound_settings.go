package chttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// OutboundFromSettings turns an app_settings "outbound" block into one
// PusherConfig per push, ordered by name. raw is either the outbound
// object or a whole app_settings document holding it.
//
// Secrets are read with creds by the destination's password_key (basic) or
// value_key (header), as CHT reads its credentials store; Server.Credential
// fits. An unset credential is an error ("Credentials for '<key>' have not
// been configured."), as is an auth type other than basic or header
// (muso-sih is not supported by the pusher).
//
// relevant_to and mapping "expr" strings are JavaScript in CHT. They are
// evaluated here by a small interpreter for the subset such configs
// usually use (doc member access, literals, array literals, ! && || ?:,
// comparisons, + and .includes()); anything else is reported as an error
// so a test never silently evaluates a condition differently from CHT.
//
// The returned configs have URL, Name, auth, RelevantTo and Mapping set;
// set Server, Version, RetryInterval etc. before NewOutboundPusher.
func OutboundFromSettings(raw []byte, creds func(key string) (string, bool)) ([]PusherConfig, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("chttest: outbound settings: %w", err)
	}
	if inner, ok := top["outbound"]; ok {
		top = nil
		if err := json.Unmarshal(inner, &top); err != nil {
			return nil, fmt.Errorf("chttest: outbound settings: outbound: %w", err)
		}
	}
	names := make([]string, 0, len(top))
	for k := range top {
		names = append(names, k)
	}
	slices.Sort(names)
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

type settingsPush struct {
	RelevantTo  string `json:"relevant_to"`
	Destination struct {
		BaseURL string `json:"base_url"`
		Path    string `json:"path"`
		Auth    *struct {
			Type        string `json:"type"`
			Username    string `json:"username"`
			PasswordKey string `json:"password_key"`
			Name        string `json:"name"`
			ValueKey    string `json:"value_key"`
		} `json:"auth"`
	} `json:"destination"`
	Mapping map[string]json.RawMessage `json:"mapping"`
	Cron    string                     `json:"cron"`
}

func pushFromSettings(name string, raw json.RawMessage, creds func(string) (string, bool)) (PusherConfig, error) {
	var sp settingsPush
	if err := json.Unmarshal(raw, &sp); err != nil {
		return PusherConfig{}, err
	}
	cfg := PusherConfig{Name: name}
	if sp.Destination.BaseURL == "" {
		return cfg, errors.New("destination.base_url is required")
	}
	cfg.URL = urlJoin(sp.Destination.BaseURL, sp.Destination.Path)
	if a := sp.Destination.Auth; a != nil {
		secret := func(key string) (string, error) {
			if creds == nil {
				return "", fmt.Errorf("Credentials for '%s' have not been configured.", key)
			}
			v, ok := creds(key)
			if !ok {
				return "", fmt.Errorf("Credentials for '%s' have not been configured.", key)
			}
			return v, nil
		}
		switch strings.ToLower(a.Type) {
		case "basic":
			pw, err := secret(a.PasswordKey)
			if err != nil {
				return cfg, err
			}
			cfg.Username, cfg.Password = a.Username, pw
		case "header":
			if !strings.EqualFold(a.Name, "authorization") {
				return cfg, fmt.Errorf("Invalid auth header name: %q (only Authorization)", a.Name)
			}
			v, err := secret(a.ValueKey)
			if err != nil {
				return cfg, err
			}
			cfg.AuthHeader = v
		case "muso-sih":
			return cfg, errors.New("auth type muso-sih is not supported by chttest")
		default:
			return cfg, errors.New("Invalid auth type")
		}
	}
	if strings.TrimSpace(sp.RelevantTo) != "" {
		n, err := compileJS(sp.RelevantTo)
		if err != nil {
			return cfg, fmt.Errorf("relevant_to: %w", err)
		}
		cfg.RelevantTo = func(doc map[string]any) bool {
			v, err := n(doc)
			return err == nil && truthy(v)
		}
	}
	if len(sp.Mapping) == 0 {
		return cfg, errors.New("mapping is required")
	}
	cfg.Mapping = make(map[string]any, len(sp.Mapping))
	for dest, rv := range sp.Mapping {
		var s string
		if err := json.Unmarshal(rv, &s); err == nil {
			cfg.Mapping[dest] = s
			continue
		}
		var obj struct {
			Path     string  `json:"path"`
			Expr     *string `json:"expr"`
			Optional bool    `json:"optional"`
		}
		if err := json.Unmarshal(rv, &obj); err != nil {
			return cfg, fmt.Errorf("mapping %q: %w", dest, err)
		}
		switch {
		case obj.Expr != nil:
			n, err := compileJS(*obj.Expr)
			if err != nil {
				return cfg, fmt.Errorf("mapping %q: expr: %w", dest, err)
			}
			cfg.Mapping[dest] = MapExpr{Optional: obj.Optional, Expr: func(doc map[string]any) (any, error) {
				v, err := n(doc)
				if err != nil {
					return nil, err
				}
				switch v {
				case undefined:
					return nil, nil // undefined: omitted when optional
				case nil:
					return json.RawMessage("null"), nil // JavaScript null is a value
				}
				return v, nil
			}}
		case obj.Path != "":
			cfg.Mapping[dest] = MapPath{Path: obj.Path, Optional: obj.Optional}
		default:
			return cfg, fmt.Errorf("mapping %q: needs path or expr", dest)
		}
	}
	return cfg, nil
}

// urlJoin joins base_url and path as the url-join package CHT uses does
// for the common cases.
func urlJoin(base, path string) string {
	if path == "" {
		return base
	}
	return strings.TrimRight(base, "/") + "/" + strings.TrimLeft(path, "/")
}
