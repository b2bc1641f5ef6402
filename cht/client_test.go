package cht_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-resty/resty/v2"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// newDemo starts the demo fake under a base path (so absolute-URL bugs
// show) and a client for it with fast retries.
func newDemo(t *testing.T, cfg chttest.Config, mod ...func(*cht.Config)) (*chttest.Server, *cht.Client) {
	t.Helper()
	if cfg.BasePath == "" {
		cfg.BasePath = "/cht"
	}
	srv := chttest.NewDemoServer(cfg)
	t.Cleanup(srv.Close)
	c := cht.Config{
		URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		HTTPClient: srv.Client(), RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
	}
	for _, m := range mod {
		m(&c)
	}
	client, err := cht.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return srv, client
}

func requestsTo(srv *chttest.Server, method, path string) []chttest.Request {
	var out []chttest.Request
	for _, r := range srv.Requests() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  cht.Config
		ok   bool
	}{
		{"empty URL", cht.Config{}, false},
		{"bad scheme", cht.Config{URL: "ftp://x"}, false},
		{"no host", cht.Config{URL: "http://"}, false},
		{"session without user", cht.Config{URL: "http://x", Session: true}, false},
		{"negative timeout", cht.Config{URL: "http://x", Timeout: -1}, false},
		{"bad version", cht.Config{URL: "http://x", Version: "four"}, false},
		{"ok", cht.Config{URL: "https://cht.example.org/prefix/"}, true},
		{"ok with userinfo", cht.Config{URL: "https://u:p@cht.example.org"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cht.New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestHydrateOrderNotFoundBatches(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) { c.HydrateBatchSize = 2 })
	ids := []string{chttest.DemoPatientID, "missing-1", chttest.DemoDangerSignReportID, chttest.DemoHouseholdID, "missing-2"}
	res, err := c.Hydrate(context.Background(), ids...)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range res.Docs {
		got = append(got, d.ID)
	}
	want := []string{chttest.DemoPatientID, chttest.DemoDangerSignReportID, chttest.DemoHouseholdID}
	if !slices.Equal(got, want) {
		t.Errorf("docs = %v, want %v", got, want)
	}
	if !slices.Equal(res.NotFound, []string{"missing-1", "missing-2"}) {
		t.Errorf("not found = %v", res.NotFound)
	}
	if n := len(requestsTo(srv, "POST", "/api/v1/hydrate")); n != 3 {
		t.Errorf("hydrate requests = %d, want 3 batches", n)
	}
	p, err := res.Docs[0].Contact()
	if err != nil {
		t.Fatal(err)
	}
	if p.Parent.Doc == nil || p.Parent.Doc.Name != "Otieno Household" || len(p.Parent.IDs()) != 4 {
		t.Errorf("patient lineage not hydrated: %+v", p.Parent)
	}
	r, err := res.Docs[1].Report()
	if err != nil {
		t.Fatal(err)
	}
	if res.Docs[1].Type() != "data_record" || r.Patient == nil || r.Patient.ID != chttest.DemoMotherID || r.Contact.Name != "Example CHW" {
		t.Errorf("report not hydrated: patient %+v contact %+v", r.Patient, r.Contact)
	}
	// The documents are the caller's: overwriting them changes no id.
	for _, d := range res.Docs {
		for i := range d.Doc {
			d.Doc[i] = 'x'
		}
	}
	for i, d := range res.Docs {
		if d.ID != want[i] {
			t.Errorf("after the documents were overwritten, id %d = %q, want %q", i, d.ID, want[i])
		}
	}
	for _, req := range srv.Requests() {
		if req.Method == "POST" && req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s Content-Type = %q, want exactly application/json", req.Method, req.Path, req.Header.Get("Content-Type"))
		}
		if req.Header.Get("Accept") != "application/json" {
			t.Errorf("%s %s Accept = %q", req.Method, req.Path, req.Header.Get("Accept"))
		}
	}
}

func TestHydrateOfflineUserForbidden(t *testing.T) {
	cfg := chttest.Config{Users: []chttest.User{{Name: "chw", Password: "pw", Roles: []string{"chw"}}}}
	srv, c := newDemo(t, cfg, func(c *cht.Config) { c.Username, c.Password = "chw", "pw" })
	_, err := c.Hydrate(context.Background(), chttest.DemoPatientID)
	if !errors.Is(err, cht.ErrForbidden) {
		t.Fatalf("err = %v, want ErrForbidden", err)
	}
	var apiErr *cht.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || apiErr.Details == "" {
		t.Errorf("APIError = %+v", apiErr)
	}
	if n := len(requestsTo(srv, "POST", "/api/v1/hydrate")); n != 1 {
		t.Errorf("403 was retried: %d requests", n)
	}
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name     string
		fault    chttest.Fault
		call     func(context.Context, *cht.Client) error
		path     string
		method   string
		wantErr  error
		requests int
	}{
		{
			name:  "hydrate retried on 503",
			fault: chttest.Fault{Path: "/api/v1/hydrate", Status: 503, Count: 2},
			call: func(ctx context.Context, c *cht.Client) error {
				_, err := c.Hydrate(ctx, chttest.DemoPatientID)
				return err
			},
			method: "POST", path: "/api/v1/hydrate", requests: 3,
		},
		{
			name:  "read gives up after MaxRetries",
			fault: chttest.Fault{Path: "/api/v1/contact/*", Status: 502},
			call: func(ctx context.Context, c *cht.Client) error {
				_, err := c.Contacts.Get(ctx, chttest.DemoPatientID, nil)
				return err
			},
			method: "GET", path: "/api/v1/contact/" + chttest.DemoPatientID, wantErr: cht.ErrServer, requests: 4,
		},
		{
			name:  "read retried after network error",
			fault: chttest.Fault{Path: "/medic/*", Abort: true, Count: 1},
			call: func(ctx context.Context, c *cht.Client) error {
				return c.Docs.Get(ctx, chttest.DemoPatientID, new(cht.Contact))
			},
			method: "GET", path: "/medic/" + chttest.DemoPatientID, requests: 2,
		},
		{
			name:  "write not retried on 500",
			fault: chttest.Fault{Path: "/api/v2/records", Status: 500, Count: 1},
			call: func(ctx context.Context, c *cht.Client) error {
				_, err := c.Records.Submit(ctx, cht.Record{Form: "height_weight", Fields: map[string]any{"patient_uuid": chttest.DemoPatientID}}, nil)
				return err
			},
			method: "POST", path: "/api/v2/records", wantErr: cht.ErrServer, requests: 1,
		},
		{
			name:  "write retried on 429 with Retry-After",
			fault: chttest.Fault{Path: "/api/v2/records", Status: 429, RetryAfter: time.Second, Count: 1},
			call: func(ctx context.Context, c *cht.Client) error {
				_, err := c.Records.Submit(ctx, cht.Record{Form: "HEIGHT_WEIGHT", Fields: map[string]any{"patient_uuid": chttest.DemoPatientID}}, nil)
				return err
			},
			method: "POST", path: "/api/v2/records", requests: 2,
		},
		{
			name:  "401 never retried",
			fault: chttest.Fault{Path: "/api/v1/hydrate", Status: 401},
			call: func(ctx context.Context, c *cht.Client) error {
				_, err := c.Hydrate(ctx, chttest.DemoPatientID)
				return err
			},
			method: "POST", path: "/api/v1/hydrate", wantErr: cht.ErrUnauthorized, requests: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) { c.Version = "5.2.0" })
			srv.InjectFault(tt.fault)
			err := tt.call(context.Background(), c)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n := len(requestsTo(srv, tt.method, tt.path)); n != tt.requests {
				t.Errorf("requests = %d, want %d", n, tt.requests)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	// A Retry-After beyond RetryWaitMax is capped, so the test stays fast;
	// with a larger cap the client waits the hinted time.
	srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) {
		c.Version = "5.2.0"
		c.RetryWaitMin, c.RetryWaitMax = time.Millisecond, 1500*time.Millisecond
	})
	srv.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: 429, RetryAfter: time.Second, Count: 1})
	start := time.Now()
	if _, err := c.Hydrate(context.Background(), chttest.DemoPatientID); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v, before Retry-After of 1s", d)
	}
}

