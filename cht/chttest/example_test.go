package chttest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

func Example() {
	srv := chttest.NewDemoServer(chttest.Config{BasePath: "/cht"})
	defer srv.Close()

	body := strings.NewReader(`{"doc_ids":["` + chttest.DemoPatientID + `","missing"]}`)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/hydrate", body)
	req.SetBasicAuth(chttest.AdminUsername, chttest.AdminPassword)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var out []struct {
		ID    string `json:"id"`
		Error string `json:"error"`
		Doc   struct {
			Name   string `json:"name"`
			Parent struct {
				Name   string `json:"name"`
				Parent struct {
					Name string `json:"name"`
				} `json:"parent"`
			} `json:"parent"`
		} `json:"doc"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode)
	fmt.Println(out[0].Doc.Name, "/", out[0].Doc.Parent.Name, "/", out[0].Doc.Parent.Parent.Name)
	fmt.Println(out[1].ID, out[1].Error)
	// Output:
	// 200
	// John Test / Otieno Household / Sigomere CHW Area
	// missing not_found
}

func ExampleServer_InjectFault() {
	srv := chttest.NewServer(chttest.Config{})
	defer srv.Close()
	srv.InjectFault(chttest.Fault{Path: "/api/v1/hydrate", Status: http.StatusTooManyRequests,
		RetryAfter: 2 * time.Second, Count: 1})

	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+`/api/v1/hydrate?doc_ids=[]`, nil)
		req.SetBasicAuth(chttest.AdminUsername, chttest.AdminPassword)
		resp, err := srv.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Output:
	// 429 2
	// 200
}

func ExampleServer_records() {
	srv := chttest.NewServer(chttest.Config{Forms: chttest.DemoForms()})
	defer srv.Close()

	// Lower-case form code, an upper-case key and an undeclared key.
	body := `{"_meta":{"form":"height_weight"},"PATIENT_UUID":"p1","height":172,"colour":"blue"}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/records", strings.NewReader(body))
	req.SetBasicAuth(chttest.AdminUsername, chttest.AdminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var ans struct {
		Success bool   `json:"success"`
		ID      string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ans)

	raw, _ := srv.Doc(ans.ID)
	var doc struct {
		Form   string          `json:"form"`
		Fields json.RawMessage `json:"fields"`
	}
	_ = json.Unmarshal(raw, &doc)
	fmt.Println(resp.StatusCode, ans.Success, doc.Form, string(doc.Fields))
	// Output:
	// 200 true HEIGHT_WEIGHT {"height":172,"patient_uuid":"p1"}
}

func ExampleOutboundPusher() {
	srv := chttest.NewDemoServer()
	defer srv.Close()

	// The mediator under test; here a stub that accepts everything.
	mediator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Println("mediator got", string(b))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	}))
	defer mediator.Close()

	p, err := chttest.NewOutboundPusher(chttest.PusherConfig{
		Name:       "patient",
		URL:        mediator.URL + "/mediator/cht/patient",
		Username:   "interop",
		Password:   "interop-password",
		RelevantTo: func(doc map[string]any) bool { return doc["role"] == "patient" },
		Mapping:    map[string]any{"doc._id": "doc._id", "doc.name": "doc.name", "doc.household": "doc.parent.name"},
		Server:     srv,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for range 2 {
		a, err := p.PushID(ctx, chttest.DemoPatientID)
		fmt.Println(a.Outcome, err)
	}
	// Output:
	// mediator got {"doc":{"_id":"75905106a4bc2a9046ed28df070016ce","household":"Otieno Household","name":"John Test"}}
	// sent <nil>
	// already_sent <nil>
}

func ExampleOutboundFromSettings() {
	srv := chttest.NewDemoServer()
	defer srv.Close()
	// CHT reads the password from its credentials store.
	srv.SetCredential("openhim1", "interop-password")

	mediator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _, _ := r.BasicAuth()
		b, _ := io.ReadAll(r.Body)
		fmt.Println(u, r.URL.Path, string(b))
	}))
	defer mediator.Close()

	// CHT runs outbound pushes only with the mark_for_outbound transition.
	settings := `{"transitions":{"mark_for_outbound":true},"outbound":{"height_weight":{
	  "relevant_to":"doc.type === 'data_record' && doc.form === 'HEIGHT_WEIGHT'",
	  "destination":{"base_url":"` + mediator.URL + `","path":"/mediator/cht/encounter",
	    "auth":{"type":"basic","username":"interop","password_key":"openhim1"}},
	  "mapping":{"id":"doc._id","patient_uuid":"doc.fields.patient_uuid",
	    "observations.0.valueQuantity.value":"doc.fields.height",
	    "observations.0.valueQuantity.unit":{"expr":"'cm'"}}}}}`
	cfgs, err := chttest.OutboundFromSettings([]byte(settings), srv.Credential)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfgs[0].Server = srv // follow the fake's changes, as Sentinel does
	p, err := chttest.NewOutboundPusher(cfgs[0])
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := p.Sync(context.Background())
	fmt.Println(n, "docs evaluated,", p.CountOutcome(chttest.OutcomeSent), "sent,", err)
	// Output:
	// interop /mediator/cht/encounter {"id":"442b0937-a32f-443e-8d28-7d9a7552fda2","patient_uuid":"75905106a4bc2a9046ed28df070016ce","observations":[{"valueQuantity":{"value":172,"unit":"cm"}}]}
	// 13 docs evaluated, 1 sent, <nil>
}
