package openhimtest

import (
	"encoding/json"
	"time"
)

// storedMediator is a registered mediator as core stores it (Mongoose MediatorSchema,
// reference §2.1). The underscore fields are core's internal bookkeeping; a
// nil pointer means the field is unset in core, which matters for the
// heartbeat's config-push comparison (§3).
type storedMediator struct {
	ID                   string         `json:"_id"`
	URN                  string         `json:"urn"`
	Version              string         `json:"version"`
	Name                 string         `json:"name"`
	Description          string         `json:"description,omitempty"`
	Endpoints            []Route        `json:"endpoints"`
	DefaultChannelConfig []Channel      `json:"defaultChannelConfig"`
	ConfigDefs           []configDef    `json:"configDefs"`
	Config               map[string]any `json:"config,omitempty"`
	ConfigModifiedTS     *time.Time     `json:"_configModifiedTS,omitempty"`
	LastHeartbeat        *time.Time     `json:"_lastHeartbeat,omitempty"`
	Uptime               *float64       `json:"_uptime,omitempty"`
}

// configDef is one entry of a mediator's configDefs (§2.1).
type configDef struct {
	Param       string      `json:"param,omitempty"`
	DisplayName string      `json:"displayName,omitempty"`
	Description string      `json:"description,omitempty"`
	Type        string      `json:"type,omitempty"`
	Values      []string    `json:"values,omitempty"`
	Template    []configDef `json:"template,omitempty"`
	Array       bool        `json:"array,omitempty"`
}

// Route is core's RouteDef, used for mediator endpoints and channel routes
// (§6).
type Route struct {
	Name              string `json:"name"`
	Type              string `json:"type,omitempty"`
	Host              string `json:"host,omitempty"`
	Port              int    `json:"port,omitempty"`
	Path              string `json:"path,omitempty"`
	PathTransform     string `json:"pathTransform,omitempty"`
	Primary           bool   `json:"primary,omitempty"`
	Secured           bool   `json:"secured,omitempty"`
	Username          string `json:"username,omitempty"`
	Password          string `json:"password,omitempty"`
	ForwardAuthHeader bool   `json:"forwardAuthHeader"`
	Status            string `json:"status,omitempty"`
	Cert              string `json:"cert,omitempty"`
	// WaitPrimaryResponse and StatusCodesCheck (core 8): the route runs
	// after the primary one, and only when the primary's status matches.
	WaitPrimaryResponse bool   `json:"waitPrimaryResponse,omitempty"`
	StatusCodesCheck    string `json:"statusCodesCheck,omitempty"`
}

// Channel is core's ChannelDef (§6), reduced to the fields the fake uses;
// other fields are kept in Extra and returned unchanged.
type Channel struct {
	ID                    string   `json:"_id,omitempty"`
	Name                  string   `json:"name"`
	Description           string   `json:"description,omitempty"`
	URLPattern            string   `json:"urlPattern"`
	Type                  string   `json:"type,omitempty"`
	Methods               []string `json:"methods,omitempty"`
	Allow                 []string `json:"allow"`
	Whitelist             []string `json:"whitelist,omitempty"`
	AuthType              string   `json:"authType,omitempty"`
	Routes                []Route  `json:"routes"`
	MatchContentTypes     []string `json:"matchContentTypes,omitempty"`
	Priority              int      `json:"priority,omitempty"`
	Timeout               int      `json:"timeout,omitempty"`
	Status                string   `json:"status,omitempty"`
	IsAsynchronousProcess bool     `json:"isAsynchronousProcess,omitempty"`
	TxViewACL             []string `json:"txViewAcl,omitempty"`
	AutoRetryEnabled      bool     `json:"autoRetryEnabled,omitempty"`
	AutoRetryMaxAttempts  int      `json:"autoRetryMaxAttempts,omitempty"`

	// Extra holds the channel fields the fake does not interpret.
	Extra map[string]any `json:"-"`
}

// RouterClient is a client application allowed to call the router (core's
// "clients" collection). The password is checked as
// hex(hash(passwordAlgorithm)(password + passwordSalt)) == passwordHash.
type RouterClient struct {
	ID                string   `json:"_id,omitempty"`
	ClientID          string   `json:"clientID"`
	Name              string   `json:"name"`
	Roles             []string `json:"roles,omitempty"`
	PasswordAlgorithm string   `json:"passwordAlgorithm,omitempty"`
	PasswordHash      string   `json:"passwordHash,omitempty"`
	PasswordSalt      string   `json:"passwordSalt,omitempty"`
}