func TestContextCanceledDuringBackoff(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) {
		c.RetryWaitMin, c.RetryWaitMax = time.Hour, time.Hour
	})
	srv.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: 503})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Hydrate(ctx, "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Hydrate(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
}

func TestAttemptTimeout(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) {
		c.Timeout = 300 * time.Millisecond
		c.Version = "5.2.0"
	})
	srv.InjectFault(chttest.Fault{Path: "/api/v1/person/*", Latency: time.Minute, Count: 1})
	p, err := c.Contacts.Get(context.Background(), chttest.DemoPatientID, nil)
	if err != nil {
		t.Fatalf("slow first attempt should be retried: %v", err)
	}
	if p.Name != "John Test" {
		t.Errorf("name = %q", p.Name)
	}
}

func TestContactsByPhone(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{})
	got, err := c.Contacts.ByPhone(context.Background(), "+254712345679")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != chttest.DemoCHWID || got[0].Parent.Doc == nil {
		t.Fatalf("got %+v", got)
	}
	reqs := requestsTo(srv, "GET", "/api/v1/contacts-by-phone")
	if len(reqs) != 1 || reqs[0].Query.Get("phone") != "+254712345679" {
		t.Errorf("phone arrived as %q", reqs[0].Query.Get("phone"))
	}
	none, err := c.Contacts.ByPhone(context.Background(), "+254700000000")
	if err != nil || none != nil {
		t.Errorf("no match: %v, %v", none, err)
	}

	// Any other 404 is an error, not "no match": here CouchDB's answer for
	// a path it has no database for, as a CHT without the route (before
	// 3.10) or a URL pointed at CouchDB answers.
	couch := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":"not_found","reason":"Database does not exist."}`)
	}))
	t.Cleanup(couch.Close)
	cc, err := cht.New(cht.Config{URL: couch.URL, Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = cc.Contacts.ByPhone(context.Background(), "+254700000000")
	if !errors.Is(err, cht.ErrNotFound) || got != nil {
		t.Errorf("a missing route: %v, %v; want ErrNotFound", got, err)
	}
}

// TestContactsByShortcode pins ByShortcode to the view CHT resolves a
// shortcode with (shared-libs/lineage/src/hydration.js
// contactUuidByShortcode: medic-client/contacts_by_reference, key
// ["shortcode", code]), read through the API's /medic proxy: every
// contact carrying the code, in the view's order; none is (nil, nil); the
// proxy answers online users only (api/src/routing.js
// ONLINE_ONLY_ENDPOINTS); a failed read is retried.
func TestContactsByShortcode(t *testing.T) {
	const path = "/medic/_design/medic-client/_view/contacts_by_reference"
	tests := []struct {
		name     string
		code     string
		user     string // "" = admin
		fault    *chttest.Fault
		ids      []string
		status   int    // of the *APIError, 0 = none
		member   string // path of the member error returned with the contacts
		requests int
	}{
		{"two contacts, in id order", "12345", "", nil, []string{"sc-a", "sc-b"}, 0, "", 1},
		{"a place", "777", "", nil, []string{"sc-place"}, 0, "", 1},
		{"JSON in the key is escaped", `7"7`, "", nil, []string{"sc-quote"}, 0, "", 1},
		{"none", "00000", "", nil, nil, 0, "", 1},
		{"a 503 is retried", "777", "", &chttest.Fault{Path: path, Status: 503, Count: 1}, []string{"sc-place"}, 0, "", 2},
		{"offline user", "12345", "offline", nil, nil, 403, "", 1},
		// CHT stores a phone sent as a number (shared-libs/contacts
		// src/people.js validatePerson checks only the name).
		{"a member of another type", "555", "", nil, []string{"sc-num-phone"}, 0, "phone", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) {
				if tt.user != "" {
					c.Username, c.Password = tt.user, "pw"
				}
			})
			srv.AddUser(chttest.User{Name: "offline", Password: "pw", Roles: []string{"chw"}, Permissions: chttest.IntegrationPermissions})
			if err := srv.PutDocs(
				map[string]any{"_id": "sc-b", "type": "person", "name": "B", "patient_id": "12345"},
				map[string]any{"_id": "sc-a", "type": "person", "name": "A", "patient_id": "12345"},
				map[string]any{"_id": "sc-place", "type": "clinic", "name": "P", "place_id": "777"},
				map[string]any{"_id": "sc-quote", "type": "person", "patient_id": `7"7`},
				map[string]any{"_id": "sc-report", "type": "data_record", "patient_id": "12345"},
				map[string]any{"_id": "sc-num-phone", "type": "person", "name": "N", "patient_id": "555", "phone": 254712345678},
			); err != nil {
				t.Fatal(err)
			}
			if tt.fault != nil {
				srv.InjectFault(*tt.fault)
			}
			got, err := c.Contacts.ByShortcode(context.Background(), tt.code)
			var apiErr *cht.APIError
			switch {
			case tt.status != 0:
				if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status {
					t.Fatalf("err = %v, want an *APIError %d", err, tt.status)
				}
			case tt.member != "":
				var de *cht.DecodeError
				if !errors.As(err, &de) || !de.Member || de.Path != tt.member {
					t.Fatalf("err = %v, want the member error of %s", err, tt.member)
				}
			case err != nil:
				t.Fatal(err)
			}
			var ids []string
			for _, ct := range got {
				ids = append(ids, ct.ID)
				if ct.Type == "" {
					t.Errorf("%s: the stored document was not decoded: %+v", ct.ID, ct)
				}
			}
			if !slices.Equal(ids, tt.ids) || (tt.ids == nil && got != nil) {
				t.Errorf("contacts %v, want %v", ids, tt.ids)
			}
			reqs := requestsTo(srv, "GET", path)
			if len(reqs) != tt.requests {
				t.Fatalf("%d requests, want %d", len(reqs), tt.requests)
			}
			want, _ := json.Marshal([]string{"shortcode", tt.code})
			if q := reqs[0].Query; q.Get("key") != string(want) || q.Get("include_docs") != "true" {
				t.Errorf("query %v, want key %s and include_docs=true", q, want)
			}
		})
	}
	srv, c := newDemo(t, chttest.Config{})
	if _, err := c.Contacts.ByShortcode(context.Background(), ""); err == nil || len(srv.Requests()) != 0 {
		t.Errorf("an empty shortcode: err %v after %d requests, want an error before any", err, len(srv.Requests()))
	}
}

