package chttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var couchID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestLegacyPeopleAndPlaces pins POST /api/v1/people and /api/v1/places
// (shared-libs/contacts/src/people.js createPerson and validatePerson:
// name must be defined and a string, "" is accepted; places.js
// createPlaces, validatePlace and preparePlaceContact: a missing place,
// parent or contact is 404, and a contact id is checked before anything
// is written) and POST /api/v1/places/:id (places.js updatePlace: only
// PLACE_EDITABLE_FIELDS name, parent, contact and place_id change).
func TestLegacyPeopleAndPlaces(t *testing.T) {
	srv := newTestServer(t, Config{Version: "4.10.0"})
	srv.AddUser(User{Name: "noedit", Password: "pw", Roles: []string{RoleOnline}, Permissions: []string{PermCreatePeople}})

	// A district, then a health centre with an inline contact.
	r := do(t, srv, call{method: "POST", path: "/api/v1/places", ct: "application/json",
		body: `{"name":"CHP Family","type":"district_hospital"}`})
	if r.status != 200 {
		t.Fatalf("district: %d %s", r.status, r.body)
	}
	district := r.obj(t)
	if district["ok"] != true || !couchID.MatchString(str(district["id"])) || !strings.HasPrefix(str(district["rev"]), "1-") {
		t.Fatalf("district answer %s, want {ok,id:<32 hex>,rev}", r.body)
	}
	did := str(district["id"])
	r = do(t, srv, call{method: "POST", path: "/api/v1/places", ct: "application/json",
		body: `{"name":"HC","type":"health_center","parent":"` + did + `","contact":{"name":"Nurse Jo","phone":"+254700000001"}}`})
	if r.status != 200 {
		t.Fatalf("hc: %d %s", r.status, r.body)
	}
	hc := r.obj(t)
	cid := str(get(hc, "contact.id"))
	if !couchID.MatchString(cid) {
		t.Fatalf("hc answer %s lacks contact.id", r.body)
	}
	hcDoc, _ := decodeAny(mustDoc(t, srv, str(hc["id"])))
	if got := get(hcDoc, "contact._id"); got != cid {
		t.Errorf("hc contact = %v", get(hcDoc, "contact"))
	}
	if got := get(hcDoc, "contact.parent._id"); got != str(hc["id"]) {
		t.Errorf("hc contact lineage = %v", get(hcDoc, "contact"))
	}
	if got := get(hcDoc, "parent"); mustMarshal(t, got) != `{"_id":"`+did+`"}` {
		t.Errorf("hc parent = %v", got)
	}

	// A person placed by UUID gets the minified lineage as parent.
	r = do(t, srv, call{method: "POST", path: "/api/v1/people", ct: "application/json",
		body: `{"name":"John Test","place":"` + str(hc["id"]) + `","sex":"male","custom":{"a":1}}`})
	if r.status != 200 {
		t.Fatalf("person: %d %s", r.status, r.body)
	}
	person := r.obj(t)
	if person["ok"] != true || !couchID.MatchString(str(person["id"])) || len(person) != 3 {
		t.Fatalf("person answer %s, want exactly {ok,id,rev}", r.body)
	}
	pDoc, _ := decodeAny(mustDoc(t, srv, str(person["id"])))
	want := map[string]any{"type": "person", "name": "John Test", "parent._id": str(hc["id"]), "parent.parent._id": did,
		"custom.a": mustNumber("1"), "place": nil}
	for path, w := range want {
		if got := get(pDoc, path); got != w {
			t.Errorf("person %s = %v, want %v", path, got, w)
		}
	}

	errTests := []struct {
		name   string
		c      call
		status int
		body   string
	}{
		{"charset rejected", call{path: "/api/v1/people", ct: "application/json; charset=utf-8", body: `{"name":"A"}`},
			400, `{"code":400,"error":"Content-Type must be application/json"}`},
		{"no content type", call{path: "/api/v1/places", body: `{"name":"A"}`},
			400, `{"code":400,"error":"Content-Type must be application/json"}`},
		{"empty body", call{path: "/api/v1/people", ct: "application/json", body: `{}`},
			400, `{"code":400,"error":"Request body is empty or Content-Type header was not set to application/json."}`},
		{"missing name", call{path: "/api/v1/people", ct: "application/json", body: `{"sex":"male"}`},
			400, `{"code":400,"error":"Person is missing a \"name\" property."}`},
		{"not a person", call{path: "/api/v1/people", ct: "application/json", body: `{"name":"A","type":"clinic"}`},
			400, `{"code":400,"error":"Wrong type, this is not a person."}`},
		{"bad reported_date", call{path: "/api/v1/people", ct: "application/json", body: `{"name":"A","reported_date":"soon"}`},
			400, `{"code":400,"error":"Reported date is invalid: soon"}`},
		{"wrong hierarchy", call{path: "/api/v1/places", ct: "application/json", body: `{"name":"C","type":"health_center","parent":"` + str(hc["id"]) + `"}`},
			400, `{"code":400,"error":"health_center \"\" should have one of the following parent types: \"district_hospital\"."}`},
		{"name not a string", call{path: "/api/v1/people", ct: "application/json", body: `{"name":5}`},
			400, `{"code":400,"error":"Property \"name\" must be a string."}`},
		{"place name missing", call{path: "/api/v1/places", ct: "application/json", body: `{"type":"district_hospital"}`},
			400, `{"code":400,"error":"Place  is missing a \"name\" property."}`},
		{"missing place is 404", call{path: "/api/v1/people", ct: "application/json", body: `{"name":"A","place":"nope"}`},
			404, `{"code":404,"error":"Failed to find place."}`},
		{"a person is no place", call{path: "/api/v1/people", ct: "application/json", body: `{"name":"A","place":"` + cid + `"}`},
			404, `{"code":404,"error":"Failed to find place."}`},
		{"missing parent is 404", call{path: "/api/v1/places", ct: "application/json", body: `{"name":"C","type":"clinic","parent":"nope"}`},
			404, `{"code":404,"error":"Failed to find place."}`},
		{"missing contact is 404 before the place is written", call{path: "/api/v1/places", ct: "application/json",
			body: `{"name":"C","type":"clinic","parent":"` + str(hc["id"]) + `","contact":"nope"}`},
			404, `{"code":404,"error":"Failed to find person."}`},
		{"needs can_edit too", call{path: "/api/v1/people", ct: "application/json", body: `{"name":"A"}`, user: "noedit", pass: "pw"},
			403, `{"code":403,"error":"Insufficient privileges"}`},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.method = "POST"
			before := len(srv.Docs())
			r := do(t, srv, tt.c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			jsonEqual(t, r.body, []byte(tt.body))
			if len(srv.Docs()) != before {
				t.Error("a rejected request stored a doc")
			}
		})
	}

	// An empty name is a name.
	r = do(t, srv, call{method: "POST", path: "/api/v1/people", ct: "application/json", body: `{"name":""}`})
	if r.status != 200 {
		t.Errorf(`name "": %d %s`, r.status, r.body)
	}

	// POST /api/v1/places/:id updates the editable fields only and answers {id, rev}.
	r = do(t, srv, call{method: "POST", path: "/api/v1/places/" + str(hc["id"]), ct: "application/json",
		body: `{"name":"HC renamed","type":"clinic","phone":"+254700000009","notes":"x","external_id":"e"}`})
	if r.status != 200 || str(r.obj(t)["id"]) != str(hc["id"]) || !strings.HasPrefix(str(r.obj(t)["rev"]), "3-") {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	hcDoc, _ = decodeAny(mustDoc(t, srv, str(hc["id"])))
	if get(hcDoc, "name") != "HC renamed" || get(hcDoc, "type") != "health_center" || get(hcDoc, "phone") != nil ||
		get(hcDoc, "notes") != nil || get(hcDoc, "external_id") != nil {
		t.Errorf("update changed more than the editable fields: %v", hcDoc)
	}
	for body, want := range map[string]string{
		`{"phone":"1"}`:      `{"code":400,"error":"One of the following fields are required: name, parent, contact, place_id"}`,
		`{"contact":"nope"}`: `{"code":404,"error":"Failed to find person."}`,
	} {
		r = do(t, srv, call{method: "POST", path: "/api/v1/places/" + str(hc["id"]), ct: "application/json", body: body})
		jsonEqual(t, r.body, []byte(want))
	}
	r = do(t, srv, call{method: "POST", path: "/api/v1/places/nope", ct: "application/json", body: `{"name":"x"}`})
	if r.status != 404 {
		t.Errorf("update of a missing place: %d %s", r.status, r.body)
	}
}

