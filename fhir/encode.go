package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"sync/atomic"
	"unsafe"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonscan"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonstr"
)

// This file is the fast JSON encoding path. It writes exactly the bytes that
// encoding/json produces for the samply types (same field order, same
// escaping, "resourceType" last) for the resources and elements this package
// produces, without reflection and without re-scanning nested output. Any
// value it does not handle (extensions, narrative, rarely used elements, other
// resource types) makes it fall back to encoding/json for that resource, so
// the output is always identical to json.Marshal. encode_test.go proves the
// equivalence over generated values and a fuzz target.

// errFallback aborts the fast path; the caller retries with encoding/json.
var errFallback = errors.New("fhir: fast path not applicable")

// appendJSON appends the JSON encoding of a FHIR resource to dst and returns
// the extended buffer. resource is a samply resource (value or pointer) or
// a *[Transaction]; other values are encoded with encoding/json. The output is
// byte-for-byte what json.Marshal produces for the same value. With a nil dst
// the output of a transaction is allocated at the size recent transactions
// of the same length needed, and that of a resource at the size of the last
// resource of its type, so it is not copied while it grows.
func appendJSON(dst []byte, resource any) ([]byte, error) {
	entries := -1
	switch t := resource.(type) {
	case *Transaction:
		if t != nil {
			entries = t.Len()
		}
	case Transaction:
		entries = t.Len()
	}
	kind := -1 // resSize's slot of a resource other than a transaction
	if dst == nil {
		if entries >= 0 {
			dst = make([]byte, 0, txSize.hint(entries))
		} else {
			kind = resourceKind(resource)
			dst = make([]byte, 0, resSize.hint(kind))
		}
	}
	n := len(dst)
	out, err := appendResource(dst, resource)
	if err == nil {
		if entries > 0 {
			txSize.observe(entries, len(out)-n)
		} else if kind >= 0 {
			resSize.observe(kind, len(out)-n)
		}
		return out, nil
	}
	if !errors.Is(err, errFallback) {
		return dst[:n], fmt.Errorf("fhir: encode: %w", err)
	}
	b, err := json.Marshal(resource)
	if err != nil {
		return dst[:n], fmt.Errorf("fhir: encode: %w", err)
	}
	return append(out[:n], b...), nil
}

// Marshal returns the JSON encoding of a FHIR resource: a samply resource
// (value or pointer) or a [Transaction], byte for byte what json.Marshal
// writes for it.
func Marshal(resource any) ([]byte, error) { return appendJSON(nil, resource) }

func appendResource(b []byte, resource any) ([]byte, error) {
	e := encoder{b: b}
	if err := e.resource(resource); err != nil {
		return b, err
	}
	return e.b, nil
}

// resource writes one resource; on error e.b is unchanged (and what it
// remembered of the discarded bytes forgotten).
func (e *encoder) resource(resource any) error {
	n := len(e.b)
	switch r := resource.(type) {
	case *models.Observation:
		e.observation(r)
	case models.Observation:
		e.observation(&r)
	case *models.Encounter:
		e.encounter(r)
	case models.Encounter:
		e.encounter(&r)
	case *models.Patient:
		e.patient(r)
	case models.Patient:
		e.patient(&r)
	case *models.Practitioner:
		e.practitioner(r)
	case models.Practitioner:
		e.practitioner(&r)
	case *models.Location:
		e.location(r)
	case models.Location:
		e.location(&r)
	case *models.Organization:
		e.organization(r)
	case models.Organization:
		e.organization(&r)
	case *models.OperationOutcome:
		e.operationOutcome(r)
	case models.OperationOutcome:
		e.operationOutcome(&r)
	case *models.Bundle:
		e.bundle(r)
	case models.Bundle:
		e.bundle(&r)
	case *Transaction:
		if r == nil {
			e.b = append(e.b, "null"...)
			return nil
		}
		e.transaction(r)
	case Transaction:
		e.transaction(&r)
	default:
		return errFallback
	}
	if err := e.err; err != nil {
		e.err = nil
		e.truncate(n)
		return err
	}
	return nil
}

