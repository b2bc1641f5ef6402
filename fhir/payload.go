package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/fhir/internal/jsonscan"
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
	return decodePayload(new(EncounterPayload), &valuePool{}, data, true)
}

// decodePayload decodes data into p, a zero EncounterPayload whose
// Observations may have capacity to reuse, taking value storage from pool.
// Unless copied, the strings of p alias data.
func decodePayload(p *EncounterPayload, pool *valuePool, data []byte, copied bool) (*EncounterPayload, error) {
	var s string
	if copied {
		s = string(data)
	} else {
		s = unsafe.String(unsafe.SliceData(data), len(data))
	}
	d := &scanner{jsonscan.New(s, true)}
	if d.Null() {
		return nil, &ConversionError{Field: "", Reason: "payload is null"}
	}
	field, obsIndex := "", -1
	d.Object(func(k string) {
		field, obsIndex = k, -1
		switch canon(k, "id", "patient_uuid", "form", "reported_date", "observations") {
		case "id":
			d.strInto(&p.ID)
		case "patient_uuid":
			d.strInto(&p.PatientUUID)
		case "form":
			d.strInto(&p.Form)
		case "reported_date":
			switch d.Peek() {
			case '"':
				s := d.Str()
				if s == "" {
					p.ReportedDate = 0
					return
				}
				ms, ok := cht.ParseMillis(s)
				if !ok {
					d.Fail("invalid date")
				}
				p.ReportedDate = ms
			case 'n':
				d.Null()
				p.ReportedDate = 0
			default:
				n := d.Number()
				if d.Err() != nil {
					return
				}
				ms, err := strconv.ParseInt(n, 10, 64)
				if err != nil {
					f, ferr := strconv.ParseFloat(n, 64)
					if ferr != nil || f > 9.2e18 || f < -9.2e18 {
						d.Fail("invalid timestamp")
						return
					}
					ms = int64(f)
				}
				p.ReportedDate = cht.Millis(ms)
			}
		case "observations":
			if d.Null() {
				p.Observations = nil
				return
			}
			if p.Observations == nil {
				p.Observations = make([]PayloadObservation, 0, 24)
			}
			p.Observations = p.Observations[:0]
			obsIndex = 0
			d.Array(func() {
				p.Observations = append(p.Observations, PayloadObservation{})
				d.observation(&p.Observations[len(p.Observations)-1], pool)
				if d.Err() == nil {
					obsIndex++
				}
			})
		default:
			d.Skip(0)
		}
	})
	d.End()
	if d.Err() != nil {
		if field == "observations" && obsIndex >= 0 {
			field += "." + strconv.Itoa(obsIndex)
		}
		return nil, &ConversionError{Field: field, Reason: "invalid JSON", Err: d.Err()}
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

// scanner is the JSON scanner with the payload decoder's readers.
type scanner struct{ jsonscan.Scanner }

// strInto decodes a string into *dst; null leaves *dst unchanged.
func (d *scanner) strInto(dst *string) {
	if !d.Null() {
		*dst = d.Str()
	}
}

// strPtr decodes a string into *dst, taking storage from vp if needed;
// null sets *dst to nil.
func (d *scanner) strPtr(dst **string, vp *valuePool) {
	if d.Null() {
		*dst = nil
		return
	}
	s := d.Str()
	if *dst == nil {
		*dst = vp.str(s)
		return
	}
	**dst = s
}

func (d *scanner) observation(o *PayloadObservation, vp *valuePool) {
	if d.Null() {
		return
	}
	d.Object(func(k string) {
		switch canon(k, "code", "label", "valueQuantity", "valueCode", "valueString", "valueDateTime", "valueTime",
			"valueBoolean", "valueInteger") {
		case "code":
			d.strInto(&o.Code)
		case "label":
			d.strInto(&o.Label)
		case "valueQuantity":
			if d.Null() {
				o.ValueQuantity = nil
				return
			}
			if o.ValueQuantity == nil {
				o.ValueQuantity = vp.quantity()
			}
			q := o.ValueQuantity
			d.Object(func(k string) {
				switch canon(k, "value", "unit", "system", "code") {
				case "value":
					if d.Null() {
						return
					}
					if d.Peek() == '"' {
						d.Fail("valueQuantity.value is a string")
						return
					}
					q.Value = json.Number(d.Number())
				case "unit":
					d.strInto(&q.Unit)
				case "system":
					d.strInto(&q.System)
				case "code":
					d.strInto(&q.Code)
				default:
					d.Skip(1)
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
			if d.Null() {
				o.ValueBoolean = nil
				return
			}
			b := d.Boolean()
			if d.Err() == nil {
				o.ValueBoolean = vp.boolean(b)
			}
		case "valueInteger":
			if d.Null() {
				o.ValueInteger = nil
				return
			}
			n := d.Number()
			if d.Err() != nil {
				return
			}
			i, err := strconv.ParseInt(n, 10, 64)
			if err != nil || i != int64(int(i)) {
				d.Fail("valueInteger is not an integer")
				return
			}
			o.ValueInteger = vp.integer(int(i))
		default:
			d.Skip(1)
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
	if p.ReportedDate != 0 {
		effective = formatDateTime(p.ReportedDate.Time())
		enc.Period = &models.Period{Start: x.s(effective)}
	}
	return enc, subj, effective
}

// checkPayloadCode checks the code of observation i: a FHIR code (see
// isCode) without '#': repeated codes get identifier values and ids keyed
// "<code>#<n>", so a literal "a#2" would collide with the second "a".
func checkPayloadCode(id string, i int, code string) error {
	switch {
	case code == "":
		return &ConversionError{DocID: id, Field: "observations." + strconv.Itoa(i) + ".code", Reason: "missing code"}
	case strings.IndexByte(code, '#') >= 0:
		return &ConversionError{DocID: id, Field: "observations." + strconv.Itoa(i) + ".code", Value: code,
			Reason: "code contains '#' (reserved for repeated codes)"}
	case !isCode(code):
		return &ConversionError{DocID: id, Field: "observations." + strconv.Itoa(i) + ".code", Value: code,
			Reason: notACode}
	}
	return nil
}

// notAURI says why a value is not a FHIR uri.
const notAURI = "not a FHIR uri (it contains white space)"

// isURI reports whether s can be a FHIR uri: FHIR R4's pattern \S* allows
// no white space.
func isURI(s string) bool { return !strings.ContainsFunc(s, unicode.IsSpace) }

// graphicPrefix returns the length of the longest prefix of s of bytes
// from '!' to DEL: printable ASCII without space.
func graphicPrefix(s string) int {
	// Eight bytes at a time (see textProblem): a byte below '!' or from
	// 0x80 sets its top bit in (x-0x21*lsb)&^x | x.
	i := 0
	for ; i+8 <= len(s); i += 8 {
		t := s[i : i+8]
		x := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		if ((x-0x21*lsb8)&^x|x)&msb8 != 0 {
			break
		}
	}
	for ; i < len(s) && s[i]-'!' < utf8.RuneSelf-'!'; i++ {
	}
	return i
}

// notACode says why a value is not a FHIR code.
const notACode = "not a FHIR code (white space only as single spaces between characters)"

// isCode reports whether s is a FHIR code: FHIR R4's pattern
// [^\s]+( [^\s]+)* (http://hl7.org/fhir/R4/datatypes.html#code), no
// white space at either end and none inside but single spaces. Any
// Unicode white space counts, as validators' \s differ in which they mean.
func isCode(s string) bool {
	// Most codes are printable ASCII without spaces.
	if graphicPrefix(s) == len(s) {
		return s != ""
	}
	return slowIsCode(s)
}

// slowIsCode is isCode for a string holding a space, a control character
// or a byte that is not ASCII.
func slowIsCode(s string) bool {
	space := true // a space may not lead
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if unicode.IsSpace(r) {
				return false
			}
			i += n - 1
			space = false
		case b == ' ':
			if space {
				return false
			}
			space = true
		case b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r':
			return false
		default:
			space = false
		}
	}
	return !space
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

// The value[x] a payload observation carries (checkPayloadValue).
const (
	pvQuantity = iota + 1
	pvCode
	pvString
	pvBoolean
	pvInteger
	pvDateTime
	pvTime
)

// checkPayloadValue checks the value of a payload observation and returns
// which one it is (pv*) and, for a dateTime, its FHIR form.
func checkPayloadValue(po *PayloadObservation) (kind int, dateTime string, err error) {
	n := 0
	if q := po.ValueQuantity; q != nil {
		n, kind = n+1, pvQuantity
		if v := string(q.Value); !jsonscan.ValidNumber(v) {
			return 0, "", errors.New("valueQuantity.value is not a number")
		}
		if q.Code != "" && q.System == "" {
			return 0, "", fmt.Errorf("valueQuantity.code %q has no system (qty-3)", q.Code)
		}
		if q.Code != "" && !isCode(q.Code) {
			return 0, "", fmt.Errorf("valueQuantity.code is %s", notACode)
		}
		if !isURI(q.System) {
			return 0, "", fmt.Errorf("valueQuantity.system is %s", notAURI)
		}
	}
	if po.ValueCode != nil {
		n, kind = n+1, pvCode
		if *po.ValueCode == "" {
			return 0, "", fmt.Errorf("valueCode is empty")
		}
		if !isCode(*po.ValueCode) {
			return 0, "", fmt.Errorf("valueCode is %s", notACode)
		}
	}
	if po.ValueString != nil {
		n, kind = n+1, pvString
		if *po.ValueString == "" {
			return 0, "", fmt.Errorf("valueString is empty")
		}
	}
	if po.ValueBoolean != nil {
		n, kind = n+1, pvBoolean
	}
	if po.ValueInteger != nil {
		n, kind = n+1, pvInteger
		if v := *po.ValueInteger; v > math.MaxInt32 || v < math.MinInt32 {
			return 0, "", errors.New("valueInteger is not a 32-bit integer")
		}
	}
	if po.ValueDateTime != nil {
		n, kind = n+1, pvDateTime
		s, ok := fhirDateTime(*po.ValueDateTime)
		if !ok {
			return 0, "", errors.New("valueDateTime is not a FHIR dateTime")
		}
		dateTime = s
	}
	if po.ValueTime != nil {
		n, kind = n+1, pvTime
		if s := *po.ValueTime; !isTime(s) {
			return 0, "", errors.New("valueTime is not a time (HH:MM[:SS])")
		}
	}
	switch n {
	case 0:
		return 0, "", fmt.Errorf("no value")
	case 1:
		return kind, dateTime, nil
	}
	return 0, "", fmt.Errorf("%d values (value[x] allows one)", n)
}

func (c *Converter) setPayloadValue(a *obsArena, po *PayloadObservation) error {
	kind, dateTime, err := checkPayloadValue(po)
	if err != nil {
		return err
	}
	o := &a.obs
	switch kind {
	case pvQuantity:
		q := po.ValueQuantity
		a.num = q.Value
		a.qty = models.Quantity{Value: &a.num, Unit: optStr(&a.unit, q.Unit), System: optStr(&a.unitSys, q.System),
			Code: optStr(&a.unitCode, q.Code)}
		o.ValueQuantity = &a.qty
	case pvCode:
		a.vcoding[0] = models.Coding{System: setStr(&a.vSys, c.sys.Codes), Code: setStr(&a.vCode, *po.ValueCode)}
		a.vcc.Coding = a.vcoding[:]
		o.ValueCodeableConcept = &a.vcc
	case pvString:
		a.s = *po.ValueString
		o.ValueString = &a.s
	case pvBoolean:
		a.b = *po.ValueBoolean
		o.ValueBoolean = &a.b
	case pvInteger:
		a.i = *po.ValueInteger
		o.ValueInteger = &a.i
	case pvDateTime:
		a.s = dateTime
		o.ValueDateTime = &a.s
	case pvTime:
		s := *po.ValueTime
		if len(s) == 5 {
			s += ":00"
		}
		a.s = s
		o.ValueTime = &a.s
	}
	return nil
}

// appendPayloadValue appends the value member of a payload observation
// checked by checkPayloadValue, with its leading comma, as the encoder
// writes it.
func (c *Converter) appendPayloadValue(b []byte, po *PayloadObservation, kind int, dateTime string) []byte {
	switch kind {
	case pvQuantity:
		q := po.ValueQuantity
		b = append(b, `,"valueQuantity":{"value":`...)
		b = append(b, q.Value...)
		if q.Unit != "" {
			b = append(b, `,"unit":`...)
			b = appendString(b, q.Unit)
		}
		if q.System != "" {
			b = append(b, `,"system":`...)
			b = appendString(b, q.System)
		}
		if q.Code != "" {
			b = append(b, `,"code":`...)
			b = appendString(b, q.Code)
		}
		b = append(b, '}')
	case pvCode:
		b = append(b, ',')
		b = append(b, c.direct.valueCode...)
		b = appendString(b, *po.ValueCode)
		b = append(b, "}]}"...)
	case pvString:
		b = append(b, `,"valueString":`...)
		b = appendString(b, *po.ValueString)
	case pvBoolean:
		b = append(b, `,"valueBoolean":`...)
		b = strconv.AppendBool(b, *po.ValueBoolean)
	case pvInteger:
		b = append(b, `,"valueInteger":`...)
		b = strconv.AppendInt(b, int64(*po.ValueInteger), 10)
	case pvDateTime:
		b = append(b, `,"valueDateTime":`...)
		b = appendString(b, dateTime)
	case pvTime:
		s := *po.ValueTime
		b = append(b, `,"valueTime":"`...)
		b = appendStringBody(b, s)
		if len(s) == 5 {
			b = append(b, ":00"...)
		}
		b = append(b, '"')
	}
	return b
}

// PayloadBundleJSON decodes an outbound encounter payload and appends the
// JSON transaction Bundle (Encounter + Observations) to dst. It is the
// allocation-light path for high-volume outbound pushes: the Observations
// are written directly, without building samply values, and the result is
// byte-for-byte what ConvertPayload followed by Transaction.MarshalJSON
// gives (errors included), which payload_test.go and a fuzz target check.
//
// With a dst too small (nil, say) the output is allocated once, at its size.
func (c *Converter) PayloadBundleJSON(dst, payload []byte) ([]byte, error) {
	out, _, _, err := c.payloadBundleJSON(dst, payload)
	return out, err
}

// payloadBundleJSON is PayloadBundleJSON, which also returns the number of
// entries of the bundle and the payload's id (its bytes are payload's).
func (c *Converter) payloadBundleJSON(dst, payload []byte) (_ []byte, _ int, id string, _ error) {
	sc := getScratch()
	// The decoded strings alias payload: nothing of them outlives this
	// call but the bytes copied to the output. An error may hold some, so
	// it is made again from a decoded copy.
	p, err := decodePayload(&sc.p, &sc.vp, payload, false)
	var out []byte
	n, entries := len(dst), 0
	if err == nil {
		if cap(dst)-len(dst) >= payloadSize.hint(len(payload)) {
			out, err = c.writePayloadBundle(dst, p, sc)
		} else {
			// Written in the scratch buffer, then copied to an output
			// allocated once at its size.
			sc.out, err = c.writePayloadBundle(sc.out[:0], p, sc)
			if err == nil {
				out = append(dst[:n:n], sc.out...)
			}
		}
		entries = 1 + len(p.Observations) // the Encounter and every Observation
		id = p.ID
	}
	putScratch(sc)
	if err != nil {
		p, err := DecodeEncounterPayload(payload)
		if err != nil {
			return dst[:n], 0, "", err
		}
		if _, err := c.appendPayloadBundle(dst[:n], p); err != nil {
			return dst[:n], 0, "", err
		}
		return dst[:n], 0, "", errors.New("fhir: payload conversion failed") // not reached: the same input failed above
	}
	payloadSize.observe(len(payload), len(out)-n)
	return out, entries, id, nil
}

// appendPayloadBundle appends the JSON transaction Bundle of p to dst; see
// [Converter.PayloadBundleJSON].
func (c *Converter) appendPayloadBundle(dst []byte, p *EncounterPayload) ([]byte, error) {
	sc := getScratch()
	defer putScratch(sc)
	return c.writePayloadBundle(dst, p, sc)
}

// writePayloadBundle is appendPayloadBundle with the scratch space sc. It
// writes what ConvertPayload followed by MarshalJSON writes, from the
// converter's constant fragments and the payload's strings, building no
// samply value. On error dst is returned unchanged.
func (c *Converter) writePayloadBundle(dst []byte, p *EncounterPayload, sc *directScratch) ([]byte, error) {
	if p == nil || p.ID == "" {
		return dst, &ConversionError{Field: "id", Reason: "payload has no id"}
	}
	if err := checkReportedDate(p.ID, p.ReportedDate); err != nil {
		return dst, err
	}
	n := len(dst)
	cf := c.direct
	put := c.cfg.Strategy == WritePut

	// The Encounter.
	encID := uuidText(c.uuid("Encounter", p.ID))
	b := append(dst, `{"type":"transaction","entry":[{"fullUrl":"urn:uuid:`...)
	b = append(b, encID[:]...)
	b = append(b, `","resource":{`...)
	if put {
		b = append(b, `"id":"`...)
		b = append(b, encID[:]...)
		b = append(b, `",`...)
	}
	b = append(b, cf.encIdent...)
	b = appendString(b, p.ID)
	b = append(b, cf.encClass...)
	typed := false
	if p.Form != "" {
		if fi, ok := c.forms[lower(p.Form)]; ok {
			b = cf.appendFormType(b, fi, p.Form)
			typed = true
		}
	}
	if !typed {
		b = append(b, cf.encType...)
	}
	// The members all Observations share, written by the Encounter first:
	// subject, then encounter and effectiveDateTime (below).
	subj := len(b)
	if p.PatientUUID != "" {
		b = append(b, `,"subject":`...)
		if put {
			pt := uuidText(c.uuid("Patient", p.PatientUUID))
			b = append(b, `{"reference":"Patient/`...)
			b = append(b, pt[:]...)
			b = append(b, `","type":"Patient"}`...)
		} else {
			b = append(b, cf.patientIdent...)
			b = appendString(b, p.PatientUUID)
			b = append(b, "}}"...)
		}
	}
	subjEnd := len(b)
	var eff []byte
	if p.ReportedDate != 0 {
		b = append(b, `,"period":{"start":"`...)
		s := len(b)
		b = p.ReportedDate.Time().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		eff = b[s:]
		b = append(b, `"}`...)
	}
	b = append(b, `,"resourceType":"Encounter"},"request":{"method":`...)
	b = c.appendRequest(b, "Encounter", encID[:], cf.docQuery, p.ID, "", 0)
	b = append(b, '}')

	// What follows each Observation's code: `}]}`, subject, encounter,
	// effectiveDateTime.
	sc.frag = append(sc.frag[:0], "}]}"...)
	sc.frag = append(sc.frag, b[subj:subjEnd]...)
	sc.frag = append(sc.frag, `,"encounter":{"reference":"urn:uuid:`...)
	sc.frag = append(sc.frag, encID[:]...)
	sc.frag = append(sc.frag, `","type":"Encounter"}`...)
	if eff != nil {
		sc.frag = append(sc.frag, `,"effectiveDateTime":"`...)
		sc.frag = append(sc.frag, eff...)
		sc.frag = append(sc.frag, '"')
	}
	shared := len(sc.frag)
	sc.frag = appendStringBody(sc.frag, p.ID)
	sc.frag = append(sc.frag, '/')
	idValue := len(sc.frag)
	refs, idPrefix := sc.frag[:shared], sc.frag[shared:idValue]

	sc.dups.reset(len(p.Observations))
	sc.ids.start(c.ns, "Observation", p.ID)
	for i := range p.Observations {
		po := &p.Observations[i]
		if err := checkPayloadCode(p.ID, i, po.Code); err != nil {
			return dst[:n], err
		}
		kind, dateTime, err := checkPayloadValue(po)
		if err != nil {
			return dst[:n], &ConversionError{DocID: p.ID, Field: "observations." + strconv.Itoa(i), Reason: err.Error()}
		}
		dup := sc.dups.next(po.Code)
		id := uuidText(sc.ids.uuid(po.Code, dup))
		b = appendObservationEntry(append(b, `,{"fullUrl":"urn:uuid:`...), id[:], put)
		b = append(b, cf.obsIdent...)
		b = append(b, idPrefix...)
		cs := len(b)
		b = appendStringBody(b, po.Code)
		ce := len(b)
		if dup > 0 {
			b = append(b, '#')
			b = strconv.AppendInt(b, int64(dup+1), 10)
		}
		b = append(b, cf.obsCode...)
		b = append(b, b[cs:ce]...)
		b = append(b, '"')
		if po.Label != "" {
			b = append(b, `,"display":`...)
			b = appendString(b, po.Label)
		}
		b = append(b, refs...)
		b = c.appendPayloadValue(b, po, kind, dateTime)
		b = append(b, `,"resourceType":"Observation"},"request":{"method":`...)
		b = c.appendRequest(b, "Observation", id[:], cf.obsQuery, p.ID, po.Code, dup)
		b = append(b, '}')
	}
	b = append(b, `],"resourceType":"Bundle"}`...)
	return b, nil
}

// appendRequest appends the members of the request of a resource of type
// rt after `"method":`, and its closing brace: for WritePut a PUT to
// rt/id, otherwise a conditional request on the identifier query
// (query is `identifier=<system>|`) whose value is docID, or docID/key
// (key#(dup+1) when dup > 0) when key is set.
func (c *Converter) appendRequest(b []byte, rt string, id []byte, query []byte, docID, key string, dup int) []byte {
	switch c.cfg.Strategy {
	case WritePut:
		b = append(b, `"PUT","url":"`...)
		b = append(b, rt...)
		b = append(b, '/')
		b = append(b, id...)
		return append(b, `"}`...)
	case WriteConditionalUpdate:
		b = append(b, `"PUT","url":"`...)
		b = append(b, rt...)
		b = append(b, '?')
	default:
		b = append(b, `"POST","url":"`...)
		b = append(b, rt...)
		b = append(b, `","ifNoneExist":"`...)
	}
	// appendTokenEscape output needs no JSON escaping.
	b = append(b, query...)
	b = appendTokenEscape(b, docID)
	if key != "" {
		b = append(b, "%2F"...)
		b = appendTokenEscape(b, key)
		if dup > 0 {
			b = append(b, "%23"...)
			b = strconv.AppendInt(b, int64(dup+1), 10)
		}
	}
	return append(b, `"}`...)
}