func mustDoc(t *testing.T, srv *Server, id string) []byte {
	t.Helper()
	raw, ok := srv.Doc(id)
	if !ok {
		t.Fatalf("doc %s missing", id)
	}
	return raw
}

func mustNumber(s string) any {
	v, _ := decodeAny([]byte(s))
	return v
}

// TestContactsByPhone pins api/src/controllers/contacts-by-phone.js: the
// query is normalised by @medic/phone-number (libphonenumber with the
// settings' default_country_code) and looked up in the contacts_by_phone
// view, which indexes each contact's stored phone as is
// (ddocs/medic-db/medic-client/views/contacts_by_phone/map.js), so a
// contact stored with a national-format number is never found.
func TestContactsByPhone(t *testing.T) {
	srv := NewDemoServer(Config{BasePath: "/cht"})
	t.Cleanup(srv.Close)
	if _, err := srv.PutDoc(map[string]any{"_id": "national", "type": "person", "name": "N", "phone": "0722 000 111"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		c      call
		status int
		ids    []string
		body   string
	}{
		{"GET encoded plus", call{method: "GET", path: "/api/v1/contacts-by-phone?phone=" + url.QueryEscape("+254712345679")}, 200, []string{DemoCHWID}, ""},
		{"GET formatted", call{method: "GET", path: "/api/v1/contacts-by-phone?phone=" + url.QueryEscape("+254 (712) 345-679")}, 200, []string{DemoCHWID}, ""},
		{"POST", call{method: "POST", path: "/api/v1/contacts-by-phone", ct: "application/json; charset=utf-8", body: `{"phone":"+254712345679"}`}, 200, []string{DemoCHWID}, ""},
		{"GET national format", call{method: "GET", path: "/api/v1/contacts-by-phone?phone=" + url.QueryEscape("0712 345679")}, 200, []string{DemoCHWID}, ""},
		{"GET raw plus becomes a space, the default country still matches", call{method: "GET", path: "/api/v1/contacts-by-phone?phone=+254712345679"}, 200, []string{DemoCHWID}, ""},
		{"a stored national number is not indexed normalised", call{method: "GET", path: "/api/v1/contacts-by-phone?phone=" + url.QueryEscape("0722000111")}, 404, nil,
			`{"error":"not_found","reason":"no matches found"}`},
		{"missing phone", call{method: "GET", path: "/api/v1/contacts-by-phone"}, 400, nil,
			"{\"error\":\"bad_request\",\"reason\":\"`phone` parameter is required and must be a valid phone number\"}"},
		{"invalid phone", call{method: "POST", path: "/api/v1/contacts-by-phone", ct: "application/json", body: `{"phone":"call me"}`}, 400, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, tt.c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.body != "" {
				jsonEqual(t, r.body, []byte(tt.body))
			}
			if tt.ids == nil {
				return
			}
			docs, ok := r.obj(t)["docs"].([]any)
			if r.obj(t)["ok"] != true || !ok || len(docs) != len(tt.ids) {
				t.Fatalf("answer %s, want {ok:true, docs:[...%d]}", r.body, len(tt.ids))
			}
			for i, id := range tt.ids {
				if get(docs[i], "_id") != id || get(docs[i], "parent.name") != "Sigomere CHW Area" {
					t.Errorf("doc %d = %v, want hydrated %s", i, docs[i], id)
				}
			}
		})
	}
}

