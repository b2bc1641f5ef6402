package chttest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// The contract tests pin, over HTTP only, behaviours where chttest must
// match cht-core; each names the cht-core file and function it pins. They
// run against chttest, and against a real CHT when CHT_URL, CHT_USERNAME
// and CHT_PASSWORD are set (an admin of a disposable test instance: they
// write app settings, a JSON form CHTTEST_C and documents). Behaviours
// that need Sentinel to reach a test server (outbound) or extra users are
// pinned by the chttest-only tests docs/fidelity.md lists.

type target struct {
	url, user, pass string
	real            bool
	version         string
	http            *http.Client
}

// contractForm is the JSON form the contract tests submit.
const contractForm = `{"CHTTEST_C":{"meta":{"code":"CHTTEST_C","label":"chttest contract"},"fields":{
  "patient_uuid":{"type":"string","required":true,"labels":{"tiny":"p"}},
  "n":{"type":"integer","labels":{"tiny":"n"}},
  "note":{"type":"string","labels":{"tiny":"t"}}}}}`

func newTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{url: os.Getenv("CHT_URL"), user: os.Getenv("CHT_USERNAME"), pass: os.Getenv("CHT_PASSWORD"),
		http: &http.Client{Timeout: 30 * time.Second}}
	if tg.url == "" {
		srv := chttest.NewServer(chttest.Config{ContactTypes: chttest.DemoContactTypes})
		t.Cleanup(srv.Close)
		tg.url, tg.user, tg.pass, tg.http = srv.URL, chttest.AdminUsername, chttest.AdminPassword, srv.Client()
	} else {
		tg.real = true
	}
	tg.url = strings.TrimRight(tg.url, "/")
	var info struct {
		Version string `json:"version"`
	}
	// /api/deploy-info, not /api/info, which answers "0.1.0" on every CHT
	// (api/src/routing.js serves the API's package.json version).
	_, body := tg.do(t, "GET", "/api/deploy-info", "", "")
	if err := json.Unmarshal(body, &info); err != nil || info.Version == "" {
		t.Fatalf("GET /api/deploy-info: %v %s", err, body)
	}
	tg.version = info.Version
	status, body := tg.do(t, "PUT", "/api/v1/settings", "application/json",
		`{"forms":`+contractForm+`,"default_country_code":254,"forms_only_mode":false,"transitions":{"update_clinics":false}}`)
	if status != 200 {
		t.Fatalf("configure %s: %d %s", tg.url, status, body)
	}
	return tg
}