// sizeHint estimates output sizes from recent ones: for an input of n units
// (entries of a transaction, bytes of a payload), the size of the last
// output for an input of about that size, with an eighth added so that the
// estimate is rarely short. One is shared by all converters: the documents of
// one deployment look alike.
type sizeHint struct {
	last    [64]atomic.Int64 // by size class of the input; 0 until observed
	initial int              // bytes per unit before any observation
}

// class maps an input size to a slot: exact below 32, then 4 slots per
// doubling.
func (h *sizeHint) class(units int) int {
	if units < 32 {
		return units
	}
	b := bits.Len(uint(units)) // ≥ 6
	c := 32 + (b-6)*4 + (units>>(b-3))&3
	return min(c, len(h.last)-1)
}

func (h *sizeHint) hint(units int) int {
	if v := h.last[h.class(units)].Load(); v > 0 {
		return int(v)
	}
	return units*h.initial + 512
}

func (h *sizeHint) observe(units, size int) {
	v := size + size/8 + 64
	// Above 32 KB an allocation is a large object (whole pages, taken
	// under the heap lock and given back to the OS by the scavenger): an
	// output that fits below with a little slack is kept there.
	const maxSmall = 32 << 10
	if v > maxSmall && size+size/32 <= maxSmall {
		v = maxSmall
	}
	h.last[h.class(units)].Store(int64(v))
}

// txSize sizes transactions by entries, payloadSize payload bundles by
// payload bytes, resSize single resources by type (resourceKind).
var (
	txSize      = sizeHint{initial: 1024}
	payloadSize = sizeHint{initial: 16}
	resSize     = sizeHint{initial: 0}
)

// resourceKind is the slot of a resource's type in resSize.
func resourceKind(resource any) int {
	switch resource.(type) {
	case *models.Patient, models.Patient:
		return 1
	case *models.Observation, models.Observation:
		return 2
	case *models.Encounter, models.Encounter:
		return 3
	case *models.Location, models.Location:
		return 4
	case *models.Organization, models.Organization:
		return 5
	case *models.Practitioner, models.Practitioner:
		return 6
	}
	return 0
}

type encoder struct {
	b   []byte
	err error
	// memo remembers where in b the last few shared elements were
	// written (the meta, subject, encounter and performer that all
	// Observations of a document point to), so that they are copied
	// rather than encoded again. Keys are pointers: a value is the same
	// only if it is the same variable, which cannot change during one
	// encoding.
	memo [4]memoEntry
	next int
}

type memoEntry struct {
	p    unsafe.Pointer
	n    int // slice length for slices
	s, t int // b[s:t] is its JSON
}

// cached writes the JSON remembered for (p, n), if any.
func (e *encoder) cached(p unsafe.Pointer, n int) bool {
	for i := range e.memo {
		if m := &e.memo[i]; m.p == p && m.n == n {
			e.b = append(e.b, e.b[m.s:m.t]...)
			return true
		}
	}
	return false
}

// remember records that b[s:] is the JSON of (p, n).
func (e *encoder) remember(p unsafe.Pointer, n, s int) {
	if e.err != nil {
		return
	}
	e.memo[e.next] = memoEntry{p: p, n: n, s: s, t: len(e.b)}
	e.next = (e.next + 1) % len(e.memo)
}