// TestDatasourceEndpoints pins the cht-datasource read routes of
// cht-core 4.21.0 (api/src/routing.js): api/src/controllers/person.js,
// place.js, contact.js and report.js v1.get answer 404 "<Kind> not found"
// for a doc that is not of their kind, check can_view_contacts or
// can_view_reports with auth.assertPermissions (isOnline: offline users
// get 403), and ?with_lineage=true uses getWithLineage (report.js has none
// before 4.22); the listings and uuid routes validate type, limit, cursor
// and freetext as shared-libs/cht-datasource does.
func TestDatasourceEndpoints(t *testing.T) {
	srv := NewDemoServer(Config{BasePath: "/cht", Version: "4.21.0"})
	t.Cleanup(srv.Close)
	srv.AddUser(User{Name: "reports-only", Password: "pw", Roles: []string{RoleOnline}, Permissions: []string{PermViewReports}})
	srv.AddUser(User{Name: "offline", Password: "pw", Roles: []string{"chw"}, Permissions: IntegrationPermissions})
	tests := []struct {
		name   string
		c      call
		status int
		check  map[string]any
	}{
		{"person", call{path: "/api/v1/person/" + DemoPatientID}, 200, map[string]any{"_id": DemoPatientID, "parent.name": nil}},
		{"person with lineage", call{path: "/api/v1/person/" + DemoPatientID + "?with_lineage=true"}, 200,
			map[string]any{"parent.name": "Otieno Household", "parent.parent.parent.parent.name": "Siaya District"}},
		{"configurable person", call{path: "/api/v1/person/" + DemoMotherID}, 200, map[string]any{"contact_type": "person"}},
		{"place is not a person", call{path: "/api/v1/person/" + DemoHouseholdID}, 404,
			map[string]any{"code": mustNumber("404"), "error": "Person not found"}},
		{"place", call{path: "/api/v1/place/" + DemoCHWAreaID + "?with_lineage=true"}, 200,
			map[string]any{"contact.name": "Example CHW", "parent.contact.name": "Peter Odhiambo"}},
		{"contact", call{path: "/api/v1/contact/" + DemoHouseholdID}, 200, map[string]any{"name": "Otieno Household"}},
		{"report is not a contact", call{path: "/api/v1/contact/" + DemoAssessmentReportID}, 404, map[string]any{"error": "Contact not found"}},
		{"report with lineage (4.22+ only: ignored on 4.21)", call{path: "/api/v1/report/" + DemoAssessmentReportID + "?with_lineage=true"}, 200,
			map[string]any{"patient": nil, "contact.name": nil}},
		{"report needs can_view_reports", call{path: "/api/v1/report/" + DemoAssessmentReportID, user: "reports-only", pass: "pw"}, 200,
			map[string]any{"form": "assessment"}},
		{"person needs can_view_contacts", call{path: "/api/v1/person/" + DemoPatientID, user: "reports-only", pass: "pw"}, 403, nil},
		// Not the offline firewall's "forbidden": routing.js serves these
		// reads without it, and the controller's PermissionError is
		// "Insufficient privileges".
		{"offline user", call{path: "/api/v1/person/" + DemoPatientID, user: "offline", pass: "pw"}, 403,
			map[string]any{"error": "Insufficient privileges"}},
		{"offline user, listing", call{path: "/api/v1/place?type=household", user: "offline", pass: "pw"}, 403,
			map[string]any{"error": "Insufficient privileges"}},
		{"invalid person type", call{path: "/api/v1/person?type=household"}, 400, map[string]any{"error": "Invalid contact type [household]."}},
		{"limit 0", call{path: "/api/v1/place?type=household&limit=0"}, 400, nil},
		{"bad cursor", call{path: "/api/v1/place?type=household&cursor=-1"}, 400, nil},
		{"contact uuids by type", call{path: "/api/v1/contact/uuid?type=household"}, 200,
			map[string]any{"data.0": DemoHouseholdID, "cursor": nil}},
		{"report uuids by freetext", call{path: "/api/v1/report/uuid?freetext=pregnancy_danger"}, 200,
			map[string]any{"data.0": DemoDangerSignReportID, "data.1": nil}},
		{"freetext too short", call{path: "/api/v1/contact/uuid?freetext=ab"}, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.method = "GET"
			r := do(t, srv, tt.c)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			v := r.json(t)
			for path, want := range tt.check {
				if got := get(v, path); got != want {
					t.Errorf("%s = %v, want %v", path, got, want)
				}
			}
		})
	}

	// Report with lineage on 4.22.
	srv422 := NewDemoServer(Config{BasePath: "/cht", Version: "4.22.0"})
	t.Cleanup(srv422.Close)
	r := do(t, srv422, call{method: "GET", path: "/api/v1/report/" + DemoAssessmentReportID + "?with_lineage=true"})
	if got := get(r.json(t), "patient._id"); got != DemoChildID {
		t.Errorf("4.22 report patient = %v, want %s (resolved from shortcode 13987)", got, DemoChildID)
	}
}

// TestDatasourcePaging pins the pages of GET /api/v1/person?type=
// (api/src/controllers/person.js getAll → shared-libs/cht-datasource/src/
// person.ts getPage → local/person.ts getPage): the cursor is the skip as
// a string, fetchAndFilter returns a cursor whenever the page is full (so
// a full last page is followed by an empty one) and null when it is short.
func TestDatasourcePaging(t *testing.T) {
	srv := NewDemoServer(Config{BasePath: "/cht", Version: "4.21.0"})
	t.Cleanup(srv.Close)
	// 5 people in the fixture; pages of 2 → 2, 2, 1 (null cursor).
	var all []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("paging does not end")
		}
		p := "/api/v1/person?type=person&limit=2"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		r := do(t, srv, call{method: "GET", path: p})
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		body := r.obj(t)
		for _, d := range body["data"].([]any) {
			all = append(all, str(get(d, "_id")))
		}
		if body["cursor"] == nil {
			break
		}
		cursor = str(body["cursor"])
	}
	if len(all) != 6 {
		t.Fatalf("got %d people %v, want 6", len(all), all)
	}
	// A full last page still returns a cursor; the next page is empty with null.
	r := do(t, srv, call{method: "GET", path: "/api/v1/person?type=person&limit=3&cursor=3"})
	if c := r.obj(t)["cursor"]; c != "6" {
		t.Fatalf("cursor after a full last page = %v, want \"6\"", c)
	}
	r = do(t, srv, call{method: "GET", path: "/api/v1/person?type=person&limit=3&cursor=6"})
	if mustMarshal(t, r.obj(t)) != `{"cursor":null,"data":[]}` {
		t.Fatalf("last page = %s", r.body)
	}
}

// TestVersionGating pins the release that added each route (checked in
// api/src/routing.js of each tag: contacts-by-phone 3.10, GET person/:uuid
// 4.9, place/:uuid 4.10, the person listing 4.11, report/:uuid 4.18,
// postJson('/api/v1/person') 5.2): a route the release lacks falls
// through to app.all('*path') proxy.web, CouchDB's 404. routing.js
// app.get('/api/info') answers {version} from the API's package.json,
// "0.1.0" in every release (api/package.json), and /api/deploy-info the
// release (shared-libs/server-info getDeployInfo), to a logged-in user.
func TestVersionGating(t *testing.T) {
	tests := []struct {
		version string
		c       call
		want    int
	}{
		{"3.9.0", call{method: "GET", path: "/api/v1/contacts-by-phone?phone=%2B254712345679"}, 404},
		{"3.10.0", call{method: "GET", path: "/api/v1/contacts-by-phone?phone=%2B254712345679"}, 200},
		{"4.8.0", call{method: "GET", path: "/api/v1/person/" + DemoPatientID}, 404},
		{"4.9.0", call{method: "GET", path: "/api/v1/person/" + DemoPatientID}, 200},
		{"4.9.0", call{method: "GET", path: "/api/v1/place/" + DemoHouseholdID}, 404},
		{"4.10.0", call{method: "GET", path: "/api/v1/person?type=person"}, 404},
		{"4.11.0", call{method: "GET", path: "/api/v1/person?type=person"}, 200},
		{"4.17.0", call{method: "GET", path: "/api/v1/report/" + DemoAssessmentReportID}, 404},
		{"4.18.0", call{method: "GET", path: "/api/v1/report/" + DemoAssessmentReportID}, 200},
		{"5.1.0", call{method: "POST", path: "/api/v1/person", ct: "application/json", body: `{"name":"A","type":"person","parent":"` + DemoHouseholdID + `"}`}, 404},
		{"5.2.0", call{method: "POST", path: "/api/v1/person", ct: "application/json", body: `{"name":"A","type":"person","parent":"` + DemoHouseholdID + `"}`}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.version+" "+tt.c.method+" "+tt.c.path, func(t *testing.T) {
			srv := NewDemoServer(Config{BasePath: "/cht", Version: tt.version})
			defer srv.Close()
			r := do(t, srv, tt.c)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			info := do(t, srv, call{method: "GET", path: "/api/info", user: "-"})
			jsonEqual(t, info.body, []byte(`{"version":"0.1.0"}`))
			if r := do(t, srv, call{method: "GET", path: "/api/deploy-info", user: "-"}); r.status != http.StatusUnauthorized {
				t.Errorf("deploy-info without login: %d", r.status)
			}
			var deploy struct{ Version string }
			if err := json.Unmarshal(do(t, srv, call{method: "GET", path: "/api/deploy-info"}).body, &deploy); err != nil || deploy.Version != tt.version {
				t.Errorf("deploy-info version %q (%v), want %s", deploy.Version, err, tt.version)
			}
		})
	}
}