func TestGetWithLineageAcrossVersions(t *testing.T) {
	tests := []struct {
		version string
		path    string // request expected to serve Contacts.Get
	}{
		{"5.2.0", "/api/v1/contact/" + chttest.DemoCHWID},
		{"4.8.0", "/api/v1/hydrate"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			srv, c := newDemo(t, chttest.Config{Version: tt.version})
			p, err := c.Contacts.Get(context.Background(), chttest.DemoCHWID, &cht.GetOptions{WithLineage: true})
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "Example CHW" || p.Parent.Doc == nil || p.Parent.Doc.Name != "Sigomere CHW Area" {
				t.Errorf("person = %+v, parent %+v", p, p.Parent)
			}
			found := false
			for _, r := range srv.Requests() {
				found = found || r.Path == tt.path
			}
			if !found {
				t.Errorf("no request to %s in %v", tt.path, srv.Requests())
			}
			if h, err := c.Contacts.Get(context.Background(), chttest.DemoHouseholdID, nil); err != nil || h.TypeID() != "household" {
				t.Errorf("household = %+v, %v", h, err)
			}
		})
	}
}

func TestReportsGet(t *testing.T) {
	for _, v := range []string{"5.2.0", "4.20.0", "4.10.0"} {
		t.Run(v, func(t *testing.T) {
			_, c := newDemo(t, chttest.Config{Version: v})
			r, err := c.Reports.Get(context.Background(), chttest.DemoDangerSignReportID, &cht.GetOptions{WithLineage: true})
			if err != nil {
				t.Fatal(err)
			}
			if r.Patient == nil || r.Patient.Name != "Della Otieno" {
				t.Errorf("patient = %+v", r.Patient)
			}
			if fever, _ := r.Fields.String("danger_signs.fever"); fever != "yes" {
				t.Errorf("fever = %q", fever)
			}
			plain, err := c.Reports.Get(context.Background(), chttest.DemoDangerSignReportID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if plain.Patient != nil || plain.Contact.Hydrated() {
				t.Errorf("plain report is hydrated: %+v", plain.Contact)
			}
			if _, err := c.Reports.Get(context.Background(), chttest.DemoPatientID, nil); !errors.Is(err, cht.ErrNotFound) {
				t.Errorf("person as report: %v", err)
			}
		})
	}
}

func TestContactsAllPaging(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{})
	var names []string
	for p, err := range c.Contacts.All(context.Background(), cht.ListOptions{Type: "person", Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, p.Name)
	}
	if len(names) != 6 {
		t.Errorf("people = %v, want 6", names)
	}
	if n := len(requestsTo(srv, "GET", "/api/v1/person")); n < 3 {
		t.Errorf("pages = %d, want >= 3", n)
	}
	// Stopping early fetches no further page.
	srv.ResetRequests()
	for range c.Contacts.All(context.Background(), cht.ListOptions{Type: "person", Limit: 2}) {
		break
	}
	if n := len(requestsTo(srv, "GET", "/api/v1/person")); n != 1 {
		t.Errorf("pages after break = %d, want 1", n)
	}
	var places int
	for p, err := range c.Contacts.All(context.Background(), cht.ListOptions{Type: "household"}) {
		if err != nil {
			t.Fatal(err)
		}
		if p.ID != chttest.DemoHouseholdID {
			t.Errorf("household = %s", p.ID)
		}
		places++
	}
	if places != 1 {
		t.Errorf("households = %d", places)
	}
	_, c4 := newDemo(t, chttest.Config{Version: "4.10.0"}, func(c *cht.Config) { c.Version = "4.10.0" })
	n := 0
	for _, err := range c4.Contacts.All(context.Background(), cht.ListOptions{Type: "person"}) {
		n++
		if !errors.Is(err, cht.ErrUnsupported) {
			t.Errorf("err = %v, want ErrUnsupported", err)
		}
	}
	if n != 1 {
		t.Errorf("%d values, want the one error", n)
	}
}