// truncate cuts b to n bytes and forgets what was written after it.
func (e *encoder) truncate(n int) {
	e.b = e.b[:n]
	for i := range e.memo {
		if e.memo[i].t > n {
			e.memo[i] = memoEntry{}
		}
	}
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// key writes the object key name, given as the literal `"name":`, preceded
// by a comma unless it is the first key (tracked by *first).
func (e *encoder) key(first *bool, name string) {
	if *first {
		*first = false
	} else {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, name...) // name is the quoted key with its colon
}

func (e *encoder) str(first *bool, name string, v *string) {
	if v != nil {
		e.key(first, name)
		e.b = appendString(e.b, *v)
	}
}

func (e *encoder) strv(first *bool, name, v string) {
	e.key(first, name)
	e.b = appendString(e.b, v)
}

func (e *encoder) boolean(first *bool, name string, v *bool) {
	if v != nil {
		e.key(first, name)
		e.b = strconv.AppendBool(e.b, *v)
	}
}

func (e *encoder) integer(first *bool, name string, v *int) {
	if v != nil {
		e.key(first, name)
		e.b = strconv.AppendInt(e.b, int64(*v), 10)
	}
}

func (e *encoder) number(first *bool, name string, v *json.Number) {
	if v == nil {
		return
	}
	e.key(first, name)
	s := string(*v)
	if s == "" {
		s = "0"
	}
	if !jsonscan.ValidNumber(s) {
		e.fail(fmt.Errorf("json: invalid number literal %q", s))
		return
	}
	e.b = append(e.b, s...)
}

func (e *encoder) strings(first *bool, name string, v []string) {
	if len(v) == 0 {
		return
	}
	e.key(first, name)
	e.b = append(e.b, '[')
	for i, s := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = appendString(e.b, s)
	}
	e.b = append(e.b, ']')
}

// enum writes an optional samply enum via its Code (as its MarshalJSON does).
func enum[T interface{ Code() string }](e *encoder, first *bool, name string, v *T) {
	if v != nil {
		e.strv(first, name, (*v).Code())
	}
}

func (e *encoder) noExt(ext []models.Extension) bool {
	if ext != nil {
		e.fail(errFallback)
		return false
	}
	return true
}

func (e *encoder) begin() *bool {
	e.b = append(e.b, '{')
	f := true
	return &f
}

func (e *encoder) end() { e.b = append(e.b, '}') }

// ---- data types ----
//
// The array writers below (codings, ccs, identifiers, refs, humanNames,
// telecom, and the loops in the resource writers) repeat the same loop on
// purpose. A generic array[T] helper taking the element writer as a func
// value was measured at the end of the first session: it added 3-29
// allocations per conversion (PayloadBundle 28 → 31, ReportBundleTyped
// 151 → 180) and pushed the payload path past its 19 µs target.

func (e *encoder) coding(c *models.Coding) {
	e.noExt(c.Extension)
	f := e.begin()
	e.str(f, `"id":`, c.Id)
	e.str(f, `"system":`, c.System)
	e.str(f, `"version":`, c.Version)
	e.str(f, `"code":`, c.Code)
	e.str(f, `"display":`, c.Display)
	e.boolean(f, `"userSelected":`, c.UserSelected)
	e.end()
}

func (e *encoder) codings(first *bool, name string, v []models.Coding) {
	if len(v) == 0 {
		return
	}
	e.key(first, name)
	e.b = append(e.b, '[')
	for i := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.coding(&v[i])
	}
	e.b = append(e.b, ']')
}

func (e *encoder) codeableConcept(c *models.CodeableConcept) {
	e.noExt(c.Extension)
	f := e.begin()
	e.str(f, `"id":`, c.Id)
	e.codings(f, `"coding":`, c.Coding)
	e.str(f, `"text":`, c.Text)
	e.end()
}

func (e *encoder) cc(first *bool, name string, c *models.CodeableConcept) {
	if c != nil {
		e.key(first, name)
		e.codeableConcept(c)
	}
}

func (e *encoder) ccs(first *bool, name string, v []models.CodeableConcept) {
	if len(v) == 0 {
		return
	}
	e.key(first, name)
	e.b = append(e.b, '[')
	for i := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.codeableConcept(&v[i])
	}
	e.b = append(e.b, ']')
}

func (e *encoder) period(first *bool, name string, p *models.Period) {
	if p == nil {
		return
	}
	e.key(first, name)
	e.noExt(p.Extension)
	f := e.begin()
	e.str(f, `"id":`, p.Id)
	e.str(f, `"start":`, p.Start)
	e.str(f, `"end":`, p.End)
	e.end()
}

