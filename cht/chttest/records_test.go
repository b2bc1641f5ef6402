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
		Settings: map[string]any{"default_country_code": 254}, Now: func() time.Time { return fixed }})
	if err := srv.Seed(strings.NewReader(string(DemoFixture()))); err != nil {
		t.Fatal(err)
	}
	srv.AddUser(User{Name: "viewer", Password: "pw", Roles: []string{RoleOnline}, Permissions: []string{PermViewContacts}})
	return srv
}

// postRecord submits a record and returns the stored doc without _rev.
func postRecord(t *testing.T, srv *Server, ct, body string) map[string]any {
	t.Helper()
	r := do(t, srv, call{method: "POST", path: "/api/v2/records", ct: ct, body: body})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	resp := r.obj(t)
	id, _ := resp["id"].(string)
	if resp["success"] != true || id == "" || len(resp) != 2 {
		t.Fatalf("answer %s, want {success:true, id}", r.body)
	}
	raw, ok := srv.Doc(id)
	if !ok {
		t.Fatal("doc not stored")
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "_rev")
	return doc
}

// TestRecordsJSON pins JSON submissions: api/src/services/records.js
// createRecordByJSON (form upper-cased, keys lower-cased, date fields
// through moment, only 1/0 become booleans for boolean fields),
// getDataRecord (no "from" without _meta.from; reported_date from
// parseSentTimestamp, "now" when it gives nothing) and
// api/src/services/report/validate.js validate (JSON types checked
// strictly, "" present, type errors then one sys.missing_fields).
func TestRecordsJSON(t *testing.T) {
	srv := recordsServer(t, "5.2.0")
	uuidV7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tests := []struct {
		name string
		body string
		want string
	}{
		{
			// Reference §8.3 "CHT Create Report" (Postman collection).
			name: "reference submission",
			body: `{ "_meta": { "form": "HEIGHT_WEIGHT" }, "patient_uuid": "` + DemoPatientID + `", "height": 172, "weight": 65 }`,
			want: `{"type":"data_record","form":"HEIGHT_WEIGHT","errors":[],"tasks":[],
				"fields":{"patient_uuid":"` + DemoPatientID + `","height":172,"weight":65},
				"reported_date":1730355950419,"sms_message":{"form":"HEIGHT_WEIGHT"}}`,
		},
		{
			name: "lower-case form, upper-case keys lower-cased, a numeric string is no integer, from normalised",
			body: `{"_meta":{"form":"height_weight","from":"0712 345 679","reported_date":1730355950000,"locale":"en"},
				"PATIENT_UUID":"` + DemoPatientID + `","Height":"172","weight":65.0,"bmi":22.1}`,
			want: `{"type":"data_record","from":"+254712345679","form":"HEIGHT_WEIGHT",
				"errors":[{"code":"sys.incorrect_type","message":"Incorrect type of field height, expected integer."}],"tasks":[],
				"fields":{"patient_uuid":"` + DemoPatientID + `","height":"172","weight":65},
				"reported_date":1730355950000,
				"sms_message":{"form":"HEIGHT_WEIGHT","from":"0712 345 679","reported_date":1730355950000,"locale":"en"}}`,
		},
		{
			name: "empty string is present, type errors before missing fields",
			body: `{"_meta":{"form":"HEIGHT_WEIGHT","reported_date":"2024-10-31T06:25:50.419Z"},"patient_uuid":"","height":"tall","weight":null}`,
			want: `{"type":"data_record","form":"HEIGHT_WEIGHT",
				"errors":[{"code":"sys.incorrect_type","message":"Incorrect type of field height, expected integer."}],
				"tasks":[],"fields":{"patient_uuid":"","height":"tall","weight":null},"reported_date":1730355950419,
				"sms_message":{"form":"HEIGHT_WEIGHT","reported_date":"2024-10-31T06:25:50.419Z"}}`,
		},
		{
			name: "missing fields are listed comma-separated",
			body: `{"_meta":{"form":"INTEROP_FOLLOW_UP"},"reason":5}`,
			want: `{"type":"data_record","form":"INTEROP_FOLLOW_UP",
				"errors":[{"code":"sys.incorrect_type","message":"Incorrect type of field reason, expected string."},
				          {"code":"sys.missing_fields","message":"Missing or invalid fields: patient_uuid."}],
				"tasks":[],"fields":{"reason":5},"reported_date":1730355950419,"sms_message":{"form":"INTEROP_FOLLOW_UP"}}`,
		},
		{
			name: "date converted, 13-digit string date",
			body: `{"_meta":{"form":"INTEROP_FOLLOW_UP","reported_date":"1730355950419"},"patient_uuid":"p1","due_date":"2024-11-07","reason":"ltfu"}`,
			want: `{"type":"data_record","form":"INTEROP_FOLLOW_UP","errors":[],"tasks":[],
				"fields":{"patient_uuid":"p1","due_date":1730937600000,"reason":"ltfu"},
				"reported_date":1730355950419,"sms_message":{"form":"INTEROP_FOLLOW_UP","reported_date":"1730355950419"}}`,
		},
		{
			name: "a bad date field is null; a bad reported_date is now",
			body: `{"_meta":{"form":"INTEROP_FOLLOW_UP","reported_date":"yesterday"},"patient_uuid":"p1","due_date":"soon"}`,
			want: `{"type":"data_record","form":"INTEROP_FOLLOW_UP","errors":[],"tasks":[],
				"fields":{"patient_uuid":"p1","due_date":null},
				"reported_date":1730355950419,"sms_message":{"form":"INTEROP_FOLLOW_UP","reported_date":"yesterday"}}`,
		},
		{
			name: "reported_date with 13 digits among other characters is now",
			body: `{"_meta":{"form":"INTEROP_FOLLOW_UP","reported_date":"x1730355950000"},"patient_uuid":"p1"}`,
			want: `{"type":"data_record","form":"INTEROP_FOLLOW_UP","errors":[],"tasks":[],"fields":{"patient_uuid":"p1"},
				"reported_date":1730355950419,"sms_message":{"form":"INTEROP_FOLLOW_UP","reported_date":"x1730355950000"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := postRecord(t, srv, "application/json", tt.body)
			if id, _ := doc["_id"].(string); !uuidV7.MatchString(id) {
				t.Errorf("5.x records get a UUIDv7 id, got %q", id)
			}
			delete(doc, "_id")
			jsonEqual(t, []byte(mustMarshal(t, doc)), []byte(tt.want))
		})
	}
}

// TestRecordsJSONBooleans pins createRecordByJSON's boolean conversion:
// only the numbers 1 and 0 become true and false; "true" stays a string
// and fails validation.
func TestRecordsJSONBooleans(t *testing.T) {
	var forms map[string]Form
	if err := json.Unmarshal([]byte(`{"B":{"meta":{"code":"B"},"fields":{"ok":{"type":"boolean"}}}}`), &forms); err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, Config{Forms: forms})
	for body, want := range map[string]string{
		`{"_meta":{"form":"B"},"ok":1}`:      `{"ok":true}|[]`,
		`{"_meta":{"form":"B"},"ok":0}`:      `{"ok":false}|[]`,
		`{"_meta":{"form":"B"},"ok":true}`:   `{"ok":true}|[]`,
		`{"_meta":{"form":"B"},"ok":"true"}`: `{"ok":"true"}|[{"code":"sys.incorrect_type","message":"Incorrect type of field ok, expected boolean."}]`,
		`{"_meta":{"form":"B"},"ok":2}`:      `{"ok":2}|[{"code":"sys.incorrect_type","message":"Incorrect type of field ok, expected boolean."}]`,
	} {
		doc := postRecord(t, srv, "application/json", body)
		if got := mustMarshal(t, doc["fields"]) + "|" + mustMarshal(t, doc["errors"]); got != want {
			t.Errorf("%s: %s, want %s", body, got, want)
		}
	}
}

// TestRecordsTransitions pins that the records API runs only the
// configured transitions (api/src/controllers/records.js runTransitions
// through the transitions lib): without update_clinics the sender is not
// attached; with it (shared-libs/transitions/src/transitions/
// update_clinics.js getContactByPhone) the contact whose stored phone
// equals the normalised sender is attached, and a private form from an
// unknown sender gets sys.facility_not_found.
func TestRecordsTransitions(t *testing.T) {
	srv := recordsServer(t, "4.21.0")
	body := `{"_meta":{"form":"HEIGHT_WEIGHT","from":"+254712345679"},"patient_uuid":"p"}`
	if doc := postRecord(t, srv, "application/json", body); doc["contact"] != nil || len(doc["errors"].([]any)) != 0 {
		t.Fatalf("update_clinics ran while not configured: %v", doc)
	}
	srv.SetSettings(map[string]any{"default_country_code": 254, "transitions": map[string]any{"update_clinics": true}})
	doc := postRecord(t, srv, "application/json", `{"_meta":{"form":"HEIGHT_WEIGHT","from":"0712345679"},"patient_uuid":"p"}`)
	if got := get(doc, "contact._id"); got != DemoCHWID {
		t.Errorf("contact %v, want %s", got, DemoCHWID)
	}
	if got := get(doc, "contact.parent._id"); got != DemoCHWAreaID {
		t.Errorf("contact lineage %v", doc["contact"])
	}
	doc = postRecord(t, srv, "application/json", `{"_meta":{"form":"HEIGHT_WEIGHT","from":"+254700000000"},"patient_uuid":"p"}`)
	if doc["contact"] != nil || mustMarshal(t, doc["errors"]) != `[{"code":"sys.facility_not_found","message":"Facility not found."}]` {
		t.Errorf("unknown sender: contact %v errors %v", doc["contact"], doc["errors"])
	}
	srv.SetSettings(map[string]any{"transitions": map[string]any{"update_clinics": map[string]any{"disable": true}}})
	if doc := postRecord(t, srv, "application/json", body); doc["contact"] != nil {
		t.Errorf("a disabled transition ran: %v", doc["contact"])
	}
}

// TestRecordsUpdateClinicsByRefid pins update_clinics.js
// getContactByRefid: a report with a refid (the form's facility_reference
// field, upper-cased) gets the contact of the first row of
// medic-client/contacts_by_reference for ["external", refid], which the view
// emits from a contact's rc_code upper-cased; a shortcode is not a refid.
func TestRecordsUpdateClinicsByRefid(t *testing.T) {
	forms := DemoForms()
	ref := Form{Meta: forms["HEIGHT_WEIGHT"].Meta, Fields: map[string]FormField{"ref": {Type: "string"}}, FacilityReference: "ref"}
	ref.Meta.Code = "REF"
	forms["REF"] = ref
	srv := newTestServer(t, Config{Version: "4.21.0", Forms: forms, ContactTypes: DemoContactTypes,
		Settings: map[string]any{"transitions": map[string]any{"update_clinics": true}}})
	if err := srv.PutDocs(
		map[string]any{"_id": "chw-b", "type": "person", "rc_code": "ab12"},
		map[string]any{"_id": "chw-a", "type": "person", "rc_code": "AB12"},
		map[string]any{"_id": "chw-c", "type": "person", "patient_id": "CD34"},
	); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref, want string
	}{
		{"ab12", "chw-a"}, // upper-cased on both sides; equal keys in id order
		{"cd34", ""},      // a shortcode is not a refid
		{"zz99", ""},
	}
	for _, tt := range tests {
		doc := postRecord(t, srv, "application/json", `{"_meta":{"form":"REF"},"ref":"`+tt.ref+`"}`)
		if got, _ := get(doc, "contact._id").(string); got != tt.want {
			t.Errorf("refid %s: contact %q, want %q", tt.ref, got, tt.want)
		}
		if tt.want == "" && mustMarshal(t, doc["errors"]) != `[{"code":"sys.facility_not_found","message":"Facility not found."}]` {
			t.Errorf("refid %s: errors %v, want sys.facility_not_found", tt.ref, doc["errors"])
		}
	}
}

// TestRecordsErrors pins the error answers of POST /api/v1/records and
// /api/v2/records: api/src/controllers/records.js v1/v2 → process, whose
// createRecordByJSON/createByForm errors (a PublicError such as "Form not
// found" or "Missing _meta property.") reach serverUtils.serverError
// (api/src/server-utils.js): 500 "Server error" with the message as
// details, JSON or text by req.accepts; the plain Error of a content type
// generate does not handle has no details. A malformed JSON body never
// reaches the controller: routing.js [jsonParser, formParser] (body-parser
// json, strict) fails and api/server.js's error middleware answers
// serverError without details. No permission (can_create_records) is
// auth.check's 403 "Insufficient privileges".
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
		// records.js generate throws a plain Error, not a PublicError:
		// serverError answers it without details.
		{"unsupported content type", call{ct: "text/plain", body: `{"_meta":{"form":"HEIGHT_WEIGHT"}}`},
			500, `{"code":500,"error":"Server error"}`, ""},
		{"unsupported content type, text", call{ct: "text/plain", body: `{"_meta":{"form":"HEIGHT_WEIGHT"}}`, accept: "-"},
			500, "", "Server error"},
		// Content-Length: 0 is a body for type-is: req.is('json') holds, and
		// createRecordByJSON reads body-parser's {}.
		{"empty JSON body", call{ct: "application/json"},
			500, `{"code":500,"error":"Server error","details":"Missing _meta property."}`, ""},
		{"sms without from", call{ct: "application/x-www-form-urlencoded", body: `message=HW+1`},
			500, `{"code":500,"error":"Server error","details":"Missing required value: from"}`, ""},
		{"sms without message", call{ct: "application/x-www-form-urlencoded", body: `from=%2B254712345679`},
			500, `{"code":500,"error":"Server error","details":"Missing required field: message"}`, ""},
		{"malformed JSON is rejected by the body parser", call{ct: "application/json", body: `{"_meta":`},
			500, `{"code":500,"error":"Server error"}`, ""},
		{"a JSON primitive is rejected by the strict body parser", call{ct: "application/json", body: ` "x"`},
			500, `{"code":500,"error":"Server error"}`, ""},
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

// TestRecordsSMS pins form-encoded (gateway) submissions:
// api/src/services/records.js createByForm (raw message, raw from and the
// form code kept in sms_message; zero-width characters stripped from an
// unknown code; sys.empty; forms_only_mode's sys.form_not_found, else no
// form), api/src/services/report/smsparser.js getFormCode, parse and
// parseField, and textforms-parser.js isCompact, parseCompact and parse.
func TestRecordsSMS(t *testing.T) {
	srv := recordsServer(t, "4.21.0")
	zw := "\u200b"
	tests := []struct {
		name, body string
		want       map[string]string // path → JSON value
	}{
		{"compact", "message=HEIGHT_WEIGHT+" + DemoPatientID + "+172+65&from=%2B254712345679&sent_timestamp=1730355950419", map[string]string{
			"form": `"HEIGHT_WEIGHT"`, "from": `"+254712345679"`, "fields": `{"patient_uuid":"` + DemoPatientID + `","height":172,"weight":65}`,
			"errors": `[]`, "reported_date": `1730355950419`, "sms_message.message": `"HEIGHT_WEIGHT ` + DemoPatientID + ` 172 65"`,
			"sms_message.form": `"HEIGHT_WEIGHT"`, "sms_message.reported_date": `"1730355950419"`,
		}},
		{"compact, lower-case code, national sender", "message=height_weight+x1+abc&from=0712345679", map[string]string{
			"form": `"HEIGHT_WEIGHT"`, "from": `"+254712345679"`, "sms_message.from": `"0712345679"`,
			"fields": `{"patient_uuid":"x1","height":null}`, "sms_message.form": `"HEIGHT_WEIGHT"`,
			"errors": `[]`, // a list-less integer that does not parse is null, which validation accepts as absent
		}},
		{"textforms by tiny label", "message=HEIGHT_WEIGHT+p+abc%23h+172%23W+65&from=%2B254712345679", map[string]string{
			"fields": `{"patient_uuid":"abc","height":172,"weight":65}`, "errors": `[]`,
		}},
		{"a value starting with a tiny label and a digit makes it textforms", "message=HEIGHT_WEIGHT+p1+abc&from=%2B254712345679", map[string]string{
			"fields": `{"patient_uuid":"1abc"}`, "errors": `[]`,
		}},
		{"textforms, a missing required field", "message=HEIGHT_WEIGHT+h+172%23w+65&from=%2B254712345679", map[string]string{
			"fields": `{"height":172,"weight":65}`,
			"errors": `[{"code":"sys.missing_fields","message":"Missing or invalid fields: patient_uuid."}]`,
		}},
		{"zero-width characters in the code", "message=HEIGHT" + zw + "_WEIGHT+x1+170+60&from=%2B254712345679", map[string]string{
			"form": `"HEIGHT_WEIGHT"`, "fields": `{"patient_uuid":"x1","height":170,"weight":60}`,
			"sms_message.message": `"HEIGHT\u200b_WEIGHT x1 170 60"`,
		}},
		{"unknown form is a plain message", "message=HELLO+there&from=%2B254712345679", map[string]string{
			"form": `null`, "fields": `{}`, "errors": `[]`, "sms_message.form": `"HELLO"`,
		}},
		{"empty message", "message=+&from=%2B254712345679", map[string]string{
			"form": `null`, "errors": `[{"code":"sys.empty","message":"Message appears empty."}]`,
		}},
		{"bad sent_timestamp is now", "message=HELLO&from=%2B254712345679&sent_timestamp=later", map[string]string{
			"reported_date": `1730355950419`, "sms_message.reported_date": `"later"`,
		}},
		{"invalid sender kept raw", "message=HELLO&from=12ab", map[string]string{"from": `"12ab"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.ReplaceAll(tt.body, zw, "%E2%80%8B")
			doc := postRecord(t, srv, "application/x-www-form-urlencoded", body)
			for path, want := range tt.want {
				var w any
				if err := json.Unmarshal([]byte(want), &w); err != nil {
					t.Fatal(err)
				}
				if got := mustMarshal(t, get(doc, path)); got != mustMarshal(t, w) {
					t.Errorf("%s = %s, want %s", path, got, want)
				}
			}
		})
	}
	uuidV4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if id := postRecord(t, srv, "application/x-www-form-urlencoded", "message=HI&from=1")["_id"].(string); !uuidV4.MatchString(id) {
		t.Errorf("4.x records get a UUIDv4 id, got %q", id)
	}
	srv.SetSettings(map[string]any{"forms_only_mode": true})
	doc := postRecord(t, srv, "application/x-www-form-urlencoded", "message=HELLO+there&from=%2B254712345679")
	if doc["form"] != "HELLO" || mustMarshal(t, doc["errors"]) != `[{"code":"sys.form_not_found","message":"Form 'HELLO' not found."}]` {
		t.Errorf("forms_only_mode: form %v errors %v", doc["form"], doc["errors"])
	}
}

