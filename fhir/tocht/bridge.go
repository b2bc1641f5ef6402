package tocht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/contentcoding"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/redact"
	"github.com/cht-interop/openhim-mediator-go/mediator"
)

// BasePath is the path below which [Bridge.Handler] serves FHIR.
const BasePath = "/fhir"

// DefaultTimeout is the deadline of one request, all CHT calls included.
const DefaultTimeout = 20 * time.Second

// DefaultMaxBodyBytes is the default limit of a request body.
const DefaultMaxBodyBytes = 4 << 20

// DefaultMaxBundleEntries is the default cap on the entries of a Bundle
// (Config.MaxBundleEntries). The bridge writes a Bundle's entries one
// after the other within the request's deadline, at two CHT calls an
// entry (its CHT document read, then written), so that a Bundle costs
// about twice its entries in CHT round trips. Measured through the
// mediator against the fake CHT (cht/chttest; BenchmarkBundleEntry in the
// package's tests), an entry costs under 1 ms on loopback, and 53 ms with
// 25 ms added to every CHT call. 200 entries then take about 11 s, half of
// DefaultTimeout, which leaves the other half to slower CHT calls, the
// FHIR server's reads (Config.FHIRURL) and retries; with 50 ms a call
// they take the whole deadline. Without a cap, a Bundle within the body
// limit (tens of thousands of small entries) can outlast the deadline on
// every retry of the sender, and never get through.
const DefaultMaxBundleEntries = 200

// maxResource is the largest resource fhir.ParseResource reads (8 MiB).
const maxResource = 8 << 20

// FHIRContentType is the content type of every answer: FHIR's JSON media
// type with the charset FHIR requires servers to state (R4
// http.html#mime-type: responses "SHALL explicitly set the character
// encoding to UTF-8 using the charset parameter").
const FHIRContentType = "application/fhir+json; charset=utf-8"

// Report fields filled from a ServiceRequest or Task besides the patient
// field (fhir.InboundConfig.PatientField). They match the INTEROP_FOLLOW_UP
// form of cht-interoperability; a field the request does not give is left
// out. The report of a Task sent with the ServiceRequest it carries out
// (see the package documentation) takes the reason and due date of the
// ServiceRequest when the Task gives none.
const (
	// FieldRequestID holds the request's id (else its identifier value).
	FieldRequestID = "service_request_id"
	// FieldReason holds the text of the first reason code.
	FieldReason = "reason"
	// FieldDueDate holds the date the follow-up is due: the
	// ServiceRequest's occurrence (dateTime or period end), the Task's
	// restriction period end, as sent (a FHIR date or dateTime: any
	// other value is refused with 422, naming the element).
	FieldDueDate = "due_date"
)