// Transaction is a transaction as core stores it (src/model/transactions.js),
// returned by GET /transactions and by [Server.Transactions].
type Transaction struct {
	ID             string          `json:"_id"`
	ClientID       string          `json:"clientID,omitempty"`
	ClientIP       string          `json:"clientIP,omitempty"`
	ChannelID      string          `json:"channelID,omitempty"`
	Request        *RequestDef     `json:"request,omitempty"`
	Response       *ResponseDef    `json:"response,omitempty"`
	Orchestrations []Orchestration `json:"orchestrations,omitempty"`
	Properties     map[string]any  `json:"properties,omitempty"`
	Status         string          `json:"status"`
	Error          *ErrorDef       `json:"error,omitempty"`
	Routes         []RouteMetadata `json:"routes,omitempty"`
	CanRerun       bool            `json:"canRerun"`
	AutoRetry      bool            `json:"autoRetry"`

	// MediatorURN is the x-mediator-urn of the primary route's
	// application/json+openhim response, if any.
	MediatorURN string `json:"-"`
	// MetadataError is set when core would have failed to save the
	// response metadata (an orchestration without name or
	// request.timestamp, §5.2): response, orchestrations, properties and
	// error are then not stored. Version7 and Version8 only: the real
	// 4.0.5 stores such orchestrations (verified by the e2e test).
	MetadataError string `json:"-"`
	// MetricsSkipped reports that the mediator's response carried no
	// response.timestamp, so core records no metrics for it (§5.2).
	MetricsSkipped bool `json:"-"`
	// Core4Crash is set (Version4 only) when core 4.0.5 would write a
	// final-status update for this transaction: its status was computed by
	// core (no mediator status, or a plain route) or autoRetry was set (an
	// envelope error, an unreachable route). That update races the
	// response update and its metrics code then crashed the real core's
	// worker in our runs (NaN response time). Mediators that send a status
	// and no error avoid it.
	Core4Crash bool `json:"-"`
	// Updates counts PUT /transactions/:id calls applied to it.
	Updates int `json:"-"`
}

// RequestDef is the request part of a transaction or orchestration.
type RequestDef struct {
	Host        string            `json:"host,omitempty"`
	Port        string            `json:"port,omitempty"`
	Path        string            `json:"path,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Querystring string            `json:"querystring"`
	Body        string            `json:"body,omitempty"`
	Method      string            `json:"method,omitempty"`
	Timestamp   *time.Time        `json:"timestamp,omitempty"`
}

// ResponseDef is the response part of a transaction or orchestration.
type ResponseDef struct {
	Status    int               `json:"status,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      string            `json:"body,omitempty"`
	Timestamp *time.Time        `json:"timestamp,omitempty"`
}

// Orchestration is one entry of a transaction's orchestrations
// (OrchestrationMetadataDef, §5.2).
type Orchestration struct {
	Name     string       `json:"name"`
	Group    string       `json:"group,omitempty"`
	Request  *RequestDef  `json:"request,omitempty"`
	Response *ResponseDef `json:"response,omitempty"`
	Error    *ErrorDef    `json:"error,omitempty"`
}

// RouteMetadata is a secondary (non-primary) route's record in a
// transaction's routes.
type RouteMetadata struct {
	Name           string          `json:"name"`
	Request        *RequestDef     `json:"request,omitempty"`
	Response       *ResponseDef    `json:"response,omitempty"`
	Orchestrations []Orchestration `json:"orchestrations,omitempty"`
	Properties     map[string]any  `json:"properties,omitempty"`
	MediatorURN    string          `json:"mediatorURN,omitempty"`
	Error          *ErrorDef       `json:"error,omitempty"`

	rawBody bool // the response body was a Buffer (a plain answer)
}

// ErrorDef is core's {message, stack}.
type ErrorDef struct {
	Message string `json:"message,omitempty"`
	Stack   string `json:"stack,omitempty"`
}

// Heartbeat is one POST /mediators/:urn/heartbeat call core accepted (200).
type Heartbeat struct {
	Time            time.Time
	Uptime          float64
	ConfigRequested bool   // the body had "config": true
	ConfigPushed    bool   // the answer carried config (a JSON object or OK)
	Body            string // exactly what core answered: "", "OK" or JSON
}

// ConfigPush records a heartbeat whose answer carried config.
type ConfigPush struct {
	Time time.Time
	// Heartbeat is the index of the heartbeat in [Server.Heartbeats].
	Heartbeat int
	// Requested is true when the mediator asked with "config": true;
	// false when core pushed because _configModifiedTS > _lastHeartbeat.
	Requested bool
	// Config is the config sent; nil when core answered OK (no config).
	Config map[string]any
}

// cloneJSON deep-copies v through JSON; it is used to hand out plain values.
// All stored values come from JSON, so encoding cannot fail in practice; if
// it did, v itself is returned rather than panicking while a lock is held.
func cloneJSON[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

// channelKnown lists the JSON keys of Channel's typed fields.
var channelKnown = map[string]bool{
	"_id": true, "name": true, "description": true, "urlPattern": true, "type": true, "methods": true,
	"allow": true, "whitelist": true, "authType": true, "routes": true, "matchContentTypes": true,
	"priority": true, "timeout": true, "status": true, "isAsynchronousProcess": true, "txViewAcl": true,
	"autoRetryEnabled": true, "autoRetryMaxAttempts": true,
}

type channelAlias Channel

// MarshalJSON writes the typed fields and Extra.
func (c Channel) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(channelAlias(c))
	if err != nil || len(c.Extra) == 0 {
		return b, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if !channelKnown[k] {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the typed fields and keeps the others in Extra.
func (c *Channel) UnmarshalJSON(b []byte) error {
	var a channelAlias
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k := range m {
		if channelKnown[k] {
			delete(m, k)
		}
	}
	if len(m) > 0 {
		a.Extra = m
	}
	*c = Channel(a)
	return nil
}
