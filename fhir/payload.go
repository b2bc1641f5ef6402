package fhir

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// EncounterPayload is the outbound push payload used by the
// cht-interoperability mediators (cht-api.md §6.1 "POST /cht/encounter"):
// a report id, the patient's _id, reported_date and a list of observations
// already mapped by the CHT outbound configuration.
type EncounterPayload struct {
	ID           string               `json:"id"`
	PatientUUID  string               `json:"patient_uuid"`
	ReportedDate cht.Millis           `json:"reported_date"`
	Form         string               `json:"form,omitempty"` // optional; selects Encounter.type from the mapping
	Observations []PayloadObservation `json:"observations"`
}

// PayloadObservation is one entry of EncounterPayload.Observations. Exactly
// one value must be set; ValueInteger must fit in 32 bits (FHIR integer).
// Code must not contain '#': when a code repeats in
// a payload, the n-th occurrence (n >= 2) is identified as "<code>#<n>".
type PayloadObservation struct {
	Code          string           `json:"code"`
	Label         string           `json:"label,omitempty"`
	ValueQuantity *PayloadQuantity `json:"valueQuantity,omitempty"`
	ValueCode     *string          `json:"valueCode,omitempty"`
	ValueString   *string          `json:"valueString,omitempty"`
	ValueBoolean  *bool            `json:"valueBoolean,omitempty"`
	ValueInteger  *int             `json:"valueInteger,omitempty"`
	ValueDateTime *string          `json:"valueDateTime,omitempty"`
	ValueTime     *string          `json:"valueTime,omitempty"`
}

// PayloadQuantity is a quantity value in an outbound payload.
type PayloadQuantity struct {
	Value  json.Number `json:"value"`
	Unit   string      `json:"unit,omitempty"`
	System string      `json:"system,omitempty"`
	Code   string      `json:"code,omitempty"`
}

// DecodeEncounterPayload decodes an outbound encounter payload with a
// hand-written decoder that does a handful of allocations (the result holds
// substrings of a single copy of data). Unknown keys are ignored, like
// encoding/json does; errors name the offending key.
func DecodeEncounterPayload(data []byte) (*EncounterPayload, error) {
	p := new(EncounterPayload)
	d := &scanner{s: string(data), strict: true}
	if d.null() {
		return nil, &ConversionError{Field: "", Reason: "payload is null"}
	}
	field, obsIndex := "", -1
	pool := &valuePool{}
	d.object(func(k string) {
		field, obsIndex = k, -1
		switch canon(k, "id", "patient_uuid", "form", "reported_date", "observations") {
		case "id":
			d.strInto(&p.ID)
		case "patient_uuid":
			d.strInto(&p.PatientUUID)
		case "form":
			d.strInto(&p.Form)
		case "reported_date":
			switch d.peek() {
			case '"':
				s := d.str()
				if s == "" {
					p.ReportedDate = 0
					return
				}
				ms, ok := cht.ParseMillis(s)
				if !ok {
					d.fail("invalid date %q", s)
				}
				p.ReportedDate = ms
			case 'n':
				d.null()
				p.ReportedDate = 0
			default:
				n := d.number()
				if d.err != nil {
					return
				}
				ms, err := strconv.ParseInt(n, 10, 64)
				if err != nil {
					f, ferr := strconv.ParseFloat(n, 64)
					if ferr != nil || f > 9.2e18 || f < -9.2e18 {
						d.fail("invalid timestamp %s", n)
						return
					}
					ms = int64(f)
				}
				p.ReportedDate = cht.Millis(ms)
			}
		case "observations":
			if d.null() {
				p.Observations = nil
				return
			}
			if p.Observations == nil {
				p.Observations = make([]PayloadObservation, 0, 24)
			}
			p.Observations = p.Observations[:0]
			obsIndex = 0
			d.array(func() {
				p.Observations = append(p.Observations, PayloadObservation{})
				d.observation(&p.Observations[len(p.Observations)-1], pool)
				if d.err == nil {
					obsIndex++
				}
			})
		default:
			d.skip(0)
		}
	})
	d.end()
	if d.err != nil {
		if field == "observations" && obsIndex >= 0 {
			field += "." + strconv.Itoa(obsIndex)
		}
		return nil, &ConversionError{Field: field, Reason: "invalid JSON", Err: d.err}
	}
	return p, nil
}

