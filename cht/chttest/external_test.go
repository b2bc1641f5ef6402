package chttest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// TestPutDocsWithChtTypes: cht types are stored through their (pointer
// receiver) MarshalJSON, so members kept in Extra survive.
func TestPutDocsWithChtTypes(t *testing.T) {
	srv := chttest.NewServer(chttest.Config{})
	t.Cleanup(srv.Close)
	p := cht.Contact{ID: "p1", Type: "person", Name: "Ana",
		Extra: map[string]json.RawMessage{"custom_field": json.RawMessage(`{"a":1}`)}}
	if err := srv.PutDocs(p, &cht.Contact{ID: "p2", Type: "person", Name: "Ben"}); err != nil {
		t.Fatal(err)
	}
	raw, ok := srv.Doc("p1")
	if !ok {
		t.Fatal("p1 not stored")
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got["name"] != "Ana" || got["custom_field"] == nil || got["_rev"] == nil {
		t.Fatalf("stored %s", raw)
	}
	if _, ok := srv.Doc("p2"); !ok {
		t.Fatal("p2 not stored")
	}
}

// TestCloseEndsLongpoll: Close does not wait for a pending longpoll.
func TestCloseEndsLongpoll(t *testing.T) {
	srv := chttest.NewServer(chttest.Config{MaxLongpoll: time.Minute})
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("GET", srv.URL+"/medic/_changes?feed=longpoll&since=now", nil)
		req.SetBasicAuth(chttest.AdminUsername, chttest.AdminPassword)
		if resp, err := srv.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the longpoll start; if it has not, Close still must not hang
	start := time.Now()
	srv.Close()
	<-done
	// A hang guard, not a timing assertion: without the fix Close waits
	// for the whole minute-long longpoll.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Close waited %v for the longpoll", d)
	}
}

// TestDemoTypesAsLoaded: DemoTypes is what cht.Client.ContactTypes loads
// from the demo server, and it tells the demo's people from its places.
func TestDemoTypesAsLoaded(t *testing.T) {
	srv := chttest.NewDemoServer()
	t.Cleanup(srv.Close)
	client, err := cht.New(cht.Config{URL: srv.URL, Username: chttest.AdminUsername, Password: chttest.AdminPassword,
		HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := client.ContactTypes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := chttest.DemoTypes()
	if !reflect.DeepEqual(got.Types(), loaded.Types()) {
		t.Fatalf("DemoTypes() = %+v, the server's settings give %+v", got.Types(), loaded.Types())
	}
	for id, person := range map[string]bool{"person": true, "household": false, "chw_area": false, "district_hospital": false} {
		if got.IsPerson(id) != person || got.IsPlace(id) == person {
			t.Errorf("%s: IsPerson %v, IsPlace %v; want a person: %v", id, got.IsPerson(id), got.IsPlace(id), person)
		}
	}
}
