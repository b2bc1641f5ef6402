package cht_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// legacyHierarchy is cht-core's hard-coded hierarchy for apps without
// contact_types: shared-libs/contact-types-utils/src/index.js HARDCODED_TYPES
// (the ids; "person" is HARDCODED_PERSON_TYPE), with the parents of
// shared-libs/cht-datasource/src/local/place.ts DEFAULT_PLACE_TYPES_DICT and
// local/person.ts DEFAULT_PERSON_TYPE.
var legacyHierarchy = []cht.ContactType{
	{ID: "district_hospital"},
	{ID: "health_center", Parents: []string{"district_hospital"}},
	{ID: "clinic", Parents: []string{"health_center"}},
	{ID: "person", Person: true, Parents: []string{"district_hospital", "health_center", "clinic"}},
}

func TestLegacyContactTypes(t *testing.T) {
	ct := cht.LegacyContactTypes()
	if got := ct.Types(); !reflect.DeepEqual(got, legacyHierarchy) {
		t.Fatalf("Types() = %+v\nwant %+v", got, legacyHierarchy)
	}
	for _, id := range []string{"district_hospital", "health_center", "clinic"} {
		if !ct.IsPlace(id) || ct.IsPerson(id) {
			t.Errorf("%s: IsPlace %v IsPerson %v; want a place", id, ct.IsPlace(id), ct.IsPerson(id))
		}
	}
	if !ct.IsPerson("person") || ct.IsPlace("person") {
		t.Error("person is not a person type")
	}
	if ct.IsPerson("c_person") || ct.IsPlace("c_person") {
		t.Error("an undeclared type is classified")
	}
}

func TestParseContactTypes(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	configurable := []cht.ContactType{
		{ID: "c_region"},
		{ID: "c_chw_area", Parents: []string{"c_region"}},
		{ID: "c_household", Parents: []string{"c_chw_area"}},
		{ID: "c_chw", Person: true, Parents: []string{"c_chw_area"}},
		{ID: "c_person", Person: true, Parents: []string{"c_household"}},
	}
	tests := []struct {
		name     string
		settings []byte
		want     []cht.ContactType
	}{
		{"cht-core default app settings", read("app_settings_default.json"), legacyHierarchy},
		{"configurable hierarchy", read("app_settings_configurable.json"), configurable},
		// contact-types-utils getContactTypes: anything but an array is no
		// types; getContactTypeIds: no ids means HARDCODED_TYPES.
		{"no contact_types", []byte(`{"locale":"en"}`), legacyHierarchy},
		{"null contact_types", []byte(`{"contact_types":null}`), legacyHierarchy},
		{"empty contact_types", []byte(`{"contact_types":[]}`), legacyHierarchy},
		{"person without person:true", []byte(`{"contact_types":[{"id":"hh"},{"id":"person","parents":["hh"]}]}`),
			[]cht.ContactType{{ID: "hh"}, {ID: "person", Person: true, Parents: []string{"hh"}}}},
		{"person:false and null parents", []byte(`{"contact_types":[{"id":"hh","person":false,"parents":null}]}`),
			[]cht.ContactType{{ID: "hh"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := cht.ParseContactTypes(tt.settings)
			if err != nil {
				t.Fatal(err)
			}
			if got := ct.Types(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Types() = %+v\nwant %+v", got, tt.want)
			}
			for _, w := range tt.want {
				got, ok := ct.Lookup(w.ID)
				if !ok || !reflect.DeepEqual(got, w) {
					t.Errorf("Lookup(%q) = %+v, %v", w.ID, got, ok)
				}
				if ct.IsPerson(w.ID) != w.Person || ct.IsPlace(w.ID) == w.Person {
					t.Errorf("%s: IsPerson %v IsPlace %v, want person %v", w.ID, ct.IsPerson(w.ID), ct.IsPlace(w.ID), w.Person)
				}
			}
		})
	}
}

func TestParseContactTypesErrors(t *testing.T) {
	tests := []struct {
		settings string
		path     string // DecodeError.Path
		msg      string // part of the message
	}{
		{`[]`, "", "want object"},
		{`{"contact_types":`, "", "app settings"},
		{`{"contact_types":{"id":"x"}}`, "contact_types", "want array"},
		{`{"contact_types":["x"]}`, "contact_types.0", "want object"},
		{`{"contact_types":[{"person":true}]}`, "contact_types.0.id", "want string"},
		{`{"contact_types":[{"id":7}]}`, "contact_types.0.id", "want string"},
		{`{"contact_types":[{"id":""}]}`, "contact_types.0.id", "non-empty"},
		{`{"contact_types":[{"id":"a"},{"id":"b","person":"true"}]}`, "contact_types.1.person", "want boolean"},
		{`{"contact_types":[{"id":"a","parents":"b"}]}`, "contact_types.0.parents", "want array"},
		{`{"contact_types":[{"id":"a","parents":[1]}]}`, "contact_types.0.parents.0", "type id"},
		{`{"contact_types":[{"id":"a"},{"id":"a"}]}`, "contact_types", `"a" declared twice`},
	}
	for _, tt := range tests {
		_, err := cht.ParseContactTypes([]byte(tt.settings))
		var de *cht.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: err = %v, want *DecodeError", tt.settings, err)
			continue
		}
		if de.Path != tt.path || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: path %q, err %v; want path %q containing %q", tt.settings, de.Path, err, tt.path, tt.msg)
		}
	}
}