// valuePool holds the decoded values the PayloadObservation pointers point
// to, so that a payload takes a few allocations instead of one per value.
// When a slice grows, earlier pointers keep pointing into the old backing
// array, which stays valid.
type valuePool struct {
	strs  []string
	bools []bool
	ints  []int
	qtys  []PayloadQuantity
}

func (vp *valuePool) str(s string) *string {
	if len(vp.strs) == cap(vp.strs) {
		vp.strs = make([]string, 0, 32)
	}
	vp.strs = append(vp.strs, s)
	return &vp.strs[len(vp.strs)-1]
}

func (vp *valuePool) boolean(b bool) *bool {
	if len(vp.bools) == cap(vp.bools) {
		vp.bools = make([]bool, 0, 32)
	}
	vp.bools = append(vp.bools, b)
	return &vp.bools[len(vp.bools)-1]
}

func (vp *valuePool) integer(i int) *int {
	if len(vp.ints) == cap(vp.ints) {
		vp.ints = make([]int, 0, 32)
	}
	vp.ints = append(vp.ints, i)
	return &vp.ints[len(vp.ints)-1]
}

func (vp *valuePool) quantity() *PayloadQuantity {
	if len(vp.qtys) == cap(vp.qtys) {
		vp.qtys = make([]PayloadQuantity, 0, 16)
	}
	vp.qtys = append(vp.qtys, PayloadQuantity{})
	return &vp.qtys[len(vp.qtys)-1]
}

// canon returns the known key matching k, exactly or else
// case-insensitively (as encoding/json matches struct fields), or k.
func canon(k string, known ...string) string {
	for _, c := range known {
		if k == c {
			return c
		}
	}
	for _, c := range known {
		if strings.EqualFold(k, c) {
			return c
		}
	}
	return k
}

// strInto decodes a string into *dst; null leaves *dst unchanged.
func (d *scanner) strInto(dst *string) {
	if !d.null() {
		*dst = d.str()
	}
}

// strPtr decodes a string into *dst, taking storage from vp if needed;
// null sets *dst to nil.
func (d *scanner) strPtr(dst **string, vp *valuePool) {
	if d.null() {
		*dst = nil
		return
	}
	s := d.str()
	if *dst == nil {
		*dst = vp.str(s)
		return
	}
	**dst = s
}

func (d *scanner) observation(o *PayloadObservation, vp *valuePool) {
	if d.null() {
		return
	}
	d.object(func(k string) {
		switch canon(k, "code", "label", "valueQuantity", "valueCode", "valueString", "valueDateTime", "valueTime",
			"valueBoolean", "valueInteger") {
		case "code":
			d.strInto(&o.Code)
		case "label":
			d.strInto(&o.Label)
		case "valueQuantity":
			if d.null() {
				o.ValueQuantity = nil
				return
			}
			if o.ValueQuantity == nil {
				o.ValueQuantity = vp.quantity()
			}
			q := o.ValueQuantity
			d.object(func(k string) {
				switch canon(k, "value", "unit", "system", "code") {
				case "value":
					if d.null() {
						return
					}
					if d.peek() == '"' {
						d.fail("valueQuantity.value is a string")
						return
					}
					q.Value = json.Number(d.number())
				case "unit":
					d.strInto(&q.Unit)
				case "system":
					d.strInto(&q.System)
				case "code":
					d.strInto(&q.Code)
				default:
					d.skip(1)
				}
			})
		case "valueCode":
			d.strPtr(&o.ValueCode, vp)
		case "valueString":
			d.strPtr(&o.ValueString, vp)
		case "valueDateTime":
			d.strPtr(&o.ValueDateTime, vp)
		case "valueTime":
			d.strPtr(&o.ValueTime, vp)
		case "valueBoolean":
			if d.null() {
				o.ValueBoolean = nil
				return
			}
			b := d.boolean()
			if d.err == nil {
				o.ValueBoolean = vp.boolean(b)
			}
		case "valueInteger":
			if d.null() {
				o.ValueInteger = nil
				return
			}
			n := d.number()
			if d.err != nil {
				return
			}
			i, err := strconv.ParseInt(n, 10, 64)
			if err != nil || i != int64(int(i)) {
				d.fail("valueInteger %s is not an integer", n)
				return
			}
			o.ValueInteger = vp.integer(int(i))
		default:
			d.skip(1)
		}
	})
}

