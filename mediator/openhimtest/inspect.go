package openhimtest

import (
	"fmt"
	"net/http"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// Error is returned by the helpers that apply a core API operation directly
// (Register, SetConfig, AddChannel): it carries the status and body core
// would have answered.
type Error struct {
	StatusCode int
	Message    string
}

// Error formats the status and core's message.
func (e *Error) Error() string {
	return fmt.Sprintf("openhimtest: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Mediators returns copies of all registered mediators, in registration
// order, with unmasked config, as the library's type.
func (s *Server) Mediators() []openhim.RegisteredMediator {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]openhim.RegisteredMediator, 0, len(s.mediators))
	for _, m := range s.mediators {
		out = append(out, registered(m))
	}
	return out
}

// Mediator returns a copy of the mediator registered with urn (unmasked),
// as the library's type.
func (s *Server) Mediator(urn string) (openhim.RegisteredMediator, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMediator(urn)
	if m == nil {
		return openhim.RegisteredMediator{}, false
	}
	return registered(m), true
}

// registered converts a stored mediator to the library's type: their JSON
// shapes are core's.
func registered(m *storedMediator) openhim.RegisteredMediator {
	var r openhim.RegisteredMediator
	_ = remarshal(m, &r) // both are plain JSON documents
	return r
}

// Heartbeats returns the accepted heartbeats of urn, oldest first.
func (s *Server) Heartbeats(urn string) []Heartbeat {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneJSON(s.heartbeats[urn])
}

// ConfigPushes returns the heartbeats of urn whose answer carried config,
// oldest first.
func (s *Server) ConfigPushes(urn string) []ConfigPush {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneJSON(s.pushes[urn])
}

// Channels returns copies of all channels.
func (s *Server) Channels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Channel, 0, len(s.channels))
	for _, c := range s.channels {
		out = append(out, cloneJSON(*c))
	}
	return out
}

// Clients returns copies of the router clients.
func (s *Server) Clients() []RouterClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RouterClient, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, *c)
	}
	return out
}

// Transactions returns copies of all transactions, oldest first.
func (s *Server) Transactions() []Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Transaction, 0, len(s.txs))
	for _, t := range s.txs {
		out = append(out, copyTx(t))
	}
	return out
}

// Transaction returns a copy of the transaction with the given id.
func (s *Server) Transaction(id string) (Transaction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findTx(id)
	if t == nil {
		return Transaction{}, false
	}
	return copyTx(t), true
}

func copyTx(t *Transaction) Transaction {
	c := cloneJSON(*t)
	c.MediatorURN, c.MetadataError, c.MetricsSkipped, c.Updates = t.MediatorURN, t.MetadataError, t.MetricsSkipped, t.Updates
	c.Core4Crash = t.Core4Crash
	return c
}

// Register applies POST /mediators with core's rules to a registration
// document (any value that marshals to one, such as an
// openhim.Definition). It returns nil for core's 201.
func (s *Server) Register(doc any) error {
	var m map[string]any
	if err := remarshal(doc, &m); err != nil {
		return &Error{StatusCode: http.StatusBadRequest, Message: err.Error()}
	}
	if status, msg := s.addMediator(m); msg != "" {
		return &Error{StatusCode: status, Message: "Could not add Mediator via the API: " + msg}
	}
	return nil
}

// SetConfig applies PUT /mediators/:urn/config: masked passwords are
// restored, the config is validated against the configDefs and replaces the
// stored one, and _configModifiedTS is set so the next heartbeat pushes it.
func (s *Server) SetConfig(urn string, config map[string]any) error {
	var cfg map[string]any
	if err := remarshal(config, &cfg); err != nil {
		return &Error{StatusCode: http.StatusBadRequest, Message: err.Error()}
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	if status, msg := s.setConfig(urn, cfg); msg != "" {
		return &Error{StatusCode: status, Message: msg}
	}
	return nil
}

// AddChannel applies POST /channels to ch (the library's type, for
// example a default channel of an openhim.Definition) and returns the
// stored channel's id. Channels are routable at once (core needs ~1 s to
// refresh its cache).
func (s *Server) AddChannel(ch openhim.Channel) (string, error) {
	var c Channel
	if err := remarshal(ch, &c); err != nil {
		return "", &Error{StatusCode: http.StatusBadRequest, Message: err.Error()}
	}
	if msg := s.channelRules(&c); msg != "" {
		return "", &Error{StatusCode: http.StatusBadRequest, Message: msg}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.saveChannel(c); err != nil {
		return "", &Error{StatusCode: http.StatusBadRequest, Message: "Could not add channel via the API: " + err.Error()}
	}
	return s.channels[len(s.channels)-1].ID, nil
}

// Deregister applies DELETE /mediators/:urn (its config is lost, as in
// core). It reports whether the mediator existed.
func (s *Server) Deregister(urn string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.mediators {
		if m.URN == urn {
			s.mediators = append(s.mediators[:i], s.mediators[i+1:]...)
			return true
		}
	}
	return false
}

// UpdateTransaction applies PUT /transactions/:id with a Mongo-style update
// document (plain keys are $set; $set and $push with $each work), cutting
// its bodies to core's budget as PUT does (its keys taken in sorted order).
func (s *Server) UpdateTransaction(id string, update map[string]any) error {
	if update == nil {
		update = map[string]any{}
	}
	upd, ok := orderedObject(nil, update)
	if !ok {
		return &Error{StatusCode: http.StatusBadRequest, Message: "openhimtest: the update is not a JSON object"}
	}
	if status, msg := s.updateTransaction(id, upd); status != http.StatusOK {
		return &Error{StatusCode: status, Message: msg}
	}
	return nil
}

// String describes the server for logs.
func (s *Server) String() string {
	return fmt.Sprintf("openhimtest.Server{Version%d API %s router %s}", s.cfg.Version, s.URL, s.RouterURL)
}
