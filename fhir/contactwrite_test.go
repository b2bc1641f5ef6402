package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
)

// The tests of this file prove that the directly written resources of the
// internal paths (contactTransaction, reportTransaction; contactwrite.go)
// are byte-for-byte the samply values of ContactBundle and ReportBundle
// encoded, errors and warnings included, over generated documents that
// cover every field and mapping option.

// directSettings is a configurable hierarchy: region > area > household >
// person or CHW.
const directSettings = `{"contact_types":[
	{"id":"c_region","parents":[]},
	{"id":"c_area","parents":["c_region"]},
	{"id":"c_household","parents":["c_area"]},
	{"id":"c_person","person":true,"parents":["c_household","c_area"]},
	{"id":"c_chw","person":true,"parents":["c_area"]}]}`

// directForms are the forms of the generated reports: visit and stock
// (roundTripMapping), and anc with its own Encounter.type.
const directForms = roundTripMapping + `
  - form: anc
    encounterType: {system: "http://snomed.info/sct", code: "424441002", display: "Prenatal <visit>"}
    fields:
      - {path: notes, code: {system: "urn:x", code: notes}, type: string}
`

// directOpts are the mapping options of one generated converter.
type directOpts struct {
	strategy WriteStrategy
	split    NameSplit
	lenient  bool // every contact field that can be lenient is
	rich     bool // contact types mapped to several resources, roles, practitioner places
	legacy   bool // the legacy hierarchy instead of directSettings
	encType  bool // Config.EncounterType and EncounterClass set
}

func (o directOpts) String() string {
	return fmt.Sprintf("%v/split%d/lenient=%v/rich=%v/legacy=%v/encType=%v", o.strategy, o.split, o.lenient, o.rich, o.legacy, o.encType)
}

// allDirectOpts lists every combination of the options.
func allDirectOpts() []directOpts {
	var out []directOpts
	for _, s := range []WriteStrategy{WritePut, WriteConditionalUpdate, WriteConditionalCreate} {
		for _, sp := range []NameSplit{NameTextOnly, NameFamilyLast, NameFamilyFirst} {
			for i := range 16 {
				out = append(out, directOpts{strategy: s, split: sp, lenient: i&1 != 0, rich: i&2 != 0, legacy: i&4 != 0, encType: i&8 != 0})
			}
		}
	}
	return out
}

func directConverter(t testing.TB, o directOpts) *Converter {
	t.Helper()
	m, err := ParseMapping([]byte(directForms))
	if err != nil {
		t.Fatal(err)
	}
	m.Contacts = ContactsMapping{}
	cfg := Config{InstanceURL: testInstance, Mapping: m, Strategy: o.strategy, NameSplit: o.split}
	if !o.legacy {
		if cfg.ContactTypes, err = cht.ParseContactTypes([]byte(directSettings)); err != nil {
			t.Fatal(err)
		}
	}
	if o.lenient {
		m.Contacts.Lenient = lenientContactFields
	}
	if o.rich {
		if o.legacy {
			m.Contacts.Types = []ContactTypeMapping{
				{Type: "person", Roles: map[string][]string{"chw": {"Practitioner"}, "nurse": {"Patient", "Practitioner"}}},
				{Type: "health_center", Resources: []string{"Location", "Organization"}, PrimaryContact: "Practitioner"},
				{Type: "district_hospital", Resources: []string{"Organization"}},
			}
		} else {
			m.Contacts.Types = []ContactTypeMapping{
				{Type: "c_chw", Resources: []string{"Practitioner"}},
				{Type: "c_person", Roles: map[string][]string{"chw": {"Patient", "Practitioner"}}},
				{Type: "c_area", Resources: []string{"Location", "Organization"}, PrimaryContact: "Practitioner"},
				{Type: "c_region", Resources: []string{"Organization"}},
				{Type: "c_household", PrimaryContact: "Practitioner"},
			}
		}
	}
	if o.encType {
		cfg.EncounterType = &Code{System: "urn:x:enc", Code: "home", Display: "Home & <away>"}
		cfg.EncounterClass = &Code{System: "urn:x:class", Code: "FLD"}
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("%v: %v", o, err)
	}
	return c
}