// Config configures a Bridge.
type Config struct {
	// Converter converts FHIR to CHT documents. Required. Its Inbound
	// configuration sets the parent place of created people, the task form
	// and the patient field; its Systems the identifier systems.
	Converter *fhir.Converter
	// CHT is the CHT instance written to. Required. Give it an HTTPClient
	// whose transport is mediator.Transport so that CHT calls are recorded
	// as orchestrations. The user must be an online user allowed to write
	// documents (e.g. with can_edit), as writes go through /medic.
	CHT *cht.Client
	// MaxBodyBytes limits a request body (413 beyond); 0 means
	// DefaultMaxBodyBytes, and a limit above maxResource, the most
	// fhir.ParseResource reads, is maxResource. Keep the mediator's own
	// limit above it, so that the answer is an OperationOutcome.
	MaxBodyBytes int64
	// Timeout is the deadline of one request; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxBundleEntries caps the entries of a Bundle of any type: one with
	// more is refused whole, before anything is written, with 413 and an
	// OperationOutcome naming Bundle.entry that gives the cap. 0 means
	// DefaultMaxBundleEntries. Each entry costs about two CHT round trips
	// within Timeout: raise the cap only with Timeout, and lower it when
	// CHT answers slowly.
	MaxBundleEntries int
	// FHIRURL, when set, is the FHIR base URL (absolute http or https)
	// literal Patient references (Patient/<id>) of ServiceRequests, Tasks
	// and Observations are read from, to find the CHT person by the
	// Patient's identifiers, and on which a subject identifier that keys
	// no CHT person is looked up (Patient?identifier=<system>|<value>; see
	// the package documentation), and from which a Task sent without the
	// ServiceRequest it carries out reads it (its identity, reason, due
	// date and status), and a ServiceRequest sent after its Task reads the
	// Task; its user must be allowed to read Patients, ServiceRequests and
	// Tasks. Without it such a reference resolves only to a person keyed
	// by that id, such an identifier to none, and a Task knows its
	// ServiceRequest only by the id it names.
	FHIRURL string
	// FHIRUsername and FHIRPassword, when set, authenticate to FHIRURL with
	// basic auth. Config redacts FHIRPassword when it is logged or printed.
	FHIRUsername string
	FHIRPassword string
	// NotifyEMR, when set, makes every Task written to CHT get an R4 rest-hook Subscription on
	// FHIRURL (fhir.Client.SubscribeTask), removed again when the CHT write fails. A Task
	// without an id is then refused (422 naming Task.id): it can have no Subscription.
	NotifyEMR *fhir.TaskSubscription
	// HTTPClient is used for FHIRURL; its transport is wrapped with
	// mediator.Transport so calls become orchestrations. Nil means a client
	// with a 10 s timeout.
	HTTPClient *http.Client
	// AcceptCHTOrigin writes resources that carry the converter's CHT
	// source tag too. By default they are acknowledged (200) but not
	// written back, which breaks loops when the FHIR server notifies the
	// EMR side of what cht-to-fhir wrote. Each Observation is judged on
	// its own: in an Encounter whose Observations are partly tagged, the
	// untagged ones (the EMR's own) are written and the tagged ones
	// acknowledged.
	AcceptCHTOrigin bool
	// ContactTypes is the CHT app's contact hierarchy, as given to the
	// converter (fhir.Config.ContactTypes): load it with
	// cht.Client.ContactTypes. Its person types (such as c_patient or
	// c_chw) are people. The zero value knows none: then only "person",
	// the converter's Inbound.PersonType and PersonTypes are.
	ContactTypes cht.ContactTypes
	// PersonTypes are the contact types, besides "person", the
	// converter's Inbound.PersonType and the person types of
	// ContactTypes, that are people. A Patient updates, and a report's
	// subject is, only a CHT contact of one of these types.
	PersonTypes []string
	// Now returns the current time (reported_date of new documents); nil
	// means time.Now.
	Now func() time.Time
	// Logger receives one line per failed request; nil discards.
	Logger *slog.Logger
}

// String implements fmt.Stringer without the FHIR password.
func (c Config) String() string { return fmt.Sprintf("%+v", configFields(c.redacted())) }

// GoString implements fmt.GoStringer, so %#v does not print the FHIR
// password.
func (c Config) GoString() string { return fmt.Sprintf("%#v", configFields(c.redacted())) }

// LogValue implements slog.LogValuer: the settings a log reader needs,
// without the FHIR password, the NotifyEMR header or credentials in a URL.
func (c Config) LogValue() slog.Value {
	r := c.redacted()
	attrs := []slog.Attr{
		slog.String("fhir_url", r.FHIRURL), slog.String("fhir_username", r.FHIRUsername),
		slog.String("fhir_password", r.FHIRPassword), slog.Int64("max_body_bytes", r.MaxBodyBytes),
		slog.Duration("timeout", r.Timeout), slog.Int("max_bundle_entries", r.MaxBundleEntries),
		slog.Bool("accept_cht_origin", r.AcceptCHTOrigin), slog.Any("person_types", r.PersonTypes),
	}
	if r.NotifyEMR != nil {
		attrs = append(attrs, slog.String("notify_emr_endpoint", redact.URL(r.NotifyEMR.Endpoint)))
	}
	return slog.GroupValue(attrs...)
}

// configFields is Config without its methods, for formatting.
type configFields Config

// redacted returns c with FHIRPassword replaced by "REDACTED" and the
// credentials of FHIRURL dropped.
func (c Config) redacted() Config {
	if c.FHIRPassword != "" {
		c.FHIRPassword = "REDACTED"
	}
	c.FHIRURL = redact.URL(c.FHIRURL)
	return c
}