func (e *encoder) identifier(id *models.Identifier) {
	e.noExt(id.Extension)
	f := e.begin()
	e.str(f, `"id":`, id.Id)
	enum(e, f, `"use":`, id.Use)
	e.cc(f, `"type":`, id.Type)
	e.str(f, `"system":`, id.System)
	e.str(f, `"value":`, id.Value)
	e.period(f, `"period":`, id.Period)
	e.ref(f, `"assigner":`, id.Assigner)
	e.end()
}

func (e *encoder) identifiers(first *bool, name string, v []models.Identifier) {
	if len(v) == 0 {
		return
	}
	e.key(first, name)
	e.b = append(e.b, '[')
	for i := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.identifier(&v[i])
	}
	e.b = append(e.b, ']')
}

func (e *encoder) reference(r *models.Reference) {
	e.noExt(r.Extension)
	f := e.begin()
	e.str(f, `"id":`, r.Id)
	e.str(f, `"reference":`, r.Reference)
	e.str(f, `"type":`, r.Type)
	if r.Identifier != nil {
		e.key(f, `"identifier":`)
		e.identifier(r.Identifier)
	}
	e.str(f, `"display":`, r.Display)
	e.end()
}

func (e *encoder) ref(first *bool, name string, r *models.Reference) {
	if r != nil {
		e.key(first, name)
		if e.cached(unsafe.Pointer(r), 0) {
			return
		}
		s := len(e.b)
		e.reference(r)
		e.remember(unsafe.Pointer(r), 0, s)
	}
}

func (e *encoder) refs(first *bool, name string, v []models.Reference) {
	if len(v) == 0 {
		return
	}
	e.key(first, name)
	if e.cached(unsafe.Pointer(&v[0]), len(v)) {
		return
	}
	s := len(e.b)
	e.b = append(e.b, '[')
	for i := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.reference(&v[i])
	}
	e.b = append(e.b, ']')
	e.remember(unsafe.Pointer(&v[0]), len(v), s)
}

func (e *encoder) quantity(first *bool, name string, q *models.Quantity) {
	if q == nil {
		return
	}
	e.key(first, name)
	e.noExt(q.Extension)
	f := e.begin()
	e.str(f, `"id":`, q.Id)
	e.number(f, `"value":`, q.Value)
	enum(e, f, `"comparator":`, q.Comparator)
	e.str(f, `"unit":`, q.Unit)
	e.str(f, `"system":`, q.System)
	e.str(f, `"code":`, q.Code)
	e.end()
}

func (e *encoder) meta(first *bool, m *models.Meta) {
	if m == nil {
		return
	}
	e.key(first, `"meta":`)
	if e.cached(unsafe.Pointer(m), 0) {
		return
	}
	defer e.remember(unsafe.Pointer(m), 0, len(e.b))
	e.noExt(m.Extension)
	f := e.begin()
	e.str(f, `"id":`, m.Id)
	e.str(f, `"versionId":`, m.VersionId)
	e.str(f, `"lastUpdated":`, m.LastUpdated)
	e.str(f, `"source":`, m.Source)
	e.strings(f, `"profile":`, m.Profile)
	e.codings(f, `"security":`, m.Security)
	e.codings(f, `"tag":`, m.Tag)
	e.end()
}

func (e *encoder) humanNames(first *bool, v []models.HumanName) {
	if len(v) == 0 {
		return
	}
	e.key(first, `"name":`)
	e.b = append(e.b, '[')
	for i := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		n := &v[i]
		e.noExt(n.Extension)
		f := e.begin()
		e.str(f, `"id":`, n.Id)
		enum(e, f, `"use":`, n.Use)
		e.str(f, `"text":`, n.Text)
		e.str(f, `"family":`, n.Family)
		e.strings(f, `"given":`, n.Given)
		e.strings(f, `"prefix":`, n.Prefix)
		e.strings(f, `"suffix":`, n.Suffix)
		e.period(f, `"period":`, n.Period)
		e.end()
	}
	e.b = append(e.b, ']')
}

