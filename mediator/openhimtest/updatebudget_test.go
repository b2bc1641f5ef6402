package openhimtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestUpdateTransactionMaxBodiesSize: PUT /transactions/:id cuts the
// update's bodies as core's updateTransaction (src/api/transactions.js,
// v4.0.5 to v8.5.0) does: the running total starts at the stored request
// and response bodies (calculateTransactionBodiesByteLength over the
// Mongoose document, which stops at each stored orchestration or route, see
// enforceUpdateBodies), then enforceMaxBodiesSize visits the update's
// request.body (a cut one sets canRerun false), its response.body, then its
// objects in JavaScript key order (utils.js enforceMaxBodiesSize cuts the
// body that goes over and appends api.truncateAppend).
func TestUpdateTransactionMaxBodiesSize(t *testing.T) {
	const marker = "\n[truncated ...]"
	const stored202 = `{"status":"Processing"}` // the stored response body
	mib := func(n float64) string { return strings.Repeat("a", int(n*(1<<20))) }
	cut := func(keep int) string { return strings.Repeat("a", keep-len(marker)) + marker }
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	orch := func(body string) string {
		return `{"name":"o","request":{"timestamp":"2025-01-01T00:00:00.000Z"},"response":{"status":200,"body":` + q(body) + `}}`
	}
	resp := func(body string) string { return `{"status":200,"body":` + q(body) + `}` }
	left := func(request int) int { return 15<<20 - request - len(stored202) }
	tests := []struct {
		name         string
		request      string // routed request body, stored
		storedOrch   string // the 202 answer's orchestration's response body, stored
		update       string // the PUT body, as sent
		wantResp     string
		wantOrch     []string // response bodies of the stored orchestrations after the update
		wantProp     string   // properties.response.body
		wantReq      string   // request.body after the update ("" means the routed one)
		wantCanRerun bool
	}{
		{"stored orchestrations are not counted", mib(5), mib(5),
			`{"response":` + resp(mib(5)) + `,"orchestrations":[` + orch(mib(4)) + `]}`,
			mib(5), []string{mib(4)}, "", "", true},
		{"response cut to what the stored request left", mib(10), "",
			`{"orchestrations":[` + orch("x") + `],"response":` + resp(mib(6)) + `}`,
			cut(left(10 << 20)), []string{marker}, "", "", true},
		{"orchestrations after the response", mib(5), "",
			`{"orchestrations":[` + orch(mib(4)) + `,` + orch(mib(4)) + `],"response":` + resp(mib(5)) + `}`,
			mib(5), []string{mib(4), cut(left(5<<20) - 9<<20)}, "", "", true},
		{"properties before orchestrations in key order", "", "",
			`{"properties":{"response":{"body":` + q(mib(8)) + `}},"orchestrations":[` + orch(mib(8)) + `]}`,
			stored202, []string{cut(left(0) - 8<<20)}, mib(8), "", true},
		{"orchestrations before properties in key order", "", "",
			`{"orchestrations":[` + orch(mib(8)) + `],"properties":{"response":{"body":` + q(mib(8)) + `}}}`,
			stored202, []string{mib(8)}, cut(left(0) - 8<<20), "", true},
		{"a cut request body makes it not rerunnable", mib(4), "",
			`{"request":{"body":` + q(mib(12)) + `,"timestamp":"2025-01-01T00:00:00.000Z"}}`,
			stored202, nil, "", cut(left(4 << 20)), false},
	}
	for i, tt := range tests {
		versions := []Version{Version8}
		if i < 2 {
			versions = []Version{Version4, Version7, Version8}
		}
		for _, v := range versions {
			t.Run(fmt.Sprintf("v%d %s", v, tt.name), func(t *testing.T) {
				f := newRouterFixture(t, v, envelope(func(m map[string]any) {
					m["status"] = "Processing"
					m["response"].(map[string]any)["body"] = stored202
					m["orchestrations"].([]any)[0].(map[string]any)["response"].(map[string]any)["body"] = tt.storedOrch
				}), nil)
				method := http.MethodPost
				if tt.request == "" {
					method = http.MethodGet // a POST without a body is stored with canRerun false
				}
				r, _ := f.call(t, method, "/api/x", "client-1", "pw", tt.request)
				id := r.Header.Get(transactionIDHeader)
				c := &apiClient{base: f.srv.URL, hc: f.srv.Client(), user: RootUser, pass: RootPassword}
				if v == Version8 {
					c.scheme = "basic" // token auth over http answers 500 (see secureCookieOverHTTP)
				}
				if r := c.do(t, http.MethodPut, "/transactions/"+id, json.RawMessage(tt.update)); r.Status != http.StatusOK {
					t.Fatalf("PUT: %d %q", r.Status, r.Body)
				}
				tx, _ := f.srv.Transaction(id)
				if tx.Response.Body != tt.wantResp {
					t.Errorf("response body %d bytes, want %d", len(tx.Response.Body), len(tt.wantResp))
				}
				if tt.wantOrch != nil {
					var got []string
					for _, o := range tx.Orchestrations {
						got = append(got, o.Response.Body)
					}
					if len(got) != len(tt.wantOrch) {
						t.Fatalf("%d orchestrations, want %d", len(got), len(tt.wantOrch))
					}
					for i := range got {
						if got[i] != tt.wantOrch[i] {
							t.Errorf("orchestration %d response body %d bytes, want %d", i, len(got[i]), len(tt.wantOrch[i]))
						}
					}
				}
				if tt.wantProp != "" {
					p, _ := tx.Properties["response"].(map[string]any)
					if b, _ := p["body"].(string); b != tt.wantProp {
						t.Errorf("properties.response.body %d bytes, want %d", len(b), len(tt.wantProp))
					}
				}
				wantReq := tt.wantReq
				if wantReq == "" {
					wantReq = tt.request
				}
				if tx.Request.Body != wantReq || tx.CanRerun != tt.wantCanRerun {
					t.Errorf("request body %d bytes canRerun %v, want %d %v", len(tx.Request.Body), tx.CanRerun, len(wantReq), tt.wantCanRerun)
				}
			})
		}
	}
}