// SetVersion upgrades the fake while it runs, as an upgrade of CHT does
// under a mediator that keeps running: from the next request
// /api/deploy-info reports the new release (api/src/routing.js answers
// deployInfo.get(); cht-core 5.x refreshes shared-libs/server-info's
// cache in api/src/services/setup/upgrade-steps.js finalize, and a 4.x
// upgrade starts a new API process) and routes are gated by it, while the
// data stay. A version that is no release is refused and changes nothing.
func TestSetVersion(t *testing.T) {
	srv := NewDemoServer(Config{Version: "4.8.0"})
	t.Cleanup(srv.Close)
	person := call{method: "GET", path: "/api/v1/person/" + DemoPatientID}
	deployInfo := func() string {
		t.Helper()
		var d struct {
			Version     string `json:"version"`
			BaseVersion string `json:"base_version"`
		}
		if err := json.Unmarshal(do(t, srv, call{method: "GET", path: "/api/deploy-info"}).body, &d); err != nil {
			t.Fatal(err)
		}
		return d.Version + " " + d.BaseVersion
	}
	steps := []struct {
		set     string // "" at the start
		wantErr bool
		version string
		person  int
	}{
		{"", false, "4.8.0", http.StatusNotFound},
		{"4.11.0", false, "4.11.0", http.StatusOK},
		{"four", true, "4.11.0", http.StatusOK},
		{"4.4.2", false, "4.4.2", http.StatusNotFound},
	}
	for _, st := range steps {
		if st.set != "" {
			if err := srv.SetVersion(st.set); (err != nil) != st.wantErr {
				t.Fatalf("SetVersion(%q) = %v, want an error: %v", st.set, err, st.wantErr)
			}
		}
		if got := srv.Version(); got != st.version {
			t.Errorf("after %q: Version() = %s, want %s", st.set, got, st.version)
		}
		if got, want := deployInfo(), st.version+" "+st.version; got != want {
			t.Errorf("after %q: deploy-info version, base_version = %s, want %s", st.set, got, want)
		}
		if r := do(t, srv, person); r.status != st.person {
			t.Errorf("after %q: GET person/:uuid = %d, want %d", st.set, r.status, st.person)
		}
	}
	if _, ok := srv.Doc(DemoPatientID); !ok {
		t.Error("the data did not survive the upgrade")
	}
}

// SetVersion is safe while requests are served (go test -race).
func TestSetVersionConcurrent(t *testing.T) {
	srv := NewDemoServer(Config{Version: "4.8.0"})
	t.Cleanup(srv.Close)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				for _, path := range []string{"/api/deploy-info", "/api/v1/person/" + DemoPatientID} {
					req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
					req.SetBasicAuth(AdminUsername, AdminPassword)
					resp, err := srv.Client().Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
						t.Errorf("GET %s: %d", path, resp.StatusCode)
					}
				}
			}
		})
	}
	for _, v := range []string{"4.9.0", "4.11.0", "5.2.0"} {
		if err := srv.SetVersion(v); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if got := srv.Version(); got != "5.2.0" {
		t.Errorf("Version() = %s, want the last set, 5.2.0", got)
	}
}

// TestCreateAndUpdate52 pins the cht-core 5.2.0 write routes of
// api/src/routing.js (POST /api/v1/person, PUT /api/v1/person/:uuid, POST
// /api/v1/report): api/src/controllers/person.js v1.create/v1.update and
// report.js v1.create call shared-libs/cht-datasource/src/local/person.ts
// v1.create (getTypeProperties: a configured person type becomes type
// contact + contact_type; minified parent lineage) and v1.update (the
// body replaces the doc, so keys omitted are deleted), and local/report.ts
// v1.create (no form definition needed; the contact's lineage minified).
func TestCreateAndUpdate52(t *testing.T) {
	srv := NewDemoServer(Config{BasePath: "/cht", Version: "5.2.0"})
	t.Cleanup(srv.Close)
	r := do(t, srv, call{method: "POST", path: "/api/v1/person", ct: "application/json",
		body: `{"name":"dummyuser","type":"person","parent":"` + DemoHouseholdID + `","phone":"+254700000009"}`})
	if r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	doc := r.obj(t)
	// Reference §5 "Configurable-type person as created via 5.2": full doc,
	// type contact + contact_type, minified parent.
	for path, want := range map[string]any{"type": "contact", "contact_type": "person", "name": "dummyuser",
		"parent._id": DemoHouseholdID, "parent.parent._id": DemoCHWAreaID, "parent.name": nil} {
		if got := get(doc, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if !strings.HasPrefix(str(doc["_rev"]), "1-") {
		t.Errorf("_rev = %v", doc["_rev"])
	}
	if r := do(t, srv, call{method: "POST", path: "/api/v1/person", ct: "application/json; charset=utf-8", body: `{"name":"x"}`}); r.status != 400 {
		t.Errorf("charset: status %d, want 400", r.status)
	}
	// PUT: keys omitted are deleted; _rev required; reported_date unchanged.
	upd := map[string]any{"_rev": doc["_rev"], "name": "renamed", "type": "contact", "contact_type": "person",
		"parent": doc["parent"], "reported_date": doc["reported_date"]}
	r = do(t, srv, call{method: "PUT", path: "/api/v1/person/" + str(doc["_id"]), ct: "application/json", body: mustMarshal(t, upd)})
	if r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	got := r.obj(t)
	if got["name"] != "renamed" || got["phone"] != nil || !strings.HasPrefix(str(got["_rev"]), "2-") {
		t.Errorf("update answer %s", r.body)
	}
	// Stale _rev → 400 (assertFieldsUnchanged; TestUpdate52Errors).
	r = do(t, srv, call{method: "PUT", path: "/api/v1/person/" + str(doc["_id"]), ct: "application/json", body: mustMarshal(t, upd)})
	if r.status != http.StatusBadRequest {
		t.Errorf("stale update: %d %s", r.status, r.body)
	}
	// Report create: no form definition needed.
	r = do(t, srv, call{method: "POST", path: "/api/v1/report", ct: "application/json",
		body: `{"form":"anything","contact":"` + DemoCHWID + `","fields":{"a":1}}`})
	if r.status != 200 || get(r.json(t), "contact.parent._id") != DemoCHWAreaID || get(r.json(t), "type") != "data_record" {
		t.Errorf("report create: %d %s", r.status, r.body)
	}
}

// TestCreate52RefusesID pins the 5.2 create endpoints on a body with _id
// or _rev: shared-libs/cht-datasource parameter-validators.ts
// assertContactInput and assertReportInput call assertDoesNotHaveField
// (libs/core.ts), which throws "The [<name>] field must not be set."
// (400) unless the value is undefined or null. The legacy POST
// /api/v1/people (shared-libs/contacts people.js createPerson,
// db.medic.post) keeps the _id, and a replay is a 409.
func TestCreate52RefusesID(t *testing.T) {
	srv := NewDemoServer(Config{Version: "5.2.0"})
	t.Cleanup(srv.Close)
	const person = `"name":"n","type":"person","parent":"` + DemoHouseholdID + `"`
	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"person _id", "/api/v1/person", `{` + person + `,"_id":"chosen"}`, 400, "The [_id] field must not be set."},
		{"person _rev", "/api/v1/person", `{` + person + `,"_rev":"1-a"}`, 400, "The [_rev] field must not be set."},
		{"place _id", "/api/v1/place", `{"name":"h","type":"household","parent":"` + DemoCHWAreaID + `","_id":"chosen"}`, 400, "The [_id] field must not be set."},
		{"report _id", "/api/v1/report", `{"form":"f","contact":"` + DemoCHWID + `","_id":"chosen"}`, 400, "The [_id] field must not be set."},
		{"person null _id", "/api/v1/person", `{` + person + `,"_id":null,"_rev":null}`, 200, ""},
		{"legacy person _id", "/api/v1/people", `{"name":"n","place":"` + DemoHouseholdID + `","_id":"legacy-chosen"}`, 200, ""},
		{"legacy person replay", "/api/v1/people", `{"name":"n","place":"` + DemoHouseholdID + `","_id":"legacy-chosen"}`, 409, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, call{method: "POST", path: tt.path, ct: "application/json", body: tt.body})
			if r.status != tt.status || !strings.Contains(string(r.body), tt.msg) {
				t.Errorf("%d %s, want %d %q", r.status, r.body, tt.status, tt.msg)
			}
			if _, ok := srv.Doc("chosen"); ok {
				t.Error("doc \"chosen\" stored")
			}
		})
	}
}

