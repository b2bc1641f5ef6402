package cht

import (
	"encoding/json"
	"reflect"
	"testing"
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
		if got := tt.c.Parent.ids(); !reflect.DeepEqual(got, tt.ids) {
			t.Errorf("%s: lineage %v, want %v", tt.c.ID, got, tt.ids)
		}
	}
	seen := map[*Lineage]string{}
	for _, c := range []*Contact{r.Contact, r.Patient, r.Place, r.Place.Parent.Doc.Contact} {
		for l := c.Parent; l != nil; l = l.Parent {
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