func (e *encoder) telecom(first *bool, v []models.ContactPoint) {
	if len(v) == 0 {
		return
	}
	e.key(first, `"telecom":`)
	e.b = append(e.b, '[')
	for i := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		c := &v[i]
		e.noExt(c.Extension)
		f := e.begin()
		e.str(f, `"id":`, c.Id)
		enum(e, f, `"system":`, c.System)
		e.str(f, `"value":`, c.Value)
		enum(e, f, `"use":`, c.Use)
		e.integer(f, `"rank":`, c.Rank)
		e.period(f, `"period":`, c.Period)
		e.end()
	}
	e.b = append(e.b, ']')
}

// domain checks the DomainResource elements the fast path does not write.
func (e *encoder) domain(implicitRules, language *string, text *models.Narrative, ext, modExt []models.Extension) {
	if implicitRules != nil || language != nil || text != nil || ext != nil || modExt != nil {
		e.fail(errFallback)
	}
}

func (e *encoder) resourceType(first *bool, rt string) {
	e.key(first, `"resourceType":`)
	e.b = append(e.b, '"')
	e.b = append(e.b, rt...)
	e.b = append(e.b, '"', '}')
}

// ---- resources ----

func (e *encoder) observation(o *models.Observation) {
	e.domain(o.ImplicitRules, o.Language, o.Text, o.Extension, o.ModifierExtension)
	if o.EffectiveTiming != nil || o.ValueRange != nil || o.ValueRatio != nil || o.ValueSampledData != nil ||
		o.Note != nil || o.Specimen != nil || o.Device != nil || o.ReferenceRange != nil || o.Component != nil {
		e.fail(errFallback)
	}
	if e.err != nil {
		return
	}
	f := e.begin()
	e.str(f, `"id":`, o.Id)
	e.meta(f, o.Meta)
	e.identifiers(f, `"identifier":`, o.Identifier)
	e.refs(f, `"basedOn":`, o.BasedOn)
	e.refs(f, `"partOf":`, o.PartOf)
	e.strv(f, `"status":`, o.Status.Code())
	e.ccs(f, `"category":`, o.Category)
	e.key(f, `"code":`)
	e.codeableConcept(&o.Code)
	e.ref(f, `"subject":`, o.Subject)
	e.refs(f, `"focus":`, o.Focus)
	e.ref(f, `"encounter":`, o.Encounter)
	e.str(f, `"effectiveDateTime":`, o.EffectiveDateTime)
	e.period(f, `"effectivePeriod":`, o.EffectivePeriod)
	e.str(f, `"effectiveInstant":`, o.EffectiveInstant)
	e.str(f, `"issued":`, o.Issued)
	e.refs(f, `"performer":`, o.Performer)
	e.quantity(f, `"valueQuantity":`, o.ValueQuantity)
	e.cc(f, `"valueCodeableConcept":`, o.ValueCodeableConcept)
	e.str(f, `"valueString":`, o.ValueString)
	e.boolean(f, `"valueBoolean":`, o.ValueBoolean)
	e.integer(f, `"valueInteger":`, o.ValueInteger)
	e.str(f, `"valueTime":`, o.ValueTime)
	e.str(f, `"valueDateTime":`, o.ValueDateTime)
	e.period(f, `"valuePeriod":`, o.ValuePeriod)
	e.cc(f, `"dataAbsentReason":`, o.DataAbsentReason)
	e.ccs(f, `"interpretation":`, o.Interpretation)
	e.cc(f, `"bodySite":`, o.BodySite)
	e.cc(f, `"method":`, o.Method)
	e.refs(f, `"hasMember":`, o.HasMember)
	e.refs(f, `"derivedFrom":`, o.DerivedFrom)
	e.resourceType(f, "Observation")
}