// TestUpdate52Errors pins the errors of PUT /api/v1/{person,place,report}/
// :uuid in cht-core 5.2.0: shared-libs/cht-datasource/src/local/person.ts,
// place.ts and report.ts v1.update. The input {...body, _id: uuid} must be
// a doc of the kind (isDoc: string _id and _rev; isReport also a form),
// else InvalidArgumentError "Valid _id, _rev, and type fields must be
// provided."; the stored doc must exist and be of the kind, else
// ResourceNotFoundError "<Kind> record [<id>] not found."; then
// assertFieldsUnchanged (local/libs/core.ts) lists the changed fields
// among _rev, reported_date, type and contact_type (reports: _rev and
// reported_date) in "The [<fields>] fields must not be changed.", so a
// stale _rev is a 400, not CouchDB's 409. api/src/server-utils.js error
// maps InvalidArgumentError to 400 and ResourceNotFoundError to 404.
func TestUpdate52Errors(t *testing.T) {
	srv := NewDemoServer(Config{BasePath: "/cht", Version: "5.2.0"})
	t.Cleanup(srv.Close)
	cur := do(t, srv, call{method: "GET", path: "/api/v1/person/" + DemoPatientID}).obj(t)
	with := func(kv ...any) string {
		m := map[string]any{}
		for k, v := range cur {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return mustMarshal(t, m)
	}
	place := do(t, srv, call{method: "GET", path: "/api/v1/place/" + DemoHouseholdID}).obj(t)
	const stale = "1-00000000000000000000000000000000"
	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"stale _rev", "/api/v1/person/" + DemoPatientID, with("_rev", stale), 400, "The [_rev] fields must not be changed."},
		{"reported_date", "/api/v1/person/" + DemoPatientID, with("reported_date", 1), 400, "The [reported_date] fields must not be changed."},
		{"both", "/api/v1/person/" + DemoPatientID, with("_rev", stale, "reported_date", 1), 400, "The [_rev,reported_date] fields must not be changed."},
		{"no _rev", "/api/v1/person/" + DemoPatientID, with("_rev", nil), 400, "Valid _id, _rev, and type fields must be provided."},
		{"not a person type", "/api/v1/person/" + DemoPatientID, with("type", "feedback"), 400, "Valid _id, _rev, and type fields must be provided."},
		{"missing person", "/api/v1/person/nope", with(), 404, "Person record [nope] not found."},
		{"a place is no person", "/api/v1/person/" + DemoHouseholdID, with(), 404, "Person record [" + DemoHouseholdID + "] not found."},
		{"missing place", "/api/v1/place/nope", mustMarshal(t, place), 404, "Place record [nope] not found."},
		{"report without form", "/api/v1/report/" + DemoAssessmentReportID, `{"_rev":"1-a","type":"data_record"}`, 400,
			"Valid _id, _rev, form, and type fields must be provided."},
		{"missing report", "/api/v1/report/nope", `{"_rev":"1-a","type":"data_record","form":"f"}`, 404, "Report record [nope] not found."},
	} {
		r := do(t, srv, call{method: "PUT", path: tc.path, ct: "application/json", body: tc.body})
		if r.status != tc.status || r.obj(t)["error"] != tc.want {
			t.Errorf("%s: %d %s; CHT 5.2 answers %d %q", tc.name, r.status, r.body, tc.status, tc.want)
		}
	}
}

