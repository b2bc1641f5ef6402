package tocht

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/cht-interop/openhim-mediator-go/fhir"
)

// maxModifierIssues bounds the issues modifierIssues reports for one
// resource.
const maxModifierIssues = 10

// modifierIssues names every modifierExtension of res (a resource as
// fhir.ParseResource decoded it, which keeps them all), at the resource
// and in its backbone elements, as FHIRPath expressions below root (the
// resource type, or the expression of the resource inside a Bundle).
//
// FHIR R4 makes a modifier extension change the meaning of the element
// that holds it ("Usually modifier elements provide negation or
// qualification"), and requires whoever processes a resource to check for
// them (http://hl7.org/fhir/R4/extensibility.html#modifierExtension,
// http://hl7.org/fhir/R4/backboneelement-definitions.html): the bridge
// knows none, so it refuses the resource rather than act on a meaning it
// cannot read (a request that "must not be done until consent", a value
// that is "not real").
func modifierIssues(res any, root string) []fhir.Issue {
	raw, err := json.Marshal(res)
	var tree any
	if err == nil {
		err = json.Unmarshal(raw, &tree)
	}
	if err != nil {
		// Never the case for a decoded resource; refuse rather than skip
		// the check.
		return []fhir.Issue{{Expression: root, Code: models.IssueTypeProcessing,
			Reason: "cannot be checked for modifier extensions: " + err.Error()}}
	}
	var out []fhir.Issue
	findModifiers(tree, root, &out, 0)
	if p, ok := res.(*models.Patient); ok {
		out = append(out, replacedIssues(p, root)...)
	}
	return out
}

// replacedIssues names each link of the Patient p of type replaced-by:
// Patient.link is a modifier element, and such a link says that p is not
// the record to use, the Patient it links to is (R4
// patient-definitions.html#Patient.link: "the referenced patient should be
// used instead of this Patient record"), as an EMR's merge leaves the
// record it merged away. Written to CHT, it would update (or create) a
// person for a record that no longer stands for the patient. A link
// without a type, which R4 requires, decodes as replaced-by and is
// refused too.
func replacedIssues(p *models.Patient, root string) []fhir.Issue {
	var out []fhir.Issue
	for i, l := range p.Link {
		if l.Type != models.LinkTypeReplacedBy {
			continue
		}
		other := "another Patient"
		if l.Other.Reference != nil {
			other = quote(*l.Other.Reference)
		}
		out = append(out, fhir.Issue{Expression: root + ".link[" + strconv.Itoa(i) + "].type", Code: models.IssueTypeBusinessRule,
			Reason: fmt.Sprintf("replaced-by (or missing): this Patient record is replaced by %s, the record to use instead "+
				"(Patient.link is a modifier): send or refer to that Patient; a CHT person written for this one earlier is "+
				"not changed (merge the people in CHT)", other)})
	}
	return out
}

// findModifiers adds to out an issue for each modifierExtension member
// below v, whose path is path.
func findModifiers(v any, path string, out *[]fhir.Issue, depth int) {
	if len(*out) >= maxModifierIssues || depth > 64 {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if k == "modifierExtension" {
				*out = append(*out, fhir.Issue{Expression: path + ".modifierExtension", Code: models.IssueTypeNotSupported,
					Reason: fmt.Sprintf("modifier extension %s: the bridge does not understand it, and a modifier extension changes "+
						"the meaning of the element that holds it (FHIR R4 extensibility, modifierExtension): "+
						"not written to CHT", modifierURLs(v[k]))})
				continue
			}
			findModifiers(v[k], path+"."+k, out, depth+1)
		}
	case []any:
		for i, e := range v {
			findModifiers(e, path+"["+strconv.Itoa(i)+"]", out, depth+1)
		}
	}
}

// modifierURLs lists the urls of a modifierExtension array, quoted.
func modifierURLs(v any) string {
	list, _ := v.([]any)
	var urls []string
	for _, e := range list {
		m, _ := e.(map[string]any)
		if u, ok := m["url"].(string); ok {
			urls = append(urls, quote(u))
		}
	}
	if len(urls) == 0 {
		return "without url"
	}
	return strings.Join(urls, ", ")
}

// refuseModifiers is the 422 of a resource (or Bundle entry) that carries
// modifier extensions, nil when it carries none.
func refuseModifiers(rt string, res any, root string) error {
	issues := modifierIssues(res, root)
	if len(issues) == 0 {
		return nil
	}
	return &fhir.InvalidResourceError{ResourceType: rt, Issues: issues}
}

// entryModifiers refuses the Bundle entry i when the entry itself, or its
// request, carries a modifier extension (Bundle.entry and
// Bundle.entry.request are backbone elements); its resource is checked
// when it is planned.
func entryModifiers(bundle *models.Bundle, i int) error {
	e := bundle.Entry[i]
	e.Resource = nil
	return refuseModifiers("Bundle", e, "Bundle.entry["+strconv.Itoa(i)+"]")
}