// dgen generates CHT contacts and reports; ids come from a small pool so
// that the documents of a batch share contacts.
type dgen struct {
	r       *rand.Rand
	legacy  bool
	reports int
}

func (g *dgen) pick(v ...string) string { return v[g.r.IntN(len(v))] }
func (g *dgen) one(n int) bool          { return g.r.IntN(n) == 0 }
func (g *dgen) id(prefix string) string {
	if g.one(20) {
		return g.pick("id <&>", "id\u2028x", "é-"+prefix)
	}
	return prefix + "-" + strconv.Itoa(g.r.IntN(6))
}

func (g *dgen) text() string {
	return g.pick("", " ", "Grace Achieng", "  Grace  Achieng ", "Baby of Amina", "Zoë Ngũgĩ", "Ünal Öz Kaya",
		"Amina", "O'Brien-Mwangi Jr.", "李 小龙", `<b>"Q" & A</b>`, "line\nbreak", "x\u2028y", "tab\tHere Now",
		"bad\x01char", "nul\x00", "\xff\xfe", "Émile\u00a0Zola")
}

func (g *dgen) phone() string {
	return g.pick("", "", "+254700000001", " +254 700 000 002 ", "<0700>", "\x7f")
}

func (g *dgen) num(lo, hi float64) *float64 {
	v := lo + (hi-lo)*g.r.Float64()
	if g.one(3) {
		v = math.Round(v)
	}
	return &v
}

func (g *dgen) geo() *cht.Geolocation {
	switch g.r.IntN(8) {
	case 0, 1, 2:
		return nil
	case 3:
		return &cht.Geolocation{Latitude: g.num(-90, 90)}
	case 4:
		return &cht.Geolocation{Latitude: g.num(-100, 100), Longitude: g.num(-200, 200)}
	case 5:
		nan, inf := math.NaN(), math.Inf(1)
		return &cht.Geolocation{Latitude: g.num(-90, 90), Longitude: &nan, Altitude: &inf}
	}
	geo := &cht.Geolocation{Latitude: g.num(-90, 90), Longitude: g.num(-180, 180), Accuracy: g.num(0, 50)}
	if g.one(2) {
		geo.Altitude = g.num(-400, 5000)
	}
	if g.one(10) {
		inf := math.Inf(-1)
		geo.Altitude = &inf
	}
	return geo
}

// setType gives a contact a type id, the configurable or the legacy way
// (or an unknown one now and then).
func (g *dgen) setType(ct *cht.Contact, id string) {
	if g.one(40) {
		id = "c_unknown"
	}
	if g.legacy {
		ct.Type = id
		return
	}
	if g.one(6) {
		ct.Type = id // a configurable type id as type also works
		return
	}
	ct.Type, ct.ContactType = "contact", id
}

var (
	placeLevels  = [2][3]string{{"c_region", "c_area", "c_household"}, {"district_hospital", "health_center", "clinic"}}
	personLevels = [2][2]string{{"c_person", "c_chw"}, {"person", "person"}}
)

func (g *dgen) level() int {
	if g.legacy {
		return 1
	}
	return 0
}

// person makes a person below place level lvl (0 to 2).
func (g *dgen) person(lvl int, depth int) *cht.Contact {
	p := &cht.Contact{ID: g.id("person"), Name: g.text(), Role: g.pick("", "", "chw", "nurse")}
	g.setType(p, personLevels[g.level()][g.r.IntN(2)])
	if !g.one(3) {
		p.Rev = "1-a"
	}
	p.PatientID = g.pick("", "", "12345", " 23456 ", "abc")
	p.ExternalID = g.pick("", "NID-1", " NID 2 ", "<ext>")
	p.Phone, p.PhoneAlternate = g.phone(), g.phone()
	p.Sex = g.pick("", "", "male", "Female", " F ", "m", "intersex", "unknown", "robot", " ")
	p.DateOfBirth = g.pick("", "", "1990-04-12", "1990-04", "1990", "1990-02-30", "2024-10-31T06:25:50Z", "0000-01-01", "yesterday", " ")
	if g.one(4) {
		p.DateOfDeath = g.pick("2024-05-01", "2024-05-01T10:00:00+03:00", "2024", "last week", " ", "10000-01-01T00:00:00Z")
	}
	if g.one(8) {
		p.Geolocation = g.geo()
	}
	if depth > 0 {
		p.Parent = g.lineage(lvl, depth)
	}
	return p
}