// TestDatasourcePagingErrors pins the 400 answers of GET /api/v1/person
// and /api/v1/place listings. api/src/controllers/person.js getAll calls
// Qualifier.byContactType(req.query.type) (qualifier.ts: a missing or
// empty type is "Invalid contact type [<JSON.stringify>]."), then
// person.ts getPage runs assertCursor and assertLimit, then local/
// person.ts getPage refuses a type that is not a person type and reads
// the cursor with validateCursor (Number(cursor) a non-negative integer).
// req.query values are strings, so cursor=null is the string "null",
// which is refused. From cht-core 4.18.0 (libs/parameter-validators.ts,
// local/libs/core.ts) the messages quote the value with JSON.stringify
// and any limit Number() makes a positive integer is accepted; 4.17.0
// (libs/core.ts assertLimit/assertCursor, controller Number(limit) when
// truthy) prints String(value).
func TestDatasourcePagingErrors(t *testing.T) {
	for _, tc := range []struct {
		version, query, want string
	}{
		{"5.2.0", "type=person&limit=abc", `The limit must be a positive integer: ["abc"].`},
		{"5.2.0", "type=person&limit=0", `The limit must be a positive integer: ["0"].`},
		{"5.2.0", "type=person&limit=2.5", `The limit must be a positive integer: ["2.5"].`},
		{"5.2.0", "type=person&limit=", `The limit must be a positive integer: [""].`},
		{"5.2.0", "type=person&limit=5.0", ""},
		{"5.2.0", "type=person&cursor=x", `The cursor must be a string or null for first page: ["x"].`},
		{"5.2.0", "type=person&cursor=null", `The cursor must be a string or null for first page: ["null"].`},
		{"5.2.0", "type=person&cursor=", `The cursor must be a string or null for first page: [""].`},
		{"5.2.0", "type=person&cursor=-1", `The cursor must be a string or null for first page: ["-1"].`},
		{"5.2.0", "type=person&cursor=2", ""},
		{"5.2.0", "", `Invalid contact type [undefined].`},
		{"5.2.0", "type=", `Invalid contact type [""].`},
		{"5.2.0", "type=nope", `Invalid contact type [nope].`},
		{"5.2.0", "type=nope&limit=abc", `The limit must be a positive integer: ["abc"].`}, // checked before the type
		{"4.18.0", "type=person&cursor=null", `The cursor must be a string or null for first page: ["null"].`},
		{"4.17.0", "type=person&limit=abc", `The limit must be a positive number: [NaN].`},
		{"4.17.0", "type=person&limit=0", `The limit must be a positive number: [0].`},
		{"4.17.0", "type=person&limit=2.5", `The limit must be a positive number: [2.5].`},
		{"4.17.0", "type=person&limit=", `The limit must be a positive number: [].`},
		{"4.17.0", "type=person&cursor=x", `Invalid cursor token: [x].`},
		{"4.17.0", "type=person&cursor=null", `Invalid cursor token: [null].`},
		{"4.17.0", "type=person&cursor=", `Invalid cursor token: [].`},
		{"4.17.0", "", `Invalid contact type [undefined].`},
	} {
		srv := NewDemoServer(Config{BasePath: "/cht", Version: tc.version})
		r := do(t, srv, call{method: "GET", path: "/api/v1/person?" + tc.query})
		srv.Close()
		if tc.want == "" {
			if r.status != 200 {
				t.Errorf("%s ?%s: %d %s, want 200", tc.version, tc.query, r.status, r.body)
			}
			continue
		}
		if r.status != 400 || r.obj(t)["error"] != tc.want {
			t.Errorf("%s ?%s: %d %s; CHT answers 400 %q", tc.version, tc.query, r.status, r.body, tc.want)
		}
	}
}

// TestCreate52Validation pins how cht-core 5.2.0 checks the body of POST
// /api/v1/person and /api/v1/place. api/src/routing.js postJson refuses a
// Content-Type other than application/json first; the controllers
// (api/src/controllers/person.js, place.js v1.create) then call
// auth.assertPermissions with isOnline (an offline user or one without
// the permission gets PermissionError "Insufficient privileges", 403, not
// the offline firewall's answer); shared-libs/cht-datasource
// libs/parameter-validators.ts assertPersonInput and assertPlaceInput
// check the fields (libs/core.ts assertHasRequiredField: a non-blank
// string; assertHasOptionalField: when present, a string, null
// included; assertReportedDate: an integer or an ISO 8601 UTC string);
// local/person.ts and local/place.ts v1.create check the type
// (getTypeProperties, getPlaceType), the primary contact before the
// parent (getPrimaryContactForCreate, getParentForCreate) and the
// parent's type (local/libs/lineage.ts assertHasValidParentType). Every
// InvalidArgumentError is a 400 {"code":400,"error":<message>}
// (api/src/server-utils.js error).
func TestCreate52Validation(t *testing.T) {
	srv := NewDemoServer(Config{Version: "5.2.0"})
	t.Cleanup(srv.Close)
	srv.AddUser(User{Name: "offline", Password: "pw", Roles: []string{"chw"},
		Permissions: []string{PermCreatePeople, PermCreatePlaces, PermEdit}, Facility: DemoCHWAreaID})
	srv.AddUser(User{Name: "viewer", Password: "pw", Roles: []string{RoleOnline}, Permissions: []string{PermViewContacts}})
	const (
		person = `"name":"n","type":"person","parent":"` + DemoHouseholdID + `"`
		house  = `"name":"h","type":"household","parent":"` + DemoCHWAreaID + `"`
		badRD  = "Invalid reported_date. Expected format to be 'YYYY-MM-DDTHH:mm:ssZ', 'YYYY-MM-DDTHH:mm:ss.SSSZ', or a Unix epoch."
	)
	tests := []struct {
		name, path, body string
		ct, user         string
		status           int
		want             string // the error member, or for 200 "reported_date=<ms>" when it is checked
	}{
		{"person", "/api/v1/person", `{` + person + `}`, "", "", 200, ""},
		{"name a number", "/api/v1/person", `{"name":42,"type":"person","parent":"` + DemoHouseholdID + `"}`, "", "", 400, "The [name] field must have a [string] value."},
		{"name blank", "/api/v1/person", `{"name":"  ","type":"person","parent":"` + DemoHouseholdID + `"}`, "", "", 400, "The [name] field must have a [string] value."},
		{"no type", "/api/v1/person", `{"name":"n","parent":"` + DemoHouseholdID + `"}`, "", "", 400, "The [type] field must have a [string] value."},
		{"empty body", "/api/v1/person", ``, "", "", 400, "The [type] field must have a [string] value."},
		{"type contact", "/api/v1/person", `{"name":"n","type":"contact","contact_type":"person","parent":"` + DemoHouseholdID + `"}`, "", "", 400, "[contact] is not a valid person type."},
		{"place type", "/api/v1/person", `{"name":"n","type":"household","parent":"` + DemoHouseholdID + `"}`, "", "", 400, "[household] is not a valid person type."},
		{"parent an object", "/api/v1/person", `{"name":"n","type":"person","parent":{"_id":"` + DemoHouseholdID + `"}}`, "", "", 400, "The [parent] field must have a [string] value."},
		{"no parent", "/api/v1/person", `{"name":"n","type":"person"}`, "", "", 400, "The [parent] field must have a [string] value."},
		{"missing parent", "/api/v1/person", `{"name":"n","type":"person","parent":"nope"}`, "", "", 400, "Parent contact [nope] not found."},
		{"parent a person", "/api/v1/person", `{"name":"n","type":"person","parent":"` + DemoPatientID + `"}`, "", "", 400, "Parent contact of type [person] is not allowed for type [person]."},
		{"phone a number", "/api/v1/person", `{` + person + `,"phone":254700000001}`, "", "", 400, "The [phone] field must have the type [string]."},
		{"sex null", "/api/v1/person", `{` + person + `,"sex":null}`, "", "", 400, "The [sex] field must have the type [string]."},
		{"patient_id a number", "/api/v1/person", `{` + person + `,"patient_id":12345}`, "", "", 400, "The [patient_id] field must have the type [string]."},
		{"date_of_birth", "/api/v1/person", `{` + person + `,"date_of_birth":"not a date"}`, "", "", 400, "The [date_of_birth] field must have a [date] value."},
		{"date_of_birth a date", "/api/v1/person", `{` + person + `,"date_of_birth":"1990-01-01"}`, "", "", 200, ""},
		{"reported_date digits", "/api/v1/person", `{` + person + `,"reported_date":"1700000000000"}`, "", "", 400, badRD},
		{"reported_date fraction", "/api/v1/person", `{` + person + `,"reported_date":1.5}`, "", "", 400, badRD},
		{"reported_date offset", "/api/v1/person", `{` + person + `,"reported_date":"2024-01-01T00:00:00+02:00"}`, "", "", 400, badRD},
		{"reported_date empty", "/api/v1/person", `{` + person + `,"reported_date":""}`, "", "", 400, "Invalid date value []."},
		{"reported_date UTC", "/api/v1/person", `{` + person + `,"reported_date":"2024-01-01T00:00:00.000Z"}`, "", "", 200, "reported_date=1704067200000"},
		{"reported_date 0", "/api/v1/person", `{` + person + `,"reported_date":0}`, "", "", 200, "reported_date=0"},
		{"offline user", "/api/v1/person", `{` + person + `}`, "", "offline", 403, "Insufficient privileges"},
		{"no permission", "/api/v1/person", `{` + person + `}`, "", "viewer", 403, "Insufficient privileges"},
		{"content type before permissions", "/api/v1/person", `{` + person + `}`, "text/plain", "offline", 400, "Content-Type must be application/json"},
		{"place", "/api/v1/place", `{` + house + `,"contact":"` + DemoPatientID + `"}`, "", "", 200, ""},
		{"contact an object", "/api/v1/place", `{` + house + `,"contact":{"_id":"` + DemoPatientID + `"}}`, "", "", 400, "The [contact] field must have the type [string]."},
		{"contact a report", "/api/v1/place", `{` + house + `,"contact":"` + DemoHeightWeightReportID + `"}`, "", "", 400, "Primary contact [" + DemoHeightWeightReportID + "] not found."},
		{"contact before parent", "/api/v1/place", `{"name":"h","type":"household","parent":"nope","contact":"nope"}`, "", "", 400, "Primary contact [nope] not found."},
		{"place_id a number", "/api/v1/place", `{` + house + `,"place_id":7}`, "", "", 400, "The [place_id] field must have the type [string]."},
		{"person type", "/api/v1/place", `{"name":"h","type":"person","parent":"` + DemoCHWAreaID + `"}`, "", "", 400, "[person] is not a valid place type."},
		{"top-level with parent", "/api/v1/place", `{"name":"d","type":"district_hospital","parent":"` + DemoDistrictID + `"}`, "", "", 400, "Place type [district_hospital] does not support having a parent contact."},
		{"parent required", "/api/v1/place", `{"name":"h","type":"household"}`, "", "", 400, "Place type [household] requires a parent contact."},
		{"place parent a person", "/api/v1/place", `{"name":"h","type":"household","parent":"` + DemoPatientID + `"}`, "", "", 400, "Parent contact [" + DemoPatientID + "] not found."},
		{"place parent of the wrong type", "/api/v1/place", `{"name":"h","type":"household","parent":"` + DemoDistrictID + `"}`, "", "", 400, "Parent contact of type [district_hospital] is not allowed for type [household]."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := call{method: "POST", path: tt.path, ct: "application/json", body: tt.body}
			if tt.ct != "" {
				c.ct = tt.ct
			}
			if tt.user != "" {
				c.user, c.pass = tt.user, "pw"
			}
			r := do(t, srv, c)
			if r.status != tt.status {
				t.Fatalf("%d %s; CHT 5.2.0 answers %d %q", r.status, r.body, tt.status, tt.want)
			}
			m := r.obj(t)
			if tt.status != 200 {
				if m["error"] != tt.want || len(m) != 2 {
					t.Errorf("body %s; CHT 5.2.0 answers {\"code\":%d,\"error\":%q}", r.body, tt.status, tt.want)
				}
				return
			}
			if ms, ok := strings.CutPrefix(tt.want, "reported_date="); ok && fmt.Sprint(m["reported_date"]) != ms {
				t.Errorf("reported_date = %v, want %s", m["reported_date"], ms)
			}
		})
	}
}

