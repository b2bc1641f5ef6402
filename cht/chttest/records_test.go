package chttest

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func recordsServer(t *testing.T, version string) *Server {
	t.Helper()
	fixed := time.Date(2024, 10, 31, 6, 25, 50, 419e6, time.UTC)
	srv := newTestServer(t, Config{Version: version, Forms: DemoForms(), ContactTypes: DemoContactTypes,
		Now: func() time.Time { return fixed }})
	if err := srv.Seed(strings.NewReader(string(DemoFixture()))); err != nil {
		t.Fatal(err)
	}
	srv.AddUser(User{Name: "viewer", Password: "pw", Roles: []string{RoleOnline}, Permissions: []string{PermViewContacts}})
	return srv
}

func TestRecordsV2(t *testing.T) {
	srv := recordsServer(t, "5.2.0")
	tests := []struct {
		name string
		ct   string
		body string
		want string // stored doc without _id, _rev (JSON)
	}{
		{
			// Reference §8.3 "CHT Create Report" (Postman collection).
			name: "reference submission",
			ct:   "application/json",
			body: `{ "_meta": { "form": "HEIGHT_WEIGHT" }, "patient_uuid": "` + DemoPatientID + `", "height": 172, "weight": 65 }`,
			want: `{"type":"data_record","from":"","form":"HEIGHT_WEIGHT","errors":[],"tasks":[],
				"fields":{"patient_uuid":"` + DemoPatientID + `","height":172,"weight":65},
				"reported_date":1730355950419,"sms_message":{"form":"HEIGHT_WEIGHT"}}`,
		},
		{
			// Reference §2: _meta with from, reported_date and locale; charset is accepted here.
			name: "lower-case form, upper-case keys, undeclared dropped, sender attached",
			ct:   "application/json; charset=utf-8",
			body: `{"_meta":{"form":"height_weight","from":"+254712345679","reported_date":1730355950000,"locale":"en"},
				"PATIENT_UUID":"` + DemoPatientID + `","Height":"172","weight":65,"bmi":22.1}`,
			want: `{"type":"data_record","from":"+254712345679","form":"HEIGHT_WEIGHT","errors":[],"tasks":[],
				"fields":{"patient_uuid":"` + DemoPatientID + `","height":"172","weight":65},
				"reported_date":1730355950000,"locale":"en",
				"sms_message":{"form":"HEIGHT_WEIGHT","from":"+254712345679","reported_date":1730355950000,"locale":"en"},
				"contact":{"_id":"` + DemoCHWID + `","parent":{"_id":"` + DemoCHWAreaID + `","parent":{"_id":"` + DemoHealthCentreID + `","parent":{"_id":"` + DemoDistrictID + `"}}}}}`,
		},
		{
			name: "validation errors are stored, not returned",
			ct:   "application/json",
			body: `{"_meta":{"form":"HEIGHT_WEIGHT","reported_date":"2024-10-31T06:25:50.419Z"},"height":"tall"}`,
			want: `{"type":"data_record","from":"","form":"HEIGHT_WEIGHT",
				"errors":[{"code":"sys.missing_fields","message":"Missing or invalid fields: patient_uuid."},
				          {"code":"sys.incorrect_type","message":"Incorrect type for field: height."}],
				"tasks":[],"fields":{"height":"tall"},"reported_date":1730355950419,
				"sms_message":{"form":"HEIGHT_WEIGHT","reported_date":"2024-10-31T06:25:50.419Z"}}`,
		},
		{
			name: "date converted, 13-digit string date",
			ct:   "application/json",
			body: `{"_meta":{"form":"INTEROP_FOLLOW_UP","reported_date":"1730355950419"},"patient_uuid":"p1","due_date":"2024-11-07","reason":"ltfu"}`,
			want: `{"type":"data_record","from":"","form":"INTEROP_FOLLOW_UP","errors":[],"tasks":[],
				"fields":{"patient_uuid":"p1","due_date":1730937600000,"reason":"ltfu"},
				"reported_date":1730355950419,"sms_message":{"form":"INTEROP_FOLLOW_UP","reported_date":"1730355950419"}}`,
		},
	}
	uuidV7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, call{method: "POST", path: "/api/v2/records", ct: tt.ct, body: tt.body})
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			resp := r.obj(t)
			id, _ := resp["id"].(string)
			if resp["success"] != true || !uuidV7.MatchString(id) || len(resp) != 2 {
				t.Fatalf("answer %s, want {success:true, id:<uuidv7>}", r.body)
			}
			raw, ok := srv.Doc(id)
			if !ok {
				t.Fatal("doc not stored")
			}
			var doc map[string]any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			delete(doc, "_id")
			if rev, _ := doc["_rev"].(string); !strings.HasPrefix(rev, "1-") {
				t.Errorf("_rev = %q", rev)
			}
			delete(doc, "_rev")
			jsonEqual(t, []byte(mustMarshal(t, doc)), []byte(tt.want))
		})
	}
}