func (e *encoder) encounter(r *models.Encounter) {
	e.domain(r.ImplicitRules, r.Language, r.Text, r.Extension, r.ModifierExtension)
	if r.StatusHistory != nil || r.ClassHistory != nil || r.EpisodeOfCare != nil || r.Appointment != nil ||
		r.Length != nil || r.ReasonReference != nil || r.Diagnosis != nil || r.Account != nil ||
		r.Hospitalization != nil || r.Location != nil {
		e.fail(errFallback)
	}
	if e.err != nil {
		return
	}
	f := e.begin()
	e.str(f, `"id":`, r.Id)
	e.meta(f, r.Meta)
	e.identifiers(f, `"identifier":`, r.Identifier)
	e.strv(f, `"status":`, r.Status.Code())
	e.key(f, `"class":`)
	e.coding(&r.Class)
	e.ccs(f, `"type":`, r.Type)
	e.cc(f, `"serviceType":`, r.ServiceType)
	e.cc(f, `"priority":`, r.Priority)
	e.ref(f, `"subject":`, r.Subject)
	e.refs(f, `"basedOn":`, r.BasedOn)
	if len(r.Participant) > 0 {
		e.key(f, `"participant":`)
		e.b = append(e.b, '[')
		for i := range r.Participant {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			p := &r.Participant[i]
			e.noExt(p.Extension)
			e.noExt(p.ModifierExtension)
			pf := e.begin()
			e.str(pf, `"id":`, p.Id)
			e.ccs(pf, `"type":`, p.Type)
			e.period(pf, `"period":`, p.Period)
			e.ref(pf, `"individual":`, p.Individual)
			e.end()
		}
		e.b = append(e.b, ']')
	}
	e.period(f, `"period":`, r.Period)
	e.ccs(f, `"reasonCode":`, r.ReasonCode)
	e.ref(f, `"serviceProvider":`, r.ServiceProvider)
	e.ref(f, `"partOf":`, r.PartOf)
	e.resourceType(f, "Encounter")
}

func (e *encoder) patient(p *models.Patient) {
	e.domain(p.ImplicitRules, p.Language, p.Text, p.Extension, p.ModifierExtension)
	if p.Address != nil || p.MaritalStatus != nil || p.MultipleBirthBoolean != nil || p.MultipleBirthInteger != nil ||
		p.Photo != nil || p.Contact != nil || p.Communication != nil || p.Link != nil {
		e.fail(errFallback)
	}
	if e.err != nil {
		return
	}
	f := e.begin()
	e.str(f, `"id":`, p.Id)
	e.meta(f, p.Meta)
	e.identifiers(f, `"identifier":`, p.Identifier)
	e.boolean(f, `"active":`, p.Active)
	e.humanNames(f, p.Name)
	e.telecom(f, p.Telecom)
	enum(e, f, `"gender":`, p.Gender)
	e.str(f, `"birthDate":`, p.BirthDate)
	e.boolean(f, `"deceasedBoolean":`, p.DeceasedBoolean)
	e.str(f, `"deceasedDateTime":`, p.DeceasedDateTime)
	e.refs(f, `"generalPractitioner":`, p.GeneralPractitioner)
	e.ref(f, `"managingOrganization":`, p.ManagingOrganization)
	e.resourceType(f, "Patient")
}

func (e *encoder) practitioner(p *models.Practitioner) {
	e.domain(p.ImplicitRules, p.Language, p.Text, p.Extension, p.ModifierExtension)
	if p.Address != nil || p.Photo != nil || p.Qualification != nil || p.Communication != nil {
		e.fail(errFallback)
	}
	if e.err != nil {
		return
	}
	f := e.begin()
	e.str(f, `"id":`, p.Id)
	e.meta(f, p.Meta)
	e.identifiers(f, `"identifier":`, p.Identifier)
	e.boolean(f, `"active":`, p.Active)
	e.humanNames(f, p.Name)
	e.telecom(f, p.Telecom)
	enum(e, f, `"gender":`, p.Gender)
	e.str(f, `"birthDate":`, p.BirthDate)
	e.resourceType(f, "Practitioner")
}

