package outbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cht-interop/openhim-mediator-go/cht/internal/cron"
	"github.com/cht-interop/openhim-mediator-go/cht/internal/redact"
)

// Config generates the app_settings.outbound block of a CHT
// configuration: push name → [Push]. Marshalled, it is exactly the
// object CHT expects under "outbound"; [Config.AppSettings] also
// enables the mark_for_outbound transition.
type Config map[string]Push

// Push is one entry of app_settings.outbound.
type Push struct {
	// RelevantTo is a JavaScript expression over the hydrated doc, e.g.
	// "doc.type === 'data_record' && doc.form === 'HEIGHT_WEIGHT'".
	RelevantTo  string      `json:"relevant_to"`
	Destination Destination `json:"destination"`
	// Mapping maps destination object-paths (numeric segments create
	// arrays) to sources; see [MapPath], [MapOptional] and [MapExpr].
	Mapping map[string]MapValue `json:"mapping"`
	// Cron, if set (CHT 4.5+), queues pushes outside ±5 min of its ticks,
	// in the local time of the server Sentinel runs on. CHT accepts only what cron-validator 1.3.1 accepts with its
	// default options: five fields of numbers, *, ranges, lists and steps
	// (weekday 0-6; no names, ?, seconds or @macros). Any other cron makes
	// the push never due: CHT queues it forever and reports nothing, so
	// [Config.Validate] refuses it. CHT reads it with later.js, which,
	// unlike classic cron, needs both day fields to match when both are
	// set: "0 9 1 * 1" ticks only on a Monday that is the 1st. A cron whose
	// days exist in none of its months, such as "0 0 31 2 *" (31
	// February), "0 0 30 2 *" or "0 0 31 4,6,9,11 *", never ticks, with or
	// without a weekday: CHT accepts it but never sends the push, and
	// Validate refuses it too. "0 0 29 2 *" ticks in leap years. CHT before
	// 4.5 ignores Cron and sends at once.
	Cron string `json:"cron,omitempty"`
}

// Destination is where CHT POSTs: urlJoin(BaseURL, Path).
type Destination struct {
	BaseURL string `json:"base_url"`
	Path    string `json:"path"`
	Auth    *Auth  `json:"auth,omitempty"`
}

// Auth is a destination's auth. Secrets are never in the
// settings: CHT reads them from its credentials store
// (PUT /api/v1/credentials/<key>) under PasswordKey or ValueKey.
type Auth struct {
	Type        string `json:"type"` // "basic", "header" or "muso-sih"
	Username    string `json:"username,omitempty"`
	PasswordKey string `json:"password_key,omitempty"`
	Name        string `json:"name,omitempty"`      // header auth: must be "Authorization"
	ValueKey    string `json:"value_key,omitempty"` // header auth
	Path        string `json:"path,omitempty"`      // muso-sih login path
}

// MapValue is a mapping source: a required path (encoded as a plain
// string), or {"path"|"expr", "optional"}.
type MapValue struct {
	Path     string // e.g. "doc.fields.patient_uuid"
	Expr     string // JavaScript expression using doc
	Optional bool   // omit the member when undefined instead of failing
}

// MapPath is a required source path: the push fails (and is retried
// forever) when it is undefined.
func MapPath(path string) MapValue { return MapValue{Path: path} }

// MapOptional is a source path omitted from the payload when undefined.
func MapOptional(path string) MapValue { return MapValue{Path: path, Optional: true} }

// MapExpr is a JavaScript expression evaluated with doc in scope.
func MapExpr(expr string, optional bool) MapValue { return MapValue{Expr: expr, Optional: optional} }

// MarshalJSON encodes a required path as a string and anything else as an
// object.
func (v MapValue) MarshalJSON() ([]byte, error) {
	if v.Expr == "" && !v.Optional {
		return json.Marshal(v.Path)
	}
	m := map[string]any{}
	if v.Expr != "" {
		m["expr"] = v.Expr
	} else {
		m["path"] = v.Path
	}
	if v.Optional {
		m["optional"] = true
	}
	return json.Marshal(m)
}