// TestLegacyDefaultPersonType pins the type the legacy endpoints give a
// person sent without one: shared-libs/contacts/src/people.js
// createPerson sets getDefaultPersonType(), the id of the "person" entry
// of app_settings.contact_types, when data.type is falsy, and
// places.js preparePlaceContact when contact.type is null or undefined;
// when contact_types have no "person" the person keeps no type, and
// validatePerson answers 400 "Wrong type, this is not a person.". A
// person sent with type "person" is one in every hierarchy
// (contact-types-utils isPerson).
func TestLegacyDefaultPersonType(t *testing.T) {
	custom := []ContactType{{ID: "area"}, {ID: "chw", Parents: []string{"area"}, Person: true}}
	tests := []struct {
		name   string
		types  []ContactType
		path   string
		body   string
		status int
		want   string // the error, or the stored person's type
	}{
		{"declared", nil, "/api/v1/people", `{"name":"a"}`, 200, "person"},
		{"declared, empty type", nil, "/api/v1/people", `{"name":"a","type":""}`, 200, "person"},
		{"not declared", custom, "/api/v1/people", `{"name":"a"}`, 400, "Wrong type, this is not a person."},
		{"not declared, type person", custom, "/api/v1/people", `{"name":"a","type":"person"}`, 200, "person"},
		{"place contact, not declared", custom, "/api/v1/places", `{"name":"p","type":"area","contact":{"name":"a"}}`, 400,
			"Wrong type, this is not a person."},
		{"place contact, declared", nil, "/api/v1/places", `{"name":"p","type":"district_hospital","contact":{"name":"a"}}`, 200, "person"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, Config{ContactTypes: tt.types})
			r := do(t, srv, call{method: "POST", path: tt.path, ct: "application/json", body: tt.body})
			if r.status != tt.status {
				t.Fatalf("%d %s; CHT answers %d %q", r.status, r.body, tt.status, tt.want)
			}
			m := r.obj(t)
			if tt.status != 200 {
				if m["error"] != tt.want {
					t.Errorf("error %v, want %q", m["error"], tt.want)
				}
				return
			}
			id := str(m["id"])
			if c, ok := m["contact"].(map[string]any); ok {
				id = str(c["id"])
			}
			d, _ := srv.store.get(id)
			if d["type"] != tt.want {
				t.Errorf("stored type %v, want %q", d["type"], tt.want)
			}
		})
	}
}

