package tocht

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// FuzzPatientSearch feeds matchPatients any answer of a FHIR server to the
// search of a Patient by identifier: no panic, an error or a count of 0, 1
// or 2, and the Patient of a count of 1 carries the identifier.
func FuzzPatientSearch(f *testing.F) {
	const ext = "https://emr.example.org/external-id"
	for _, s := range []struct{ data, system, value string }{
		{`{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient","id":"p1",` +
			`"identifier":[{"system":"https://emr.example.org/mrn","value":"M-1"}]},"search":{"mode":"match"}}]}`, "https://emr.example.org/mrn", "M-1"},
		{`{"resourceType":"Bundle","link":[{"relation":"next","url":"x"}],"entry":[{"resource":{"resourceType":"Patient",` +
			`"identifier":[{"value":"M-1"}]}},{"resource":{"resourceType":"OperationOutcome"},"search":{"mode":"outcome"}}]}`, "", "M-1"},
		{`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","identifier":[{"system":"` + ext + `","value":"7"}]}},` +
			`{"resource":{"resourceType":"Patient","identifier":[{"value":"7"}]}}]}`, "", "7"},
		{`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","gender":"f"}}]}`, "", "1"},
		{`{"resourceType":"OperationOutcome","issue":[]}`, "", "1"},
		{`{"resourceType":"Bundle","entry":[{"resource":null},{"search":{"mode":1}}]}`, "s", "v"},
		{`[]`, "", ""},
		{``, "", ""},
	} {
		f.Add([]byte(s.data), s.system, s.value)
	}
	f.Fuzz(func(t *testing.T, data []byte, system, value string) {
		ident := &models.Identifier{Value: &value}
		if system != "" {
			ident.System = &system
		}
		p, n, err := matchPatients(data, ident, ext)
		switch {
		case err != nil:
			if p != nil || n != 0 {
				t.Fatalf("error %v with a Patient %v and count %d", err, p, n)
			}
		case n < 0 || n > 2:
			t.Fatalf("count %d", n)
		case n == 1 && (p == nil || !carries(p, ident, ext)):
			t.Fatalf("count 1 with Patient %+v, which does not carry %q|%q", p, system, value)
		case n != 1 && p != nil:
			t.Fatalf("count %d with a Patient", n)
		}
	})
}

// FuzzSubscriptionPage feeds decodeSubscriptionPage any answer of a FHIR
// server to the search of Subscriptions, and nextLink the page: no panic,
// and a next link followed only below FHIRURL, on its host, without dot
// segments.
func FuzzSubscriptionPage(f *testing.F) {
	const base = "http://fhir.example.org:8080/fhir"
	for _, s := range []string{
		`{"resourceType":"Bundle","type":"searchset","total":2,"entry":[{"resource":{"resourceType":"Subscription","id":"s1",` +
			`"criteria":"Task?_id=t1","channel":{"endpoint":"http://m/notify"}}}],` +
			`"link":[{"relation":"next","url":"` + base + `/Subscription?_sort=_id&_count=100&_offset=1"}]}`,
		`{"resourceType":"Bundle","link":[{"relation":"next","url":"` + base + `/../admin"}]}`,
		`{"resourceType":"Bundle","link":[{"relation":"next","url":"` + base + `/%2e%2e/admin"}]}`,
		`{"resourceType":"Bundle","link":[{"relation":"next","url":"` + base + `.evil.example/x"}]}`,
		`{"resourceType":"Bundle","link":[{"relation":"next","url":"` + base + `//evil.example/x"}]}`,
		`{"resourceType":"Bundle","link":[{"relation":"next","url":"http://evil.example/fhir/Subscription"}]}`,
		`{"resourceType":"Bundle","total":-1,"entry":[{"resource":{"resourceType":"Subscription"}},{}]}`,
		`{"resourceType":"Bundle","total":1e3}`,
		`{"resourceType":"OperationOutcome"}`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	b := &Bridge{cfg: Config{FHIRURL: base}}
	baseURL, err := url.Parse(base)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		page, err := decodeSubscriptionPage(data)
		if err != nil {
			if page != nil {
				t.Fatalf("error %v with a page", err)
			}
			return
		}
		if page.ResourceType != "Bundle" {
			t.Fatalf("accepted a %q", page.ResourceType)
		}
		link := b.nextLink(page)
		if link == "" {
			return
		}
		if link[0] != '/' && link[0] != '?' {
			t.Fatalf("next link %q does not continue FHIRURL", link)
		}
		req, err := http.NewRequest(http.MethodGet, base+link, nil)
		if err != nil {
			return // answered as a failure of the FHIR server
		}
		if req.URL.Scheme != baseURL.Scheme || req.URL.Host != baseURL.Host || !strings.HasPrefix(req.URL.Path, baseURL.Path) {
			t.Fatalf("next link %q leads to %s", link, req.URL)
		}
		if slices.ContainsFunc(strings.Split(req.URL.Path, "/"), func(s string) bool { return s == "." || s == ".." }) {
			t.Fatalf("next link %q has dot segments: %s", link, req.URL.Path)
		}
	})
}