// Bridge writes incoming FHIR resources to CHT. It is safe for concurrent
// use.
type Bridge struct {
	cfg  Config
	conv *fhir.Converter
	cht  *cht.Client
	sys  fhir.Systems
	http *http.Client
	fhir *fhir.Client // for NotifyEMR; nil without it
	// tasks serialises the requests of one Task with NotifyEMR.
	tasks keyLocks
	log   *slog.Logger
	now   func() time.Time
	// personTypes are the contact types that are people (besides
	// "person" and the person types of types): Config.PersonTypes and the
	// converter's type of new people.
	personTypes []string
	types       cht.ContactTypes
}

// New returns a Bridge for cfg. It does no I/O.
func New(cfg Config) (*Bridge, error) {
	if cfg.Converter == nil {
		return nil, errors.New("tocht: Converter is required")
	}
	if cfg.CHT == nil {
		return nil, errors.New("tocht: CHT is required")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("tocht: MaxBodyBytes %d is negative", cfg.MaxBodyBytes)
	}
	if cfg.MaxBundleEntries < 0 {
		return nil, fmt.Errorf("tocht: MaxBundleEntries %d is negative", cfg.MaxBundleEntries)
	}
	if cfg.FHIRURL != "" {
		if u, err := url.Parse(cfg.FHIRURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("tocht: FHIRURL %q: want an absolute http(s) URL", redact.URL(cfg.FHIRURL))
		}
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	// A larger body would be read, then refused by fhir.ParseResource as
	// 400 instead of 413.
	cfg.MaxBodyBytes = min(cfg.MaxBodyBytes, maxResource)
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBundleEntries == 0 {
		cfg.MaxBundleEntries = DefaultMaxBundleEntries
	}
	cfg.FHIRURL = strings.TrimRight(cfg.FHIRURL, "/")
	hc := &http.Client{Timeout: 10 * time.Second}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	hc.Transport = mediator.Transport(hc.Transport)
	b := &Bridge{cfg: cfg, http: hc, conv: cfg.Converter, cht: cfg.CHT, sys: cfg.Converter.Systems(), log: cfg.Logger, now: cfg.Now}
	if cfg.NotifyEMR != nil {
		fc, err := newFHIRClient(cfg, hc)
		if err != nil {
			return nil, err
		}
		b.fhir = fc
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.personTypes, b.types = slices.Clone(cfg.PersonTypes), cfg.ContactTypes
	// The converter's type of new people (Inbound.PersonType), from a
	// probe conversion: the converter does not export its configuration.
	if p, err := cfg.Converter.PersonFromPatient(&models.Patient{Name: []models.HumanName{{Text: new("probe")}}}); err == nil {
		b.personTypes = append(b.personTypes, p.TypeID())
	}
	return b, nil
}

// isPerson reports whether the CHT document c is a person: of type
// "person", a person type of Config.ContactTypes, or one of personTypes
// and extra.
func (b *Bridge) isPerson(c *cht.Contact, extra ...string) bool {
	if !c.IsContact() {
		return false
	}
	t := c.TypeID()
	return b.types.IsPerson(t) || c.IsPerson(b.personTypes...) || slices.Contains(extra, t)
}

// checkDocID rejects a CHT _id that CouchDB reserves (one starting with
// "_", such as _design/...): no FHIR resource may read or write it.
func checkDocID(id, expr string) error {
	if strings.HasPrefix(id, "_") {
		return &Error{Status: http.StatusBadRequest, Err: invalid(expr,
			fmt.Sprintf("CHT _id %q starts with \"_\", which CouchDB reserves", id), models.IssueTypeValue)}
	}
	return nil
}

// resourceTypes are the types with their own route, in route order.
var resourceTypes = []string{"Patient", "ServiceRequest", "Task", "Observation"}

// Handler returns the bridge's routes below [BasePath] (see the package
// documentation). Other paths and methods below it are answered 404 or 405
// with an OperationOutcome.
func (b *Bridge) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range resourceTypes {
		mux.Handle("POST "+BasePath+"/"+rt, b.route(rt, false))
		mux.Handle("PUT "+BasePath+"/"+rt+"/{id}", b.route(rt, true))
	}
	mux.Handle("POST "+BasePath+"/Bundle", b.route("Bundle", false))
	mux.Handle("POST "+BasePath+"/{$}", b.route("Bundle", false))
	mux.Handle("POST "+BasePath, b.route("Bundle", false))
	mux.Handle(BasePath+"/", mediator.HandlerFunc(b.notSupported))
	mux.Handle(BasePath, mediator.HandlerFunc(b.notSupported))
	return mux
}

// route handles one resource type; withID routes carry the id in the path.
func (b *Bridge) route(resourceType string, withID bool) mediator.HandlerFunc {
	return func(r *mediator.Request) (*mediator.Result, error) {
		ctx, cancel := context.WithTimeout(r.Context(), b.cfg.Timeout)
		defer cancel()
		ctx = withLookups(ctx)
		res, err := b.serve(ctx, r, resourceType, withID)
		if err != nil {
			return b.failure(ctx, r, err), nil
		}
		return res, nil
	}
}

func (b *Bridge) serve(ctx context.Context, r *mediator.Request, resourceType string, withID bool) (*mediator.Result, error) {
	var pathID string
	if withID {
		pathID = r.PathValue("id")
		if err := checkID(pathID); err != nil {
			return nil, badID(resourceType+".id", fmt.Errorf("the URL's %w", err))
		}
	}
	body, err := b.readBody(r)
	if err != nil {
		return nil, err
	}
	if err := checkInput(body); err != nil {
		return nil, err
	}
	res, err := fhir.ParseResource(body)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Err: err}
	}
	if got := typeOf(res); got != resourceType {
		return nil, &Error{Status: http.StatusBadRequest, Err: invalid("resourceType",
			fmt.Sprintf("%s sent to %s", got, r.URL.Path), models.IssueTypeInvalid)}
	}
	if withID {
		if err := setID(res, pathID); err != nil {
			return nil, err
		}
	}
	if bundle, ok := res.(*models.Bundle); ok {
		return b.serveBundle(ctx, bundle)
	}
	u, err := b.plan(ctx, res, nil)
	if err == nil {
		switch r := res.(type) {
		case *models.Task:
			err = b.carryOutStored(ctx, r, u, nil)
		case *models.ServiceRequest:
			if err = requireRequestID(u); err == nil {
				u, err = b.joinStoredTask(ctx, r, u, nil, true)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if u.skip {
		return outcomeResult(http.StatusOK, informational(u.message)), nil
	}
	created, err := b.executeWithSubscription(ctx, u)
	if err != nil {
		return nil, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	out, err := u.answer(b.sys.DocumentID)
	if err != nil {
		return nil, err
	}
	h := http.Header{"Content-Type": {FHIRContentType}}
	return &mediator.Result{StatusCode: status, Status: mediator.StatusSuccessful, Header: h, Body: out,
		Properties: map[string]any{"cht_doc": u.docID}}, nil
}

// readBody checks the content type, its charset (UTF-8, or none) and the
// Content-Encoding (a body is not decoded: only identity is accepted) and
// reads the body within the limit.
func (b *Bridge) readBody(r *mediator.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if !isFHIRJSON(ct) {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Err: invalid("", fmt.Sprintf(
			"content type %q is not supported: send application/fhir+json or application/json", ct), models.IssueTypeNotSupported)}
	}
	if err := contentcoding.Check(r.Header); err != nil {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Err: invalid("", err.Error(), models.IssueTypeNotSupported)}
	}
	// FHIR bodies are UTF-8 (R4 http.html#mime-type); a body in another
	// charset, read as UTF-8, could be written as other text.
	_, params, _ := mime.ParseMediaType(ct)
	if !isUTF8(params["charset"]) {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Err: invalid("", fmt.Sprintf(
			"charset %q is not supported: FHIR bodies are UTF-8, send charset=utf-8 or none", params["charset"]), models.IssueTypeNotSupported)}
	}
	// A body of another FHIR version (R4 http.html#version-parameter:
	// fhirVersion=3.0 is STU3) would be read as R4.
	if v := params["fhirversion"]; v != "" && v != "4.0" && !strings.HasPrefix(v, "4.0.") {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Err: invalid("", fmt.Sprintf(
			"fhirVersion %q is not supported: the bridge reads FHIR R4, send fhirVersion=4.0 or none", v), models.IssueTypeNotSupported)}
	}
	for _, h := range []string{"If-Match", "If-None-Match", "If-Modified-Since"} {
		if r.Header.Get(h) != "" {
			return nil, &Error{Status: http.StatusBadRequest, Err: invalid("", h+": "+noVersions, models.IssueTypeNotSupported)}
		}
	}
	limit := b.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, tooLarge(min(limit, mb.Limit))
		}
		return nil, &Error{Status: http.StatusBadRequest, Err: fmt.Errorf("read body: %w", err)}
	}
	return data, nil
}