// place makes a place of level lvl with its lineage and primary contact.
func (g *dgen) place(lvl int, depth int) *cht.Contact {
	p := &cht.Contact{ID: g.id("place" + strconv.Itoa(lvl)), Name: g.text()}
	g.setType(p, placeLevels[g.level()][lvl])
	if g.one(12) {
		p.Type, p.ContactType = "contact", "" // a place without a type id
	}
	if !g.one(3) {
		p.Rev = "1-b"
	}
	p.PlaceID = g.pick("", "", "54321", " 65432 ")
	p.ExternalID = g.pick("", "HH-1", " HF 7 ")
	p.Phone, p.PhoneAlternate = g.phone(), g.phone()
	p.Geolocation = g.geo()
	switch g.r.IntN(4) {
	case 0:
		p.Contact = &cht.Contact{ID: g.id("person")}
	case 1:
		if depth > 0 {
			p.Contact = g.person(lvl, 0)
			if g.one(3) {
				p.Contact.Type, p.Contact.ContactType = "", "" // shallow copies may omit the type
			}
		}
	}
	if lvl > 0 && depth > 0 {
		p.Parent = g.lineage(lvl-1, depth-1)
	} else if lvl > 0 {
		p.Parent = cht.NewLineage(g.id("place" + strconv.Itoa(lvl-1)))
	}
	return p
}

// lineage makes the lineage from place level lvl upwards: hydrated,
// shallow or minified links.
func (g *dgen) lineage(lvl int, depth int) *cht.Lineage {
	var l *cht.Lineage
	switch g.r.IntN(4) {
	case 0:
		l = &cht.Lineage{ID: g.id("place" + strconv.Itoa(lvl))}
	case 1:
		l = &cht.Lineage{ID: g.id("place" + strconv.Itoa(lvl)), Doc: &cht.Contact{Name: g.text()}}
		l.Doc.ID = l.ID
	default:
		d := g.place(lvl, max(depth, 1))
		l = &cht.Lineage{ID: d.ID, Doc: d}
		l.Parent = d.Parent
		return l
	}
	if lvl > 0 {
		l.Parent = g.lineage(lvl-1, depth)
	}
	return l
}

// contact makes a person or a place with a lineage.
func (g *dgen) contact() *cht.Contact {
	if g.one(2) {
		return g.person(2, 2)
	}
	return g.place(g.r.IntN(3), 2)
}

// report makes a report with a submitter, a subject and mapped values.
func (g *dgen) report() *cht.Report {
	g.reports++ // a report is in a batch once
	r := &cht.Report{ID: "report-" + strconv.Itoa(g.reports), Rev: "1-c", Type: "data_record", Form: g.pick("visit", "VISIT", "stock", "anc"),
		Fields: cht.Fields{}, From: g.pick("", "", "+254711000111", " +254 711 ", "<sms>")}
	if !g.one(6) {
		r.ReportedDate = cht.Millis(1600000000000 + g.r.Int64N(1e11))
	}
	switch g.r.IntN(4) {
	case 0:
		r.Contact = g.person(2, 2)
	case 1:
		r.Contact = &cht.Contact{ID: g.id("person"), Parent: g.lineage(1, 1)}
	case 2:
		r.Contact = &cht.Contact{ID: g.id("person"), Name: "Shallow CHW", Parent: cht.NewLineage(g.id("place1"))}
	}
	switch g.r.IntN(7) {
	case 0, 1:
		r.Patient = g.person(2, 2)
		r.Fields["patient_uuid"] = r.Patient.ID
	case 2:
		r.Place = g.place(g.r.IntN(3), 2)
		r.Fields["place_id"] = r.Place.ID
	case 3:
		r.Fields["patient_uuid"] = g.id("person")
	case 4:
		r.Fields["patient_id"] = g.pick("12345", "abc")
	case 5:
		r.Fields["place_id"] = g.pick(g.id("place2"), "54321")
	}
	if g.one(2) {
		r.Fields["vitals"] = map[string]any{"weight": json.Number(strconv.Itoa(g.r.IntN(150)))}
	}
	if g.one(2) {
		r.Fields["notes"] = g.text()
	}
	if g.one(3) {
		r.Fields["count"] = json.Number(strconv.Itoa(g.r.IntN(50)))
	}
	r.Geolocation = g.geo()
	return r
}

