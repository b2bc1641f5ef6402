package chttest

import (
	"net/http"
	"slices"
	"testing"
)

// TestOfflineUserScope pins that an offline user reads only its own
// documents through /medic: _all_docs (api/src/controllers/all-docs.js)
// and doc GETs (db-doc.js permissionsError: 403
// {"error":"forbidden","reason":"Insufficient privileges"}), as
// services/authorization.js decides from the user's facility. Its
// _changes (api/src/controllers/changes.js) is that subtree only before
// cht-core 4.3; from 4.3 to 5.2 processRequest answers
// db.medic.changes({doc_ids: authorization.getDefaultDocs(userCtx)}):
// only _design/medic-client, service-worker-meta, settings and
// org.couchdb.user:<name> (DEFAULT_DDOCS), and offline users get the rest
// through /api/v1/replication/get-ids.
func TestOfflineUserScope(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	srv.AddUser(User{Name: "chw", Password: "pw", Roles: []string{"chw"}, Facility: DemoCHWAreaID})
	srv.AddUser(User{Name: "nobody", Password: "pw", Roles: []string{"chw"}})
	want := []string{DemoCHWAreaID, DemoCHWID, DemoHouseholdID, DemoPatientID, DemoMotherID, DemoChildID,
		DemoDangerSignReportID, DemoAssessmentReportID, DemoHeightWeightReportID}
	slices.Sort(want)
	changeIDs := func(srv *Server, user string) []string {
		r := do(t, srv, call{method: "GET", path: "/medic/_changes?since=0&include_docs=true", user: user, pass: "pw"})
		var got []string
		for _, row := range r.obj(t)["results"].([]any) {
			got = append(got, str(get(row, "id")))
		}
		slices.Sort(got)
		return got
	}
	if err := srv.PutDocs(map[string]any{"_id": "org.couchdb.user:chw", "type": "user-settings", "name": "chw"},
		map[string]any{"_id": "org.couchdb.user:other", "type": "user-settings", "name": "other"},
		map[string]any{"_id": "service-worker-meta"}); err != nil {
		t.Fatal(err)
	}
	if got, want := changeIDs(srv, "chw"), []string{"org.couchdb.user:chw", "service-worker-meta"}; !slices.Equal(got, want) {
		t.Errorf("5.2 _changes ids %v, want only the default docs %v", got, want)
	}
	old := NewDemoServer(Config{Version: "4.2.0"})
	t.Cleanup(old.Close)
	old.AddUser(User{Name: "chw", Password: "pw", Roles: []string{"chw"}, Facility: DemoCHWAreaID})
	old.AddUser(User{Name: "nobody", Password: "pw", Roles: []string{"chw"}})
	if got := changeIDs(old, "chw"); !slices.Equal(got, want) {
		t.Errorf("4.2 _changes ids %v, want %v", got, want)
	}
	r := do(t, srv, call{method: "GET", path: "/medic/_all_docs", user: "chw", pass: "pw"})
	var got []string
	for _, row := range r.obj(t)["rows"].([]any) {
		got = append(got, str(get(row, "id")))
	}
	if !slices.Equal(got, want) {
		t.Errorf("_all_docs ids %v, want %v", got, want)
	}
	if r := do(t, srv, call{method: "GET", path: "/medic/" + DemoDistrictID, user: "chw", pass: "pw"}); r.status != http.StatusForbidden {
		t.Errorf("district for the CHW: %d %s", r.status, r.body)
	}
	if r := do(t, srv, call{method: "GET", path: "/medic/" + DemoPatientID, user: "chw", pass: "pw"}); r.status != http.StatusOK {
		t.Errorf("own patient: %d %s", r.status, r.body)
	}
	if r := do(t, old, call{method: "GET", path: "/medic/_changes", user: "nobody", pass: "pw"}); len(r.obj(t)["results"].([]any)) != 0 {
		t.Errorf("a user without a facility sees %s", r.body)
	}
	if r := do(t, srv, call{method: "GET", path: "/medic/_all_docs"}); len(r.obj(t)["rows"].([]any)) != 16 {
		t.Errorf("the admin sees every doc: %s", r.body)
	}
}