// noVersions is why a version precondition (If-Match, If-None-Match,
// If-Modified-Since; R4 http.html#concurrency, #cread) is refused rather
// than ignored: the bridge writes CHT documents and keeps no FHIR versions
// of them, so it cannot tell whether the condition holds.
const noVersions = "a version precondition is not supported: the bridge keeps no FHIR versions of what it writes to CHT, " +
	"so it cannot evaluate it; send the request without it (writes are keyed by id or identifier, so a repeat updates rather than duplicates)"

func tooLarge(limit int64) error {
	return &Error{Status: http.StatusRequestEntityTooLarge,
		Err: invalid("", fmt.Sprintf("body larger than %d bytes", limit), models.IssueTypeInvalid)}
}

// isFHIRJSON accepts the FHIR JSON media types and plain JSON, with any
// parameters.
func isFHIRJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/fhir+json", "application/json", "application/json+fhir":
		return true
	}
	return false
}

// isUTF8 reports whether charset, a Content-Type's charset parameter, is
// absent or names UTF-8 (utf8 is a common alias of it).
func isUTF8(charset string) bool {
	return charset == "" || strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8")
}

// notSupported answers every other path and method below BasePath.
func (b *Bridge) notSupported(r *mediator.Request) (*mediator.Result, error) {
	status, allow := http.StatusNotFound, ""
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, BasePath), "/")
	first, _, _ := strings.Cut(rest, "/")
	switch {
	case rest == "" || rest == "Bundle":
		status, allow = http.StatusMethodNotAllowed, "POST"
	case slices.Contains(resourceTypes, first):
		status, allow = http.StatusMethodNotAllowed, "POST, PUT"
	}
	msg := fmt.Sprintf("%s %s is not supported: this mediator accepts POST and PUT of %s, and POST of a Bundle to %s",
		r.Method, r.URL.Path, strings.Join(resourceTypes, ", "), BasePath)
	res := outcomeResult(status, fhir.NewOperationOutcome(fhir.OutcomeIssue{
		Severity: models.IssueSeverityError, Code: models.IssueTypeNotSupported, Diagnostics: msg}))
	if allow != "" {
		res.Header.Set("Allow", allow)
	}
	return res, nil
}