// sameResult fails unless the direct and the samply transaction (or
// their errors) are the same, and returns whether they converted.
// releaseTx releases tx, a transaction of a direct path or nil, as the
// push handler does once it is written.
func releaseTx(tx *Transaction) {
	if tx != nil {
		tx.release()
	}
}

func sameResult(t *testing.T, what string, direct, samply *Transaction, derr, serr error) bool {
	t.Helper()
	if fmt.Sprint(derr) != fmt.Sprint(serr) {
		t.Fatalf("%s: errors differ: direct %v, samply %v", what, derr, serr)
	}
	if derr != nil {
		return false
	}
	db, dmerr := direct.MarshalJSON()
	sb, smerr := samply.MarshalJSON()
	if fmt.Sprint(dmerr) != fmt.Sprint(smerr) {
		t.Fatalf("%s: encoding errors differ: direct %v, samply %v", what, dmerr, smerr)
	}
	if !bytes.Equal(db, sb) {
		t.Fatalf("%s: outputs differ:\ndirect %s\nsamply %s", what, db, sb)
	}
	checkReferencesResolve(t, db)
	if direct.Len() != samply.Len() || fmt.Sprint(direct.Warnings) != fmt.Sprint(samply.Warnings) {
		t.Fatalf("%s: direct %d entries, warnings %v; samply %d, %v", what, direct.Len(), direct.Warnings, samply.Len(), samply.Warnings)
	}
	return dmerr == nil
}

// TestDirectWriteEquivalence: contactTransaction and reportTransaction
// write what ContactBundle and ReportBundle encode, for every option,
// and a batch of them (BatchTransaction with its built set, merged) is the
// merge of the full samply transactions.
func TestDirectWriteEquivalence(t *testing.T) {
	counts := map[string]int{}
	for i, o := range allDirectOpts() {
		c := directConverter(t, o)
		g := &dgen{r: rand.New(rand.NewPCG(uint64(i), 7)), legacy: o.legacy}
		built := map[[2]string]struct{}{}
		var direct, samply []*Transaction
		for n := range 40 {
			what := fmt.Sprintf("%v doc %d", o, n)
			if n%3 == 2 {
				r := g.report()
				dt, derr := c.reportTransaction(r)
				st, serr := c.ReportBundle(r)
				ok := sameResult(t, what+" (report "+r.Form+")", dt, st, derr, serr)
				releaseTx(dt) // the next conversions reuse its memory
				if ok {
					counts["report"]++
					bt, err := c.reportTransactionIn(r, built)
					if err != nil {
						t.Fatal(err)
					}
					direct, samply = append(direct, bt), append(samply, st)
				}
				continue
			}
			ct := g.contact()
			dt, derr := c.contactTransaction(ct, nil)
			st, serr := c.ContactBundle(ct)
			ok := sameResult(t, what+" (contact "+ct.TypeID()+")", dt, st, derr, serr)
			if ok {
				counts["entries"] += dt.Len()
				counts["warned"] += min(len(dt.Warnings), 1)
			}
			releaseTx(dt) // the next conversions reuse its memory
			if ok {
				counts["contact"]++
				bt, err := c.contactTransaction(ct, built)
				if err != nil {
					t.Fatal(err)
				}
				direct, samply = append(direct, bt), append(samply, st)
			} else {
				counts["contact error"]++
			}
		}
		sameResult(t, fmt.Sprintf("%v batch", o), mergeTransactions(direct), mergeTransactions(samply), nil, nil)
	}
	t.Logf("%v", counts)
	// The generator must exercise both outcomes enough to mean something.
	if counts["contact"] < 1000 || counts["report"] < 600 || counts["contact error"] < 100 || counts["warned"] < 100 {
		t.Errorf("generated documents too uniform: %v", counts)
	}
}

