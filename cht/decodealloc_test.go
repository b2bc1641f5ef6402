package cht

import (
	"encoding/json"
	"reflect"
	"testing"
	"unsafe"
)

// TestContactRefLineage: a contact reference is allocated with the first
// minified link of its lineage; each reference keeps its own links, whether
// the link is an object, a bare id or the top of a longer chain.
func TestContactRefLineage(t *testing.T) {
	in := `{"_id":"r1","type":"data_record",
		"contact":{"_id":"k1","parent":{"_id":"p1","parent":{"_id":"p2"}}},
		"patient":{"_id":"k2","parent":"p3"},
		"place":{"_id":"k3","name":"Clinic","parent":{"_id":"p4","type":"clinic","name":"H","parent":{"_id":"p5"},
			"contact":{"_id":"k4","parent":{"_id":"p4"}}}}}`
	var r Report
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		c   *Contact
		ids []string
	}{
		{r.Contact, []string{"p1", "p2"}},
		{r.Patient, []string{"p3"}},
		{r.Place, []string{"p4", "p5"}},
		{r.Place.Parent.Doc.Contact, []string{"p4"}},
	} {
		if got := boundedIDs(tt.c.Parent); !reflect.DeepEqual(got, tt.ids) {
			t.Errorf("%s: lineage %v, want %v", tt.c.ID, got, tt.ids)
		}
	}
	seen := map[*Lineage]string{}
	for _, c := range []*Contact{r.Contact, r.Patient, r.Place, r.Place.Parent.Doc.Contact} {
		for l, n := c.Parent, 0; l != nil && n < 10; l, n = l.Parent, n+1 {
			if other, ok := seen[l]; ok && other != c.ID {
				t.Errorf("%s and %s share the link %s", other, c.ID, l.ID)
			}
			seen[l] = c.ID
		}
	}
	if r.Place.Parent.Doc == nil || r.Place.Parent.Doc.Name != "H" {
		t.Errorf("place's parent %+v, want the hydrated clinic", r.Place.Parent)
	}
}

// boundedIDs is Lineage.ids for at most 10 links, so that a chain made
// circular by a shared link fails the test instead of hanging it.
func boundedIDs(l *Lineage) []string {
	var ids []string
	for n := 0; l != nil && n < 10; l, n = l.Parent, n+1 {
		ids = append(ids, l.ID)
	}
	return ids
}

// TestFieldsCommonAnswers: the answers most forms hold decode to the same
// strings as any other answer.
func TestFieldsCommonAnswers(t *testing.T) {
	in := []byte(`{"fields":{"a":"yes","b":"no","c":"true","d":"false","e":"male","f":"female","g":"yes ","h":["yes",{"i":"no"}]}}`)
	var r Report
	if err := r.UnmarshalJSON(in); err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(in, &want); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'x'
	}
	if got := map[string]any(r.Fields); !reflect.DeepEqual(got, want["fields"]) {
		t.Errorf("fields %v, want %v", got, want["fields"])
	}
}

// TestPushViewsShareArena: a pushed document's views own their keys in
// what is left of the arena the push body was decoded with; the ids read
// after that must not share its room.
func TestPushViewsShareArena(t *testing.T) {
	body := []byte(`{"doc":{"type":"person","name":"Amina","meta_data":{"a":1},"zz_extra":2},"id":"outer-id","rev":"1-a"}`)
	p, err := parsePush(body, "doc")
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.View.(docView).Contact()
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.View.(docView).Report()
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Extra["meta_data"]) != `{"a":1}` || string(r.Extra["zz_extra"]) != "2" {
		t.Errorf("contact extra %v, report extra %v", c.Extra, r.Extra)
	}
	// Extra values alias the body; ids, strings and keys do not.
	for i := range body {
		body[i] = 'x'
	}
	if p.ID != "outer-id" || p.Rev != "1-a" {
		t.Errorf("ids %q %q, want outer-id 1-a", p.ID, p.Rev)
	}
	for _, k := range []string{"meta_data", "zz_extra"} {
		if _, ok := c.Extra[k]; !ok {
			t.Errorf("contact extra %v lacks %s", c.Extra, k)
		}
	}
	if _, ok := r.Extra["name"]; c.Name != "Amina" || !ok {
		t.Errorf("contact name %q, report extra %v", c.Name, r.Extra)
	}
}

// TestOwnMemberRepeats: an id repeated along a lineage is copied once,
// common types are not copied, and different values stay different.
func TestOwnMemberRepeats(t *testing.T) {
	const a, b = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"
	in := []byte(`{"_id":"` + a + `","type":"contact","contact_type":"c_person","parent":{"_id":"` + b + `","type":"contact",
		"contact":{"_id":"` + a + `","parent":{"_id":"` + b + `"}}}}`)
	var c Contact
	if err := c.UnmarshalJSON(in); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'x'
	}
	p := c.Parent.Doc
	if c.ID != a || c.Parent.ID != b || p.Contact.ID != a || p.Contact.Parent.ID != b || c.Type != "contact" ||
		p.Type != "contact" || c.ContactType != "c_person" {
		t.Fatalf("decoded %+v, parent %+v", c, p)
	}
	if unsafe.StringData(c.ID) != unsafe.StringData(p.Contact.ID) || unsafe.StringData(c.Parent.ID) != unsafe.StringData(p.Contact.Parent.ID) {
		t.Error("a repeated id was copied twice")
	}
	if unsafe.StringData(c.Type) != unsafe.StringData("contact") {
		t.Error("a common type was copied")
	}
}

// TestArenaEstimate: the first arena chunk follows the share of their
// input that recent decodes of the same kind kept.
func TestArenaEstimate(t *testing.T) {
	saved := arenaShares[useReport].Load()
	t.Cleanup(func() { arenaShares[useReport].Store(saved) })
	arenaShares[useReport].Store(0)
	if got := arenaEstimate(useReport, 1024, false); got != 1024*(640+32)/1024 {
		t.Errorf("first estimate %d, want 5/8 and a margin", got)
	}
	if got := arenaEstimate(useReport, 1024, true); got != 1024*(576+32)/1024 {
		t.Errorf("first estimate with src %d, want 9/16 and a margin", got)
	}
	for range 20 {
		noteArena(useReport, 400, 1000)
	}
	if got := arenaEstimate(useReport, 1000, false); got < 400 || got > 450 {
		t.Errorf("estimate %d after decodes that kept 400 of 1000 bytes", got)
	}
	noteArena(useReport, 900, 1000)
	if got := arenaEstimate(useReport, 1000, false); got < 500 || got > 600 {
		t.Errorf("estimate %d after one decode that kept 900 of 1000 bytes", got)
	}
	noteArena(useOther, 1000, 1000)
	noteArena(useReport, 100, 100)
	if got := arenaEstimate(useOther, 1000, false); got != 1000*(640+32)/1024 {
		t.Errorf("useOther estimate %d, want the default", got)
	}
	// Decoding goes on using one chunk when a document keeps more than
	// the estimate.
	for range 10 {
		noteArena(useReport, 10, 1000)
	}
	data := readFixture(t, "report_xform.json")
	var r Report
	if err := r.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	var want Report
	if err := decodeReportAs(data, &want, false); err != nil || !reflect.DeepEqual(&r, &want) {
		t.Errorf("decoded with a small arena %+v, want %+v (%v)", r, want, err)
	}
}
