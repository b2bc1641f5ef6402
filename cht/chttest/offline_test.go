package chttest

import (
	"net/http"
	"slices"
	"testing"
)

// TestOfflineUserScope pins that an offline user reads only its own
// documents through /medic: _changes (api/src/controllers/changes.js),
// _all_docs (all-docs.js) and doc GETs (db-doc.js permissionsError: 403
// {"error":"forbidden","reason":"Insufficient privileges"}), as
// services/authorization.js decides from the user's facility.
func TestOfflineUserScope(t *testing.T) {
	srv := NewDemoServer()
	t.Cleanup(srv.Close)
	srv.AddUser(User{Name: "chw", Password: "pw", Roles: []string{"chw"}, Facility: DemoCHWAreaID})
	srv.AddUser(User{Name: "nobody", Password: "pw", Roles: []string{"chw"}})
	want := []string{DemoCHWAreaID, DemoCHWID, DemoHouseholdID, DemoPatientID, DemoMotherID, DemoChildID,
		DemoDangerSignReportID, DemoAssessmentReportID, DemoHeightWeightReportID}
	slices.Sort(want)

	r := do(t, srv, call{method: "GET", path: "/medic/_changes", user: "chw", pass: "pw"})
	var got []string
	for _, row := range r.obj(t)["results"].([]any) {
		got = append(got, str(get(row, "id")))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("_changes ids %v, want %v", got, want)
	}
	r = do(t, srv, call{method: "GET", path: "/medic/_all_docs", user: "chw", pass: "pw"})
	got = nil
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
	if r := do(t, srv, call{method: "GET", path: "/medic/_changes", user: "nobody", pass: "pw"}); len(r.obj(t)["results"].([]any)) != 0 {
		t.Errorf("a user without a facility sees %s", r.body)
	}
	if r := do(t, srv, call{method: "GET", path: "/medic/_all_docs"}); len(r.obj(t)["rows"].([]any)) != 13 {
		t.Errorf("the admin sees every doc: %s", r.body)
	}
}