// ConvertPayload converts an outbound encounter payload to a transaction of
// one Encounter and one Observation per entry. Observation codes use
// Systems.Codes (the payload carries bare codes), valueCode becomes
// valueCodeableConcept in the same system.
func (c *Converter) ConvertPayload(p *EncounterPayload) (*Transaction, error) {
	if p == nil || p.ID == "" {
		return nil, &ConversionError{Field: "id", Reason: "payload has no id"}
	}
	if err := checkReportedDate(p.ID, p.ReportedDate); err != nil {
		return nil, err
	}
	x := &refs{c: c, in: make([]member, 0, 2)}
	enc, subj, effective := c.payloadEncounter(x, p)
	sh := c.newShared(effective)
	if p.PatientUUID != "" {
		sh.subject = copyRef(subj, &sh.subjRef, &sh.subjType, &sh.subjIdent, &sh.subjISys, &sh.subjIVal)
	}
	sh.encounter = copyRef(c.ref(x, "Encounter", p.ID), &sh.encRef, &sh.encType, &sh.encIdent, &sh.encISys, &sh.encIVal)
	t := &Transaction{Entries: make([]Entry, 0, 1+len(p.Observations))}
	t.Entries = append(t.Entries, c.entry(x, "Encounter", p.ID, "", enc, c.sys.DocumentID, p.ID))
	arenas := make([]obsArena, len(p.Observations))
	dups := dupCounter{obs: p.Observations}
	for i := range p.Observations {
		po := &p.Observations[i]
		if err := checkPayloadCode(p.ID, i, po.Code); err != nil {
			return nil, err
		}
		a := &arenas[i]
		o := &a.obs
		if err := c.setPayloadValue(a, po); err != nil {
			return nil, &ConversionError{DocID: p.ID, Field: "observations." + strconv.Itoa(i), Reason: err.Error()}
		}
		key := po.Code
		if n := dups.next(i); n > 0 {
			key = po.Code + "#" + strconv.Itoa(n+1)
		}
		o.Status = models.ObservationStatusFinal
		o.Meta = &sh.meta
		a.idValue = p.ID + "/" + key
		a.identifier[0] = models.Identifier{System: &sh.idSys, Value: &a.idValue}
		o.Identifier = a.identifier[:]
		a.coding[0] = models.Coding{System: &sh.codesSys, Code: setStr(&a.codeCode, po.Code),
			Display: optStr(&a.codeDisplay, po.Label)}
		o.Code = models.CodeableConcept{Coding: a.coding[:]}
		if p.PatientUUID != "" {
			o.Subject = &sh.subject
		}
		o.Encounter = &sh.encounter
		if effective != "" {
			o.EffectiveDateTime = &sh.effective
		}
		e := c.entry(x, "Observation", p.ID, key, o, c.sys.Observation, a.idValue)
		if c.cfg.Strategy == WritePut {
			a.id = e.FullURL[len("urn:uuid:"):]
			o.Id = &a.id
		}
		t.Entries = append(t.Entries, e)
	}
	return t, nil
}