// TestTextformsParser pins textforms-parser.js parse on its own: keys
// lower-cased, numbers typed (a leading 0 keeps a string), dates to
// milliseconds, a repeated key collecting an array, "key number text"
// joined.
func TestTextformsParser(t *testing.T) {
	got := parseTextforms("AB 12 # cd 1.5 # d 2024-01-02 # E x y # ab 3 # f 0 # g 12 kg")
	want := `{"ab":[12,3],"cd":1.5,"d":1704153600000,"e":"x y","f":"0","g":"12kg"}`
	if s := mustMarshal(t, got); s != want {
		t.Errorf("parse = %s, want %s", s, want)
	}
}

// TestRecordsDottedField pins how a form field declared with a dotted key
// ("patient.name") is read from a JSON submission. createRecordByJSON
// (api/src/services/records.js) copies every top-level key;
// getDataRecord stores the field with smsparser.merge
// (api/src/services/report/smsparser.js merge), which splits the key on
// dots and looks up formData.patient.name, so a flat "patient.name" key
// is dropped; validate (api/src/services/report/validate.js) looks up
// formData["patient.name"], so only the flat key satisfies "required".
func TestRecordsDottedField(t *testing.T) {
	var f Form
	if err := json.Unmarshal([]byte(`{"meta":{"code":"DOT"},"fields":{"patient.name":{"type":"string","labels":{"tiny":"n"},"required":true}}}`), &f); err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, Config{Version: "5.2.0", Forms: map[string]Form{"DOT": f}})
	tests := []struct {
		name, data string
		fields     string // stored fields, as JSON
		errors     []string
	}{
		{"flat", `"patient.name":"Ann"`, `{}`, nil},
		{"nested", `"patient":{"name":"Ann"}`, `{"patient":{"name":"Ann"}}`, []string{"sys.missing_fields"}},
		{"both", `"patient.name":"Ann","patient":{"name":"Ann"}`, `{"patient":{"name":"Ann"}}`, nil},
		{"parent not an object", `"patient.name":"Ann","patient":"x"`, `{"patient":{}}`, nil},
		{"parent falsy", `"patient.name":"Ann","patient":""`, `{}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := postRecord(t, srv, "application/json", `{"_meta":{"form":"dot"},`+tt.data+`}`)
			got, _ := json.Marshal(doc["fields"])
			if string(got) != tt.fields {
				t.Errorf("fields = %s, want %s", got, tt.fields)
			}
			var codes []string
			errs, _ := doc["errors"].([]any)
			for _, e := range errs {
				codes = append(codes, e.(map[string]any)["code"].(string))
			}
			if strings.Join(codes, ",") != strings.Join(tt.errors, ",") {
				t.Errorf("errors = %v, want %v", codes, tt.errors)
			}
		})
	}
}

// TestBodyParserErrors pins how CHT's API answers a body its parsers
// refuse, before any controller runs: api/src/routing.js parses JSON with
// bodyParser.json({limit: MAX_REQUEST_SIZE}) (jsonParser, strict: the
// first character must be { or [), placed before the route's handler and,
// for postJson/putJson routes (handleJsonRequest), before the
// Content-Type check. Its error reaches the last error middleware
// (api/server.js app.use((err, req, res, next) => serverUtils.serverError))
// and api/src/server-utils.js serverError answers 500 "Server error", or
// 413 "Payload Too Large" for entity.too.large. CouchDB routes answer
// CouchDB's own 413 (max_http_request_size).
func TestBodyParserErrors(t *testing.T) {
	srv := newTestServer(t, Config{MaxBodyBytes: 64})
	serverError := `{"code":500,"error":"Server error"}`
	for _, tc := range []struct {
		name, method, path, ct, body string
		status                       int
		want                         string
	}{
		{"people", "POST", "/api/v1/people", "application/json", `{"name":`, 500, serverError},
		{"places", "POST", "/api/v1/places", "application/json", `{"name":`, 500, serverError},
		{"person", "POST", "/api/v1/person", "application/json", `{"name":`, 500, serverError},
		{"hydrate", "POST", "/api/v1/hydrate", "application/json", `{"doc_ids":[`, 500, serverError},
		{"contacts-by-phone", "POST", "/api/v1/contacts-by-phone", "application/json", `{"phone":`, 500, serverError},
		{"records", "POST", "/api/v2/records", "application/json", `{"_meta":`, 500, serverError},
		{"settings", "PUT", "/api/v1/settings", "application/json", `{"a":`, 500, serverError},
		{"strict: a primitive", "POST", "/api/v1/people", "application/json", ` 12`, 500, serverError},
		// lib/types/json.js parse: only a body of length 0 is {}; one of
		// blanks has no first character, a strict violation.
		{"strict: only blanks", "POST", "/api/v2/records", "application/json", "  \n", 500, serverError},
		{"parsed before the Content-Type check", "POST", "/api/v1/people", "application/json; charset=utf-8", `{"name":`, 500, serverError},
		{"not JSON: not parsed", "POST", "/api/v1/people", "text/plain", `{"name":`, 400,
			`{"code":400,"error":"Content-Type must be application/json"}`},
		{"too large", "POST", "/api/v1/people", "application/json", `{"name":"` + strings.Repeat("a", 64) + `"}`, 413,
			`{"code":413,"error":"Payload Too Large"}`},
		// api/src/routing.js runs jsonParser before the writes it proxies
		// to CouchDB (whose max_http_request_size CHT sets to 4 GB,
		// couchdb/10-docker-default.ini): the API answers.
		{"too large, _bulk_docs", "POST", "/medic/_bulk_docs", "application/json", `{"docs":["` + strings.Repeat("a", 64) + `"]}`, 413,
			`{"code":413,"error":"Payload Too Large"}`},
		{"too large, a doc", "PUT", "/medic/big", "application/json", `{"a":"` + strings.Repeat("a", 64) + `"}`, 413,
			`{"code":413,"error":"Payload Too Large"}`},
		{"too large, POST /medic", "POST", "/medic", "application/json", `{"a":"` + strings.Repeat("a", 64) + `"}`, 413,
			`{"code":413,"error":"Payload Too Large"}`},
	} {
		r := do(t, srv, call{method: tc.method, path: tc.path, ct: tc.ct, body: tc.body})
		if r.status != tc.status || strings.TrimSpace(string(r.body)) != tc.want {
			t.Errorf("%s: %d %s; CHT answers %d %s", tc.name, r.status, r.body, tc.status, tc.want)
		}
	}
}