// TestLegacyPlaceValidatesAncestors pins that POST /api/v1/places checks
// the whole lineage of the new place: shared-libs/contacts/src/places.js
// createPlaces replaces a parent id by getPlace's doc, hydrated with its
// ancestors (an ancestor CHT does not have stays the stub {_id, parent}),
// and validatePlace ends with validatePlace(place.parent), so every
// ancestor must be a place with a name, a valid reported_date (utils.js
// isDateStrValid: moment's strict 'YYYY-MM-DDTHH:mm:ssZ',
// 'YYYY-MM-DDTHH:mm:ss.SSSZ' or 'x') and a parent of an allowed type;
// each failure is a 400 naming the ancestor.
func TestLegacyPlaceValidatesAncestors(t *testing.T) {
	district := map[string]any{"_id": "d", "type": "district_hospital", "name": "d", "reported_date": 1}
	centre := func(kv ...any) map[string]any {
		h := map[string]any{"_id": "h", "type": "health_center", "name": "h", "parent": map[string]any{"_id": "d"}}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i].(string)] = kv[i+1]
		}
		return h
	}
	const clinic = `{"name":"c","type":"clinic","parent":"h"}`
	tests := []struct {
		name   string
		docs   []any
		body   string
		status int
		want   string
	}{
		{"valid", []any{district, centre()}, clinic, 200, ""},
		{"a parent's date", []any{district, centre("reported_date", "2024-01-01")}, clinic, 400,
			"Reported date on place h is invalid: 2024-01-01"},
		{"a parent's date with an offset", []any{district, centre("reported_date", "2024-01-01T10:00:00+0200")}, clinic, 200, ""},
		{"a grandparent without a name", []any{map[string]any{"_id": "d", "type": "district_hospital"}, centre()}, clinic, 400,
			`Place d is missing a "name" property.`},
		{"a missing ancestor", []any{map[string]any{"_id": "d", "type": "district_hospital", "name": "d", "parent": map[string]any{"_id": "gone"}}},
			`{"name":"h","type":"health_center","parent":"d"}`, 400, "Wrong type, object gone is not a place."},
		{"the place's own date", []any{district, centre()}, `{"name":"c","type":"clinic","parent":"h","reported_date":"2024-01-01"}`, 400,
			"Reported date on place  is invalid: 2024-01-01"},
		{"a person's date", []any{district, centre()}, `{"name":"p","place":"h","reported_date":"1.5"}`, 400,
			"Reported date is invalid: 1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, Config{})
			if err := srv.PutDocs(tt.docs...); err != nil {
				t.Fatal(err)
			}
			path := "/api/v1/places"
			if strings.Contains(tt.body, `"place"`) {
				path = "/api/v1/people"
			}
			r := do(t, srv, call{method: "POST", path: path, ct: "application/json", body: tt.body})
			if r.status != tt.status || tt.want != "" && r.obj(t)["error"] != tt.want {
				t.Errorf("%d %s; CHT answers %d %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
}

// TestLegacyReportedDateStored pins the reported_date of a person created
// with POST /api/v1/people: shared-libs/contacts/src/people.js
// createPerson stores data.reported_date ? utils.parseDate(...).valueOf()
// : new Date(), so a falsy one (0) is now, and a string of milliseconds
// or an ISO date with a zone is stored as milliseconds.
func TestLegacyReportedDateStored(t *testing.T) {
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	srv := newTestServer(t, Config{Now: func() time.Time { return now }})
	for _, tt := range []struct {
		date string // the member's JSON, "" for none
		want int64
	}{
		{"", now.UnixMilli()},
		{"0", now.UnixMilli()},
		{`"1700000000000"`, 1700000000000},
		{"1700000000000", 1700000000000},
		{`"2024-01-01T00:00:00.000Z"`, 1704067200000},
		{`"2024-01-01T02:00:00+02:00"`, 1704067200000},
	} {
		body := `{"name":"p"}`
		if tt.date != "" {
			body = `{"name":"p","reported_date":` + tt.date + `}`
		}
		r := do(t, srv, call{method: "POST", path: "/api/v1/people", ct: "application/json", body: body})
		if r.status != 200 {
			t.Fatalf("%s: %d %s", tt.date, r.status, r.body)
		}
		d, _ := srv.store.get(str(r.obj(t)["id"]))
		if got := fmt.Sprint(d["reported_date"]); got != fmt.Sprint(tt.want) {
			t.Errorf("reported_date %s stored as %s, want %d", tt.date, got, tt.want)
		}
	}
}

// TestLegacyPlaceContactByVersion pins how POST /api/v1/places stores a
// primary contact. From cht-core 4.7.0 shared-libs/contacts/src/places.js
// createPlace (preparePlaceContact) stores an existing contact's id and
// answers {ok, id, rev, contact: {id}}, and creates a new contact after
// the place, as its child. Before, createPlace reads or creates the
// contact first with people.getOrCreatePerson (a new one without a
// place), stores lineage.minifyLineage(person), and answers db.medic.post's
// {ok, id, rev}.
func TestLegacyPlaceContactByVersion(t *testing.T) {
	tests := []struct {
		version, contact string
		answer           string // the answer's contact member, JSON
		stored           string // the stored place's contact, JSON
		newParent        string // a new contact's parent, JSON
	}{
		{"4.7.0", `"p"`, `{"id":"p"}`, `"p"`, ""},
		{"4.7.0", `{"name":"new"}`, `{"id":"NEW"}`, `{"_id":"NEW","parent":{"_id":"PLACE","parent":{"_id":"d"}}}`, `{"_id":"PLACE","parent":{"_id":"d"}}`},
		{"4.6.0", `"p"`, `null`, `{"_id":"p","parent":{"_id":"d"}}`, ""},
		{"4.6.0", `{"name":"new"}`, `null`, `{"_id":"NEW"}`, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.version+" "+tt.contact, func(t *testing.T) {
			srv := newTestServer(t, Config{Version: tt.version})
			if err := srv.PutDocs(map[string]any{"_id": "d", "type": "district_hospital", "name": "d"},
				map[string]any{"_id": "p", "type": "person", "name": "p", "parent": map[string]any{"_id": "d"}}); err != nil {
				t.Fatal(err)
			}
			r := do(t, srv, call{method: "POST", path: "/api/v1/places", ct: "application/json",
				body: `{"name":"h","type":"health_center","parent":"d","contact":` + tt.contact + `}`})
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			m := r.obj(t)
			placeID := str(m["id"])
			place, _ := srv.store.get(placeID)
			newID := idOf(place["contact"])
			if s, ok := place["contact"].(string); ok {
				newID = s
			}
			fill := func(s string) string {
				return strings.NewReplacer("PLACE", placeID, "NEW", newID).Replace(s)
			}
			if got := mustMarshal(t, m["contact"]); got != fill(tt.answer) {
				t.Errorf("answer's contact %s, want %s", got, fill(tt.answer))
			}
			if got := mustMarshal(t, place["contact"]); got != fill(tt.stored) {
				t.Errorf("stored contact %s, want %s", got, fill(tt.stored))
			}
			if tt.newParent != "" {
				person, _ := srv.store.get(newID)
				if got := mustMarshal(t, person["parent"]); got != fill(tt.newParent) {
					t.Errorf("new contact's parent %s, want %s", got, fill(tt.newParent))
				}
			}
		})
	}
}