func TestRecordsSubmit(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{})
	ctx := context.Background()
	res, err := c.Records.Submit(ctx, cht.Record{
		Form: "height_weight", ReportedDate: time.UnixMilli(1730355950419),
		Fields: map[string]any{"Patient_UUID": chttest.DemoPatientID, "HEIGHT": 172, "weight": 65},
	}, &cht.SubmitOptions{ReadBack: true, CheckForm: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.Form != "HEIGHT_WEIGHT" || res.Report.ReportedDate != 1730355950419 {
		t.Errorf("report = %+v", res.Report)
	}
	if h, ok := res.Report.Fields.Float("height"); !ok || h != 172 {
		t.Errorf("height = %v %v (key not lower-cased?)", h, ok)
	}
	if id, _, _ := res.Report.Subject(); id != chttest.DemoPatientID {
		t.Errorf("subject = %q", id)
	}
	body := requestsTo(srv, "POST", "/api/v2/records")[0].Body
	if !bytes.Contains(body, []byte(`"patient_uuid"`)) || !bytes.Contains(body, []byte(`"form":"HEIGHT_WEIGHT"`)) {
		t.Errorf("body = %s", body)
	}

	// Validation errors are stored, answered with 200, and read back.
	res, err = c.Records.Submit(ctx, cht.Record{Form: "HEIGHT_WEIGHT", Fields: map[string]any{"height": 1}}, &cht.SubmitOptions{ReadBack: true})
	if !errors.Is(err, cht.ErrInvalidRecord) {
		t.Fatalf("err = %v, want ErrInvalidRecord", err)
	}
	if res == nil || len(res.Errors) == 0 || res.Errors[0].Code != "sys.missing_fields" {
		t.Errorf("result = %+v", res)
	}

	// Saved, but the read-back fails: the result names the report, and the
	// error does not look like a failed write that a caller would retry
	// (the records API is not idempotent: a retry is a second report).
	remove := srv.InjectFault(chttest.Fault{Method: http.MethodGet, Path: "/medic/*", Status: http.StatusServiceUnavailable})
	before := len(srv.Reports("HEIGHT_WEIGHT"))
	res, err = c.Records.Submit(ctx, cht.Record{Form: "HEIGHT_WEIGHT", Fields: map[string]any{"patient_uuid": chttest.DemoPatientID,
		"height": 170, "weight": 60}}, &cht.SubmitOptions{ReadBack: true})
	remove()
	if err == nil || errors.Is(err, cht.ErrServer) || !strings.Contains(err.Error(), "saved") {
		t.Errorf("err = %v, want a saved report that could not be read back, not ErrServer", err)
	}
	if res == nil || res.ID == "" {
		t.Fatalf("result = %+v, want the saved report's id", res)
	}
	if after := srv.Reports("HEIGHT_WEIGHT"); len(after) != before+1 {
		t.Errorf("reports = %d, want %d", len(after), before+1)
	}

	// CheckForm refuses undeclared keys before sending anything.
	srv.ResetRequests()
	_, err = c.Records.Submit(ctx, cht.Record{Form: "HEIGHT_WEIGHT", Fields: map[string]any{"patient_uuid": "x", "bmi": 22}}, &cht.SubmitOptions{CheckForm: true})
	if err == nil || !strings.Contains(err.Error(), "bmi") {
		t.Errorf("err = %v, want undeclared bmi", err)
	}
	if n := len(requestsTo(srv, "POST", "/api/v2/records")); n != 0 {
		t.Errorf("records requests = %d, want 0", n)
	}

	// Unknown forms are CHT's 500 PublicError.
	_, err = c.Records.Submit(ctx, cht.Record{Form: "nope"}, nil)
	var apiErr *cht.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 || !strings.Contains(apiErr.Details, "Form not found: NOPE") {
		t.Errorf("err = %v", err)
	}
}

// TestRecordsDottedFields checks that a field declared with a dotted key
// ("patient.name") is stored and validated: the fake reads JSON records
// as cht-core does (api/src/services/records.js createRecordByJSON and
// getDataRecord, which stores the field through
// api/src/services/report/smsparser.js merge as formData.patient.name,
// while api/src/services/report/validate.js validate reads
// formData["patient.name"]); see chttest's TestRecordsDottedField.
func TestRecordsDottedFields(t *testing.T) {
	var f chttest.Form
	if err := json.Unmarshal([]byte(`{"meta":{"code":"DOT"},"fields":{"patient.name":{"type":"string","labels":{"tiny":"n"},"required":true}}}`), &f); err != nil {
		t.Fatal(err)
	}
	_, c := newDemo(t, chttest.Config{Forms: map[string]chttest.Form{"DOT": f}})
	res, err := c.Records.Submit(context.Background(), cht.Record{Form: "DOT", Fields: map[string]any{"Patient.Name": "Ann"}},
		&cht.SubmitOptions{CheckForm: true, ReadBack: true})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if s, ok := res.Report.Fields.String("patient.name"); !ok || s != "Ann" {
		raw, _ := json.Marshal(res.Report.Fields)
		t.Errorf("patient.name not stored: fields = %s", raw)
	}
}

// TestRecordsReadBackNotStored checks that ReadBack fails, naming the
// field, when CHT drops a sent field (getDataRecord in cht-core's
// api/src/services/records.js stores only the keys of the form
// definition).
func TestRecordsReadBackNotStored(t *testing.T) {
	_, c := newDemo(t, chttest.Config{})
	res, err := c.Records.Submit(context.Background(), cht.Record{Form: "HEIGHT_WEIGHT",
		Fields: map[string]any{"patient_uuid": chttest.DemoPatientID, "height": 172, "weight": 65, "bmi": 22, "x.y": 1}},
		&cht.SubmitOptions{ReadBack: true})
	if err == nil || !strings.Contains(err.Error(), "without fields bmi, x.y") {
		t.Fatalf("err = %v, want the dropped fields named", err)
	}
	if res == nil || res.ID == "" || res.Report == nil {
		t.Errorf("result = %+v, want the created report", res)
	}
}

func TestRecordRules(t *testing.T) {
	tests := []struct {
		name string
		rec  cht.Record
		want string // JSON, or error substring prefixed with "!"
	}{
		{"upper form lower keys", cht.Record{Form: "hw", Fields: map[string]any{"A": 1, "b.C": "x"}},
			`{"_meta":{"form":"HW"},"a":1,"b":{"c":"x"},"b.c":"x"}`},
		{"dotted keys flat and nested", cht.Record{Form: "F", Fields: map[string]any{"p.name": "Ann", "p.age": 3, "p.addr.city": "K"}},
			`{"_meta":{"form":"F"},"p":{"addr":{"city":"K"},"age":3,"name":"Ann"},"p.addr.city":"K","p.age":3,"p.name":"Ann"}`},
		{"dotted key under a scalar", cht.Record{Form: "F", Fields: map[string]any{"p": 1, "p.name": "Ann"}}, "!collides"},
		{"dotted key under a scalar, other case", cht.Record{Form: "F", Fields: map[string]any{"P.name": "Ann", "p": 1}}, "!collides"},
		{"dotted key under a dotted key", cht.Record{Form: "F", Fields: map[string]any{"p.a": 1, "p.a.b": 2}}, "!collides"},
		{"empty segment", cht.Record{Form: "F", Fields: map[string]any{"p..a": 1}}, "!empty segment"},
		{"dotted reserved", cht.Record{Form: "F", Fields: map[string]any{"_meta.form": "X"}}, "!reserved"},
		{"meta", cht.Record{Form: "F", From: "+2547", Locale: "sw", ReportedDate: time.UnixMilli(5), Fields: map[string]any{"d": time.UnixMilli(7)}},
			`{"_meta":{"form":"F","from":"+2547","locale":"sw","reported_date":5},"d":7}`},
		{"no form", cht.Record{}, "!form is required"},
		{"collision", cht.Record{Form: "F", Fields: map[string]any{"Height": 1, "height": 2}}, "!collide"},
		{"reserved", cht.Record{Form: "F", Fields: map[string]any{"_META": 1}}, "!reserved"},
		{"nested value", cht.Record{Form: "F", Fields: map[string]any{"obs": map[string]any{}}}, "!unsupported value type"},
		{"NaN", cht.Record{Form: "F", Fields: map[string]any{"height": math.NaN()}}, `!field "height": NaN is not a JSON number`},
		{"+Inf", cht.Record{Form: "F", Fields: map[string]any{"height": math.Inf(1)}}, `!field "height": +Inf is not a JSON number`},
		{"-Inf float32", cht.Record{Form: "F", Fields: map[string]any{"height": float32(math.Inf(-1))}}, `!field "height": -Inf is not a JSON number`},
		{"bad json.Number", cht.Record{Form: "F", Fields: map[string]any{"height": json.Number("12cm")}}, `!field "height": "12cm" is not a JSON number`},
		{"json.Number", cht.Record{Form: "F", Fields: map[string]any{"height": json.Number("1e400")}}, `{"_meta":{"form":"F"},"height":1e400}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.rec)
			if strings.HasPrefix(tt.want, "!") {
				if err == nil || !strings.Contains(err.Error(), tt.want[1:]) {
					t.Errorf("err = %v, want %q", err, tt.want[1:])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
		})
	}
}

func TestCreatePersonAndPlace(t *testing.T) {
	for _, v := range []string{"5.2.0", "4.10.0"} {
		t.Run(v, func(t *testing.T) {
			srv, c := newDemo(t, chttest.Config{Version: v})
			ctx := context.Background()
			place, err := c.Contacts.Create(ctx, &cht.Contact{
				Type: "household", Name: "New Household",
				Parent: cht.NewLineage(chttest.DemoCHWAreaID),
			})
			if err != nil {
				t.Fatal(err)
			}
			var storedPlace cht.Contact
			rawPlace, _ := srv.Doc(place.ID)
			if err := json.Unmarshal(rawPlace, &storedPlace); err != nil {
				t.Fatal(err)
			}
			if storedPlace.Type != "contact" || storedPlace.ContactType != "household" || storedPlace.ParentID() != chttest.DemoCHWAreaID {
				t.Errorf("stored place = %s", rawPlace)
			}
			person, err := c.Contacts.Create(ctx, &cht.Contact{
				Name: "Ana", Sex: "female", DateOfBirth: "1990-01-01", Parent: cht.NewLineage(place.ID),
				Extra: map[string]json.RawMessage{"external_id": json.RawMessage(`"EXT-1"`)},
			})
			if err != nil {
				t.Fatal(err)
			}
			if person.ID == "" || person.Rev == "" || (v == "5.2.0") != (person.Doc != nil) {
				t.Errorf("result = %+v", person)
			}
			var stored cht.Contact
			raw, ok := srv.Doc(person.ID)
			if !ok {
				t.Fatal("person not stored")
			}
			if err := json.Unmarshal(raw, &stored); err != nil {
				t.Fatal(err)
			}
			if stored.ExternalID != "EXT-1" || !stored.IsPerson() ||
				!slices.Equal(stored.Parent.IDs(), []string{place.ID, chttest.DemoCHWAreaID, chttest.DemoHealthCentreID, chttest.DemoDistrictID}) {
				t.Errorf("stored = %s", raw)
			}
			// A type that is not a person type of the app's contact_types
			// goes to the place endpoint (shared-libs/contact-types-utils
			// isPersonType; api/src/controllers/place.js, person.js).
			wants := []string{"/api/v1/people", "/api/v1/places"}
			if v == "5.2.0" {
				wants = []string{"/api/v1/person", "/api/v1/place"}
			}
			for _, want := range wants {
				if n := len(requestsTo(srv, "POST", want)); n != 1 {
					t.Errorf("requests to %s = %d", want, n)
				}
			}
		})
	}
}

func TestDocsAndChanges(t *testing.T) {
	_, c := newDemo(t, chttest.Config{})
	ctx := context.Background()
	var p cht.Contact
	if err := c.Docs.Get(ctx, chttest.DemoPatientID, &p); err != nil {
		t.Fatal(err)
	}
	p.Phone = "+254700000001"
	res, err := c.Docs.Put(ctx, p.ID, &p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rev == p.Rev || !strings.HasPrefix(res.Rev, "2-") {
		t.Errorf("rev = %q", res.Rev)
	}
	if _, err := c.Docs.Put(ctx, p.ID, &p); !errors.Is(err, cht.ErrConflict) {
		t.Errorf("stale rev: err = %v, want ErrConflict", err)
	}
	if err := c.Docs.Get(ctx, "nope", new(json.RawMessage)); !errors.Is(err, cht.ErrNotFound) {
		t.Errorf("missing: err = %v", err)
	}

	// Backfill with checkpoints, then resume from the checkpoint.
	var seen []string
	var last cht.Seq
	for ch, err := range c.Docs.All(ctx, cht.ChangesOptions{Limit: 4, IncludeDocs: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.Doc) == 0 {
			t.Errorf("change %s has no doc", ch.ID)
		}
		seen = append(seen, ch.ID)
		last = ch.Seq
	}
	if len(seen) < 13 {
		t.Errorf("changes = %d, want >= 13", len(seen))
	}
	page, err := c.Docs.Changes(ctx, cht.ChangesOptions{Since: last})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Results) != 0 {
		t.Errorf("changes after checkpoint = %d, want 0", len(page.Results))
	}
	// A longpoll returns when a change arrives.
	done := make(chan *cht.Changes, 1)
	go func() {
		page, err := c.Docs.Changes(ctx, cht.ChangesOptions{Since: last, Longpoll: true, PollTimeout: 5 * time.Second, IncludeDocs: true})
		if err != nil {
			t.Error(err)
		}
		done <- page
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := c.Docs.Put(ctx, "new-doc", map[string]any{"type": "person", "name": "Late"}); err != nil {
		t.Fatal(err)
	}
	select {
	case page := <-done:
		if page == nil || len(page.Results) != 1 || page.Results[0].ID != "new-doc" {
			t.Errorf("longpoll page = %+v", page)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("longpoll did not return")
	}
}

func TestSessionAuth(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) { c.Session = true })
	ctx := context.Background()
	for range 3 {
		if _, err := c.Hydrate(ctx, chttest.DemoPatientID); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(requestsTo(srv, "POST", "/_session")); n != 1 {
		t.Errorf("logins = %d, want 1", n)
	}
	for _, r := range requestsTo(srv, "POST", "/api/v1/hydrate") {
		if r.Header.Get("Authorization") != "" || !strings.Contains(r.Header.Get("Cookie"), "AuthSession=") {
			t.Errorf("hydrate headers: %v", r.Header)
		}
	}
	bad, err := cht.New(cht.Config{URL: srv.URL, Username: "medic", Password: "wrong", Session: true, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetRequests()
	if _, err := bad.Hydrate(ctx, "x"); !errors.Is(err, cht.ErrUnauthorized) {
		t.Errorf("err = %v, want ErrUnauthorized", err)
	}
	if n := len(requestsTo(srv, "POST", "/_session")); n != 1 {
		t.Errorf("failed logins = %d, want 1 (never retried)", n)
	}
}

// ctxKey marks the contexts of a caller's requests in
// TestSessionLoginCarriesNoCallerValues.
type ctxKey struct{}

// valueSeen records, per request path, whether the request's context held
// the caller's ctxKey and a deadline.
type valueSeen struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[string][2]bool
}

func (v *valueSeen) RoundTrip(r *http.Request) (*http.Response, error) {
	_, deadline := r.Context().Deadline()
	v.mu.Lock()
	v.seen[r.URL.Path] = [2]bool{r.Context().Value(ctxKey{}) != nil, deadline}
	v.mu.Unlock()
	return v.next.RoundTrip(r)
}

// The session login runs without the caller's context values: its body
// holds the password, and a value such as mediator.Transport's recorder
// would store the call, body included, in an OpenHIM transaction. It keeps
// the caller's deadline; the caller's own request keeps its values.
func TestSessionLoginCarriesNoCallerValues(t *testing.T) {
	srv := chttest.NewDemoServer()
	t.Cleanup(srv.Close)
	rt := &valueSeen{next: srv.Client().Transport, seen: map[string][2]bool{}}
	c, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		Session: true, HTTPClient: &http.Client{Transport: rt}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, true), time.Minute)
	defer cancel()
	if _, err := c.Hydrate(ctx, chttest.DemoPatientID); err != nil {
		t.Fatal(err)
	}
	if got := rt.seen["/_session"]; got != [2]bool{false, true} {
		t.Errorf("login: caller's value %v, deadline %v; want no value, a deadline", got[0], got[1])
	}
	if got := rt.seen["/api/v1/hydrate"]; !got[0] {
		t.Error("the caller's own request lost its context value")
	}
}

func TestBasicAuthFromURLAndRedaction(t *testing.T) {
	srv := chttest.NewDemoServer()
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://medic:password@", 1)
	var logs bytes.Buffer
	c, err := cht.New(cht.Config{URL: u, HTTPClient: srv.Client(),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Hydrate(context.Background(), chttest.DemoPatientID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Contacts.Get(context.Background(), "missing", nil)
	if err == nil || strings.Contains(err.Error(), "password") {
		t.Errorf("err = %v", err)
	}
	if strings.Contains(logs.String(), "password") {
		t.Errorf("logs leak the password: %s", logs.String())
	}
}

// TestConfigRedacts: a Config printed, formatted or logged (also inside
// another struct) shows its settings but neither the password nor the
// password embedded in the URL.
func TestConfigRedacts(t *testing.T) {
	// With "//" and without: url.Parse reads "medic" of the second as its
	// scheme.
	for _, u := range []string{"https://medic:urlpass@cht.example.org/prefix", "medic:urlpass@cht.example.org/prefix"} {
		testConfigRedacts(t, cht.Config{URL: u, Username: "mediator", Password: "s3cret", Session: true})
	}
}

func testConfigRedacts(t *testing.T, cfg cht.Config) {
	t.Helper()
	type settings struct {
		Name string
		CHT  cht.Config
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("start", "cht", cfg)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("start", "cht", cfg)
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", cfg),
		"%+v":        fmt.Sprintf("%+v", cfg),
		"%s":         cfg.String(),
		"%#v":        fmt.Sprintf("%#v", cfg),
		"pointer %v": fmt.Sprintf("%v", &cfg),
		"nested %+v": fmt.Sprintf("%+v", settings{Name: "m", CHT: cfg}),
		"nested %#v": fmt.Sprintf("%#v", settings{Name: "m", CHT: cfg}),
		"slog text":  text.String(),
		"slog json":  js.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, "s3cret") || strings.Contains(out, "urlpass") {
			t.Errorf("%s leaks a secret: %s", name, out)
		}
		if !strings.Contains(out, "mediator") || !strings.Contains(out, "cht.example.org") || !strings.Contains(out, "REDACTED") {
			t.Errorf("%s hides what a reader needs (username, host, that a password is set): %s", name, out)
		}
	}
	if cfg.Password != "s3cret" || !strings.Contains(cfg.URL, "urlpass") {
		t.Errorf("formatting changed the Config with URL %s", cfg.URL)
	}
}

func TestAPIErrorShapes(t *testing.T) {
	tests := []struct {
		status      int
		body        string
		ctype       string
		wantErr     string
		wantReason  string
		wantDetails string
		wantBody    string
		is          error
	}{
		{403, `{"code":403,"error":"forbidden","details":"Offline users are not allowed access to this endpoint"}`, "application/json", "forbidden", "", "Offline users are not allowed access to this endpoint", "", cht.ErrForbidden},
		{404, `{"error":"not_found","reason":"missing"}`, "application/json", "not_found", "missing", "", "", cht.ErrNotFound},
		{400, `Content-Type must be application/json`, "text/plain", "", "", "", "Content-Type must be application/json", nil},
		{500, `{"code":500,"error":"Server error","details":{"x":1}}`, "application/json", "Server error", "", `{"x":1}`, "", cht.ErrServer},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer ts.Close()
			c, _ := cht.New(cht.Config{URL: ts.URL, MaxRetries: -1, Version: "5.2.0"})
			_, err := c.Contacts.Get(context.Background(), "x", nil)
			var e *cht.APIError
			if !errors.As(err, &e) {
				t.Fatalf("err = %v", err)
			}
			if e.StatusCode != tt.status || e.Err != tt.wantErr || e.Reason != tt.wantReason || e.Details != tt.wantDetails || e.Body != tt.wantBody {
				t.Errorf("APIError = %+v", e)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v) = false", tt.is)
			}
		})
	}
}

func TestSetCredential(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{})
	if err := c.SetCredential(context.Background(), "openhim1", "interop-password"); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.Credential("openhim1"); got != "interop-password" {
		t.Errorf("stored %q", got)
	}
	r := requestsTo(srv, "PUT", "/api/v1/credentials/openhim1")
	if len(r) != 1 || r[0].Header.Get("Content-Type") != "text/plain" {
		t.Errorf("request = %+v", r)
	}
}

func TestResponseBodyLimit(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) { c.MaxResponseBytes = 512 })
	if _, err := c.Hydrate(context.Background(), chttest.DemoPatientID); !errors.Is(err, resty.ErrResponseBodyTooLarge) {
		t.Fatalf("err = %v, want the answer refused as too large", err)
	}
	if n := len(requestsTo(srv, "POST", "/api/v1/hydrate")); n != 1 {
		t.Errorf("oversized answer retried: %d requests", n)
	}
}

func TestSessionRenewedOnceAfterExpiry(t *testing.T) {
	var logins, calls int
	var valid string
	reject := false
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/_session":
			logins++
			valid = fmt.Sprintf("tok%d", logins)
			http.SetCookie(w, &http.Cookie{Name: "AuthSession", Value: valid, Path: "/"})
			fmt.Fprint(w, `{"ok":true}`)
		default:
			calls++
			ck, err := r.Cookie("AuthSession")
			// The first session "expires" after one use.
			if err != nil || ck.Value != valid || (logins == 1 && calls > 1) || reject {
				w.WriteHeader(401)
				fmt.Fprint(w, `{"code":401,"error":"unauthorized"}`)
				return
			}
			fmt.Fprint(w, `{"_id":"p1","type":"person","name":"Ana"}`)
		}
	}))
	defer ts.Close()
	c, err := cht.New(cht.Config{URL: ts.URL, Username: "u", Password: "p", Session: true, Version: "4.10.0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		if _, err := c.Contacts.Get(ctx, "p1", nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if logins != 2 {
		t.Errorf("logins = %d, want 2 (initial + one renewal)", logins)
	}
	// A 401 that persists after renewing is returned, not looped on.
	reject, logins, calls = true, 10, 0
	_, err = c.Contacts.Get(ctx, "p1", nil)
	if !errors.Is(err, cht.ErrUnauthorized) {
		t.Errorf("err = %v, want ErrUnauthorized", err)
	}
	if logins != 11 || calls != 2 {
		t.Errorf("logins = %d, calls = %d; want one renewal and two attempts", logins, calls)
	}
}

func TestSeqAcceptsNumbers(t *testing.T) {
	var ch cht.Changes
	if err := json.Unmarshal([]byte(`{"results":[{"seq":7,"id":"a","changes":[{"rev":"1-x"}]}],"last_seq":7}`), &ch); err != nil {
		t.Fatal(err)
	}
	if ch.LastSeq != "7" || ch.Results[0].Seq != "7" || ch.Results[0].Rev() != "1-x" {
		t.Errorf("changes = %+v", ch)
	}
	if err := json.Unmarshal([]byte(`{"last_seq":{"x":1}}`), &ch); err == nil {
		t.Error("object seq accepted")
	}
}

func TestAllHydrated(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{})
	ctx := context.Background()
	if err := srv.DeleteDoc(chttest.DemoChildID); err != nil {
		t.Fatal(err)
	}
	var n, deleted, reportsWithPatient int
	var last cht.Seq
	for ch, err := range c.Docs.AllHydrated(ctx, cht.ChangesOptions{Limit: 5}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		last = ch.Seq
		if ch.Deleted {
			deleted++
			if ch.Hydrated != nil {
				t.Errorf("deleted %s has a document", ch.ID)
			}
			continue
		}
		if ch.Hydrated == nil {
			t.Errorf("change %s not hydrated", ch.ID)
			continue
		}
		if ch.Hydrated.Type() == "data_record" {
			r, err := ch.Hydrated.Report()
			if err != nil {
				t.Fatal(err)
			}
			if r.Patient != nil {
				reportsWithPatient++
			}
		}
	}
	// The assessment report's patient is the deleted child: no patient.
	if n != 13 || deleted != 1 || reportsWithPatient != 2 {
		t.Errorf("changes = %d, deleted = %d, reports with patient = %d", n, deleted, reportsWithPatient)
	}
	if last == "" {
		t.Error("no checkpoint")
	}
	if k := len(requestsTo(srv, "POST", "/api/v1/hydrate")); k != 3 {
		t.Errorf("hydrate calls = %d, want one per page (3)", k)
	}
}

// nested returns a person whose member "x" nests n objects deep, so that
// the document itself nests n+1 levels.
func nested(id string, n int) map[string]any {
	v := map[string]any{}
	for range n - 1 {
		v = map[string]any{"x": v}
	}
	return map[string]any{"_id": id, "type": "person", "name": id, "x": v}
}

// A document CHT hydrates but that cannot be read (here nested deeper than
// the decoder allows) fails alone: its page is hydrated again one document
// at a time, the others come as usual and only it carries Err. A document
// that decodes on its own also reads inside the hydrate answer.
func TestAllHydratedIsolatesUnreadableDocuments(t *testing.T) {
	srv, c := newDemo(t, chttest.Config{})
	const limit = 64 // the decoder's bound on nesting
	if err := srv.PutDocs(nested("deep-ok", limit-1), nested("deep-bad", limit+5)); err != nil {
		t.Fatal(err)
	}
	var ok cht.Contact
	raw, _ := srv.Doc("deep-ok")
	if err := ok.UnmarshalJSON(raw); err != nil {
		t.Fatalf("deep-ok does not decode on its own: %v", err)
	}
	got := map[string]string{}
	for ch, err := range c.Docs.AllHydrated(context.Background(), cht.ChangesOptions{Limit: 20}) {
		if err != nil {
			t.Fatal(err)
		}
		var de *cht.DecodeError
		switch {
		case ch.Err != nil && errors.As(ch.Err, &de):
			got[ch.ID] = "unreadable"
		case ch.Err != nil:
			t.Errorf("%s: %v, want a *DecodeError", ch.ID, ch.Err)
		case ch.Hydrated != nil:
			got[ch.ID] = "hydrated"
		}
	}
	want := map[string]string{"deep-ok": "hydrated", "deep-bad": "unreadable", chttest.DemoPatientID: "hydrated"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}
	if n := len(got); n != 15 {
		t.Errorf("%d changes read, want the 13 of the demo and 2", n)
	}
}

// A document CHT fails to hydrate (its hydrate API answers 500 for every
// request that names it: api/src/controllers/hydration.js) fails alone:
// its page is hydrated again in halves down to it, and only it carries
// Err, while CHT still hydrates an id no document has. When CHT fails to
// hydrate anything (CouchDB down: also 500), or answers 503, the iteration
// stops with the error and blames no document. One bad document costs
// about 2*log2(ids)+2 more requests; CHT failing as a whole, one.
func TestAllHydratedIsolatesDocumentsCHTFailsToHydrate(t *testing.T) {
	const hydrate = "/api/v1/hydrate"
	oneDoc := chttest.Fault{DocID: chttest.DemoPatientID, Status: http.StatusInternalServerError}
	tests := []struct {
		name      string
		faults    []chttest.Fault
		limit     int // page size
		batch     int // HydrateBatchSize
		wantBad   []string
		wantErr   bool
		maxExtras int // hydrate requests beyond one per page; 0 = not checked
	}{
		{name: "one document", faults: []chttest.Fault{oneDoc}, limit: 20,
			wantBad: []string{chttest.DemoPatientID}, maxExtras: 2*4 + 2},
		{name: "two documents", faults: []chttest.Fault{oneDoc,
			{DocID: chttest.DemoMotherID, Status: http.StatusInternalServerError}}, limit: 20,
			wantBad: []string{chttest.DemoPatientID, chttest.DemoMotherID}},
		{name: "alone in its page", faults: []chttest.Fault{oneDoc}, limit: 1,
			wantBad: []string{chttest.DemoPatientID}, maxExtras: 1},
		{name: "several requests per page", faults: []chttest.Fault{oneDoc}, limit: 20, batch: 4,
			wantBad: []string{chttest.DemoPatientID}, maxExtras: 2*2 + 2},
		{name: "CHT fails to hydrate anything", faults: []chttest.Fault{{Path: hydrate, Status: 500}},
			limit: 20, wantErr: true, maxExtras: 1},
		{name: "CHT fails once the document is found", faults: []chttest.Fault{oneDoc,
			{Path: hydrate, Status: 500, Skip: 1}}, limit: 20, wantErr: true},
		{name: "CHT unavailable", faults: []chttest.Fault{{Path: hydrate, Status: 503}}, limit: 20, wantErr: true},
	}
	// run reads the feed with faults; requests counts the hydrate requests.
	run := func(t *testing.T, limit, batch int, faults []chttest.Fault) (bad []string, changes, requests int, err error) {
		srv, c := newDemo(t, chttest.Config{}, func(c *cht.Config) {
			c.MaxRetries = -1 // each request once: counts are exact
			c.HydrateBatchSize = batch
		})
		for _, f := range faults {
			srv.InjectFault(f)
		}
		for ch, e := range c.Docs.AllHydrated(context.Background(), cht.ChangesOptions{Limit: limit}) {
			if e != nil {
				err = e
				break
			}
			changes++
			switch {
			case ch.Err != nil:
				if !errors.Is(ch.Err, cht.ErrServer) {
					t.Errorf("%s: %v, want a server error", ch.ID, ch.Err)
				}
				bad = append(bad, ch.ID)
			case ch.Hydrated == nil:
				t.Errorf("%s not hydrated", ch.ID)
			}
		}
		slices.Sort(bad)
		return bad, changes, len(requestsTo(srv, "POST", hydrate)), err
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, all, plain, err := run(t, tt.limit, tt.batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			bad, changes, requests, err := run(t, tt.limit, tt.batch, tt.faults)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if !tt.wantErr && changes != all {
				t.Errorf("%d changes, want %d", changes, all)
			}
			slices.Sort(tt.wantBad)
			if !slices.Equal(bad, tt.wantBad) {
				t.Errorf("failed alone: %v, want %v", bad, tt.wantBad)
			}
			if extras := requests - plain; tt.maxExtras > 0 && extras > tt.maxExtras {
				t.Errorf("%d more hydrate requests than without the fault, want at most %d", extras, tt.maxExtras)
			}
		})
	}
}

// TestCreateWithChosenID checks that a create with a chosen id works on
// every version and that its replay conflicts. CHT 5.2's POST
// /api/v1/person and /api/v1/place refuse _id (shared-libs/cht-datasource
// parameter-validators.ts assertContactInput: assertDoesNotHaveField(data,
// '_id')), so the client uses the legacy POST /api/v1/people and
// /api/v1/places, which write the body with db.medic.post
// (shared-libs/contacts people.js createPerson, places.js createPlace).
func TestCreateWithChosenID(t *testing.T) {
	for _, v := range []string{"4.10.0", "5.2.0"} {
		for _, tt := range []struct {
			typ, id, parent, path string
		}{
			{"person", "chosen-person", chttest.DemoCHWAreaID, "/api/v1/people"},
			{"household", "chosen-household", chttest.DemoCHWAreaID, "/api/v1/places"},
		} {
			t.Run(v+"/"+tt.typ, func(t *testing.T) {
				srv, c := newDemo(t, chttest.Config{Version: v})
				ctx := context.Background()
				p := &cht.Contact{ID: tt.id, Type: tt.typ, Name: "Ana", Parent: cht.NewLineage(tt.parent)}
				res, err := c.Contacts.Create(ctx, p)
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				if res.ID != tt.id {
					t.Errorf("id = %q, want %q", res.ID, tt.id)
				}
				raw, ok := srv.Doc(tt.id)
				var stored cht.Contact
				if !ok || json.Unmarshal(raw, &stored) != nil || stored.TypeID() != tt.typ || stored.ParentID() != tt.parent {
					t.Errorf("stored = %s", raw)
				}
				if n := len(requestsTo(srv, "POST", tt.path)); n != 1 {
					t.Errorf("requests to %s = %d, want 1", tt.path, n)
				}
				if _, err := c.Contacts.Create(ctx, p); !errors.Is(err, cht.ErrConflict) {
					t.Errorf("replay: %v, want ErrConflict", err)
				}
			})
		}
	}
}

// TestLoginWaitEndsWithContext checks that a call waiting for another
// call's login (POST /_session) gives up when its own context ends
// rather than when that login finishes.
func TestLoginWaitEndsWithContext(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var released atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_session" {
			close(entered)
			<-release
			http.SetCookie(w, &http.Cookie{Name: "AuthSession", Value: "abc"})
			w.Write([]byte(`{"ok":true}`))
			return
		}
		w.Write([]byte(`{"_id":"x","type":"person"}`))
	}))
	t.Cleanup(srv.Close)
	// A safety net only: without the fix the second call would wait for
	// this.
	stop := time.AfterFunc(10*time.Second, func() { released.Store(true); close(release) })
	c, err := cht.New(cht.Config{URL: srv.URL, Username: "u", Password: "p", Session: true, Version: "4.10.0", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- c.Docs.Get(context.Background(), "x", new(map[string]any)) }()
	<-entered // the first call holds the login
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = c.Docs.Get(ctx, "x", new(map[string]any))
	if released.Load() {
		t.Error("the call returned only after the other call's login ended")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if stop.Stop() {
		close(release)
	}
	if err := <-first; err != nil {
		t.Errorf("first call: %v", err)
	}
}

// The client follows a redirect only with the same method, to the same
// host and port, or from http to https on the same host name: net/http
// would turn a write answered 301-303 into a GET without its body, and
// send a 307's body (a person, a report) to another host, or the
// credentials to a host of the same name over plain http. The redirect is
// then the answer.
func TestRedirectsThatWouldLoseOrLeakAreNotFollowed(t *testing.T) {
	var elsewhere, moved atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		_, _ = io.WriteString(w, `{"ok":true,"id":"x","rev":"1-a"}`)
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/away/"):
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		case strings.HasPrefix(r.URL.Path, "/found/"):
			http.Redirect(w, r, "/moved"+strings.TrimPrefix(r.URL.Path, "/found"), http.StatusFound)
		default:
			moved.Add(1)
			_, _ = io.WriteString(w, `{"ok":true,"id":"x","rev":"1-a"}`)
		}
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	for _, tt := range []struct {
		name, base string
		status     int
	}{
		{"another port", srv.URL + "/away", http.StatusTemporaryRedirect},
		{"a write turned into a GET", srv.URL + "/found", http.StatusFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			elsewhere.Store(0)
			moved.Store(0)
			c, err := cht.New(cht.Config{URL: tt.base, Username: "u", Password: "p", MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Docs.Put(ctx, "x", map[string]any{"_id": "x", "type": "person"})
			var apiErr *cht.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status {
				t.Errorf("err = %v, want the %d answered", err, tt.status)
			}
			if elsewhere.Load() != 0 || moved.Load() != 0 {
				t.Errorf("the write was followed: %d to the other server, %d as a GET", elsewhere.Load(), moved.Load())
			}
		})
	}
}

// TestVersionFromDeployInfo: the CHT version comes from /api/deploy-info
// (api/src/routing.js; shared-libs/server-info getDeployInfo: version, the
// build's base_version beside it), never from /api/info, which answers
// its package.json's "0.1.0" on every release. A build whose version is
// no release falls back to base_version; with neither, the error says to
// set Config.Version.
func TestVersionFromDeployInfo(t *testing.T) {
	tests := []struct {
		name, deployInfo string
		wantPersonList   bool   // 4.11+: GET /api/v1/person?type= is used
		wantErr          string // "" = none
	}{
		{"a release", `{"version":"4.11.0","base_version":"4.11.0","user":"admin"}`, true, ""},
		{"an older release", `{"version":"4.10.2"}`, false, ""},
		{"a branch build", `{"version":"unknown","base_version":"4.18.0"}`, true, ""},
		{"no release", `{"version":"unknown"}`, false, "set Config.Version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var paths []string
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				paths = append(paths, r.URL.Path)
				w.Header().Set("Content-Type", "application/json")
				switch r.URL.Path {
				case "/api/info":
					fmt.Fprint(w, `{"version":"0.1.0"}`)
				case "/api/deploy-info":
					if _, _, ok := r.BasicAuth(); !ok {
						w.WriteHeader(http.StatusUnauthorized)
						fmt.Fprint(w, `{"code":401,"error":"unauthorized"}`)
						return
					}
					fmt.Fprint(w, tt.deployInfo)
				default:
					fmt.Fprint(w, `{"data":[],"cursor":null}`)
				}
			}))
			defer ts.Close()
			c, err := cht.New(cht.Config{URL: ts.URL, Username: "u", Password: "p"})
			if err != nil {
				t.Fatal(err)
			}
			var listErr error
			for _, err := range c.Contacts.All(context.Background(), cht.ListOptions{Type: "person"}) {
				listErr = err
				break
			}
			switch {
			case tt.wantErr != "":
				if listErr == nil || !strings.Contains(listErr.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", listErr, tt.wantErr)
				}
			case tt.wantPersonList && listErr != nil:
				t.Fatalf("err = %v", listErr)
			case !tt.wantPersonList && !errors.Is(listErr, cht.ErrUnsupported):
				t.Fatalf("err = %v, want ErrUnsupported below 4.11", listErr)
			}
			if slices.Contains(paths, "/api/info") {
				t.Errorf("asked /api/info: %v", paths)
			}
			if tt.wantPersonList && !slices.Contains(paths, "/api/v1/person") {
				t.Errorf("did not list through /api/v1/person: %v", paths)
			}
		})
	}
}

// A create answered 2xx without an id, with a body of megabytes, gives an
// error that shows the answer's start and how much of it was left out,
// not the whole body.
func TestCreateAnswerWithoutIDIsCapped(t *testing.T) {
	pad := strings.Repeat("é", 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"ok":true,"note":"` + pad + `"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := cht.New(cht.Config{URL: srv.URL, Username: "u", Password: "p", Version: "4.10.0", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Contacts.Create(context.Background(), &cht.Contact{ID: "p1", Name: "A", Type: "person", Parent: &cht.Lineage{ID: "hc"}})
	if err == nil {
		t.Fatal("no error for a create answer without id")
	}
	msg := err.Error()
	if len(msg) > 4<<10+200 || !strings.Contains(msg, `create response has no id: {"ok":true,"note":"éé`) ||
		!strings.Contains(msg, " more bytes)") || !utf8.ValidString(msg) {
		t.Errorf("error of %d bytes: %.200q … %q", len(msg), msg, msg[max(0, len(msg)-40):])
	}
}

// TestRecordsReadBackMissing checks what Submit says when CHT answers
// success but the report cannot be read back. cht-core's
// api/src/controllers/records.js process answers {success: true, id}
// with the id of whatever runTransitions gives, and
// shared-libs/transitions/src/transitions/index.js processDocs gives "a
// db.save result like a bulkDocs call" (db.medic.bulkDocs when no
// transition runs or they fail, or the error of saveDoc's db.medic.put):
// a document CouchDB refused is {id, error, reason}, not a rejection. So
// a read back answered 404 "missing" (CouchDB's answer for an id no
// document ever had) means the report was not stored: Submit must not
// say it was saved, nor return its id as a created report. A "deleted"
// report was stored.
func TestRecordsReadBackMissing(t *testing.T) {
	tests := []struct {
		file      string
		wantSaved bool
	}{
		{"missing.json", false},
		{"deleted.json", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			notFound, err := os.ReadFile("testdata/readback/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch {
				case r.Method == http.MethodPost && r.URL.Path == "/api/v2/records":
					fmt.Fprint(w, `{"success":true,"id":"r1"}`)
				case r.Method == http.MethodGet && r.URL.Path == "/medic/r1":
					w.WriteHeader(http.StatusNotFound)
					w.Write(notFound)
				default:
					w.WriteHeader(http.StatusTeapot)
				}
			}))
			defer ts.Close()
			c, err := cht.New(cht.Config{URL: ts.URL, Version: "4.10.0", MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Records.Submit(context.Background(), cht.Record{Form: "F", Fields: map[string]any{"a": 1}},
				&cht.SubmitOptions{ReadBack: true})
			if err == nil {
				t.Fatal("err = nil, want the read back's failure")
			}
			saidSaved := strings.Contains(err.Error(), "saved")
			if saidSaved != tt.wantSaved || (res != nil) != tt.wantSaved {
				t.Errorf("err = %v, result = %+v; want saved = %v", err, res, tt.wantSaved)
			}
			if !tt.wantSaved && (!errors.Is(err, cht.ErrNotFound) || !strings.Contains(err.Error(), "not stored")) {
				t.Errorf("err = %v, want a report not stored matching ErrNotFound", err)
			}
		})
	}
}