// UnmarshalJSON accepts both forms.
func (v *MapValue) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '"' {
		*v = MapValue{}
		return json.Unmarshal(b, &v.Path)
	}
	var o struct {
		Path     string          `json:"path"`
		Expr     json.RawMessage `json:"expr"`
		Optional bool            `json:"optional"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("cht: mapping value: %w", err)
	}
	*v = MapValue{Path: o.Path, Optional: o.Optional}
	e := string(bytes.TrimSpace(o.Expr))
	switch {
	case e == "" || e == "null" || e == "false":
		// falsy: CHT falls back to path
	case e == "true":
		// Node's vm runs `${expr}`: {"expr": true} is the program "true".
		v.Expr = "true"
	case e[0] == '"':
		return json.Unmarshal(o.Expr, &v.Expr)
	default:
		f, err := strconv.ParseFloat(e, 64)
		if err != nil {
			return fmt.Errorf("cht: mapping value: expr must be JavaScript source, not %s", e)
		}
		if f != 0 {
			v.Expr = strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	return nil
}

// DocMapping maps the whole hydrated document to "doc", the shape
// [Handler] decodes into Payload.Doc.
func DocMapping() map[string]MapValue { return map[string]MapValue{"doc": MapPath("doc")} }

// RefMapping sends only the document id and revision; pair it with
// HandlerConfig.Fetch to load the current document. The payload
// changes with every revision, so CHT pushes every edit.
func RefMapping() map[string]MapValue {
	return map[string]MapValue{"id": MapPath("doc._id"), "rev": MapPath("doc._rev")}
}

// NewDestination splits an endpoint URL, such as an OpenHIM
// channel URL, into base_url and path, with basic auth by username and the
// CHT credential key holding the password. Credentials embedded in the URL
// are rejected: they would end up in app_settings.
func NewDestination(endpoint, username, passwordKey string) (Destination, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Destination{}, fmt.Errorf("cht: outbound destination %q: want an http(s) URL", redact.URL(endpoint))
	}
	if u.User != nil {
		return Destination{}, errors.New("cht: outbound destination: credentials in the URL; use username and a credential key")
	}
	d := Destination{BaseURL: u.Scheme + "://" + u.Host, Path: u.EscapedPath()}
	if u.RawQuery != "" {
		d.Path += "?" + u.RawQuery
	}
	if d.Path == "" {
		d.Path = "/"
	}
	if username != "" || passwordKey != "" {
		d.Auth = &Auth{Type: "basic", Username: username, PasswordKey: passwordKey}
	}
	return d, nil
}

// Validate checks the configuration against CHT's rules.
func (c Config) Validate() error {
	if len(c) == 0 {
		return errors.New("cht: outbound config: no pushes")
	}
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if err := c[name].validate(); err != nil {
			errs = append(errs, fmt.Errorf("cht: outbound config %q: %w", name, err))
		}
		if strings.TrimSpace(name) == "" {
			errs = append(errs, errors.New("cht: outbound config: empty push name"))
		}
	}
	return errors.Join(errs...)
}

func (p Push) validate() error {
	var errs []error
	if strings.TrimSpace(p.RelevantTo) == "" {
		errs = append(errs, errors.New("relevant_to is required"))
	}
	d := p.Destination
	if u, err := url.Parse(d.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("destination.base_url %q: want an http(s) URL", redact.URL(d.BaseURL)))
	} else if u.User != nil {
		errs = append(errs, errors.New("destination.base_url holds credentials; use auth with password_key"))
	}
	if a := d.Auth; a != nil {
		switch strings.ToLower(a.Type) {
		case "basic":
			if a.Username == "" || a.PasswordKey == "" {
				errs = append(errs, errors.New("destination.auth basic needs username and password_key"))
			}
		case "header":
			if !strings.EqualFold(a.Name, "authorization") || a.ValueKey == "" {
				errs = append(errs, errors.New(`destination.auth header needs name "Authorization" and value_key`))
			}
		case "muso-sih":
			if a.Username == "" || a.PasswordKey == "" || a.Path == "" {
				errs = append(errs, errors.New("destination.auth muso-sih needs username, password_key and path"))
			}
		default:
			errs = append(errs, fmt.Errorf("destination.auth.type %q: CHT accepts basic, header or muso-sih", a.Type))
		}
	}
	if p.Cron != "" {
		// shared-libs/transitions/src/lib/utils.js isWithinTimeFrame.
		// Due also tells a cron CHT accepts that never falls due.
		if err := cron.Due(p.Cron); err != nil {
			errs = append(errs, fmt.Errorf("%w: CHT would never send this push (it stays queued)", err))
		}
	}
	if len(p.Mapping) == 0 {
		errs = append(errs, errors.New("mapping is required"))
	}
	keys := make([]string, 0, len(p.Mapping))
	for k := range p.Mapping {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := p.Mapping[k]
		switch {
		case k == "":
			errs = append(errs, errors.New("mapping has an empty destination path"))
		case (v.Path == "") == (v.Expr == ""):
			errs = append(errs, fmt.Errorf("mapping %q: set exactly one of path and expr", k))
		case v.Path != "" && v.Path != "doc" && !strings.HasPrefix(v.Path, "doc."):
			errs = append(errs, fmt.Errorf("mapping %q: source path %q must start with doc", k, v.Path))
		}
	}
	return errors.Join(errs...)
}

// JSON validates the configuration and returns the outbound block,
// indented for app_settings.json.
func (c Config) JSON() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return marshalSettings(map[string]Push(c))
}

// marshalSettings indents v without HTML escaping, so that JavaScript
// such as "a && b" stays readable in app_settings.json.
func marshalSettings(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// AppSettings validates the configuration and returns the app_settings
// fragment {"transitions": {"mark_for_outbound": true}, "outbound": {...}}
// to merge into a CHT configuration.
func (c Config) AppSettings() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return marshalSettings(map[string]any{
		"transitions": map[string]bool{"mark_for_outbound": true},
		"outbound":    map[string]Push(c),
	})
}