// TestUpdateTransactionHelperBudget: Server.UpdateTransaction cuts bodies
// as PUT does, its keys in sorted order (as encoding/json sends a map).
func TestUpdateTransactionHelperBudget(t *testing.T) {
	const marker = "\n[truncated ...]"
	f := newRouterFixture(t, Version8, envelope(func(m map[string]any) {
		m["status"] = "Processing"
		m["response"].(map[string]any)["body"] = ""
	}), nil)
	r, _ := f.call(t, http.MethodPost, "/api/x", "client-1", "pw", strings.Repeat("r", 10<<20))
	id := r.Header.Get(transactionIDHeader)
	body := strings.Repeat("a", 6<<20)
	if err := f.srv.UpdateTransaction(id, map[string]any{"response": map[string]any{"status": 200, "body": body}}); err != nil {
		t.Fatal(err)
	}
	tx, _ := f.srv.Transaction(id)
	if want := body[:5<<20-len(marker)] + marker; tx.Response.Body != want {
		t.Errorf("response body %d bytes, want %d", len(tx.Response.Body), len(want))
	}
}

// TestDecodeOrdered: objects keep JavaScript's for...in order after
// JSON.parse: array-index keys first, ascending, then the others as they
// first appear (a repeated key keeps its place and takes the last value).
func TestDecodeOrdered(t *testing.T) {
	for _, tt := range []struct {
		in   string
		keys []string
	}{
		{`{"b":1,"a":2}`, []string{"b", "a"}},
		{`{"z":1,"10":2,"2":3,"01":4,"-1":5}`, []string{"2", "10", "z", "01", "-1"}},
		{`{"a":1,"b":2,"a":3}`, []string{"a", "b"}},
		{`{"4294967295":1,"4294967294":2}`, []string{"4294967294", "4294967295"}},
	} {
		v, err := decodeOrdered([]byte(tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		o := v.(*jsObject)
		if strings.Join(o.keys, ",") != strings.Join(tt.keys, ",") {
			t.Errorf("%s: keys %v, want %v", tt.in, o.keys, tt.keys)
		}
	}
	v, _ := decodeOrdered([]byte(`{"a":1,"b":2,"a":3}`))
	if got := plainJSON(v).(map[string]any)["a"]; got != float64(3) {
		t.Errorf("repeated key: %v, want the last value", got)
	}
	if _, err := decodeOrdered([]byte(`{"a":1} {}`)); err == nil {
		t.Error("data after the value: no error")
	}
}