// TestDirectWriteCloseReferral: CloseReferral extends the directly
// written Encounter of reportTransaction as it does ReportBundle's.
func TestDirectWriteCloseReferral(t *testing.T) {
	c, rd, r := followUpFixture(t)
	dt, err := c.reportTransaction(r)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.ReportBundle(r)
	if err != nil {
		t.Fatal(err)
	}
	derr := c.CloseReferral(t.Context(), dt, r, rd)
	serr := c.CloseReferral(t.Context(), st, r, rd)
	sameResult(t, "follow-up", dt, st, derr, serr)
	if b, _ := dt.MarshalJSON(); !bytes.Contains(b, []byte(`"basedOn"`)) {
		t.Fatalf("the Encounter was not extended: %s", b)
	}
}

// FuzzDirectWrite decodes a contact or a report and checks that the direct
// and the samply paths agree, with two converters.
func FuzzDirectWrite(f *testing.F) {
	for _, name := range []string{"../cht/testdata/person_hydrated.json", "testdata/report_assessment_hydrated.json",
		"testdata/report_ltfu.json", "testdata/report_records_api.json"} {
		f.Add(readFile(f, name))
	}
	g := &dgen{r: rand.New(rand.NewPCG(1, 2))}
	for range 8 {
		b, err := json.Marshal(g.contact())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	convs := []*Converter{
		directConverter(f, directOpts{strategy: WritePut, split: NameFamilyLast, rich: true, legacy: true}),
		directConverter(f, directOpts{strategy: WriteConditionalCreate, lenient: true, legacy: true, encType: true}),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r cht.Report
		var ct cht.Contact
		isReport := bytes.Contains(data, []byte(`"data_record"`)) && r.UnmarshalJSON(data) == nil
		if !isReport && ct.UnmarshalJSON(data) != nil {
			return
		}
		for _, c := range convs {
			if isReport {
				dt, derr := c.reportTransaction(&r)
				st, serr := c.ReportBundle(&r)
				sameResult(t, "report", dt, st, derr, serr)
				releaseTx(dt)
			} else {
				dt, derr := c.contactTransaction(&ct, nil)
				st, serr := c.ContactBundle(&ct)
				sameResult(t, "contact", dt, st, derr, serr)
				releaseTx(dt)
			}
		}
	})
}

// fakeReader answers CloseReferral's reads with fixed resources.
type fakeReader map[string]string

func (f fakeReader) Read(_ context.Context, typ, id string, out any) error {
	b, ok := f[typ+"/"+id]
	if !ok {
		return fmt.Errorf("%s/%s not found", typ, id)
	}
	return json.Unmarshal([]byte(b), out)
}

// followUpFixture is a converter mapping report_ltfu.json's form as a
// follow-up, that report answering Task t1, and a reader holding the Task
// and its ServiceRequest.
func followUpFixture(t *testing.T) (*Converter, fakeReader, *cht.Report) {
	t.Helper()
	m, err := LoadMapping("testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Forms {
		if m.Forms[i].Form == "interop_follow_up" {
			m.Forms[i].FollowUp = &FollowUp{Task: "inputs.fhir_task", Outcome: "follow_up.outcome",
				Done: []string{"met"}, CompleteRequest: true}
		}
	}
	c := testConverter(t, Config{Mapping: m})
	r := loadReport(t, "testdata/report_ltfu.json")
	r.Fields["inputs"] = map[string]any{"fhir_task": "t1"}
	r.Fields["patient_uuid"] = "p1"
	r.Fields["follow_up"] = map[string]any{"outcome": "met"}
	rd := fakeReader{
		"Task/t1": `{"resourceType":"Task","id":"t1","meta":{"versionId":"2"},"status":"requested","intent":"order",
			"basedOn":[{"reference":"ServiceRequest/sr1"}]}`,
		"ServiceRequest/sr1": `{"resourceType":"ServiceRequest","id":"sr1","meta":{"versionId":"1"},"status":"active","intent":"order","subject":{"reference":"Patient/p"}}`,
	}
	return c, rd, r
}
