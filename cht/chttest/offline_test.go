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