// payloadEncounter builds the Encounter of a payload and returns it with
// the subject reference and the formatted reported date.
func (c *Converter) payloadEncounter(x *refs, p *EncounterPayload) (*models.Encounter, models.Reference, string) {
	x.add("Encounter", p.ID)
	var subj models.Reference
	if p.PatientUUID != "" {
		subj = c.ref(x, "Patient", p.PatientUUID)
	}
	enc := &models.Encounter{
		Id:         c.id(x, "Encounter", p.ID),
		Meta:       c.meta(x),
		Identifier: []models.Identifier{x.identifier(c.sys.DocumentID, p.ID, "CHT document ID", nil)},
		Status:     models.EncounterStatusFinished,
		Class:      models.Coding{System: x.s(*c.class.System), Code: x.s(*c.class.Code)},
	}
	if c.class.Display != nil {
		enc.Class.Display = x.s(*c.class.Display)
	}
	if p.Form != "" {
		if fi, ok := c.forms[lower(p.Form)]; ok {
			enc.Type = c.encounterType(x, fi, p.Form)
		}
	}
	if enc.Type == nil && c.cfg.EncounterType != nil {
		enc.Type = []models.CodeableConcept{{Coding: []models.Coding{coding(*c.cfg.EncounterType)}}}
	}
	if p.PatientUUID != "" {
		s := subj
		enc.Subject = &s
	}
	var effective string
	if !p.ReportedDate.IsZero() {
		effective = formatDateTime(p.ReportedDate.Time())
		enc.Period = &models.Period{Start: x.s(effective)}
	}
	return enc, subj, effective
}

// checkPayloadCode checks the code of observation i. A code may not contain
// '#': repeated codes get identifier values and ids keyed "<code>#<n>", so
// a literal "a#2" would collide with the second "a".
func checkPayloadCode(id string, i int, code string) error {
	switch {
	case code == "":
		return &ConversionError{DocID: id, Field: "observations." + strconv.Itoa(i) + ".code", Reason: "missing code"}
	case strings.IndexByte(code, '#') >= 0:
		return &ConversionError{DocID: id, Field: "observations." + strconv.Itoa(i) + ".code", Value: code,
			Reason: "code contains '#' (reserved for repeated codes)"}
	}
	return nil
}

// dupCounter numbers repeated observation codes: next returns how many
// earlier observations had the same code. Short payloads are scanned
// (no allocation); longer ones use a map so the cost stays linear.
type dupCounter struct {
	obs    []PayloadObservation
	counts map[string]int
}

const dupScanMax = 16