// TestMedicWriteRules pins what refuses a write through /medic that has
// the can_edit permission. CouchDB runs the medic database's
// validate_doc_update functions for every writer but a database admin
// (ddocs/medic-db/medic/validate_doc_update.js, cht-core 5.2.0): a doc
// with purged set is refused to everyone, the admin-only docs (ids such
// as settings and branding, types form, translations, token_login and
// ui-extension, and _design docs) to the others, and
// medic-client/validate_doc_update.js refuses a user the doc of its own
// facility; each is 403 {"error":"forbidden","reason":<message>}, and a
// _bulk_docs entry of its own. An offline user's single-doc write first
// goes through api/src/controllers/db-doc.js (services/replication/
// db-doc.js filterOfflineRequest): the stored doc and the doc written
// must both be in the user's scope, else permissionsError, 403
// {"error":"forbidden","reason":"Insufficient privileges"}.
func TestMedicWriteRules(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	srv.AddUser(User{Name: "integration", Password: "pw", Roles: []string{RoleOnline}, Permissions: []string{PermEdit}})
	srv.AddUser(User{Name: "chw", Password: "pw", Roles: []string{"chw"}, Permissions: []string{PermEdit}, Facility: DemoCHWAreaID})
	rev := func(id string) string {
		return str(do(t, srv, call{method: "GET", path: "/medic/" + id}).obj(t)["_rev"])
	}
	withRev := func(id string, kv ...string) func() string {
		return func() string {
			d := do(t, srv, call{method: "GET", path: "/medic/" + id}).obj(t)
			for i := 0; i < len(kv); i += 2 {
				d[kv[i]] = kv[i+1]
			}
			return mustMarshal(t, d)
		}
	}
	fixed := func(s string) func() string { return func() string { return s } }
	const (
		adminOnly = `{"error":"forbidden","reason":"You are not authorized to edit admin only docs"}`
		purged    = `{"error":"forbidden","reason":"Purged documents should not be written to CouchDB!"}`
		ownPlace  = `{"error":"forbidden","reason":"You are not authorized to edit your own place"}`
		scope     = `{"error":"forbidden","reason":"Insufficient privileges"}`
		household = `{"_id":"` + DemoHouseholdID + `","parent":{"_id":"` + DemoCHWAreaID + `"}}`
		centre    = `{"_id":"` + DemoHealthCentreID + `","parent":{"_id":"` + DemoDistrictID + `"}}`
	)
	steps := []struct {
		name, method string
		path         func() string
		user         string
		body         func() string
		status       int
		want         string // the whole answer when set
	}{
		{"a form doc", "PUT", fixed("/medic/form:x"), "integration", fixed(`{"type":"form"}`), 403, adminOnly},
		{"branding", "PUT", fixed("/medic/branding"), "integration", fixed(`{"title":"x"}`), 403, adminOnly},
		{"a form doc by an admin", "PUT", fixed("/medic/form:y"), "", fixed(`{"type":"form"}`), 201, ""},
		{"delete an admin-only doc", "DELETE", func() string { return "/medic/form:y?rev=" + rev("form:y") }, "integration", nil, 403, adminOnly},
		{"a form doc posted", "POST", fixed("/medic"), "integration", fixed(`{"_id":"form:z","type":"form"}`), 403, adminOnly},
		{"purged", "PUT", fixed("/medic/purged-1"), "integration", fixed(`{"purged":true}`), 403, purged},
		{"purged by an admin", "PUT", fixed("/medic/purged-2"), "", fixed(`{"purged":true}`), 403, purged},
		{"a person", "PUT", fixed("/medic/new-person-1"), "integration",
			fixed(`{"type":"person","name":"n","parent":` + household + `}`), 201, ""},
		{"bulk", "POST", fixed("/medic/_bulk_docs"), "integration",
			fixed(`{"docs":[{"_id":"form:w","type":"form"}]}`), 201, `[{"id":"form:w","error":"forbidden","reason":"You are not authorized to edit admin only docs"}]`},
		{"offline: a person in scope", "PUT", fixed("/medic/new-person-2"), "chw",
			fixed(`{"type":"person","name":"n","parent":` + household + `}`), 201, ""},
		{"offline: a person out of scope", "PUT", fixed("/medic/new-person-3"), "chw",
			fixed(`{"type":"person","name":"n","parent":` + centre + `}`), 403, scope},
		{"offline: posted out of scope", "POST", fixed("/medic/"), "chw",
			fixed(`{"_id":"new-person-4","type":"person","name":"n","parent":` + centre + `}`), 403, scope},
		{"offline: a stored doc out of scope", "PUT", fixed("/medic/" + DemoNurseID), "chw",
			withRev(DemoNurseID, "name", "renamed"), 403, scope},
		{"offline: delete out of scope", "DELETE", func() string { return "/medic/" + DemoNurseID + "?rev=" + rev(DemoNurseID) }, "chw", nil, 403, scope},
		{"offline: its own place", "PUT", fixed("/medic/" + DemoCHWAreaID), "chw", withRev(DemoCHWAreaID, "name", "renamed"), 403, ownPlace},
		{"offline: a doc in scope", "PUT", fixed("/medic/" + DemoHouseholdID), "chw", withRev(DemoHouseholdID, "name", "renamed"), 201, ""},
	}
	for _, st := range steps {
		c := call{method: st.method, path: st.path(), ct: "application/json"}
		if st.body != nil {
			c.body = st.body()
		}
		if st.user != "" {
			c.user, c.pass = st.user, "pw"
		}
		r := do(t, srv, c)
		if r.status != st.status {
			t.Errorf("%s: %s %s: %d %s; CHT answers %d %s", st.name, c.method, c.path, r.status, r.body, st.status, st.want)
			continue
		}
		if st.want != "" {
			jsonEqual(t, r.body, []byte(st.want))
		}
	}
	for _, id := range []string{"form:x", "branding", "form:z", "purged-1", "purged-2", "form:w", "new-person-3", "new-person-4"} {
		if _, ok := srv.Doc(id); ok {
			t.Errorf("%s was written", id)
		}
	}
}

// db-doc.js filterOfflineRequest reads the stored doc by the route's
// docId, which POST /medic/ has none of: an offline user's POST of a doc
// in its scope reaches CouchDB even when a doc out of its scope has that
// _id (CouchDB then answers 409 without the stored _rev).
func TestOfflinePostIgnoresStoredDoc(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	srv.AddUser(User{Name: "chw", Password: "pw", Roles: []string{"chw"}, Permissions: []string{PermEdit}, Facility: DemoCHWAreaID})
	body := `{"_id":"` + DemoNurseID + `","type":"person","name":"n","parent":{"_id":"` + DemoHouseholdID + `","parent":{"_id":"` + DemoCHWAreaID + `"}}}`
	r := do(t, srv, call{method: "POST", path: "/medic/", ct: "application/json", user: "chw", pass: "pw", body: body})
	if r.status != http.StatusConflict {
		t.Fatalf("POST /medic/ over a stored doc out of scope: %d %s; CHT lets it through to CouchDB's 409", r.status, r.body)
	}
}
