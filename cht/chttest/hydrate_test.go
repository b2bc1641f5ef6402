package chttest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	refCHW      = "f512e1d8-841b-4bc1-8154-b6794755f45b"
	refHC       = "d9153705-4574-43c3-b945-71aa2164d1d6"
	refDistrict = "b935ef10-0339-4263-99fc-34d4f8d72891"
	refSuper    = "e5237f20-2d28-4272-8006-c4903e032ab4"
	refClinic   = "be9eb905-1dd3-4957-89ed-b74d080a8246"
	refReport   = "232a3938-9b1c-4d88-bbd8-8ebd6a688b2d"
)

// refServer serves the reference's §5 documents. In the report, the
// patient_uuid points at the CHW and the contact at the supervisor so that
// both resolve inside the fixture.
func refServer(t *testing.T, version string) *Server {
	t.Helper()
	srv := newTestServer(t, Config{Version: version})
	seedFile(t, srv, "testdata/reference-docs.json")
	return srv
}

// TestPersonWithLineageMatchesReference compares the fake's answer with the
// reference's "GET /api/v1/person/{uuid}?with_lineage=true" example
// (api.md pre-swagger), with the inner contact that the reference collapses
// written out in full.
func TestPersonWithLineageMatchesReference(t *testing.T) {
	srv := refServer(t, "4.21.0")
	r := do(t, srv, call{method: "GET", path: "/api/v1/person/" + refCHW + "?with_lineage=true"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	jsonEqual(t, r.body, readFile(t, "testdata/person-with-lineage.json"))

	// The same doc through hydrate is identical.
	h := do(t, srv, call{method: "POST", path: "/api/v1/hydrate", ct: "application/json",
		body: `{"doc_ids":["` + refCHW + `"]}`})
	doc := mustMarshal(t, get(h.json(t), "0.doc"))
	jsonEqual(t, []byte(doc), readFile(t, "testdata/person-with-lineage.json"))
}

// TestPlaceMinifiedMatchesReference: without with_lineage the stored,
// minified doc comes back verbatim (reference "GET /api/v1/place/{uuid}").
func TestPlaceMinifiedMatchesReference(t *testing.T) {
	srv := refServer(t, "4.21.0")
	for _, id := range []string{refHC, refClinic} {
		r := do(t, srv, call{method: "GET", path: "/api/v1/place/" + id})
		if r.status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", id, r.status, r.body)
		}
		stored, _ := srv.Doc(id)
		jsonEqual(t, r.body, stored)
	}
}

// TestHydrate pins /api/v1/hydrate for several ids: api/src/controllers/
// hydration.js hydrate takes doc_ids from the JSON-parsed query
// (req.parsedQuery) before the body, and formatResponse keeps the
// requested order with {id, error: "not_found"} for missing or deleted
// docs. shared-libs/lineage/src/hydration.js fetchHydratedDocs hydrates
// several ids with hydrateDocs: a report's contact with its lineage, its
// patient (fetchSubjectsUuids, by UUID or shortcode) with its own, and
// each contact's primary contact (fillContactsInDocs).
func TestHydrate(t *testing.T) {
	srv := refServer(t, "4.21.0")
	if err := srv.DeleteDoc(refClinic); err != nil {
		t.Fatal(err)
	}
	ids := []string{refReport, "missingId", refHC, refClinic, refCHW}
	getQuery := "?doc_ids=" + url.QueryEscape(mustMarshal(t, ids))
	for _, c := range []call{
		{method: "POST", path: "/api/v1/hydrate", ct: "application/json", body: mustMarshal(t, map[string]any{"doc_ids": ids})},
		{method: "POST", path: "/api/v1/hydrate", ct: "application/json; charset=utf-8", body: mustMarshal(t, map[string]any{"doc_ids": ids})},
		{method: "GET", path: "/api/v1/hydrate" + getQuery},
		// The query string takes precedence over the body.
		{method: "POST", path: "/api/v1/hydrate" + getQuery, ct: "application/json", body: `{"doc_ids":["x"]}`},
	} {
		t.Run(c.method+" "+c.ct, func(t *testing.T) {
			r := do(t, srv, c)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			list, ok := r.json(t).([]any)
			if !ok || len(list) != len(ids) {
				t.Fatalf("want %d entries, got %s", len(ids), r.body)
			}
			for i, id := range ids {
				if got := get(list[i], "id"); got != id {
					t.Errorf("entry %d id = %v, want %s (order must be kept)", i, got, id)
				}
			}
			for _, i := range []int{1, 3} { // missing and deleted
				if get(list[i], "error") != "not_found" || get(list[i], "doc") != nil {
					t.Errorf("entry %d = %v, want {id, error:not_found}", i, list[i])
				}
			}
			// Report: contact hydrated deeply, patient added (by UUID).
			rep := get(list[0], "doc")
			if got := get(rep, "contact.name"); got != "Example Supervisor" {
				t.Errorf("report contact.name = %v", got)
			}
			if got := get(rep, "contact.parent.name"); got != "Example Health Facility" {
				t.Errorf("report contact.parent.name = %v", got)
			}
			if got := get(rep, "patient.parent.parent.name"); got != "Example Health Facility" {
				t.Errorf("report patient lineage = %v", got)
			}
			if get(rep, "place") != nil {
				t.Errorf("report has place without place_id: %v", get(rep, "place"))
			}
			// Health centre: parent full doc, own contact shallow.
			hc := get(list[2], "doc")
			if got := get(hc, "contact.name"); got != "Example CHW" {
				t.Errorf("hc contact.name = %v", got)
			}
			if got := get(hc, "contact.parent.name"); got != nil {
				t.Errorf("hc contact must be shallow (parent minified), got parent.name %v", got)
			}
			if got := get(hc, "parent.contact.name"); got != "Example Supervisor" {
				t.Errorf("hc parent.contact.name = %v", got)
			}
		})
	}
}

func TestHydrateResolvesShortcodesAndStubs(t *testing.T) {
	srv := refServer(t, "4.21.0")
	if err := srv.PutDocs(
		map[string]any{"_id": "r-short", "type": "data_record", "form": "X",
			"fields": map[string]any{"patient_id": "74615", "place_id": "17437"}},
		map[string]any{"_id": "r-top", "type": "data_record", "form": "X", "patient_id": refSuper, "place_id": "54380"},
		map[string]any{"_id": "r-unknown", "type": "data_record", "form": "X", "fields": map[string]any{"patient_uuid": "nobody"}},
		// Two contacts with one shortcode: contactUuidByShortcode takes the
		// first row of contacts_by_reference, the smaller _id.
		map[string]any{"_id": "dup-a", "type": "person", "patient_id": "99999"},
		map[string]any{"_id": "dup-b", "type": "person", "patient_id": "99999"},
		map[string]any{"_id": "r-dup", "type": "data_record", "form": "X", "fields": map[string]any{"patient_id": "99999"}},
	); err != nil {
		t.Fatal(err)
	}
	r := do(t, srv, call{method: "POST", path: "/api/v1/hydrate", ct: "application/json",
		body: `{"doc_ids":["r-short","r-top","r-unknown","` + refClinic + `","r-dup"]}`})
	list := r.json(t)
	tests := []struct {
		path string
		want any
	}{
		{"0.doc.patient._id", refCHW},                          // shortcode → UUID
		{"0.doc.patient.parent.name", "Example Health Center"}, // deep
		{"0.doc.place._id", refHC},                             // place shortcode
		{"1.doc.patient._id", refSuper},                        // top-level patient_id, UUID
		{"1.doc.place._id", refDistrict},                       // top-level place_id shortcode
		{"2.doc.patient", nil},                                 // unresolved: no property
		// Missing ancestors stay as stubs, keeping their minified parent.
		{"3.doc.parent._id", "b132829c-6267-4d4f-aa8e-11862828e65f"},
		{"3.doc.parent.parent._id", "a7922ef9-ea7a-47d9-b3eb-b78b13d31460"},
		{"3.doc.parent.name", nil},
		{"3.doc.contact._id", "99ea9cf6-8bef-475c-a769-3db0d1888f22"},
		{"4.doc.patient._id", "dup-a"},
	}
	for _, tt := range tests {
		if got := get(list, tt.path); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestHydrateErrors pins the errors of /api/v1/hydrate: api/src/
// controllers/hydration.js invalidParameterError (400 bad_request "`doc_ids`
// parameter must be a json array."), api/src/routing.js placing
// authorization.offlineUserFirewall before it (api/src/middleware/
// authorization.js: 403 "Offline users are not allowed access to this
// endpoint"; no other permission is needed), serverUtils.notLoggedIn for
// missing or wrong credentials (JSON or "not logged in" text by
// req.accepts), and the route's arrival in 3.9.0 (404 before).
func TestHydrateErrors(t *testing.T) {
	srv := refServer(t, "4.21.0")
	srv.AddUser(User{Name: "chw", Password: "pw", Roles: []string{"chw"}, Permissions: IntegrationPermissions})
	srv.AddUser(User{Name: "integration", Password: "pw", Roles: []string{"data_entry", RoleOnline}})
	tests := []struct {
		name   string
		c      call
		status int
		body   string // expected JSON, "" = not checked
		text   string // expected text body
	}{
		{"not an array", call{method: "POST", path: "/api/v1/hydrate", ct: "application/json", body: `{"doc_ids":"a"}`},
			400, `{"error":"bad_request","reason":"` + "`doc_ids`" + ` parameter must be a json array."}`, ""},
		{"GET without doc_ids", call{method: "GET", path: "/api/v1/hydrate"},
			400, `{"error":"bad_request","reason":"` + "`doc_ids`" + ` parameter must be a json array."}`, ""},
		{"empty array", call{method: "POST", path: "/api/v1/hydrate", ct: "application/json", body: `{"doc_ids":[]}`},
			200, `[]`, ""},
		{"offline user", call{method: "POST", path: "/api/v1/hydrate", ct: "application/json", body: `{"doc_ids":[]}`, user: "chw", pass: "pw"},
			403, `{"code":403,"error":"forbidden","details":"Offline users are not allowed access to this endpoint"}`, ""},
		{"online user without permissions", call{method: "POST", path: "/api/v1/hydrate", ct: "application/json", body: `{"doc_ids":[]}`, user: "integration", pass: "pw"},
			200, `[]`, ""},
		{"no credentials, JSON", call{method: "POST", path: "/api/v1/hydrate", ct: "application/json", body: `{"doc_ids":[]}`, user: "-"},
			401, `{"code":401,"error":"unauthorized"}`, ""},
		{"no credentials, text", call{method: "GET", path: "/api/v1/hydrate", accept: "-", user: "-"},
			401, "", "not logged in"},
		{"wrong password", call{method: "GET", path: "/api/v1/hydrate", user: "medic", pass: "nope"},
			401, `{"code":401,"error":"unauthorized"}`, ""},
		{"before 3.9", call{}, 404, "", ""},
	}
	old := newTestServer(t, Config{Version: "3.8.0"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := srv, tt.c
			if tt.name == "before 3.9" {
				s, c = old, call{method: "POST", path: "/api/v1/hydrate", ct: "application/json", body: `{"doc_ids":[]}`}
			}
			r := do(t, s, c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.body != "" {
				jsonEqual(t, r.body, []byte(tt.body))
			}
			if tt.text != "" {
				if string(r.body) != tt.text || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
					t.Errorf("body %q (%s), want text %q", r.body, r.header.Get("Content-Type"), tt.text)
				}
				if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="Medic Web Services"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			}
		})
	}
}

// TestHydrateLinkedDocsAndCycles pins linked_docs and cyclic lineages:
// shared-libs/lineage/src/hydration.js getContactIds collects the ids of a
// doc's linked_docs (an id string or an {_id} object, utils.getId) and
// fillContactsInDocs replaces each found one by the doc, leaving a missing
// one as it was; selfAndParents stops at a parent already seen, so a
// cycle through stored parents ends.
func TestHydrateLinkedDocsAndCycles(t *testing.T) {
	srv := newTestServer(t, Config{})
	if err := srv.PutDocs(
		map[string]any{"_id": "hh", "type": "clinic", "name": "HH", "linked_docs": map[string]any{"aa": "p", "bb": map[string]any{"_id": "p"}, "cc": "gone"}},
		map[string]any{"_id": "p", "type": "person", "name": "P", "parent": map[string]any{"_id": "hh"}},
		map[string]any{"_id": "loop1", "type": "clinic", "parent": map[string]any{"_id": "loop2"}},
		map[string]any{"_id": "loop2", "type": "clinic"},
	); err != nil {
		t.Fatal(err)
	}
	// loop2's stored parent points back at loop1: a cycle through stored docs.
	if _, err := srv.PutDoc(map[string]any{"_id": "loop2", "type": "clinic", "parent": map[string]any{"_id": "loop1"}}); err != nil {
		t.Fatal(err)
	}
	d, ok := srv.HydratedDoc("hh")
	if !ok || get(d, "linked_docs.aa.name") != "P" || get(d, "linked_docs.bb.name") != "P" || get(d, "linked_docs.cc") != "gone" {
		t.Fatalf("linked_docs %v", get(d, "linked_docs"))
	}
	if d, ok := srv.HydratedDoc("loop1"); !ok || get(d, "parent._id") != "loop2" {
		t.Fatalf("cycle: %v", d)
	}
}

// TestHydrateFormlessReport pins shared-libs/lineage/src/hydration.js:
// fetchHydratedDocs hands a single id to fetchHydratedDoc, whose
// lineageIds are empty for a report without a form, so that report comes
// back as stored; with several ids hydrateDocs hydrates its contact.
func TestHydrateFormlessReport(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	if _, err := srv.PutDoc(map[string]any{"_id": "sms1", "type": "data_record", "from": "+254712345679",
		"contact": map[string]any{"_id": DemoCHWID, "parent": map[string]any{"_id": DemoCHWAreaID}}}); err != nil {
		t.Fatal(err)
	}
	one := do(t, srv, call{method: "GET", path: "/api/v1/hydrate?doc_ids=" + url.QueryEscape(`["sms1"]`)})
	var a []any
	if err := json.Unmarshal(one.body, &a); err != nil || len(a) != 1 {
		t.Fatalf("one id: %s", one.body)
	}
	if get(a[0], "doc.contact.name") != nil || get(a[0], "doc.contact._id") != DemoCHWID {
		t.Errorf("a single form-less report was hydrated: %v", a[0])
	}
	two := do(t, srv, call{method: "GET", path: "/api/v1/hydrate?doc_ids=" + url.QueryEscape(`["sms1","`+DemoCHWID+`"]`)})
	if err := json.Unmarshal(two.body, &a); err != nil || len(a) != 2 {
		t.Fatalf("two ids: %s", two.body)
	}
	if get(a[0], "doc.contact.name") != "Example CHW" {
		t.Errorf("with several ids the report's contact is hydrated: %v", a[0])
	}
}

// TestHydrateOneIDWithoutLineageAsStored pins the single-id rule of
// /api/v1/hydrate for every doc without lineage: api/src/controllers/
// hydration.js hydrate calls shared-libs/lineage/src/hydration.js
// fetchHydratedDocs, which hands one id to fetchHydratedDoc; its lineage
// comes from medic-client/views/docs_by_id_lineage (ddocs/medic-db/
// medic-client/views/docs_by_id_lineage/map.js), which emits only for the
// types contact, district_hospital, health_center, clinic and person and
// for data_records with a form. Any other doc comes back from fetchDoc as
// stored; with several ids hydrateDocs hydrates it (as a contact when it
// is not a report).
func TestHydrateOneIDWithoutLineageAsStored(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	stub := map[string]any{"_id": DemoCHWID, "parent": map[string]any{"_id": DemoCHWAreaID}}
	for _, tc := range []struct {
		doc       map[string]any
		hydrated  bool   // hydrated when asked alone
		nameField string // member holding the hydrated CHW's name
	}{
		{map[string]any{"_id": "fb-1", "type": "feedback", "contact": stub}, false, "contact.name"},
		{map[string]any{"_id": "tg-1", "type": "target", "parent": map[string]any{"_id": DemoCHWAreaID}}, false, "parent.name"},
		{map[string]any{"_id": "sms-1", "type": "data_record", "form": "", "contact": stub}, false, "contact.name"},
		{map[string]any{"_id": "rep-1", "type": "data_record", "form": "X", "contact": stub}, true, "contact.name"},
		{map[string]any{"_id": "cc-1", "type": "contact", "contact_type": "chw_area", "parent": map[string]any{"_id": DemoCHWAreaID}}, true, "parent.name"},
	} {
		id := tc.doc["_id"].(string)
		if _, err := srv.PutDoc(tc.doc); err != nil {
			t.Fatal(err)
		}
		one := do(t, srv, call{method: "GET", path: "/api/v1/hydrate?doc_ids=" + url.QueryEscape(`["`+id+`"]`)})
		if got := get(one.json(t), "0.doc."+tc.nameField) != nil; got != tc.hydrated {
			t.Errorf("%s (type %v) alone: hydrated %v, want %v: %s", id, tc.doc["type"], got, tc.hydrated, one.body)
		}
		two := do(t, srv, call{method: "GET", path: "/api/v1/hydrate?doc_ids=" + url.QueryEscape(`["`+id+`","`+DemoCHWID+`"]`)})
		if get(two.json(t), "0.doc."+tc.nameField) == nil {
			t.Errorf("%s with another id: hydrateDocs hydrates it: %s", id, two.body)
		}
	}
}

// TestHydrateFillsAncestorLinkedDocs pins that hydration fills an
// ancestor's linked_docs, not only its contact: shared-libs/lineage/src/
// hydration.js fetchHydratedDoc collects every lineage doc's contact and
// linked_docs (fetchContacts, getContactIds) and fills them
// (fillContactsInDocs(lineage, contacts)); hydrateDocs does the same with
// its second round (collectLeafContactIds(firstRoundFetched)) and
// fillContactsInDocs(knownDocs, knownDocs).
func TestHydrateFillsAncestorLinkedDocs(t *testing.T) {
	srv := newTestServer(t, Config{})
	if err := srv.PutDocs(
		map[string]any{"_id": "nurse", "type": "person", "name": "N", "parent": map[string]any{"_id": "hc"}},
		map[string]any{"_id": "hc", "type": "health_center", "name": "HC", "parent": map[string]any{"_id": "dh"},
			"linked_docs": map[string]any{"aa": "nurse", "bb": map[string]any{"_id": "nurse"}}},
		map[string]any{"_id": "dh", "type": "district_hospital", "name": "DH", "linked_docs": map[string]any{"cc": "nurse"}},
		map[string]any{"_id": "chw", "type": "person", "name": "C", "parent": map[string]any{"_id": "hc", "parent": map[string]any{"_id": "dh"}}},
		map[string]any{"_id": "r1", "type": "data_record", "form": "F", "contact": map[string]any{"_id": "chw",
			"parent": map[string]any{"_id": "hc", "parent": map[string]any{"_id": "dh"}}}},
	); err != nil {
		t.Fatal(err)
	}
	for id, paths := range map[string][]string{
		"chw": {"parent.linked_docs.aa.name", "parent.linked_docs.bb.name", "parent.parent.linked_docs.cc.name"},
		"r1":  {"contact.parent.linked_docs.aa.name", "contact.parent.parent.linked_docs.cc.name"},
	} {
		d, ok := srv.HydratedDoc(id)
		if !ok {
			t.Fatalf("%s missing", id)
		}
		for _, p := range paths {
			if got := get(d, p); got != "N" {
				t.Errorf("%s: %s = %v; CHT fills an ancestor's linked_docs with the contact doc", id, p, got)
			}
		}
	}
}

// TestHydrateFaultForOneDocument: a Fault with DocID fails exactly the
// hydrate requests that ask for the document, however many ids they name
// and whether they name them in the query or the body, as
// api/src/controllers/hydration.js answers a hydration that threw:
// serverUtils.serverError's 500 {"code":500,"error":"Server error"}.
func TestHydrateFaultForOneDocument(t *testing.T) {
	srv := refServer(t, "4.21.0")
	srv.InjectFault(Fault{DocID: refClinic, Status: http.StatusInternalServerError})
	post := func(ids ...string) call {
		return call{method: "POST", path: "/api/v1/hydrate", ct: "application/json",
			body: mustMarshal(t, map[string]any{"doc_ids": ids})}
	}
	tests := []struct {
		name   string
		c      call
		status int
	}{
		{"the document among others", post(refCHW, refClinic, refHC), 500},
		{"the document alone", post(refClinic), 500},
		{"in the query", call{method: "GET", path: "/api/v1/hydrate?doc_ids=" +
			url.QueryEscape(mustMarshal(t, []string{refClinic}))}, 500},
		{"other documents", post(refCHW, refHC), 200},
		{"an absent document", post("absent"), 200},
		{"another path", call{method: "GET", path: "/medic/" + refClinic}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, tt.c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 500 {
				jsonEqual(t, r.body, []byte(`{"code":500,"error":"Server error"}`))
			}
		})
	}
}