func (d *dupCounter) next(i int) int {
	code := d.obs[i].Code
	if len(d.obs) <= dupScanMax {
		n := 0
		for j := range d.obs[:i] {
			if d.obs[j].Code == code {
				n++
			}
		}
		return n
	}
	if d.counts == nil {
		d.counts = make(map[string]int, len(d.obs))
	}
	n := d.counts[code]
	d.counts[code] = n + 1
	return n
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func (c *Converter) setPayloadValue(a *obsArena, po *PayloadObservation) error {
	o := &a.obs
	n := 0
	if q := po.ValueQuantity; q != nil {
		n++
		v := string(q.Value)
		if !isValidNumber(v) {
			return fmt.Errorf("valueQuantity.value %q is not a number", v)
		}
		a.num = q.Value
		a.qty = models.Quantity{Value: &a.num, Unit: optStr(&a.unit, q.Unit), System: optStr(&a.unitSys, q.System),
			Code: optStr(&a.unitCode, q.Code)}
		if a.qty.Code != nil && a.qty.System == nil {
			return fmt.Errorf("valueQuantity.code %q has no system (qty-3)", q.Code)
		}
		o.ValueQuantity = &a.qty
	}
	if po.ValueCode != nil {
		n++
		if *po.ValueCode == "" {
			return fmt.Errorf("valueCode is empty")
		}
		a.vcoding[0] = models.Coding{System: setStr(&a.vSys, c.sys.Codes), Code: setStr(&a.vCode, *po.ValueCode)}
		a.vcc.Coding = a.vcoding[:]
		o.ValueCodeableConcept = &a.vcc
	}
	if po.ValueString != nil {
		n++
		if *po.ValueString == "" {
			return fmt.Errorf("valueString is empty")
		}
		a.s = *po.ValueString
		o.ValueString = &a.s
	}
	if po.ValueBoolean != nil {
		n++
		a.b = *po.ValueBoolean
		o.ValueBoolean = &a.b
	}
	if po.ValueInteger != nil {
		n++
		if v := *po.ValueInteger; v > math.MaxInt32 || v < math.MinInt32 {
			return fmt.Errorf("valueInteger %d is not a 32-bit integer", v)
		}
		a.i = *po.ValueInteger
		o.ValueInteger = &a.i
	}
	if po.ValueDateTime != nil {
		n++
		s, ok := fhirDateTime(*po.ValueDateTime)
		if !ok {
			return fmt.Errorf("valueDateTime %q is not a FHIR dateTime", *po.ValueDateTime)
		}
		a.s = s
		o.ValueDateTime = &a.s
	}
	if po.ValueTime != nil {
		n++
		s := *po.ValueTime
		if !timeRE(s) {
			return fmt.Errorf("valueTime %q is not a time (HH:MM[:SS])", s)
		}
		if len(s) == 5 {
			s += ":00"
		}
		a.s = s
		o.ValueTime = &a.s
	}
	switch n {
	case 0:
		return fmt.Errorf("no value")
	case 1:
		return nil
	}
	return fmt.Errorf("%d values (value[x] allows one)", n)
}

// PayloadBundleJSON decodes an outbound encounter payload and appends the
// JSON transaction Bundle (Encounter + Observations) to dst. It is the
// allocation-light path for high-volume outbound pushes: the Observations
// are written directly, without building samply values, and the result is
// byte-for-byte what ConvertPayload followed by Transaction.MarshalJSON
// gives (errors included), which payload_test.go and a fuzz target check.
//
// With a dst too small (nil, say) the output is allocated at the size recent
// payloads of the same length needed, so it is not copied while it grows.
func (c *Converter) PayloadBundleJSON(dst, payload []byte) ([]byte, error) {
	out, _, err := c.payloadBundleJSON(dst, payload)
	return out, err
}

// payloadBundleJSON is PayloadBundleJSON, which also returns the number of
// entries of the bundle.
func (c *Converter) payloadBundleJSON(dst, payload []byte) ([]byte, int, error) {
	p, err := DecodeEncounterPayload(payload)
	if err != nil {
		return dst, 0, err
	}
	if want := payloadSize.hint(len(payload)); cap(dst)-len(dst) < want {
		dst = append(make([]byte, 0, len(dst)+want), dst...)
	}
	n := len(dst)
	out, err := c.appendPayloadBundle(dst, p)
	if err != nil {
		return out, 0, err
	}
	payloadSize.observe(len(payload), len(out)-n)
	return out, 1 + len(p.Observations), nil // the Encounter and every Observation
}

// appendPayloadBundle appends the JSON transaction Bundle of p to dst; see
// [Converter.PayloadBundleJSON].
func (c *Converter) appendPayloadBundle(dst []byte, p *EncounterPayload) ([]byte, error) {
	if p == nil || p.ID == "" {
		return dst, &ConversionError{Field: "id", Reason: "payload has no id"}
	}
	if err := checkReportedDate(p.ID, p.ReportedDate); err != nil {
		return dst, err
	}
	n := len(dst)
	x := &refs{c: c, in: make([]member, 0, 2)}
	enc, subj, effective := c.payloadEncounter(x, p)
	encEntry := c.entry(x, "Encounter", p.ID, "", enc, c.sys.DocumentID, p.ID)

	// Fragments shared by every Observation.
	fr := encoder{b: make([]byte, 0, 512)}
	first := true
	fr.meta(&first, enc.Meta)
	metaEnd := len(fr.b)
	if p.PatientUUID != "" {
		fr.ref(&first, `"subject":`, &subj)
	}
	subjEnd := len(fr.b)
	encRef := c.ref(x, "Encounter", p.ID)
	fr.ref(&first, `"encounter":`, &encRef)
	encEnd := len(fr.b)
	if effective != "" {
		fr.str(&first, `"effectiveDateTime":`, &effective)
	}
	metaFrag, subjFrag, encFrag, effFrag := fr.b[:metaEnd], fr.b[metaEnd:subjEnd], fr.b[subjEnd:encEnd], fr.b[encEnd:]

	e := encoder{b: dst}
	f := e.begin()
	e.strv(f, `"type":`, "transaction")
	e.key(f, `"entry":`)
	e.b = append(e.b, '[')
	e.entry(&encEntry)
	var a obsArena
	dups := dupCounter{obs: p.Observations}
	for i := range p.Observations {
		po := &p.Observations[i]
		if err := checkPayloadCode(p.ID, i, po.Code); err != nil {
			return dst[:n], err
		}
		a = obsArena{}
		if err := c.setPayloadValue(&a, po); err != nil {
			return dst[:n], &ConversionError{DocID: p.ID, Field: "observations." + strconv.Itoa(i), Reason: err.Error()}
		}
		key, dup := po.Code, dups.next(i)
		u := c.uuidKey("Observation", p.ID, key, dup)
		e.b = append(e.b, `,{"fullUrl":"urn:uuid:`...)
		e.b = appendUUID(e.b, u)
		e.b = append(e.b, `","resource":{`...)
		if c.cfg.Strategy == WritePut {
			e.b = append(e.b, `"id":"`...)
			e.b = appendUUID(e.b, u)
			e.b = append(e.b, `",`...)
		}
		e.b = append(e.b, metaFrag...)
		e.b = append(e.b, `,"identifier":[{"system":`...)
		e.b = appendString(e.b, c.sys.Observation)
		e.b = append(e.b, `,"value":"`...)
		e.b = appendStringBody(e.b, p.ID)
		e.b = append(e.b, '/')
		e.b = appendStringBody(e.b, po.Code)
		if dup > 0 {
			e.b = append(e.b, '#')
			e.b = strconv.AppendInt(e.b, int64(dup+1), 10)
		}
		e.b = append(e.b, `"}],"status":"final","code":{"coding":[{"system":`...)
		e.b = appendString(e.b, c.sys.Codes)
		e.b = append(e.b, `,"code":`...)
		e.b = appendString(e.b, po.Code)
		if po.Label != "" {
			e.b = append(e.b, `,"display":`...)
			e.b = appendString(e.b, po.Label)
		}
		e.b = append(e.b, `}]}`...)
		e.b = append(e.b, subjFrag...)
		e.b = append(e.b, encFrag...)
		e.b = append(e.b, effFrag...)
		notFirst := false
		o := &a.obs
		e.quantity(&notFirst, `"valueQuantity":`, o.ValueQuantity)
		e.cc(&notFirst, `"valueCodeableConcept":`, o.ValueCodeableConcept)
		e.str(&notFirst, `"valueString":`, o.ValueString)
		e.boolean(&notFirst, `"valueBoolean":`, o.ValueBoolean)
		e.integer(&notFirst, `"valueInteger":`, o.ValueInteger)
		e.str(&notFirst, `"valueTime":`, o.ValueTime)
		e.str(&notFirst, `"valueDateTime":`, o.ValueDateTime)
		e.b = append(e.b, `,"resourceType":"Observation"},"request":{"method":`...)
		switch c.cfg.Strategy {
		case WritePut:
			e.b = append(e.b, `"PUT","url":"Observation/`...)
			e.b = appendUUID(e.b, u)
			e.b = append(e.b, '"')
		default:
			// The identifier value, unescaped, for the query.
			val := p.ID + "/" + key
			if dup > 0 {
				val += "#" + strconv.Itoa(dup+1)
			}
			q := identifierQuery(c.sys.Observation, val)
			if c.cfg.Strategy == WriteConditionalUpdate {
				e.b = append(e.b, `"PUT","url":`...)
				e.b = appendString(e.b, "Observation?"+q)
			} else {
				e.b = append(e.b, `"POST","url":"Observation","ifNoneExist":`...)
				e.b = appendString(e.b, q)
			}
		}
		e.b = append(e.b, `}}`...)
		if e.err != nil {
			return dst[:n], fmt.Errorf("fhir: encode: %w", e.err)
		}
	}
	e.b = append(e.b, ']')
	e.resourceType(f, "Bundle")
	if e.err != nil {
		return dst[:n], fmt.Errorf("fhir: encode: %w", e.err)
	}
	return e.b, nil
}