func (e *encoder) location(l *models.Location) {
	e.domain(l.ImplicitRules, l.Language, l.Text, l.Extension, l.ModifierExtension)
	if l.OperationalStatus != nil || l.Address != nil || l.PhysicalType != nil ||
		l.HoursOfOperation != nil || l.AvailabilityExceptions != nil || l.Endpoint != nil {
		e.fail(errFallback)
	}
	if e.err != nil {
		return
	}
	f := e.begin()
	e.str(f, `"id":`, l.Id)
	e.meta(f, l.Meta)
	e.identifiers(f, `"identifier":`, l.Identifier)
	enum(e, f, `"status":`, l.Status)
	e.str(f, `"name":`, l.Name)
	e.strings(f, `"alias":`, l.Alias)
	e.str(f, `"description":`, l.Description)
	enum(e, f, `"mode":`, l.Mode)
	e.ccs(f, `"type":`, l.Type)
	e.telecom(f, l.Telecom)
	e.position(f, l.Position)
	e.ref(f, `"managingOrganization":`, l.ManagingOrganization)
	e.ref(f, `"partOf":`, l.PartOf)
	e.resourceType(f, "Location")
}

// position writes a Location's position (a place's or a report's CHT
// geolocation).
func (e *encoder) position(first *bool, p *models.LocationPosition) {
	if p == nil {
		return
	}
	if p.Extension != nil || p.ModifierExtension != nil {
		e.fail(errFallback)
		return
	}
	e.key(first, `"position":`)
	f := e.begin()
	e.str(f, `"id":`, p.Id)
	e.number(f, `"longitude":`, &p.Longitude)
	e.number(f, `"latitude":`, &p.Latitude)
	e.number(f, `"altitude":`, p.Altitude)
	e.end()
}

func (e *encoder) organization(o *models.Organization) {
	e.domain(o.ImplicitRules, o.Language, o.Text, o.Extension, o.ModifierExtension)
	if o.Address != nil || o.Contact != nil || o.Endpoint != nil {
		e.fail(errFallback)
	}
	if e.err != nil {
		return
	}
	f := e.begin()
	e.str(f, `"id":`, o.Id)
	e.meta(f, o.Meta)
	e.identifiers(f, `"identifier":`, o.Identifier)
	e.boolean(f, `"active":`, o.Active)
	e.ccs(f, `"type":`, o.Type)
	e.str(f, `"name":`, o.Name)
	e.strings(f, `"alias":`, o.Alias)
	e.telecom(f, o.Telecom)
	e.ref(f, `"partOf":`, o.PartOf)
	e.resourceType(f, "Organization")
}

func (e *encoder) operationOutcome(o *models.OperationOutcome) {
	e.domain(o.ImplicitRules, o.Language, o.Text, o.Extension, o.ModifierExtension)
	if e.err != nil {
		return
	}
	f := e.begin()
	e.str(f, `"id":`, o.Id)
	e.meta(f, o.Meta)
	e.key(f, `"issue":`)
	if o.Issue == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for i := range o.Issue {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			is := &o.Issue[i]
			e.noExt(is.Extension)
			e.noExt(is.ModifierExtension)
			f := e.begin()
			e.str(f, `"id":`, is.Id)
			e.strv(f, `"severity":`, is.Severity.Code())
			e.strv(f, `"code":`, is.Code.Code())
			e.cc(f, `"details":`, is.Details)
			e.str(f, `"diagnostics":`, is.Diagnostics)
			e.strings(f, `"location":`, is.Location)
			e.strings(f, `"expression":`, is.Expression)
			e.end()
		}
		e.b = append(e.b, ']')
	}
	e.resourceType(f, "OperationOutcome")
}