func TestRecordsErrors(t *testing.T) {
	srv := recordsServer(t, "4.21.0")
	tests := []struct {
		name   string
		c      call
		status int
		body   string
		text   string
	}{
		{"form not found", call{ct: "application/json", body: `{"_meta":{"form":"nope"}}`},
			500, `{"code":500,"error":"Server error","details":"Form not found: NOPE"}`, ""},
		{"form not found, text", call{ct: "application/json", body: `{"_meta":{"form":"nope"}}`, accept: "-"},
			500, "", `Server error: "Form not found: NOPE"`},
		{"missing _meta", call{ct: "application/json", body: `{"height":1}`},
			500, `{"code":500,"error":"Server error","details":"Missing _meta property."}`, ""},
		{"missing form", call{ct: "application/json", body: `{"_meta":{}}`},
			500, `{"code":500,"error":"Server error","details":"Missing required field: form"}`, ""},
		{"unsupported content type", call{ct: "text/plain", body: `{"_meta":{"form":"HEIGHT_WEIGHT"}}`},
			500, `{"code":500,"error":"Server error","details":"Content type not supported."}`, ""},
		{"sms without from", call{ct: "application/x-www-form-urlencoded", body: `message=HW+1`},
			500, `{"code":500,"error":"Server error","details":"Missing required value: from"}`, ""},
		{"sms without message", call{ct: "application/x-www-form-urlencoded", body: `from=%2B254712345679`},
			500, `{"code":500,"error":"Server error","details":"Missing required field: message"}`, ""},
		{"malformed JSON is rejected by the body parser", call{ct: "application/json", body: `{"_meta":`},
			400, "", ""},
		{"no permission", call{ct: "application/json", body: `{"_meta":{"form":"HEIGHT_WEIGHT"}}`, user: "viewer", pass: "pw"},
			403, `{"code":403,"error":"Insufficient privileges"}`, ""},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/v1/records", "/api/v2/records"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				c := tt.c
				c.method, c.path = "POST", path
				before := len(srv.Docs())
				r := do(t, srv, c)
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				if tt.body != "" {
					jsonEqual(t, r.body, []byte(tt.body))
				}
				if tt.text != "" && string(r.body) != tt.text {
					t.Errorf("body %q, want %q", r.body, tt.text)
				}
				if after := len(srv.Docs()); after != before {
					t.Errorf("a failed request stored a doc (%d → %d)", before, after)
				}
			})
		}
	}
}

func TestRecordsSMS(t *testing.T) {
	srv := recordsServer(t, "4.21.0")
	r := do(t, srv, call{method: "POST", path: "/api/v2/records", ct: "application/x-www-form-urlencoded",
		body: "message=HEIGHT_WEIGHT+172+65&from=%2B254712345679&sent_timestamp=1730355950419"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	raw, _ := srv.Doc(str(r.obj(t)["id"]))
	doc, _ := decodeAny(raw)
	uuidV4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for path, want := range map[string]any{
		"form": "HEIGHT_WEIGHT", "from": "+254712345679", "sms_message.message": "HEIGHT_WEIGHT 172 65",
		"contact._id": DemoCHWID, "type": "data_record",
	} {
		if got := get(doc, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if got := get(doc, "reported_date"); mustMarshal(t, got) != "1730355950419" {
		t.Errorf("reported_date = %v", got)
	}
	if !uuidV4.MatchString(str(get(doc, "_id"))) {
		t.Errorf("4.x records must get a UUIDv4, got %v", get(doc, "_id"))
	}
}
