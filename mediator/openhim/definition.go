package openhim

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// Definition is the mediator registration document sent to OpenHIM core with
// POST /mediators. The JSON field names are core's.
//
// Core only updates a stored definition when Version is strictly greater
// than the stored one (same or lower versions are answered 201 and silently
// ignored), so bump Version whenever the definition changes.
type Definition struct {
	URN         string `json:"urn"`
	Version     string `json:"version"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Endpoints are the routes core uses to reach this mediator.
	Endpoints []Route `json:"endpoints,omitempty"`
	// DefaultChannelConfig holds channels that can be installed in core with
	// [Client.InstallChannels] (core never installs them on registration).
	DefaultChannelConfig []Channel `json:"defaultChannelConfig,omitempty"`
	// ConfigDefs describe the mediator's configuration parameters; see
	// [ConfigDefsOf] to derive them from a Go struct.
	ConfigDefs []ConfigDef `json:"configDefs,omitempty"`
	// Config holds default config values. Core keeps an existing value when a
	// mediator re-registers, so these are defaults only.
	Config map[string]any `json:"config,omitempty"`
}

// Route is an OpenHIM route (RouteDef). It is used both for mediator
// endpoints and for channel routes.
type Route struct {
	Name string `json:"name"`
	// Type is "http" (default), "kafka" (core 8+), or "tcp" / "mllp" (core 7 and older).
	Type string `json:"type,omitempty"`
	// Host and Port are required by core 7 and older.
	Host          string `json:"host,omitempty"`
	Port          int    `json:"port,omitempty"`
	Path          string `json:"path,omitempty"`
	PathTransform string `json:"pathTransform,omitempty"`
	Primary       bool   `json:"primary,omitempty"`
	Secured       bool   `json:"secured,omitempty"`
	Username      string `json:"username,omitempty"`
	// Password is sent to core as is; String, GoString and LogValue
	// redact it.
	Password          string `json:"password,omitempty"`
	ForwardAuthHeader bool   `json:"forwardAuthHeader,omitempty"`
	// Status is "enabled" (core's default) or "disabled".
	Status string `json:"status,omitempty"`
	// Cert is the ObjectId (24 hex digits) of a CA certificate in core's
	// keystore, trusted for a secured route.
	Cert string `json:"cert,omitempty"`
	// KafkaClientID and KafkaTopic configure kafka routes (core 8+).
	KafkaClientID string `json:"kafkaClientId,omitempty"`
	KafkaTopic    string `json:"kafkaTopic,omitempty"`
	// WaitPrimaryResponse and StatusCodesCheck (e.g. "2**,404") gate a
	// secondary route on the primary's status (core 8+).
	WaitPrimaryResponse bool   `json:"waitPrimaryResponse,omitempty"`
	StatusCodesCheck    string `json:"statusCodesCheck,omitempty"`
	// A route has no timeout of its own: core's route schema has none and
	// drops one. Set [Channel.Timeout], which core applies to every route.
}

// String formats the route with its password redacted.
func (r Route) String() string {
	type plain Route // without the methods
	p := plain(r)
	p.Password = redactSecret(p.Password)
	return fmt.Sprintf("%+v", p)
}

// GoString is String, so %#v does not print the password either.
func (r Route) GoString() string { return "openhim.Route" + r.String() }

// LogValue logs the route with its password redacted.
func (r Route) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", r.Name), slog.String("type", r.Type), slog.String("host", r.Host),
		slog.Int("port", r.Port), slog.String("path", r.Path), slog.String("username", r.Username),
		slog.String("password", redactSecret(r.Password)))
}

// WithCredentials returns a copy of d whose http endpoints, and the http
// routes of its default channels to one of those endpoints (the same host
// and port), send username and password as basic credentials (route
// username and password), so that the channels core installs, and the
// mediator's endpoints an administrator adds as routes in the console, pass
// the mediator's inbound authentication. A channel's route to any other
// host or port is left alone: core would send it the mediator's
// credentials. Routes that already carry a username are left alone too.
// Without a username it returns d unchanged.
//
// mediator.New applies it to the Definition with the username and password
// its inbound authentication requires; use it directly to print the same
// definition (for example with [MetadataFor]).
func (d Definition) WithCredentials(username, password string) Definition {
	if username == "" {
		return d
	}
	type hostPort struct {
		host string
		port int
	}
	mine := map[hostPort]bool{}
	for _, e := range d.Endpoints {
		mine[hostPort{strings.ToLower(e.Host), e.Port}] = true
	}
	set := func(routes []Route, all bool) []Route {
		if len(routes) == 0 {
			return routes
		}
		out := append([]Route(nil), routes...)
		for i := range out {
			r := &out[i]
			if r.Username == "" && (r.Type == "" || r.Type == "http") && (all || mine[hostPort{strings.ToLower(r.Host), r.Port}]) {
				r.Username, r.Password = username, password
			}
		}
		return out
	}
	d.Endpoints = set(d.Endpoints, true)
	if len(d.DefaultChannelConfig) > 0 {
		chs := append([]Channel(nil), d.DefaultChannelConfig...)
		for i := range chs {
			chs[i].Routes = set(chs[i].Routes, false)
		}
		d.DefaultChannelConfig = chs
	}
	return d
}

// Channel is an OpenHIM channel (ChannelDef), used in
// [Definition.DefaultChannelConfig]. Pointer fields distinguish "unset"
// (core's default) from an explicit false or zero.
type Channel struct {
	Name string `json:"name"`
	// URLPattern is an unanchored JavaScript regular expression matched
	// against the request path; write "^/foo$".
	URLPattern  string `json:"urlPattern"`
	Description string `json:"description,omitempty"`
	// Type is "http" (default), "tcp", "tls" or "polling".
	Type string `json:"type,omitempty"`
	// Methods are the HTTP methods the channel accepts, e.g.
	// []string{"POST"}. Always list them: core 7.0.1 and later match no
	// request to a channel without methods (core 4 to 7.0.0 accept every
	// method then), so validation for core 7 and later refuses an empty
	// list.
	Methods []string `json:"methods,omitempty"`
	// Allow lists client IDs or roles allowed to use the channel.
	Allow     []string `json:"allow,omitempty"`
	Whitelist []string `json:"whitelist,omitempty"`
	// AuthType is "private" (default) or "public".
	AuthType          string   `json:"authType,omitempty"`
	Routes            []Route  `json:"routes,omitempty"`
	MatchContentTypes []string `json:"matchContentTypes,omitempty"`
	MatchContentRegex string   `json:"matchContentRegex,omitempty"`
	MatchContentXpath string   `json:"matchContentXpath,omitempty"`
	MatchContentJSON  string   `json:"matchContentJson,omitempty"`
	MatchContentValue string   `json:"matchContentValue,omitempty"`
	// Priority is 1 or more when set.
	Priority int `json:"priority,omitempty"`
	// Timeout in milliseconds, 1 to 3 600 000 when set, for each of the
	// channel's routes; core's router.timeout (60 s by default) otherwise.
	Timeout int `json:"timeout,omitempty"`
	// PollingSchedule is required for polling channels (cron or human interval).
	PollingSchedule string `json:"pollingSchedule,omitempty"`
	TCPHost         string `json:"tcpHost,omitempty"`
	TCPPort         int    `json:"tcpPort,omitempty"`
	RequestBody     *bool  `json:"requestBody,omitempty"`
	ResponseBody    *bool  `json:"responseBody,omitempty"`
	// MaxBodyAgeDays is 1 to 36499 when set, and needs RequestBody or
	// ResponseBody true (core's isMaxBodyDaysValid).
	MaxBodyAgeDays int `json:"maxBodyAgeDays,omitempty"`
	// IsAsynchronousProcess needs core 8.3 or later.
	IsAsynchronousProcess bool     `json:"isAsynchronousProcess,omitempty"`
	TxViewACL             []string `json:"txViewAcl,omitempty"`
	TxViewFullACL         []string `json:"txViewFullAcl,omitempty"`
	TxRerunACL            []string `json:"txRerunAcl,omitempty"`
	Alerts                []Alert  `json:"alerts,omitempty"`
	// Status is "enabled" (default), "disabled" or "deleted".
	Status              string        `json:"status,omitempty"`
	RewriteURLs         bool          `json:"rewriteUrls,omitempty"`
	AddAutoRewriteRules *bool         `json:"addAutoRewriteRules,omitempty"`
	RewriteURLsConfig   []RewriteRule `json:"rewriteUrlsConfig,omitempty"`
	AutoRetryEnabled    bool          `json:"autoRetryEnabled,omitempty"`
	// AutoRetryPeriodMinutes is 1 or more when set (core's default is 60).
	AutoRetryPeriodMinutes int `json:"autoRetryPeriodMinutes,omitempty"`
	// AutoRetryMaxAttempts: 0 means unlimited.
	AutoRetryMaxAttempts int              `json:"autoRetryMaxAttempts,omitempty"`
	Properties           []map[string]any `json:"properties,omitempty"`
}

// Alert is a channel alert.
type Alert struct {
	// Condition is "status" or "auto-retry-max-attempted".
	Condition   string   `json:"condition,omitempty"`
	Status      string   `json:"status,omitempty"`
	FailureRate int      `json:"failureRate,omitempty"`
	Groups      []string `json:"groups,omitempty"`
	Users       []any    `json:"users,omitempty"`
}

// RewriteRule is an entry of [Channel.RewriteURLsConfig].
type RewriteRule struct {
	FromHost      string `json:"fromHost"`
	ToHost        string `json:"toHost"`
	FromPort      int    `json:"fromPort,omitempty"`
	ToPort        int    `json:"toPort,omitempty"`
	PathTransform string `json:"pathTransform,omitempty"`
}

// ConfigType is the type of a mediator configuration parameter.
type ConfigType string

// The configuration parameter types core accepts. There is no array type:
// any type can be made an array with [ConfigDef.Array].
const (
	ConfigString    ConfigType = "string"
	ConfigBigString ConfigType = "bigstring"
	ConfigPassword  ConfigType = "password"
	ConfigNumber    ConfigType = "number"
	ConfigBool      ConfigType = "bool"
	ConfigOption    ConfigType = "option"
	ConfigMap       ConfigType = "map"
	ConfigStruct    ConfigType = "struct"
)

func (t ConfigType) valid() bool {
	switch t {
	case ConfigString, ConfigBigString, ConfigPassword, ConfigNumber, ConfigBool, ConfigOption, ConfigMap, ConfigStruct:
		return true
	}
	return false
}

// ConfigDef describes one configuration parameter (core's configDef).
type ConfigDef struct {
	Param       string     `json:"param"`
	DisplayName string     `json:"displayName,omitempty"`
	Description string     `json:"description,omitempty"`
	Type        ConfigType `json:"type"`
	// Values are the choices of an option parameter (required, non-empty).
	Values []string `json:"values,omitempty"`
	// Template describes the fields of a struct parameter; a template item
	// may not itself be a struct.
	Template []ConfigDef `json:"template,omitempty"`
	// Array makes the parameter a JSON array of values of Type.
	Array bool `json:"array,omitempty"`
}

// ValidationError reports a definition or config value that OpenHIM core
// would reject. Field names the offending field with a JSON path such as
// "endpoints[0].host" or "config.upstreamUrl". Reason never contains a
// configuration value.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "openhim: invalid: " + e.Reason
	}
	return "openhim: invalid " + e.Field + ": " + e.Reason
}

// Is reports whether target is [ErrInvalid].
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalidf(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks d with the rules OpenHIM core of the given major version
// applies on POST /mediators (0 means [DefaultCoreVersion]). It returns nil
// or one or more *ValidationError joined on one line (errors.As finds each).
//
// Unlike core, Validate always requires at least one endpoint: core only
// requires it for a URN it does not know yet, which a mediator cannot tell
// in advance (for example after being deleted in the console).
func (d *Definition) Validate(coreVersion int) error {
	rules := rulesFor(coreVersion)
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if strings.TrimSpace(d.URN) == "" {
		add(invalidf("urn", "URN is required"))
	}
	if _, ok := parseSemver(d.Version); !ok {
		add(invalidf("version", "version is required; must be in SemVer form x.y.z (got %q)", d.Version))
	}
	if strings.TrimSpace(d.Name) == "" {
		add(invalidf("name", "name is required"))
	}
	if len(d.Endpoints) == 0 {
		add(invalidf("endpoints", "at least 1 endpoint is required"))
	}
	for i, r := range d.Endpoints {
		add(rules.validateRoute(fmt.Sprintf("endpoints[%d]", i), r))
	}
	names := map[string]bool{}
	for i, ch := range d.DefaultChannelConfig {
		field := fmt.Sprintf("defaultChannelConfig[%d]", i)
		add(rules.validateChannel(field, ch))
		if ch.Name != "" {
			if names[ch.Name] {
				add(invalidf(field+".name", "duplicate channel name %q", ch.Name))
			}
			names[ch.Name] = true
		}
	}
	add(validateConfigDefs(d.ConfigDefs))
	if d.Config != nil {
		if config, err := plainConfig(d.Config); err != nil {
			add(err)
		} else {
			add(validateConfig(d.ConfigDefs, config))
		}
	}
	return joinErrors(errs...)
}

// LogValue logs the definition's identity only, never its config values.
func (d Definition) LogValue() slog.Value {
	return slog.GroupValue(slog.String("urn", d.URN), slog.String("version", d.Version), slog.String("name", d.Name))
}

// validateConfigDefs checks configDefs the way core's validateConfigDef
// does: a known type, non-empty values for option, a template without
// nested structs for struct, and a unique, non-empty param.
func validateConfigDefs(defs []ConfigDef) error {
	var errs []error
	seen := map[string]bool{}
	for i, def := range defs {
		field := fmt.Sprintf("configDefs[%d]", i)
		if def.Param == "" {
			errs = append(errs, invalidf(field+".param", "param is required"))
		} else if seen[def.Param] {
			errs = append(errs, invalidf(field+".param", "duplicate param %q", def.Param))
		}
		seen[def.Param] = true
		errs = append(errs, validateConfigDef(field, def, false))
	}
	return joinErrors(errs...)
}

func validateConfigDef(field string, def ConfigDef, inTemplate bool) error {
	if !def.Type.valid() {
		return invalidf(field+".type", "unknown type %q (want string, bigstring, password, number, bool, option, map or struct)", def.Type)
	}
	switch def.Type {
	case ConfigOption:
		if len(def.Values) == 0 {
			return invalidf(field+".values", "option requires a non-empty values array")
		}
	case ConfigStruct:
		if inTemplate {
			return invalidf(field+".type", "may not recursively specify 'struct'")
		}
		if len(def.Template) == 0 {
			return invalidf(field+".template", "struct requires a template")
		}
		var errs []error
		for j, item := range def.Template {
			f := fmt.Sprintf("%s.template[%d]", field, j)
			if item.Param == "" {
				errs = append(errs, invalidf(f+".param", "param is required"))
			}
			if item.Type == "" {
				errs = append(errs, invalidf(f+".type", "type is required"))
				continue
			}
			errs = append(errs, validateConfigDef(f, item, true))
		}
		return joinErrors(errs...)
	}
	return nil
}

// plainConfig returns config as the JSON core receives (and checks): a
// []string or a map[string]string becomes a []any or a map[string]any.
func plainConfig(config map[string]any) (map[string]any, error) {
	var plain map[string]any
	b, err := json.Marshal(config)
	if err == nil {
		err = json.Unmarshal(b, &plain)
	}
	if err != nil {
		return nil, invalidf("config", "cannot be sent as JSON: %v", err)
	}
	return plain, nil
}

// validateConfig checks config values against defs with core's
// validateConfig rules: every key needs a def; array params need arrays;
// string, bigstring and password need strings; number a number; bool a
// boolean; option one of the values; map an object of strings; struct an
// object whose keys are template params. Missing params are allowed, and
// so is null for a map or struct (also as an array element): core tests
// those with typeof, and typeof null is "object". Errors name the param
// but never include its value.
func validateConfig(defs []ConfigDef, config map[string]any) error {
	byParam := make(map[string]ConfigDef, len(defs))
	for _, d := range defs {
		byParam[d.Param] = d
	}
	var errs []error
	for _, k := range cfgSortedKeys(config) {
		def, ok := byParam[k]
		field := "config." + k
		if !ok {
			errs = append(errs, invalidf(field, "no config definition found for parameter %q", k))
			continue
		}
		errs = append(errs, validateConfigValue(field, def, config[k]))
	}
	return joinErrors(errs...)
}

func validateConfigValue(field string, def ConfigDef, v any) error {
	if def.Array {
		arr, ok := v.([]any)
		if !ok {
			return invalidf(field, "expected an array")
		}
		one := def
		one.Array = false
		var errs []error
		for i, el := range arr {
			errs = append(errs, validateConfigValue(fmt.Sprintf("%s[%d]", field, i), one, el))
		}
		return joinErrors(errs...)
	}
	switch def.Type {
	case ConfigString, ConfigBigString, ConfigPassword:
		switch v.(type) {
		case string:
			return nil
		}
		return invalidf(field, "expected a string")
	case ConfigNumber:
		if _, ok := cfgFloat(v); ok {
			return nil
		}
		return invalidf(field, "expected a number")
	case ConfigBool:
		if _, ok := v.(bool); ok {
			return nil
		}
		return invalidf(field, "expected a boolean")
	case ConfigOption:
		s, ok := v.(string)
		if ok {
			for _, o := range def.Values {
				if o == s {
					return nil
				}
			}
		}
		return invalidf(field, "expected one of %q", def.Values)
	case ConfigMap:
		if v == nil {
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return invalidf(field, "expected an object")
		}
		for _, k := range cfgSortedKeys(m) {
			if _, ok := m[k].(string); !ok {
				return invalidf(field+"."+k, "expected a string value in map")
			}
		}
		return nil
	case ConfigStruct:
		if v == nil {
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return invalidf(field, "expected an object")
		}
		params := map[string]bool{}
		for _, t := range def.Template {
			params[t.Param] = true
		}
		for _, k := range cfgSortedKeys(m) {
			if !params[k] {
				return invalidf(field+"."+k, "not a template param of the struct")
			}
		}
		return nil
	}
	return nil // unknown types are only logged by core; validateConfigDefs rejects them
}

// validMethods are the HTTP methods core accepts in a channel.
var validMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true}

func (r coreRules) validateChannel(field string, ch Channel) error {
	var errs []error
	if ch.Name == "" {
		errs = append(errs, invalidf(field+".name", "name is required"))
	}
	if ch.URLPattern == "" {
		errs = append(errs, invalidf(field+".urlPattern", "urlPattern is required"))
	}
	switch ch.Type {
	case "", "http", "tcp", "tls":
	case "polling":
		if ch.PollingSchedule == "" {
			errs = append(errs, invalidf(field+".pollingSchedule", "required for a polling channel: core stores a polling channel "+
				"without a schedule, and then every core worker fails on its next start (\"no polling schedule set on this channel\") "+
				"until the channel is deleted from core's database"))
		}
	default:
		errs = append(errs, invalidf(field+".type", "unknown channel type %q (want http, tcp, tls or polling)", ch.Type))
	}
	if r.methodsRequired && len(ch.Methods) == 0 && (ch.Type == "" || ch.Type == "http") {
		errs = append(errs, invalidf(field+".methods", "list the HTTP methods the channel accepts (e.g. [\"POST\"]): "+
			"core %d.x (from 7.0.1) routes no request to a channel without methods and answers 404", r.version))
	}
	// core's validateMethod (src/api/channels.js, v4.0.5 to v8.5.0), run
	// by addChannel on the body and by updateChannel on the stored
	// channel: methods only on an http channel, none repeated. POST
	// /mediators/:urn/channels skips it, as isMaxBodyDaysValid below.
	if len(ch.Methods) > 0 && ch.Type != "" && !strings.Contains(strings.ToLower(ch.Type), "http") {
		errs = append(errs, invalidf(field+".methods", "core refuses methods on a %s channel: they apply to http channels only", ch.Type))
	}
	seen := make(map[string]bool, len(ch.Methods))
	for i, m := range ch.Methods {
		switch {
		case !validMethods[m]:
			errs = append(errs, invalidf(fmt.Sprintf("%s.methods[%d]", field, i), "unknown method %q", m))
		case seen[m]:
			errs = append(errs, invalidf(fmt.Sprintf("%s.methods[%d]", field, i), "method %q is repeated (core refuses repeated methods)", m))
		}
		seen[m] = true
	}
	if ch.AuthType != "" && ch.AuthType != "private" && ch.AuthType != "public" {
		errs = append(errs, invalidf(field+".authType", "want private or public, got %q", ch.AuthType))
	}
	switch ch.Status {
	case "", "enabled", "disabled", "deleted":
	default:
		errs = append(errs, invalidf(field+".status", "want enabled, disabled or deleted, got %q", ch.Status))
	}
	if ch.Priority < 0 {
		errs = append(errs, invalidf(field+".priority", "must be at least 1"))
	}
	if ch.Timeout < 0 || ch.Timeout > 3600000 {
		errs = append(errs, invalidf(field+".timeout", "must be between 1 and 3600000 ms"))
	}
	// core's isMaxBodyDaysValid (src/api/channels.js, v4.0.5 to v8.5.0),
	// run by addChannel and by updateChannel on the stored channel:
	// 0 < maxBodyAgeDays < 36500, and only with requestBody or responseBody
	// true. POST /mediators/:urn/channels skips it, so without this check a
	// default channel installs once and every PUT of it (re-installing a
	// deleted one) gets 400.
	switch {
	case ch.MaxBodyAgeDays < 0 || ch.MaxBodyAgeDays >= 36500:
		errs = append(errs, invalidf(field+".maxBodyAgeDays", "must be between 1 and 36499"))
	case ch.MaxBodyAgeDays > 0 && !isTrue(ch.RequestBody) && !isTrue(ch.ResponseBody):
		errs = append(errs, invalidf(field+".maxBodyAgeDays", "needs requestBody or responseBody set to true"))
	}
	if ch.AutoRetryPeriodMinutes < 0 {
		errs = append(errs, invalidf(field+".autoRetryPeriodMinutes", "must be at least 1"))
	}
	if ch.AutoRetryMaxAttempts < 0 {
		errs = append(errs, invalidf(field+".autoRetryMaxAttempts", "must be at least 0"))
	}
	if ch.TCPPort < 0 || ch.TCPPort > 65536 {
		errs = append(errs, invalidf(field+".tcpPort", "must be between 0 and 65536"))
	}
	for i, a := range ch.Alerts {
		switch a.Condition {
		case "", "status", "auto-retry-max-attempted":
		default:
			errs = append(errs, invalidf(fmt.Sprintf("%s.alerts[%d].condition", field, i), "want status or auto-retry-max-attempted, got %q", a.Condition))
		}
		for j, g := range a.Groups {
			if !objectIDRE.MatchString(g) {
				errs = append(errs, invalidf(fmt.Sprintf("%s.alerts[%d].groups[%d]", field, i, j), "want the ObjectId (24 hex digits) of a contact group in core"))
			}
		}
	}
	primaries := 0
	for i, rt := range ch.Routes {
		errs = append(errs, r.validateRoute(fmt.Sprintf("%s.routes[%d]", field, i), rt))
		if rt.Primary && rt.Status != "disabled" {
			primaries++
		}
	}
	// Core counts the enabled primary routes (src/middleware/router.js
	// numberOfPrimaryRoutes, which skips a route whose status is
	// "disabled"); addChannel and updateChannel (src/api/channels.js)
	// refuse any number but one, and the router answers 404 on a channel
	// without one.
	switch {
	case primaries > 1:
		errs = append(errs, invalidf(field+".routes", "channel contains multiple primary routes"))
	case primaries == 0 && len(ch.Routes) > 0:
		errs = append(errs, invalidf(field+".routes", "channel must have one enabled primary route (core answers 404 on a channel without one)"))
	}
	return joinErrors(errs...)
}

// objectIDRE is a MongoDB ObjectId as core casts it from a string.
var objectIDRE = regexp.MustCompile(`^[0-9a-fA-F]{24}$`)

// pathTransformRE is core's isPathValid test of a pathTransform,
// unanchored as core's.
var pathTransformRE = regexp.MustCompile(`s/.*/.*`)

var statusCodesCheckRE = regexp.MustCompile(`^[1-5][0-9*]{2}(,[1-5][0-9*]{2})*$`)

func (r coreRules) validateRoute(field string, rt Route) error {
	var errs []error
	if rt.Name == "" {
		errs = append(errs, invalidf(field+".name", "name is required"))
	}
	typ := rt.Type
	if typ == "" {
		typ = "http"
	}
	if !r.routeTypes[typ] {
		errs = append(errs, invalidf(field+".type", "route type %q is not supported by core %d (want %s)", rt.Type, r.version, r.routeTypeList))
	}
	if r.hostPortRequired {
		if rt.Host == "" {
			errs = append(errs, invalidf(field+".host", "host is required by core %d", r.version))
		}
		if rt.Port == 0 {
			errs = append(errs, invalidf(field+".port", "port is required by core %d", r.version))
		}
	}
	// core's isPathValid (src/api/channels.js, v4.0.5 to v8.5.0), run by
	// addChannel and updateChannel: not both path and pathTransform, and
	// a pathTransform of the form s/from/to (its test is unanchored).
	if rt.Path != "" && rt.PathTransform != "" {
		errs = append(errs, invalidf(field+".pathTransform", "a route has path or pathTransform, not both"))
	} else if rt.PathTransform != "" && !pathTransformRE.MatchString(rt.PathTransform) {
		errs = append(errs, invalidf(field+".pathTransform", "want the form s/from/to[/g], got %q", rt.PathTransform))
	}
	if rt.Cert != "" && !objectIDRE.MatchString(rt.Cert) {
		errs = append(errs, invalidf(field+".cert", "want the ObjectId (24 hex digits) of a certificate in core's keystore"))
	}
	if rt.Port < 0 || rt.Port > 65536 {
		errs = append(errs, invalidf(field+".port", "must be between 0 and 65536"))
	}
	if typ == "kafka" && rt.KafkaTopic == "" {
		errs = append(errs, invalidf(field+".kafkaTopic", "required for a kafka route"))
	}
	if rt.Status != "" && rt.Status != "enabled" && rt.Status != "disabled" {
		errs = append(errs, invalidf(field+".status", "want enabled or disabled, got %q", rt.Status))
	}
	if !r.secondaryGating && (rt.WaitPrimaryResponse || rt.StatusCodesCheck != "") {
		errs = append(errs, invalidf(field+".waitPrimaryResponse", "waitPrimaryResponse and statusCodesCheck need core 8 or later"))
	}
	if rt.StatusCodesCheck != "" && !statusCodesCheckRE.MatchString(rt.StatusCodesCheck) {
		errs = append(errs, invalidf(field+".statusCodesCheck", "want a list like \"2**,404\", got %q", rt.StatusCodesCheck))
	}
	return joinErrors(errs...)
}

func isTrue(b *bool) bool { return b != nil && *b }