// CHT accepts a type whose parents are not declared types
// (shared-libs/contact-types-utils/test/index.js: chwType has parents
// district_hospital and health_center, the settings declare
// my_district_hospital...); refusing them left no converter for such an
// instance.
func TestUndeclaredParentsAreAccepted(t *testing.T) {
	types, err := cht.ParseContactTypes([]byte(`{"contact_types":[{"id":"my_district_hospital"},
		{"id":"chw","person":true,"parents":["district_hospital","health_center"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !types.IsPerson("chw") || !types.IsPlace("my_district_hospital") {
		t.Errorf("types %+v", types.Types())
	}
}

func TestNewContactTypesErrors(t *testing.T) {
	for _, types := range [][]cht.ContactType{
		nil,
		{{ID: ""}},
		{{ID: "a"}, {ID: "a"}},
	} {
		if _, err := cht.NewContactTypes(types...); err == nil {
			t.Errorf("NewContactTypes(%+v) accepted", types)
		}
	}
}

func TestContactTypesImmutable(t *testing.T) {
	in := []cht.ContactType{{ID: "hh"}, {ID: "p", Person: true, Parents: []string{"hh"}}}
	ct, err := cht.NewContactTypes(in...)
	if err != nil {
		t.Fatal(err)
	}
	in[1].Parents[0] = "changed"
	in[1].Person = false
	got, _ := ct.Lookup("p")
	got.Parents[0] = "changed too"
	ct.Types()[1].Parents[0] = "and again"
	if got, _ := ct.Lookup("p"); !got.Person || !reflect.DeepEqual(got.Parents, []string{"hh"}) {
		t.Fatalf("Lookup after mutations = %+v", got)
	}
}

func TestContactTypesOf(t *testing.T) {
	ct, err := cht.ParseContactTypes([]byte(`{"contact_types":[{"id":"c_hh"},{"id":"c_person","person":true,"parents":["c_hh"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		doc    cht.Contact
		want   string // type id, "" for an error
		person bool
		field  string // DecodeError.Path for an error
	}{
		{cht.Contact{Type: "contact", ContactType: "c_person"}, "c_person", true, ""},
		{cht.Contact{Type: "contact", ContactType: "c_hh"}, "c_hh", false, ""},
		// contact-types-utils isPerson: the hard-coded "person" is a person
		// whether or not the app declares it.
		{cht.Contact{Type: "person"}, "person", true, ""},
		{cht.Contact{Type: "contact", ContactType: "c_chw"}, "", false, "contact_type"},
		{cht.Contact{Type: "contact"}, "", false, "contact_type"},
		// A legacy place type the app does not declare is unknown
		// (contact-types-utils isPlace needs the type in the config).
		{cht.Contact{Type: "clinic"}, "", false, "type"},
		{cht.Contact{Type: "data_record"}, "", false, "type"},
	}
	for _, tt := range tests {
		got, err := ct.Of(&tt.doc)
		if tt.want == "" {
			var de *cht.DecodeError
			if !errors.As(err, &de) || de.Path != tt.field || !errors.Is(err, cht.ErrUnknownContactType) {
				t.Errorf("Of(%+v) = %+v, %v; want an ErrUnknownContactType naming %s", tt.doc, got, err, tt.field)
			}
			continue
		}
		if err != nil || got.ID != tt.want || got.Person != tt.person {
			t.Errorf("Of(%+v) = %+v, %v; want %s person=%v", tt.doc, got, err, tt.want, tt.person)
		}
	}
	if _, err := (cht.ContactTypes{}).Of(&cht.Contact{Type: "person"}); err == nil {
		t.Error("the zero ContactTypes knows person")
	}
}

// newFake starts a plain fake (no demo data) and a client for it.
func newFake(t *testing.T, cfg chttest.Config) (*chttest.Server, *cht.Client) {
	t.Helper()
	srv := chttest.NewServer(cfg)
	t.Cleanup(srv.Close)
	c, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		HTTPClient: srv.Client(), RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func TestClientContactTypes(t *testing.T) {
	ctx := context.Background()
	t.Run("configured", func(t *testing.T) {
		srv, c := newFake(t, chttest.Config{ContactTypes: []chttest.ContactType{
			{ID: "c_area"}, {ID: "c_chw", Person: true, Parents: []string{"c_area"}},
		}})
		ct, err := c.ContactTypes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []cht.ContactType{{ID: "c_area"}, {ID: "c_chw", Person: true, Parents: []string{"c_area"}}}
		if got := ct.Types(); !reflect.DeepEqual(got, want) {
			t.Fatalf("Types() = %+v, want %+v", got, want)
		}
		if n := len(requestsTo(srv, "GET", "/api/v1/settings")); n != 1 {
			t.Errorf("%d GET /api/v1/settings, want 1", n)
		}
	})
	t.Run("legacy", func(t *testing.T) {
		_, c := newFake(t, chttest.Config{})
		ct, err := c.ContactTypes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := ct.Types(); !reflect.DeepEqual(got, legacyHierarchy) {
			t.Fatalf("Types() = %+v, want the legacy hierarchy", got)
		}
	})
	t.Run("bad settings", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/settings" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"contact_types":[{"id":"c_hh","person":"no"}]}`))
		}))
		defer srv.Close()
		c, err := cht.New(cht.Config{URL: srv.URL, Username: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ContactTypes(ctx)
		var de *cht.DecodeError
		if !errors.As(err, &de) || de.Path != "contact_types.0.person" {
			t.Fatalf("err = %v, want a DecodeError naming contact_types.0.person", err)
		}
	})
}