func (e *encoder) bundle(bd *models.Bundle) {
	if bd.ImplicitRules != nil || bd.Language != nil || bd.Signature != nil {
		e.fail(errFallback)
		return
	}
	f := e.begin()
	e.str(f, `"id":`, bd.Id)
	e.meta(f, bd.Meta)
	if bd.Identifier != nil {
		e.key(f, `"identifier":`)
		e.identifier(bd.Identifier)
	}
	e.strv(f, `"type":`, bd.Type.Code())
	e.str(f, `"timestamp":`, bd.Timestamp)
	e.integer(f, `"total":`, bd.Total)
	if len(bd.Link) > 0 {
		e.key(f, `"link":`)
		e.b = append(e.b, '[')
		for i := range bd.Link {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.bundleLink(&bd.Link[i])
		}
		e.b = append(e.b, ']')
	}
	if len(bd.Entry) > 0 {
		e.key(f, `"entry":`)
		e.b = append(e.b, '[')
		for i := range bd.Entry {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			en := &bd.Entry[i]
			e.noExt(en.Extension)
			e.noExt(en.ModifierExtension)
			if en.Search != nil {
				e.fail(errFallback)
			}
			ef := e.begin()
			e.str(ef, `"id":`, en.Id)
			if len(en.Link) > 0 {
				e.key(ef, `"link":`)
				e.b = append(e.b, '[')
				for j := range en.Link {
					if j > 0 {
						e.b = append(e.b, ',')
					}
					e.bundleLink(&en.Link[j])
				}
				e.b = append(e.b, ']')
			}
			e.str(ef, `"fullUrl":`, en.FullUrl)
			if len(en.Resource) > 0 {
				e.key(ef, `"resource":`)
				e.raw(en.Resource)
			}
			e.request(ef, en.Request)
			if rs := en.Response; rs != nil {
				e.noExt(rs.Extension)
				e.noExt(rs.ModifierExtension)
				e.key(ef, `"response":`)
				rf := e.begin()
				e.str(rf, `"id":`, rs.Id)
				e.strv(rf, `"status":`, rs.Status)
				e.str(rf, `"location":`, rs.Location)
				e.str(rf, `"etag":`, rs.Etag)
				e.str(rf, `"lastModified":`, rs.LastModified)
				if len(rs.Outcome) > 0 {
					e.key(rf, `"outcome":`)
					e.raw(rs.Outcome)
				}
				e.end()
			}
			e.end()
		}
		e.b = append(e.b, ']')
	}
	e.resourceType(f, "Bundle")
}

func (e *encoder) bundleLink(l *models.BundleLink) {
	e.noExt(l.Extension)
	e.noExt(l.ModifierExtension)
	f := e.begin()
	e.str(f, `"id":`, l.Id)
	e.strv(f, `"relation":`, l.Relation)
	e.strv(f, `"url":`, l.Url)
	e.end()
}

func (e *encoder) request(first *bool, rq *models.BundleEntryRequest) {
	if rq == nil {
		return
	}
	e.noExt(rq.Extension)
	e.noExt(rq.ModifierExtension)
	e.key(first, `"request":`)
	f := e.begin()
	e.str(f, `"id":`, rq.Id)
	e.strv(f, `"method":`, rq.Method.Code())
	e.strv(f, `"url":`, rq.Url)
	e.str(f, `"ifNoneMatch":`, rq.IfNoneMatch)
	e.str(f, `"ifModifiedSince":`, rq.IfModifiedSince)
	e.str(f, `"ifMatch":`, rq.IfMatch)
	e.str(f, `"ifNoneExist":`, rq.IfNoneExist)
	e.end()
}

// raw appends an embedded JSON value the way encoding/json does for a
// json.RawMessage: validated, compacted and HTML-escaped.
func (e *encoder) raw(m json.RawMessage) {
	if isCompactSafe(m) && json.Valid(m) {
		e.b = append(e.b, m...)
		return
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, m); err != nil {
		e.fail(fmt.Errorf("json: error calling MarshalJSON for type json.RawMessage: %w", err))
		return
	}
	var esc bytes.Buffer
	json.HTMLEscape(&esc, buf.Bytes())
	e.b = append(e.b, esc.Bytes()...)
}

// isCompactSafe reports whether m has no insignificant white space and no
// byte that encoding/json would escape (<, >, &, U+2028, U+2029).
func isCompactSafe(m []byte) bool {
	inStr := false
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(m) && m[i+1] == 0x80 && (m[i+2] == 0xA8 || m[i+2] == 0xA9):
			return false
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ' ' || c == '\n' || c == '\r' || c == '\t'):
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string exactly like encoding/json with
// HTML escaping: <, >, & and U+2028/U+2029 are escaped, invalid UTF-8 is
// replaced by U+FFFD.
func appendString(dst []byte, s string) []byte { return jsonstr.Append(dst, s, true) }

// appendStringBody is appendString without the quotes.
func appendStringBody(dst []byte, s string) []byte { return jsonstr.AppendBody(dst, s, true) }