// Error is a failed request: the HTTP status answered and the cause, which
// becomes the OperationOutcome.
type Error struct {
	// Status is the HTTP status answered.
	Status int
	// Err is the cause; an *fhir.InvalidResourceError names the elements.
	Err error
}

// Error returns the cause's message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// failure turns an error into the OperationOutcome answer.
func (b *Bridge) failure(ctx context.Context, r *mediator.Request, err error) *mediator.Result {
	status := statusOf(err)
	oo := fhir.OutcomeFromError(err)
	switch {
	case status == http.StatusInternalServerError:
		// Not transient: a retry fails the same way until the mediator
		// (its configuration) is fixed.
		b.log.ErrorContext(ctx, "fhir-to-cht: not (or only partly) written to CHT: mediator error, fix the mediator; retrying will not help until then",
			"method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	case status > 500:
		oo = transientOutcome(err)
		b.log.WarnContext(ctx, "fhir-to-cht: not (or only partly) written to CHT; the sender should retry",
			"method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	res := outcomeResult(status, oo)
	if status == http.StatusServiceUnavailable || status == http.StatusBadGateway || status == http.StatusGatewayTimeout {
		res.Header.Set("Retry-After", "10")
	}
	return res
}

// statusOf maps an error to the status answered.
func statusOf(err error) int {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	if credentialsRefused(err) != nil {
		return http.StatusInternalServerError
	}
	var ce *cht.APIError
	if errors.As(err, &ce) {
		return http.StatusBadGateway
	}
	var ire *fhir.InvalidResourceError
	if errors.As(err, &ire) {
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// transientOutcome describes a failure the sender should retry. It does
// not claim that nothing was written: after a lost CHT answer, or a
// Bundle that failed halfway, part of the work may be done; the retry
// completes it without duplicates.
func transientOutcome(err error) *models.OperationOutcome {
	msg := "CHT or the FHIR server failed; the work may be partly done: retry the request, which is safe (writes are idempotent): " + err.Error()
	return &models.OperationOutcome{Issue: []models.OperationOutcomeIssue{{
		Severity: models.IssueSeverityError, Code: models.IssueTypeTransient, Diagnostics: &msg}}}
}

func informational(msg string) *models.OperationOutcome {
	return fhir.NewOperationOutcome(fhir.OutcomeIssue{Severity: models.IssueSeverityInformation,
		Code: models.IssueTypeInformational, Diagnostics: msg})
}

// outcomeResult answers an OperationOutcome.
func outcomeResult(status int, oo *models.OperationOutcome) *mediator.Result {
	body, err := json.Marshal(oo)
	if err != nil {
		// An OperationOutcome of strings always encodes; keep a valid
		// answer anyway.
		body = []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
	}
	res := &mediator.Result{StatusCode: status, Header: http.Header{"Content-Type": {FHIRContentType}}, Body: body}
	if status/100 == 2 {
		res.Status = mediator.StatusSuccessful
	}
	return res
}

// ErrorBody answers the errors a mediator makes itself (a body over
// mediator.Config.MaxBodyBytes, a handler's panic) with an
// OperationOutcome, as the Bridge answers its own: set it as
// mediator.Config.ErrorBody of the mediator serving [Bridge.Handler].
func ErrorBody(status int, err error) (contentType string, body []byte) {
	code := models.IssueTypeException
	if status == http.StatusRequestEntityTooLarge {
		code = models.IssueTypeInvalid
	}
	return FHIRContentType, outcomeResult(status, fhir.NewOperationOutcome(fhir.OutcomeIssue{
		Severity: models.IssueSeverityError, Code: code, Diagnostics: err.Error()})).Body
}

// invalid is an InvalidResourceError with one issue.
func invalid(expr, reason string, code models.IssueType) *fhir.InvalidResourceError {
	return &fhir.InvalidResourceError{Issues: []fhir.Issue{{Expression: expr, Reason: reason, Code: code}}}
}

// typeOf returns the resource type of a ParseResource result.
func typeOf(res any) string {
	switch r := res.(type) {
	case *models.Patient:
		return "Patient"
	case *models.ServiceRequest:
		return "ServiceRequest"
	case *models.Task:
		return "Task"
	case *models.Observation:
		return "Observation"
	case *models.Encounter:
		return "Encounter"
	case *models.Bundle:
		return "Bundle"
	case *contextResource:
		return r.ResourceType
	}
	return fmt.Sprintf("%T", res)
}

// setID applies the id of a PUT URL: the body's id must be absent or equal.
func setID(res any, id string) error {
	var p **string
	switch v := res.(type) {
	case *models.Patient:
		p = &v.Id
	case *models.ServiceRequest:
		p = &v.Id
	case *models.Task:
		p = &v.Id
	case *models.Observation:
		p = &v.Id
	default:
		return nil
	}
	if *p != nil && **p != id {
		return &Error{Status: http.StatusBadRequest, Err: invalid(typeOf(res)+".id",
			fmt.Sprintf("id %q differs from the URL's %q", **p, id), models.IssueTypeInvalid)}
	}
	*p = &id
	return nil
}

// credentialsRefused is the configuration error of a 401 or 403 that CHT
// or the FHIR server answered the mediator: its own credentials (or the
// CHT user's permissions) are wrong, and every retry fails the same way
// until the settings are fixed, so the answer is 500 without Retry-After
// rather than 502. nil for any other error.
func credentialsRefused(err error) error {
	var (
		se     *fhir.ServerError
		ce     *cht.APIError
		status int
		fix    string
	)
	switch {
	case errors.As(err, &ce):
		status, fix = ce.StatusCode, fixCHTCredentials
	case errors.As(err, &se):
		status, fix = se.StatusCode, fixFHIRCredentials
	default:
		return nil
	}
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		return nil
	}
	return &Error{Status: http.StatusInternalServerError,
		Err: fmt.Errorf("mediator configuration: HTTP %d, check %s: %w", status, fix, err)}
}

// What to check when CHT or the FHIR server refuses the mediator.
const (
	fixCHTCredentials  = "the CHT user's password and roles (cht.username, cht.password); a 403 may also be CHT refusing the document itself"
	fixFHIRCredentials = "the FHIR server's credentials (fhir.username, fhir.password)"
)