func (tg *target) do(t *testing.T, method, path, ct, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, tg.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(tg.user, tg.pass)
	req.Header.Set("Accept", "application/json")
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := tg.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// doc fetches a stored document.
func (tg *target) doc(t *testing.T, id string) map[string]any {
	t.Helper()
	status, body := tg.do(t, "GET", "/medic/"+url.PathEscape(id), "", "")
	if status != 200 {
		t.Fatalf("GET %s: %d %s", id, status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// record submits to /api/v2/records and returns the stored report.
func (tg *target) record(t *testing.T, ct, body string) map[string]any {
	t.Helper()
	status, resp := tg.do(t, "POST", "/api/v2/records", ct, body)
	var r struct {
		Success bool   `json:"success"`
		ID      string `json:"id"`
	}
	if status != 200 || json.Unmarshal(resp, &r) != nil || !r.Success {
		t.Fatalf("records: %d %s", status, resp)
	}
	return tg.doc(t, r.ID)
}

func (tg *target) create(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	status, resp := tg.do(t, "POST", path, "application/json", body)
	var m map[string]any
	_ = json.Unmarshal(resp, &m)
	return status, m
}

func jsonOf(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSpace(b.String())
}

func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

// Row 1: api/src/services/records.js createByForm and
// api/src/services/report/smsparser.js parse (compact format, fields in
// definition order, the sender's raw number and the form code kept).
func TestContractSMSRecord(t *testing.T) {
	tg := newTarget(t)
	doc := tg.record(t, "application/x-www-form-urlencoded", "message=chttest_c+x1+12+two+words&from=0712345678")
	if doc["form"] != "CHTTEST_C" || jsonOf(doc["fields"]) != `{"n":12,"note":"two words","patient_uuid":"x1"}` {
		t.Errorf("form %v fields %s", doc["form"], jsonOf(doc["fields"]))
	}
	sms, _ := doc["sms_message"].(map[string]any)
	if doc["from"] != "+254712345678" || sms["from"] != "0712345678" || sms["form"] != "CHTTEST_C" {
		t.Errorf("from %v, sms_message %v", doc["from"], sms)
	}
}

// Row 2: api/src/services/report/validate.js validate and records.js
// createRecordByJSON: "12" is no integer, "" is present.
func TestContractJSONTypes(t *testing.T) {
	tg := newTarget(t)
	doc := tg.record(t, "application/json", `{"_meta":{"form":"chttest_c"},"patient_uuid":"","n":"12"}`)
	if got := jsonOf(doc["errors"]); got != `[{"code":"sys.incorrect_type","message":"Incorrect type of field n, expected integer."}]` {
		t.Errorf("errors %s", got)
	}
}

// Row 3: records.js parseSentTimestamp: an unreadable reported_date leaves
// the report at "now" and the answer is 200.
func TestContractBadReportedDate(t *testing.T) {
	tg := newTarget(t)
	doc := tg.record(t, "application/json", `{"_meta":{"form":"CHTTEST_C","reported_date":"not a date"},"patient_uuid":"p"}`)
	ms, _ := doc["reported_date"].(float64)
	if d := time.Since(time.UnixMilli(int64(ms))); d < -time.Hour || d > time.Hour {
		t.Errorf("reported_date %v is not now", doc["reported_date"])
	}
}

// Row 4: api/src/controllers/records.js runs only the configured
// transitions: without update_clinics no contact is attached.
func TestContractOnlyConfiguredTransitions(t *testing.T) {
	tg := newTarget(t)
	phone := "+2547" + fmt.Sprint(10000000+time.Now().UnixNano()%89999999)
	if status, _ := tg.create(t, "/api/v1/people", `{"name":"sender","phone":"`+phone+`"}`); status != 200 {
		t.Fatalf("person: %d", status)
	}
	doc := tg.record(t, "application/json", `{"_meta":{"form":"CHTTEST_C","from":"`+phone+`"},"patient_uuid":"p"}`)
	if doc["contact"] != nil {
		t.Errorf("contact attached without update_clinics: %v", doc["contact"])
	}
}

// Rows 5 and 6: shared-libs/contacts/src/people.js createPerson and
// places.js createPlaces/preparePlaceContact: a missing place or contact
// is 404, and name "" is a name.
func TestContractPeopleAndPlacesErrors(t *testing.T) {
	tg := newTarget(t)
	if status, m := tg.create(t, "/api/v1/people", `{"name":"x","place":"`+unique("missing")+`"}`); status != 404 {
		t.Errorf("missing place: %d %v", status, m)
	}
	if status, m := tg.create(t, "/api/v1/people", `{"name":""}`); status != 200 {
		t.Errorf(`name "": %d %v`, status, m)
	}
	if status, m := tg.create(t, "/api/v1/places", `{"name":"d","type":"district_hospital","contact":"`+unique("missing")+`"}`); status != 404 {
		t.Errorf("missing contact: %d %v", status, m)
	}
}

// Row 7: places.js updatePlace changes only PLACE_EDITABLE_FIELDS.
func TestContractPlaceUpdateFields(t *testing.T) {
	tg := newTarget(t)
	status, m := tg.create(t, "/api/v1/places", `{"name":"before","type":"district_hospital"}`)
	if status != 200 {
		t.Fatalf("place: %d %v", status, m)
	}
	id, _ := m["id"].(string)
	if status, m := tg.create(t, "/api/v1/places/"+id, `{"name":"after","phone":"+254700000001","notes":"n"}`); status != 200 {
		t.Fatalf("update: %d %v", status, m)
	}
	doc := tg.doc(t, id)
	if doc["name"] != "after" || doc["phone"] != nil || doc["notes"] != nil {
		t.Errorf("updated place %v", doc)
	}
}

// Row 8: api/src/controllers/contacts-by-phone.js normalises the query
// with libphonenumber and the default country and matches the stored
// phone.
func TestContractContactsByPhone(t *testing.T) {
	tg := newTarget(t)
	national := fmt.Sprintf("07%08d", time.Now().UnixNano()%100000000)
	e164 := "+254" + national[1:]
	if status, _ := tg.create(t, "/api/v1/people", `{"name":"by phone","phone":"`+e164+`"}`); status != 200 {
		t.Fatal("person")
	}
	status, body := tg.do(t, "GET", "/api/v1/contacts-by-phone?phone="+url.QueryEscape(national[:4]+" "+national[4:]), "", "")
	if status != 200 || !strings.Contains(string(body), e164) {
		t.Errorf("national query: %d %s", status, body)
	}
	if status, _ := tg.do(t, "GET", "/api/v1/contacts-by-phone?phone=12ab", "", ""); status != 400 {
		t.Errorf("invalid number: %d", status)
	}
}

// Row 13: shared-libs/lineage/src/hydration.js fetchHydratedDoc: one id
// of a report without a form is returned as stored.
func TestContractHydrateFormlessReport(t *testing.T) {
	tg := newTarget(t)
	_, person := tg.create(t, "/api/v1/people", `{"name":"submitter"}`)
	pid, _ := person["id"].(string)
	id := unique("formless")
	if status, body := tg.do(t, "PUT", "/medic/"+id, "application/json",
		`{"type":"data_record","contact":{"_id":"`+pid+`"},"reported_date":1}`); status != 201 {
		t.Fatalf("put: %d %s", status, body)
	}
	status, body := tg.do(t, "GET", "/api/v1/hydrate?doc_ids="+url.QueryEscape(`["`+id+`"]`), "", "")
	if status != 200 || strings.Contains(string(body), `"submitter"`) {
		t.Errorf("hydrated a single form-less report: %d %s", status, body)
	}
}

// Row 14: CouchDB 2+ _changes: sequences are opaque strings.
func TestContractChangesSeq(t *testing.T) {
	tg := newTarget(t)
	tg.create(t, "/api/v1/people", `{"name":"change"}`)
	status, body := tg.do(t, "GET", "/medic/_changes?limit=1", "", "")
	var page struct {
		LastSeq json.RawMessage `json:"last_seq"`
	}
	if status != 200 || json.Unmarshal(body, &page) != nil || !bytes.HasPrefix(page.LastSeq, []byte(`"`)) {
		t.Errorf("last_seq %s", page.LastSeq)
	}
}

// Row 15: api/src/routing.js after tag 5.2.0 (commit 7c8bf5e855): GET
// /api/v1/contact and POST /api/v1/contact/summary. Tag 5.2.0 has neither:
// the path falls through to the CouchDB proxy, 404 "Database does not
// exist.". Builds of master with the routes still report 5.2.0, so a 5.2
// target is asked and must give one answer or the other.
func TestContractRoutesAfter520(t *testing.T) {
	tg := newTarget(t)
	var major, minor int
	if _, err := fmt.Sscanf(tg.version, "%d.%d", &major, &minor); err != nil || major < 5 || major == 5 && minor < 2 {
		t.Skipf("CHT %s has no 5.2 routes", tg.version)
	}
	if major == 5 && minor == 2 {
		status, body := tg.do(t, "GET", "/api/v1/contact?type=person", "", "")
		if status == http.StatusNotFound {
			if !strings.Contains(string(body), `"Database does not exist."`) {
				t.Errorf("GET /api/v1/contact on %s: %d %s", tg.version, status, body)
			}
			return
		}
	}
	_, person := tg.create(t, "/api/v1/people", `{"name":"listed"}`)
	pid, _ := person["id"].(string)
	status, body := tg.do(t, "GET", "/api/v1/contact?ids="+pid, "", "")
	if status != 200 || !strings.Contains(string(body), `"listed"`) {
		t.Errorf("GET /api/v1/contact: %d %s", status, body)
	}
	status, body = tg.do(t, "POST", "/api/v1/contact/summary", "application/json", `{"ids":["`+pid+`"]}`)
	if status != 200 || !strings.Contains(string(body), `"name":"listed"`) {
		t.Errorf("contact summary: %d %s", status, body)
	}
}

// medic-client/contacts_by_reference (ddocs/medic-db/medic-client/views/
// contacts_by_reference/map.js), which API proxies to CouchDB for an
// admin: contacts whose patient_id or place_id is the shortcode, a number
// as String() writes it, rows of equal keys in document id order; a report
// is not indexed.
func TestContractContactsByReference(t *testing.T) {
	tg := newTarget(t)
	code := fmt.Sprintf("9%d", time.Now().UnixNano()%1e9)
	b, a := unique("shortcode-b"), unique("shortcode-a")
	for _, d := range []string{
		`{"_id":"` + b + `","type":"person","name":"b","patient_id":"` + code + `","reported_date":2}`,
		`{"_id":"` + a + `","type":"clinic","name":"a","place_id":` + code + `,"reported_date":1}`,
		`{"_id":"` + unique("shortcode-report") + `","type":"data_record","patient_id":"` + code + `"}`,
	} {
		id := d[len(`{"_id":"`):strings.Index(d, `","type"`)]
		if status, body := tg.do(t, "PUT", "/medic/"+id, "application/json", d); status != 201 {
			t.Fatalf("put %s: %d %s", id, status, body)
		}
	}
	status, body := tg.do(t, "GET", "/medic/_design/medic-client/_view/contacts_by_reference?include_docs=true&key="+
		url.QueryEscape(`["shortcode","`+code+`"]`), "", "")
	var res struct {
		Rows []struct {
			ID    string         `json:"id"`
			Key   []string       `json:"key"`
			Value int            `json:"value"`
			Doc   map[string]any `json:"doc"`
		} `json:"rows"`
	}
	if status != 200 || json.Unmarshal(body, &res) != nil {
		t.Fatalf("view: %d %s", status, body)
	}
	var got []string
	for _, r := range res.Rows {
		got = append(got, fmt.Sprintf("%s %v %d %v", r.ID, r.Key, r.Value, r.Doc["name"]))
	}
	want := []string{
		fmt.Sprintf("%s [shortcode %s] 1 a", a, code),
		fmt.Sprintf("%s [shortcode %s] 2 b", b, code),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// POST /api/v1/person (cht-core 5.2+): shared-libs/cht-datasource
// libs/parameter-validators.ts assertPersonInput refuses a name that is
// no string, a parent given as an object, a phone that is no string and
// a reported_date that is neither an integer nor a UTC ISO 8601 string
// (400 with the InvalidArgumentError's message).
func TestContractCreate52Validation(t *testing.T) {
	tg := newTarget(t)
	var major, minor int
	if _, err := fmt.Sscanf(tg.version, "%d.%d", &major, &minor); err != nil || major < 5 || major == 5 && minor < 2 {
		t.Skipf("CHT %s has no POST /api/v1/person", tg.version)
	}
	status, m := tg.create(t, "/api/v1/places", `{"name":"parent","type":"district_hospital"}`)
	if status != 200 {
		t.Fatalf("place: %d %v", status, m)
	}
	parent, _ := m["id"].(string)
	for _, tt := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"valid", `{"name":"p","type":"person","parent":"` + parent + `"}`, 200, ""},
		{"name a number", `{"name":42,"type":"person","parent":"` + parent + `"}`, 400, "The [name] field must have a [string] value."},
		{"parent an object", `{"name":"p","type":"person","parent":{"_id":"` + parent + `"}}`, 400, "The [parent] field must have a [string] value."},
		{"phone a number", `{"name":"p","type":"person","parent":"` + parent + `","phone":254700000001}`, 400, "The [phone] field must have the type [string]."},
		{"reported_date digits", `{"name":"p","type":"person","parent":"` + parent + `","reported_date":"1700000000000"}`, 400,
			"Invalid reported_date. Expected format to be 'YYYY-MM-DDTHH:mm:ssZ', 'YYYY-MM-DDTHH:mm:ss.SSSZ', or a Unix epoch."},
	} {
		status, m := tg.create(t, "/api/v1/person", tt.body)
		if status != tt.status || tt.want != "" && m["error"] != tt.want {
			t.Errorf("%s: %d %v, want %d %q", tt.name, status, m, tt.status, tt.want)
		}
	}
}
